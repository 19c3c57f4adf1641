//! Exact top-`P` inner-product search: blocked matrix products with a fused partial top-k, so
//! the full query x target score matrix never exists; memory is bounded by the block size.

use rayon::prelude::*;
use saha_common::product::{overwritten, product_into};

use crate::vectors::{dot, dots};

/// The most queries in one block. A block's scores are `queries x TARGET_BLOCK` floats (8 MiB at
/// most), written by the matrix product and read once by the top-k. The matrix product repacks each
/// target block for every query block (a gather of one value per target row), so larger query
/// blocks pack the targets less often: at 512, packing took a tenth of exact retrieval of 20k x 20k
/// x 1536 on a 2-core Xeon, at 2048 a thirtieth.
const MAX_QUERY_BLOCK: usize = 2048;
const TARGET_BLOCK: usize = 1024;

/// Extra candidates the matrix product selects beyond `p`, so that re-scoring cannot lose a
/// target to rounding differences between the product and the canonical dot product.
const RESCORE_MARGIN: usize = 16;

/// The canonical final scores: `dot` of each selected target with the query, best first (ties:
/// lower index), cut to `p`. Exact and fast retrieval both end here, so their answers agree
/// whenever their selections contain the same top `p`.
pub(crate) fn rescore(
    query: &[f32],
    targets: &[f32],
    dim: usize,
    selected: Vec<(u32, f32)>,
    p: usize,
) -> Vec<(u32, f32)> {
    let row = |t: u32| &targets[t as usize * dim..(t as usize + 1) * dim];
    let mut exact: Vec<(u32, f32)> = Vec::with_capacity(selected.len());
    let mut fours = selected.chunks_exact(4);
    for four in &mut fours {
        let ids = [four[0].0, four[1].0, four[2].0, four[3].0];
        let scores = dots(query, ids.map(row));
        exact.extend(ids.into_iter().zip(scores));
    }
    exact.extend(fours.remainder().iter().map(|&(t, _)| (t, dot(query, row(t)))));
    exact.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    exact.truncate(p);
    exact
}

/// The `p` best (target index, score) per query, best first; ties go to the lower target index.
/// `queries` is `[nq, dim]` and `targets` `[nt, dim]`, both row-major.
pub fn top_p(
    queries: &[f32],
    targets: &[f32],
    dim: usize,
    p: usize,
    on_block: &(dyn Fn(usize) + Sync),
) -> Vec<Vec<(u32, f32)>> {
    let nt = targets.len() / dim;
    let p = p.min(nt);
    let deep = (p + RESCORE_MARGIN).min(nt);
    queries
        .par_chunks(query_block(queries.len() / dim.max(1), rayon::current_num_threads()) * dim)
        .flat_map_iter(|qblock| {
            let bq = qblock.len() / dim;
            let mut best: Vec<TopK> = (0..bq).map(|_| TopK::new(deep)).collect();
            let mut scores = vec![0f32; bq * TARGET_BLOCK.min(nt.max(1))];
            for t0 in (0..nt).step_by(TARGET_BLOCK) {
                let bt = TARGET_BLOCK.min(nt - t0);
                let tblock = &targets[t0 * dim..(t0 + bt) * dim];
                matmul_transposed(qblock, tblock, dim, &mut scores[..bq * bt]);
                for (q, top) in best.iter_mut().enumerate() {
                    top.offer(&scores[q * bt..(q + 1) * bt], t0 as u32);
                }
            }
            on_block(bq);
            best.into_iter()
                .enumerate()
                .map(move |(i, top)| rescore(&qblock[i * dim..(i + 1) * dim], targets, dim, top.into_sorted(), p))
        })
        .collect()
}

/// Queries per block: at most `MAX_QUERY_BLOCK`, in a number of blocks that the threads share
/// evenly, so that no thread is left with one block more than the others.
fn query_block(queries: usize, threads: usize) -> usize {
    let per_thread = queries.div_ceil(threads.max(1));
    per_thread.div_ceil(per_thread.div_ceil(MAX_QUERY_BLOCK).max(1)).max(1)
}

/// `out[i, j] = <a_i, b_j>` for row-major `a: [m, k]`, `b: [n, k]`, `out: [m, n]`.
pub fn matmul_transposed(a: &[f32], b: &[f32], k: usize, out: &mut [f32]) {
    let (m, n) = (a.len() / k, b.len() / k);
    // `bᵀ` `[k, n]` read in place from `b`'s rows.
    product_into(overwritten(out), a, (m, k, n), b, (1, k), gemm::Parallelism::None);
}

/// A bounded best-`p` set. Scores that beat the current threshold are appended to a buffer of up to
/// `2p`; when it fills, the best `p` are kept (a linear-time selection) and the `p`-th best becomes
/// the threshold. Most scores are rejected by one vectorised comparison per slice, and a kept score
/// costs O(1) amortised. Targets are offered in ascending index order and a score must beat the
/// threshold strictly, so among equal scores the lower index stays, as with a heap of the best `p`.
pub(crate) struct TopK {
    p: usize,
    kept: Vec<Scored>,
    /// The worst kept score after the last cut; none before the first.
    threshold: Option<f32>,
}

/// Scores checked against the threshold at once before any is looked at singly.
const SCAN_RUN: usize = 16;

#[derive(Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    /// Better = higher score, then lower index.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl TopK {
    pub(crate) fn new(p: usize) -> Self {
        Self {
            p,
            kept: Vec::with_capacity(2 * p),
            threshold: None,
        }
    }

    pub(crate) fn offer(&mut self, scores: &[f32], base: u32) {
        if self.p == 0 {
            return;
        }
        for (c, run) in scores.chunks(SCAN_RUN).enumerate() {
            // Branch-free, so it vectorises: one bit per score above the threshold. Most runs have
            // none; in one that has, only those scores are looked at. The threshold only rises, so a
            // score below the old one stays out; one above it is checked again, since a cut on the way
            // may have raised it.
            let mut above = match self.threshold {
                Some(t) => run
                    .iter()
                    .enumerate()
                    .fold(0u32, |bits, (j, &s)| bits | (u32::from(!(s <= t)) << j)),
                None => (1u32 << run.len()) - 1,
            };
            let base = base + (c * SCAN_RUN) as u32;
            while above != 0 {
                let j = above.trailing_zeros() as usize;
                above &= above - 1;
                let s = run[j];
                if self.threshold.is_some_and(|t| s <= t) {
                    continue;
                }
                self.kept.push(Scored(s, base + j as u32));
                if self.kept.len() == 2 * self.p {
                    self.keep_best();
                }
            }
        }
    }

    /// Cuts the buffer to the best `p` and raises the threshold to the worst of them.
    fn keep_best(&mut self) {
        self.kept.select_nth_unstable_by(self.p - 1, |a, b| b.cmp(a));
        self.kept.truncate(self.p);
        self.threshold = Some(self.kept[self.p - 1].0);
    }

    /// Best first.
    pub(crate) fn into_sorted(mut self) -> Vec<(u32, f32)> {
        self.kept.sort_by(|a, b| b.cmp(a));
        self.kept.truncate(self.p);
        self.kept.into_iter().map(|s| (s.1, s.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offered in slices, with many equal scores: the best `p` by (score, lower index) of all
    /// offered, whatever the slicing and however often the buffer is cut.
    #[test]
    fn top_k_keeps_the_best_and_the_lower_index_among_ties() {
        let mut rng = saha_common::rng::Rng::new(11);
        let scores: Vec<f32> = (0..5000).map(|_| rng.below(40) as f32 / 8.0 - 2.0).collect();
        for p in [1, 3, 45, 4999, 6000] {
            for slice in [1, 7, 256, 5000] {
                let mut top = TopK::new(p);
                for (c, chunk) in scores.chunks(slice).enumerate() {
                    top.offer(chunk, (c * slice) as u32);
                }
                let mut want: Vec<(u32, f32)> = scores.iter().enumerate().map(|(j, &s)| (j as u32, s)).collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                want.truncate(p);
                assert_eq!(top.into_sorted(), want, "p {p}, slices of {slice}");
            }
        }
        assert!(TopK::new(0).into_sorted().is_empty());
    }

    #[test]
    fn query_blocks_are_capped_and_shared_evenly() {
        for threads in [1, 2, 3, 16] {
            for queries in [1, 2, 3, 5, 300, 2047, 2048, 4097, 20_000, 100_000, 1_000_003] {
                let block = query_block(queries, threads);
                let rounds = queries.div_ceil(block).div_ceil(threads);
                let context = format!("{queries} queries, {threads} threads: block {block}");
                assert!(block <= MAX_QUERY_BLOCK, "{context}");
                // The busiest thread's queries exceed an even share by less than one per block.
                assert!(rounds * block < queries.div_ceil(threads) + rounds, "{context}");
            }
        }
        assert_eq!(query_block(100_000, 2), 2000);
        assert_eq!(query_block(0, 2), 1);
    }

    #[test]
    fn matches_brute_force() {
        let dim = 7;
        let mut rng = saha_common::rng::Rng::new(3);
        let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.below(2001) as f32 / 1000.0 - 1.0).collect() };
        let q = rand(300 * dim);
        let t = rand(9000 * dim);
        let got = top_p(&q, &t, dim, 5, &|_| {});
        for (i, row) in got.iter().enumerate() {
            let mut all: Vec<(u32, f32)> = (0..9000)
                .map(|j| (j as u32, (0..dim).map(|k| q[i * dim + k] * t[j * dim + k]).sum::<f32>()))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let ids: Vec<u32> = row.iter().map(|x| x.0).collect();
            let want: Vec<u32> = all[..5].iter().map(|x| x.0).collect();
            assert_eq!(ids, want, "query {i}");
            for (g, w) in row.iter().zip(&all[..5]) {
                assert!((g.1 - w.1).abs() < 1e-4);
            }
        }
        assert_eq!(top_p(&q[..dim], &t[..3 * dim], dim, 5, &|_| {})[0].len(), 3);
    }
}
