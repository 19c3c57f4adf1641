//! Image path policy: paths are relative to the image root and may not leave it.

use std::path::PathBuf;

use clap::ValueEnum;
use rayon::prelude::*;
use saha_common::flags::ImageRoot;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Stop with an error naming the first missing image (file, row, column).
    Error,
    /// Leave out rows with a missing image and list them in skipped.parquet.
    Skip,
}

/// The image root as the prompt stage checks it: every path must resolve inside it
/// (`ImageRoot::resolve`) and, per `--on-missing`, exist.
pub struct ImagePolicy {
    pub root: ImageRoot,
}

impl ImagePolicy {
    /// Why `rel` is not an acceptable image path, if it is not.
    pub fn refuse(&self, rel: &str) -> Option<String> {
        self.root.resolve(rel).err()
    }

    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Which of `paths` do not exist as files, checked in parallel.
    pub fn missing<'a>(&self, paths: &[&'a str]) -> Vec<&'a str> {
        paths
            .par_iter()
            .filter(|p| !self.resolve(p).is_file())
            .copied()
            .collect()
    }
}
