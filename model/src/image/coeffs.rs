//! Per-axis convolution coefficient tables, computed as Pillow's `precompute_coeffs` and
//! `normalize_coeffs_8bpc` do (libImaging/Resample.c).

use super::filters::Filter;

/// Fixed-point precision of the 8-bit resampler: 8 bits for the result, 2 for overflow, the rest fraction.
pub(crate) const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Coefficients of one resampling axis.
#[derive(Clone, Debug)]
pub(crate) struct AxisCoeffs {
    /// Maximum number of taps of one output sample (row stride of `weights` and `fixed`).
    pub ksize: usize,
    /// For each output sample: first source index and number of taps.
    pub bounds: Vec<(usize, usize)>,
    /// Normalised double weights (`ksize` per output sample, unused taps zero).
    pub weights: Vec<f64>,
}

impl AxisCoeffs {
    /// Coefficients for resampling `in_size` source samples (the box `[0, in_size)`) to `out_size` samples.
    pub fn new(in_size: usize, out_size: usize, filter: Filter) -> AxisCoeffs {
        let support0 = filter.support().expect("convolution filter");
        // Pillow passes the box as C floats and takes the difference in float.
        let in0 = 0.0f32;
        let in1 = in_size as f32;
        let scale = (in1 - in0) as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = support0 * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;

        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0.0f64; out_size * ksize];
        let ss = 1.0 / filterscale;
        for xx in 0..out_size {
            let center = in0 as f64 + (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero; a negative start is clamped to 0 anyway.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin);
            let k = &mut weights[xx * ksize..(xx + 1) * ksize];
            let mut ww = 0.0f64;
            for (x, slot) in k.iter_mut().enumerate().take(count) {
                let w = filter.kernel(((x + xmin) as f64 - center + 0.5) * ss);
                *slot = w;
                ww += w;
            }
            if ww != 0.0 {
                for slot in k.iter_mut().take(count) {
                    *slot /= ww;
                }
            }
            bounds.push((xmin, count));
        }
        AxisCoeffs { ksize, bounds, weights }
    }

    /// The weights in Pillow's 8-bit fixed point (round half away from zero).
    pub fn fixed_point(&self) -> Vec<i32> {
        let one = (1u32 << PRECISION_BITS) as f64;
        self.weights
            .iter()
            .map(|&w| {
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect()
    }

    /// First and one-past-last source index any output sample reads.
    pub fn source_span(&self) -> (usize, usize) {
        let first = self.bounds.first().map_or(0, |b| b.0);
        let last = self.bounds.last().map_or(0, |b| b.0 + b.1);
        (first, last.max(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_scale_bicubic_is_a_delta() {
        let c = AxisCoeffs::new(10, 10, Filter::Bicubic);
        assert_eq!(c.ksize, 5);
        for (xx, &(xmin, count)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + count];
            let center = xx - xmin;
            for (i, &w) in k.iter().enumerate() {
                assert_eq!(w, if i == center { 1.0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn downscale_widens_support() {
        let c = AxisCoeffs::new(100, 10, Filter::Bicubic);
        // support 2 * 10 = 20 -> ksize 41
        assert_eq!(c.ksize, 41);
        let fixed = c.fixed_point();
        for (xx, &(_, count)) in c.bounds.iter().enumerate() {
            let sum: i64 = fixed[xx * c.ksize..xx * c.ksize + count]
                .iter()
                .map(|&v| v as i64)
                .sum();
            assert!((sum - (1 << PRECISION_BITS)).abs() <= count as i64, "{sum}");
        }
    }
}
