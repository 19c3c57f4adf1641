//! Mining strategies behind one interface: SaHa and the candidate-space baselines.

use std::collections::HashSet;

use clap::ValueEnum;
use saha_common::rng::Rng;
use serde::Serialize;

use crate::data::Subset;
use crate::sampler::{saha, Cluster, Lookup, SahaParams, SamplerOutput};
use crate::scores::OwnerScores;
use crate::vectors::{dot, Vectors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Self-aware hard negatives: hard by target, filtered in query space, disjoint clusters.
    Saha,
    /// Classic candidate-space mining: the top-K non-positive targets, no remap, no filter.
    Topk,
    /// Top-K after dropping candidates scoring above a fraction of the positive's score
    /// (NV-Retriever's positive-aware mining).
    PositiveAware,
    /// K candidates drawn at random from ranks [a, b) of the non-positive list
    /// (sentence-transformers / FlagEmbedding style).
    Range,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Saha => "saha",
            Strategy::Topk => "topk",
            Strategy::PositiveAware => "positive-aware",
            Strategy::Range => "range",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MiningParams {
    pub strategy: Strategy,
    pub top_k: usize,
    pub pool_mult: usize,
    pub positive_fraction: f32,
    pub range_start: usize,
    pub range_end: usize,
    pub seed: u64,
}

/// Mines one subset. `vectors` holds at least the subset's queries (and its targets for
/// `positive-aware`, which needs the positive's score).
pub fn mine(
    subset: &Subset,
    lookup: &Lookup,
    params: &MiningParams,
    classification: bool,
    vectors: &Vectors,
) -> SamplerOutput {
    let mut scores = OwnerScores::new(subset, lookup, vectors);
    if params.strategy == Strategy::Saha {
        let p = SahaParams {
            top_k: params.top_k,
            pool_mult: params.pool_mult,
            classification,
        };
        return saha(subset, lookup, &mut scores, &p);
    }
    let mut out = SamplerOutput::default();
    let nothing = HashSet::new();
    for (ri, row) in subset.rows.iter().enumerate() {
        let negatives: Vec<_> = lookup
            .candidates(row.query)
            .iter()
            .filter(|c| c.target_id != row.target)
            .collect();
        let chosen: Vec<_> = match params.strategy {
            Strategy::Topk => negatives.into_iter().take(params.top_k).collect(),
            Strategy::PositiveAware => {
                let v = vectors;
                let positive = dot(v.get(row.query).expect("checked"), v.get(row.target).expect("checked"));
                let ceiling = params.positive_fraction * positive;
                out.above_ceiling += negatives.iter().filter(|c| c.score > ceiling).count();
                negatives
                    .into_iter()
                    .filter(|c| c.score <= ceiling)
                    .take(params.top_k)
                    .collect()
            }
            Strategy::Range => {
                let end = params.range_end.min(negatives.len());
                let start = params.range_start.min(end);
                let mut pool: Vec<usize> = (start..end).collect();
                let mut rng = Rng::fork(params.seed, 0, row.pair_id as u64);
                let k = params.top_k.min(pool.len());
                for i in 0..k {
                    let j = i + rng.below(pool.len() - i);
                    pool.swap(i, j);
                }
                let mut picked = pool[..k].to_vec();
                picked.sort_unstable();
                picked.into_iter().map(|i| negatives[i]).collect()
            }
            Strategy::Saha => unreachable!(),
        };
        // Each negative target is stored with a pair that owns it: the owner most similar to
        // the anchor, and that owner's pair with exactly this positive.
        if !chosen.is_empty() {
            scores.ensure(ri, &nothing, &nothing);
        }
        let members: Vec<(usize, f32)> = chosen
            .iter()
            .filter_map(|c| {
                let (owner, similarity) = scores.best(row.query, c.target_id, &nothing)?;
                Some((subset.pair_of[&(owner, c.target_id)], similarity))
            })
            .collect();
        if !members.is_empty() {
            out.clusters.push(Cluster {
                phase: 1,
                anchor: ri,
                members,
            });
        }
    }
    out
}
