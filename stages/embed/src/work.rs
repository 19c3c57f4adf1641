//! The work folder of a resumable run: one embeddings file per finished part, and the fingerprint of the
//! run they belong to, so parts of another run (other items, model or settings) are never reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use saha_schemas::atomic::write_atomic;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::read::ParquetTable;
use saha_schemas::Provenance;

use crate::STAGE;

const PLAN_FILE: &str = "plan.json";
/// The footer stat of a part file listing the part's items that were skipped for a bad image.
const PART_SKIPS: &str = "skipped";

/// An item left out for a bad image (`--on-bad-image skip`): its row in the items file, the kind of
/// fault (`BadImage::kind`) and the message. Found when planning or when computing a part; those of a
/// part are saved with it, so a resumed run reports the same skips.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skip {
    pub row: usize,
    pub kind: String,
    pub reason: String,
}

/// A finished part: its (item id, vector) rows and its skipped items.
pub type Part = (Vec<(u32, Arc<Vec<f32>>)>, Vec<Skip>);

pub struct WorkDir {
    dir: PathBuf,
}

impl WorkDir {
    pub fn open(dir: &Path, fingerprint: &str, shard: Option<&str>) -> Result<Self> {
        let plan = serde_json::json!({"fingerprint": fingerprint, "shard": shard}).to_string();
        let plan_path = dir.join(PLAN_FILE);
        if plan_path.is_file() {
            let found =
                std::fs::read_to_string(&plan_path).with_context(|| format!("reading {}", plan_path.display()))?;
            if found.trim() != plan {
                bail!(
                    "{}: this work folder holds parts of a different run (other items, model, settings or shard); \
                     delete it to start over, or pass another --work-dir",
                    dir.display()
                );
            }
        } else {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            write_atomic(&plan_path, plan.as_bytes())?;
        }
        Ok(WorkDir { dir: dir.to_path_buf() })
    }

    fn part_path(&self, part: usize) -> PathBuf {
        self.dir.join(format!("part-{part:06}.parquet"))
    }

    /// The rows and skips of a part finished by an earlier run, if there is one.
    pub fn load_part(&self, part: usize, dim: usize) -> Result<Option<Part>> {
        let path = self.part_path(part);
        if !path.is_file() {
            return Ok(None);
        }
        let context = || format!("reading finished part {}", path.display());
        let done = Embeddings::read(&path).with_context(context)?;
        if done.dim != dim {
            bail!("{}: part has dimension {}, the model {dim}", path.display(), done.dim);
        }
        let skips = match ParquetTable::open(&path)?
            .provenance()
            .and_then(|p| p.stats.get(PART_SKIPS).cloned())
        {
            Some(list) => serde_json::from_value(list).with_context(context)?,
            None => Vec::new(),
        };
        let rows = (0..done.len())
            .map(|i| (done.item_ids[i], Arc::new(done.row(i).to_vec())))
            .collect();
        Ok(Some((rows, skips)))
    }

    pub fn save_part(
        &self,
        part: usize,
        dim: usize,
        rows: &[(u32, Arc<Vec<f32>>)],
        skips: &[Skip],
        model: &str,
    ) -> Result<()> {
        let embeddings = Embeddings {
            item_ids: rows.iter().map(|(id, _)| *id).collect(),
            dim,
            values: rows.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
            model: model.to_string(),
            normalized: true,
        };
        let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
        prov.stat(PART_SKIPS, skips);
        embeddings.write(&self.part_path(part), &prov)?;
        Ok(())
    }

    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
    }
}

/// After a failed run: removes the work folder if it holds no finished part (only the lock and the
/// plan), so a run that stopped before computing anything leaves nothing behind. Never removes a
/// file it does not know.
pub fn discard_if_unused(dir: &Path, lock: &Path) {
    let parts = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("part-"))
        })
        .unwrap_or(true);
    if !parts {
        let _ = std::fs::remove_file(dir.join(PLAN_FILE));
        let _ = std::fs::remove_file(lock);
        let _ = std::fs::remove_dir(dir);
    }
}
