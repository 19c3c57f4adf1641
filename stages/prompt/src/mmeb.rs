//! Reads MMEB Parquet files as published: MMEB-train (`qry`, `qry_image_path`, `pos_text`,
//! `pos_image_path`) and MMEB-eval (`qry_text`, `qry_img_path`, `tgt_text[]`, `tgt_img_path[]`).
//! An optional `label` column carries a ground-truth class.

use std::path::Path;

use saha_schemas::columns::{optional_strings, required, string_lists, strings, BatchAt};
use saha_schemas::{ParquetTable, Result, SchemaError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Train,
    Eval,
}

/// One (text, image) encoder input as the data states it; empty image paths become `None`.
pub type Input = (String, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    pub source_row: u32,
    pub query: Input,
    /// Train: the positive. Eval: the candidate list, ground truth first.
    pub targets: Vec<Input>,
    pub label: Option<String>,
}

impl RawRow {
    /// Column names of the query text, query image, target text and target image.
    pub fn columns(layout: Layout) -> [&'static str; 4] {
        match layout {
            Layout::Train => ["qry", "qry_image_path", "pos_text", "pos_image_path"],
            Layout::Eval => ["qry_text", "qry_img_path", "tgt_text", "tgt_img_path"],
        }
    }
}

fn image(path: Option<&str>) -> Option<String> {
    path.filter(|p| !p.is_empty()).map(str::to_string)
}

fn detect(path: &Path, table: &ParquetTable) -> Result<Layout> {
    let has = |c: &str| table.schema.field_with_name(c).is_ok();
    if has("qry") && has("pos_text") {
        Ok(Layout::Train)
    } else if has("qry_text") && has("tgt_text") {
        Ok(Layout::Eval)
    } else {
        let found: Vec<_> = table.schema.fields().iter().map(|f| f.name().as_str()).collect();
        Err(SchemaError::invalid(
            path,
            format!(
                "not an MMEB file: expected columns qry, qry_image_path, pos_text, pos_image_path (MMEB-train) \
                 or qry_text, qry_img_path, tgt_text, tgt_img_path (MMEB-eval); found {}",
                found.join(", ")
            ),
        ))
    }
}

/// Reads every row of one MMEB file.
pub fn read_file(path: &Path) -> Result<(Layout, Vec<RawRow>)> {
    let table = ParquetTable::open(path)?;
    let layout = detect(path, &table)?;
    let [qt, qi, tt, ti] = RawRow::columns(layout);
    let mut rows = Vec::with_capacity(table.num_rows);
    let mut batches = table.batches()?;
    while let Some((batch, at)) = batches.next_batch()? {
        let qry = strings(&batch, qt, at)?;
        let qry_img = strings(&batch, qi, at)?;
        let label = optional_strings(&batch, "label", at)?;
        let row_no = |i: usize| (at.first_row + i) as u32;
        match layout {
            Layout::Train => {
                let pos = strings(&batch, tt, at)?;
                let pos_img = strings(&batch, ti, at)?;
                for i in 0..batch.num_rows() {
                    rows.push(RawRow {
                        source_row: row_no(i),
                        query: (required(&qry, i, qt, at)?.to_string(), image(qry_img.get(i))),
                        targets: vec![(required(&pos, i, tt, at)?.to_string(), image(pos_img.get(i)))],
                        label: label.as_ref().and_then(|l| l.get(i)).map(str::to_string),
                    });
                }
            }
            Layout::Eval => {
                let texts = string_lists(&batch, tt, at)?;
                let images = string_lists(&batch, ti, at)?;
                for i in 0..batch.num_rows() {
                    rows.push(RawRow {
                        source_row: row_no(i),
                        query: (required(&qry, i, qt, at)?.to_string(), image(qry_img.get(i))),
                        targets: eval_candidates(&texts, &images, i, at)?,
                        label: label.as_ref().and_then(|l| l.get(i)).map(str::to_string),
                    });
                }
            }
        }
    }
    Ok((layout, rows))
}

fn eval_candidates(
    texts: &saha_schemas::columns::StrListColumn,
    images: &saha_schemas::columns::StrListColumn,
    i: usize,
    at: BatchAt,
) -> Result<Vec<Input>> {
    let t: Vec<Option<&str>> = texts
        .get(i)
        .ok_or_else(|| at.bad_value(i, "tgt_text", "null candidate list"))?
        .collect();
    let im: Vec<Option<&str>> = images
        .get(i)
        .ok_or_else(|| at.bad_value(i, "tgt_img_path", "null candidate image list"))?
        .collect();
    if t.is_empty() {
        return Err(at.bad_value(i, "tgt_text", "empty candidate list"));
    }
    if t.len() != im.len() {
        return Err(at.bad_value(
            i,
            "tgt_img_path",
            format!("{} candidate images for {} candidate texts", im.len(), t.len()),
        ));
    }
    t.into_iter()
        .zip(im)
        .enumerate()
        .map(|(k, (text, img))| {
            let text = text.ok_or_else(|| at.bad_value(i, "tgt_text", format!("candidate {k} is null")))?;
            Ok((text.to_string(), image(img)))
        })
        .collect()
}
