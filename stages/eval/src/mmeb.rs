//! MMEB-eval scoring: every query against its own candidate list, Precision@1 with the
//! reference's first-maximum tie rule, hit@5 and MRR per subset (averaged in `aggregate`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use arrow::datatypes::{UInt16Type, UInt32Type};
use rayon::prelude::*;
use saha_common::flags::EmbeddingsInput;
use saha_common::progress;
use saha_mining::vectors::{dot, Vectors};
use saha_schemas::columns::primitive;
use saha_schemas::embeddings::KEY_MODEL;
use saha_schemas::provenance::{LEFT_OUT_PAIRS, LEFT_OUT_REASON};
use saha_schemas::read::ParquetTable;
use saha_schemas::records::{read_records, KEY_EVAL_SET};
use saha_schemas::{EvalListEntry, EvalScore, InputHash, Item, Pair, Provenance, Record};
use sha2::{Digest, Sha256};

use crate::aggregate::{aggregate, Aggregate};
use crate::compare::{self, check_same_eval_set, Before, Comparison};
use crate::models::{check_expected, embeddings_model, listed, ExpectModel};
use crate::output::ReportFlags;
use crate::taskmap::{meta_task_order, Task, TaskMap, MMEB};
use crate::{output, report};

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct MmebArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    /// eval/pairs.parquet from saha-prompt on MMEB-eval data (one row per query).
    #[arg(long)]
    pub pairs: PathBuf,
    /// eval/items.parquet (raw texts and image paths: they fingerprint the eval set).
    #[arg(long)]
    pub items: PathBuf,
    /// eval/eval_lists.parquet: each query's candidate list, rank 0 = the ground truth.
    #[arg(long)]
    pub eval_lists: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub vectors: EmbeddingsInput,
    /// Output eval_scores.parquet (one row per subset).
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    #[command(flatten)]
    #[serde(skip)]
    pub output: ReportFlags,
    /// TOML or JSON file giving meta-task and IND/OOD of subsets outside the 36 MMEB ones (or
    /// overriding them): `[subsets] Name = { meta_task = "VQA", ind_ood = "IND" }`.
    #[arg(long)]
    pub task_map: Option<PathBuf>,
    /// An earlier eval_scores.parquet: print before/after deltas per subset and aggregate.
    /// Refused when it was computed on a different eval set.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub expect: ExpectModel,
    /// With --compare: refuse when the earlier scores come from a different model than these
    /// embeddings (e.g. when comparing prompt variants of one model).
    #[arg(long)]
    pub same_model: bool,
}

impl MmebArgs {
    pub fn report_path(&self) -> PathBuf {
        self.output.path(&self.out, "eval_report.md")
    }
}

/// Where the ground truth of one query landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// 1 + the number of candidates scoring strictly higher than the ground truth.
    pub rank: u32,
    /// Another candidate scored exactly as high as the ground truth.
    pub tied: bool,
}

impl Outcome {
    /// Precision@1 under the first-maximum rule: nothing scores strictly higher.
    pub fn correct(self) -> bool {
        self.rank == 1
    }
}

/// Ranks the ground truth (index 0) among `scores`. Equivalent to the position of candidate 0
/// after a stable sort by descending score, so `rank == 1` exactly when `np.argmax` returns 0.
/// A NaN score never counts as higher (it cannot occur: embeddings are checked to be finite).
pub fn rank_of_ground_truth(scores: &[f32]) -> Outcome {
    let s0 = scores[0];
    let mut higher = 0u32;
    let mut tied = false;
    for &s in &scores[1..] {
        if s > s0 {
            higher += 1;
        } else if s == s0 {
            tied = true;
        }
    }
    Outcome { rank: 1 + higher, tied }
}

/// The eval rows with their candidate lists, checked against each other.
pub struct EvalSet {
    pub pairs: Vec<Pair>,
    /// Per pair (same index as `pairs`), candidate item ids in rank order.
    pub lists: Vec<Vec<u32>>,
    /// item id -> (raw text, image path).
    pub items: HashMap<u32, (String, Option<String>)>,
}

/// Streams eval_lists.parquet into per-pair lists, checking ranks, pair ids and the ground truth.
fn read_lists(path: &Path, pairs: &[Pair], index_of: &HashMap<u32, usize>) -> Result<Vec<Vec<u32>>> {
    let table = ParquetTable::open_artefact(path, &EvalListEntry::spec())?;
    let mut ranked: Vec<Vec<(u16, u32)>> = vec![Vec::new(); pairs.len()];
    let mut batches = table.batches()?;
    while let Some((batch, at)) = batches.next_batch()? {
        let pair_id = primitive::<UInt32Type>(&batch, "pair_id", at)?;
        let rank = primitive::<UInt16Type>(&batch, "rank", at)?;
        let item = primitive::<UInt32Type>(&batch, "item_id", at)?;
        for i in 0..batch.num_rows() {
            let Some(&p) = index_of.get(&pair_id[i]) else {
                return Err(at
                    .bad_value(i, "pair_id", format!("pair_id {} is not in the pairs file", pair_id[i]))
                    .into());
            };
            ranked[p].push((rank[i], item[i]));
        }
    }
    let mut lists = Vec::with_capacity(pairs.len());
    let mut empty = Vec::new();
    for (p, mut list) in ranked.into_iter().enumerate() {
        let pair = &pairs[p];
        if list.is_empty() {
            empty.push(pair);
            lists.push(Vec::new());
            continue;
        }
        list.sort_unstable();
        for (expected, &(rank, _)) in list.iter().enumerate() {
            if rank as usize != expected {
                let what = if (rank as usize) < expected {
                    format!("rank {rank} appears twice")
                } else {
                    format!("rank {expected} is missing")
                };
                bail!(
                    "{}: pair_id {} (subset {}): {what}; candidate ranks must be 0..{} without gaps",
                    path.display(),
                    pair.pair_id,
                    pair.subset,
                    list.len()
                );
            }
        }
        if list[0].1 != pair.target_id {
            bail!(
                "{}: pair_id {} (subset {}): candidate 0 is item {} but the pairs file's target_id is {}; the ground \
                 truth must be candidate 0",
                path.display(),
                pair.pair_id,
                pair.subset,
                list[0].1,
                pair.target_id
            );
        }
        lists.push(list.into_iter().map(|(_, item)| item).collect());
    }
    if !empty.is_empty() {
        let shown: Vec<String> = empty
            .iter()
            .take(5)
            .map(|p| format!("{} ({})", p.pair_id, p.subset))
            .collect();
        bail!(
            "{}: {} eval row(s) have an empty candidate list: pair_id {}{}",
            path.display(),
            empty.len(),
            shown.join(", "),
            if empty.len() > 5 { ", …" } else { "" }
        );
    }
    Ok(lists)
}

impl EvalSet {
    pub fn load(pairs_path: &Path, items_path: &Path, lists_path: &Path) -> Result<Self> {
        let (pairs, _) = read_records::<Pair>(pairs_path)?;
        if pairs.is_empty() {
            bail!("{}: no eval rows", pairs_path.display());
        }
        let mut index_of = HashMap::with_capacity(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            if index_of.insert(p.pair_id, i).is_some() {
                bail!("{}: row {i}: pair_id {} appears twice", pairs_path.display(), p.pair_id);
            }
        }
        let lists = read_lists(lists_path, &pairs, &index_of)?;
        let (items, _) = read_records::<Item>(items_path)?;
        let items: HashMap<u32, (String, Option<String>)> =
            items.into_iter().map(|i| (i.item_id, (i.text, i.image_path))).collect();
        let mut unknown: Vec<String> = Vec::new();
        for (p, list) in pairs.iter().zip(&lists) {
            for &id in std::iter::once(&p.query_id).chain(list) {
                if !items.contains_key(&id) && unknown.len() < 5 {
                    unknown.push(format!("item_id {id} (pair_id {})", p.pair_id));
                }
            }
        }
        if !unknown.is_empty() {
            bail!(
                "{}: eval rows use items that are not in it: {}",
                items_path.display(),
                unknown.join(", ")
            );
        }
        Ok(Self { pairs, lists, items })
    }

    /// Subset names in order of first appearance, each with its pair indices.
    pub fn subsets(&self) -> Vec<(String, Vec<usize>)> {
        let mut order: Vec<(String, Vec<usize>)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.pairs.iter().enumerate() {
            let k = *at.entry(p.subset.as_str()).or_insert_with(|| {
                order.push((p.subset.clone(), Vec::new()));
                order.len() - 1
            });
            order[k].1.push(i);
        }
        order
    }

    /// SHA-256 (16 hex digits) of a subset's queries and candidate lists as raw text and image
    /// paths, in row order: independent of prompts and item numbering.
    pub fn fingerprint(&self, rows: &[usize]) -> String {
        let mut h = Sha256::new();
        let mut item = |tag: &[u8], id: u32| {
            let (text, image) = &self.items[&id];
            h.update(tag);
            h.update(text.as_bytes());
            h.update([0u8]);
            match image {
                Some(i) => h.update(i.as_bytes()),
                None => h.update([1u8]),
            }
            h.update([0u8]);
        };
        for &r in rows {
            item(b"q", self.pairs[r].query_id);
            for &c in &self.lists[r] {
                item(b"c", c);
            }
        }
        hex16(&h.finalize())
    }

    /// Leaves out the eval rows whose query or ground truth saha-embed skipped (`--on-bad-image skip`),
    /// and the skipped items from the other candidate lists: (rows, candidates) left out.
    fn without_skipped(&mut self, skipped: &BTreeSet<u32>) -> (usize, usize) {
        if skipped.is_empty() {
            return (0, 0);
        }
        let rows = std::mem::take(&mut self.pairs);
        let lists = std::mem::take(&mut self.lists);
        let (mut left_rows, mut left_candidates) = (0, 0);
        for (p, mut list) in rows.into_iter().zip(lists) {
            if skipped.contains(&p.query_id) || skipped.contains(&list[0]) {
                left_rows += 1;
                continue;
            }
            let before = list.len();
            list.retain(|c| !skipped.contains(c));
            left_candidates += before - list.len();
            self.pairs.push(p);
            self.lists.push(list);
        }
        (left_rows, left_candidates)
    }

    /// Items without an embedding, as an error naming them and the eval rows that use them.
    fn require_embeddings(&self, vectors: &Vectors, files: &[PathBuf]) -> Result<()> {
        let mut queries: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut candidates: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (p, list) in self.pairs.iter().zip(&self.lists) {
            if vectors.get(p.query_id).is_none() {
                queries.entry(p.query_id).or_default().push(p.pair_id);
            }
            for &c in list {
                if vectors.get(c).is_none() {
                    let v = candidates.entry(c).or_default();
                    if v.last() != Some(&p.pair_id) {
                        v.push(p.pair_id);
                    }
                }
            }
        }
        if queries.is_empty() && candidates.is_empty() {
            return Ok(());
        }
        let describe = |what: &str, m: &BTreeMap<u32, Vec<u32>>| -> Option<String> {
            if m.is_empty() {
                return None;
            }
            let shown: Vec<String> = m
                .iter()
                .take(5)
                .map(|(item, pairs)| {
                    let ids: Vec<String> = pairs.iter().take(3).map(u32::to_string).collect();
                    format!(
                        "item_id {item} (pair_id {}{})",
                        ids.join(", "),
                        if pairs.len() > 3 { ", …" } else { "" }
                    )
                })
                .collect();
            Some(format!(
                "{} {what} item(s): {}{}",
                m.len(),
                shown.join(", "),
                if m.len() > 5 { ", …" } else { "" }
            ))
        };
        let parts: Vec<String> = [describe("query", &queries), describe("candidate", &candidates)]
            .into_iter()
            .flatten()
            .collect();
        bail!("no embedding in {} for {}", listed(files), parts.join("; "))
    }
}

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of a whole score file: every subset's fingerprint, by subset name.
pub fn eval_set_fingerprint(rows: &[EvalScore]) -> String {
    let mut sorted: Vec<(&str, &str)> = rows.iter().map(|r| (r.subset.as_str(), r.eval_set.as_str())).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for (s, f) in sorted {
        h.update(s.as_bytes());
        h.update([0u8]);
        h.update(f.as_bytes());
        h.update(b"\n");
    }
    hex16(&h.finalize())
}

pub struct Summary {
    pub rows: Vec<EvalScore>,
    pub aggregates: Vec<Aggregate>,
    pub model: String,
    pub eval_set: String,
    pub queries: usize,
    pub report: String,
    pub report_path: PathBuf,
    pub warnings: Vec<String>,
    pub renormalised: usize,
}

pub fn run(args: &MmebArgs) -> Result<Summary> {
    let mut prov = output::provenance("mmeb", args);
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    let inputs = open(args, &mut prov)?;
    let outcomes = score(&inputs.set, &inputs.vectors);
    let (rows, mut warnings) = subset_scores(&inputs.set, &outcomes, &inputs.task_map);
    warnings.extend(inputs.notes.iter().cloned());
    warnings.extend(task_map_warnings(&rows, &inputs.task_map));
    let comparison = match &inputs.before {
        Some(b) => {
            check_same_eval_set(b, &rows)?;
            Some(Comparison::new(b, &rows))
        }
        None => None,
    };
    let aggregates = aggregate(&rows);
    let eval_set = eval_set_fingerprint(&rows);
    let queries = inputs.set.pairs.len();
    let report = report::mmeb_markdown(&report::MmebReport {
        rows: &rows,
        aggregates: &aggregates,
        model: &inputs.model,
        embeddings: &args.vectors.embeddings,
        eval_set: &eval_set,
        queries,
        mmeb_present: rows
            .iter()
            .filter(|r| MMEB.iter().any(|(name, _, _)| *name == r.subset))
            .count(),
        normalized: args.vectors.normalize(),
        comparison: comparison.as_ref(),
        notes: &warnings,
    });
    let summary = Summary {
        rows,
        aggregates,
        model: inputs.model,
        eval_set,
        queries,
        report,
        report_path: args.report_path(),
        warnings,
        renormalised: inputs.vectors.renormalised,
    };
    record_stats(&mut prov, &summary);
    write(args, &prov, &summary)?;
    Ok(summary)
}

/// What a run reads, checked against each other.
struct Inputs {
    task_map: TaskMap,
    model: String,
    before: Option<Before>,
    set: EvalSet,
    vectors: Vectors,
    /// What was left out for items skipped by saha-embed.
    notes: Vec<String>,
}

/// Reads and checks the inputs, recording their hashes in `prov`.
fn open(args: &MmebArgs, prov: &mut Provenance) -> Result<Inputs> {
    let task_map = match &args.task_map {
        Some(p) => TaskMap::load(p)?,
        None => TaskMap::default(),
    };
    let model = embeddings_model(&args.vectors.embeddings)?;
    check_expected(args.expect.expect_model.as_deref(), &model, &args.vectors.embeddings)?;
    let before = match &args.compare {
        Some(p) => Some(compare::open(
            p,
            args.expect.expect_model.as_deref(),
            args.same_model,
            &model,
        )?),
        None if args.same_model => bail!("--same-model needs --compare"),
        None => None,
    };
    let (mut set, vectors) = load(args, prov)?;
    let (rows, candidates) = set.without_skipped(&vectors.skipped);
    let mut notes = Vec::new();
    if !vectors.skipped.is_empty() {
        prov.stat(LEFT_OUT_PAIRS, rows);
        prov.stat("left_out_candidates", candidates);
        prov.stat("left_out_reason", LEFT_OUT_REASON);
        notes.push(format!(
            "{rows} eval rows left out and {candidates} candidates taken from the others' lists: {LEFT_OUT_REASON}"
        ));
    }
    if set.pairs.is_empty() {
        bail!(
            "{}: every eval row was left out ({LEFT_OUT_REASON})",
            args.pairs.display()
        );
    }
    set.require_embeddings(&vectors, &args.vectors.embeddings)?;
    Ok(Inputs {
        task_map,
        model,
        before,
        set,
        vectors,
        notes,
    })
}

/// The eval set and the embeddings; the inputs are hashed on a second thread while they are decoded.
fn load(args: &MmebArgs, prov: &mut Provenance) -> Result<(EvalSet, Vectors)> {
    let mut files: Vec<&PathBuf> = vec![&args.pairs, &args.items, &args.eval_lists];
    files.extend(&args.vectors.embeddings);
    files.extend(&args.task_map);
    // Earlier scores to compare with may come from any run; their own check is by content.
    let of_this_run = files.len();
    files.extend(&args.compare);
    let (hashes, loaded) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| files.iter().map(|f| InputHash::of(f)).collect::<Result<Vec<_>, _>>());
        let loaded = EvalSet::load(&args.pairs, &args.items, &args.eval_lists).and_then(|set| {
            let vectors = Vectors::load(&args.vectors.embeddings, args.vectors.normalize())?;
            Ok((set, vectors))
        });
        (hashing.join().expect("hashing thread"), loaded)
    });
    // Files of another run are named as such before any disagreement between their contents.
    for (i, (file, hash)) in files.iter().zip(hashes?).enumerate() {
        if i < of_this_run {
            prov.add_input(file, hash)?;
        } else {
            prov.inputs.push(hash);
        }
    }
    loaded
}

/// Every query against its own candidate list.
fn score(set: &EvalSet, vectors: &Vectors) -> Vec<Outcome> {
    let bar = progress::bar(set.pairs.len() as u64, "score");
    let outcomes = set
        .pairs
        .par_iter()
        .zip(&set.lists)
        .map(|(p, list)| {
            let q = vectors.get(p.query_id).expect("checked");
            let scores: Vec<f32> = list.iter().map(|&c| dot(q, vectors.get(c).expect("checked"))).collect();
            bar.inc(1);
            rank_of_ground_truth(&scores)
        })
        .collect();
    bar.finish_and_clear();
    outcomes
}

/// One row per subset, in report order (meta-task, then the built-in order, then first
/// appearance), and a warning for each subset whose candidate lists all have one entry.
fn subset_scores(set: &EvalSet, outcomes: &[Outcome], task_map: &TaskMap) -> (Vec<EvalScore>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut rows: Vec<(EvalScore, (usize, String), usize, usize)> = Vec::new();
    for (first_seen, (subset, idx)) in set.subsets().into_iter().enumerate() {
        let task = task_map.lookup(&subset);
        let row = subset_score(set, outcomes, subset, &idx, &task);
        if row.max_candidates == 1 {
            warnings.push(format!(
                "subset {}: every candidate list has one entry, so every query is trivially correct",
                row.subset
            ));
        }
        rows.push((
            row,
            meta_task_order(&task.meta_task),
            task.builtin_index.unwrap_or(usize::MAX),
            first_seen,
        ));
    }
    rows.sort_by(|a, b| (&a.1, a.2, a.3).cmp(&(&b.1, b.2, b.3)));
    (rows.into_iter().map(|r| r.0).collect(), warnings)
}

/// The scores of one subset, whose queries are at `idx`.
fn subset_score(set: &EvalSet, outcomes: &[Outcome], subset: String, idx: &[usize], task: &Task) -> EvalScore {
    let n = idx.len();
    let correct = idx.iter().filter(|&&i| outcomes[i].correct()).count();
    let hits5 = idx.iter().filter(|&&i| outcomes[i].rank <= 5).count();
    let ties = idx
        .iter()
        .filter(|&&i| outcomes[i].correct() && outcomes[i].tied)
        .count();
    let mrr = idx.iter().map(|&i| 1.0 / outcomes[i].rank as f64).sum::<f64>() / n as f64;
    let lens = idx.iter().map(|&i| set.lists[i].len());
    let (min_c, max_c) = (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0));
    EvalScore {
        subset,
        meta_task: task.meta_task.clone(),
        ind_ood: task.split.as_str().to_string(),
        n: n as u32,
        correct: correct as u32,
        p_at_1: correct as f64 / n as f64,
        hits_at_5: hits5 as u32,
        hit_at_5: hits5 as f64 / n as f64,
        mrr,
        ties_won: ties as u32,
        min_candidates: min_c as u32,
        max_candidates: max_c as u32,
        eval_set: set.fingerprint(idx),
    }
}

/// Subsets the task map does not place, and task map entries for subsets not in the eval set.
fn task_map_warnings(rows: &[EvalScore], task_map: &TaskMap) -> Vec<String> {
    let mut warnings = Vec::new();
    let unmapped: Vec<&str> = rows
        .iter()
        .filter(|r| r.meta_task == crate::taskmap::UNKNOWN)
        .map(|r| r.subset.as_str())
        .collect();
    if !unmapped.is_empty() {
        warnings.push(format!(
            "not MMEB subsets and not in a --task-map: {} (meta-task `unknown`, in neither IND nor OOD)",
            unmapped.join(", ")
        ));
    }
    let unused: Vec<&str> = task_map
        .custom_subsets()
        .filter(|s| !rows.iter().any(|r| r.subset == *s))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "task map entries for subsets not in the eval set: {}",
            unused.join(", ")
        ));
    }
    warnings
}

fn record_stats(prov: &mut Provenance, s: &Summary) {
    prov.stat("queries", s.queries);
    prov.stat("subsets", s.rows.len());
    prov.stat("model", &s.model);
    prov.stat("eval_set", &s.eval_set);
    prov.stat("renormalised_vectors", s.renormalised);
    prov.stat("ties_won", s.rows.iter().map(|r| r.ties_won as u64).sum::<u64>());
    let agg: BTreeMap<&str, serde_json::Value> = s
        .aggregates
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                serde_json::json!({"subsets": a.subsets, "p_at_1": a.p_at_1, "hit_at_5": a.hit_at_5, "mrr": a.mrr}),
            )
        })
        .collect();
    prov.stat("aggregates", agg);
}

/// eval_scores.parquet, its footer naming the model and the eval set, and the report.
fn write(args: &MmebArgs, prov: &Provenance, s: &Summary) -> Result<()> {
    let keys = [
        (KEY_MODEL.to_string(), s.model.clone()),
        (KEY_EVAL_SET.to_string(), s.eval_set.clone()),
    ];
    output::scores_and_report(&args.out, prov, &keys, &s.rows, &s.report_path, &s.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_maximum_rule() {
        // All equal: the ground truth wins, as np.argmax picks index 0.
        let o = rank_of_ground_truth(&[0.5, 0.5, 0.5]);
        assert_eq!(o, Outcome { rank: 1, tied: true });
        assert!(o.correct());
        // One strictly higher: rank 2, whatever ties follow.
        assert_eq!(rank_of_ground_truth(&[0.3, 0.9, 0.3, 0.1]).rank, 2);
        assert_eq!(rank_of_ground_truth(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]).rank, 7);
        assert_eq!(rank_of_ground_truth(&[0.4]), Outcome { rank: 1, tied: false });
    }
}
