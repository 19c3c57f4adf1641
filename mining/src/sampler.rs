//! The reference's greedy SaHa construction (`couple_samples`, called twice), replayed exactly
//! on precomputed candidates, with every owner of every candidate considered.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use saha_schemas::Candidate;

use crate::data::Subset;
use crate::scores::OwnerScores;

/// The reference's classification subsets (`except_list`): no query-space re-sort there.
pub const REFERENCE_CLASSIFICATION: &[&str] = &[
    "ImageNet_1K",
    "Place365",
    "N24News",
    "HatefulMemes",
    "VOC2007",
    "SUN397",
    "ImageNet-A",
    "ImageNet-R",
    "ObjectNet",
    "Country211",
];

/// Candidates per query, as saha-retrieve writes them (grouped by query, in rank order).
pub struct Lookup<'a> {
    candidates: HashMap<u32, &'a [Candidate]>,
    /// Candidates considered per query (the reference's retrieval depth `pool_size`).
    pub pool: usize,
}

impl<'a> Lookup<'a> {
    /// Fails with the query whose candidates are not contiguous.
    pub fn new(candidates: &'a [Candidate], pool: usize) -> Result<Self, u32> {
        let mut c = HashMap::new();
        for chunk in candidates.chunk_by(|a, b| a.query_id == b.query_id) {
            if c.insert(chunk[0].query_id, chunk).is_some() {
                return Err(chunk[0].query_id);
            }
        }
        Ok(Lookup { candidates: c, pool })
    }

    pub fn candidates(&self, query: u32) -> &'a [Candidate] {
        let all = self.candidates.get(&query).copied().unwrap_or(&[]);
        &all[..all.len().min(self.pool)]
    }

    /// Fails, naming both files, when a query of `subset` has a candidate target that is not a
    /// positive of `subset`: candidates and pairs that do not belong together.
    pub fn check_targets(&self, subset: &Subset, candidates: &Path, pairs: &Path) -> anyhow::Result<()> {
        let foreign = subset
            .queries
            .iter()
            .flat_map(|&q| self.candidates(q))
            .find(|c| !subset.owners.contains_key(&c.target_id));
        match foreign {
            None => Ok(()),
            Some(c) => anyhow::bail!(
                "{}: query {} has candidate target {}, which is not a positive in subset {} of {}: candidates and pairs do not match",
                candidates.display(),
                c.query_id,
                c.target_id,
                subset.name,
                pairs.display()
            ),
        }
    }
}

/// A cluster as row indices into `Subset::rows`, with each member's similarity to the anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub phase: u8,
    pub anchor: usize,
    pub members: Vec<(usize, f32)>,
}

#[derive(Debug, Default, Clone)]
pub struct SamplerOutput {
    pub clusters: Vec<Cluster>,
    /// Unique queries not used after the main pass (the reference prints this count).
    pub leftover_anchors: usize,
    /// Candidate visits whose target has several owners.
    pub shared_target_visits: usize,
    /// positive-aware: non-positive candidates dropped for scoring above the ceiling.
    pub above_ceiling: usize,
}

pub struct SahaParams {
    pub top_k: usize,
    pub pool_mult: usize,
    /// Keep retrieval order instead of the ascending query-similarity sort.
    pub classification: bool,
}

pub fn saha(subset: &Subset, lookup: &Lookup, scores: &mut OwnerScores, params: &SahaParams) -> SamplerOutput {
    let first_n = params.top_k * params.pool_mult;
    let mut out = SamplerOutput::default();
    let mut used: HashSet<u32> = HashSet::new();
    couple(subset, lookup, scores, params, 1, first_n, &mut used, &mut out);
    out.leftover_anchors = subset.queries.iter().filter(|q| !used.contains(q)).count();
    // Owners used in the main pass are free again in the leftover pass.
    scores.reset();
    couple(subset, lookup, scores, params, 2, first_n * 2, &mut used, &mut out);
    out
}

#[allow(clippy::too_many_arguments)]
fn couple(
    subset: &Subset,
    lookup: &Lookup,
    scores: &mut OwnerScores,
    params: &SahaParams,
    phase: u8,
    first_n: usize,
    used: &mut HashSet<u32>,
    out: &mut SamplerOutput,
) {
    // The reference's `allow_redundant = bool(used_q)`: false on the first call (empty set).
    let allow_redundant = !used.is_empty();
    let mut reused: HashSet<u32> = HashSet::new();
    for (ri, row) in subset.rows.iter().enumerate() {
        let anchor = row.query;
        if used.contains(&anchor) {
            continue;
        }
        let excluded = if allow_redundant { &reused } else { &*used };
        scores.ensure(ri, &*used, excluded);
        let mut picked: Vec<(u32, f32)> = Vec::new();
        for c in lookup.candidates(anchor) {
            if c.target_id == row.target {
                continue;
            }
            let shared = subset.owners.get(&c.target_id).is_some_and(|o| o.len() > 1);
            out.shared_target_visits += usize::from(shared);
            // The reference's argmax over the target's free owners.
            match scores.best(anchor, c.target_id, excluded) {
                Some(pick) => picked.push(pick),
                None => continue,
            }
            if picked.len() >= first_n {
                break;
            }
        }
        if picked.is_empty() {
            continue;
        }
        used.insert(anchor);
        if !params.classification {
            picked.sort_by(|a, b| a.1.total_cmp(&b.1));
        }
        picked.truncate(params.top_k);
        let members = picked.iter().map(|&(o, s)| (subset.last_row[&o], s)).collect();
        out.clusters.push(Cluster {
            phase,
            anchor: ri,
            members,
        });
        for &(o, _) in &picked {
            used.insert(o);
            if allow_redundant {
                reused.insert(o);
            }
        }
    }
}
