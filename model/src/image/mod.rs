//! Image preprocessing as `Qwen2VLImageProcessor` (PIL backend) and the reference's resolution policies.
//!
//! * [`PilImage`] is a decoded image in a Pillow mode (`PIL.Image.open`); see [`PilImage::decode`] and
//!   [`PilImage::open`].
//! * [`resize`] is `Image.resize` with Pillow's fixed-point convolution resampler, bit-exact for 8-bit modes.
//! * [`to_rgb`] is `Image.convert("RGB")`.
//! * [`ResolutionPolicy`] is the reference's `--image_resolution` pre-resize.
//! * [`smart_resize`], [`ImageProcessorConfig`] and [`ImageProcessor`] are the Qwen2-VL processor, giving
//!   [`PixelPatches`] (`pixel_values` and `image_grid_thw` for one image).
//!
//! Defaults reproduce the reference's stack (Pillow 10.4.0, transformers 4.46.3); [`PillowCompat`],
//! [`AlphaHandling`] and [`SmallImages`] select the newer behaviours (Pillow 13, transformers 5). Where
//! the reference's stack raises (a side shorter than 28 px, `I;16` with LANCZOS) the newer stack's result
//! is given by default instead of an error.

mod coeffs;
mod config;
mod convert;
mod error;
mod filters;
mod palette_header;
mod pil_image;
mod pil_resize;
mod policy;
mod processor;
mod resample;
mod smart_resize;

#[cfg(test)]
mod parity_tests;

pub use config::{AlphaHandling, ImageProcessorConfig, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
pub use convert::{to_rgb, to_rgb_on_white};
pub use error::{ImageError, Result};
pub use filters::Filter;
pub use pil_image::{PilImage, PilMode};
pub use pil_resize::{default_filter, resize, resize_compat, resize_rgb};
pub use policy::ResolutionPolicy;
pub use processor::{num_image_tokens, ImageProcessor, PixelPatches};
pub use resample::{nearest_u16, nearest_u8, resample_u16, resample_u8, resample_u8_compat, PillowCompat};
pub use smart_resize::{smart_resize, smart_resize_with, SmallImages};
