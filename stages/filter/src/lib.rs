//! `saha-filter`: replays the reference's greedy SaHa cluster construction (or a baseline
//! miner) and audits false negatives.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use saha_common::progress;
use saha_mining::audit::stats;
use saha_mining::data::Subset;
use saha_mining::depth::MiningDepth;
use saha_mining::remap::owner_lists;
use saha_mining::sampler::{Lookup, SamplerOutput, REFERENCE_CLASSIFICATION};
use saha_mining::strategies::{mine, MiningParams, Strategy};
use saha_mining::EmbeddedPairs;
use saha_schemas::provenance::RETRIEVAL_DEPTH;
use saha_schemas::records::{read_records, sink_for, write_rows};
use saha_schemas::write::finish_all;
use saha_schemas::{Candidate, ClusterMember, MiningStats, Owner, Provenance};

pub const STAGE: &str = "saha-filter";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Build training clusters from candidates.parquet, owners.parquet and the query embeddings.\n\n\
--strategy saha (default) replays the reference sampler exactly: dataset order; per anchor the first \
top_k * pool_mult candidates that still have an unused owner (the most anchor-similar unused owner of each, out \
of all the target's owners, scored as the walk reaches them); \
outside classification subsets those owners sorted by query similarity ascending and the first top_k kept \
(the false-negative filter); then the leftover pass with twice the budget, where queries used in the first \
pass may serve again once.\n\nBaselines for comparison: topk, positive-aware (NV-Retriever) and range \
(sentence-transformers / FlagEmbedding). When pairs carry labels, mining_stats.parquet reports the share of \
negatives whose label equals the anchor's: the false-negative rate."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    #[command(flatten)]
    pub input: EmbeddedPairs,
    /// candidates.parquet from saha-retrieve.
    #[arg(long)]
    pub candidates: PathBuf,
    /// owners.parquet from saha-remap.
    #[arg(long)]
    pub owners: PathBuf,
    /// Output clusters.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub clusters: PathBuf,
    /// Output mining_stats.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub stats: PathBuf,
    #[arg(long, value_enum, default_value_t = Strategy::Saha)]
    pub strategy: Strategy,
    #[command(flatten)]
    #[serde(flatten)]
    pub depth: MiningDepth,
    /// Classification subsets (no query-space re-sort), comma-separated; default: the reference's list.
    #[arg(long, value_delimiter = ',')]
    pub classification_subsets: Option<Vec<String>>,
    /// More classification subsets on top of the list above.
    #[arg(long, value_delimiter = ',')]
    pub also_classification: Vec<String>,
    /// positive-aware: drop candidates scoring above this fraction of the positive's score.
    #[arg(long, default_value_t = 0.95)]
    pub positive_fraction: f32,
    /// range: first rank (of the non-positive list) to sample from.
    #[arg(long, default_value_t = 10)]
    pub range_start: usize,
    /// range: rank to stop before.
    #[arg(long, default_value_t = 50)]
    pub range_end: usize,
    /// Seed of the range strategy.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub struct Summary {
    pub stats: Vec<MiningStats>,
    /// What the user should know about the result (a clipped range, subsets with no cluster).
    pub notes: Vec<String>,
}

/// The retrieval depth candidates.parquet was made with: recorded by saha-retrieve, or the
/// deepest rank present for files made elsewhere.
fn retrieved_depth(provenance: Option<&Provenance>, candidates: &[Candidate]) -> usize {
    match provenance.and_then(|p| p.get(&RETRIEVAL_DEPTH)) {
        Some(depth) => depth,
        None => candidates.iter().map(|c| c.rank as usize + 1).max().unwrap_or(0),
    }
}

pub fn run(args: &Args) -> Result<Summary> {
    let (top_k, pool_mult) = (args.depth.top_k, args.depth.pool_mult);
    let needed = args.depth.retrieval_depth()?;
    if args.strategy == Strategy::Range && args.range_start >= args.range_end {
        bail!(
            "--range-start {} must be below --range-end {}",
            args.range_start,
            args.range_end
        );
    }
    if !(args.positive_fraction > 0.0 && args.positive_fraction <= 1.0) {
        bail!("--positive-fraction {} must be in (0, 1]", args.positive_fraction);
    }
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    prov.param("args", args);
    let (subsets, vectors, left_out) = args.input.load(&mut prov)?;
    let (candidates, candidates_prov) = read_records::<Candidate>(&args.candidates)?;
    prov.input(&args.candidates)?;
    let (owners, _) = read_records::<Owner>(&args.owners)?;
    prov.input(&args.owners)?;
    let depth = retrieved_depth(candidates_prov.as_ref(), &candidates);
    let pool = if args.strategy == Strategy::Saha { needed } else { depth };
    if depth < pool {
        bail!(
            "{} was retrieved {depth} deep, but --top-k {top_k} --pool-mult {pool_mult} needs {pool}: rerun saha-retrieve with --pool {pool}",
            args.candidates.display(),
        );
    }
    if top_k > pool {
        bail!("--top-k {top_k} is larger than the candidate pool ({pool})");
    }
    if args.strategy == Strategy::Range && args.range_start >= depth {
        bail!(
            "--range-start {} is at or beyond the depth of {} ({depth} candidates per query): nothing to draw from; \
rerun saha-retrieve with a larger --pool or lower --range-start",
            args.range_start,
            args.candidates.display(),
        );
    }
    let mut notes: Vec<String> = left_out.note().into_iter().collect();
    if args.strategy == Strategy::Range && args.range_end > depth {
        notes.push(format!(
            "--range-end {} is deeper than {} ({depth} candidates per query): drawing from ranks [{}, {depth}) \
(recorded as range_end_used)",
            args.range_end,
            args.candidates.display(),
            args.range_start,
        ));
        prov.stat("range_end_used", depth);
    }
    // Checked against the whole depth, as saha-remap made the owner lists; mined within `pool`.
    let mut lookup = Lookup::new(&candidates, usize::MAX).map_err(|q| {
        anyhow!(
            "{}: candidates of query {q} are not contiguous",
            args.candidates.display()
        )
    })?;
    check_inputs(args, &subsets, &lookup, &owners)?;
    lookup.pool = pool;
    let classification: Vec<String> = args
        .classification_subsets
        .clone()
        .unwrap_or_else(|| REFERENCE_CLASSIFICATION.iter().map(|s| s.to_string()).collect())
        .into_iter()
        .chain(args.also_classification.iter().cloned())
        .collect();
    let params = MiningParams {
        strategy: args.strategy,
        top_k,
        pool_mult,
        positive_fraction: args.positive_fraction,
        range_start: args.range_start,
        range_end: args.range_end,
        seed: args.seed,
    };
    let bar = progress::bar(subsets.len() as u64, args.strategy.name());
    let mut members = Vec::new();
    let mut next_cluster = 0u32;
    let mut all_stats = Vec::new();
    let mut empty_subsets = Vec::new();
    for s in &subsets {
        vectors.require(s.queries.iter().copied(), &format!("subset {} query", s.name))?;
        if args.strategy == Strategy::PositiveAware {
            vectors.require(s.targets.iter().copied(), &format!("subset {} target", s.name))?;
        }
        let out = mine(s, &lookup, &params, classification.contains(&s.name), &vectors);
        for c in &out.clusters {
            let cluster_id = next_cluster;
            next_cluster += 1;
            let member = |row: usize, position: usize, sim: f32| {
                let r = &s.rows[row];
                ClusterMember {
                    cluster_id,
                    position: position as u16,
                    pair_id: r.pair_id,
                    query_id: r.query,
                    target_id: r.target,
                    phase: c.phase,
                    subset: s.name.clone(),
                    anchor_similarity: sim,
                }
            };
            members.push(member(c.anchor, 0, 1.0));
            members.extend(
                c.members
                    .iter()
                    .enumerate()
                    .map(|(i, &(row, sim))| member(row, i + 1, sim)),
            );
        }
        if let Some(why) = no_clusters_reason(args, s, &out) {
            notes.push(format!(
                "{}: subset {}: no cluster: {why}",
                args.strategy.name(),
                s.name
            ));
            empty_subsets.push(format!("{}: {why}", s.name));
        }
        all_stats.push(stats(args.strategy.name(), s, &out));
        bar.inc(1);
    }
    bar.finish_and_clear();
    prov.param("classification_subsets", &classification);
    if !empty_subsets.is_empty() {
        prov.stat("empty_subsets", &empty_subsets);
    }
    prov.set(&RETRIEVAL_DEPTH, pool);
    let mut cluster_sink = sink_for::<ClusterMember>(&args.clusters, &prov)?;
    write_rows(&mut cluster_sink, &members)?;
    let mut stats_sink = sink_for::<MiningStats>(&args.stats, &prov)?;
    write_rows(&mut stats_sink, &all_stats)?;
    finish_all(vec![cluster_sink, stats_sink])?;
    Ok(Summary {
        stats: all_stats,
        notes,
    })
}

/// Why a subset with pairs gave no cluster, when that is not plain to see.
fn no_clusters_reason(args: &Args, s: &Subset, out: &SamplerOutput) -> Option<String> {
    if !out.clusters.is_empty() || s.rows.is_empty() {
        return None;
    }
    Some(match args.strategy {
        _ if s.targets.len() < 2 => "it has a single target, so no query has a negative".to_string(),
        Strategy::PositiveAware => format!(
            "every one of the {} non-positive candidates scored above --positive-fraction {} x its positive's score \
(the embeddings rank negatives close to the positives; lower the fraction to keep some)",
            out.above_ceiling, args.positive_fraction
        ),
        Strategy::Range => format!(
            "no query has a non-positive candidate at ranks [{}, {})",
            args.range_start, args.range_end
        ),
        _ => "no query found a candidate with an unused owner".to_string(),
    })
}

/// Candidates and owner lists must be the ones made from these pairs.
fn check_inputs(args: &Args, subsets: &[Subset], lookup: &Lookup, owners: &[Owner]) -> Result<()> {
    let pairs = args.input.pairs.display();
    let mut expected = Vec::with_capacity(owners.len());
    for s in subsets {
        lookup.check_targets(s, &args.candidates, &args.input.pairs)?;
        expected.extend(owner_lists(s, lookup).0);
    }
    if let Some(row) = (0..owners.len().max(expected.len())).find(|&i| owners.get(i) != expected.get(i)) {
        let describe = |o: Option<&Owner>| match o {
            Some(o) => format!("target {} owner {}", o.target_id, o.owner_id),
            None => "no row".into(),
        };
        bail!(
            "{} row {row}: {}, but {pairs} and {} give {}: owners.parquet comes from another run (rerun saha-remap)",
            args.owners.display(),
            describe(owners.get(row)),
            args.candidates.display(),
            describe(expected.get(row)),
        );
    }
    Ok(())
}
