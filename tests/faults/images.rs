//! Bad image files under saha-embed: by default a refusal naming the item and the image file, and
//! with `--on-bad-image skip` a run that leaves the item out and finishes. The inputs that made the
//! decoder fuzz (saha-model's tests/image_fuzz.rs) panic are run here too, end to end.

use std::path::{Path, PathBuf};

use saha_schemas::records::{read_records, write_records};
use saha_schemas::Item;
use saha_tests::{repo_root, stderr, stdout};

use crate::fixture::{fixture, listing};
use crate::harness::check_refused;

/// The first items of run `a` up to and including its first one with an image, and that image's path.
fn few_items(dir: &Path) -> (PathBuf, String) {
    let (items, prov) = read_records::<Item>(&fixture().a("items.parquet")).unwrap();
    let first = items.iter().position(|i| i.image_path.is_some()).unwrap();
    let path = dir.join("items.parquet");
    write_records(&path, &items[..=first], &prov.unwrap()).unwrap();
    (path, items[first].image_path.clone().unwrap())
}

/// The bad stand-ins for a good PNG: (name, bytes), or `None` bytes for a folder in its place.
fn variants(png: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut flipped = png.to_vec();
    let mid = png.len() / 2;
    flipped[mid - 4..mid + 4].iter_mut().for_each(|b| *b ^= 0xa5);
    let mut bomb = png.to_vec();
    // IHDR width and height (bytes 16..24): 60000 x 60000 pixels, more than any limit.
    bomb[16..24].copy_from_slice(&[0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60]);
    let mut v = vec![
        ("truncated".to_string(), Some(png[..png.len() / 2].to_vec())),
        ("empty".into(), Some(Vec::new())),
        (
            "garbage".into(),
            Some((0..500u32).map(|i| (i * 7919 % 251) as u8).collect()),
        ),
        ("data-flipped".into(), Some(flipped)),
        ("bomb".into(), Some(bomb)),
        ("folder".into(), None),
    ];
    let kept = repo_root().join("tests/fixtures/image/fuzz");
    for f in std::fs::read_dir(kept)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_else(|_| Vec::new())
    {
        v.push((
            format!("fuzz {}", f.file_name().to_string_lossy()),
            Some(std::fs::read(f.path()).unwrap()),
        ));
    }
    v
}

/// An image root of hard links to run `a`'s images, with `rel` replaced by `bytes` (or a folder).
fn root_with(dir: &Path, rel: &str, bytes: &Option<Vec<u8>>) -> PathBuf {
    let root = dir.join("images");
    let images = fixture().a("data/images");
    for p in listing(&images) {
        let (src, dst) = (images.join(&p), root.join(&p));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else if p != rel {
            std::fs::hard_link(&src, &dst).unwrap();
        }
    }
    match bytes {
        Some(b) => std::fs::write(root.join(rel), b).unwrap(),
        None => std::fs::create_dir_all(root.join(rel)).unwrap(),
    }
    root
}

#[test]
fn bad_images_are_refused_by_default_and_skipped_on_request() {
    let dir = fixture().scratch("images");
    let (items, rel) = few_items(&dir);
    let png = std::fs::read(fixture().a("data/images").join(&rel)).unwrap();
    let model = fixture().a("model");
    let mut problems = Vec::new();
    let variants = variants(&png);
    for (name, bytes) in &variants {
        let case = fixture().scratch("image");
        let root = root_with(&case, &rel, bytes);
        let out_dir = case.join("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let args = |extra: &[&str]| {
            let mut a: Vec<String> = ["--items", &items.display().to_string(), "--model"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend([
                model.display().to_string(),
                "--image-root".into(),
                root.display().to_string(),
            ]);
            a.extend(["--out".into(), out_dir.join("embeddings.parquet").display().to_string()]);
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        let refused = args(&[]);
        let out = saha_tests::run("saha-embed", &refused.iter().map(String::as_str).collect::<Vec<_>>());
        let image = root.join(&rel).display().to_string();
        problems.extend(check_refused(
            &format!("saha-embed, image {name}"),
            &refused,
            &out,
            &[&image],
            &out_dir,
        ));
        let skip = args(&["--on-bad-image", "skip"]);
        let out = saha_tests::run("saha-embed", &skip.iter().map(String::as_str).collect::<Vec<_>>());
        if !out.status.success() || !stderr(&out).contains("1 skipped") || stderr(&out).contains("panicked") {
            problems.push(format!(
                "saha-embed --on-bad-image skip, image {name}: not one skipped item\n    stdout: {}\n    stderr: {}",
                stdout(&out).trim(),
                stderr(&out).trim()
            ));
        }
    }
    eprintln!("{} bad images, each refused and skipped", variants.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
