//! The inputs every fault case starts from, built once per test binary: two tiny demo runs made by
//! `make` (run `a` through filtering, evaluation and two training steps; run `b`, from another seed,
//! through remapping), so each stage has well-formed inputs and a file of another run at hand.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use saha_tests::{make_small, stderr, write_png};

pub struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// Every scratch folder handed out so far, to name the next one.
    counter: std::sync::atomic::AtomicUsize,
}

impl Fixture {
    /// A file or folder of run `a`.
    pub fn a(&self, rel: &str) -> PathBuf {
        self.root.join("a").join(rel)
    }

    /// A file or folder of run `b` (another synthetic dataset and another model seed).
    pub fn b(&self, rel: &str) -> PathBuf {
        self.root.join("b").join(rel)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A small WordNet database (data.noun, index.noun).
    pub fn wordnet(&self) -> PathBuf {
        self.root.join("wordnet")
    }

    /// A fresh empty folder for one case's outputs or bad inputs.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.root.join("scratch").join(format!("{n:04}-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let made = |args: &[&str]| {
        let out = make_small(&root, args);
        assert!(out.status.success(), "make {args:?}: {}", stderr(&out));
    };
    saha_tests::wordnet_data::database(&root, 4, 10);
    let sc = root.join("sc");
    write_png(&sc.join("images"), "a.png");
    write_png(&sc.join("images"), "b.png");
    std::fs::write(
        sc.join("add_obj.json"),
        r#"{"0": {"filename": "a.png", "caption": "a red square", "negative_caption": "a red square and a dog"},
            "1": {"filename": "b.png", "caption": "two circles", "negative_caption": "two circles and a cat"}}"#,
    )
    .unwrap();
    let sc_data = format!("SUGARCREPE_DATA={}", sc.display());
    let sc_images = format!("SUGARCREPE_IMAGES={}", sc.join("images").display());
    made(&[
        "RUN=a",
        "TRAIN_STEPS=2",
        "BASELINES=",
        &sc_data,
        &sc_images,
        "SUGARCREPE_SUBSETS=add_obj",
        "filter",
        "eval",
        "train",
        "sugarcrepe",
    ]);
    made(&[
        "RUN=b",
        "SEED=7",
        "MODEL_SEED=8",
        "BASELINES=",
        "remap",
        "prompt-eval",
        "embed-eval",
    ]);
    Fixture {
        _dir: dir,
        root,
        counter: Default::default(),
    }
}

/// Every path under `dir` (files and folders, hidden ones included), relative and sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
