//! Parity with Pillow and transformers, from the fixtures `tests/oracle/pil_images.py` wrote to
//! `tests/fixtures/image/` (see the README there). No Python is needed to run these.
//!
//! `cargo test --release -p saha-model image::parity -- --nocapture` prints the measured differences.

use std::path::{Path, PathBuf};

use ::image::DynamicImage;
use serde_json::Value;

use super::config::{AlphaHandling, ImageProcessorConfig};
use super::convert::{to_rgb, to_rgb_on_white};
use super::error::ImageError;
use super::filters::Filter;
use super::pil_image::{PilImage, PilMode};
use super::pil_resize::resize_compat;
use super::policy::ResolutionPolicy;
use super::processor::{ImageProcessor, PixelPatches};
use super::resample::PillowCompat;
use super::smart_resize::SmallImages;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/image")
}

fn manifest() -> Value {
    let path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn u(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}")) as usize
}

/// Samples of a fixture PNG as the `image` crate decodes it (u16 for 16-bit gray).
#[derive(Debug, PartialEq)]
enum Raw {
    U8 {
        width: usize,
        height: usize,
        channels: usize,
        data: Vec<u8>,
    },
    U16 {
        width: usize,
        height: usize,
        data: Vec<u16>,
    },
}

fn load_raw(file: &str) -> Raw {
    let img = ::image::open(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (width, height) = (img.width() as usize, img.height() as usize);
    match img {
        DynamicImage::ImageLuma8(b) => Raw::U8 {
            width,
            height,
            channels: 1,
            data: b.into_raw(),
        },
        DynamicImage::ImageLumaA8(b) => Raw::U8 {
            width,
            height,
            channels: 2,
            data: b.into_raw(),
        },
        DynamicImage::ImageRgb8(b) => Raw::U8 {
            width,
            height,
            channels: 3,
            data: b.into_raw(),
        },
        DynamicImage::ImageRgba8(b) => Raw::U8 {
            width,
            height,
            channels: 4,
            data: b.into_raw(),
        },
        DynamicImage::ImageLuma16(b) => Raw::U16 {
            width,
            height,
            data: b.into_raw(),
        },
        other => panic!("{file}: unexpected fixture colour type {:?}", other.color()),
    }
}

fn raw_of(img: &PilImage) -> Raw {
    match img.as_u16() {
        Some(d) => Raw::U16 {
            width: img.width(),
            height: img.height(),
            data: d.to_vec(),
        },
        None => Raw::U8 {
            width: img.width(),
            height: img.height(),
            channels: img.mode().channels(),
            data: img.as_u8().unwrap().to_vec(),
        },
    }
}

fn raw_of_rgb(img: &::image::RgbImage) -> Raw {
    Raw::U8 {
        width: img.width() as usize,
        height: img.height() as usize,
        channels: 3,
        data: img.as_raw().clone(),
    }
}

/// (max abs difference, number of differing samples), or None if the shapes differ.
fn diff(a: &Raw, b: &Raw) -> Option<(u32, usize)> {
    let stats = |x: Vec<i64>, y: Vec<i64>| {
        let mut max = 0u32;
        let mut n = 0;
        for (p, q) in x.iter().zip(&y) {
            let d = (p - q).unsigned_abs() as u32;
            max = max.max(d);
            n += (d != 0) as usize;
        }
        (max, n)
    };
    match (a, b) {
        (
            Raw::U8 {
                width: w1,
                height: h1,
                channels: c1,
                data: d1,
            },
            Raw::U8 {
                width: w2,
                height: h2,
                channels: c2,
                data: d2,
            },
        ) if (w1, h1, c1) == (w2, h2, c2) => Some(stats(
            d1.iter().map(|&v| v as i64).collect(),
            d2.iter().map(|&v| v as i64).collect(),
        )),
        (
            Raw::U16 {
                width: w1,
                height: h1,
                data: d1,
            },
            Raw::U16 {
                width: w2,
                height: h2,
                data: d2,
            },
        ) if (w1, h1) == (w2, h2) => Some(stats(
            d1.iter().map(|&v| v as i64).collect(),
            d2.iter().map(|&v| v as i64).collect(),
        )),
        _ => None,
    }
}

fn mode_from_name(name: &str) -> PilMode {
    match name {
        "1" => PilMode::Bilevel,
        "L" => PilMode::L,
        "LA" => PilMode::LA,
        "P" => PilMode::P,
        "RGB" => PilMode::RGB,
        "RGBA" => PilMode::RGBA,
        "I;16" => PilMode::I16,
        other => panic!("mode {other}"),
    }
}

fn is_jpeg(input: &str) -> bool {
    input.starts_with("jpeg")
}

/// An input image as Pillow opened it. PNG inputs go through [`PilImage::open`] (so the decode mapping is
/// exercised everywhere); JPEG inputs are rebuilt from Pillow's decoded pixels, which keeps libjpeg vs
/// zune-jpeg decoding differences (measured in `jpeg_decode_difference`) out of the resize and processor
/// comparisons.
fn open_input(m: &Value, pillow_section: &Value, input: &str) -> PilImage {
    if !is_jpeg(input) {
        return PilImage::open(dir().join(s(&m["inputs"], input))).unwrap();
    }
    let dec = pillow_section["decode"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| s(d, "input") == input)
        .unwrap();
    let mode = mode_from_name(s(dec, "mode"));
    match load_raw(s(dec, "expected")) {
        Raw::U8 {
            width, height, data, ..
        } => PilImage::from_u8(mode, width, height, data).unwrap(),
        Raw::U16 { .. } => unreachable!(),
    }
}

fn pillow_sections(m: &Value) -> Vec<(String, PillowCompat, &Value)> {
    let mut out: Vec<_> = m["pillow"]
        .as_object()
        .expect("pillow sections")
        .iter()
        .map(|(major, sec)| {
            let compat = if major.parse::<u32>().unwrap() >= 13 {
                PillowCompat::Pillow13
            } else {
                PillowCompat::Pillow10
            };
            (format!("Pillow {}", s(sec, "pillow")), compat, sec)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty());
    out
}

fn filter_of(v: &Value) -> Option<Filter> {
    v.as_str().map(|name| match name {
        "nearest" => Filter::Nearest,
        "bilinear" => Filter::Bilinear,
        "bicubic" => Filter::Bicubic,
        "lanczos" => Filter::Lanczos,
        "box" => Filter::Box,
        "hamming" => Filter::Hamming,
        other => panic!("filter {other}"),
    })
}

#[test]
fn decode_matches_pillow_open() {
    let m = manifest();
    for (name, _, sec) in pillow_sections(&m) {
        let mut n = 0;
        for case in sec["decode"].as_array().unwrap() {
            let input = s(case, "input");
            if is_jpeg(input) {
                continue; // jpeg_decode_difference
            }
            let img = PilImage::open(dir().join(s(&m["inputs"], input))).unwrap();
            assert_eq!(img.mode().name(), s(case, "mode"), "{name} {input}: mode");
            let want = load_raw(s(case, "expected"));
            assert_eq!(
                raw_of(&img),
                want,
                "{name} {input}: samples differ from np.array(Image.open(...))"
            );
            n += 1;
        }
        println!("{name}: {n} PNG inputs decode to Pillow's mode and samples exactly");
    }
}

#[test]
fn jpeg_decode_difference() {
    // zune-jpeg (the image crate) and libjpeg-turbo (Pillow) may round the IDCT / chroma upsampling
    // differently; this measures it on the fixture JPEGs.
    let m = manifest();
    for (name, _, sec) in pillow_sections(&m) {
        for case in sec["decode"].as_array().unwrap() {
            let input = s(case, "input");
            if !is_jpeg(input) {
                continue;
            }
            let img = PilImage::open(dir().join(s(&m["inputs"], input))).unwrap();
            assert_eq!(img.mode().name(), s(case, "mode"), "{name} {input}: mode");
            let (max, count) = diff(&raw_of(&img), &load_raw(s(case, "expected"))).expect("shape");
            println!("{name} {input}: JPEG decode vs Pillow: max |diff| {max}, {count} samples differ");
            assert!(max <= 8, "{name} {input}: JPEG decode differs by {max}");
        }
    }
}

#[test]
fn convert_rgb_matches_pillow() {
    let m = manifest();
    for (name, _, sec) in pillow_sections(&m) {
        for case in sec["convert"].as_array().unwrap() {
            let input = s(case, "input");
            let img = open_input(&m, sec, input);
            assert_eq!(
                raw_of_rgb(&to_rgb(&img)),
                load_raw(s(case, "expected")),
                "{name} {input}: convert(\"RGB\")"
            );
        }
        for case in sec["composite"].as_array().unwrap() {
            let input = s(case, "input");
            let img = open_input(&m, sec, input);
            let got = raw_of_rgb(&to_rgb_on_white(&img));
            assert_eq!(
                got,
                load_raw(s(case, "expected")),
                "{name} {input}: alpha_composite over white"
            );
        }
        println!(
            "{name}: convert(\"RGB\") exact for {} inputs, composite over white exact for {}",
            sec["convert"].as_array().unwrap().len(),
            sec["composite"].as_array().unwrap().len()
        );
    }
}

#[test]
fn resize_matches_pillow() {
    let m = manifest();
    let mut failures = Vec::new();
    for (name, compat, sec) in pillow_sections(&m) {
        let (mut exact, mut raised) = (0, 0);
        for case in sec["resize"].as_array().unwrap() {
            let input = s(case, "input");
            let (w, h) = (u(case, "width"), u(case, "height"));
            let filter = filter_of(&case["filter"]);
            let img = open_input(&m, sec, input);
            let ours = resize_compat(&img, w, h, filter, compat).unwrap();
            let label = format!("{name} {input} -> {w}x{h} {:?}", filter);
            if case.get("error").is_some() {
                // Pillow < 11 cannot resample I;16 with a convolution filter; we follow Pillow 13.
                assert_eq!(
                    img.mode(),
                    PilMode::I16,
                    "{label}: unexpected Pillow error {}",
                    case["error"]
                );
                raised += 1;
                continue;
            }
            assert_eq!(ours.mode().name(), s(case, "mode"), "{label}: mode");
            match diff(&raw_of(&ours), &load_raw(s(case, "expected"))) {
                Some((0, _)) => exact += 1,
                Some((max, count)) => failures.push(format!("{label}: max |diff| {max}, {count} samples differ")),
                None => failures.push(format!("{label}: shape differs")),
            }
        }
        println!("{name}: {exact} resize cases byte-identical; {raised} cases Pillow raised on (I;16 convolution)");
    }
    assert!(failures.is_empty(), "resize differences:\n{}", failures.join("\n"));
}

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn raw_bytes(raw: &Raw) -> Vec<u8> {
    match raw {
        Raw::U8 { data, .. } => data.clone(),
        Raw::U16 { data, .. } => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn raw_sum(raw: &Raw) -> u64 {
    match raw {
        Raw::U8 { data, .. } => data.iter().map(|&v| v as u64).sum(),
        Raw::U16 { data, .. } => data.iter().map(|&v| v as u64).sum(),
    }
}

#[test]
fn resolution_policies_match_reference() {
    let m = manifest();
    let mut failures = Vec::new();
    for (name, compat, sec) in pillow_sections(&m) {
        let (mut exact, mut raised) = (0, 0);
        for case in sec["policy"].as_array().unwrap() {
            let input = s(case, "input");
            let policy: ResolutionPolicy = s(case, "policy").parse().unwrap();
            let img = open_input(&m, sec, input);
            let ours = policy.apply_compat(&img, compat).unwrap();
            let label = format!("{name} {input} {policy}");
            if case.get("error").is_some() {
                assert_eq!(
                    img.mode(),
                    PilMode::I16,
                    "{label}: unexpected Pillow error {}",
                    case["error"]
                );
                raised += 1;
                continue;
            }
            assert_eq!(
                (ours.width(), ours.height()),
                (u(case, "width"), u(case, "height")),
                "{label}: size"
            );
            assert_eq!(ours.mode().name(), s(case, "mode"), "{label}: mode");
            let raw = raw_of(&ours);
            if fnv1a64(raw_bytes(&raw)) == s(case, "fnv1a64") {
                exact += 1;
            } else {
                let sum = raw_sum(&raw) as f64;
                let want = case["sum"].as_u64().unwrap() as f64;
                failures.push(format!("{label}: hash differs; sample sum {sum} vs {want}"));
            }
        }
        println!("{name}: {exact} policy outputs byte-identical (FNV-1a); {raised} cases Pillow raised on");
    }
    assert!(failures.is_empty(), "policy differences:\n{}", failures.join("\n"));
}

fn read_lut(file: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir().join(file)).unwrap();
    assert_eq!(bytes.len(), 3 * 256 * 4);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn processor_sections(m: &Value) -> Vec<(&str, &Value)> {
    let sections: Vec<_> = m
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("processor_"))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert!(!sections.is_empty(), "no processor section in manifest.json");
    sections
}

fn processor_for(sec: &Value, config_name: &str) -> ImageProcessor {
    let cfg = &sec["configs"][config_name];
    let major: u32 = s(sec, "pillow").split('.').next().unwrap().parse().unwrap();
    ImageProcessor::new(ImageProcessorConfig {
        min_pixels: u(cfg, "min_pixels"),
        max_pixels: u(cfg, "max_pixels"),
        alpha: if s(sec, "alpha") == "drop" {
            AlphaHandling::Drop
        } else {
            AlphaHandling::CompositeOnWhite
        },
        small_images: if s(sec, "small_images") == "reject" {
            SmallImages::Reject
        } else {
            SmallImages::Upscale
        },
        pillow: if major >= 13 {
            PillowCompat::Pillow13
        } else {
            PillowCompat::Pillow10
        },
        ..ImageProcessorConfig::default()
    })
}

/// Largest and mean |difference| between `out` and transformers' pixel_values, given as the index image
/// `file` (one byte per value: the uint8 pixel each value was made from) and the value table `lut`.
fn index_image_difference(file: &str, out: &PixelPatches, lut: &[f32], label: &str) -> (f64, f64) {
    let Raw::U8 {
        width,
        height,
        channels: 1,
        data,
    } = load_raw(file)
    else {
        panic!("{file}")
    };
    assert_eq!(
        (height, width),
        (out.rows(), out.row_len()),
        "{label}: index image shape"
    );
    let per = width / 3;
    let (mut max, mut sum) = (0f64, 0f64);
    for (i, (&got, &idx)) in out.values.iter().zip(&data).enumerate() {
        let d = (got as f64 - lut[((i % width) / per) * 256 + idx as usize] as f64).abs();
        max = max.max(d);
        sum += d;
    }
    (max, sum / data.len() as f64)
}

#[test]
fn value_table_matches_transformers() {
    let m = manifest();
    for (tag, sec) in processor_sections(&m) {
        let lut = read_lut(s(sec, "lut"));
        let ours = processor_for(sec, "small").value_table();
        for (c, row) in ours.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                assert_eq!(
                    x.to_bits(),
                    lut[c * 256 + v].to_bits(),
                    "{tag}: channel {c} value {v}: {x} vs {}",
                    lut[c * 256 + v]
                );
            }
        }
        println!(
            "{tag}: rescale/normalise of all 3x256 uint8 values bit-identical to transformers {}",
            s(sec, "transformers")
        );
    }
}

#[test]
fn processor_matches_transformers() {
    let m = manifest();
    let mut failures = Vec::new();
    for (tag, sec) in processor_sections(&m) {
        let pillow = &m["pillow"][s(sec, "pillow").split('.').next().unwrap()];
        let lut = read_lut(s(sec, "lut"));
        let (mut full, mut hashed, mut errors, mut bit_exact) = (0, 0, 0, 0);
        let (mut worst_max, mut worst_mean) = (0f64, 0f64);
        for case in sec["cases"].as_array().unwrap() {
            let input = s(case, "input");
            let policy: ResolutionPolicy = s(case, "policy").parse().unwrap();
            let label = format!("{tag} {input} {policy} {}", s(case, "config"));
            let proc = processor_for(sec, s(case, "config"));
            let img = open_input(&m, pillow, input);
            let pre = policy.apply_compat(&img, proc.config().pillow);
            let result = pre.and_then(|p| proc.preprocess_pil(&p));
            if let Some(err) = case.get("error") {
                let err = err.as_str().unwrap();
                match result {
                    Err(ImageError::SmallerThanFactor { .. }) if err.contains("must be larger than factor") => {}
                    // Pillow 10.4 cannot resample I;16 with LANCZOS; we produce Pillow 13's result instead.
                    Ok(_) if err.contains("wrong mode") && img.mode() == PilMode::I16 => {}
                    other => failures.push(format!("{label}: transformers raised {err:?}, we gave {other:?}")),
                }
                errors += 1;
                continue;
            }
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let grid: Vec<usize> = case["grid_thw"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(out.grid_thw.to_vec(), grid, "{label}: grid_thw");
            assert_eq!(
                (out.rows(), out.row_len()),
                (u(case, "rows"), u(case, "row_len")),
                "{label}: shape"
            );
            let bytes = out.values.iter().flat_map(|v| v.to_le_bytes());
            let same_hash = fnv1a64(bytes) == s(case, "fnv1a64_f32");
            if same_hash {
                bit_exact += 1;
            }
            if let Some(file) = case.get("indices").and_then(Value::as_str) {
                let (max, mean) = index_image_difference(file, &out, &lut, &label);
                worst_max = worst_max.max(max);
                worst_mean = worst_mean.max(mean);
                if max > 1e-2 || mean > 1e-3 {
                    failures.push(format!("{label}: pixel_values max |diff| {max:e}, mean {mean:e}"));
                }
                full += 1;
            } else {
                // Large cases store no index image, only the FNV-1a hash of the f32 bytes and two sums. The
                // sums cannot see the order of patches or of values within a patch, so the hash must match:
                // our values are the transformers value table applied to Pillow-identical pixels, bit for bit.
                if !same_hash {
                    failures.push(format!(
                        "{label}: pixel_values differ from transformers' (FNV-1a of the f32 bytes {} expected)",
                        s(case, "fnv1a64_f32")
                    ));
                }
                let got: f64 = out.values.iter().map(|&v| v as f64).sum();
                let got_abs: f64 = out.values.iter().map(|&v| (v as f64).abs()).sum();
                let n = out.values.len() as f64;
                let (want, want_abs) = (case["sum"].as_f64().unwrap(), case["sum_abs"].as_f64().unwrap());
                if (got - want).abs() / n > 1e-3 || (got_abs - want_abs).abs() / n > 1e-3 {
                    failures.push(format!("{label}: sums {got} / {got_abs} vs {want} / {want_abs}"));
                }
                hashed += 1;
            }
        }
        println!(
            "{tag} (transformers {}, Pillow {}): {full} cases compared value by value (worst max |diff| {worst_max:e}, \
             worst mean {worst_mean:e}), {hashed} large cases by hash/sums, {bit_exact}/{} bit-identical, {errors} \
             expected errors",
            s(sec, "transformers"),
            s(sec, "pillow"),
            full + hashed
        );
    }
    assert!(failures.is_empty(), "processor differences:\n{}", failures.join("\n"));
}

#[test]
fn jpeg_end_to_end_difference() {
    // Our JPEG decoder -> processor, against transformers on Pillow's decode of the same file. zune-jpeg
    // and libjpeg-turbo differ by up to 3 levels (jpeg_decode_difference); through the processor that was
    // measured as max |diff| 4.38e-2 and mean 5.89e-3 (jpeg_64x48), max 3.00e-2 and mean 4.35e-4
    // (jpeg_l_40x30), on both processor sections. The bounds sit a little above those measurements: one
    // level is 1/255/std ~ 1.5e-2 after normalisation, so a decode off by one more level fails.
    const MAX_BOUND: f64 = 0.05;
    const MEAN_BOUND: f64 = 0.007;
    let m = manifest();
    let mut compared = 0;
    let mut failures = Vec::new();
    for (tag, sec) in processor_sections(&m) {
        let lut = read_lut(s(sec, "lut"));
        for case in sec["cases"].as_array().unwrap() {
            let input = s(case, "input");
            let Some(file) = case.get("indices").and_then(Value::as_str) else {
                continue;
            };
            if !is_jpeg(input) || s(case, "policy") != "native" {
                continue;
            }
            let proc = processor_for(sec, s(case, "config"));
            let img = PilImage::open(dir().join(s(&m["inputs"], input))).unwrap();
            let out = proc.preprocess_pil(&img).unwrap();
            let (max, mean) = index_image_difference(file, &out, &lut, &format!("{tag} {input}"));
            println!("{tag} {input}: own JPEG decode -> pixel_values max |diff| {max:e}, mean {mean:e}");
            if max > MAX_BOUND || mean > MEAN_BOUND {
                failures.push(format!(
                    "{tag} {input}: own JPEG decode -> pixel_values max |diff| {max:e}, mean {mean:e} (bounds \
                     {MAX_BOUND:e}, {MEAN_BOUND:e})"
                ));
            }
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "no native-policy JPEG case with an index image in manifest.json"
    );
    assert!(
        failures.is_empty(),
        "JPEG end-to-end differences:\n{}",
        failures.join("\n")
    );
}

/// GIF, WebP, BMP and TIFF against Pillow (`tests/oracle/pil_formats.py`, fixtures in
/// `tests/fixtures/image_formats/`): the mode `Image.open` gives, `convert("RGB")`, a resize in the file's
/// mode (the filter follows the mode) and, for images with transparency, the composite over white.
/// Every sample matches, lossy WebP included (image-webp decodes the two lossy files, RGB and RGBA,
/// exactly as Pillow's libwebp does, fancy chroma upsampling and all).
#[test]
fn other_formats_decode_as_pillow() {
    let formats = "../image_formats";
    let text = std::fs::read_to_string(dir().join(formats).join("manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let (rw, rh) = (
        m["resize"][0].as_u64().unwrap() as usize,
        m["resize"][1].as_u64().unwrap() as usize,
    );
    for case in m["cases"].as_array().unwrap() {
        let input = s(case, "input");
        let img = PilImage::open(dir().join(formats).join(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(img.mode().name(), s(case, "mode"), "{input}: mode");
        assert_eq!(
            (img.width(), img.height()),
            (u(case, "width"), u(case, "height")),
            "{input}: size"
        );
        let resized = resize_compat(&img, rw, rh, None, PillowCompat::Pillow13).unwrap();
        let mut checks = vec![
            ("convert(\"RGB\")", to_rgb(&img), "rgb"),
            ("resize", to_rgb(&resized), "resized"),
        ];
        if let Some(file) = case.get("white") {
            assert!(
                img.transparency().is_some() || img.mode() == PilMode::RGBA,
                "{input}: transparency lost"
            );
            assert!(file.is_string(), "{input}: white");
            checks.push(("composite over white", to_rgb_on_white(&img), "white"));
        }
        for (what, got, key) in checks {
            let want = load_raw(&format!("{formats}/{}", s(case, key)));
            let (max, count) = diff(&raw_of_rgb(&got), &want).unwrap_or_else(|| panic!("{input} {what}: shape"));
            println!(
                "{input} ({}): {what}: max |diff| {max}, {count} samples differ",
                s(case, "mode")
            );
            assert_eq!(
                max, 0,
                "{input}: {what} differs from Pillow in {count} samples, by up to {max}"
            );
        }
    }
}
