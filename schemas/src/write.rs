use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic::AtomicFile;
use crate::error::{Result, SchemaError};

/// A Parquet file being written atomically: batches go to a temporary file, and the artefact
/// appears at its path only when [`ParquetSink::finish`] succeeds.
pub struct ParquetSink {
    out: AtomicFile,
    writer: ArrowWriter<std::fs::File>,
}

impl ParquetSink {
    pub fn create(path: &Path, schema: SchemaRef, key_values: Vec<(String, String)>) -> Result<Self> {
        Self::create_with(path, schema, key_values, true)
    }

    /// Like [`ParquetSink::create`]; `compress: false` writes plain pages without dictionaries,
    /// which suits dense float vectors (they do not compress, and plain pages decode fastest).
    pub fn create_with(
        path: &Path,
        schema: SchemaRef,
        key_values: Vec<(String, String)>,
        compress: bool,
    ) -> Result<Self> {
        let mut out = AtomicFile::create(path)?;
        let props = WriterProperties::builder()
            .set_compression(if compress {
                Compression::SNAPPY
            } else {
                Compression::UNCOMPRESSED
            })
            .set_dictionary_enabled(compress)
            .set_key_value_metadata(Some(key_values.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
            .build();
        let writer =
            ArrowWriter::try_new(out.take(), schema, Some(props)).map_err(|e| SchemaError::parquet(path, e))?;
        Ok(Self { out, writer })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| SchemaError::parquet(self.out.target(), e))
    }

    /// Writes the footer and moves the file into place. Several sinks of one stage can be
    /// finished with [`finish_all`] so that either all of a stage's outputs appear or none.
    pub fn finish(self) -> Result<PathBuf> {
        let sink = self.close()?;
        sink.commit()
    }

    /// Writes the footer but leaves the file at its temporary path.
    pub fn close(mut self) -> Result<AtomicFile> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| SchemaError::parquet(self.out.target(), e))?;
        self.out.restore(file);
        Ok(self.out)
    }
}

/// Closes every sink first and commits them only if all closed cleanly.
pub fn finish_all(sinks: Vec<ParquetSink>) -> Result<Vec<PathBuf>> {
    let closed = sinks.into_iter().map(ParquetSink::close).collect::<Result<Vec<_>>>()?;
    closed.into_iter().map(AtomicFile::commit).collect()
}
