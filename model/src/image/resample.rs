//! Pillow's resampling kernels on raw sample buffers (libImaging/Resample.c and the nearest-neighbour
//! affine paths of libImaging/Geometry.c).
//!
//! * 8-bit: coefficients normalised in double, converted to fixed point with [`PRECISION_BITS`], a
//!   horizontal pass over the source rows the vertical pass will read, then a vertical pass; each
//!   sum starts at one half and is shifted and clipped to 0..=255.
//! * 16-bit (`I;16`): double coefficients and sums, rounded half away from zero, then Pillow's odd
//!   byte-wise clipping.
//! * NEAREST: Pillow's affine scale (accumulated source coordinate for 8-bit images, per-pixel coordinate
//!   for `I;16`).

use rayon::prelude::*;

use super::coeffs::{AxisCoeffs, PRECISION_BITS};
use super::filters::Filter;

/// Output rows per rayon task (small images stay on one thread).
const ROWS_PER_TASK: usize = 16;

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Which Pillow's `Image.resize` to reproduce.
///
/// | | Pillow 10 (the reference's 10.4.0) | Pillow 13 |
/// |---|---|---|
/// | pass order | horizontal first | vertical first when the height shrinks by more than twice the pixels the width shrinks by |
/// | default filter for `I;16` | NEAREST | BICUBIC |
/// | `I;16` with a convolution filter | raises (this module computes Pillow 13's result) | 16-bit resampler |
///
/// Pillow 11 to 12.2 mix the two (horizontal first, BICUBIC default, 16-bit resampler with a byte-wise
/// clipping bug for results outside 0..=65535) and are not modelled separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PillowCompat {
    /// Pillow 7 to 10 (the reference pins 10.4.0).
    #[default]
    Pillow10,
    /// Pillow 13.
    Pillow13,
}

impl PillowCompat {
    fn horizontal_first(self, width: usize, height: usize, out_width: usize, out_height: usize) -> bool {
        match self {
            PillowCompat::Pillow10 => true,
            PillowCompat::Pillow13 => {
                let dy = height as i64 - out_height as i64;
                let dx = width as i64 - out_width as i64;
                !(dy > 0 && dy > dx * 2)
            }
        }
    }
}

/// Resamples interleaved 8-bit samples (`channels` per pixel, 1 to 4) from `width`x`height` to
/// `out_width`x`out_height` with a convolution filter, exactly as Pillow 10.4's `ImagingResample` does for
/// 8-bit modes. NEAREST dispatches to [`nearest_u8`]. Sizes must be nonzero.
pub fn resample_u8(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
    filter: Filter,
) -> Vec<u8> {
    resample_u8_compat(
        src,
        width,
        height,
        channels,
        out_width,
        out_height,
        filter,
        PillowCompat::Pillow10,
    )
}

/// [`resample_u8`] for the given Pillow generation.
#[allow(clippy::too_many_arguments)]
pub fn resample_u8_compat(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
    filter: Filter,
    compat: PillowCompat,
) -> Vec<u8> {
    assert_eq!(src.len(), width * height * channels, "buffer size");
    assert!(
        width > 0 && height > 0 && out_width > 0 && out_height > 0,
        "zero-sized resample"
    );
    if filter == Filter::Nearest {
        return nearest_u8(src, width, height, channels, out_width, out_height);
    }
    let sizes = Sizes {
        width,
        height,
        out_width,
        out_height,
    };
    match channels {
        1 => two_pass::<u8, 1>(src, sizes, filter, compat),
        2 => two_pass::<u8, 2>(src, sizes, filter, compat),
        3 => two_pass::<u8, 3>(src, sizes, filter, compat),
        4 => two_pass::<u8, 4>(src, sizes, filter, compat),
        n => panic!("unsupported channel count {n}"),
    }
}

/// Resamples a 16-bit single-channel (`I;16`) image as Pillow's 16bpc resampler (Pillow >= 12.3: double
/// weights and sums, rounded half away from zero, clamped to 0..=65535). Pillow 10.4 cannot do this (it
/// raises "image has wrong mode"); `compat` only selects the pass order. NEAREST dispatches to
/// [`nearest_u16`].
pub fn resample_u16(
    src: &[u16],
    width: usize,
    height: usize,
    out_width: usize,
    out_height: usize,
    filter: Filter,
    compat: PillowCompat,
) -> Vec<u16> {
    assert_eq!(src.len(), width * height, "buffer size");
    assert!(
        width > 0 && height > 0 && out_width > 0 && out_height > 0,
        "zero-sized resample"
    );
    if filter == Filter::Nearest {
        return nearest_u16(src, width, height, out_width, out_height);
    }
    two_pass::<u16, 1>(
        src,
        Sizes {
            width,
            height,
            out_width,
            out_height,
        },
        filter,
        compat,
    )
}

#[derive(Clone, Copy)]
struct Sizes {
    width: usize,
    height: usize,
    out_width: usize,
    out_height: usize,
}

/// A sample type with Pillow's accumulation for it.
trait Sample: Copy + Default + Send + Sync + 'static {
    /// Accumulator of one output sample.
    type Acc: Copy + Send + Sync;
    /// Coefficient representation.
    type Coeff: Copy + Send + Sync;
    fn coeffs(axis: &AxisCoeffs) -> Vec<Self::Coeff>;
    fn start() -> Self::Acc;
    fn add(acc: Self::Acc, v: Self, k: Self::Coeff) -> Self::Acc;
    fn finish(acc: Self::Acc) -> Self;
}

impl Sample for u8 {
    type Acc = i32;
    type Coeff = i32;
    fn coeffs(axis: &AxisCoeffs) -> Vec<i32> {
        axis.fixed_point()
    }
    #[inline]
    fn start() -> i32 {
        1 << (PRECISION_BITS - 1)
    }
    #[inline]
    fn add(acc: i32, v: u8, k: i32) -> i32 {
        acc.wrapping_add((v as i32).wrapping_mul(k))
    }
    #[inline]
    fn finish(acc: i32) -> u8 {
        clip8(acc)
    }
}

impl Sample for u16 {
    type Acc = f64;
    type Coeff = f64;
    fn coeffs(axis: &AxisCoeffs) -> Vec<f64> {
        axis.weights.clone()
    }
    #[inline]
    fn start() -> f64 {
        0.0
    }
    #[inline]
    fn add(acc: f64, v: u16, k: f64) -> f64 {
        acc + v as f64 * k
    }
    #[inline]
    fn finish(acc: f64) -> u16 {
        // ROUND_UP then CLIP16
        let v = if acc >= 0.0 { acc + 0.5 } else { acc - 0.5 } as i32;
        v.clamp(0, 65535) as u16
    }
}

fn two_pass<T: Sample, const C: usize>(src: &[T], s: Sizes, filter: Filter, compat: PillowCompat) -> Vec<T> {
    let need_horizontal = s.out_width != s.width;
    let need_vertical = s.out_height != s.height;
    if !need_horizontal && !need_vertical {
        return src.to_vec();
    }
    let vert = AxisCoeffs::new(s.height, s.out_height, filter);
    let horiz = AxisCoeffs::new(s.width, s.out_width, filter);
    if compat.horizontal_first(s.width, s.height, s.out_width, s.out_height) {
        let (y_first, y_last) = vert.source_span();
        if !need_horizontal {
            return vertical::<T, C>(src, s.width, 0, &vert);
        }
        let temp = horizontal::<T, C>(src, s.width, y_first..y_last, &horiz);
        if !need_vertical {
            return temp;
        }
        vertical::<T, C>(&temp, s.out_width, y_first, &vert)
    } else {
        let temp = if need_vertical {
            vertical::<T, C>(src, s.width, 0, &vert)
        } else {
            src.to_vec()
        };
        if !need_horizontal {
            return temp;
        }
        horizontal::<T, C>(&temp, s.width, 0..s.out_height, &horiz)
    }
}

/// Horizontal pass over the source rows `rows`.
fn horizontal<T: Sample, const C: usize>(
    src: &[T],
    width: usize,
    rows: std::ops::Range<usize>,
    coeffs: &AxisCoeffs,
) -> Vec<T> {
    let k_all = T::coeffs(coeffs);
    let ksize = coeffs.ksize;
    let out_width = coeffs.bounds.len();
    let mut out = vec![T::default(); rows.len() * out_width * C];
    out.par_chunks_mut(out_width * C)
        .with_min_len(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(i, orow)| {
            let y = rows.start + i;
            let srow = &src[y * width * C..(y + 1) * width * C];
            for (xx, opx) in orow.chunks_exact_mut(C).enumerate() {
                let (xmin, count) = coeffs.bounds[xx];
                let k = &k_all[xx * ksize..xx * ksize + count];
                let taps = &srow[xmin * C..(xmin + count) * C];
                let mut ss = [T::start(); C];
                for (px, &w) in taps.chunks_exact(C).zip(k) {
                    for c in 0..C {
                        ss[c] = T::add(ss[c], px[c], w);
                    }
                }
                for c in 0..C {
                    opx[c] = T::finish(ss[c]);
                }
            }
        });
    out
}

/// Vertical pass; `row_offset` is subtracted from the coefficient bounds (the first source row that a
/// preceding horizontal pass kept).
fn vertical<T: Sample, const C: usize>(src: &[T], width: usize, row_offset: usize, coeffs: &AxisCoeffs) -> Vec<T> {
    let k_all = T::coeffs(coeffs);
    let ksize = coeffs.ksize;
    let stride = width * C;
    let out_height = coeffs.bounds.len();
    let mut out = vec![T::default(); out_height * stride];
    out.par_chunks_mut(stride)
        .with_min_len(ROWS_PER_TASK)
        .enumerate()
        .for_each_init(
            || vec![T::start(); stride],
            |acc, (yy, orow)| {
                let (ymin, count) = coeffs.bounds[yy];
                let ymin = ymin - row_offset;
                let k = &k_all[yy * ksize..yy * ksize + count];
                acc.fill(T::start());
                // Tap-major order gives the same sums as Pillow's per-pixel loop (same order per pixel).
                for (y, &w) in k.iter().enumerate() {
                    let srow = &src[(ymin + y) * stride..(ymin + y + 1) * stride];
                    for (a, &v) in acc.iter_mut().zip(srow) {
                        *a = T::add(*a, v, w);
                    }
                }
                for (o, &a) in orow.iter_mut().zip(acc.iter()) {
                    *o = T::finish(a);
                }
            },
        );
    out
}

/// `COORD` of Geometry.c: -1 for negative coordinates, else truncation.
#[inline]
fn coord(v: f64) -> i64 {
    if v < 0.0 {
        -1
    } else {
        v as i64
    }
}

/// Pillow's NEAREST resize of an 8-bit image (`ImagingScaleAffine`: the source coordinate is accumulated
/// in double from `scale / 2` in steps of `scale`). Output pixels whose source falls outside stay 0.
pub fn nearest_u8(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
) -> Vec<u8> {
    assert_eq!(src.len(), width * height * channels, "buffer size");
    let xmap = accumulated_map(width, out_width);
    let ymap = accumulated_map(height, out_height);
    let stride = out_width * channels;
    let mut out = vec![0u8; out_height * stride];
    out.par_chunks_mut(stride)
        .with_min_len(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(y, orow)| {
            let Some(yi) = ymap[y] else { return };
            let srow = &src[yi * width * channels..(yi + 1) * width * channels];
            for (opx, xi) in orow.chunks_exact_mut(channels).zip(&xmap) {
                if let Some(xi) = *xi {
                    opx.copy_from_slice(&srow[xi * channels..(xi + 1) * channels]);
                }
            }
        });
    out
}

fn accumulated_map(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    let a = (in_size as f32) as f64 / out_size as f64;
    let mut pos = a * 0.5;
    let mut map = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        let i = coord(pos);
        map.push((i >= 0 && (i as usize) < in_size).then_some(i as usize));
        pos += a;
    }
    map
}

/// Pillow's NEAREST resize of an `I;16` image (generic affine transform: source coordinate
/// `scale * (x + 0.5)` per pixel).
pub fn nearest_u16(src: &[u16], width: usize, height: usize, out_width: usize, out_height: usize) -> Vec<u16> {
    assert_eq!(src.len(), width * height, "buffer size");
    let map = |in_size: usize, out_size: usize| -> Vec<Option<usize>> {
        let a = (in_size as f32) as f64 / out_size as f64;
        (0..out_size)
            .map(|x| {
                let i = coord(a * (x as f64 + 0.5));
                (i >= 0 && (i as usize) < in_size).then_some(i as usize)
            })
            .collect()
    };
    let (xmap, ymap) = (map(width, out_width), map(height, out_height));
    let mut out = vec![0u16; out_width * out_height];
    for (y, orow) in out.chunks_exact_mut(out_width).enumerate() {
        let Some(yi) = ymap[y] else { continue };
        for (o, xi) in orow.iter_mut().zip(&xmap) {
            if let Some(xi) = *xi {
                *o = src[yi * width + xi];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..60).map(|v| (v * 7 % 256) as u8).collect();
        assert_eq!(resample_u8(&src, 5, 4, 3, 5, 4, Filter::Bicubic), src);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 7 * 3];
        for filter in [
            Filter::Bicubic,
            Filter::Lanczos,
            Filter::Bilinear,
            Filter::Box,
            Filter::Hamming,
        ] {
            for (w, h) in [(5, 3), (40, 31), (13, 20)] {
                let out = resample_u8(&src, 13, 7, 3, w, h, filter);
                assert!(out.iter().all(|&v| v == 77), "{filter:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn u16_finish_rounds_and_clamps() {
        assert_eq!(<u16 as Sample>::finish(1000.4), 1000);
        assert_eq!(<u16 as Sample>::finish(1000.5), 1001);
        assert_eq!(<u16 as Sample>::finish(-3.0), 0);
        assert_eq!(<u16 as Sample>::finish(65536.0 + 5.0), 65535);
    }

    #[test]
    fn pillow13_pass_order_rule() {
        let c = PillowCompat::Pillow13;
        // 100x40 -> 90x15: height shrinks by 25 > 2 * 10
        assert!(!c.horizontal_first(100, 40, 90, 15));
        assert!(c.horizontal_first(100, 40, 90, 30));
        assert!(!c.horizontal_first(100, 40, 300, 39));
        assert!(c.horizontal_first(100, 40, 300, 41));
        assert!(PillowCompat::Pillow10.horizontal_first(100, 40, 90, 15));
    }

    #[test]
    fn nearest_picks_centres() {
        let src: Vec<u8> = (0..4).collect();
        assert_eq!(nearest_u8(&src, 4, 1, 1, 2, 1), vec![1, 3]);
        assert_eq!(nearest_u8(&src, 4, 1, 1, 8, 1), vec![0, 0, 1, 1, 2, 2, 3, 3]);
    }
}
