//! Writing datasets in the MMEB formats the prompt stage reads (the data generators share this):
//! MMEB-train (`qry`, `qry_image_path`, `pos_text`, `pos_image_path`) and MMEB-eval (`qry_text`,
//! `qry_img_path`, `tgt_text`, `tgt_img_path` lists, positive first), each with a ground-truth `label`,
//! and a dataset folder replaced as a whole.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, ListBuilder, StringArray, StringBuilder};
use arrow::record_batch::RecordBatch;

use crate::{ParquetSink, Provenance, Result};

/// One example: a query (text, image path or "") and its targets (text, image path), positive first.
pub struct DataRow {
    pub query: String,
    pub query_image: String,
    pub targets: Vec<(String, String)>,
    /// Ground-truth class: two examples with equal labels are interchangeable positives.
    pub label: String,
}

fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// MMEB-train columns (the first target is the positive).
pub fn train_batch(rows: &[DataRow]) -> RecordBatch {
    let cols = vec![
        ("qry", strings(rows.iter().map(|r| r.query.as_str()))),
        ("qry_image_path", strings(rows.iter().map(|r| r.query_image.as_str()))),
        ("pos_text", strings(rows.iter().map(|r| r.targets[0].0.as_str()))),
        ("pos_image_path", strings(rows.iter().map(|r| r.targets[0].1.as_str()))),
        ("label", strings(rows.iter().map(|r| r.label.as_str()))),
    ];
    RecordBatch::try_from_iter(cols).expect("columns of equal length")
}

/// MMEB-eval columns: every target of a row is a candidate, the first the positive.
pub fn eval_batch(rows: &[DataRow]) -> RecordBatch {
    let list = |pick: fn(&(String, String)) -> &str| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for r in rows {
            for t in &r.targets {
                b.values().append_value(pick(t));
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let cols = vec![
        ("qry_text", strings(rows.iter().map(|r| r.query.as_str()))),
        ("qry_img_path", strings(rows.iter().map(|r| r.query_image.as_str()))),
        ("tgt_text", list(|t| t.0.as_str())),
        ("tgt_img_path", list(|t| t.1.as_str())),
        ("label", strings(rows.iter().map(|r| r.label.as_str()))),
    ];
    RecordBatch::try_from_iter(cols).expect("columns of equal length")
}

/// Writes one batch as a Parquet file with the provenance footer of `artefact`.
pub fn write_data_file(path: &Path, batch: &RecordBatch, prov: &Provenance, artefact: &str) -> Result<()> {
    let mut sink = ParquetSink::create(path, batch.schema(), prov.to_key_values(artefact))?;
    sink.write(batch)?;
    sink.finish()?;
    Ok(())
}

/// Fills a fresh temporary sibling folder of `out` with `fill`, then swaps it in for `out`, so a reader
/// sees the old dataset or the new one, never a mix; on failure the temporary folder is removed.
pub fn replace_folder<T, E: From<std::io::Error>>(
    out: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let with = |what: String| move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
    let name = out
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{}: the output needs a folder name", out.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(with(format!("cannot create {}", parent.display())))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let value = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(with(format!("cannot replace {}", out.display())))?;
    }
    std::fs::rename(&tmp, out).map_err(with(format!("cannot move the data into {}", out.display())))?;
    Ok(value)
}
