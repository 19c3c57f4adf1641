//! The reference's image resolution policies (`process_image` of Gen2Embed's `src/dataset.py`), applied
//! to the opened image in its own mode before the processor converts it to RGB.

use std::fmt;
use std::str::FromStr;

use super::error::{ImageError, Result};
use super::filters::Filter;
use super::pil_image::PilImage;
use super::pil_resize::resize_compat;
use super::resample::PillowCompat;

/// `--image_resolution` of the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResolutionPolicy {
    /// `resize((1344, 1344))`, Pillow's default filter. The reference's default.
    #[default]
    High,
    /// `resize((768, 768))`.
    MidHigh,
    /// `resize((672, 672))`.
    Mid,
    /// `resize((448, 448))` (the README's training setting).
    MidLow,
    /// `resize((336, 336))`.
    Clip,
    /// `resize((128, 128))`.
    Low,
    /// The reference's `else` branch (README's `random`; deterministic): stretch the short side so the
    /// aspect ratio is at most 2:1, scale so the long side is at most 992 and the short side at least 336
    /// (the latter wins), truncate to integers, resize with LANCZOS.
    Aspect,
    /// No resize (the policy is off, e.g. SugarCrepe images).
    Native,
}

impl ResolutionPolicy {
    /// The canonical name (`"high"`, `"mid_high"`, ..., `"random"`, `"native"`).
    pub fn name(self) -> &'static str {
        match self {
            ResolutionPolicy::High => "high",
            ResolutionPolicy::MidHigh => "mid_high",
            ResolutionPolicy::Mid => "mid",
            ResolutionPolicy::MidLow => "mid_low",
            ResolutionPolicy::Clip => "clip",
            ResolutionPolicy::Low => "low",
            ResolutionPolicy::Aspect => "random",
            ResolutionPolicy::Native => "native",
        }
    }

    /// The square side of the fixed-size policies.
    pub fn square_side(self) -> Option<usize> {
        match self {
            ResolutionPolicy::High => Some(1344),
            ResolutionPolicy::MidHigh => Some(768),
            ResolutionPolicy::Mid => Some(672),
            ResolutionPolicy::MidLow => Some(448),
            ResolutionPolicy::Clip => Some(336),
            ResolutionPolicy::Low => Some(128),
            ResolutionPolicy::Aspect | ResolutionPolicy::Native => None,
        }
    }

    /// `(width, height)` after the policy for a `width`x`height` image (`None` for `Native`).
    pub fn target_size(self, width: usize, height: usize) -> Result<Option<(usize, usize)>> {
        if width == 0 || height == 0 {
            return Err(ImageError::ZeroSized { width, height });
        }
        Ok(match self {
            ResolutionPolicy::Native => None,
            ResolutionPolicy::Aspect => Some(aspect_size(width, height)),
            fixed => fixed.square_side().map(|s| (s, s)),
        })
    }

    /// The filter passed to `resize` (`None`: Pillow's default, BICUBIC; NEAREST for `I;16` in Pillow 10).
    pub fn filter(self) -> Option<Filter> {
        match self {
            ResolutionPolicy::Aspect => Some(Filter::Lanczos),
            _ => None,
        }
    }

    /// Applies the policy to an image in its file mode (resize only; no RGB conversion), as Pillow 10.4.
    pub fn apply(self, img: &PilImage) -> Result<PilImage> {
        self.apply_compat(img, PillowCompat::Pillow10)
    }

    /// [`ResolutionPolicy::apply`] for the given Pillow generation.
    pub fn apply_compat(self, img: &PilImage, compat: PillowCompat) -> Result<PilImage> {
        match self.target_size(img.width(), img.height())? {
            None => Ok(img.clone()),
            Some((w, h)) => resize_compat(img, w, h, self.filter(), compat),
        }
    }
}

/// The `else` branch of the reference's `process_image`, with Python's int/float semantics.
fn aspect_size(width: usize, height: usize) -> (usize, usize) {
    let (mut w, mut h) = (width as f64, height as f64);
    if width.max(height) > 2 * width.min(height) {
        if width > height {
            h = width as f64 / 2.0;
        } else {
            w = height as f64 / 2.0;
        }
    }
    let min_dim = w.min(h);
    let max_dim = w.max(h);
    let mut scale = 1.0f64;
    if max_dim > 992.0 {
        scale = 992.0 / max_dim;
    }
    if min_dim < 336.0 {
        scale = 336.0 / min_dim;
    }
    ((w * scale) as usize, (h * scale) as usize)
}

impl FromStr for ResolutionPolicy {
    type Err = ImageError;

    /// Accepts the reference's names plus `aspect` (= `random`) and `none` (= `native`), case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "high" => ResolutionPolicy::High,
            "mid_high" => ResolutionPolicy::MidHigh,
            "mid" => ResolutionPolicy::Mid,
            "mid_low" => ResolutionPolicy::MidLow,
            "clip" => ResolutionPolicy::Clip,
            "low" => ResolutionPolicy::Low,
            "random" | "aspect" => ResolutionPolicy::Aspect,
            "native" | "none" => ResolutionPolicy::Native,
            _ => return Err(ImageError::UnknownPolicy(s.to_string())),
        })
    }
}

impl fmt::Display for ResolutionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        for p in [
            ResolutionPolicy::High,
            ResolutionPolicy::MidHigh,
            ResolutionPolicy::Mid,
            ResolutionPolicy::MidLow,
            ResolutionPolicy::Clip,
            ResolutionPolicy::Low,
            ResolutionPolicy::Aspect,
            ResolutionPolicy::Native,
        ] {
            assert_eq!(p.name().parse::<ResolutionPolicy>().unwrap(), p);
        }
        assert_eq!("aspect".parse::<ResolutionPolicy>().unwrap(), ResolutionPolicy::Aspect);
        assert_eq!("None".parse::<ResolutionPolicy>().unwrap(), ResolutionPolicy::Native);
        assert!("huge".parse::<ResolutionPolicy>().is_err());
    }

    #[test]
    fn aspect_sizes() {
        // long side capped at 992
        assert_eq!(aspect_size(2000, 1500), (992, 744));
        // short side raised to 336 (wins over the cap)
        assert_eq!(aspect_size(100, 40), (672, 336));
        // 3:1 stretched to 2:1 first: h = 150.0, then scaled to 336
        assert_eq!(aspect_size(300, 100), (672, 336));
        // already within bounds: unchanged
        assert_eq!(aspect_size(640, 480), (640, 480));
        // stretched to a fractional side (w = 500.5), then capped; values from the Python
        assert_eq!(aspect_size(400, 1001), (496, 992));
        assert_eq!(aspect_size(997, 331), (992, 496));
        assert_eq!(aspect_size(37, 23), (540, 336));
    }
}
