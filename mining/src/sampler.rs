//! The reference's greedy SaHa construction (`couple_samples`, called twice), replayed exactly
//! on precomputed candidates and owners.

use std::collections::{HashMap, HashSet};

use saha_schemas::{Candidate, Owner};

use crate::data::Subset;

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

/// Candidates and owners of one subset, indexed for the sampler.
pub struct Lookup<'a> {
    candidates: HashMap<u32, &'a [Candidate]>,
    owners: HashMap<(u32, u16), &'a [Owner]>,
    /// Candidates considered per query (the reference's retrieval depth `pool_size`).
    pub pool: usize,
}

impl<'a> Lookup<'a> {
    /// `candidates` and `owners` must be grouped by query and sorted by rank (and owner rank),
    /// as the stages write them.
    pub fn new(candidates: &'a [Candidate], owners: &'a [Owner], pool: usize) -> Self {
        let mut c = HashMap::new();
        for chunk in candidates.chunk_by(|a, b| a.query_id == b.query_id) {
            c.insert(chunk[0].query_id, chunk);
        }
        let mut o = HashMap::new();
        for chunk in owners.chunk_by(|a, b| a.query_id == b.query_id && a.rank == b.rank) {
            o.insert((chunk[0].query_id, chunk[0].rank), chunk);
        }
        Lookup {
            candidates: c,
            owners: o,
            pool,
        }
    }

    pub fn candidates(&self, query: u32) -> &'a [Candidate] {
        let all = self.candidates.get(&query).copied().unwrap_or(&[]);
        &all[..all.len().min(self.pool)]
    }

    pub fn owners(&self, query: u32, rank: u16) -> &'a [Owner] {
        self.owners.get(&(query, rank)).copied().unwrap_or(&[])
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
    pub cap_hits: usize,
    pub cap_deviations: usize,
}

pub struct SahaParams {
    pub top_k: usize,
    pub pool_mult: usize,
    /// Keep retrieval order instead of the ascending query-similarity sort.
    pub classification: bool,
}

pub fn saha(subset: &Subset, lookup: &Lookup, params: &SahaParams) -> SamplerOutput {
    let first_n = params.top_k * params.pool_mult;
    let mut out = SamplerOutput::default();
    let mut used: HashSet<u32> = HashSet::new();
    couple(subset, lookup, params, 1, first_n, &mut used, &mut out);
    out.leftover_anchors = subset.queries.iter().filter(|q| !used.contains(q)).count();
    couple(subset, lookup, params, 2, first_n * 2, &mut used, &mut out);
    out
}

fn couple(
    subset: &Subset,
    lookup: &Lookup,
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
        let mut picked: Vec<(u32, f32)> = Vec::new();
        for c in lookup.candidates(anchor) {
            if c.target_id == row.target {
                continue;
            }
            let owners = lookup.owners(anchor, c.rank);
            let excluded = if allow_redundant { &reused } else { &*used };
            let capped = owners.first().is_some_and(|o| (o.owners_total as usize) > owners.len());
            out.cap_hits += usize::from(capped);
            // Owners are sorted by similarity to the anchor, so the first free one is the
            // reference's argmax over the free owners.
            match owners.iter().find(|o| !excluded.contains(&o.owner_id)) {
                Some(o) => picked.push((o.owner_id, o.similarity)),
                None => {
                    out.cap_deviations += usize::from(capped);
                    continue;
                }
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
