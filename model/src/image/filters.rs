//! Pillow's resampling filters (`PIL.Image.Resampling`) and their kernels, as in libImaging/Resample.c.

use std::f64::consts::PI;

/// A Pillow resampling filter. The discriminants are Pillow's integer codes (`resample=3` is BICUBIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

impl Filter {
    /// The filter for one of Pillow's integer codes.
    pub fn from_pil_code(code: i64) -> Option<Filter> {
        Some(match code {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    /// Support radius of the kernel at scale 1 (`None` for NEAREST, which is not a convolution).
    pub(crate) fn support(self) -> Option<f64> {
        match self {
            Filter::Nearest => None,
            Filter::Box => Some(0.5),
            Filter::Bilinear | Filter::Hamming => Some(1.0),
            Filter::Bicubic => Some(2.0),
            Filter::Lanczos => Some(3.0),
        }
    }

    /// The kernel value at `x` (in units of source pixels at scale 1).
    pub(crate) fn kernel(self, x: f64) -> f64 {
        match self {
            Filter::Nearest => 0.0,
            Filter::Box => box_kernel(x),
            Filter::Bilinear => bilinear_kernel(x),
            Filter::Hamming => hamming_kernel(x),
            Filter::Bicubic => bicubic_kernel(x),
            Filter::Lanczos => lanczos_kernel(x),
        }
    }
}

fn box_kernel(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let x = x * PI;
    // Pillow writes the window constants as C floats (0.54f, 0.46f).
    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
}

/// Keys' cubic convolution with a = -0.5 (Catmull-Rom), evaluated in Pillow's operation order.
fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * PI;
    x.sin() / x
}

/// Truncated sinc windowed by sinc(x / 3).
fn lanczos_kernel(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_is_interpolating() {
        assert_eq!(bicubic_kernel(0.0), 1.0);
        assert_eq!(bicubic_kernel(1.0), 0.0);
        assert_eq!(bicubic_kernel(-2.0), 0.0);
        assert!((bicubic_kernel(0.5) - 0.5625).abs() < 1e-15);
        assert!((bicubic_kernel(1.5) + 0.0625).abs() < 1e-15);
    }

    #[test]
    fn lanczos_support_is_half_open() {
        assert_eq!(lanczos_kernel(3.0), 0.0);
        assert!(lanczos_kernel(-3.0).abs() < 1e-12);
        assert_eq!(lanczos_kernel(0.0), 1.0);
    }

    #[test]
    fn pil_codes_round_trip() {
        for f in [
            Filter::Nearest,
            Filter::Lanczos,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Box,
            Filter::Hamming,
        ] {
            assert_eq!(Filter::from_pil_code(f as i64), Some(f));
        }
    }
}
