//! Inner loops that must vectorise: a branch-free `exp` and the masked softmax of one attention row,
//! compiled for AVX-512 and AVX2 as well as the baseline and chosen at run time.

/// `e^x` without branches or library calls, so loops over it vectorise: Cephes' `expf` (range reduction
/// by ln 2, degree-6 polynomial), within 2 ulp of libm. Inputs below −87.3 (where libm's result leaves
/// the normal range and it takes a slow path per call) give 0; inputs are capped at 88 (1.65e38).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const LOWEST: f32 = -87.336_55;
    // Round to nearest by adding and subtracting 1.5 · 2^23: pure SSE2, no `roundps` needed.
    const ROUNDER: f32 = 12_582_912.0;
    let xc = x.clamp(LOWEST, 88.0);
    let shifted = xc * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    // n as an integer, read from the mantissa of `shifted` (1.5 · 2^23 + n, where one unit is the last
    // bit): `n as i32` saturates and maps NaN to 0, which costs a scalar conversion per lane.
    let n_int = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let two_n = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    if x < LOWEST {
        0.0
    } else {
        y * two_n
    }
}

/// How many leading entries of a mask row can be visible: one past the last entry that is not
/// `f32::MIN` (0 when none is). Entries after it (the causal future, right padding) get probability 0.
pub fn visible_len(mask_row: &[f32]) -> usize {
    mask_row.iter().rposition(|&m| m != f32::MIN).map_or(0, |i| i + 1)
}

/// `x ← softmax(x · scale + mask)` for one row whose entries from `visible` on are masked (see
/// [`visible_len`]). Masked entries come out 0 (their `exp` underflows); a row with every entry masked
/// comes out uniform, as the plain formula's `exp(MIN − MIN)` gives.
pub fn masked_softmax_row(x: &mut [f32], mask: &[f32], visible: usize, scale: f32) {
    if visible == 0 {
        x.fill(1.0 / x.len() as f32);
        return;
    }
    let (live, hidden) = x.split_at_mut(visible);
    hidden.fill(0.0);
    let mask = &mask[..visible];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { softmax_avx512(live, mask, scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { softmax_avx2(live, mask, scale) };
        }
    }
    softmax(live, mask, scale)
}

/// `softmax` over each `len`-long row of `values`, in place (no mask).
pub fn softmax_rows(values: &mut [f32], len: usize) {
    let zeros = vec![0f32; len];
    super::for_rows(values, len, |_, row| masked_softmax_row(row, &zeros, len, 1.0));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(x: &mut [f32], mask: &[f32], scale: f32) {
    softmax(x, mask, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(x: &mut [f32], mask: &[f32], scale: f32) {
    softmax(x, mask, scale)
}

/// Lanes of the partial max and sum: independent accumulators the compiler keeps in one vector.
const LANES: usize = 16;

/// `x ← softmax(x · scale + mask)` for a row with at least one visible entry, in whole vectors: the
/// last partial vector goes through a padded copy (padding `f32::MIN`, whose `exp` is 0).
#[inline(always)]
fn softmax(x: &mut [f32], mask: &[f32], scale: f32) {
    let full = x.len() / LANES * LANES;
    let (body, rest) = x.split_at_mut(full);
    let (mask_body, mask_rest) = mask.split_at(full);
    let mut tail = [f32::MIN; LANES];
    for (t, (v, m)) in tail.iter_mut().zip(rest.iter().zip(mask_rest)) {
        *t = v * scale + m;
    }
    let mut max = tail;
    for (xc, mc) in body.chunks_exact_mut(LANES).zip(mask_body.chunks_exact(LANES)) {
        for i in 0..LANES {
            xc[i] = xc[i] * scale + mc[i];
            max[i] = if xc[i] > max[i] { xc[i] } else { max[i] };
        }
    }
    let row_max = max.iter().fold(f32::MIN, |a, &b| if b > a { b } else { a });
    let mut sum = [0f32; LANES];
    for i in 0..LANES {
        tail[i] = exp(tail[i] - row_max);
        sum[i] = tail[i];
    }
    for xc in body.chunks_exact_mut(LANES) {
        for i in 0..LANES {
            xc[i] = exp(xc[i] - row_max);
            sum[i] += xc[i];
        }
    }
    let inverse = 1.0 / sum.iter().sum::<f32>();
    for xc in body.chunks_exact_mut(LANES) {
        for v in xc {
            *v *= inverse;
        }
    }
    for (v, t) in rest.iter_mut().zip(tail) {
        *v = t * inverse;
    }
}

/// `out ← x ⊙ σ(a · x)` (times `up` when given) for one chunk, `σ(t) = 1 / (1 + e^(−t))`: SiLU for
/// a = 1 (SwiGLU's `silu(gate) ⊙ up`), QuickGELU for a = 1.702. One pass, vectorised.
pub fn sigmoid_gate(x: &[f32], a: f32, up: Option<&[f32]>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { sigmoid_gate_avx512(x, a, up, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { sigmoid_gate_avx2(x, a, up, out) };
        }
    }
    sigmoid_gate_loop(x, a, up, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sigmoid_gate_avx512(x: &[f32], a: f32, up: Option<&[f32]>, out: &mut [f32]) {
    sigmoid_gate_loop(x, a, up, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sigmoid_gate_avx2(x: &[f32], a: f32, up: Option<&[f32]>, out: &mut [f32]) {
    sigmoid_gate_loop(x, a, up, out)
}

#[inline(always)]
fn sigmoid_gate_loop(x: &[f32], a: f32, up: Option<&[f32]>, out: &mut [f32]) {
    let gate = |v: f32| v / (1.0 + exp(-(a * v)));
    match up {
        Some(up) => {
            for ((o, &v), &u) in out.iter_mut().zip(x).zip(up) {
                *o = gate(v) * u;
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = gate(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_and_flushes_underflow_to_zero() {
        let mut worst = 0u32;
        let mut x = -87.3f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max(ours.to_bits().abs_diff(libm.to_bits()));
            x += 0.0137;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
    }

    #[test]
    fn exp_reads_the_same_power_of_two_as_a_cast_would() {
        // Every reachable n (the clamped range times log2 e), and the values around each rounding point.
        let rounder = 12_582_912f32;
        let mut x = -87.336_55f32 * std::f32::consts::LOG2_E;
        while x <= 88.0 * std::f32::consts::LOG2_E {
            let shifted = x + rounder;
            let n = shifted - rounder;
            assert_eq!(
                shifted.to_bits().wrapping_sub(rounder.to_bits()) as i32,
                n as i32,
                "at {x}"
            );
            x += 0.001;
        }
    }

    #[test]
    fn masked_softmax_matches_the_plain_formula() {
        for len in [1, 7, 16, 37, 50] {
            let scores: Vec<f32> = (0..len).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7).collect();
            for masked in [vec![], vec![0], (1..len).collect::<Vec<_>>(), (0..len).collect()] {
                let mask: Vec<f32> = (0..len)
                    .map(|i| if masked.contains(&i) { f32::MIN } else { 0.0 })
                    .collect();
                let mut ours = scores.clone();
                masked_softmax_row(&mut ours, &mask, visible_len(&mask), 0.5);
                let x: Vec<f32> = scores.iter().zip(&mask).map(|(s, m)| s * 0.5 + m).collect();
                let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                for (o, e) in ours.iter().zip(&e) {
                    assert!(
                        (o - e / sum).abs() <= 1e-6,
                        "len {len}, masked {masked:?}: {o} vs {}",
                        e / sum
                    );
                }
            }
        }
    }
}
