//! An image in one of Pillow's modes, as `PIL.Image.open` would give it.
//!
//! The `image` crate expands palettes, turns PNG `tRNS` chunks into alpha channels and keeps 16 bits per
//! sample; Pillow keeps palettes (`P`), keeps single-colour transparency out of the pixels, reduces 16-bit
//! RGB/RGBA/LA PNGs to their high byte and opens 16-bit grayscale as `I;16`. The resize filter and the
//! RGB conversion depend on the mode, so [`PilImage::decode`] reads the PNG header to recover it.

use std::path::Path;

use ::image::DynamicImage;

use super::error::{ImageError, Result};
use super::palette_header::{bmp_mode, gif_mode};

/// The Pillow modes this module models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PilMode {
    /// `"1"`: bilevel, stored as one byte per pixel holding 0 or 255.
    Bilevel,
    /// `"L"`: 8-bit grayscale.
    L,
    /// `"LA"`: 8-bit grayscale with alpha (2 bytes per pixel).
    LA,
    /// `"P"`: palette image, stored expanded to RGB (3 bytes per pixel). Resizing a palette image is a
    /// nearest-neighbour pick, and converting it is a palette lookup, so the expanded form gives the same
    /// results as indices plus palette.
    P,
    /// `"RGB"`.
    RGB,
    /// `"RGBA"` (straight, not premultiplied, alpha).
    RGBA,
    /// `"I;16"`: 16-bit unsigned grayscale.
    I16,
}

impl PilMode {
    /// Pillow's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            PilMode::Bilevel => "1",
            PilMode::L => "L",
            PilMode::LA => "LA",
            PilMode::P => "P",
            PilMode::RGB => "RGB",
            PilMode::RGBA => "RGBA",
            PilMode::I16 => "I;16",
        }
    }

    /// Samples stored per pixel.
    pub fn channels(self) -> usize {
        match self {
            PilMode::Bilevel | PilMode::L | PilMode::I16 => 1,
            PilMode::LA => 2,
            PilMode::P | PilMode::RGB => 3,
            PilMode::RGBA => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A decoded image in a Pillow mode: interleaved samples, row-major, top row first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PilImage {
    mode: PilMode,
    width: usize,
    height: usize,
    samples: Samples,
    transparency: Option<Vec<u8>>,
}

impl PilImage {
    /// An 8-bit image (any mode but `I16`) from interleaved samples (`mode.channels()` per pixel).
    pub fn from_u8(mode: PilMode, width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if mode == PilMode::I16 {
            return Err(ImageError::InvalidConfig(
                "I;16 images take u16 samples (PilImage::from_u16)".into(),
            ));
        }
        check_len(data.len(), mode, width, height)?;
        Ok(PilImage {
            mode,
            width,
            height,
            samples: Samples::U8(data),
            transparency: None,
        })
    }

    /// An `I;16` image from one u16 sample per pixel.
    pub fn from_u16(width: usize, height: usize, data: Vec<u16>) -> Result<Self> {
        check_len(data.len(), PilMode::I16, width, height)?;
        Ok(PilImage {
            mode: PilMode::I16,
            width,
            height,
            samples: Samples::U16(data),
            transparency: None,
        })
    }

    /// Attaches per-pixel transparency kept outside the pixels (Pillow's `info["transparency"]`, from a PNG
    /// `tRNS` chunk) to an image whose mode has no alpha band. Only alpha compositing reads it.
    pub fn with_transparency(mut self, alpha: Vec<u8>) -> Result<Self> {
        if matches!(self.mode, PilMode::LA | PilMode::RGBA) {
            return Err(ImageError::InvalidConfig(format!(
                "mode {} already has an alpha band",
                self.mode.name()
            )));
        }
        if alpha.len() != self.width * self.height {
            return Err(ImageError::BufferSize {
                got: alpha.len(),
                expected: self.width * self.height,
                width: self.width,
                height: self.height,
                mode: "transparency",
            });
        }
        self.transparency = Some(alpha);
        Ok(self)
    }

    pub fn mode(&self) -> PilMode {
        self.mode
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The 8-bit samples (`None` for `I;16`).
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.samples {
            Samples::U8(v) => Some(v),
            Samples::U16(_) => None,
        }
    }

    /// The 16-bit samples (`Some` only for `I;16`).
    pub fn as_u16(&self) -> Option<&[u16]> {
        match &self.samples {
            Samples::U16(v) => Some(v),
            Samples::U8(_) => None,
        }
    }

    /// Transparency outside the pixels (see [`PilImage::with_transparency`]).
    pub fn transparency(&self) -> Option<&[u8]> {
        self.transparency.as_deref()
    }

    /// Maps an `image` crate image to the mode Pillow would use for the same pixels.
    ///
    /// 8-bit luma/RGB(A) map to `L`/`LA`/`RGB`/`RGBA`; `Luma16` maps to `I;16`; 16-bit LA/RGB/RGBA keep the
    /// high byte of each sample (as Pillow's PNG reader does); float images are converted by the `image`
    /// crate to 8-bit RGB(A). A `DynamicImage` carries no palette or `tRNS` information: use
    /// [`PilImage::decode`] on the file bytes where that matters (resolution policies).
    pub fn from_dynamic(img: &DynamicImage) -> Self {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let (mode, samples) = match img {
            DynamicImage::ImageLuma8(b) => (PilMode::L, Samples::U8(b.as_raw().clone())),
            DynamicImage::ImageLumaA8(b) => (PilMode::LA, Samples::U8(b.as_raw().clone())),
            DynamicImage::ImageRgb8(b) => (PilMode::RGB, Samples::U8(b.as_raw().clone())),
            DynamicImage::ImageRgba8(b) => (PilMode::RGBA, Samples::U8(b.as_raw().clone())),
            DynamicImage::ImageLuma16(b) => (PilMode::I16, Samples::U16(b.as_raw().clone())),
            DynamicImage::ImageLumaA16(b) => (PilMode::LA, Samples::U8(high_bytes(b.as_raw()))),
            DynamicImage::ImageRgb16(b) => (PilMode::RGB, Samples::U8(high_bytes(b.as_raw()))),
            DynamicImage::ImageRgba16(b) => (PilMode::RGBA, Samples::U8(high_bytes(b.as_raw()))),
            other if other.color().has_alpha() => (PilMode::RGBA, Samples::U8(other.to_rgba8().into_raw())),
            other => (PilMode::RGB, Samples::U8(other.to_rgb8().into_raw())),
        };
        PilImage {
            mode,
            width,
            height,
            samples,
            transparency: None,
        }
    }

    /// Decodes encoded image bytes (PNG or JPEG) into the mode `PIL.Image.open` gives.
    ///
    /// For PNG the colour type and bit depth of the header decide the mode: gray 1-bit → `1`, gray 2/4/8-bit →
    /// `L`, gray 16-bit → `I;16`, palette → `P`, RGB → `RGB`, gray+alpha → `LA`, RGBA → `RGBA` (16-bit samples
    /// keep their high byte), and a `tRNS` chunk becomes [`PilImage::transparency`] rather than an alpha band.
    /// GIF (first frame) and palette BMP take the mode Pillow gives them (`P`, or `L` / `1` for a grey
    /// palette; see [`gif_mode`], [`bmp_mode`]), a GIF's transparent index becoming
    /// [`PilImage::transparency`]. Other formats go through [`PilImage::from_dynamic`] (JPEG, TIFF: `L` or
    /// `RGB`; WebP: `RGB` or `RGBA`; CMYK JPEGs arrive as RGB converted by the `image` crate, where Pillow
    /// would keep `CMYK`).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_limited(bytes, None)
    }

    /// [`PilImage::decode`] for images of up to `max_pixels` pixels (checked by the caller from the
    /// header), whatever memory decoding them takes: the `image` crate's default refuses allocations
    /// over 512 MiB, less than an RGBA image under Pillow's 178,956,970-pixel limit needs.
    pub fn decode_limited(bytes: &[u8], max_pixels: Option<u64>) -> Result<Self> {
        let mut reader = ::image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(::image::ImageError::IoError)?;
        if let Some(max) = max_pixels {
            let mut limits = ::image::Limits::default();
            // Four 16-bit samples per pixel at most, and never below the crate's own default.
            limits.max_alloc = Some(max.saturating_mul(8).max(512 << 20));
            reader.limits(limits);
        }
        let dynamic = reader.decode()?;
        if let Some((mode, transparent)) = gif_mode(bytes) {
            return Self::from_palette(&dynamic, mode, transparent);
        }
        if let Some(mode) = bmp_mode(bytes) {
            return Self::from_palette(&dynamic, mode, false);
        }
        let Some(header) = png_header(bytes) else {
            return Ok(Self::from_dynamic(&dynamic));
        };
        let (width, height) = (dynamic.width() as usize, dynamic.height() as usize);
        let mode = match (header.color_type, header.bit_depth) {
            (0, 1) => PilMode::Bilevel,
            (0, 16) => PilMode::I16,
            (0, _) => PilMode::L,
            (2, _) => PilMode::RGB,
            (3, _) => PilMode::P,
            (4, _) => PilMode::LA,
            _ => PilMode::RGBA,
        };
        let has_alpha_band = matches!(mode, PilMode::LA | PilMode::RGBA);
        let decoded_alpha = dynamic.color().has_alpha();
        let image = if mode == PilMode::I16 {
            let (values, alpha) = match &dynamic {
                DynamicImage::ImageLuma16(b) => (b.as_raw().clone(), None),
                DynamicImage::ImageLumaA16(b) => split_alpha(b.as_raw(), 2),
                other => (other.to_luma16().into_raw(), None),
            };
            let img = PilImage::from_u16(width, height, values)?;
            match alpha {
                Some(a) => img.with_transparency(high_bytes(&a))?,
                None => img,
            }
        } else {
            let (channels, data) = u8_samples(&dynamic);
            if !has_alpha_band && decoded_alpha {
                let (color, alpha) = split_alpha(&data, channels);
                PilImage::from_u8(mode, width, height, color)?.with_transparency(alpha.unwrap_or_default())?
            } else if has_alpha_band && !decoded_alpha {
                // Not produced by the PNG decoder; keep the pixels with an opaque alpha band.
                let rgba = dynamic.to_rgba8().into_raw();
                let data = if mode == PilMode::LA {
                    rgba.chunks_exact(4).flat_map(|p| [p[0], p[3]]).collect()
                } else {
                    rgba
                };
                PilImage::from_u8(mode, width, height, data)?
            } else {
                PilImage::from_u8(mode, width, height, data)?
            }
        };
        Ok(image)
    }

    /// A palette image the `image` crate expanded, in the mode Pillow keeps: `P` (expanded RGB, with the
    /// alpha of a transparent index as transparency when `transparent`), or `L` / `1` from the grey values.
    fn from_palette(dynamic: &DynamicImage, mode: PilMode, transparent: bool) -> Result<Self> {
        let (width, height) = (dynamic.width() as usize, dynamic.height() as usize);
        let rgba = dynamic.to_rgba8().into_raw();
        if mode != PilMode::P {
            return PilImage::from_u8(mode, width, height, rgba.chunks_exact(4).map(|p| p[0]).collect());
        }
        let (color, alpha) = split_alpha(&rgba, 4);
        let image = PilImage::from_u8(mode, width, height, color)?;
        match (transparent, alpha) {
            (true, Some(alpha)) => image.with_transparency(alpha),
            _ => Ok(image),
        }
    }

    /// Reads and decodes an image file (see [`PilImage::decode`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes)
    }
}

fn check_len(got: usize, mode: PilMode, width: usize, height: usize) -> Result<()> {
    let expected = width * height * mode.channels();
    if got != expected {
        return Err(ImageError::BufferSize {
            got,
            expected,
            width,
            height,
            mode: mode.name(),
        });
    }
    Ok(())
}

fn high_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().map(|&s| (s >> 8) as u8).collect()
}

/// Interleaved 8-bit samples of a decoded image and their channel count (16-bit samples keep the high byte).
fn u8_samples(img: &DynamicImage) -> (usize, Vec<u8>) {
    match img {
        DynamicImage::ImageLuma8(b) => (1, b.as_raw().clone()),
        DynamicImage::ImageLumaA8(b) => (2, b.as_raw().clone()),
        DynamicImage::ImageRgb8(b) => (3, b.as_raw().clone()),
        DynamicImage::ImageRgba8(b) => (4, b.as_raw().clone()),
        DynamicImage::ImageLuma16(b) => (1, high_bytes(b.as_raw())),
        DynamicImage::ImageLumaA16(b) => (2, high_bytes(b.as_raw())),
        DynamicImage::ImageRgb16(b) => (3, high_bytes(b.as_raw())),
        DynamicImage::ImageRgba16(b) => (4, high_bytes(b.as_raw())),
        other if other.color().has_alpha() => (4, other.to_rgba8().into_raw()),
        other => (3, other.to_rgb8().into_raw()),
    }
}

/// Splits the last channel off interleaved samples (`None` alpha when there is a single channel).
fn split_alpha<T: Copy>(data: &[T], channels: usize) -> (Vec<T>, Option<Vec<T>>) {
    if channels < 2 {
        return (data.to_vec(), None);
    }
    let pixels = data.len() / channels;
    let mut color = Vec::with_capacity(pixels * (channels - 1));
    let mut alpha = Vec::with_capacity(pixels);
    for px in data.chunks_exact(channels) {
        color.extend_from_slice(&px[..channels - 1]);
        alpha.push(px[channels - 1]);
    }
    (color, Some(alpha))
}

struct PngHeader {
    bit_depth: u8,
    color_type: u8,
}

/// Colour type and bit depth from a PNG's IHDR, or `None` for anything that is not a PNG.
fn png_header(bytes: &[u8]) -> Option<PngHeader> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if bytes.len() < 33 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    Some(PngHeader {
        bit_depth: bytes[24],
        color_type: bytes[25],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_alpha_separates_last_channel() {
        let (c, a) = split_alpha(&[1u8, 2, 3, 4, 5, 6], 2);
        assert_eq!(c, vec![1, 3, 5]);
        assert_eq!(a, Some(vec![2, 4, 6]));
    }

    #[test]
    fn buffer_size_is_checked() {
        let err = PilImage::from_u8(PilMode::RGB, 2, 2, vec![0; 11]).unwrap_err();
        assert!(err.to_string().contains("11 values, expected 12"), "{err}");
    }

    #[test]
    fn rgb16_keeps_high_byte() {
        let buf = ::image::ImageBuffer::<::image::Rgb<u16>, _>::from_raw(1, 1, vec![0x12ff, 0x0080, 0xffff]).unwrap();
        let img = PilImage::from_dynamic(&DynamicImage::ImageRgb16(buf));
        assert_eq!(img.mode(), PilMode::RGB);
        assert_eq!(img.as_u8().unwrap(), &[0x12, 0x00, 0xff]);
    }
}
