use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::artefacts::ArtefactSpec;
use crate::columns::BatchAt;
use crate::error::{Result, SchemaError};
use crate::provenance::Provenance;

thread_local! {
    /// Set while a guarded read runs on this thread: its panics become errors, not messages.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `read` so that a panic inside the Parquet or Arrow readers (they panic on some corrupt
/// footers, e.g. an unknown type in the embedded Arrow schema) becomes an error naming `path`,
/// printed by nobody but the stage that reports it.
fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(read));
    GUARDED.with(|g| g.set(was));
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        Err(SchemaError::parquet(
            path,
            format!("corrupt file: the reader failed ({what})"),
        ))
    })
}

/// An open Parquet file: its schema and footer metadata, read without touching the row data.
pub struct ParquetTable {
    pub path: PathBuf,
    pub schema: SchemaRef,
    pub key_values: BTreeMap<String, String>,
    /// Rows the footer claims (a corrupt footer can claim anything: see [`Self::capacity`]).
    pub num_rows: usize,
    file_bytes: u64,
    builder: ParquetRecordBatchReaderBuilder<File>,
}

impl ParquetTable {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| SchemaError::io(path, e))?;
        let file_bytes = file.metadata().map_err(|e| SchemaError::io(path, e))?.len();
        let builder = guarded(path, || {
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| SchemaError::parquet(path, e))
        })?;
        let meta = builder.metadata().file_metadata();
        let key_values = meta
            .key_value_metadata()
            .map(|kvs| {
                kvs.iter()
                    .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            schema: builder.schema().clone(),
            num_rows: meta.num_rows() as usize,
            file_bytes,
            key_values,
            builder,
        })
    }

    /// Opens `path` and checks it against the catalogue entry `spec`.
    pub fn open_artefact(path: &Path, spec: &ArtefactSpec) -> Result<Self> {
        let table = Self::open(path)?;
        spec.validate(path, &table.schema)?;
        Ok(table)
    }

    /// How many `T`s to reserve for `per_row` of them per row: what the footer claims, but never
    /// more than the file's own size, so a corrupt row count cannot ask for terabytes (a vector
    /// that needs more grows as it is filled).
    pub fn capacity<T>(&self, per_row: usize) -> usize {
        let bound = self.file_bytes as usize / std::mem::size_of::<T>().max(1);
        self.num_rows.saturating_mul(per_row).min(bound)
    }

    pub fn provenance(&self) -> Option<Provenance> {
        Provenance::from_key_values(&self.key_values)
    }

    /// Streams the batches; each comes with the file row of its first row.
    pub fn batches(self) -> Result<Batches> {
        let (path, builder) = (self.path, self.builder);
        let reader = guarded(&path, || {
            builder
                .with_batch_size(8192)
                .build()
                .map_err(|e| SchemaError::parquet(&path, e))
        })?;
        Ok(Batches {
            path,
            reader,
            next_row: 0,
        })
    }
}

pub struct Batches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    next_row: usize,
}

impl Batches {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next batch and where it sits in the file.
    pub fn next_batch(&mut self) -> Result<Option<(RecordBatch, BatchAt<'_>)>> {
        let reader = &mut self.reader;
        match guarded(&self.path, || Ok(reader.next()))? {
            None => Ok(None),
            Some(Err(e)) => Err(SchemaError::parquet(&self.path, e)),
            Some(Ok(batch)) => {
                let first_row = self.next_row;
                self.next_row += batch.num_rows();
                Ok(Some((
                    batch,
                    BatchAt {
                        path: &self.path,
                        first_row,
                    },
                )))
            }
        }
    }
}
