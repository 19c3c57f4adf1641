//! Fast retrieval: int8 scores pick a pool `oversample` times deeper than asked, which is then
//! re-scored exactly in f32. The answer equals exact retrieval whenever the true top `p` lie inside
//! the int8 pool; the tests and the benchmark check that it does.
//!
//! The int8 product is laid out as a GEMM micro-kernel, so no score needs a horizontal sum:
//! targets are packed in panels of `PANEL_TARGETS`, four bytes of each target side by side per
//! 4-value step, so one register holds 8 (AVX2) or 16 (AVX-512) targets' next four values; each
//! query's four values are broadcast and multiplied with every target's four at once, into
//! `PANEL_QUERIES x PANEL_TARGETS` accumulators held in registers. Each kernel has its own
//! precision (8 bits for VNNI, 7 for AVX2), so the pool may differ between them; the candidates do
//! not wherever each pool holds the true top `p`.

use rayon::prelude::*;

use crate::retrieve::{rescore, TopK};

/// Quantised rows are padded with zeros to a multiple of this many values.
const LANES: usize = 64;
/// Queries scored at once by the micro-kernel (its accumulator rows).
const PANEL_QUERIES: usize = 8;
/// Targets in one packed panel (two AVX-512 or four AVX2 registers per accumulator row).
const PANEL_TARGETS: usize = 32;
/// Queries one task ranks: each task streams every target panel once, so this sets how often the
/// packed targets are read from memory (about 154 MB at 100k x 1536) against the task's queries
/// held in L2 (`QUERY_BLOCK x width` bytes).
const QUERY_BLOCK: usize = 256;

/// Rows less a fixed row `shift`, quantised symmetrically (`x - shift ~ scale * q`, `q` in
/// `-levels..=levels`), padded with zeros to a multiple of 64 values; `sum` is each row's sum of
/// quantised values.
struct Quantised {
    data: Vec<i8>,
    scale: Vec<f32>,
    sum: Vec<i32>,
    width: usize,
}

fn quantise(m: &[f32], dim: usize, levels: i32, shift: &[f32]) -> Quantised {
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
            let row = || m[r * dim..(r + 1) * dim].iter().zip(shift).map(|(x, c)| x - c);
            let max = row().fold(0f32, |a, x| a.max(x.abs()));
            let levels = levels as f32;
            *s = if max > 0.0 { max / levels } else { 1.0 };
            let mut acc = 0i32;
            for (o, x) in out.iter_mut().zip(row()) {
                *o = (x / *s).round().clamp(-levels, levels) as i8;
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

/// The int8 micro-kernels fast mode has. Each computes, for 8 query rows against one packed panel of
/// 32 targets, `sum_k (q[k] + query_offset()) * (t[k] + target_offset())`: values are stored as
/// bytes shifted by the offset (at most one of the two is not zero), read as unsigned where the
/// offset is not zero and as signed where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int8Kernel {
    /// AVX-512 VNNI: one `vpdpbusd` multiplies 16 targets' four unsigned bytes by the query's four
    /// signed ones and adds them up; targets are stored offset by 128 to make them unsigned.
    Vnni,
    /// AVX2, at 7 bits (values in -63..=63): `vpmaddubsw` multiplies the query's bytes, stored
    /// offset by 64 (1..=127, unsigned), by the targets' and adds pairs (at most 2 x 127 x 63), two
    /// 4-value steps are added in 16 bits (at most 32004, so never saturating), and `vpmaddwd` adds
    /// the pairs into 32-bit lanes: five instructions per 64 products, three of them multiplies.
    Avx2,
}

impl Int8Kernel {
    /// Whether this CPU can run the kernel.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Int8Kernel::Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Int8Kernel::Avx2 => has!("avx2"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The kernel fast mode uses unless told otherwise: VNNI where the CPU has it (8 bits, one
    /// instruction per 64 products), else AVX2 (7 bits), else none (fast mode then runs exact
    /// retrieval). The AVX2 kernel issues three multiplies per 64 products where the f32 product
    /// issues eight FMAs; a core with two FMA pipes and one 256-bit integer multiplier (AMD Zen 2,
    /// Intel Haswell) thus still runs it in at most 3/4 of the FMA product's cycles, and cores with two
    /// integer multipliers in 3/8.
    pub fn fastest_here() -> Option<Self> {
        [Int8Kernel::Vnni, Int8Kernel::Avx2].into_iter().find(|k| k.runs_here())
    }

    /// The name `--int8-kernel` takes.
    pub fn name(self) -> &'static str {
        match self {
            Int8Kernel::Vnni => "vnni",
            Int8Kernel::Avx2 => "avx2",
        }
    }

    /// The largest quantised magnitude: values lie in `-levels..=levels`.
    fn levels(self) -> i32 {
        match self {
            Int8Kernel::Vnni => 127,
            Int8Kernel::Avx2 => 63,
        }
    }

    /// What each query value is stored as, less the value itself.
    fn query_offset(self) -> i32 {
        match self {
            Int8Kernel::Vnni => 0,
            Int8Kernel::Avx2 => 64,
        }
    }

    /// What each target value is stored as, less the value itself.
    fn target_offset(self) -> i32 {
        match self {
            Int8Kernel::Vnni => 128,
            Int8Kernel::Avx2 => 0,
        }
    }

    /// Raw scores of 8 stored query rows against one packed panel.
    ///
    /// # Safety
    /// The CPU runs the kernel ([`Self::runs_here`]); it is checked once per search, not per panel.
    unsafe fn panel_scores(self, q: &[u8], t: &[u8], width: usize, out: &mut PanelScores) {
        // SAFETY: the caller guarantees that the CPU has the kernel's features.
        #[cfg(target_arch = "x86_64")]
        match self {
            Int8Kernel::Vnni => vnni::panel_scores(q, t, width, out),
            Int8Kernel::Avx2 => avx2::panel_scores(q, t, width, out),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (q, t, width, out);
            unreachable!("{self:?}: no int8 kernel runs on this CPU")
        }
    }
}

/// `out[query * PANEL_TARGETS + target]`: one micro-kernel call's raw scores.
type PanelScores = [i32; PANEL_QUERIES * PANEL_TARGETS];

/// A quantised value as the kernels read it: `x + offset` as a byte.
fn stored(x: i8, offset: i32) -> u8 {
    (x as i32 + offset) as u8
}

/// Quantised target rows (`[rows, width]`) as panels of `PANEL_TARGETS`: within a panel, for each
/// step of 4 values, every target's 4 bytes in turn, each stored with `offset`. Rows past the end
/// are zero values.
fn pack_targets(data: &[i8], width: usize, offset: i32) -> Vec<u8> {
    let rows = data.len() / width;
    let panel_len = PANEL_TARGETS * width;
    let stored = |x: i8| stored(x, offset);
    let mut packed = vec![stored(0); rows.div_ceil(PANEL_TARGETS) * panel_len];
    packed.par_chunks_mut(panel_len).enumerate().for_each(|(p, panel)| {
        for (j, row) in data[p * panel_len..]
            .chunks_exact(width)
            .take(PANEL_TARGETS)
            .enumerate()
        {
            for (step, four) in row.chunks_exact(4).enumerate() {
                let at = step * PANEL_TARGETS * 4 + j * 4;
                for (o, &x) in panel[at..at + 4].iter_mut().zip(four) {
                    *o = stored(x);
                }
            }
        }
    });
    packed
}

/// What the kernels compute, one product at a time: the reference they are tested against. Stored
/// bytes are read as unsigned where their side is offset, as signed where it is not.
#[cfg(test)]
fn portable_panel_scores(q: &[u8], t: &[u8], width: usize, kernel: Int8Kernel, out: &mut PanelScores) {
    let read = |offset: i32| move |b: u8| if offset == 0 { b as i8 as i32 } else { b as i32 };
    let (query, value) = (read(kernel.query_offset()), read(kernel.target_offset()));
    for (i, row) in q.chunks_exact(width).take(PANEL_QUERIES).enumerate() {
        for j in 0..PANEL_TARGETS {
            out[i * PANEL_TARGETS + j] = row
                .chunks_exact(4)
                .enumerate()
                .map(|(step, four)| {
                    let at = step * PANEL_TARGETS * 4 + j * 4;
                    four.iter()
                        .zip(&t[at..at + 4])
                        .map(|(&a, &b)| query(a) * value(b))
                        .sum::<i32>()
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{PanelScores, PANEL_QUERIES, PANEL_TARGETS};

    /// 8 x 2 accumulators of 16 targets each; per 4-value step two panel loads and eight query
    /// broadcasts feed 16 `vpdpbusd`.
    #[allow(clippy::needless_range_loop)] // fixed-size register tiles read best indexed
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn panel_scores(q: &[u8], t: &[u8], width: usize, out: &mut PanelScores) {
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{PanelScores, PANEL_QUERIES, PANEL_TARGETS};

    /// Two queries at a time: 2 x 4 accumulators of 8 targets each; per two 4-value steps, four query
    /// broadcasts and eight panel loads feed 8 multiply-add / multiply-add / add / widen / add
    /// sequences. Queries are the unsigned operand (stored 1..=127), targets the signed one
    /// (-63..=63), so each 16-bit lane of one step is at most 2 x 127 x 63 = 16002 in magnitude and
    /// two steps' lanes add up without saturating.
    #[allow(clippy::needless_range_loop)] // fixed-size register tiles read best indexed
    #[target_feature(enable = "avx2")]
    pub unsafe fn panel_scores(q: &[u8], t: &[u8], width: usize, out: &mut PanelScores) {
        assert!(width % 8 == 0 && q.len() >= PANEL_QUERIES * width && t.len() >= PANEL_TARGETS * width);
        let ones = _mm256_set1_epi16(1);
        let four = |at: *const u8| _mm256_set1_epi32((at as *const i32).read_unaligned());
        for pair in 0..PANEL_QUERIES / 2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; 2];
            let rows = q.as_ptr().add(pair * 2 * width);
            for step in (0..width / 4).step_by(2) {
                let panel = t.as_ptr().add(step * PANEL_TARGETS * 4);
                let query = [0, 1].map(|i| {
                    let at = rows.add(i * width + step * 4);
                    [four(at), four(at.add(4))]
                });
                for j in 0..4 {
                    let now = _mm256_loadu_si256(panel.add(32 * j) as *const _);
                    let next = _mm256_loadu_si256(panel.add(PANEL_TARGETS * 4 + 32 * j) as *const _);
                    for i in 0..2 {
                        let sums = _mm256_add_epi16(
                            _mm256_maddubs_epi16(query[i][0], now),
                            _mm256_maddubs_epi16(query[i][1], next),
                        );
                        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(sums, ones));
                    }
                }
            }
            for i in 0..2 {
                for j in 0..4 {
                    let at = (pair * 2 + i) * PANEL_TARGETS + 8 * j;
                    _mm256_storeu_si256(out.as_mut_ptr().add(at) as *mut _, acc[i][j]);
                }
            }
        }
    }
}

/// The mean of `m`'s rows: f64 sums over fixed blocks of rows, added in order, so the same bits on
/// every run whatever the threads do.
fn mean_row(m: &[f32], dim: usize) -> Vec<f32> {
    let rows = m.len() / dim;
    let partial: Vec<Vec<f64>> = m
        .par_chunks(1024 * dim)
        .map(|block| {
            let mut sum = vec![0f64; dim];
            for row in block.chunks_exact(dim) {
                for (a, &x) in sum.iter_mut().zip(row) {
                    *a += x as f64;
                }
            }
            sum
        })
        .collect();
    let mut total = vec![0f64; dim];
    for block in partial {
        for (a, b) in total.iter_mut().zip(block) {
            *a += b;
        }
    }
    total.into_iter().map(|s| (s / rows.max(1) as f64) as f32).collect()
}

/// One subset's targets made ready for fast search by one kernel: centred on their mean, quantised
/// and packed, next to the f32 rows the pre-selection is re-scored against.
///
/// Centring changes no query's order of targets (`q·(t - c) = q·t - q·c`, and `q·c` is the same for
/// every target), but it takes out what all targets share. Real embeddings share a few large
/// channels (a Qwen2 0.5B decoder's: three channels of mean |x| 0.40-0.46 in unit vectors, against a
/// median of 0.012), which would otherwise set each row's quantisation step and leave the other
/// channels a few levels. On 2855 of its embeddings (each item searched among all), the true top 45
/// of 40 items fell outside a 7-bit pool of 90 without centring, of none with it (worst member at
/// rank 66); at 8 bits the worst member sat at rank 82 without centring, 56 with it.
pub struct FastTargets<'a> {
    targets: &'a [f32],
    dim: usize,
    kernel: Int8Kernel,
    packed: Vec<u8>,
    scale: Vec<f32>,
    sum: Vec<i32>,
}

/// Fast search against exact search on a sample of queries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FastCheck {
    /// Queries searched both ways.
    pub queries: usize,
    /// Of those, queries whose candidates (targets, order or scores) differ.
    pub differing: usize,
    /// Targets of the exact top `p` missing from the fast one, summed over the queries.
    pub missed: usize,
}

impl std::ops::AddAssign for FastCheck {
    fn add_assign(&mut self, other: Self) {
        self.queries += other.queries;
        self.differing += other.differing;
        self.missed += other.missed;
    }
}

impl<'a> FastTargets<'a> {
    /// `targets` is `[nt, dim]`, row-major; `kernel` must run on this CPU ([`Int8Kernel::runs_here`]).
    pub fn new(targets: &'a [f32], dim: usize, kernel: Int8Kernel) -> Self {
        assert!(
            kernel.runs_here(),
            "the {} int8 kernel does not run on this CPU",
            kernel.name()
        );
        let tq = quantise(targets, dim, kernel.levels(), &mean_row(targets, dim));
        Self {
            targets,
            dim,
            kernel,
            packed: pack_targets(&tq.data, tq.width, kernel.target_offset()),
            scale: tq.scale,
            sum: tq.sum,
        }
    }

    /// The `p` best (target index, exact f32 score) per query, like [`crate::retrieve::top_p`],
    /// chosen from an int8 pre-selection `oversample * p` deep. Each query's answer depends on that
    /// query alone.
    pub fn top_p(
        &self,
        queries: &[f32],
        p: usize,
        oversample: usize,
        on_block: &(dyn Fn(usize) + Sync),
    ) -> Vec<Vec<(u32, f32)>> {
        let (dim, kernel) = (self.dim, self.kernel);
        let nt = self.scale.len();
        let p = p.min(nt);
        let deep = p.saturating_mul(oversample.max(1)).min(nt);
        let (query_offset, target_offset) = (kernel.query_offset(), kernel.target_offset());
        let qq = quantise(queries, dim, kernel.levels(), &vec![0.0; dim]);
        let width = qq.width;
        qq.data
            .par_chunks(QUERY_BLOCK * width)
            .enumerate()
            .flat_map_iter(|(block, qblock)| {
                let q0 = block * QUERY_BLOCK;
                let bq = qblock.len() / width;
                let mut best: Vec<TopK> = (0..bq).map(|_| TopK::new(deep)).collect();
                let mut rows: Vec<u8> = qblock.iter().map(|&x| stored(x, query_offset)).collect();
                rows.resize(bq.div_ceil(PANEL_QUERIES) * PANEL_QUERIES * width, 0);
                let mut raw = [0i32; PANEL_QUERIES * PANEL_TARGETS];
                let mut approx = [0f32; PANEL_TARGETS];
                for (panel, tpanel) in self.packed.chunks_exact(PANEL_TARGETS * width).enumerate() {
                    let t0 = panel * PANEL_TARGETS;
                    let bt = PANEL_TARGETS.min(nt - t0);
                    for (m, qpanel) in rows.chunks_exact(PANEL_QUERIES * width).enumerate() {
                        // SAFETY: the CPU runs the kernel (asserted by `new`).
                        unsafe { kernel.panel_scores(qpanel, tpanel, width, &mut raw) };
                        for (r, scores) in raw.chunks_exact(PANEL_TARGETS).enumerate() {
                            let i = m * PANEL_QUERIES + r;
                            if i >= bq {
                                break;
                            }
                            // The offsets' share of the raw score: one side's offset times the other's sum.
                            let (sq, from_target_offset) = (qq.scale[q0 + i], target_offset * qq.sum[q0 + i]);
                            let target_rows = self.scale[t0..t0 + bt].iter().zip(&self.sum[t0..t0 + bt]);
                            for ((a, &s), (&st, &ts)) in approx.iter_mut().zip(scores).zip(target_rows) {
                                *a = sq * st * (s - from_target_offset - query_offset * ts) as f32;
                            }
                            best[i].offer(&approx[..bt], t0 as u32);
                        }
                    }
                }
                on_block(bq);
                best.into_iter().enumerate().map(move |(i, top)| {
                    rescore(
                        &queries[(q0 + i) * dim..(q0 + i + 1) * dim],
                        self.targets,
                        dim,
                        top.into_sorted(),
                        p,
                    )
                })
            })
            .collect()
    }

    /// Searches the rows `sample` of `queries` (`[nq, dim]`) both exactly and fast, and counts where
    /// they differ. Since each query's answer depends on that query alone, the fast answers are those
    /// a search of all of `queries` gives.
    pub fn check(&self, queries: &[f32], sample: &[usize], p: usize, oversample: usize) -> FastCheck {
        let dim = self.dim;
        let rows: Vec<f32> = sample
            .iter()
            .flat_map(|&i| &queries[i * dim..(i + 1) * dim])
            .copied()
            .collect();
        let exact = crate::retrieve::top_p(&rows, self.targets, dim, p, &|_| {});
        let fast = self.top_p(&rows, p, oversample, &|_| {});
        let mut check = FastCheck {
            queries: sample.len(),
            ..FastCheck::default()
        };
        for (e, f) in exact.iter().zip(&fast) {
            if e != f {
                check.differing += 1;
                check.missed += e.iter().filter(|(t, _)| !f.iter().any(|(u, _)| u == t)).count();
            }
        }
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNELS: [Int8Kernel; 2] = [Int8Kernel::Vnni, Int8Kernel::Avx2];

    /// One micro-kernel's inputs: `PANEL_QUERIES` query rows and the target rows of one panel (29 of
    /// 32, so the panel's padding runs), random values in `quantise`'s range `-levels..=levels` with
    /// the extremes included (every sign of the largest products, row after row).
    fn kernel_inputs(width: usize, levels: i32) -> (Vec<i8>, Vec<i8>) {
        let mut rng = saha_common::rng::Rng::new(9);
        let mut byte = || (rng.below(2 * levels as usize + 1) as i32 - levels) as i8;
        let mut q: Vec<i8> = (0..PANEL_QUERIES * width).map(|_| byte()).collect();
        let mut t: Vec<i8> = (0..29 * width).map(|_| byte()).collect();
        let extreme = levels as i8;
        q[..width].fill(-extreme);
        q[width..2 * width].fill(extreme);
        t[..width].fill(extreme);
        t[width..2 * width].fill(-extreme);
        (q, t)
    }

    /// Query rows as the kernel reads them.
    fn stored_rows(q: &[i8], kernel: Int8Kernel) -> Vec<u8> {
        q.iter().map(|&x| stored(x, kernel.query_offset())).collect()
    }

    /// Each SIMD kernel against the portable loop. A kernel the CPU cannot run is not checked: the
    /// test says so on stderr; set `SAHA_REQUIRE_INT8_KERNELS=vnni,avx2` (or one of them) to make
    /// that a failure instead.
    #[test]
    fn simd_kernels_match_the_portable_loop() {
        let required = std::env::var("SAHA_REQUIRE_INT8_KERNELS").unwrap_or_default();
        for kernel in KERNELS {
            let name = kernel.name();
            if !kernel.runs_here() {
                assert!(
                    !required.split(',').any(|r| r.trim() == name),
                    "the {name} int8 kernel cannot run on this CPU, and SAHA_REQUIRE_INT8_KERNELS names it"
                );
                eprintln!(
                    "simd_kernels_match_the_portable_loop: NOT CHECKED: the {name} kernel cannot run on this CPU"
                );
                continue;
            }
            for width in [8, 64, 192, 1536] {
                let (q, t) = kernel_inputs(width, kernel.levels());
                let q = stored_rows(&q, kernel);
                let panel = pack_targets(&t, width, kernel.target_offset());
                let mut a = [i32::MIN; PANEL_QUERIES * PANEL_TARGETS];
                let mut b = [0; PANEL_QUERIES * PANEL_TARGETS];
                // SAFETY: the kernel runs here (checked above).
                unsafe { kernel.panel_scores(&q, &panel, width, &mut a) };
                portable_panel_scores(&q, &panel, width, kernel, &mut b);
                assert_eq!(a, b, "width {width}: the {name} kernel differs from the portable loop");
            }
            eprintln!("simd_kernels_match_the_portable_loop: the {name} kernel checked");
        }
    }

    /// Storing, packing and the portable loop against a plain i64 dot product per pair, for every
    /// kernel's layout, so that the reference the kernels are compared with is itself checked (and
    /// runs on every CPU).
    #[test]
    fn portable_panel_scores_are_the_offset_dot_products() {
        let width = 128;
        for kernel in KERNELS {
            let (q, t) = kernel_inputs(width, kernel.levels());
            let (qo, to) = (kernel.query_offset() as i64, kernel.target_offset() as i64);
            let panel = pack_targets(&t, width, kernel.target_offset());
            assert_eq!(panel.len(), PANEL_TARGETS * width);
            let mut got = [i32::MIN; PANEL_QUERIES * PANEL_TARGETS];
            portable_panel_scores(&stored_rows(&q, kernel), &panel, width, kernel, &mut got);
            for i in 0..PANEL_QUERIES {
                let qi = &q[i * width..(i + 1) * width];
                for j in 0..PANEL_TARGETS {
                    // Padded targets are zero vectors: `offset` once stored.
                    let want: i64 = (0..width)
                        .map(|k| (qi[k] as i64 + qo) * (t.get(j * width + k).map_or(0, |&x| x as i64) + to))
                        .sum();
                    assert_eq!(
                        got[i * PANEL_TARGETS + j] as i64,
                        want,
                        "{kernel:?}: query {i}, target {j}"
                    );
                }
            }
            let (l, w) = (kernel.levels() as i64, width as i64);
            assert_eq!(got[0] as i64, (qo - l) * (l + to) * w);
            assert_eq!(got[PANEL_TARGETS + 1] as i64, (qo + l) * (to - l) * w);
        }
    }

    /// Targets whose int8 codes are all the same while their exact scores rise with the index (and as
    /// many opposite ones, so that centring moves nothing): a pool as deep as `p` keeps the lowest
    /// indices (ties), exact search the highest.
    #[test]
    fn check_counts_the_queries_the_int8_pool_got_wrong() {
        let dim = 8;
        let row = |first: f32, second: f32| (0..dim).map(move |k| [first, second].get(k).copied().unwrap_or(0.0));
        let near: Vec<f32> = (0..20).flat_map(|j| row(1.0, 0.3 + j as f32 * 1e-4)).collect();
        let t: Vec<f32> = near.iter().copied().chain(near.iter().map(|x| -x)).collect();
        let q: Vec<f32> = (0..5).flat_map(|_| row(1.0, 1.0)).collect();
        for kernel in KERNELS.into_iter().filter(|k| k.runs_here()) {
            let targets = FastTargets::new(&t, dim, kernel);
            let shallow = FastCheck {
                queries: 2,
                differing: 2,
                missed: 6,
            };
            assert_eq!(targets.check(&q, &[0, 3], 3, 1), shallow, "{kernel:?}");
            let deep = FastCheck {
                queries: 2,
                ..FastCheck::default()
            };
            assert_eq!(targets.check(&q, &[0, 3], 3, 7), deep, "{kernel:?}");
        }
    }

    /// Vectors in 30 clusters of small values that all share one large channel, as real embeddings
    /// do: without centring, that channel sets every row's quantisation step and the pool misses (a
    /// numpy statement of the same data: 33 of 200 queries at 8 bits, 151 at 7).
    #[test]
    fn centring_keeps_the_pool_when_every_vector_shares_a_large_channel() {
        let dim = 64;
        let mut rng = saha_common::rng::Rng::new(7);
        let mut g = || (rng.below(20001) as f32 / 10000.0) - 1.0;
        let centres: Vec<f32> = (0..30 * dim).map(|_| 0.1 * g()).collect();
        let mut make = |n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|i| {
                    (0..dim)
                        .map(|k| {
                            if k == 0 {
                                1.0
                            } else {
                                centres[(i % 30) * dim + k] + 0.01 * g()
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (q, t) = (make(200), make(3000));
        let all: Vec<usize> = (0..200).collect();
        for kernel in KERNELS.into_iter().filter(|k| k.runs_here()) {
            let check = FastTargets::new(&t, dim, kernel).check(&q, &all, 10, 3);
            assert_eq!(check.differing, 0, "{kernel:?}: {check:?}");
        }
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
        let ids = |v: &Vec<(u32, f32)>| v.iter().map(|x| x.0).collect::<Vec<_>>();
        for kernel in KERNELS.into_iter().filter(|k| k.runs_here()) {
            let fast = FastTargets::new(&t, dim, kernel).top_p(&q, 12, 4, &|_| {});
            for (i, (e, f)) in exact.iter().zip(&fast).enumerate() {
                assert_eq!(ids(e), ids(f), "{kernel:?}: query {i}");
            }
        }
    }
}
