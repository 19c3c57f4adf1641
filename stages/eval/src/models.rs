//! Which model made the embeddings being scored, and the checks both benchmarks make on it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use saha_schemas::embeddings::KEY_MODEL;
use saha_schemas::read::ParquetTable;

/// A guard against scoring the wrong model's embeddings, for both benchmarks.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct ExpectModel {
    /// Refuse unless the embeddings (and, for mmeb, the --compare file) were made by this model, as
    /// named in their footer (`saha.embedding.model`).
    #[arg(long)]
    pub expect_model: Option<String>,
}

pub const MODEL_MISMATCH: &str = "score files from a different model (metadata mismatch: refuse)";

/// The model named in the footers of `files` (empty when none is recorded); files from different
/// models are refused.
pub fn embeddings_model(files: &[PathBuf]) -> Result<String> {
    let mut first: Option<(String, &PathBuf)> = None;
    for f in files {
        let model = ParquetTable::open(f)?
            .key_values
            .get(KEY_MODEL)
            .cloned()
            .unwrap_or_default();
        match &first {
            Some((m, p)) if *m != model => bail!(
                "embeddings from different models: {} has `{m}`, {} has `{model}`",
                p.display(),
                f.display()
            ),
            Some(_) => {}
            None => first = Some((model, f)),
        }
    }
    Ok(first.map(|(m, _)| m).unwrap_or_default())
}

/// Refuses `model` (read from `files`) when `--expect-model` names another one.
pub fn check_expected(expected: Option<&str>, model: &str, files: &[PathBuf]) -> Result<()> {
    match expected {
        Some(expected) if expected != model => bail!(
            "{MODEL_MISMATCH}: {} was made by `{}`, --expect-model is `{expected}`",
            files[0].display(),
            shown(model)
        ),
        _ => Ok(()),
    }
}

/// A model name for messages and reports.
pub fn shown(model: &str) -> &str {
    if model.is_empty() {
        "(none recorded)"
    } else {
        model
    }
}

/// The embeddings files, comma-separated, for messages.
pub fn listed(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
