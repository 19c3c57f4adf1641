//! Query space: every retrieved target mapped back to the queries that own it, each with its
//! similarity to the anchor query.

use rayon::prelude::*;
use saha_schemas::{Candidate, Owner};

use crate::data::Subset;
use crate::vectors::{dot, Vectors};

#[derive(Debug, Default, Clone, Copy)]
pub struct RemapCounts {
    pub rows: usize,
    /// (query, target) entries whose owner list was cut by the cap.
    pub cap_hits: usize,
}

/// Owners of each candidate of each query of `subset`, most anchor-similar first (ties: lower
/// item id first), at most `max_owners` per candidate (0 = all). `candidates` holds the
/// subset's candidate rows, grouped by query in the order of `subset.queries`.
pub fn owners_of(
    subset: &Subset,
    candidates: &[&[Candidate]],
    vectors: &Vectors,
    max_owners: usize,
) -> (Vec<Owner>, RemapCounts) {
    let per_query: Vec<(Vec<Owner>, usize)> = candidates
        .par_iter()
        .map(|cands| {
            let mut out = Vec::new();
            let mut hits = 0;
            let mut scratch: Vec<(u32, f32)> = Vec::new();
            for c in *cands {
                let anchor = vectors.get(c.query_id).expect("checked by require");
                let owners = subset.owners.get(&c.target_id).map(Vec::as_slice).unwrap_or(&[]);
                scratch.clear();
                scratch.extend(
                    owners
                        .iter()
                        .map(|&o| (o, dot(anchor, vectors.get(o).expect("checked by require")))),
                );
                scratch.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let keep = if max_owners == 0 {
                    scratch.len()
                } else {
                    max_owners.min(scratch.len())
                };
                hits += usize::from(keep < scratch.len());
                out.extend(scratch[..keep].iter().enumerate().map(|(r, &(o, s))| Owner {
                    query_id: c.query_id,
                    rank: c.rank,
                    target_id: c.target_id,
                    owner_rank: r as u16,
                    owner_id: o,
                    similarity: s,
                    owners_total: owners.len() as u32,
                }));
            }
            (out, hits)
        })
        .collect();
    let mut counts = RemapCounts::default();
    let mut rows = Vec::with_capacity(per_query.iter().map(|p| p.0.len()).sum());
    for (o, h) in per_query {
        counts.cap_hits += h;
        rows.extend(o);
    }
    counts.rows = rows.len();
    (rows, counts)
}
