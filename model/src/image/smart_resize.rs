//! `smart_resize` of transformers' Qwen2-VL image processor: the target size of an image, each side a
//! multiple of `factor`, the area within `[min_pixels, max_pixels]`, the aspect ratio kept as well as may be.
//!
//! Python's `round` rounds half to even and its `/` is a correctly rounded double division; both are
//! reproduced here, so results are identical to the Python for every input.

use super::error::{ImageError, Result};

/// How images with a side shorter than `factor` are treated; the two transformers generations differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmallImages {
    /// transformers >= 4.49 / 5.x (the installed 5.24): no side check; the `min_pixels` rule scales tiny
    /// images up, and the `max_pixels` rule never returns a side below `factor`.
    #[default]
    Upscale,
    /// transformers 4.46.3 (the reference's pin): `ValueError` when a side is shorter than `factor`.
    Reject,
}

/// `smart_resize(height, width, factor, min_pixels, max_pixels)` of transformers 5.x; returns
/// `(height, width)`. Errors for a zero side and for an aspect ratio above 200.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    smart_resize_with(height, width, factor, min_pixels, max_pixels, SmallImages::Upscale)
}

/// `smart_resize` with the small-image behaviour of either transformers generation.
pub fn smart_resize_with(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
    small: SmallImages,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    if factor == 0 {
        return Err(ImageError::InvalidConfig(
            "smart_resize factor (patch_size * merge_size) is 0".into(),
        ));
    }
    if small == SmallImages::Reject && (height < factor || width < factor) {
        return Err(ImageError::SmallerThanFactor { height, width, factor });
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > 200.0 {
        return Err(ImageError::AspectRatioTooLarge { height, width, ratio });
    }
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if h_bar * w_bar > max_pixels {
        let beta = ((height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = (h / beta / f).floor() as usize * factor;
        w_bar = (w / beta / f).floor() as usize * factor;
        if small == SmallImages::Upscale {
            h_bar = h_bar.max(factor);
            w_bar = w_bar.max(factor);
        }
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (height * width) as f64).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    if h_bar == 0 || w_bar == 0 {
        return Err(ImageError::ResizedToZero {
            height,
            width,
            factor,
            min_pixels,
        });
    }
    Ok((h_bar, w_bar))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: usize = 56 * 56;
    const MAX: usize = 28 * 28 * 1280;

    #[test]
    fn rounds_half_to_even() {
        // 42 / 28 = 1.5 -> 2, 70 / 28 = 2.5 -> 2
        assert_eq!(smart_resize(42, 70, 28, MIN, MAX).unwrap(), (56, 56));
    }

    #[test]
    fn reference_table_sizes() {
        // reference-code.md section 4, eval processor defaults (min 3136, max 12,845,056)
        let max_eval = 12_845_056;
        assert_eq!(smart_resize(1344, 1344, 28, MIN, max_eval).unwrap(), (1344, 1344));
        assert_eq!(smart_resize(768, 768, 28, MIN, max_eval).unwrap(), (756, 756));
        assert_eq!(smart_resize(128, 128, 28, MIN, max_eval).unwrap(), (140, 140));
        // training processor: min 256*28*28, max 1280*28*28
        let (tmin, tmax) = (256 * 28 * 28, 1280 * 28 * 28);
        assert_eq!(smart_resize(1344, 1344, 28, tmin, tmax).unwrap(), (980, 980));
        assert_eq!(smart_resize(336, 336, 28, tmin, tmax).unwrap(), (448, 448));
        assert_eq!(smart_resize(448, 448, 28, tmin, tmax).unwrap(), (448, 448));
    }

    #[test]
    fn small_images_depend_on_generation() {
        assert_eq!(smart_resize(13, 13, 28, MIN, MAX).unwrap(), (56, 56));
        let err = smart_resize_with(13, 40, 28, MIN, MAX, SmallImages::Reject).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::SmallerThanFactor {
                    height: 13,
                    width: 40,
                    factor: 28
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            smart_resize(0, 5, 28, MIN, MAX),
            Err(ImageError::ZeroSized { .. })
        ));
        let err = smart_resize(28, 28 * 201, 28, MIN, MAX).unwrap_err();
        assert!(matches!(err, ImageError::AspectRatioTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("201"), "{err}");
        assert!(smart_resize(28, 28 * 200, 28, MIN, MAX).is_ok());
    }
}
