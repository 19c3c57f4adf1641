//! `preprocessor_config.json` of `Qwen2VLImageProcessor`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ImageError, Result};
use super::filters::Filter;
use super::resample::PillowCompat;
use super::smart_resize::SmallImages;

/// How `convert_to_rgb` treats transparency; the two transformers generations differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphaHandling {
    /// transformers 4.x (the reference's 4.46.3): `image.convert("RGB")`, alpha dropped.
    #[default]
    Drop,
    /// transformers 5.x: images with an alpha band or transparency are composited over white.
    CompositeOnWhite,
}

/// The image processor settings. Absent JSON fields take the defaults of transformers'
/// `Qwen2VLImageProcessor` class (note the class default `max_pixels` is 28*28*1280 = 1,003,520, while the
/// Qwen2-VL-2B/7B checkpoints' `preprocessor_config.json` sets 12,845,056).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageProcessorConfig {
    pub do_resize: bool,
    /// Pillow filter code for the `smart_resize` resize (3 = BICUBIC).
    pub resample: u8,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: Vec<f64>,
    pub image_std: Vec<f64>,
    pub do_convert_rgb: bool,
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    /// Not in the JSON: small-image behaviour of `smart_resize` (default: 5.x upscaling, which gives the
    /// same result as 4.46.3 wherever 4.46.3 does not raise).
    pub small_images: SmallImages,
    /// Not in the JSON: transparency handling of the RGB conversion (default: the reference's drop).
    pub alpha: AlphaHandling,
    /// Not in the JSON: which Pillow's resize to reproduce (default: the reference's Pillow 10.4).
    pub pillow: PillowCompat,
}

/// CLIP mean, transformers' `OPENAI_CLIP_MEAN`.
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// CLIP std, transformers' `OPENAI_CLIP_STD`.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        ImageProcessorConfig {
            do_resize: true,
            resample: Filter::Bicubic as u8,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN.to_vec(),
            image_std: OPENAI_CLIP_STD.to_vec(),
            do_convert_rgb: true,
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            small_images: SmallImages::default(),
            alpha: AlphaHandling::default(),
            pillow: PillowCompat::default(),
        }
    }
}

/// A float or a list of floats (HF accepts both for mean and std).
#[derive(Deserialize)]
#[serde(untagged)]
enum FloatOrList {
    One(f64),
    Many(Vec<f64>),
}

impl FloatOrList {
    fn into_vec(self) -> Vec<f64> {
        match self {
            FloatOrList::One(v) => vec![v; 3],
            FloatOrList::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default)]
struct SizeDict {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
}

#[derive(Deserialize)]
struct RawConfig {
    do_resize: Option<bool>,
    resample: Option<u8>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<FloatOrList>,
    image_std: Option<FloatOrList>,
    do_convert_rgb: Option<bool>,
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    size: Option<SizeDict>,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    merge_size: Option<usize>,
}

impl ImageProcessorConfig {
    /// Parses a `preprocessor_config.json` text. Pixel limits come from `size.shortest_edge` /
    /// `size.longest_edge` (or `size.min_pixels` / `size.max_pixels`), overridden by top-level
    /// `min_pixels` / `max_pixels` where present, as transformers 5.x resolves them. Unknown keys are ignored.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text)?;
        let d = ImageProcessorConfig::default();
        let size = raw.size.unwrap_or_default();
        let config = ImageProcessorConfig {
            do_resize: raw.do_resize.unwrap_or(d.do_resize),
            resample: raw.resample.unwrap_or(d.resample),
            do_rescale: raw.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor: raw.rescale_factor.unwrap_or(d.rescale_factor),
            do_normalize: raw.do_normalize.unwrap_or(d.do_normalize),
            image_mean: raw.image_mean.map_or(d.image_mean, FloatOrList::into_vec),
            image_std: raw.image_std.map_or(d.image_std, FloatOrList::into_vec),
            do_convert_rgb: raw.do_convert_rgb.unwrap_or(d.do_convert_rgb),
            min_pixels: raw
                .min_pixels
                .or(size.shortest_edge)
                .or(size.min_pixels)
                .unwrap_or(d.min_pixels),
            max_pixels: raw
                .max_pixels
                .or(size.longest_edge)
                .or(size.max_pixels)
                .unwrap_or(d.max_pixels),
            patch_size: raw.patch_size.unwrap_or(d.patch_size),
            temporal_patch_size: raw.temporal_patch_size.unwrap_or(d.temporal_patch_size),
            merge_size: raw.merge_size.unwrap_or(d.merge_size),
            small_images: d.small_images,
            alpha: d.alpha,
            pillow: d.pillow,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads a `preprocessor_config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// The Pillow filter of `resample`.
    pub fn filter(&self) -> Result<Filter> {
        Filter::from_pil_code(self.resample as i64)
            .ok_or_else(|| ImageError::InvalidConfig(format!("unknown resample code {}", self.resample)))
    }

    /// `patch_size * merge_size`, the side multiple of `smart_resize`.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Values per patch row: 3 channels x temporal_patch_size x patch_size².
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Checks sizes, mean/std lengths and the filter code.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ImageError::InvalidConfig(msg));
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return bad(format!(
                "patch_size {}, merge_size {} and temporal_patch_size {} must be positive",
                self.patch_size, self.merge_size, self.temporal_patch_size
            ));
        }
        if self.image_mean.len() != 3 || self.image_std.len() != 3 {
            return bad(format!(
                "image_mean and image_std need 3 values (RGB), got {} and {}",
                self.image_mean.len(),
                self.image_std.len()
            ));
        }
        if self.min_pixels > self.max_pixels {
            return bad(format!(
                "min_pixels {} exceeds max_pixels {}",
                self.min_pixels, self.max_pixels
            ));
        }
        self.filter()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen2_vl_2b_config() {
        let json = r#"{
          "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
          "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
          "image_std": [0.26862954, 0.26130258, 0.27577711],
          "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"
        }"#;
        let c = ImageProcessorConfig::from_json(json).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 12845056));
        assert_eq!(c.resample, 3);
        assert!(c.do_rescale && c.do_normalize && c.do_convert_rgb && c.do_resize);
        assert_eq!(c.rescale_factor, 1.0 / 255.0);
        assert_eq!(c.patch_dim(), 1176);
        assert_eq!(c.factor(), 28);
    }

    #[test]
    fn newer_size_layout() {
        let json =
            r#"{"size": {"shortest_edge": 200704, "longest_edge": 1003520}, "image_mean": 0.5, "image_std": 0.5}"#;
        let c = ImageProcessorConfig::from_json(json).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (200704, 1003520));
        assert_eq!(c.image_mean, vec![0.5; 3]);
        let json = r#"{"size": {"shortest_edge": 10, "longest_edge": 20}, "max_pixels": 30}"#;
        let c = ImageProcessorConfig::from_json(json).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (10, 30));
    }

    #[test]
    fn invalid_configs() {
        let err = ImageProcessorConfig::from_json(r#"{"image_mean": [0.5, 0.5]}"#).unwrap_err();
        assert!(err.to_string().contains("got 2 and 3"), "{err}");
        assert!(ImageProcessorConfig::from_json(r#"{"resample": 9}"#).is_err());
        assert!(ImageProcessorConfig::from_json(r#"{"merge_size": 0}"#).is_err());
    }
}
