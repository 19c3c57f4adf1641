//! The files of a Hugging Face snapshot folder, as published.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub preprocessor: PathBuf,
    /// One `model.safetensors`, or every shard named in `model.safetensors.index.json`, in name order.
    pub weights: Vec<PathBuf>,
}

impl Snapshot {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::file(dir, "model snapshot folder not found"));
        }
        let required = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ModelError::file(&path, "missing from the model snapshot"))
            }
        };
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            config: required("config.json")?,
            tokenizer: required("tokenizer.json")?,
            preprocessor: required("preprocessor_config.json")?,
            weights: weight_files(dir)?,
        })
    }

    /// Every file whose bytes determine the embeddings, for provenance hashing.
    pub fn content_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.clone(), self.tokenizer.clone(), self.preprocessor.clone()];
        files.extend(self.weights.iter().cloned());
        files
    }
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ModelError::file(
            dir,
            "no model.safetensors or model.safetensors.index.json in the snapshot",
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| ModelError::file(&index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(&index, e))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::file(&index, "no `weight_map` object"))?;
    let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ModelError::file(
                    &path,
                    "shard named in model.safetensors.index.json is missing",
                ))
            }
        })
        .collect()
}
