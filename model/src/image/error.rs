//! Errors of the image module.

use std::path::PathBuf;

/// Everything that can go wrong while decoding, resizing or preprocessing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An image (or a requested output size) has a zero width or height.
    #[error("image has zero size: {width}x{height} (width x height)")]
    ZeroSized { width: usize, height: usize },

    /// `max(h, w) / min(h, w) > 200`, which the Qwen2-VL processor rejects.
    #[error("absolute aspect ratio must be at most 200, got {ratio} for a {height}x{width} (height x width) image")]
    AspectRatioTooLarge { height: usize, width: usize, ratio: f64 },

    /// A side is shorter than the patch factor (transformers 4.x `smart_resize` rejects this; 5.x upscales).
    #[error(
        "image of {height}x{width} (height x width) is smaller than allowed: both sides must be at least {factor} px"
    )]
    SmallerThanFactor { height: usize, width: usize, factor: usize },

    /// `smart_resize` produced a zero side (only possible with `min_pixels == 0` and a side shorter than factor/2).
    #[error("smart_resize of a {height}x{width} (height x width) image gives a zero side with factor {factor}, min_pixels {min_pixels}")]
    ResizedToZero {
        height: usize,
        width: usize,
        factor: usize,
        min_pixels: usize,
    },

    /// A pixel buffer whose length does not match its declared size and mode.
    #[error("pixel buffer has {got} values, expected {expected} for a {width}x{height} {mode} image")]
    BufferSize {
        got: usize,
        expected: usize,
        width: usize,
        height: usize,
        mode: &'static str,
    },

    /// The processor configuration is inconsistent.
    #[error("invalid image processor config: {0}")]
    InvalidConfig(String),

    /// A resolution policy name that is not known.
    #[error("unknown image resolution policy {0:?} (expected high, mid_high, mid, mid_low, clip, low, random/aspect, native/none)")]
    UnknownPolicy(String),

    /// The `image` crate could not decode the bytes.
    #[error("cannot decode image: {0}")]
    Decode(#[from] ::image::ImageError),

    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A JSON config could not be parsed.
    #[error("cannot parse image processor config: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias of the image module.
pub type Result<T> = std::result::Result<T, ImageError>;
