use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::artefacts::ArtefactSpec;
use crate::columns::BatchAt;
use crate::error::{Result, SchemaError};
use crate::provenance::Provenance;

/// An open Parquet file: its schema and footer metadata, read without touching the row data.
pub struct ParquetTable {
    pub path: PathBuf,
    pub schema: SchemaRef,
    pub key_values: BTreeMap<String, String>,
    pub num_rows: usize,
    builder: ParquetRecordBatchReaderBuilder<File>,
}

impl ParquetTable {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| SchemaError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| SchemaError::parquet(path, e))?;
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

    pub fn provenance(&self) -> Option<Provenance> {
        Provenance::from_key_values(&self.key_values)
    }

    /// Streams the batches; each comes with the file row of its first row.
    pub fn batches(self) -> Result<Batches> {
        let reader = self
            .builder
            .with_batch_size(8192)
            .build()
            .map_err(|e| SchemaError::parquet(&self.path, e))?;
        Ok(Batches {
            path: self.path,
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
        match self.reader.next() {
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
