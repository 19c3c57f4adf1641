//! Query space: every retrieved target mapped back to the queries that own it (the reference's
//! `D2Q`), listed once per target. Similarities to anchors are the filter's business
//! (`scores.rs`): stored per (anchor, target) they would grow as candidates x owners.

use std::collections::HashSet;

use saha_schemas::Owner;

use crate::data::Subset;
use crate::sampler::Lookup;

#[derive(Debug, Default, Clone, Copy)]
pub struct RemapCounts {
    /// Distinct targets retrieved for the subset's queries.
    pub targets: usize,
    /// Of those, targets owned by several queries.
    pub shared_targets: usize,
    /// The most owners any retrieved target has.
    pub max_owners: usize,
}

/// The owners of every target retrieved for a query of `subset`, targets and owners in order of
/// first appearance in the subset's pairs.
pub fn owner_lists(subset: &Subset, lookup: &Lookup) -> (Vec<Owner>, RemapCounts) {
    let retrieved: HashSet<u32> = subset
        .queries
        .iter()
        .flat_map(|&q| lookup.candidates(q).iter().map(|c| c.target_id))
        .collect();
    let mut counts = RemapCounts::default();
    let mut rows = Vec::new();
    for t in subset.targets.iter().filter(|t| retrieved.contains(t)) {
        let owners = &subset.owners[t];
        counts.targets += 1;
        counts.shared_targets += usize::from(owners.len() > 1);
        counts.max_owners = counts.max_owners.max(owners.len());
        rows.extend(owners.iter().enumerate().map(|(r, &o)| Owner {
            target_id: *t,
            owner_rank: r as u32,
            owner_id: o,
            owners_total: owners.len() as u32,
        }));
    }
    (rows, counts)
}
