//! Exact top-`P` inner-product search: blocked matrix products with a fused partial top-k, so
//! the full query x target score matrix never exists; memory is bounded by the block size.

use rayon::prelude::*;

/// Queries per block: one block's scores are `QUERY_BLOCK x TARGET_BLOCK` floats.
const QUERY_BLOCK: usize = 128;
const TARGET_BLOCK: usize = 8192;

/// The `p` best (target index, score) per query, best first; ties go to the lower target index.
/// `queries` is `[nq, dim]` and `targets` `[nt, dim]`, both row-major.
pub fn top_p(
    queries: &[f32],
    targets: &[f32],
    dim: usize,
    p: usize,
    on_block: &(dyn Fn(usize) + Sync),
) -> Vec<Vec<(u32, f32)>> {
    let nq = queries.len() / dim;
    let nt = targets.len() / dim;
    let p = p.min(nt);
    queries
        .par_chunks(QUERY_BLOCK * dim)
        .flat_map_iter(|qblock| {
            let bq = qblock.len() / dim;
            let mut best: Vec<TopK> = (0..bq).map(|_| TopK::new(p)).collect();
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
            best.into_iter().map(TopK::into_sorted)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .take(nq)
        .collect()
}

/// `out[i, j] = <a_i, b_j>` for row-major `a: [m, k]`, `b: [n, k]`, `out: [m, n]`.
pub fn matmul_transposed(a: &[f32], b: &[f32], k: usize, out: &mut [f32]) {
    let m = a.len() / k;
    let n = b.len() / k;
    assert_eq!(out.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the strides describe exactly the three buffers, whose lengths were checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A bounded best-`p` list kept sorted, best first. Most scores lose to the current worst and
/// cost one comparison.
struct TopK {
    p: usize,
    items: Vec<(u32, f32)>,
}

impl TopK {
    fn new(p: usize) -> Self {
        Self {
            p,
            items: Vec::with_capacity(p + 1),
        }
    }

    fn offer(&mut self, scores: &[f32], base: u32) {
        for (j, &s) in scores.iter().enumerate() {
            if self.items.len() == self.p && self.p > 0 {
                if s <= self.items[self.p - 1].1 {
                    continue;
                }
            } else if self.p == 0 {
                return;
            }
            // Insert after every equal score, so ties keep ascending target order.
            let at = self.items.partition_point(|&(_, x)| x >= s);
            self.items.insert(at, (base + j as u32, s));
            self.items.truncate(self.p);
        }
    }

    fn into_sorted(self) -> Vec<(u32, f32)> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let dim = 7;
        let mut rng = saha_schemas::rng::Rng::new(3);
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
