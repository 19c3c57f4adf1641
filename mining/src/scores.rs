//! Anchor-to-owner similarities for the miners, computed as they walk the dataset.
//!
//! The reference takes, for each candidate target, the free owner query most similar to the
//! anchor, out of every owner the target has. A class label or a yes/no answer can have thousands
//! of owners, so these similarities are neither stored nor capped: they are computed for a block
//! of upcoming anchors at a time (each owner vector read once per block and target), against the
//! owners that are still free when the block starts, and the argmax is taken over the owners that
//! are still free when the anchor's turn comes.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::data::Subset;
use crate::retrieve::matmul_transposed;
use crate::sampler::Lookup;
use crate::vectors::{dot, Vectors};

/// Scores held at once, at most: 4 Mi (owner, similarity) entries, 32 MiB.
const BLOCK_ENTRIES: usize = 4 << 20;
/// Anchors scored at once, at most.
const BLOCK_ANCHORS: usize = 1024;
/// Owners one task scores against its anchors.
const OWNERS_PER_TASK: usize = 256;
/// Tasks with at least this many anchors and owners are one matrix product.
const GEMM_MIN_SIDE: usize = 8;

pub struct OwnerScores<'a> {
    subset: &'a Subset,
    lookup: &'a Lookup<'a>,
    vectors: &'a Vectors,
    /// (anchor, target) -> range of `owners` / `similarities`.
    block: HashMap<(u32, u32), (usize, usize)>,
    owners: Vec<u32>,
    similarities: Vec<f32>,
}

/// Scores of one target's free owners (a slice of them) against the anchors that retrieved it.
struct Task<'t> {
    /// Index into the block's targets.
    target: usize,
    /// Index of `owners[0]` in the target's free owners.
    first_owner: usize,
    anchors: &'t [u32],
    owners: &'t [u32],
}

impl<'a> OwnerScores<'a> {
    pub fn new(subset: &'a Subset, lookup: &'a Lookup<'a>, vectors: &'a Vectors) -> Self {
        OwnerScores {
            subset,
            lookup,
            vectors,
            block: HashMap::new(),
            owners: Vec::new(),
            similarities: Vec::new(),
        }
    }

    /// Forgets every score: needed whenever an owner that was excluded may become free again
    /// (the sampler's leftover pass).
    pub fn reset(&mut self) {
        self.block.clear();
        self.owners.clear();
        self.similarities.clear();
    }

    fn owners_of(&self, target: u32) -> &'a [u32] {
        self.subset.owners.get(&target).map(Vec::as_slice).unwrap_or(&[])
    }

    fn has(&self, anchor: u32) -> bool {
        self.lookup
            .candidates(anchor)
            .first()
            .is_none_or(|c| self.block.contains_key(&(anchor, c.target_id)))
    }

    /// Makes sure the query of row `row` has its scores: if not, scores the next block of anchors
    /// (the queries of rows `row..` not in `skip`) against the owners not in `excluded`. Owners
    /// excluded now must stay excluded until the next `reset`.
    pub fn ensure(&mut self, row: usize, skip: &HashSet<u32>, excluded: &HashSet<u32>) {
        if self.has(self.subset.rows[row].query) {
            return;
        }
        self.reset();
        let mut anchors: Vec<u32> = Vec::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut entries = 0;
        for r in &self.subset.rows[row..] {
            if skip.contains(&r.query) || !seen.insert(r.query) {
                continue;
            }
            let cost: usize = self
                .lookup
                .candidates(r.query)
                .iter()
                .map(|c| self.owners_of(c.target_id).len())
                .sum();
            if !anchors.is_empty() && (entries + cost > BLOCK_ENTRIES || anchors.len() == BLOCK_ANCHORS) {
                break;
            }
            entries += cost;
            anchors.push(r.query);
        }
        self.score(&anchors, excluded);
    }

    fn score(&mut self, anchors: &[u32], excluded: &HashSet<u32>) {
        // The block's targets in order of first retrieval, each with the anchors that retrieved it
        // and its owners that are free now.
        let mut index_of: HashMap<u32, usize> = HashMap::new();
        let mut targets: Vec<(u32, Vec<u32>)> = Vec::new();
        for &a in anchors {
            for c in self.lookup.candidates(a) {
                let i = *index_of.entry(c.target_id).or_insert_with(|| {
                    targets.push((c.target_id, Vec::new()));
                    targets.len() - 1
                });
                targets[i].1.push(a);
            }
        }
        let free: Vec<Vec<u32>> = targets
            .iter()
            .map(|(t, _)| {
                let owners = self.owners_of(*t).iter().copied();
                owners.filter(|o| !excluded.contains(o)).collect()
            })
            .collect();
        // Each (anchor, target) gets a range of `owners`/`similarities`, owners in list order.
        let mut starts: Vec<usize> = Vec::with_capacity(targets.len());
        for ((t, by), owners) in targets.iter().zip(&free) {
            starts.push(self.owners.len());
            for &a in by {
                self.block.insert((a, *t), (self.owners.len(), owners.len()));
                self.owners.extend_from_slice(owners);
            }
        }
        self.similarities.resize(self.owners.len(), 0.0);
        let tasks: Vec<Task> = targets
            .iter()
            .zip(&free)
            .enumerate()
            .flat_map(|(ti, ((_, by), owners))| {
                owners.chunks(OWNERS_PER_TASK).enumerate().map(move |(k, chunk)| Task {
                    target: ti,
                    first_owner: k * OWNERS_PER_TASK,
                    anchors: by,
                    owners: chunk,
                })
            })
            .collect();
        let vectors = self.vectors;
        let scored: Vec<Vec<f32>> = tasks.par_iter().map(|task| task.score(vectors)).collect();
        for (task, s) in tasks.iter().zip(scored) {
            let (n, stride) = (task.owners.len(), free[task.target].len());
            for ai in 0..task.anchors.len() {
                let at = starts[task.target] + ai * stride + task.first_owner;
                self.similarities[at..at + n].copy_from_slice(&s[ai * n..(ai + 1) * n]);
            }
        }
    }

    /// The owner of `target` most similar to `anchor` among those not in `excluded` (ties: the
    /// lower item id), with that similarity. `ensure` must have scored the anchor.
    pub fn best(&self, anchor: u32, target: u32, excluded: &HashSet<u32>) -> Option<(u32, f32)> {
        let &(start, len) = self
            .block
            .get(&(anchor, target))
            .expect("the sampler scores an anchor before walking its candidates");
        let mut best: Option<(u32, f32)> = None;
        for (&o, &s) in self.owners[start..start + len]
            .iter()
            .zip(&self.similarities[start..start + len])
        {
            if excluded.contains(&o) {
                continue;
            }
            let better = match best {
                None => true,
                Some((bo, bs)) => s.total_cmp(&bs).then(bo.cmp(&o)).is_gt(),
            };
            if better {
                best = Some((o, s));
            }
        }
        best
    }
}

impl Task<'_> {
    /// `[anchors x owners]` inner products: one matrix product when the task is big enough to
    /// pay for gathering the vectors, else one dot product per pair (each owner vector loaded
    /// once and met by every anchor).
    fn score(&self, vectors: &Vectors) -> Vec<f32> {
        let (m, n) = (self.anchors.len(), self.owners.len());
        let mut s = vec![0f32; m * n];
        if m >= GEMM_MIN_SIDE && n >= GEMM_MIN_SIDE {
            let (a, b) = (vectors.matrix(self.anchors), vectors.matrix(self.owners));
            matmul_transposed(&a, &b, vectors.dim, &mut s);
            return s;
        }
        let anchor_vecs: Vec<&[f32]> = self.anchors.iter().map(|&a| vector(vectors, a)).collect();
        for (oi, &o) in self.owners.iter().enumerate() {
            let ov = vector(vectors, o);
            for (ai, av) in anchor_vecs.iter().enumerate() {
                s[ai * n + oi] = dot(av, ov);
            }
        }
        s
    }
}

fn vector(vectors: &Vectors, item: u32) -> &[f32] {
    vectors.get(item).expect("checked by require before mining")
}
