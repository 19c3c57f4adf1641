//! Flags that several stage binaries take, declared once (each stage flattens the groups it needs
//! with `#[command(flatten)]`), so a flag has one name, one help text and one default everywhere.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The one rule for image paths: every stage that reads images joins the paths written in the data
/// to `--image-root`, which defaults to the current folder.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ImageRoot {
    /// Folder that the image paths in the data are relative to (the same folder for every stage of
    /// a run).
    #[arg(long, default_value = ".")]
    pub image_root: PathBuf,
}

impl ImageRoot {
    pub fn join(&self, relative: &str) -> PathBuf {
        self.image_root.join(relative)
    }

    pub fn path(&self) -> &Path {
        &self.image_root
    }
}

/// Embeddings a stage scores or mines with.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EmbeddingsInput {
    /// embeddings.parquet from saha-embed; repeat to combine files (e.g. queries and targets
    /// embedded apart; all must come from the same model).
    #[arg(long, required = true)]
    pub embeddings: Vec<PathBuf>,
    /// Use raw inner products, without L2-normalising the vectors (the reference normalises).
    #[arg(long)]
    pub no_normalize: bool,
}

impl EmbeddingsInput {
    pub fn normalize(&self) -> bool {
        !self.no_normalize
    }
}

/// The model a stage runs, and where and in what precision it computes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ModelArgs {
    /// Hugging Face snapshot folder of a Qwen2-VL model (config.json, *.safetensors,
    /// tokenizer.json, preprocessor_config.json).
    #[arg(long, required = true)]
    #[serde(skip)]
    pub model: Option<PathBuf>,
    /// cpu, or cuda:N (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype; auto is f32 on the CPU (candle has no fast bf16 matmul there) and bf16 on CUDA.
    #[arg(long, value_enum, default_value_t = Dtype::Auto)]
    pub dtype: Dtype,
}

impl ModelArgs {
    /// The snapshot folder (`None` only where a subcommand lifted the requirement).
    pub fn dir(&self) -> Option<&Path> {
        self.model.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dtype {
    Auto,
    F32,
    Bf16,
    F16,
}

/// How a prompt longer than the stage's token limit is made to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncate {
    /// Drop tokens from the end of the user's text, never the chat tail or image tokens (the
    /// reference cuts the tail, which moves the pooled token).
    UserText,
    /// Stop with an error naming the item.
    Error,
}
