//! Seeded mutation fuzzing of the image path a stage takes: the header read that plans a batch
//! (`header_size`), the decode (`PilImage::open`) and the processor. Cut, flipped and overwritten
//! copies of every `in_*` image in tests/fixtures/image and of every GIF, WebP, BMP and TIFF in
//! tests/fixtures/image_formats (whatever formats the decoder reads) must be
//! refused with an error naming the file, or read, never panic. Inputs that once panicked are kept in
//! tests/fixtures/image/fuzz/ and run first. `SAHA_FUZZ_CASES=<n>` runs n mutations per seed image (a
//! longer hunt); the default is a few seconds' worth.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use saha_common::mutate::mutate;
use saha_model::image::{ImageProcessor, ImageProcessorConfig, PilImage};
use saha_model::inputs::header_size;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/image")
}

fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && keep(&p.file_name().unwrap().to_string_lossy()));
    v.sort();
    v
}

/// Reads `path` as embedding and training do. The header read is the stages' first look at a file,
/// so its errors must name it (the stages add the name to decode errors: tests/faults/images.rs).
fn read(path: &Path) -> Result<(), String> {
    let named = |e: String| {
        if e.contains(&path.display().to_string()) {
            e
        } else {
            format!("{e} [does not name {}]", path.display())
        }
    };
    header_size(path).map_err(|e| named(e.to_string()))?;
    let image = PilImage::open(path).map_err(|e| e.to_string())?;
    ImageProcessor::new(ImageProcessorConfig::default())
        .preprocess_pil(&image)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `bytes` as file `name`: `Some(problem)` when reading panicked or an early error lost the file name.
fn probe(dir: &Path, name: &str, bytes: &[u8]) -> Option<String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| read(&path)));
    let problem = match outcome {
        Err(_) => Some(format!("{name}: panicked")),
        Ok(Err(e)) if e.contains("[does not name") => Some(format!("{name}: {e}")),
        Ok(_) => None,
    };
    std::fs::remove_file(&path).unwrap();
    problem
}

#[test]
fn mutated_images_are_refused_naming_the_file_never_a_panic() {
    let cases: u64 = std::env::var("SAHA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for kept in files(&fixtures().join("fuzz"), |_| true) {
        let name = kept.file_name().unwrap().to_string_lossy().into_owned();
        problems.extend(probe(dir.path(), &name, &std::fs::read(&kept).unwrap()));
    }
    let mut seeds = files(&fixtures(), |n| n.starts_with("in_"));
    assert!(seeds.len() >= 5, "seed images in {}", fixtures().display());
    let formats = fixtures().with_file_name("image_formats");
    let other_formats = files(&formats, |n| {
        [".gif", ".webp", ".bmp", ".tif", ".tiff"]
            .iter()
            .any(|e| n.ends_with(e))
    });
    assert!(other_formats.len() >= 4, "seed images in {}", formats.display());
    seeds.extend(other_formats);
    for seed_path in &seeds {
        let bytes = std::fs::read(seed_path).unwrap();
        assert!(read(seed_path).is_ok(), "{} is read", seed_path.display());
        let stem = seed_path.file_stem().unwrap().to_string_lossy();
        let ext = seed_path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        for seed in 0..cases {
            let name = format!("{stem}-m{seed}.{ext}");
            let mutated = mutate(&bytes, seed);
            if let Some(p) = probe(dir.path(), &name, &mutated) {
                // Copied out for the regression folder.
                std::fs::write(std::env::temp_dir().join(&name), &mutated).unwrap();
                problems.push(p);
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) (inputs copied to {}):\n{}",
        problems.len(),
        std::env::temp_dir().display(),
        problems.join("\n")
    );
}
