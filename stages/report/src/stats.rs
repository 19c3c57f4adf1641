//! The numbers behind the charts: similarities, histogram shares, means, cluster sizes,
//! false-negative rates and the smoothed loss.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::{ClusterMember, MiningStats};

use crate::inputs::Miner;

/// Anchor-positive and anchor-negative cosine similarities of one miner's clusters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Similarities {
    pub positives: Vec<f32>,
    pub negatives: Vec<f32>,
    /// Negatives scoring at least their anchor's positive.
    pub above_positive: usize,
}

/// Unit-norm lookups into an embeddings file.
pub struct Vectors {
    embeddings: Embeddings,
    row: HashMap<u32, usize>,
    inv_norm: Vec<f32>,
}

impl Vectors {
    pub fn new(embeddings: Embeddings) -> Self {
        let row = embeddings.item_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let inv_norm = (0..embeddings.len())
            .map(|i| {
                let n = embeddings.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
                if n > 0.0 {
                    1.0 / n
                } else {
                    0.0
                }
            })
            .collect();
        Self {
            embeddings,
            row,
            inv_norm,
        }
    }

    /// Cosine similarity of two items; `None` when either has no embedding.
    pub fn cosine(&self, a: u32, b: u32) -> Option<f32> {
        let (i, j) = (*self.row.get(&a)?, *self.row.get(&b)?);
        let dot: f32 = self
            .embeddings
            .row(i)
            .iter()
            .zip(self.embeddings.row(j))
            .map(|(x, y)| x * y)
            .sum();
        Some(dot * self.inv_norm[i] * self.inv_norm[j])
    }
}

/// For each cluster, the anchor's query (position 0) against every member's target: the anchor's
/// own target is the positive, the others' targets are the mined negatives.
pub fn similarities(clusters: &[ClusterMember], vectors: &Vectors, what: &str) -> Result<Similarities> {
    let mut rows: Vec<&ClusterMember> = clusters.iter().collect();
    rows.sort_by_key(|r| (r.cluster_id, r.position));
    let mut out = Similarities::default();
    for cluster in rows.chunk_by(|a, b| a.cluster_id == b.cluster_id) {
        let anchor = cluster[0];
        if anchor.position != 0 {
            bail!("{what}: cluster {} has no anchor (position 0)", anchor.cluster_id);
        }
        let sim = |target: u32| {
            vectors.cosine(anchor.query_id, target).with_context(|| {
                format!(
                    "{what}: cluster {}: query {} or target {} has no embedding: clusters and embeddings do not match",
                    anchor.cluster_id, anchor.query_id, target
                )
            })
        };
        let positive = sim(anchor.target_id)?;
        out.positives.push(positive);
        for m in &cluster[1..] {
            let s = sim(m.target_id)?;
            out.above_positive += usize::from(s >= positive);
            out.negatives.push(s);
        }
    }
    Ok(out)
}

/// The similarities of every miner that has clusters; `None` without the embeddings to compute them.
pub fn miner_similarities<'m>(
    miners: &'m [Miner],
    vectors: Option<&Vectors>,
) -> Result<Option<Vec<(&'m Miner, Similarities)>>> {
    let Some(vectors) = vectors else { return Ok(None) };
    let mut sims = Vec::new();
    for m in miners {
        if let Some(c) = &m.clusters {
            sims.push((m, similarities(c, vectors, &m.clusters_path)?));
        }
    }
    Ok(Some(sims))
}

/// The histograms' range: every similarity, widened to multiples of 0.05 (at least 0.05 wide) within -1..1.
pub fn similarity_range<'s>(sims: impl Iterator<Item = &'s Similarities>) -> (f64, f64) {
    let (mut lo, mut hi) = sims
        .flat_map(|s| s.positives.iter().chain(&s.negatives))
        .map(|&v| v as f64)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    }
    lo = ((lo * 20.0).floor() / 20.0).max(-1.0);
    hi = ((hi * 20.0).ceil() / 20.0).min(1.0);
    if hi - lo < 0.05 {
        (lo, hi) = ((lo - 0.05).max(-1.0), (hi + 0.05).min(1.0));
    }
    (lo, hi)
}

/// Shares (summing to 1) of `values` in `bins` equal bins over `lo..hi`.
pub fn shares(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    let width = (hi - lo) / bins as f64;
    for &v in values {
        let b = (((v as f64) - lo) / width).floor().clamp(0.0, (bins - 1) as f64) as usize;
        counts[b] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

pub fn mean(values: &[f32]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64)
}

/// Members per cluster, by cluster id.
pub fn cluster_members(clusters: &[ClusterMember]) -> BTreeMap<u32, u32> {
    let mut per_cluster: BTreeMap<u32, u32> = BTreeMap::new();
    for c in clusters {
        *per_cluster.entry(c.cluster_id).or_default() += 1;
    }
    per_cluster
}

/// How many clusters have each size.
pub fn size_counts(per_cluster: &BTreeMap<u32, u32>) -> BTreeMap<u32, u32> {
    let mut sizes: BTreeMap<u32, u32> = BTreeMap::new();
    for &s in per_cluster.values() {
        *sizes.entry(s).or_default() += 1;
    }
    sizes
}

/// False negatives / labelled negatives of one subset (all subsets when `None`), with both counts.
pub fn false_negative_rate(stats: &[MiningStats], subset: Option<&str>) -> (Option<f64>, u64, u64) {
    let (f, l) = stats
        .iter()
        .filter(|s| subset.is_none_or(|name| s.subset == name))
        .fold((0u64, 0u64), |(f, l), s| {
            (f + s.false_negatives as u64, l + s.labelled_negatives as u64)
        });
    ((l > 0).then(|| f as f64 / l as f64), f, l)
}

/// The mean of each point's `window` last values (fewer at the start).
pub fn moving_mean(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let from = i.saturating_sub(window - 1);
            let recent = &points[from..=i];
            (
                points[i].0,
                recent.iter().map(|p| p.1).sum::<f64>() / recent.len() as f64,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::esc;

    fn member(cluster_id: u32, position: u16, query_id: u32, target_id: u32) -> ClusterMember {
        ClusterMember {
            cluster_id,
            position,
            pair_id: query_id,
            query_id,
            target_id,
            phase: 1,
            subset: "s".into(),
            anchor_similarity: 0.0,
        }
    }

    #[test]
    fn anchor_against_member_targets() {
        // Items 0/1: queries; 10/11: their targets. Not normalised: the cosine normalises.
        let vectors = Vectors::new(Embeddings {
            item_ids: vec![0, 1, 10, 11],
            dim: 2,
            values: vec![2.0, 0.0, 0.0, 1.0, 3.0, 4.0, 0.0, 5.0],
            model: "m".into(),
            normalized: false,
        });
        // Stored out of order: the cluster is rebuilt by (cluster_id, position).
        let clusters = vec![member(0, 1, 1, 11), member(0, 0, 0, 10)];
        let s = similarities(&clusters, &vectors, "c").unwrap();
        assert_eq!(s.positives, vec![0.6]);
        assert_eq!(s.negatives, vec![0.0]);
        assert_eq!(s.above_positive, 0);
        let bad = similarities(&[member(0, 0, 0, 99)], &vectors, "c").unwrap_err();
        assert!(format!("{bad:#}").contains("target 99"), "{bad:#}");
        let no_anchor = similarities(&[member(3, 1, 0, 10)], &vectors, "c").unwrap_err();
        assert!(no_anchor.to_string().contains("no anchor"));
    }

    #[test]
    fn shares_sum_to_one_and_clamp() {
        let s = shares(&[-1.0, 0.0, 0.49, 1.0, 2.0], -1.0, 1.0, 4);
        assert_eq!(s, vec![0.2, 0.0, 0.4, 0.4]);
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
