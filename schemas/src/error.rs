use std::path::{Path, PathBuf};

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

/// An error about one artefact file. Every variant names the file; value errors also name the
/// row (0-based, counted over the whole file) and the column.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a readable Parquet file: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: missing column `{column}` (expected {expected}); found columns: {found}", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },
    #[error("{}: column `{column}` has type {found}, expected {expected}", path.display())]
    WrongType {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },
    #[error("{}: row {row}, column `{column}`: {message}", path.display())]
    BadValue {
        path: PathBuf,
        row: usize,
        column: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl SchemaError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        SchemaError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn parquet(path: &Path, err: impl std::fmt::Display) -> Self {
        SchemaError::Parquet {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }

    pub fn bad_value(path: &Path, row: usize, column: &str, message: impl Into<String>) -> Self {
        SchemaError::BadValue {
            path: path.to_path_buf(),
            row,
            column: column.to_string(),
            message: message.into(),
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        SchemaError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
