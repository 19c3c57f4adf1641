//! Cluster statistics and the false-negative audit: the share of mined negatives whose
//! ground-truth label equals the anchor's.

use std::collections::HashSet;

use saha_schemas::MiningStats;

use crate::data::Subset;
use crate::sampler::SamplerOutput;

pub fn stats(strategy: &str, subset: &Subset, out: &SamplerOutput) -> MiningStats {
    let mut covered: HashSet<usize> = HashSet::new();
    let (mut negatives, mut labelled, mut false_neg) = (0u32, 0u32, 0u32);
    let mut max_size = 0;
    for c in &out.clusters {
        covered.insert(c.anchor);
        max_size = max_size.max(c.members.len() + 1);
        let anchor_label = subset.rows[c.anchor].label.as_deref();
        for &(m, _) in &c.members {
            covered.insert(m);
            negatives += 1;
            if let (Some(a), Some(b)) = (anchor_label, subset.rows[m].label.as_deref()) {
                labelled += 1;
                false_neg += u32::from(a == b);
            }
        }
    }
    let n = out.clusters.len();
    MiningStats {
        strategy: strategy.to_string(),
        subset: subset.name.clone(),
        pairs: subset.rows.len() as u32,
        clusters: n as u32,
        phase2_clusters: out.clusters.iter().filter(|c| c.phase == 2).count() as u32,
        covered_pairs: covered.len() as u32,
        mean_size: if n == 0 {
            0.0
        } else {
            (negatives as f64 + n as f64) / n as f64
        },
        max_size: max_size as u32,
        leftover_anchors: out.leftover_anchors as u32,
        shared_target_visits: out.shared_target_visits as u32,
        negatives,
        labelled_negatives: labelled,
        false_negatives: false_neg,
        false_negative_rate: (labelled > 0).then(|| false_neg as f64 / labelled as f64),
    }
}

/// A short text table of the stats, one line per subset.
pub fn table(rows: &[MiningStats]) -> String {
    let mut s = format!(
        "{:<16} {:<24} {:>7} {:>8} {:>8} {:>9} {:>8}\n",
        "strategy", "subset", "pairs", "clusters", "mean", "negatives", "FN rate"
    );
    for r in rows {
        let rate = r
            .false_negative_rate
            .map(|x| format!("{:.1}%", 100.0 * x))
            .unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "{:<16} {:<24} {:>7} {:>8} {:>8.2} {:>9} {:>8}\n",
            r.strategy, r.subset, r.pairs, r.clusters, r.mean_size, r.negatives, rate
        ));
    }
    s
}
