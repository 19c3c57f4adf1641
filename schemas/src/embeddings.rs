//! `embeddings.parquet`: item ids and a row-major `[n, dim]` f32 matrix.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Float32Type, UInt32Type};
use arrow::record_batch::RecordBatch;

use crate::artefacts::embeddings as spec;
use crate::columns::primitive;
use crate::error::{Result, SchemaError};
use crate::provenance::Provenance;
use crate::read::ParquetTable;
use crate::write::ParquetSink;

pub const KEY_MODEL: &str = "saha.embedding.model";
pub const KEY_DIM: &str = "saha.embedding.dim";
pub const KEY_NORMALIZED: &str = "saha.embedding.normalized";

/// Embeddings held as one contiguous matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub item_ids: Vec<u32>,
    pub dim: usize,
    /// Row-major, `item_ids.len() * dim` values.
    pub values: Vec<f32>,
    pub model: String,
    pub normalized: bool,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    pub fn len(&self) -> usize {
        self.item_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.item_ids.is_empty()
    }

    pub fn write(&self, path: &Path, provenance: &Provenance) -> Result<()> {
        assert_eq!(self.values.len(), self.item_ids.len() * self.dim);
        let spec = spec();
        let dim = i32::try_from(self.dim).map_err(|_| SchemaError::invalid(path, "dimension too large"))?;
        let schema = spec.schema_with_dim(Some(dim));
        let mut kv = provenance.to_key_values(spec.name);
        kv.push((KEY_MODEL.into(), self.model.clone()));
        kv.push((KEY_DIM.into(), self.dim.to_string()));
        kv.push((KEY_NORMALIZED.into(), self.normalized.to_string()));
        let mut sink = ParquetSink::create_with(path, schema.clone(), kv, false)?;
        let field = Arc::new(Field::new("item", DataType::Float32, false));
        let rows_per_batch = (1 << 22) / self.dim.max(1) + 1;
        for start in (0..self.len()).step_by(rows_per_batch.max(1)) {
            let end = (start + rows_per_batch).min(self.len());
            let ids = UInt32Array::from(self.item_ids[start..end].to_vec());
            let values = Float32Array::from(self.values[start * self.dim..end * self.dim].to_vec());
            let list = FixedSizeListArray::new(field.clone(), dim, Arc::new(values), None);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(list)])
                .map_err(|e| SchemaError::parquet(path, e))?;
            sink.write(&batch)?;
        }
        sink.finish()?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let table = ParquetTable::open_artefact(path, &spec())?;
        let dim = match table.schema.field_with_name("embedding").map(|f| f.data_type().clone()) {
            Ok(DataType::FixedSizeList(_, d)) => d as usize,
            _ => unreachable!("validated by the catalogue"),
        };
        let model = table.key_values.get(KEY_MODEL).cloned().unwrap_or_default();
        let normalized = table.key_values.get(KEY_NORMALIZED).is_some_and(|v| v == "true");
        let mut item_ids = Vec::with_capacity(table.capacity::<u32>(1));
        let mut values = Vec::with_capacity(table.capacity::<f32>(dim));
        let mut batches = table.batches()?;
        while let Some((batch, at)) = batches.next_batch()? {
            item_ids.extend_from_slice(primitive::<UInt32Type>(&batch, "item_id", at)?);
            let list = batch
                .column_by_name("embedding")
                .expect("validated")
                .as_fixed_size_list();
            if let Some(row) = (0..list.len()).find(|&i| list.is_null(i)) {
                return Err(at.bad_value(row, "embedding", "null embedding"));
            }
            let inner = list.values().as_primitive::<Float32Type>();
            let start = list.offset() * dim;
            values.extend_from_slice(&inner.values()[start..start + list.len() * dim]);
        }
        let embeddings = Self {
            item_ids,
            dim,
            values,
            model,
            normalized,
        };
        if let Some(pos) = embeddings.values.iter().position(|v| !v.is_finite()) {
            let row = pos / dim.max(1);
            let msg = format!(
                "item {} has a non-finite value (NaN or infinity)",
                embeddings.item_ids[row]
            );
            return Err(SchemaError::bad_value(path, row, "embedding", msg));
        }
        if let Some(row) = (0..embeddings.len()).find(|&r| dim > 0 && embeddings.row(r).iter().all(|&v| v == 0.0)) {
            let msg = format!(
                "item {} has an all-zero vector, which has no direction (cosine similarity is undefined)",
                embeddings.item_ids[row]
            );
            return Err(SchemaError::bad_value(path, row, "embedding", msg));
        }
        Ok(embeddings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings.parquet");
        let e = Embeddings {
            item_ids: vec![3, 1, 2],
            dim: 2,
            values: vec![1.0, 0.0, 0.6, 0.8, 0.0, -1.0],
            model: "tiny".into(),
            normalized: true,
        };
        e.write(&path, &Provenance::new("embed", "0")).unwrap();
        assert_eq!(Embeddings::read(&path).unwrap(), e);
    }

    #[test]
    fn an_all_zero_vector_is_refused_naming_file_row_and_item() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings.parquet");
        let e = Embeddings {
            item_ids: vec![3, 7],
            dim: 2,
            values: vec![1.0, 0.0, 0.0, -0.0],
            model: "tiny".into(),
            normalized: true,
        };
        e.write(&path, &Provenance::new("embed", "0")).unwrap();
        let err = Embeddings::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("embeddings.parquet")
                && err.contains("row 1")
                && err.contains("embedding")
                && err.contains("item 7 has an all-zero vector"),
            "{err}"
        );
    }
}
