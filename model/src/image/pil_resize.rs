//! `PIL.Image.Image.resize(size, resample)` with `box=None` and `reducing_gap=None` (the defaults).
//!
//! Mode handling follows Pillow:
//! * `resample=None` means BICUBIC, or NEAREST for `I;16` in Pillow 10 (BICUBIC from Pillow 11 on);
//! * an unchanged size returns a copy;
//! * `P` and `1` images are always resized with NEAREST;
//! * `LA` and `RGBA` images are converted to premultiplied `La`/`RGBa`, resized, and converted back,
//!   unless the filter is NEAREST;
//! * `I;16` uses the 16-bit resampler. Pillow 10.4 has none and raises "image has wrong mode" for a
//!   convolution filter on `I;16`; where the reference would fail, this module gives Pillow 13's result.
//!
//! Pillow 13 also changed the pass order for images whose height shrinks much more than their width; see
//! [`PillowCompat`].

use ::image::RgbImage;

use super::convert::{premultiply, unpremultiply};
use super::error::{ImageError, Result};
use super::filters::Filter;
use super::pil_image::{PilImage, PilMode};
use super::resample::{nearest_u8, resample_u16, resample_u8_compat, PillowCompat};

/// The filter `Image.resize` uses when `resample` is not given: BICUBIC, except NEAREST for `I;16` in
/// Pillow 7 to 10 (Pillow >= 11 uses BICUBIC for every mode).
pub fn default_filter(mode: PilMode, compat: PillowCompat) -> Filter {
    if mode == PilMode::I16 && compat == PillowCompat::Pillow10 {
        Filter::Nearest
    } else {
        Filter::Bicubic
    }
}

/// `img.resize((width, height), resample=filter)` as Pillow 10.4 computes it; `filter: None` is Pillow's
/// default resample.
///
/// Transparency kept outside the pixels ([`PilImage::transparency`]) follows NEAREST resizes and is
/// dropped by convolution resizes (Pillow keeps a colour key there, which this type does not model).
pub fn resize(img: &PilImage, width: usize, height: usize, filter: Option<Filter>) -> Result<PilImage> {
    resize_compat(img, width, height, filter, PillowCompat::Pillow10)
}

/// [`resize`] for the given Pillow generation.
pub fn resize_compat(
    img: &PilImage,
    width: usize,
    height: usize,
    filter: Option<Filter>,
    compat: PillowCompat,
) -> Result<PilImage> {
    if img.width() == 0 || img.height() == 0 {
        return Err(ImageError::ZeroSized {
            width: img.width(),
            height: img.height(),
        });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    if (width, height) == (img.width(), img.height()) {
        return Ok(img.clone());
    }
    let mode = img.mode();
    let mut filter = filter.unwrap_or_else(|| default_filter(mode, compat));
    if matches!(mode, PilMode::P | PilMode::Bilevel) {
        filter = Filter::Nearest;
    }
    let (w0, h0) = (img.width(), img.height());
    let out = if mode == PilMode::I16 {
        let src = img.as_u16().expect("I;16 samples");
        PilImage::from_u16(width, height, resample_u16(src, w0, h0, width, height, filter, compat))?
    } else {
        let src = img.as_u8().expect("8-bit samples");
        let channels = mode.channels();
        let data = if matches!(mode, PilMode::LA | PilMode::RGBA) && filter != Filter::Nearest {
            let mut pre = src.to_vec();
            premultiply(&mut pre, channels);
            let mut out = resample_u8_compat(&pre, w0, h0, channels, width, height, filter, compat);
            unpremultiply(&mut out, channels);
            out
        } else {
            resample_u8_compat(src, w0, h0, channels, width, height, filter, compat)
        };
        PilImage::from_u8(mode, width, height, data)?
    };
    match (img.transparency(), filter) {
        (Some(alpha), Filter::Nearest) => out.with_transparency(nearest_u8(alpha, w0, h0, 1, width, height)),
        _ => Ok(out),
    }
}

/// Resizes an 8-bit RGB image as `Image.resize` does for mode `RGB`.
pub fn resize_rgb(
    img: &RgbImage,
    width: usize,
    height: usize,
    filter: Filter,
    compat: PillowCompat,
) -> Result<RgbImage> {
    let (w0, h0) = (img.width() as usize, img.height() as usize);
    if w0 == 0 || h0 == 0 {
        return Err(ImageError::ZeroSized { width: w0, height: h0 });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    let data = resample_u8_compat(img.as_raw(), w0, h0, 3, width, height, filter, compat);
    Ok(RgbImage::from_raw(width as u32, height as u32, data).expect("RGB buffer size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_resize_is_nearest() {
        let img = PilImage::from_u8(PilMode::P, 2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let out = resize(&img, 4, 1, Some(Filter::Lanczos)).unwrap();
        assert_eq!(out.as_u8().unwrap(), &[255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255]);
    }

    #[test]
    fn zero_sizes_are_errors() {
        let img = PilImage::from_u8(PilMode::L, 2, 2, vec![0; 4]).unwrap();
        let err = resize(&img, 0, 3, None).unwrap_err();
        assert!(err.to_string().contains("0x3"), "{err}");
    }
}
