//! Helpers for the end-to-end tests: locate the stage binaries, run them, and write small
//! MMEB-format inputs.

#[path = "mining_data.rs"]
pub mod mining_data;
#[path = "wordnet_data.rs"]
pub mod wordnet_data;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, ListBuilder, StringArray, StringBuilder};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

/// The folder holding the stage binaries this test was built with (`target/release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: run through `cargo test --workspace`",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Runs a stage binary with progress bars off.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env("SAHA_NO_PROGRESS", "1")
        .output()
        .expect("stage binary runs")
}

/// saha-prompt on `data` with images under `images`, writing into the folder `out`.
pub fn run_prompt(data: &Path, images: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--image-root",
        images.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run("saha-prompt", &args)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Flips a byte inside the first IDAT chunk of a PNG: the file stays complete (end marker in place),
/// so only decoding finds it broken (a chunk CRC that does not match).
pub fn corrupt_png_inside(path: &Path) {
    let mut png = std::fs::read(path).unwrap();
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    png[idat + 12] ^= 0x5a;
    std::fs::write(path, png).unwrap();
}

/// What saha-eval mmeb should leave out when `skipped` items have no embedding: the eval rows (pair
/// ids) whose query or ground truth is skipped, and the number of skipped candidates in the other rows.
pub fn eval_left_out(
    pairs: &[saha_schemas::Pair],
    lists: &[saha_schemas::EvalListEntry],
    skipped: &[u32],
) -> (Vec<u32>, usize) {
    let truth = |pair_id: u32| {
        lists
            .iter()
            .find(|e| e.pair_id == pair_id && e.rank == 0)
            .unwrap()
            .item_id
    };
    let rows: Vec<u32> = pairs
        .iter()
        .filter(|p| skipped.contains(&p.query_id) || skipped.contains(&truth(p.pair_id)))
        .map(|p| p.pair_id)
        .collect();
    let candidates = lists
        .iter()
        .filter(|e| e.rank > 0 && skipped.contains(&e.item_id) && !rows.contains(&e.pair_id))
        .count();
    (rows, candidates)
}

/// The footer stat `name` of an artefact a stage wrote (`null` when absent).
pub fn footer_stat(path: &Path, name: &str) -> serde_json::Value {
    let prov = saha_schemas::read::ParquetTable::open(path)
        .unwrap()
        .provenance()
        .unwrap_or_else(|| panic!("{}: no provenance", path.display()));
    prov.stats.get(name).cloned().unwrap_or(serde_json::Value::Null)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes named columns as one Parquet file (for inputs of any shape, well-formed or not).
pub fn write_columns(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    write_batch(path, RecordBatch::try_from_iter(columns).unwrap());
}

fn write_batch(path: &Path, batch: RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn col(values: Vec<&str>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// An MMEB-train file: each row is (qry, qry_image_path, pos_text, pos_image_path); "" = none.
pub fn write_train(path: &Path, rows: &[[&str; 4]], labels: Option<&[&str]>) {
    let mut cols = vec![
        ("qry", col(rows.iter().map(|r| r[0]).collect())),
        ("qry_image_path", col(rows.iter().map(|r| r[1]).collect())),
        ("pos_text", col(rows.iter().map(|r| r[2]).collect())),
        ("pos_image_path", col(rows.iter().map(|r| r[3]).collect())),
    ];
    if let Some(l) = labels {
        cols.push(("label", col(l.to_vec())));
    }
    write_batch(path, RecordBatch::try_from_iter(cols).unwrap());
}

/// One MMEB-eval row: (qry_text, qry_img_path, [(tgt_text, tgt_img_path)]).
pub type EvalRow<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// An MMEB-eval file.
pub fn write_eval(path: &Path, rows: &[EvalRow]) {
    let list = |pick: for<'a> fn(&'a (&'a str, &'a str)) -> &'a str| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for r in rows {
            for t in &r.2 {
                b.values().append_value(pick(t));
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let cols = vec![
        ("qry_text", col(rows.iter().map(|r| r.0).collect())),
        ("qry_img_path", col(rows.iter().map(|r| r.1).collect())),
        ("tgt_text", list(|t| t.0)),
        ("tgt_img_path", list(|t| t.1)),
    ];
    write_batch(path, RecordBatch::try_from_iter(cols).unwrap());
}

/// A small PNG at `root/rel`.
pub fn write_png(root: &Path, rel: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A valid 1x1 PNG; the prompt stage only checks that the file exists.
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
        0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18,
        0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    std::fs::write(path, PNG).unwrap();
}

/// Files (not folders) directly inside `dir`, sorted, hidden ones included.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The Qwen2-VL tokenizer that scripts/fetch-tokenizer.sh installs (`make test` runs it first).
pub fn qwen_tokenizer() -> PathBuf {
    let path = repo_root().join(".tools/qwen-tokenizer/qwen2-vl-tokenizer.json");
    assert!(
        path.is_file(),
        "{} missing: run scripts/fetch-tokenizer.sh (make test does)",
        path.display()
    );
    path
}

/// Writes the tiny random Qwen2-VL of `saha-init-model --seed <seed>` (plus `extra` flags) into `dir`.
pub fn init_model(dir: &Path, seed: u64, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("tiny-{seed}"));
    let tokenizer = qwen_tokenizer();
    let seed = seed.to_string();
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--seed",
        &seed,
    ];
    args.extend_from_slice(extra);
    let result = run("saha-init-model", &args);
    assert!(result.status.success(), "saha-init-model failed: {}", stderr(&result));
    out
}

/// The largest absolute value of a tensor (f32).
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Runs `make` in the repository on the stage binaries this test was built with, artefacts under
/// `runs`, progress bars off.
pub fn make(runs: &Path, args: &[&str]) -> Output {
    Command::new("make")
        .arg("-C")
        .arg(repo_root())
        .arg(format!("RUNS_DIR={}", runs.display()))
        .arg(format!("BIN={}", bin_dir().display()))
        .arg("BUILD=0")
        .args(args)
        .env("SAHA_NO_PROGRESS", "1")
        .output()
        .expect("make runs")
}

/// [`make`] on a small synthetic demo (16 training and 4 evaluation rows per subset).
pub fn make_small(runs: &Path, args: &[&str]) -> Output {
    make(runs, &[&["TRAIN_PER_SUBSET=16", "EVAL_PER_SUBSET=4"], args].concat())
}

/// The token ids of one row of a padded batch from transformers: the ids where the attention mask is 1.
pub fn unpadded_ids(ids: &[i64], mask: &[i64]) -> Vec<u32> {
    ids.iter()
        .zip(mask)
        .filter(|(_, &m)| m == 1)
        .map(|(&t, _)| t as u32)
        .collect()
}
