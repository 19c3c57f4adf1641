//! The artefact catalogue: one [`ArtefactSpec`] per table the stages exchange (declared in
//! src/tables/). `schemas/README.md` is generated from it (a test keeps the two in step).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Result, SchemaError};
pub use crate::tables::{
    candidates, clusters, embeddings, eval_lists, eval_scores, items, mining_stats, owners, pairs, skipped,
    sugarcrepe_scores, sugarcrepe_sets, train_log,
};

/// A column's Arrow type as the catalogue states it.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Exact(DataType),
    /// `FixedSizeList<Float32, D>` for any `D`: the dimension is a property of the model.
    Vector,
}

impl ColumnType {
    pub fn matches(&self, found: &DataType) -> bool {
        match (self, found) {
            (ColumnType::Exact(t), f) => t == f,
            (ColumnType::Vector, DataType::FixedSizeList(inner, _)) => inner.data_type() == &DataType::Float32,
            (ColumnType::Vector, _) => false,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Exact(t) => f.write_str(&type_name(t)),
            ColumnType::Vector => f.write_str("FixedSizeList<Float32, D>"),
        }
    }
}

/// A short, readable name for an Arrow type (`utf8`, `u32`, `list<u32>` ...).
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Utf8View => "utf8_view".into(),
        DataType::UInt8 => "u8".into(),
        DataType::UInt16 => "u16".into(),
        DataType::UInt32 => "u32".into(),
        DataType::UInt64 => "u64".into(),
        DataType::Int32 => "i32".into(),
        DataType::Int64 => "i64".into(),
        DataType::Float32 => "f32".into(),
        DataType::Float64 => "f64".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => format!("fixed_size_list<{}, {n}>", type_name(f.data_type())),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone)]
pub struct ArtefactSpec {
    /// File stem: the artefact is `runs/<run>/<name>.parquet` and the SQL table `<name>`.
    pub name: &'static str,
    pub produced_by: &'static str,
    pub doc: &'static str,
    pub columns: Vec<ColumnSpec>,
}

impl ArtefactSpec {
    /// The Arrow schema written for this artefact. Vector columns need the dimension `dim`.
    pub fn schema_with_dim(&self, dim: Option<i32>) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let t = match &c.kind {
                    ColumnType::Exact(t) => t.clone(),
                    ColumnType::Vector => vector_type(dim.expect("vector artefacts need a dimension")),
                };
                Field::new(c.name, t, c.nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema_with_dim(None)
    }

    /// Checks that `found` has every catalogue column with the stated type. Extra columns are
    /// allowed, so later versions can add columns without breaking older readers.
    pub fn validate(&self, path: &Path, found: &Schema) -> Result<()> {
        for c in &self.columns {
            let Ok(field) = found.field_with_name(c.name) else {
                return Err(SchemaError::MissingColumn {
                    path: path.to_path_buf(),
                    column: c.name.to_string(),
                    expected: c.kind.to_string(),
                    found: found
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if !c.kind.matches(field.data_type()) {
                return Err(SchemaError::WrongType {
                    path: path.to_path_buf(),
                    column: c.name.to_string(),
                    expected: c.kind.to_string(),
                    found: type_name(field.data_type()),
                });
            }
        }
        Ok(())
    }
}

pub fn vector_type(dim: i32) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim)
}

/// Every artefact in the catalogue, in pipeline order.
pub fn all() -> Vec<ArtefactSpec> {
    vec![
        pairs(),
        items(),
        eval_lists(),
        skipped(),
        embeddings(),
        candidates(),
        owners(),
        clusters(),
        mining_stats(),
        train_log(),
        eval_scores(),
        sugarcrepe_sets(),
        sugarcrepe_scores(),
    ]
}

/// The Markdown tables of `schemas/README.md`.
pub fn markdown(specs: &[ArtefactSpec]) -> String {
    let mut out = String::new();
    for s in specs {
        out.push_str(&format!(
            "## `{}.parquet`\n\nWritten by `{}`. {}\n\n| column | type | null | meaning |\n|---|---|---|---|\n",
            s.name, s.produced_by, s.doc
        ));
        for c in &s.columns {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name,
                c.kind,
                if c.nullable { "yes" } else { "no" },
                c.doc
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_matches_catalogue() {
        let readme = include_str!("../README.md");
        let tables = markdown(&all());
        assert!(
            readme.contains(&tables),
            "schemas/README.md is out of date; regenerate with `cargo run --release -p saha-schemas --example readme`"
        );
    }

    #[test]
    fn validate_names_column_and_types() {
        let spec = pairs();
        let schema = Schema::new(vec![Field::new("pair_id", DataType::Int64, false)]);
        let err = spec.validate(Path::new("x.parquet"), &schema).unwrap_err().to_string();
        assert!(
            err.contains("x.parquet") && err.contains("`pair_id`") && err.contains("i64") && err.contains("u32"),
            "{err}"
        );
        let schema = Schema::new(vec![Field::new("pair_id", DataType::UInt32, false)]);
        let err = spec.validate(Path::new("x.parquet"), &schema).unwrap_err().to_string();
        assert!(err.contains("missing column `subset`"), "{err}");
    }

    #[test]
    fn vector_columns_accept_any_dimension() {
        let spec = embeddings();
        for dim in [4, 1536] {
            spec.validate(Path::new("e"), &spec.schema_with_dim(Some(dim))).unwrap();
        }
    }
}
