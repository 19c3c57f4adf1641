//! The [`Record`] trait of row types, and reading and writing whole artefacts of them.

use std::path::Path;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use crate::artefacts::ArtefactSpec;
use crate::columns::BatchAt;
use crate::error::Result;
use crate::provenance::Provenance;
use crate::read::ParquetTable;
use crate::write::ParquetSink;

const WRITE_CHUNK: usize = 65_536;

pub use crate::tables::KEY_EVAL_SET;

/// A row type of one catalogue artefact, declared with `table!` (src/tables/).
pub trait Record: Sized {
    fn spec() -> ArtefactSpec;
    fn to_columns(rows: &[Self]) -> Vec<ArrayRef>;
    /// Appends the rows of `batch` (already validated against the spec) to `out`.
    fn from_batch(batch: &RecordBatch, at: BatchAt, out: &mut Vec<Self>) -> Result<()>;

    fn to_batch(rows: &[Self]) -> RecordBatch {
        RecordBatch::try_new(Self::spec().schema(), Self::to_columns(rows))
            .expect("columns follow the catalogue schema")
    }
}

/// Starts an atomic Parquet file for `R` carrying `provenance`.
pub fn sink_for<R: Record>(path: &Path, provenance: &Provenance) -> Result<ParquetSink> {
    let spec = R::spec();
    ParquetSink::create(path, spec.schema(), provenance.to_key_values(spec.name))
}

/// Like [`sink_for`], with more footer key-values (e.g. the embedding model a score was computed with).
pub fn sink_with_keys<R: Record>(
    path: &Path,
    provenance: &Provenance,
    extra: &[(String, String)],
) -> Result<ParquetSink> {
    let spec = R::spec();
    let mut kv = provenance.to_key_values(spec.name);
    kv.extend(extra.iter().cloned());
    ParquetSink::create(path, spec.schema(), kv)
}

/// Writes `rows` into `sink` in bounded chunks.
pub fn write_rows<R: Record>(sink: &mut ParquetSink, rows: &[R]) -> Result<()> {
    for chunk in rows.chunks(WRITE_CHUNK) {
        sink.write(&R::to_batch(chunk))?;
    }
    Ok(())
}

/// Writes `rows` to `path` atomically.
pub fn write_records<R: Record>(path: &Path, rows: &[R], provenance: &Provenance) -> Result<()> {
    let mut sink = sink_for::<R>(path, provenance)?;
    write_rows(&mut sink, rows)?;
    sink.finish()?;
    Ok(())
}

/// Reads and validates a whole artefact file.
pub fn read_records<R: Record>(path: &Path) -> Result<(Vec<R>, Option<Provenance>)> {
    let table = ParquetTable::open_artefact(path, &R::spec())?;
    let provenance = table.provenance();
    let mut rows = Vec::with_capacity(table.capacity::<R>(1));
    let mut batches = table.batches()?;
    while let Some((batch, at)) = batches.next_batch()? {
        R::from_batch(&batch, at, &mut rows)?;
    }
    Ok((rows, provenance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EvalListEntry, Item, Pair, SugarCrepeExample, SugarCrepeScore};

    #[test]
    fn pairs_round_trip_and_keep_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.parquet");
        let rows = vec![Pair {
            pair_id: 0,
            subset: "S".into(),
            qry: "<|image_1|> q".into(),
            qry_image_path: Some("S/0.png".into()),
            pos_text: "t".into(),
            pos_image_path: None,
            query_id: 0,
            target_id: 1,
            label: Some("red".into()),
            source_file: "S.parquet".into(),
            source_row: 0,
        }];
        let mut prov = Provenance::new("prompt", "0.1.0");
        prov.param("x", 1);
        write_records(&path, &rows, &prov).unwrap();
        let (back, p) = read_records::<Pair>(&path).unwrap();
        assert_eq!(back, rows);
        assert_eq!(p.unwrap(), prov);
    }

    #[test]
    fn wrong_artefact_is_refused_with_column_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.parquet");
        write_records(
            &path,
            &[EvalListEntry {
                pair_id: 0,
                rank: 0,
                item_id: 0,
            }],
            &Provenance::new("t", "0"),
        )
        .unwrap();
        let err = read_records::<Item>(&path).unwrap_err().to_string();
        assert!(
            err.contains("items.parquet") && err.contains("missing column `side`"),
            "{err}"
        );
    }

    #[test]
    fn score_records_round_trip_with_nulls_and_extra_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sugarcrepe_scores.parquet");
        let rows = vec![
            SugarCrepeScore {
                benchmark: "sugarcrepe".into(),
                subset: "add_obj".into(),
                n: 4,
                itt_correct: 3,
                itt_accuracy: 0.75,
                tot_correct: None,
                tot_accuracy: None,
                ties: 1,
            },
            SugarCrepeScore {
                benchmark: "sugarcrepe++".into(),
                subset: "swap_obj".into(),
                n: 2,
                itt_correct: 1,
                itt_accuracy: 0.5,
                tot_correct: Some(2),
                tot_accuracy: Some(1.0),
                ties: 0,
            },
        ];
        let mut sink = sink_with_keys::<SugarCrepeScore>(
            &path,
            &Provenance::new("t", "0"),
            &[("saha.embedding.model".into(), "m".into())],
        )
        .unwrap();
        write_rows(&mut sink, &rows).unwrap();
        sink.finish().unwrap();
        assert_eq!(read_records::<SugarCrepeScore>(&path).unwrap().0, rows);
        let table = ParquetTable::open(&path).unwrap();
        assert_eq!(table.key_values["saha.embedding.model"], "m");

        let path = dir.path().join("sets.parquet");
        let rows = vec![SugarCrepeExample {
            example: 0,
            benchmark: "sugarcrepe++".into(),
            subset: "swap_obj".into(),
            key: "0".into(),
            image_id: 0,
            pos_id: 1,
            pos2_id: Some(2),
            neg_id: 3,
            source_file: "swap_obj.json".into(),
        }];
        write_records(&path, &rows, &Provenance::new("t", "0")).unwrap();
        assert_eq!(read_records::<SugarCrepeExample>(&path).unwrap().0, rows);
    }
}
