//! The artefact catalogue: one [`ArtefactSpec`] per table the stages exchange.
//! `schemas/README.md` is generated from it (a test keeps the two in step).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Result, SchemaError};

/// A column's Arrow type as the catalogue states it.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Exact(DataType),
    /// `FixedSizeList<Float32, D>` for any `D`: the dimension is a property of the model.
    Vector,
}

impl ColumnType {
    pub fn matches(&self, found: &DataType) -> bool {
        match (self, found) {
            (ColumnType::Exact(t), f) => t == f,
            (ColumnType::Vector, DataType::FixedSizeList(inner, _)) => inner.data_type() == &DataType::Float32,
            (ColumnType::Vector, _) => false,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Exact(t) => f.write_str(&type_name(t)),
            ColumnType::Vector => f.write_str("FixedSizeList<Float32, D>"),
        }
    }
}

/// A short, readable name for an Arrow type (`utf8`, `u32`, `list<u32>` ...).
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Utf8View => "utf8_view".into(),
        DataType::UInt8 => "u8".into(),
        DataType::UInt16 => "u16".into(),
        DataType::UInt32 => "u32".into(),
        DataType::UInt64 => "u64".into(),
        DataType::Int32 => "i32".into(),
        DataType::Int64 => "i64".into(),
        DataType::Float32 => "f32".into(),
        DataType::Float64 => "f64".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => format!("fixed_size_list<{}, {n}>", type_name(f.data_type())),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone)]
pub struct ArtefactSpec {
    /// File stem: the artefact is `runs/<run>/<name>.parquet` and the SQL table `<name>`.
    pub name: &'static str,
    pub produced_by: &'static str,
    pub doc: &'static str,
    pub columns: Vec<ColumnSpec>,
}

fn col(name: &'static str, t: DataType, doc: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: ColumnType::Exact(t),
        nullable: false,
        doc,
    }
}

fn nullable(name: &'static str, t: DataType, doc: &'static str) -> ColumnSpec {
    ColumnSpec {
        nullable: true,
        ..col(name, t, doc)
    }
}

impl ArtefactSpec {
    /// The Arrow schema written for this artefact. Vector columns need the dimension `dim`.
    pub fn schema_with_dim(&self, dim: Option<i32>) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let t = match &c.kind {
                    ColumnType::Exact(t) => t.clone(),
                    ColumnType::Vector => vector_type(dim.expect("vector artefacts need a dimension")),
                };
                Field::new(c.name, t, c.nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema_with_dim(None)
    }

    /// Checks that `found` has every catalogue column with the stated type. Extra columns are
    /// allowed, so later versions can add columns without breaking older readers.
    pub fn validate(&self, path: &Path, found: &Schema) -> Result<()> {
        for c in &self.columns {
            let Ok(field) = found.field_with_name(c.name) else {
                return Err(SchemaError::MissingColumn {
                    path: path.to_path_buf(),
                    column: c.name.to_string(),
                    expected: c.kind.to_string(),
                    found: found
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if !c.kind.matches(field.data_type()) {
                return Err(SchemaError::WrongType {
                    path: path.to_path_buf(),
                    column: c.name.to_string(),
                    expected: c.kind.to_string(),
                    found: type_name(field.data_type()),
                });
            }
        }
        Ok(())
    }
}

pub fn vector_type(dim: i32) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim)
}

pub fn pairs() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "pairs",
        produced_by: "saha-prompt",
        doc: "One row per (query, positive) pair as read from the input, in input order \
              (subsets in the order given, rows in file order). For MMEB-eval rows the positive is \
              candidate 0, the ground truth.",
        columns: vec![
            col("pair_id", UInt32, "Row number in this file, from 0."),
            col(
                "subset",
                Utf8,
                "Subset (dataset) name: the file stem or the Hugging Face config folder.",
            ),
            col(
                "qry",
                Utf8,
                "Query text as in the data, with the `<|image_1|>` placeholder.",
            ),
            nullable(
                "qry_image_path",
                Utf8,
                "Query image, relative to the image root; null for text-only.",
            ),
            col("pos_text", Utf8, "Positive target text as in the data."),
            nullable(
                "pos_image_path",
                Utf8,
                "Positive target image, relative to the image root; null for text-only.",
            ),
            col("query_id", UInt32, "`item_id` of the query in items.parquet."),
            col(
                "target_id",
                UInt32,
                "`item_id` of the positive target in items.parquet.",
            ),
            nullable(
                "label",
                Utf8,
                "Ground-truth class when the data has one (used to audit false negatives).",
            ),
            col("source_file", Utf8, "Input file the row came from."),
            col("source_row", UInt32, "Row number inside that file, from 0."),
        ],
    }
}

pub fn items() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "items",
        produced_by: "saha-prompt",
        doc: "One row per unique encoder input, de-duplicated like the reference by \
              `(side, subset, text, image_path)`. Query items come first (in order of first use), \
              then target items.",
        columns: vec![
            col("item_id", UInt32, "Row number in this file, from 0."),
            col("side", Utf8, "`query` or `target`."),
            col("subset", Utf8, "Subset the item belongs to."),
            col(
                "text",
                Utf8,
                "Raw dataset text (placeholder form, no prompt, no suffix).",
            ),
            nullable(
                "image_path",
                Utf8,
                "Image relative to the image root; null for text-only.",
            ),
            nullable(
                "system",
                Utf8,
                "System turn; null when the template has no system block.",
            ),
            col(
                "user",
                Utf8,
                "User turn after instruction handling, image-token replacement, escaping and suffix.",
            ),
            col("prompt", Utf8, "The fully rendered chat string the tokenizer sees."),
            col(
                "role",
                Utf8,
                "`Q` or `D`: the reference role the prompt was built with (RefCOCO-Matching targets are `Q`).",
            ),
        ],
    }
}

pub fn eval_lists() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "eval_lists",
        produced_by: "saha-prompt",
        doc: "MMEB-eval candidate lists in long form: one row per (query row, candidate). \
              Rank 0 is the ground truth.",
        columns: vec![
            col("pair_id", UInt32, "The eval row (pairs.parquet)."),
            col(
                "rank",
                UInt16,
                "Position in the row's candidate list; 0 is the ground truth.",
            ),
            col("item_id", UInt32, "The candidate's `item_id` in items.parquet."),
        ],
    }
}

pub fn skipped() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "skipped",
        produced_by: "saha-prompt",
        doc: "Input rows left out under `--on-missing skip` (or dropped duplicates), with why.",
        columns: vec![
            col("source_file", Utf8, "Input file."),
            col("source_row", UInt32, "Row inside that file, from 0."),
            col("column", Utf8, "Column that caused the skip."),
            col("reason", Utf8, "What was wrong."),
            nullable("value", Utf8, "The offending value, e.g. the image path."),
        ],
    }
}

pub fn embeddings() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "embeddings",
        produced_by: "saha-embed",
        doc: "One row per item. Footer metadata holds the model (`saha.embedding.model`), the \
              dimension (`saha.embedding.dim`) and whether vectors are L2-normalised \
              (`saha.embedding.normalized`).",
        columns: vec![
            col("item_id", UInt32, "The item (items.parquet)."),
            ColumnSpec {
                name: "embedding",
                kind: ColumnType::Vector,
                nullable: false,
                doc: "Final hidden state of the last real token, L2-normalised unless stated otherwise.",
            },
        ],
    }
}

pub fn candidates() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "candidates",
        produced_by: "saha-retrieve",
        doc: "Candidate space: for every unique query, the top `P` targets of its own subset by inner \
              product (exact), best first. The query's positive is included when retrieved.",
        columns: vec![
            col("query_id", UInt32, "The query item."),
            col("rank", UInt16, "0 = highest score."),
            col("target_id", UInt32, "The retrieved target item."),
            col(
                "score",
                Float32,
                "Inner product of the query and target embeddings (cosine when normalised).",
            ),
        ],
    }
}

pub fn owners() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "owners",
        produced_by: "saha-remap",
        doc: "Query space: for every (query, retrieved target), the queries that own the target (whose \
              positive it is), most anchor-similar first, at most `--max-owners` of them.",
        columns: vec![
            col("query_id", UInt32, "The anchor query item."),
            col("rank", UInt16, "The target's rank in candidates.parquet."),
            col("target_id", UInt32, "The retrieved target item."),
            col("owner_rank", UInt16, "0 = the owner most similar to the anchor."),
            col("owner_id", UInt32, "An owner query item of the target."),
            col("similarity", Float32, "Query-query inner product of anchor and owner."),
            col(
                "owners_total",
                UInt32,
                "Owners the target has before the cap; above the cap the list was cut.",
            ),
        ],
    }
}

pub fn clusters() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "clusters",
        produced_by: "saha-filter",
        doc: "Training clusters: an anchor pair and its mined negative pairs. Footer metadata names the \
              strategy; SaHa's phase-1 clusters are disjoint.",
        columns: vec![
            col("cluster_id", UInt32, "Cluster number, from 0, in construction order."),
            col(
                "position",
                UInt16,
                "0 = the anchor; 1.. the negatives in the reference's order.",
            ),
            col("pair_id", UInt32, "The (query, positive) pair (pairs.parquet)."),
            col("query_id", UInt32, "The pair's query item."),
            col("target_id", UInt32, "The pair's positive target item."),
            col(
                "phase",
                UInt8,
                "1 = main pass, 2 = leftover pass (SaHa); 1 for other strategies.",
            ),
            col("subset", Utf8, "Subset of the cluster."),
            col(
                "anchor_similarity",
                Float32,
                "Query-query inner product with the anchor (the anchor's own norm at position 0).",
            ),
        ],
    }
}

pub fn mining_stats() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "mining_stats",
        produced_by: "saha-filter",
        doc: "One row per (strategy, subset): cluster counts and sizes, leftovers, owner-cap hits, and the \
              false-negative audit when pairs carry labels.",
        columns: vec![
            col("strategy", Utf8, "saha, topk, positive-aware or range."),
            col("subset", Utf8, "Subset."),
            col("pairs", UInt32, "Pairs in the subset."),
            col("clusters", UInt32, "Clusters built."),
            col("phase2_clusters", UInt32, "Of those, built in the leftover pass."),
            col("covered_pairs", UInt32, "Distinct pairs that appear in some cluster."),
            col("mean_size", Float64, "Mean cluster size (anchor included)."),
            col("max_size", UInt32, "Largest cluster."),
            col("leftover_anchors", UInt32, "Queries left unused after the main pass."),
            col("cap_hits", UInt32, "Candidate visits (both passes) whose owner list had been cut by --max-owners."),
            col("cap_deviations", UInt32, "Candidates skipped because every kept owner was used while cut owners existed: where the result may differ from the reference."),
            col("negatives", UInt32, "Mined negatives (cluster members)."),
            col("labelled_negatives", UInt32, "Negatives where both anchor and negative carry a label."),
            col("false_negatives", UInt32, "Labelled negatives whose label equals the anchor's."),
            nullable("false_negative_rate", Float64, "false_negatives / labelled_negatives; null without labels."),
        ],
    }
}

pub fn eval_scores() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "eval_scores",
        produced_by: "saha-eval mmeb",
        doc: "MMEB-eval scores, one row per subset, in report order (meta-task, then subset). Each query is \
              scored against its own candidate list (eval_lists.parquet) by the inner product of the \
              L2-normalised vectors in f32; the ground truth is candidate 0 and ties resolve to the first \
              maximum, i.e. to the ground truth, as the reference's `np.argmax` does. The ground truth's rank is \
              1 + the number of candidates scoring strictly higher. Rates are fractions (0..1); the report shows \
              them x100. Aggregates (meta-task, IND, OOD, overall) are unweighted means over subsets and are in \
              the footer stats and eval_report.md. Footer metadata: the model (`saha.embedding.model`, copied \
              from the embeddings) and the eval-set fingerprint (`saha.eval.set`).",
        columns: vec![
            col("subset", Utf8, "Subset (dataset) name."),
            col(
                "meta_task",
                Utf8,
                "Classification, VQA, Retrieval or Visual Grounding for the 36 MMEB subsets; from `--task-map` for \
                 others, else `unknown`.",
            ),
            col(
                "ind_ood",
                Utf8,
                "`IND` (an MMEB-train subset), `OOD` (evaluation only) or `custom` (neither: not in IND/OOD means).",
            ),
            col("n", UInt32, "Queries (eval rows)."),
            col(
                "correct",
                UInt32,
                "Queries whose ground truth scored highest (first maximum).",
            ),
            col("p_at_1", Float64, "Precision@1 (hit@1) = correct / n, the MMEB metric."),
            col("hits_at_5", UInt32, "Queries whose ground truth ranks 1 to 5."),
            col("hit_at_5", Float64, "hits_at_5 / n (not reported by the reference)."),
            col(
                "mrr",
                Float64,
                "Mean reciprocal rank of the ground truth (not reported by the reference).",
            ),
            col(
                "ties_won",
                UInt32,
                "Correct queries where another candidate scored exactly as high as the ground truth: counted \
                 correct only by the first-maximum rule. Many of these point at a degenerate encoder.",
            ),
            col("min_candidates", UInt32, "Shortest candidate list in the subset."),
            col("max_candidates", UInt32, "Longest candidate list in the subset."),
            col(
                "eval_set",
                Utf8,
                "Fingerprint (SHA-256, 16 hex digits) of the subset's queries and candidate lists (raw text and \
                 image paths, in order): equal fingerprints mean the same eval rows.",
            ),
        ],
    }
}

pub fn sugarcrepe_sets() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "sugarcrepe_sets",
        produced_by: "saha-eval sugarcrepe-items",
        doc: "SugarCrepe / SugarCrepe++ test examples as item ids into the items.parquet written next to it: an \
              image, its positive caption(s) and the hard negative caption.",
        columns: vec![
            col("example", UInt32, "Row number in this file, from 0."),
            col("benchmark", Utf8, "`sugarcrepe` or `sugarcrepe++`."),
            col(
                "subset",
                Utf8,
                "replace_obj, swap_att, add_obj ... (the input file stem).",
            ),
            col(
                "key",
                Utf8,
                "The example's key in the input: the JSON object key (SugarCrepe) or list index (SugarCrepe++).",
            ),
            col("image_id", UInt32, "`item_id` of the image item."),
            col("pos_id", UInt32, "`item_id` of the positive caption (`caption`)."),
            nullable(
                "pos2_id",
                UInt32,
                "`item_id` of the second positive (`caption2`, SugarCrepe++ only).",
            ),
            col(
                "neg_id",
                UInt32,
                "`item_id` of the negative caption (`negative_caption`).",
            ),
            col("source_file", Utf8, "Input file the example came from."),
        ],
    }
}

pub fn sugarcrepe_scores() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "sugarcrepe_scores",
        produced_by: "saha-eval sugarcrepe",
        doc: "SugarCrepe / SugarCrepe++ accuracy per subset. Comparisons are strict (`>`), as in the reference: an \
              exact tie counts as wrong. Footer metadata names the model (`saha.embedding.model`).",
        columns: vec![
            col("benchmark", Utf8, "`sugarcrepe` or `sugarcrepe++`."),
            col("subset", Utf8, "Subset."),
            col("n", UInt32, "Examples."),
            col(
                "itt_correct",
                UInt32,
                "Image-to-text: cos(image, positive) > cos(image, negative); for SugarCrepe++ both positives must \
                 beat the negative.",
            ),
            col("itt_accuracy", Float64, "itt_correct / n."),
            nullable(
                "tot_correct",
                UInt32,
                "Text-only (SugarCrepe++): cos(p1, p2) > cos(p1, neg) and cos(p1, p2) > cos(p2, neg); null for \
                 SugarCrepe.",
            ),
            nullable("tot_accuracy", Float64, "tot_correct / n; null for SugarCrepe."),
            col(
                "ties",
                UInt32,
                "Examples with an exact tie in some comparison (counted wrong).",
            ),
        ],
    }
}

pub fn train_log() -> ArtefactSpec {
    use DataType::*;
    ArtefactSpec {
        name: "train_log",
        produced_by: "saha-train",
        doc: "One row per optimisation step.",
        columns: vec![
            col("step", UInt32, "Step number, from 1."),
            col("loss", Float32, "InfoNCE loss of the step's batch."),
            col("lr", Float64, "Learning rate used for the step."),
            col("grad_norm", Float64, "Global gradient L2 norm before clipping."),
            col("pairs", UInt32, "(query, positive) pairs in the step."),
            col("pairs_per_s", Float64, "Throughput of the step."),
            col("seconds", Float64, "Wall time of the step."),
        ],
    }
}

/// Every artefact in the catalogue, in pipeline order.
pub fn all() -> Vec<ArtefactSpec> {
    vec![
        pairs(),
        items(),
        eval_lists(),
        skipped(),
        embeddings(),
        candidates(),
        owners(),
        clusters(),
        mining_stats(),
        train_log(),
        eval_scores(),
        sugarcrepe_sets(),
        sugarcrepe_scores(),
    ]
}

/// The Markdown tables of `schemas/README.md`.
pub fn markdown(specs: &[ArtefactSpec]) -> String {
    let mut out = String::new();
    for s in specs {
        out.push_str(&format!(
            "## `{}.parquet`\n\nWritten by `{}`. {}\n\n| column | type | null | meaning |\n|---|---|---|---|\n",
            s.name, s.produced_by, s.doc
        ));
        for c in &s.columns {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name,
                c.kind,
                if c.nullable { "yes" } else { "no" },
                c.doc
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_matches_catalogue() {
        let readme = include_str!("../README.md");
        let tables = markdown(&all());
        assert!(
            readme.contains(&tables),
            "schemas/README.md is out of date; regenerate with `cargo run --release -p saha-schemas --example readme`"
        );
    }

    #[test]
    fn validate_names_column_and_types() {
        let spec = pairs();
        let schema = Schema::new(vec![Field::new("pair_id", DataType::Int64, false)]);
        let err = spec.validate(Path::new("x.parquet"), &schema).unwrap_err().to_string();
        assert!(
            err.contains("x.parquet") && err.contains("`pair_id`") && err.contains("i64") && err.contains("u32"),
            "{err}"
        );
        let schema = Schema::new(vec![Field::new("pair_id", DataType::UInt32, false)]);
        let err = spec.validate(Path::new("x.parquet"), &schema).unwrap_err().to_string();
        assert!(err.contains("missing column `subset`"), "{err}");
    }

    #[test]
    fn vector_columns_accept_any_dimension() {
        let spec = embeddings();
        for dim in [4, 1536] {
            spec.validate(Path::new("e"), &spec.schema_with_dim(Some(dim))).unwrap();
        }
    }
}
