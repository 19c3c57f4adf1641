//! Row types of the tables, with conversion to and from Arrow batches.
// Rows are assembled from several column slices at one index; a range loop reads best.
#![allow(clippy::needless_range_loop)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, StringArray, UInt16Array, UInt32Array, UInt8Array};
use arrow::datatypes::{Float32Type, Float64Type, UInt16Type, UInt32Type, UInt8Type};
use arrow::record_batch::RecordBatch;

use crate::artefacts::{self, ArtefactSpec};
use crate::columns::{primitive, required, strings, BatchAt};
use crate::error::Result;
use crate::provenance::Provenance;
use crate::read::ParquetTable;
use crate::write::ParquetSink;

const WRITE_CHUNK: usize = 65_536;

/// A row type of one catalogue artefact.
pub trait Record: Sized {
    fn spec() -> ArtefactSpec;
    fn to_columns(rows: &[Self]) -> Vec<ArrayRef>;
    /// Appends the rows of `batch` (already validated against the spec) to `out`.
    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()>;

    fn to_batch(rows: &[Self]) -> RecordBatch {
        RecordBatch::try_new(Self::spec().schema(), Self::to_columns(rows))
            .expect("columns follow the catalogue schema")
    }
}

/// Starts an atomic Parquet file for `R` carrying `provenance`.
pub fn sink_for<R: Record>(path: &Path, provenance: &Provenance) -> Result<ParquetSink> {
    let spec = R::spec();
    ParquetSink::create(path, spec.schema(), provenance.to_key_values(spec.name))
}

/// Like [`sink_for`], with more footer key-values (e.g. the embedding model a score was computed with).
pub fn sink_with_keys<R: Record>(
    path: &Path,
    provenance: &Provenance,
    extra: &[(String, String)],
) -> Result<ParquetSink> {
    let spec = R::spec();
    let mut kv = provenance.to_key_values(spec.name);
    kv.extend(extra.iter().cloned());
    ParquetSink::create(path, spec.schema(), kv)
}

/// Writes `rows` into `sink` in bounded chunks.
pub fn write_rows<R: Record>(sink: &mut ParquetSink, rows: &[R]) -> Result<()> {
    for chunk in rows.chunks(WRITE_CHUNK) {
        sink.write(&R::to_batch(chunk))?;
    }
    Ok(())
}

/// Writes `rows` to `path` atomically.
pub fn write_records<R: Record>(path: &Path, rows: &[R], provenance: &Provenance) -> Result<()> {
    let mut sink = sink_for::<R>(path, provenance)?;
    write_rows(&mut sink, rows)?;
    sink.finish()?;
    Ok(())
}

/// Reads and validates a whole artefact file.
pub fn read_records<R: Record>(path: &Path) -> Result<(Vec<R>, Option<Provenance>)> {
    let table = ParquetTable::open_artefact(path, &R::spec())?;
    let provenance = table.provenance();
    let mut rows = Vec::with_capacity(table.num_rows);
    let mut batches = table.batches()?;
    while let Some((batch, at)) = batches.next_batch()? {
        R::from_batch(&batch, at, &mut rows)?;
    }
    Ok((rows, provenance))
}

fn utf8<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn utf8_opt<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn u32s(values: impl Iterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(values))
}

fn u16s(values: impl Iterator<Item = u16>) -> ArrayRef {
    Arc::new(UInt16Array::from_iter_values(values))
}

fn f32s(values: impl Iterator<Item = f32>) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(values))
}

fn f64s(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

/// A nullable primitive column as options (`primitive` refuses nulls).
fn optional_values<T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
    at: BatchAt,
) -> Result<Vec<Option<T::Native>>> {
    use arrow::array::{Array, AsArray};
    let expected = artefacts::type_name(&T::DATA_TYPE);
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| at.bad_value(0, name, "missing column"))?;
    let typed = array.as_primitive_opt::<T>().ok_or_else(|| {
        at.bad_value(
            0,
            name,
            format!("expected {expected}, found {}", artefacts::type_name(array.data_type())),
        )
    })?;
    Ok((0..typed.len())
        .map(|i| typed.is_valid(i).then(|| typed.value(i)))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Query,
    Target,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Query => "query",
            Side::Target => "target",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Side::Query),
            "target" => Some(Side::Target),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub pair_id: u32,
    pub subset: String,
    pub qry: String,
    pub qry_image_path: Option<String>,
    pub pos_text: String,
    pub pos_image_path: Option<String>,
    pub query_id: u32,
    pub target_id: u32,
    pub label: Option<String>,
    pub source_file: String,
    pub source_row: u32,
}

impl Record for Pair {
    fn spec() -> ArtefactSpec {
        artefacts::pairs()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.pair_id)),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            utf8(rows.iter().map(|r| r.qry.as_str())),
            utf8_opt(rows.iter().map(|r| r.qry_image_path.as_deref())),
            utf8(rows.iter().map(|r| r.pos_text.as_str())),
            utf8_opt(rows.iter().map(|r| r.pos_image_path.as_deref())),
            u32s(rows.iter().map(|r| r.query_id)),
            u32s(rows.iter().map(|r| r.target_id)),
            utf8_opt(rows.iter().map(|r| r.label.as_deref())),
            utf8(rows.iter().map(|r| r.source_file.as_str())),
            u32s(rows.iter().map(|r| r.source_row)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let pair_id = primitive::<UInt32Type>(batch, "pair_id", at)?;
        let subset = strings(batch, "subset", at)?;
        let qry = strings(batch, "qry", at)?;
        let qry_image = strings(batch, "qry_image_path", at)?;
        let pos_text = strings(batch, "pos_text", at)?;
        let pos_image = strings(batch, "pos_image_path", at)?;
        let query_id = primitive::<UInt32Type>(batch, "query_id", at)?;
        let target_id = primitive::<UInt32Type>(batch, "target_id", at)?;
        let label = strings(batch, "label", at)?;
        let source_file = strings(batch, "source_file", at)?;
        let source_row = primitive::<UInt32Type>(batch, "source_row", at)?;
        for i in 0..batch.num_rows() {
            out.push(Pair {
                pair_id: pair_id[i],
                subset: required(&subset, i, "subset", at)?.to_string(),
                qry: required(&qry, i, "qry", at)?.to_string(),
                qry_image_path: qry_image.get(i).map(str::to_string),
                pos_text: required(&pos_text, i, "pos_text", at)?.to_string(),
                pos_image_path: pos_image.get(i).map(str::to_string),
                query_id: query_id[i],
                target_id: target_id[i],
                label: label.get(i).map(str::to_string),
                source_file: required(&source_file, i, "source_file", at)?.to_string(),
                source_row: source_row[i],
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub item_id: u32,
    pub side: Side,
    pub subset: String,
    pub text: String,
    pub image_path: Option<String>,
    pub system: Option<String>,
    pub user: String,
    pub prompt: String,
    /// `Q` or `D`, the reference's role argument.
    pub role: String,
}

impl Record for Item {
    fn spec() -> ArtefactSpec {
        artefacts::items()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.item_id)),
            utf8(rows.iter().map(|r| r.side.as_str())),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            utf8(rows.iter().map(|r| r.text.as_str())),
            utf8_opt(rows.iter().map(|r| r.image_path.as_deref())),
            utf8_opt(rows.iter().map(|r| r.system.as_deref())),
            utf8(rows.iter().map(|r| r.user.as_str())),
            utf8(rows.iter().map(|r| r.prompt.as_str())),
            utf8(rows.iter().map(|r| r.role.as_str())),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let item_id = primitive::<UInt32Type>(batch, "item_id", at)?;
        let side = strings(batch, "side", at)?;
        let subset = strings(batch, "subset", at)?;
        let text = strings(batch, "text", at)?;
        let image = strings(batch, "image_path", at)?;
        let system = strings(batch, "system", at)?;
        let user = strings(batch, "user", at)?;
        let prompt = strings(batch, "prompt", at)?;
        let role = strings(batch, "role", at)?;
        for i in 0..batch.num_rows() {
            let side_str = required(&side, i, "side", at)?;
            let side = Side::parse(side_str)
                .ok_or_else(|| at.bad_value(i, "side", format!("`{side_str}` is neither `query` nor `target`")))?;
            out.push(Item {
                item_id: item_id[i],
                side,
                subset: required(&subset, i, "subset", at)?.to_string(),
                text: required(&text, i, "text", at)?.to_string(),
                image_path: image.get(i).map(str::to_string),
                system: system.get(i).map(str::to_string),
                user: required(&user, i, "user", at)?.to_string(),
                prompt: required(&prompt, i, "prompt", at)?.to_string(),
                role: required(&role, i, "role", at)?.to_string(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalListEntry {
    pub pair_id: u32,
    pub rank: u16,
    pub item_id: u32,
}

impl Record for EvalListEntry {
    fn spec() -> ArtefactSpec {
        artefacts::eval_lists()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.pair_id)),
            u16s(rows.iter().map(|r| r.rank)),
            u32s(rows.iter().map(|r| r.item_id)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let pair_id = primitive::<UInt32Type>(batch, "pair_id", at)?;
        let rank = primitive::<UInt16Type>(batch, "rank", at)?;
        let item_id = primitive::<UInt32Type>(batch, "item_id", at)?;
        out.extend((0..batch.num_rows()).map(|i| EvalListEntry {
            pair_id: pair_id[i],
            rank: rank[i],
            item_id: item_id[i],
        }));
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    pub source_file: String,
    pub source_row: u32,
    pub column: String,
    pub reason: String,
    pub value: Option<String>,
}

impl Record for SkippedRow {
    fn spec() -> ArtefactSpec {
        artefacts::skipped()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            utf8(rows.iter().map(|r| r.source_file.as_str())),
            u32s(rows.iter().map(|r| r.source_row)),
            utf8(rows.iter().map(|r| r.column.as_str())),
            utf8(rows.iter().map(|r| r.reason.as_str())),
            utf8_opt(rows.iter().map(|r| r.value.as_deref())),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let source_file = strings(batch, "source_file", at)?;
        let source_row = primitive::<UInt32Type>(batch, "source_row", at)?;
        let column = strings(batch, "column", at)?;
        let reason = strings(batch, "reason", at)?;
        let value = strings(batch, "value", at)?;
        for i in 0..batch.num_rows() {
            out.push(SkippedRow {
                source_file: required(&source_file, i, "source_file", at)?.to_string(),
                source_row: source_row[i],
                column: required(&column, i, "column", at)?.to_string(),
                reason: required(&reason, i, "reason", at)?.to_string(),
                value: value.get(i).map(str::to_string),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub query_id: u32,
    pub rank: u16,
    pub target_id: u32,
    pub score: f32,
}

impl Record for Candidate {
    fn spec() -> ArtefactSpec {
        artefacts::candidates()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.query_id)),
            u16s(rows.iter().map(|r| r.rank)),
            u32s(rows.iter().map(|r| r.target_id)),
            f32s(rows.iter().map(|r| r.score)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let query_id = primitive::<UInt32Type>(batch, "query_id", at)?;
        let rank = primitive::<UInt16Type>(batch, "rank", at)?;
        let target_id = primitive::<UInt32Type>(batch, "target_id", at)?;
        let score = primitive::<Float32Type>(batch, "score", at)?;
        for i in 0..batch.num_rows() {
            out.push(Candidate {
                query_id: query_id[i],
                rank: rank[i],
                target_id: target_id[i],
                score: score[i],
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Owner {
    pub query_id: u32,
    pub rank: u16,
    pub target_id: u32,
    pub owner_rank: u16,
    pub owner_id: u32,
    pub similarity: f32,
    pub owners_total: u32,
}

impl Record for Owner {
    fn spec() -> ArtefactSpec {
        artefacts::owners()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.query_id)),
            u16s(rows.iter().map(|r| r.rank)),
            u32s(rows.iter().map(|r| r.target_id)),
            u16s(rows.iter().map(|r| r.owner_rank)),
            u32s(rows.iter().map(|r| r.owner_id)),
            f32s(rows.iter().map(|r| r.similarity)),
            u32s(rows.iter().map(|r| r.owners_total)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let query_id = primitive::<UInt32Type>(batch, "query_id", at)?;
        let rank = primitive::<UInt16Type>(batch, "rank", at)?;
        let target_id = primitive::<UInt32Type>(batch, "target_id", at)?;
        let owner_rank = primitive::<UInt16Type>(batch, "owner_rank", at)?;
        let owner_id = primitive::<UInt32Type>(batch, "owner_id", at)?;
        let similarity = primitive::<Float32Type>(batch, "similarity", at)?;
        let owners_total = primitive::<UInt32Type>(batch, "owners_total", at)?;
        for i in 0..batch.num_rows() {
            out.push(Owner {
                query_id: query_id[i],
                rank: rank[i],
                target_id: target_id[i],
                owner_rank: owner_rank[i],
                owner_id: owner_id[i],
                similarity: similarity[i],
                owners_total: owners_total[i],
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMember {
    pub cluster_id: u32,
    pub position: u16,
    pub pair_id: u32,
    pub query_id: u32,
    pub target_id: u32,
    pub phase: u8,
    pub subset: String,
    pub anchor_similarity: f32,
}

impl Record for ClusterMember {
    fn spec() -> ArtefactSpec {
        artefacts::clusters()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.cluster_id)),
            u16s(rows.iter().map(|r| r.position)),
            u32s(rows.iter().map(|r| r.pair_id)),
            u32s(rows.iter().map(|r| r.query_id)),
            u32s(rows.iter().map(|r| r.target_id)),
            Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.phase))),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            f32s(rows.iter().map(|r| r.anchor_similarity)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let cluster_id = primitive::<UInt32Type>(batch, "cluster_id", at)?;
        let position = primitive::<UInt16Type>(batch, "position", at)?;
        let pair_id = primitive::<UInt32Type>(batch, "pair_id", at)?;
        let query_id = primitive::<UInt32Type>(batch, "query_id", at)?;
        let target_id = primitive::<UInt32Type>(batch, "target_id", at)?;
        let phase = primitive::<UInt8Type>(batch, "phase", at)?;
        let subset = strings(batch, "subset", at)?;
        let sim = primitive::<Float32Type>(batch, "anchor_similarity", at)?;
        for i in 0..batch.num_rows() {
            out.push(ClusterMember {
                cluster_id: cluster_id[i],
                position: position[i],
                pair_id: pair_id[i],
                query_id: query_id[i],
                target_id: target_id[i],
                phase: phase[i],
                subset: required(&subset, i, "subset", at)?.to_string(),
                anchor_similarity: sim[i],
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiningStats {
    pub strategy: String,
    pub subset: String,
    pub pairs: u32,
    pub clusters: u32,
    pub phase2_clusters: u32,
    pub covered_pairs: u32,
    pub mean_size: f64,
    pub max_size: u32,
    pub leftover_anchors: u32,
    pub cap_hits: u32,
    pub cap_deviations: u32,
    pub negatives: u32,
    pub labelled_negatives: u32,
    pub false_negatives: u32,
    pub false_negative_rate: Option<f64>,
}

impl Record for MiningStats {
    fn spec() -> ArtefactSpec {
        artefacts::mining_stats()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            utf8(rows.iter().map(|r| r.strategy.as_str())),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            u32s(rows.iter().map(|r| r.pairs)),
            u32s(rows.iter().map(|r| r.clusters)),
            u32s(rows.iter().map(|r| r.phase2_clusters)),
            u32s(rows.iter().map(|r| r.covered_pairs)),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.mean_size))),
            u32s(rows.iter().map(|r| r.max_size)),
            u32s(rows.iter().map(|r| r.leftover_anchors)),
            u32s(rows.iter().map(|r| r.cap_hits)),
            u32s(rows.iter().map(|r| r.cap_deviations)),
            u32s(rows.iter().map(|r| r.negatives)),
            u32s(rows.iter().map(|r| r.labelled_negatives)),
            u32s(rows.iter().map(|r| r.false_negatives)),
            Arc::new(rows.iter().map(|r| r.false_negative_rate).collect::<Float64Array>()),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let strategy = strings(batch, "strategy", at)?;
        let subset = strings(batch, "subset", at)?;
        let u = |name: &str| primitive::<UInt32Type>(batch, name, at);
        let (pairs, clusters, phase2, covered) =
            (u("pairs")?, u("clusters")?, u("phase2_clusters")?, u("covered_pairs")?);
        let (max_size, leftover, cap_hits, cap_dev) = (
            u("max_size")?,
            u("leftover_anchors")?,
            u("cap_hits")?,
            u("cap_deviations")?,
        );
        let (negatives, labelled, false_neg) = (u("negatives")?, u("labelled_negatives")?, u("false_negatives")?);
        let mean_size = primitive::<Float64Type>(batch, "mean_size", at)?;
        let rate = batch
            .column_by_name("false_negative_rate")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or_else(|| at.bad_value(0, "false_negative_rate", "expected f64"))?;
        for i in 0..batch.num_rows() {
            out.push(MiningStats {
                strategy: required(&strategy, i, "strategy", at)?.to_string(),
                subset: required(&subset, i, "subset", at)?.to_string(),
                pairs: pairs[i],
                clusters: clusters[i],
                phase2_clusters: phase2[i],
                covered_pairs: covered[i],
                mean_size: mean_size[i],
                max_size: max_size[i],
                leftover_anchors: leftover[i],
                cap_hits: cap_hits[i],
                cap_deviations: cap_dev[i],
                negatives: negatives[i],
                labelled_negatives: labelled[i],
                false_negatives: false_neg[i],
                false_negative_rate: arrow::array::Array::is_valid(rate, i).then(|| rate.value(i)),
            });
        }
        Ok(())
    }
}

/// Footer key of score files: the eval-set fingerprint (SHA-256 over every subset's `eval_set`).
pub const KEY_EVAL_SET: &str = "saha.eval.set";

/// One subset's MMEB-eval scores (`eval_scores.parquet`).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalScore {
    pub subset: String,
    pub meta_task: String,
    /// `IND`, `OOD` or `custom`.
    pub ind_ood: String,
    pub n: u32,
    pub correct: u32,
    pub p_at_1: f64,
    pub hits_at_5: u32,
    pub hit_at_5: f64,
    pub mrr: f64,
    pub ties_won: u32,
    pub min_candidates: u32,
    pub max_candidates: u32,
    pub eval_set: String,
}

impl Record for EvalScore {
    fn spec() -> ArtefactSpec {
        artefacts::eval_scores()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            utf8(rows.iter().map(|r| r.subset.as_str())),
            utf8(rows.iter().map(|r| r.meta_task.as_str())),
            utf8(rows.iter().map(|r| r.ind_ood.as_str())),
            u32s(rows.iter().map(|r| r.n)),
            u32s(rows.iter().map(|r| r.correct)),
            f64s(rows.iter().map(|r| r.p_at_1)),
            u32s(rows.iter().map(|r| r.hits_at_5)),
            f64s(rows.iter().map(|r| r.hit_at_5)),
            f64s(rows.iter().map(|r| r.mrr)),
            u32s(rows.iter().map(|r| r.ties_won)),
            u32s(rows.iter().map(|r| r.min_candidates)),
            u32s(rows.iter().map(|r| r.max_candidates)),
            utf8(rows.iter().map(|r| r.eval_set.as_str())),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let subset = strings(batch, "subset", at)?;
        let meta_task = strings(batch, "meta_task", at)?;
        let ind_ood = strings(batch, "ind_ood", at)?;
        let eval_set = strings(batch, "eval_set", at)?;
        let u = |name: &str| primitive::<UInt32Type>(batch, name, at);
        let f = |name: &str| primitive::<Float64Type>(batch, name, at);
        let (n, correct, hits_at_5, ties_won) = (u("n")?, u("correct")?, u("hits_at_5")?, u("ties_won")?);
        let (min_c, max_c) = (u("min_candidates")?, u("max_candidates")?);
        let (p_at_1, hit_at_5, mrr) = (f("p_at_1")?, f("hit_at_5")?, f("mrr")?);
        for i in 0..batch.num_rows() {
            out.push(EvalScore {
                subset: required(&subset, i, "subset", at)?.to_string(),
                meta_task: required(&meta_task, i, "meta_task", at)?.to_string(),
                ind_ood: required(&ind_ood, i, "ind_ood", at)?.to_string(),
                n: n[i],
                correct: correct[i],
                p_at_1: p_at_1[i],
                hits_at_5: hits_at_5[i],
                hit_at_5: hit_at_5[i],
                mrr: mrr[i],
                ties_won: ties_won[i],
                min_candidates: min_c[i],
                max_candidates: max_c[i],
                eval_set: required(&eval_set, i, "eval_set", at)?.to_string(),
            });
        }
        Ok(())
    }
}

/// One SugarCrepe / SugarCrepe++ example as item ids (`sugarcrepe_sets.parquet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SugarCrepeExample {
    pub example: u32,
    pub benchmark: String,
    pub subset: String,
    pub key: String,
    pub image_id: u32,
    pub pos_id: u32,
    pub pos2_id: Option<u32>,
    pub neg_id: u32,
    pub source_file: String,
}

impl Record for SugarCrepeExample {
    fn spec() -> ArtefactSpec {
        artefacts::sugarcrepe_sets()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.example)),
            utf8(rows.iter().map(|r| r.benchmark.as_str())),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            utf8(rows.iter().map(|r| r.key.as_str())),
            u32s(rows.iter().map(|r| r.image_id)),
            u32s(rows.iter().map(|r| r.pos_id)),
            Arc::new(rows.iter().map(|r| r.pos2_id).collect::<UInt32Array>()),
            u32s(rows.iter().map(|r| r.neg_id)),
            utf8(rows.iter().map(|r| r.source_file.as_str())),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let example = primitive::<UInt32Type>(batch, "example", at)?;
        let benchmark = strings(batch, "benchmark", at)?;
        let subset = strings(batch, "subset", at)?;
        let key = strings(batch, "key", at)?;
        let image_id = primitive::<UInt32Type>(batch, "image_id", at)?;
        let pos_id = primitive::<UInt32Type>(batch, "pos_id", at)?;
        let pos2_id = optional_values::<UInt32Type>(batch, "pos2_id", at)?;
        let neg_id = primitive::<UInt32Type>(batch, "neg_id", at)?;
        let source_file = strings(batch, "source_file", at)?;
        for i in 0..batch.num_rows() {
            out.push(SugarCrepeExample {
                example: example[i],
                benchmark: required(&benchmark, i, "benchmark", at)?.to_string(),
                subset: required(&subset, i, "subset", at)?.to_string(),
                key: required(&key, i, "key", at)?.to_string(),
                image_id: image_id[i],
                pos_id: pos_id[i],
                pos2_id: pos2_id[i],
                neg_id: neg_id[i],
                source_file: required(&source_file, i, "source_file", at)?.to_string(),
            });
        }
        Ok(())
    }
}

/// One subset's SugarCrepe / SugarCrepe++ accuracy (`sugarcrepe_scores.parquet`).
#[derive(Debug, Clone, PartialEq)]
pub struct SugarCrepeScore {
    pub benchmark: String,
    pub subset: String,
    pub n: u32,
    pub itt_correct: u32,
    pub itt_accuracy: f64,
    pub tot_correct: Option<u32>,
    pub tot_accuracy: Option<f64>,
    pub ties: u32,
}

impl Record for SugarCrepeScore {
    fn spec() -> ArtefactSpec {
        artefacts::sugarcrepe_scores()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            utf8(rows.iter().map(|r| r.benchmark.as_str())),
            utf8(rows.iter().map(|r| r.subset.as_str())),
            u32s(rows.iter().map(|r| r.n)),
            u32s(rows.iter().map(|r| r.itt_correct)),
            f64s(rows.iter().map(|r| r.itt_accuracy)),
            Arc::new(rows.iter().map(|r| r.tot_correct).collect::<UInt32Array>()),
            Arc::new(rows.iter().map(|r| r.tot_accuracy).collect::<Float64Array>()),
            u32s(rows.iter().map(|r| r.ties)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let benchmark = strings(batch, "benchmark", at)?;
        let subset = strings(batch, "subset", at)?;
        let n = primitive::<UInt32Type>(batch, "n", at)?;
        let itt_correct = primitive::<UInt32Type>(batch, "itt_correct", at)?;
        let itt_accuracy = primitive::<Float64Type>(batch, "itt_accuracy", at)?;
        let tot_correct = optional_values::<UInt32Type>(batch, "tot_correct", at)?;
        let tot_accuracy = optional_values::<Float64Type>(batch, "tot_accuracy", at)?;
        let ties = primitive::<UInt32Type>(batch, "ties", at)?;
        for i in 0..batch.num_rows() {
            out.push(SugarCrepeScore {
                benchmark: required(&benchmark, i, "benchmark", at)?.to_string(),
                subset: required(&subset, i, "subset", at)?.to_string(),
                n: n[i],
                itt_correct: itt_correct[i],
                itt_accuracy: itt_accuracy[i],
                tot_correct: tot_correct[i],
                tot_accuracy: tot_accuracy[i],
                ties: ties[i],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_keep_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.parquet");
        let rows = vec![Pair {
            pair_id: 0,
            subset: "S".into(),
            qry: "<|image_1|> q".into(),
            qry_image_path: Some("S/0.png".into()),
            pos_text: "t".into(),
            pos_image_path: None,
            query_id: 0,
            target_id: 1,
            label: Some("red".into()),
            source_file: "S.parquet".into(),
            source_row: 0,
        }];
        let mut prov = Provenance::new("prompt", "0.1.0");
        prov.param("x", 1);
        write_records(&path, &rows, &prov).unwrap();
        let (back, p) = read_records::<Pair>(&path).unwrap();
        assert_eq!(back, rows);
        assert_eq!(p.unwrap(), prov);
    }

    #[test]
    fn wrong_artefact_is_refused_with_column_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.parquet");
        write_records(
            &path,
            &[EvalListEntry {
                pair_id: 0,
                rank: 0,
                item_id: 0,
            }],
            &Provenance::new("t", "0"),
        )
        .unwrap();
        let err = read_records::<Item>(&path).unwrap_err().to_string();
        assert!(
            err.contains("items.parquet") && err.contains("missing column `side`"),
            "{err}"
        );
    }

    #[test]
    fn score_records_round_trip_with_nulls_and_extra_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sugarcrepe_scores.parquet");
        let rows = vec![
            SugarCrepeScore {
                benchmark: "sugarcrepe".into(),
                subset: "add_obj".into(),
                n: 4,
                itt_correct: 3,
                itt_accuracy: 0.75,
                tot_correct: None,
                tot_accuracy: None,
                ties: 1,
            },
            SugarCrepeScore {
                benchmark: "sugarcrepe++".into(),
                subset: "swap_obj".into(),
                n: 2,
                itt_correct: 1,
                itt_accuracy: 0.5,
                tot_correct: Some(2),
                tot_accuracy: Some(1.0),
                ties: 0,
            },
        ];
        let mut sink = sink_with_keys::<SugarCrepeScore>(
            &path,
            &Provenance::new("t", "0"),
            &[("saha.embedding.model".into(), "m".into())],
        )
        .unwrap();
        write_rows(&mut sink, &rows).unwrap();
        sink.finish().unwrap();
        assert_eq!(read_records::<SugarCrepeScore>(&path).unwrap().0, rows);
        let table = ParquetTable::open(&path).unwrap();
        assert_eq!(table.key_values["saha.embedding.model"], "m");

        let path = dir.path().join("sets.parquet");
        let rows = vec![SugarCrepeExample {
            example: 0,
            benchmark: "sugarcrepe++".into(),
            subset: "swap_obj".into(),
            key: "0".into(),
            image_id: 0,
            pos_id: 1,
            pos2_id: Some(2),
            neg_id: 3,
            source_file: "swap_obj.json".into(),
        }];
        write_records(&path, &rows, &Provenance::new("t", "0")).unwrap();
        assert_eq!(read_records::<SugarCrepeExample>(&path).unwrap().0, rows);
    }
}

/// A `train_log.parquet` row.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainLogRow {
    pub step: u32,
    pub loss: f32,
    pub lr: f64,
    pub grad_norm: f64,
    pub pairs: u32,
    pub pairs_per_s: f64,
    pub seconds: f64,
}

impl Record for TrainLogRow {
    fn spec() -> ArtefactSpec {
        artefacts::train_log()
    }

    fn to_columns(rows: &[Self]) -> Vec<ArrayRef> {
        vec![
            u32s(rows.iter().map(|r| r.step)),
            f32s(rows.iter().map(|r| r.loss)),
            f64s(rows.iter().map(|r| r.lr)),
            f64s(rows.iter().map(|r| r.grad_norm)),
            u32s(rows.iter().map(|r| r.pairs)),
            f64s(rows.iter().map(|r| r.pairs_per_s)),
            f64s(rows.iter().map(|r| r.seconds)),
        ]
    }

    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()> {
        let step = primitive::<UInt32Type>(batch, "step", at)?;
        let loss = primitive::<Float32Type>(batch, "loss", at)?;
        let f = |name: &str| primitive::<Float64Type>(batch, name, at);
        let (lr, grad_norm, rate, seconds) = (f("lr")?, f("grad_norm")?, f("pairs_per_s")?, f("seconds")?);
        let pairs = primitive::<UInt32Type>(batch, "pairs", at)?;
        for i in 0..batch.num_rows() {
            out.push(TrainLogRow {
                step: step[i],
                loss: loss[i],
                lr: lr[i],
                grad_norm: grad_norm[i],
                pairs: pairs[i],
                pairs_per_s: rate[i],
                seconds: seconds[i],
            });
        }
        Ok(())
    }
}
