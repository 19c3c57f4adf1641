//! Comparing with an earlier score file (--compare): reading it, refusing a different eval set,
//! and pairing its scores with these.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use saha_schemas::embeddings::KEY_MODEL;
use saha_schemas::read::ParquetTable;
use saha_schemas::records::read_records;
use saha_schemas::EvalScore;

use crate::aggregate::{aggregate, Aggregate};
use crate::models::{shown, MODEL_MISMATCH};

/// An earlier score file to compare with.
pub struct Before {
    pub path: PathBuf,
    pub model: String,
    pub rows: Vec<EvalScore>,
}

/// The --compare file; refused when it comes from another model than `expect_model` or, with
/// `same_model`, than these embeddings' `model`.
pub fn open(path: &Path, expect_model: Option<&str>, same_model: bool, model: &str) -> Result<Before> {
    let b = read_before(path)?;
    if let Some(expected) = expect_model {
        if b.model != expected {
            bail!(
                "{MODEL_MISMATCH}: {} was computed with `{}`, --expect-model is `{expected}`",
                path.display(),
                shown(&b.model)
            );
        }
    }
    if same_model && b.model != model {
        bail!(
            "{MODEL_MISMATCH}: {} was computed with `{}`, these embeddings are from `{}` (--same-model)",
            path.display(),
            shown(&b.model),
            shown(model)
        );
    }
    Ok(b)
}

fn read_before(path: &Path) -> Result<Before> {
    let (rows, _) = read_records::<EvalScore>(path).with_context(|| format!("--compare {}", path.display()))?;
    let model = ParquetTable::open(path)?
        .key_values
        .get(KEY_MODEL)
        .cloned()
        .unwrap_or_default();
    Ok(Before {
        path: path.to_path_buf(),
        model,
        rows,
    })
}

/// Refuses a comparison across eval sets, naming the subsets that differ.
pub fn check_same_eval_set(before: &Before, rows: &[EvalScore]) -> Result<()> {
    let old: BTreeMap<&str, &str> = before
        .rows
        .iter()
        .map(|r| (r.subset.as_str(), r.eval_set.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = rows.iter().map(|r| (r.subset.as_str(), r.eval_set.as_str())).collect();
    let mut problems = Vec::new();
    let only_new: Vec<&str> = new.keys().filter(|s| !old.contains_key(*s)).copied().collect();
    let only_old: Vec<&str> = old.keys().filter(|s| !new.contains_key(*s)).copied().collect();
    let changed: Vec<&str> = new
        .iter()
        .filter(|(s, f)| old.get(*s).is_some_and(|o| o != *f))
        .map(|(s, _)| *s)
        .collect();
    if !changed.is_empty() {
        problems.push(format!("different rows or candidates in {}", changed.join(", ")));
    }
    if !only_new.is_empty() {
        problems.push(format!("subsets only in this run: {}", only_new.join(", ")));
    }
    if !only_old.is_empty() {
        problems.push(format!(
            "subsets only in {}: {}",
            before.path.display(),
            only_old.join(", ")
        ));
    }
    if !problems.is_empty() {
        bail!(
            "cannot compare with {}: it was computed on a different eval set ({})",
            before.path.display(),
            problems.join("; ")
        );
    }
    Ok(())
}

/// Before/after scores of one eval set.
pub struct Comparison {
    pub path: PathBuf,
    pub model: String,
    /// (subset or aggregate name, before, after) for P@1, hit@5 and MRR.
    pub subsets: Vec<(String, [f64; 3], [f64; 3])>,
    pub aggregates: Vec<(String, [f64; 3], [f64; 3])>,
}

impl Comparison {
    /// Pairs the earlier rows with these; the earlier aggregates are recomputed with this run's
    /// meta-task and IND/OOD assignment, so both sides average the same subsets.
    pub fn new(before: &Before, rows: &[EvalScore]) -> Self {
        let old: HashMap<&str, &EvalScore> = before.rows.iter().map(|r| (r.subset.as_str(), r)).collect();
        let relabelled: Vec<EvalScore> = rows
            .iter()
            .map(|r| EvalScore {
                meta_task: r.meta_task.clone(),
                ind_ood: r.ind_ood.clone(),
                ..old[r.subset.as_str()].clone()
            })
            .collect();
        let m = |r: &EvalScore| [r.p_at_1, r.hit_at_5, r.mrr];
        let a = |r: &Aggregate| [r.p_at_1, r.hit_at_5, r.mrr];
        let subsets = rows
            .iter()
            .zip(&relabelled)
            .map(|(new, old)| (new.subset.clone(), m(old), m(new)))
            .collect();
        let aggregates = aggregate(rows)
            .iter()
            .zip(aggregate(&relabelled).iter())
            .map(|(new, old)| (new.name.clone(), a(old), a(new)))
            .collect();
        Self {
            path: before.path.clone(),
            model: before.model.clone(),
            subsets,
            aggregates,
        }
    }
}
