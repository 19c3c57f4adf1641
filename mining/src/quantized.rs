//! Fast retrieval: int8 scores (AVX-512 VNNI where the CPU has it) pick a pool `oversample`
//! times deeper than asked, which is then re-scored exactly in f32. The answer equals exact
//! retrieval whenever the true top `p` lie inside the int8 pool; the tests and the benchmark
//! check that it does.

use rayon::prelude::*;

use crate::retrieve::{rescore, TopK};

const LANES: usize = 64;
const QUERY_BLOCK: usize = 64;
const TARGET_BLOCK: usize = 256;

/// Rows quantised symmetrically to int8 (`x ~ scale * q`), padded to a multiple of 64 values.
struct Quantised {
    data: Vec<i8>,
    scale: Vec<f32>,
    sum: Vec<i32>,
    width: usize,
}

fn quantise(m: &[f32], dim: usize) -> Quantised {
    let rows = m.len() / dim;
    let width = dim.div_ceil(LANES) * LANES;
    let mut data = vec![0i8; rows * width];
    let mut scale = vec![0f32; rows];
    let mut sum = vec![0i32; rows];
    data.par_chunks_mut(width)
        .zip(scale.par_iter_mut())
        .zip(sum.par_iter_mut())
        .enumerate()
        .for_each(|(r, ((out, s), total))| {
            let row = &m[r * dim..(r + 1) * dim];
            let max = row.iter().fold(0f32, |a, x| a.max(x.abs()));
            *s = if max > 0.0 { max / 127.0 } else { 1.0 };
            let mut acc = 0i32;
            for (o, x) in out.iter_mut().zip(row) {
                *o = (x / *s).round().clamp(-127.0, 127.0) as i8;
                acc += *o as i32;
            }
            *total = acc;
        });
    Quantised {
        data,
        scale,
        sum,
        width,
    }
}

/// Whether this CPU scores int8 faster than f32: only with AVX-512 VNNI (`vpdpbusd`). Elsewhere
/// int8 products need several instructions per lane and lose to the f32 matrix product.
pub fn int8_is_faster() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Raw `sum_k (q[k] + 128) * t[k]` for every (query, target) of the blocks: queries as u8
/// offset by 128 (VNNI multiplies unsigned by signed bytes), targets as i8.
fn raw_scores(q: &[u8], t: &[i8], width: usize, out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if int8_is_faster() {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { vnni::raw_scores(q, t, width, out) };
        }
    }
    portable_raw_scores(q, t, width, out)
}

fn portable_raw_scores(q: &[u8], t: &[i8], width: usize, out: &mut [i32]) {
    let nt = t.len() / width;
    for (i, qr) in q.chunks_exact(width).enumerate() {
        for (j, tr) in t.chunks_exact(width).enumerate() {
            out[i * nt + j] = qr.iter().zip(tr).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    /// 4 x 4 register tiles of `vpdpbusd`; edge rows and columns fall back to the portable loop.
    #[allow(clippy::needless_range_loop)] // fixed-size register tiles read best indexed
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn raw_scores(q: &[u8], t: &[i8], width: usize, out: &mut [i32]) {
        let nq = q.len() / width;
        let nt = t.len() / width;
        let (q4, t4) = (nq / 4 * 4, nt / 4 * 4);
        for i in (0..q4).step_by(4) {
            for j in (0..t4).step_by(4) {
                let mut acc = [[_mm512_setzero_si512(); 4]; 4];
                for k in (0..width).step_by(64) {
                    let qv: [__m512i; 4] =
                        std::array::from_fn(|a| _mm512_loadu_si512(q.as_ptr().add((i + a) * width + k) as *const _));
                    for b in 0..4 {
                        let tv = _mm512_loadu_si512(t.as_ptr().add((j + b) * width + k) as *const _);
                        for a in 0..4 {
                            acc[a][b] = _mm512_dpbusd_epi32(acc[a][b], qv[a], tv);
                        }
                    }
                }
                for a in 0..4 {
                    for b in 0..4 {
                        out[(i + a) * nt + j + b] = _mm512_reduce_add_epi32(acc[a][b]);
                    }
                }
            }
        }
        let edge = |i: usize, j: usize| -> i32 {
            let qr = &q[i * width..(i + 1) * width];
            let tr = &t[j * width..(j + 1) * width];
            qr.iter().zip(tr).map(|(&a, &b)| a as i32 * b as i32).sum()
        };
        for i in 0..nq {
            let cols: Box<dyn Iterator<Item = usize>> = if i < q4 { Box::new(t4..nt) } else { Box::new(0..nt) };
            for j in cols {
                out[i * nt + j] = edge(i, j);
            }
        }
    }
}

/// The `p` best (target index, exact f32 score) per query, like [`crate::retrieve::top_p`],
/// chosen from an int8 pre-selection `oversample * p` deep.
pub fn top_p_fast(
    queries: &[f32],
    targets: &[f32],
    dim: usize,
    p: usize,
    oversample: usize,
    on_block: &(dyn Fn(usize) + Sync),
) -> Vec<Vec<(u32, f32)>> {
    let nt = targets.len() / dim;
    let p = p.min(nt);
    let deep = p.saturating_mul(oversample.max(1)).min(nt);
    let tq = quantise(targets, dim);
    let qq = quantise(queries, dim);
    let width = qq.width;
    let q_u8: Vec<u8> = qq.data.iter().map(|&x| (x as i16 + 128) as u8).collect();
    q_u8.par_chunks(QUERY_BLOCK * width)
        .enumerate()
        .flat_map_iter(|(block, qblock)| {
            let q0 = block * QUERY_BLOCK;
            let bq = qblock.len() / width;
            let mut best: Vec<TopK> = (0..bq).map(|_| TopK::new(deep)).collect();
            let mut raw = vec![0i32; bq * TARGET_BLOCK];
            let mut approx = vec![0f32; TARGET_BLOCK];
            for t0 in (0..nt).step_by(TARGET_BLOCK) {
                let bt = TARGET_BLOCK.min(nt - t0);
                raw_scores(
                    qblock,
                    &tq.data[t0 * width..(t0 + bt) * width],
                    width,
                    &mut raw[..bq * bt],
                );
                for (i, top) in best.iter_mut().enumerate() {
                    let sq = qq.scale[q0 + i];
                    for j in 0..bt {
                        let t = t0 + j;
                        approx[j] = sq * tq.scale[t] * (raw[i * bt + j] - 128 * tq.sum[t]) as f32;
                    }
                    top.offer(&approx[..bt], t0 as u32);
                }
            }
            on_block(bq);
            best.into_iter().enumerate().map(move |(i, top)| {
                rescore(
                    &queries[(q0 + i) * dim..(q0 + i + 1) * dim],
                    targets,
                    dim,
                    top.into_sorted(),
                    p,
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queries and targets whose counts are not multiples of the 4 x 4 tile, so that both the
    /// register tiles and the edge rows / columns run; extreme bytes included.
    fn kernel_inputs(width: usize) -> (Vec<u8>, Vec<i8>) {
        let mut rng = saha_common::rng::Rng::new(9);
        let mut q: Vec<u8> = (0..7 * width).map(|_| rng.below(256) as u8).collect();
        let mut t: Vec<i8> = (0..10 * width).map(|_| (rng.below(255) as i32 - 127) as i8).collect();
        q[..width].fill(255);
        t[..width].fill(-128);
        (q, t)
    }

    /// The AVX-512 VNNI kernel itself (not the dispatcher, which falls back to the portable loop
    /// on a CPU without it) against the portable loop. On a CPU that lacks the features the kernel
    /// cannot run: the test says so on stderr and checks nothing about the kernel; set
    /// `SAHA_REQUIRE_VNNI=1` to make that a failure instead.
    #[test]
    fn vnni_kernel_matches_portable() {
        #[cfg(target_arch = "x86_64")]
        let missing: Vec<&str> = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", std::arch::is_x86_feature_detected!("avx512vnni")),
        ]
        .into_iter()
        .filter(|(_, has)| !has)
        .map(|(name, _)| name)
        .collect();
        #[cfg(not(target_arch = "x86_64"))]
        let missing = vec!["x86_64 (the kernel is x86-64 only)"];
        if !missing.is_empty() {
            let message = format!(
                "vnni_kernel_matches_portable: NOT CHECKED: this CPU lacks {}, so the AVX-512 VNNI kernel \
                 cannot run here and top_p_fast uses the portable loop",
                missing.join(", ")
            );
            assert!(
                std::env::var_os("SAHA_REQUIRE_VNNI").is_none(),
                "{message} (SAHA_REQUIRE_VNNI is set)"
            );
            eprintln!("{message}");
            return;
        }
        #[cfg(target_arch = "x86_64")]
        for width in [64, 128, 192] {
            let (q, t) = kernel_inputs(width);
            let mut a = vec![i32::MIN; 70];
            let mut b = vec![0; 70];
            // SAFETY: the features the kernel is compiled for were detected above.
            unsafe { vnni::raw_scores(&q, &t, width, &mut a) };
            portable_raw_scores(&q, &t, width, &mut b);
            assert_eq!(a, b, "width {width}: the VNNI kernel differs from the portable loop");
            eprintln!("vnni_kernel_matches_portable: the AVX-512 VNNI kernel checked at width {width}");
        }
    }

    /// The portable loop against a plain i64 dot product per pair, so that the reference the kernel is
    /// compared with is itself checked (and runs on every CPU).
    #[test]
    fn portable_raw_scores_are_the_offset_dot_products() {
        let width = 128;
        let (q, t) = kernel_inputs(width);
        let mut got = vec![i32::MIN; 70];
        portable_raw_scores(&q, &t, width, &mut got);
        for i in 0..7 {
            for j in 0..10 {
                let want: i64 = (0..width)
                    .map(|k| q[i * width + k] as i64 * t[j * width + k] as i64)
                    .sum();
                assert_eq!(got[i * 10 + j] as i64, want, "query {i}, target {j}");
            }
        }
        assert_eq!(got[0], -128 * 255 * width as i32);
    }

    #[test]
    fn fast_equals_exact_on_clustered_vectors() {
        let dim = 48;
        let mut rng = saha_common::rng::Rng::new(4);
        let mut g = || (rng.below(20001) as f32 / 10000.0) - 1.0;
        let centres: Vec<f32> = (0..10 * dim).map(|_| g()).collect();
        let mut make = |n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|i| {
                    (0..dim)
                        .map(|k| centres[(i % 10) * dim + k] + 0.7 * g())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let q = make(300);
        let t = make(2000);
        let exact = crate::retrieve::top_p(&q, &t, dim, 12, &|_| {});
        let fast = top_p_fast(&q, &t, dim, 12, 4, &|_| {});
        for (i, (e, f)) in exact.iter().zip(&fast).enumerate() {
            let ids = |v: &Vec<(u32, f32)>| v.iter().map(|x| x.0).collect::<Vec<_>>();
            assert_eq!(ids(e), ids(f), "query {i}");
        }
    }
}
