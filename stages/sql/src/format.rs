//! Printing results as an aligned table, and writing them to CSV or Parquet.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use saha_schemas::{AtomicFile, ParquetSink, Provenance};

const VECTOR_PREVIEW: usize = 4;

/// One cell as text. Fixed-size float lists (embeddings) show their dimension and first values.
pub fn cell(array: &dyn Array, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok("NULL".into());
    }
    if let DataType::FixedSizeList(inner, dim) = array.data_type() {
        if inner.data_type() == &DataType::Float32 {
            let list = array.as_fixed_size_list();
            let values = list.value(row);
            let floats = values.as_primitive::<Float32Type>();
            let shown: Vec<String> = floats
                .values()
                .iter()
                .take(VECTOR_PREVIEW)
                .map(|v| format!("{v:.4}"))
                .collect();
            let more = if *dim as usize > VECTOR_PREVIEW { ", …" } else { "" };
            return Ok(format!("[D={dim}] {}{more}", shown.join(", ")));
        }
    }
    let fmt = ArrayFormatter::try_new(array, &FormatOptions::default())?;
    Ok(fmt.value(row).to_string())
}

fn shorten(s: &str, max: usize) -> String {
    let flat = s.replace('\n', "⏎");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Renders batches as an aligned text table followed by a row count.
pub fn table(batches: &[RecordBatch], max_width: usize) -> Result<String> {
    let Some(first) = batches.first() else {
        return Ok("(0 rows)\n".into());
    };
    let schema = first.schema();
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), r).map(|s| shorten(&s, max_width)))
                    .collect::<Result<_>>()?,
            );
        }
    }
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&headers[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = schema.fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i] - width(c));
                if numeric[i] {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&headers);
    out.push_str(&format!(
        "|{}|\n",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")
    ));
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push_str(&format!(
        "({} row{})\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    Ok(out)
}

/// Writes batches to `path`: `.csv` (nested values as JSON) or `.parquet` (as they are).
pub fn write_file(path: &Path, batches: &[RecordBatch], sql: &str) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "parquet" => {
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| Arc::new(Schema::empty()));
            let mut prov = Provenance::new(crate::STAGE, env!("CARGO_PKG_VERSION"));
            prov.param("sql", sql);
            let mut sink = ParquetSink::create(path, schema, prov.to_key_values("query"))?;
            for b in batches {
                sink.write(b)?;
            }
            sink.finish()?;
        }
        "csv" => {
            let mut out = AtomicFile::create(path)?;
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(out.file());
                for b in batches {
                    w.write(&flatten_for_csv(b)?)?;
                }
            }
            out.file().flush()?;
            out.commit()?;
        }
        _ => bail!("--out {}: use a .csv or .parquet file name", path.display()),
    }
    Ok(())
}

/// CSV has no nested values: lists (embedding vectors among them) and structs become JSON text,
/// every number in full.
fn flatten_for_csv(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            let text: StringArray = (0..c.len())
                .map(|r| {
                    if c.is_null(r) {
                        Ok(None)
                    } else {
                        crate::json::cell(c.as_ref(), r).map(Some)
                    }
                })
                .collect::<Result<_>>()?;
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).context("flattening for CSV")
}
