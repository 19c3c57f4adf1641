//! Pairs whose query or positive saha-embed skipped for a bad image (`--on-bad-image skip`) are left
//! out of mining, counted, and the skipped items passed on in the footer so the next stage leaves out
//! the same pairs. Only items the embeddings' footers list as skipped may lack an embedding.

use std::collections::{BTreeMap, BTreeSet};

pub use saha_schemas::provenance::LEFT_OUT_REASON as REASON;
use saha_schemas::provenance::{LEFT_OUT_PAIRS, SKIPPED_ITEM_IDS};
use saha_schemas::{Pair, Provenance};

/// The pairs left out, in all and per subset.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LeftOut {
    pub pairs: usize,
    pub by_subset: BTreeMap<String, usize>,
    /// The skipped items the rule was applied with.
    pub skipped: BTreeSet<u32>,
}

/// The pairs whose query and target are both outside `skipped`, and what was left out.
pub fn without_skipped(pairs: Vec<Pair>, skipped: &BTreeSet<u32>) -> (Vec<Pair>, LeftOut) {
    let mut left_out = LeftOut {
        skipped: skipped.clone(),
        ..LeftOut::default()
    };
    if skipped.is_empty() {
        return (pairs, left_out);
    }
    let kept = pairs
        .into_iter()
        .filter(|p| {
            let keep = !skipped.contains(&p.query_id) && !skipped.contains(&p.target_id);
            if !keep {
                left_out.pairs += 1;
                *left_out.by_subset.entry(p.subset.clone()).or_default() += 1;
            }
            keep
        })
        .collect();
    (kept, left_out)
}

impl LeftOut {
    /// Footer stats: how many pairs were left out (in all and per subset) and the skipped items.
    /// Nothing is recorded when no item was skipped, so such runs keep their bytes.
    pub fn record(&self, prov: &mut Provenance) {
        if self.skipped.is_empty() {
            return;
        }
        prov.stat(LEFT_OUT_PAIRS, self.pairs);
        prov.stat("left_out_pairs_by_subset", &self.by_subset);
        prov.stat("left_out_reason", REASON);
        prov.stat(SKIPPED_ITEM_IDS, &self.skipped);
    }

    /// A line for the stage's summary, when pairs were left out.
    pub fn note(&self) -> Option<String> {
        (self.pairs > 0).then(|| format!("{} pairs left out: {REASON}", self.pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(pair_id: u32, subset: &str, query_id: u32, target_id: u32) -> Pair {
        Pair {
            pair_id,
            subset: subset.into(),
            qry: String::new(),
            qry_image_path: None,
            pos_text: String::new(),
            pos_image_path: None,
            query_id,
            target_id,
            label: None,
            source_file: String::new(),
            source_row: pair_id,
        }
    }

    #[test]
    fn pairs_with_a_skipped_query_or_positive_are_left_out_and_counted() {
        let pairs = vec![
            pair(0, "a", 1, 2),
            pair(1, "a", 3, 4),
            pair(2, "b", 5, 2),
            pair(3, "b", 6, 7),
        ];
        let (kept, left) = without_skipped(pairs, &BTreeSet::from([2, 6]));
        assert_eq!(kept.iter().map(|p| p.pair_id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(left.pairs, 3);
        assert_eq!(left.by_subset, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
    }
}
