//! saha-synth: deterministic, MMEB-shaped, real PNGs, and full of false-negative traps.

use std::collections::HashMap;

use saha_tests::{run, stderr};

fn generate(out: &std::path::Path, seed: &str) {
    let res = run(
        "saha-synth",
        &[
            "--out",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--train-per-subset",
            "40",
            "--eval-per-subset",
            "6",
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
}

fn all_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_data() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        d.path().join("a/data"),
        d.path().join("b/data"),
        d.path().join("c/data"),
    );
    generate(&a, "7");
    generate(&b, "7");
    generate(&c, "8");
    let (fa, fb, fc) = (all_files(&a), all_files(&b), all_files(&c));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (x, y) in fa.iter().zip(&fb) {
        assert!(x.1 == y.1, "{} differs between runs with one seed", x.0);
    }
    assert_ne!(fa, fc);
    assert!(fa.iter().any(|f| f.0 == "synth.json"));
    // No temporary folder is left beside the output.
    assert_eq!(std::fs::read_dir(d.path().join("a")).unwrap().count(), 1);
}

#[test]
fn data_is_mmeb_shaped_with_images_and_false_negative_traps() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    generate(&data, "42");
    let out = d.path().join("run");
    let res = run(
        "saha-prompt",
        &[
            "--data",
            data.join("train").to_str().unwrap(),
            "--image-root",
            data.join("images").to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let (pairs, _) = saha_schemas::records::read_records::<saha_schemas::Pair>(&out.join("pairs.parquet")).unwrap();
    assert_eq!(pairs.len(), 160);
    let subsets: std::collections::BTreeSet<_> = pairs.iter().map(|p| p.subset.as_str()).collect();
    assert_eq!(subsets.len(), 4);
    assert!(pairs.iter().all(|p| p.label.is_some()));
    // Traps: in every subset several pairs share a label (same class, same answer, or the same
    // scene described in other words), so a naive miner would pick false negatives.
    for s in &subsets {
        let mut by_label: HashMap<&str, usize> = HashMap::new();
        for p in pairs.iter().filter(|p| p.subset == *s) {
            *by_label.entry(p.label.as_deref().unwrap()).or_default() += 1;
        }
        assert!(by_label.values().any(|&n| n >= 3), "{s}: no label shared by 3 pairs");
    }
    // Classification: many queries own the same class-name target.
    let cls: Vec<_> = pairs.iter().filter(|p| p.subset == "ShapeClass").collect();
    let targets: std::collections::HashSet<_> = cls.iter().map(|p| p.target_id).collect();
    assert!(targets.len() < cls.len() / 2);
    // Images are real PNGs of varied aspect ratio.
    let mut ratios = std::collections::BTreeSet::new();
    for p in pairs.iter().filter_map(|p| p.qry_image_path.as_ref()).take(40) {
        let img = image_size(&data.join("images").join(p));
        ratios.insert((img.0 * 100 / img.1) as u32);
    }
    assert!(ratios.len() >= 3, "aspect ratios {ratios:?}");
    // Eval files are MMEB-eval shaped with the ground truth first.
    let eval_out = d.path().join("eval");
    let res = run(
        "saha-prompt",
        &[
            "--data",
            data.join("eval").to_str().unwrap(),
            "--image-root",
            data.join("images").to_str().unwrap(),
            "--out-dir",
            eval_out.to_str().unwrap(),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(eval_out.join("eval_lists.parquet").is_file());
}

fn image_size(path: &std::path::Path) -> (u64, u64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as u64;
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap()) as u64;
    (w, h)
}
