//! Finding and loading a run's artefacts, each optional, and recording what was read for the footer.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::provenance::LEFT_OUT_PAIRS;
use saha_schemas::records::read_records;
use saha_schemas::{ClusterMember, EvalScore, InputHash, MiningStats, ParquetTable, Record, TrainLogRow};

use crate::stats::Vectors;
use crate::Args;

/// The files the report read, for the footer.
pub struct Inputs<'a> {
    run: &'a Path,
    pub used: Vec<(String, Option<String>, InputHash)>,
    pub missing: Vec<String>,
}

impl<'a> Inputs<'a> {
    /// A path as the page shows it: relative to the run folder when inside it.
    pub fn name(&self, path: &Path) -> String {
        path.strip_prefix(self.run).unwrap_or(path).display().to_string()
    }

    /// `Some(path)` when it exists (recorded with its hash); otherwise noted as missing.
    fn optional(&mut self, path: PathBuf) -> Result<Option<PathBuf>> {
        if !path.exists() {
            self.missing.push(self.name(&path));
            return Ok(None);
        }
        let mut hash = InputHash::of(&path)?;
        hash.path = self.name(&path);
        let made_by = ParquetTable::open(&path)
            .ok()
            .and_then(|t| t.provenance())
            .map(|p| format!("{} {}", p.stage, p.version));
        self.used.push((hash.path.clone(), made_by, hash));
        Ok(Some(path))
    }

    fn records<R: Record>(&mut self, path: PathBuf) -> Result<Option<Vec<R>>> {
        match self.optional(path)? {
            None => Ok(None),
            Some(p) => Ok(Some(read_records::<R>(&p)?.0)),
        }
    }
}

/// One miner's artefacts.
pub struct Miner {
    pub name: String,
    pub clusters_path: String,
    pub clusters: Option<Vec<ClusterMember>>,
    pub stats: Option<Vec<MiningStats>>,
    /// Pairs the miner left out because saha-embed skipped their query or positive (its footer).
    pub left_out_pairs: u64,
}

/// What the sections draw from; `None` where the run has no such artefact.
pub struct Artefacts {
    pub miners: Vec<Miner>,
    /// Only read when some miner has clusters.
    pub vectors: Option<Vectors>,
    /// The embeddings file as the page names it.
    pub embeddings_name: String,
    pub train: Option<Vec<TrainLogRow>>,
    /// The P@1 section's series, in order.
    pub scores: Vec<Scores>,
}

/// One series of evaluation scores.
pub struct Scores {
    pub label: String,
    /// The file as the page names it.
    pub file: String,
    /// What the page says when the file is missing.
    pub missing: String,
    pub rows: Option<Vec<EvalScore>>,
}

/// `--scores` as (label, path, notice when missing); without it, before and after training.
fn score_specs(args: &Args) -> Result<Vec<(String, PathBuf, String)>> {
    if args.scores.is_empty() {
        return Ok(vec![
            (
                "before".into(),
                args.run.join("eval/eval_scores.parquet"),
                "No scores before training (eval/eval_scores.parquet is missing): make eval.".into(),
            ),
            (
                "after".into(),
                args.run.join("eval/tuned/eval_scores.parquet"),
                "No scores after training yet (eval/tuned/eval_scores.parquet is missing): make train eval-tuned."
                    .into(),
            ),
        ]);
    }
    args.scores
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((label, file)) if !label.is_empty() && !file.is_empty() => Ok((
                label.to_string(),
                args.run.join(file),
                format!("No {label} scores ({file} is missing)."),
            )),
            _ => bail!("--scores {spec}: expected LABEL=FILE"),
        })
        .collect()
}

/// Reads every artefact of `args.run` that is there.
pub fn open(args: &Args) -> Result<(Inputs<'_>, Artefacts)> {
    if !args.run.is_dir() {
        bail!("--run {}: not a folder", args.run.display());
    }
    let mut inputs = Inputs {
        run: &args.run,
        used: Vec::new(),
        missing: Vec::new(),
    };
    let miners = miners(args, &mut inputs)?;
    let embeddings_path = args
        .embeddings
        .clone()
        .unwrap_or_else(|| args.run.join("embeddings.parquet"));
    let embeddings_name = inputs.name(&embeddings_path);
    let vectors = if miners.iter().any(|m| m.clusters.is_some()) {
        match inputs.optional(embeddings_path)? {
            Some(p) => Some(Vectors::new(Embeddings::read(&p)?)),
            None => None,
        }
    } else {
        None
    };
    let train = inputs.records::<TrainLogRow>(args.run.join("train/train_log.parquet"))?;
    let mut scores = Vec::new();
    for (label, path, missing) in score_specs(args)? {
        scores.push(Scores {
            label,
            file: inputs.name(&path),
            missing,
            rows: inputs.records::<EvalScore>(path)?,
        });
    }
    let artefacts = Artefacts {
        miners,
        vectors,
        embeddings_name,
        train,
        scores,
    };
    Ok((inputs, artefacts))
}

/// SaHa at the run's root, then the baselines under mining/<name>/.
fn miners(args: &Args, inputs: &mut Inputs) -> Result<Vec<Miner>> {
    let baselines = if args.baselines.is_empty() {
        baseline_folders(&args.run.join("mining"))
    } else {
        args.baselines.clone()
    };
    let mut miners = Vec::new();
    for (name, dir) in std::iter::once(("saha".to_string(), args.run.clone()))
        .chain(baselines.iter().map(|b| (b.clone(), args.run.join("mining").join(b))))
    {
        let clusters_path = dir.join("clusters.parquet");
        let stats_path = dir.join("mining_stats.parquet");
        let left_out_pairs = ParquetTable::open(&stats_path)
            .ok()
            .and_then(|t| t.provenance())
            .and_then(|p| p.stats.get(LEFT_OUT_PAIRS).and_then(|v| v.as_u64()))
            .unwrap_or(0);
        miners.push(Miner {
            name,
            clusters_path: inputs.name(&clusters_path),
            clusters: inputs.records::<ClusterMember>(clusters_path)?,
            stats: inputs.records::<MiningStats>(stats_path)?,
            left_out_pairs,
        });
    }
    Ok(miners)
}

/// The folders under `mining`, sorted; none when it does not exist.
fn baseline_folders(mining: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(mining)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}
