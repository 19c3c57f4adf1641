//! `Qwen2VLImageProcessor` (the PIL/numpy implementation) for one image.
//!
//! Order of operations, as in transformers 4.46.3 and the 5.x PIL backend: convert to RGB (Pillow),
//! `smart_resize`, Pillow resize of the uint8 RGB image (`resample`, BICUBIC by default), rescale in float64
//! then cast to float32 (`(u8 as f64 * rescale_factor) as f32`), normalise in float32
//! (`(x - mean_f32) / std_f32`), then the patch reshape/transpose.

use ::image::{DynamicImage, RgbImage};
use rayon::prelude::*;

use super::config::{AlphaHandling, ImageProcessorConfig};
use super::convert::{to_rgb, to_rgb_on_white};
use super::error::{ImageError, Result};
use super::pil_image::{PilImage, PilMode};
use super::pil_resize::resize_rgb;
use super::smart_resize::smart_resize_with;

/// The processor output for one image: `grid_t * grid_h * grid_w` rows of
/// `3 * temporal_patch_size * patch_size²` values (`pixel_values` and one row of `image_grid_thw`).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelPatches {
    /// Row-major `[rows, row_len]`.
    pub values: Vec<f32>,
    /// `[t, h, w]` in patches (`t = 1` for a still image).
    pub grid_thw: [usize; 3],
}

impl PixelPatches {
    /// Number of patch rows, `t * h * w`.
    pub fn rows(&self) -> usize {
        self.grid_thw.iter().product()
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.values.len().checked_div(self.rows()).unwrap_or(0)
    }
}

/// Image placeholder tokens one image takes in the prompt: `t * h * w / merge_size²`.
pub fn num_image_tokens(grid_thw: [usize; 3], merge_size: usize) -> usize {
    grid_thw.iter().product::<usize>() / (merge_size * merge_size)
}

/// A validated image processor.
#[derive(Clone, Debug)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
}

impl ImageProcessor {
    /// A processor with this config (checked by every call, so an invalid one reports
    /// [`ImageError::InvalidConfig`] there; configs from [`ImageProcessorConfig::from_json`] are valid).
    pub fn new(config: ImageProcessorConfig) -> Self {
        ImageProcessor { config }
    }

    /// Reads a `preprocessor_config.json`.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Self::new(ImageProcessorConfig::from_file(path)?))
    }

    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    /// `(height, width)` the image is resized to (`smart_resize`, or the input size without `do_resize`).
    pub fn target_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let c = &self.config;
        c.validate()?;
        if height == 0 || width == 0 {
            return Err(ImageError::ZeroSized { width, height });
        }
        if !c.do_resize {
            let f = c.factor();
            if !height.is_multiple_of(f) || !width.is_multiple_of(f) {
                return Err(ImageError::InvalidConfig(format!(
                    "do_resize is false but the {height}x{width} (height x width) image is not a multiple of {f}"
                )));
            }
            return Ok((height, width));
        }
        smart_resize_with(height, width, c.factor(), c.min_pixels, c.max_pixels, c.small_images)
    }

    /// `image_grid_thw` for an image of `height`x`width` pixels.
    pub fn grid_thw(&self, height: usize, width: usize) -> Result<[usize; 3]> {
        let (h, w) = self.target_size(height, width)?;
        Ok([1, h / self.config.patch_size, w / self.config.patch_size])
    }

    /// Image placeholder tokens for an image of `height`x`width` pixels.
    pub fn num_image_tokens(&self, height: usize, width: usize) -> Result<usize> {
        Ok(num_image_tokens(self.grid_thw(height, width)?, self.config.merge_size))
    }

    /// Preprocesses an `image` crate image (mapped to a Pillow mode by [`PilImage::from_dynamic`]).
    pub fn preprocess(&self, image: &DynamicImage) -> Result<PixelPatches> {
        if let DynamicImage::ImageRgb8(rgb) = image {
            return self.preprocess_rgb(rgb);
        }
        self.preprocess_pil(&PilImage::from_dynamic(image))
    }

    /// Preprocesses an image in a Pillow mode (e.g. the output of a resolution policy).
    pub fn preprocess_pil(&self, image: &PilImage) -> Result<PixelPatches> {
        if image.width() == 0 || image.height() == 0 {
            return Err(ImageError::ZeroSized {
                width: image.width(),
                height: image.height(),
            });
        }
        if !self.config.do_convert_rgb && image.mode() != PilMode::RGB {
            return Err(ImageError::InvalidConfig(format!(
                "do_convert_rgb is false but the image is {}; only RGB images are supported then",
                image.mode().name()
            )));
        }
        let rgb = match self.config.alpha {
            AlphaHandling::Drop => to_rgb(image),
            AlphaHandling::CompositeOnWhite => to_rgb_on_white(image),
        };
        self.preprocess_rgb(&rgb)
    }

    /// Preprocesses an 8-bit RGB image.
    pub fn preprocess_rgb(&self, image: &RgbImage) -> Result<PixelPatches> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let (rh, rw) = self.target_size(height, width)?;
        let resized;
        let pixels = if (rh, rw) == (height, width) {
            image
        } else {
            resized = resize_rgb(image, rw, rh, self.config.filter()?, self.config.pillow)?;
            &resized
        };
        Ok(self.patchify(pixels.as_raw(), rh, rw))
    }

    /// Float value of each (channel, uint8) pair after rescale and normalise.
    pub(crate) fn value_table(&self) -> [[f32; 256]; 3] {
        let c = &self.config;
        let mut table = [[0f32; 256]; 3];
        for (ch, row) in table.iter_mut().enumerate() {
            let mean = c.image_mean[ch] as f32;
            let std = c.image_std[ch] as f32;
            for (v, out) in row.iter_mut().enumerate() {
                let mut x = if c.do_rescale {
                    (v as f64 * c.rescale_factor) as f32
                } else {
                    v as f32
                };
                if c.do_normalize {
                    x = (x - mean) / std;
                }
                *out = x;
            }
        }
        table
    }

    /// The reshape `(t, T, C, h/m, m, p, w/m, m, p)` → transpose `(0, 3, 6, 4, 7, 2, 1, 5, 8)` → flatten of
    /// the processor, with the single frame repeated `temporal_patch_size` times.
    fn patchify(&self, rgb: &[u8], height: usize, width: usize) -> PixelPatches {
        let c = &self.config;
        let (p, m, t) = (c.patch_size, c.merge_size, c.temporal_patch_size);
        let (gh, gw) = (height / p, width / p);
        let table = self.value_table();
        let row_len = c.patch_dim();
        let mut values = vec![0f32; gh * gw * row_len];
        values.par_chunks_mut(row_len).enumerate().for_each(|(row, out)| {
            // row = ((bh * (gw / m) + bw) * m + mh) * m + mw
            let mw = row % m;
            let mh = (row / m) % m;
            let block = row / (m * m);
            let (bh, bw) = (block / (gw / m), block % (gw / m));
            let y0 = (bh * m + mh) * p;
            let x0 = (bw * m + mw) * p;
            // Columns are (channel, frame, py, px); frames are copies of frame 0.
            for ch in 0..3 {
                let lut = &table[ch];
                let first = &mut out[ch * t * p * p..(ch * t + 1) * p * p];
                for py in 0..p {
                    let src = &rgb[((y0 + py) * width + x0) * 3..];
                    for px in 0..p {
                        first[py * p + px] = lut[src[px * 3 + ch] as usize];
                    }
                }
                for tp in 1..t {
                    let (head, tail) = out.split_at_mut((ch * t + tp) * p * p);
                    tail[..p * p].copy_from_slice(&head[ch * t * p * p..(ch * t + 1) * p * p]);
                }
            }
        });
        PixelPatches {
            values,
            grid_thw: [1, gh, gw],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_processor() -> ImageProcessor {
        let config = ImageProcessorConfig {
            max_pixels: 28 * 28 * 16,
            ..Default::default()
        };
        ImageProcessor::new(config)
    }

    #[test]
    fn token_count() {
        assert_eq!(num_image_tokens([1, 48, 48], 2), 576);
        let proc = ImageProcessor::new(ImageProcessorConfig {
            max_pixels: 12_845_056,
            ..Default::default()
        });
        assert_eq!(proc.num_image_tokens(448, 448).unwrap(), 256);
        assert_eq!(proc.num_image_tokens(1344, 1344).unwrap(), 2304);
    }

    #[test]
    fn patch_layout_matches_reshape() {
        // A 56x84 image (already a multiple of 28) is not resized; check every value against the
        // index arithmetic of the numpy reshape/transpose.
        let proc = small_processor();
        let (h, w) = (56usize, 84usize);
        let data: Vec<u8> = (0..h * w * 3).map(|i| (i * 31 % 251) as u8).collect();
        let img = RgbImage::from_raw(w as u32, h as u32, data.clone()).unwrap();
        let out = proc.preprocess_rgb(&img).unwrap();
        assert_eq!(out.grid_thw, [1, 4, 6]);
        assert_eq!(out.row_len(), 1176);
        let table = proc.value_table();
        let (p, m, t) = (14, 2, 2);
        let (gh, gw) = (h / p, w / p);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let row = ((bh * (gw / m) + bw) * m + mh) * m + mw;
                        for ch in 0..3 {
                            for tp in 0..t {
                                for py in 0..p {
                                    for px in 0..p {
                                        let y = (bh * m + mh) * p + py;
                                        let x = (bw * m + mw) * p + px;
                                        let col = ((ch * t + tp) * p + py) * p + px;
                                        let want = table[ch][data[(y * w + x) * 3 + ch] as usize];
                                        assert_eq!(out.values[row * 1176 + col], want);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zero_sized_image_is_an_error() {
        let img = RgbImage::new(0, 10);
        let err = small_processor().preprocess_rgb(&img).unwrap_err();
        assert!(matches!(err, ImageError::ZeroSized { width: 0, height: 10 }), "{err}");
    }

    #[test]
    fn normalised_values() {
        let table = small_processor().value_table();
        // (0 - mean) / std for red
        assert!((table[0][0] - (-0.48145466f32 / 0.26862954)).abs() < 1e-6);
        assert!((table[2][255] - ((1.0f32 - 0.408_210_73) / 0.275_777_1)).abs() < 1e-6);
    }
}
