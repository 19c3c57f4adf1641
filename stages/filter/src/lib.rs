//! `saha-filter`: replays the reference's greedy SaHa cluster construction (or a baseline
//! miner) and audits false negatives.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use saha_common::progress;
use saha_mining::audit::stats;
use saha_mining::data::group_pairs;
use saha_mining::depth::MiningDepth;
use saha_mining::sampler::{Lookup, REFERENCE_CLASSIFICATION};
use saha_mining::strategies::{mine, MiningParams, Strategy};
use saha_mining::vectors::Vectors;
use saha_schemas::provenance::RETRIEVAL_DEPTH;
use saha_schemas::records::{read_records, sink_for, write_rows};
use saha_schemas::write::finish_all;
use saha_schemas::{Candidate, ClusterMember, MiningStats, Owner, Pair, Provenance};

pub const STAGE: &str = "saha-filter";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Build training clusters from candidates.parquet and owners.parquet.\n\n\
--strategy saha (default) replays the reference sampler exactly: dataset order; per anchor the first \
top_k * pool_mult candidates whose owners are still unused (the most anchor-similar unused owner of each); \
outside classification subsets those owners sorted by query similarity ascending and the first top_k kept \
(the false-negative filter); then the leftover pass with twice the budget, where queries used in the first \
pass may serve again once.\n\nBaselines for comparison: topk, positive-aware (NV-Retriever) and range \
(sentence-transformers / FlagEmbedding). When pairs carry labels, mining_stats.parquet reports the share of \
negatives whose label equals the anchor's: the false-negative rate."
)]
pub struct Args {
    #[arg(long)]
    pub pairs: PathBuf,
    #[arg(long)]
    pub candidates: PathBuf,
    #[arg(long)]
    pub owners: PathBuf,
    /// embeddings.parquet (needed by --strategy positive-aware only).
    #[arg(long)]
    pub embeddings: Vec<PathBuf>,
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
    let (pairs, _) = read_records::<Pair>(&args.pairs)?;
    let (candidates, candidates_prov) = read_records::<Candidate>(&args.candidates)?;
    let (owners, _) = read_records::<Owner>(&args.owners)?;
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
    if args.strategy == Strategy::Range && args.range_start >= args.range_end {
        bail!(
            "--range-start {} must be below --range-end {}",
            args.range_start,
            args.range_end
        );
    }
    let vectors = match args.strategy {
        Strategy::PositiveAware if args.embeddings.is_empty() => bail!("--strategy positive-aware needs --embeddings"),
        Strategy::PositiveAware => Some(Vectors::load(&args.embeddings, true)?),
        _ => None,
    };
    let subsets = group_pairs(&pairs);
    let classification: Vec<String> = args
        .classification_subsets
        .clone()
        .unwrap_or_else(|| REFERENCE_CLASSIFICATION.iter().map(|s| s.to_string()).collect())
        .into_iter()
        .chain(args.also_classification.iter().cloned())
        .collect();
    let lookup = Lookup::new(&candidates, &owners, pool);
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
    for s in &subsets {
        if let Some(v) = &vectors {
            v.require(
                s.rows.iter().flat_map(|r| [r.query, r.target]),
                &format!("subset {}", s.name),
            )?;
        }
        let out = mine(s, &lookup, &params, classification.contains(&s.name), vectors.as_ref());
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
        all_stats.push(stats(args.strategy.name(), s, &out));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    prov.param("classification_subsets", &classification);
    prov.set(&RETRIEVAL_DEPTH, pool);
    for p in [&args.pairs, &args.candidates, &args.owners] {
        prov.input(p)?;
    }
    for e in &args.embeddings {
        prov.input(e)?;
    }
    let mut cluster_sink = sink_for::<ClusterMember>(&args.clusters, &prov)?;
    write_rows(&mut cluster_sink, &members)?;
    let mut stats_sink = sink_for::<MiningStats>(&args.stats, &prov)?;
    write_rows(&mut stats_sink, &all_stats)?;
    finish_all(vec![cluster_sink, stats_sink])?;
    Ok(Summary { stats: all_stats })
}
