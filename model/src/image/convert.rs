//! Mode conversions as Pillow's libImaging/Convert.c and AlphaComposite.c compute them.

use ::image::RgbImage;

use super::pil_image::{PilImage, PilMode};

/// `img.convert("RGB")`: gray is replicated, alpha (band or transparency) is dropped without compositing,
/// palette images are looked up, and `I;16` samples above 255 clip to 255 (Pillow's `I16_RGB`).
///
/// This is what transformers 4.x (`convert_to_rgb`, used by the reference with 4.46.3) does to every
/// non-RGB image.
pub fn to_rgb(img: &PilImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let mut out = Vec::with_capacity(w * h * 3);
    match img.mode() {
        PilMode::I16 => {
            let src = img.as_u16().expect("I;16 samples");
            for &v in src {
                let g = v.min(255) as u8;
                out.extend_from_slice(&[g, g, g]);
            }
        }
        mode => {
            let src = img.as_u8().expect("8-bit samples");
            match mode {
                PilMode::Bilevel | PilMode::L => src.iter().for_each(|&g| out.extend_from_slice(&[g, g, g])),
                PilMode::LA => src
                    .chunks_exact(2)
                    .for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0]])),
                PilMode::P | PilMode::RGB => out.extend_from_slice(src),
                PilMode::RGBA => src.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
                PilMode::I16 => unreachable!(),
            }
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).expect("RGB buffer size")
}

/// transformers 5.x `convert_to_rgb`: an image with an alpha band or transparency is converted to RGBA
/// and alpha-composited over opaque white (`Image.alpha_composite`), other images are `convert("RGB")`.
pub fn to_rgb_on_white(img: &PilImage) -> RgbImage {
    let alpha: Option<Vec<u8>> = match img.mode() {
        PilMode::LA => Some(img.as_u8().expect("LA").chunks_exact(2).map(|p| p[1]).collect()),
        PilMode::RGBA => Some(img.as_u8().expect("RGBA").chunks_exact(4).map(|p| p[3]).collect()),
        _ => img.transparency().map(<[u8]>::to_vec),
    };
    let mut rgb = to_rgb(img);
    if let Some(alpha) = alpha {
        for (px, &a) in rgb.as_mut().chunks_exact_mut(3).zip(&alpha) {
            for c in px.iter_mut() {
                *c = composite_over_white(*c, a);
            }
        }
    }
    rgb
}

/// One channel of Pillow's `ImagingAlphaComposite` with an opaque white destination.
#[inline]
fn composite_over_white(c: u8, a: u8) -> u8 {
    const PRECISION_BITS: u32 = 7;
    if a == 0 {
        return 255;
    }
    let (c, a) = (c as u32, a as u32);
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let tmp = c * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
    (((tmp >> 8) + tmp) >> 8 >> PRECISION_BITS) as u8
}

/// `MULDIV255(a, b)`: a * b / 255 rounded, in Pillow's integer form.
#[inline]
fn muldiv255(a: u8, b: u8) -> u8 {
    let tmp = a as u32 * b as u32 + 128;
    (((tmp >> 8) + tmp) >> 8) as u8
}

/// `RGBA -> RGBa` / `LA -> La` in place: colour samples multiplied by alpha (the last sample of each pixel).
pub(crate) fn premultiply(data: &mut [u8], channels: usize) {
    for px in data.chunks_exact_mut(channels) {
        let a = px[channels - 1];
        for c in &mut px[..channels - 1] {
            *c = muldiv255(*c, a);
        }
    }
}

/// `RGBa -> RGBA` / `La -> LA` in place: colour samples divided by alpha unless alpha is 0 or 255.
pub(crate) fn unpremultiply(data: &mut [u8], channels: usize) {
    for px in data.chunks_exact_mut(channels) {
        let a = px[channels - 1] as u32;
        if a == 0 || a == 255 {
            continue;
        }
        for c in &mut px[..channels - 1] {
            *c = ((255 * *c as u32) / a).min(255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn la_premultiply_round_trip_matches_pillow() {
        // Values observed with Pillow 10.4 and 13.0: LA -> La -> LA.
        let mut px = vec![200, 128, 10, 1, 255, 0, 77, 254];
        premultiply(&mut px, 2);
        assert_eq!(px, vec![100, 128, 0, 1, 0, 0, 77, 254]);
        unpremultiply(&mut px, 2);
        assert_eq!(px, vec![199, 128, 0, 1, 0, 0, 77, 254]);
    }

    #[test]
    fn i16_clips_to_255() {
        let img = PilImage::from_u16(6, 1, vec![0, 100, 255, 256, 1000, 65535]).unwrap();
        let rgb = to_rgb(&img);
        let r: Vec<u8> = rgb.pixels().map(|p| p[0]).collect();
        assert_eq!(r, vec![0, 100, 255, 255, 255, 255]);
    }

    #[test]
    fn composite_extremes() {
        assert_eq!(composite_over_white(0, 0), 255);
        assert_eq!(composite_over_white(17, 255), 17);
        assert_eq!(composite_over_white(0, 128), 127);
    }
}
