//! Fast retrieval: int8 scores (AVX-512 VNNI where the CPU has it) pick a pool `oversample`
//! times deeper than asked, which is then re-scored exactly in f32. The answer equals exact
//! retrieval whenever the true top `p` lie inside the int8 pool; the tests and the benchmark
//! check that it does.
//!
//! The int8 product is laid out as a GEMM micro-kernel, so no score needs a horizontal sum:
//! targets are packed in panels of `PANEL_TARGETS`, four bytes of each target side by side per
//! 4-value step, so one 64-byte register holds 16 targets' next four values; each query's four
//! values are broadcast, and `vpdpbusd` adds 16 four-term products per instruction, one per
//! target, into `PANEL_QUERIES x PANEL_TARGETS` accumulators held in registers.

use rayon::prelude::*;

use crate::retrieve::{rescore, TopK};

/// Quantised rows are padded with zeros to a multiple of this many values.
const LANES: usize = 64;
/// Queries scored at once by the micro-kernel (its accumulator rows).
const PANEL_QUERIES: usize = 8;
/// Targets in one packed panel (two 16-lane registers per accumulator row).
const PANEL_TARGETS: usize = 32;
/// Queries one task ranks: each task streams every target panel once, so this sets how often the
/// packed targets are read from memory (about 154 MB at 100k x 1536) against the task's queries
/// held in L2 (`QUERY_BLOCK x width` bytes).
const QUERY_BLOCK: usize = 256;

/// Rows quantised symmetrically to int8 (`x ~ scale * q`), padded to a multiple of 64 values;
/// `sum` is each row's sum of quantised values.
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

/// Quantised target rows (`[rows, width]`) as panels of `PANEL_TARGETS`: within a panel, for each
/// step of 4 values, every target's 4 bytes in turn, offset by 128 to u8 (`vpdpbusd` multiplies
/// unsigned by signed bytes). Rows past the end are zero values (128).
fn pack_targets(data: &[i8], width: usize) -> Vec<u8> {
    let rows = data.len() / width;
    let panel_len = PANEL_TARGETS * width;
    let mut packed = vec![128u8; rows.div_ceil(PANEL_TARGETS) * panel_len];
    packed.par_chunks_mut(panel_len).enumerate().for_each(|(p, panel)| {
        for (j, row) in data[p * panel_len..]
            .chunks_exact(width)
            .take(PANEL_TARGETS)
            .enumerate()
        {
            for (step, four) in row.chunks_exact(4).enumerate() {
                let at = step * PANEL_TARGETS * 4 + j * 4;
                for (o, &x) in panel[at..at + 4].iter_mut().zip(four) {
                    *o = (x as u8) ^ 0x80;
                }
            }
        }
    });
    packed
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

/// Raw `sum_k q[k] * (t[k] + 128)` for `PANEL_QUERIES` query rows (i8, `[8, width]`) against one
/// packed target panel, into `out[query * PANEL_TARGETS + target]`.
type PanelKernel = fn(&[i8], &[u8], usize, &mut [i32; PANEL_QUERIES * PANEL_TARGETS]);

fn panel_kernel() -> PanelKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if int8_is_faster() {
            return |q, t, width, out| {
                // SAFETY: the CPU supports the features the kernel is compiled for (checked above).
                unsafe { vnni::panel_scores(q, t, width, out) }
            };
        }
    }
    portable_panel_scores
}

fn portable_panel_scores(q: &[i8], t: &[u8], width: usize, out: &mut [i32; PANEL_QUERIES * PANEL_TARGETS]) {
    for (i, row) in q.chunks_exact(width).take(PANEL_QUERIES).enumerate() {
        for j in 0..PANEL_TARGETS {
            out[i * PANEL_TARGETS + j] = row
                .chunks_exact(4)
                .enumerate()
                .map(|(step, four)| {
                    let at = step * PANEL_TARGETS * 4 + j * 4;
                    four.iter()
                        .zip(&t[at..at + 4])
                        .map(|(&a, &b)| a as i32 * b as i32)
                        .sum::<i32>()
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{PANEL_QUERIES, PANEL_TARGETS};

    /// 8 x 2 accumulators of 16 targets each; per 4-value step two panel loads and eight query
    /// broadcasts feed 16 `vpdpbusd`.
    #[allow(clippy::needless_range_loop)] // fixed-size register tiles read best indexed
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn panel_scores(q: &[i8], t: &[u8], width: usize, out: &mut [i32; PANEL_QUERIES * PANEL_TARGETS]) {
        assert!(width % 4 == 0 && q.len() >= PANEL_QUERIES * width && t.len() >= PANEL_TARGETS * width);
        let mut acc = [[_mm512_setzero_si512(); 2]; PANEL_QUERIES];
        let (q, t) = (q.as_ptr(), t.as_ptr());
        for step in 0..width / 4 {
            let lo = _mm512_loadu_si512(t.add(step * PANEL_TARGETS * 4) as *const _);
            let hi = _mm512_loadu_si512(t.add(step * PANEL_TARGETS * 4 + 64) as *const _);
            for i in 0..PANEL_QUERIES {
                let four = _mm512_set1_epi32((q.add(i * width + step * 4) as *const i32).read_unaligned());
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], lo, four);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], hi, four);
            }
        }
        for i in 0..PANEL_QUERIES {
            _mm512_storeu_si512(out.as_mut_ptr().add(i * PANEL_TARGETS) as *mut _, acc[i][0]);
            _mm512_storeu_si512(out.as_mut_ptr().add(i * PANEL_TARGETS + 16) as *mut _, acc[i][1]);
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
    let (packed, target_scale) = {
        let tq = quantise(targets, dim);
        (pack_targets(&tq.data, tq.width), tq.scale)
    };
    let qq = quantise(queries, dim);
    let width = qq.width;
    let kernel = panel_kernel();
    qq.data
        .par_chunks(QUERY_BLOCK * width)
        .enumerate()
        .flat_map_iter(|(block, qblock)| {
            let q0 = block * QUERY_BLOCK;
            let bq = qblock.len() / width;
            let mut best: Vec<TopK> = (0..bq).map(|_| TopK::new(deep)).collect();
            let mut rows = qblock.to_vec();
            rows.resize(bq.div_ceil(PANEL_QUERIES) * PANEL_QUERIES * width, 0);
            let mut raw = [0i32; PANEL_QUERIES * PANEL_TARGETS];
            let mut approx = [0f32; PANEL_TARGETS];
            for (panel, tpanel) in packed.chunks_exact(PANEL_TARGETS * width).enumerate() {
                let t0 = panel * PANEL_TARGETS;
                let bt = PANEL_TARGETS.min(nt - t0);
                for (m, qpanel) in rows.chunks_exact(PANEL_QUERIES * width).enumerate() {
                    kernel(qpanel, tpanel, width, &mut raw);
                    for (r, scores) in raw.chunks_exact(PANEL_TARGETS).enumerate() {
                        let i = m * PANEL_QUERIES + r;
                        if i >= bq {
                            break;
                        }
                        let (sq, offset) = (qq.scale[q0 + i], 128 * qq.sum[q0 + i]);
                        for ((a, &s), &st) in approx.iter_mut().zip(scores).zip(&target_scale[t0..t0 + bt]) {
                            *a = sq * st * (s - offset) as f32;
                        }
                        best[i].offer(&approx[..bt], t0 as u32);
                    }
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

    /// One micro-kernel's inputs: `PANEL_QUERIES` query rows and the target rows of one panel (29 of
    /// 32, so the panel's padding runs), random bytes with the extremes included.
    fn kernel_inputs(width: usize) -> (Vec<i8>, Vec<i8>) {
        let mut rng = saha_common::rng::Rng::new(9);
        let mut byte = || (rng.below(256) as i32 - 128) as i8;
        let mut q: Vec<i8> = (0..PANEL_QUERIES * width).map(|_| byte()).collect();
        let mut t: Vec<i8> = (0..29 * width).map(|_| byte()).collect();
        q[..width].fill(-128);
        q[width..2 * width].fill(127);
        t[..width].fill(127);
        t[width..2 * width].fill(-128);
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
        for width in [4, 64, 192, 1536] {
            let (q, t) = kernel_inputs(width);
            let panel = pack_targets(&t, width);
            let mut a = [i32::MIN; PANEL_QUERIES * PANEL_TARGETS];
            let mut b = [0; PANEL_QUERIES * PANEL_TARGETS];
            // SAFETY: the features the kernel is compiled for were detected above.
            unsafe { vnni::panel_scores(&q, &panel, width, &mut a) };
            portable_panel_scores(&q, &panel, width, &mut b);
            assert_eq!(a, b, "width {width}: the VNNI kernel differs from the portable loop");
            eprintln!("vnni_kernel_matches_portable: the AVX-512 VNNI kernel checked at width {width}");
        }
    }

    /// Packing and the portable loop against a plain i64 dot product per pair, so that the
    /// reference the kernel is compared with is itself checked (and runs on every CPU).
    #[test]
    fn portable_panel_scores_are_the_offset_dot_products() {
        let width = 128;
        let (q, t) = kernel_inputs(width);
        let panel = pack_targets(&t, width);
        assert_eq!(panel.len(), PANEL_TARGETS * width);
        let mut got = [i32::MIN; PANEL_QUERIES * PANEL_TARGETS];
        portable_panel_scores(&q, &panel, width, &mut got);
        for i in 0..PANEL_QUERIES {
            let qi = &q[i * width..(i + 1) * width];
            for j in 0..PANEL_TARGETS {
                // Padded targets are zero vectors: 128 after the offset.
                let want: i64 = (0..width)
                    .map(|k| qi[k] as i64 * (t.get(j * width + k).map_or(0, |&x| x as i64) + 128))
                    .sum();
                assert_eq!(got[i * PANEL_TARGETS + j] as i64, want, "query {i}, target {j}");
            }
        }
        assert_eq!(got[0], -128 * 255 * width as i32);
        assert_eq!(got[PANEL_TARGETS + 1], 0);
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
        // 300 queries: one full block of 256 and one whose last micro-panel is padded; 2000
        // targets: the last panel holds 16.
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
