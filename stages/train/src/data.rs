//! Clusters and their items, and which clusters each step trains on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use saha_common::rng::Rng;
use saha_schemas::provenance::LEFT_OUT_PAIRS;
use saha_schemas::records::read_records;
use saha_schemas::{ClusterMember, Item, Provenance};

/// A cluster's (query item, target item) pairs in member order.
pub type Cluster = Vec<(u32, u32)>;

pub struct TrainData {
    pub clusters: Vec<Cluster>,
    pub items: HashMap<u32, Item>,
    /// The items' provenance (which backbone they were rendered for).
    pub items_provenance: Option<Provenance>,
    /// Pairs saha-filter left out because saha-embed skipped their query or positive (its footer).
    pub left_out_pairs: u64,
}

pub fn load(clusters_path: &Path, items_path: &Path) -> Result<TrainData> {
    let (members, clusters_provenance): (Vec<ClusterMember>, _) = read_records(clusters_path)?;
    if members.is_empty() {
        bail!("{}: no clusters to train on", clusters_path.display());
    }
    let (items, items_provenance): (Vec<Item>, _) = read_records(items_path)?;
    let items: HashMap<u32, Item> = items.into_iter().map(|i| (i.item_id, i)).collect();
    let mut grouped: BTreeMap<u32, Vec<&ClusterMember>> = BTreeMap::new();
    for (row, m) in members.iter().enumerate() {
        for (column, id) in [("query_id", m.query_id), ("target_id", m.target_id)] {
            if !items.contains_key(&id) {
                bail!(
                    "{} row {row}, column {column}: item {id} (cluster {}) is not in {}",
                    clusters_path.display(),
                    m.cluster_id,
                    items_path.display()
                );
            }
        }
        grouped.entry(m.cluster_id).or_default().push(m);
    }
    let clusters = grouped
        .into_values()
        .map(|mut ms| {
            ms.sort_by_key(|m| m.position);
            ms.iter().map(|m| (m.query_id, m.target_id)).collect()
        })
        .collect();
    let left_out_pairs = clusters_provenance
        .as_ref()
        .and_then(|p| p.stats.get(LEFT_OUT_PAIRS))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Ok(TrainData {
        clusters,
        items,
        items_provenance,
        left_out_pairs,
    })
}

/// The clusters of step `step` (0-based): each epoch is a fresh seeded shuffle of all clusters, consumed
/// `per_step` at a time; a step never spans two epochs (the last, short batch of an epoch is dropped, so
/// every step has the same number of clusters).
pub fn step_clusters(n_clusters: usize, per_step: usize, seed: u64, step: usize) -> Vec<usize> {
    let steps_per_epoch = (n_clusters / per_step).max(1);
    let epoch = step / steps_per_epoch;
    let within = step % steps_per_epoch;
    let mut order: Vec<usize> = (0..n_clusters).collect();
    let mut rng = Rng::fork(seed, 0x7a11, epoch as u64);
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    order[within * per_step..(within + 1) * per_step].to_vec()
}

#[cfg(test)]
mod tests {
    use super::step_clusters;

    #[test]
    fn every_cluster_once_per_epoch_and_a_new_order_next_epoch() {
        let mut seen: Vec<usize> = (0..5).flat_map(|s| step_clusters(10, 2, 3, s)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let first: Vec<usize> = (0..5).flat_map(|s| step_clusters(10, 2, 3, s)).collect();
        let second: Vec<usize> = (5..10).flat_map(|s| step_clusters(10, 2, 3, s)).collect();
        assert_ne!(first, second);
        assert_eq!(step_clusters(10, 2, 3, 4), step_clusters(10, 2, 3, 4));
    }
}
