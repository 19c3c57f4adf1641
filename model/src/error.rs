use std::path::PathBuf;

/// Everything that can go wrong while loading a snapshot or embedding inputs.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config.json: {0}")]
    Config(String),
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("input: {0}")]
    Input(String),
    /// A command-line flag with a value the model cannot use; the message names the flag.
    #[error("{0}")]
    Flag(String),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        ModelError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
