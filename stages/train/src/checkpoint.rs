//! Checkpoints: the adapter in PEFT format, the optimiser moments, and the trainer state, written to a
//! temporary folder and renamed into place, so a failed write (disk full) leaves the previous one intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use saha_model::peft::{self, AdapterConfig};
use saha_model::{Qwen2Vl, Snapshot};
use serde::{Deserialize, Serialize};

use crate::optim::AdamW;

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

#[derive(Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps finished.
    pub step: usize,
    /// Hash of the inputs and every setting that shapes the run; a resume must match it.
    pub fingerprint: String,
}

pub fn name(step: usize) -> String {
    format!("checkpoint-{step:06}")
}

/// What a run trains, and so what a checkpoint holds.
pub enum Trained<'a> {
    /// A PEFT adapter on the base model.
    Adapter {
        config: &'a AdapterConfig,
        base_model: &'a str,
    },
    /// Every weight: the checkpoint is a complete snapshot (weights under their original names).
    Full {
        base: &'a Snapshot,
        vars: &'a [(String, Var)],
    },
}

/// Writes `trained` into `dir`: an adapter folder, or a snapshot folder `saha-embed --model` reads.
pub fn write_trained(dir: &Path, model: &Qwen2Vl, trained: &Trained) -> Result<()> {
    match trained {
        Trained::Adapter { config, base_model } => peft::save(dir, model, config, base_model)?,
        Trained::Full { base, vars } => {
            std::fs::create_dir_all(dir)?;
            for file in [&base.config, &base.tokenizer, &base.preprocessor] {
                std::fs::copy(file, dir.join(file.file_name().expect("file name")))?;
            }
            let tensors: HashMap<String, Tensor> =
                vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        }
    }
    Ok(())
}

pub fn save(
    out_dir: &Path,
    model: &Qwen2Vl,
    trained: &Trained,
    optimizer: &AdamW,
    names: &[String],
    state: &TrainerState,
) -> Result<PathBuf> {
    let target = out_dir.join(name(state.step));
    let staging = out_dir.join(format!(".{}.tmp", name(state.step)));
    let _ = std::fs::remove_dir_all(&staging);
    let written = (|| -> Result<()> {
        write_trained(&staging, model, trained)?;
        let mut moments: HashMap<String, Tensor> = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            moments.insert(format!("first.{n}"), optimizer.first[i].clone());
            moments.insert(format!("second.{n}"), optimizer.second[i].clone());
        }
        candle_core::safetensors::save(&moments, staging.join(OPTIMIZER_FILE))?;
        std::fs::write(staging.join(STATE_FILE), serde_json::to_string_pretty(state)? + "\n")?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e.context(format!(
            "writing checkpoint {} (the previous checkpoint is kept)",
            target.display()
        )));
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).with_context(|| format!("moving {} into place", target.display()))?;
    // Only the newest checkpoint is kept, and only once it is complete.
    for old in list(out_dir)? {
        if old != target {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(target)
}

/// Finished checkpoints in `out_dir`, oldest first.
pub fn list(out_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(out_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint-"))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    Ok(found)
}

/// The newest checkpoint's folder, state and optimiser moments (on `device`, beside the variables they
/// belong to), after checking it belongs to this run. The caller loads the weights: the adapter
/// (`peft::load`) or, for full training, the checkpoint as a snapshot.
pub fn restore(
    out_dir: &Path,
    fingerprint: &str,
    device: &Device,
) -> Result<(PathBuf, TrainerState, HashMap<String, Tensor>)> {
    let Some(latest) = list(out_dir)?.pop() else {
        bail!("--resume: no checkpoint-* folder in {}", out_dir.display());
    };
    let state_path = latest.join(STATE_FILE);
    let state: TrainerState = serde_json::from_str(
        &std::fs::read_to_string(&state_path).with_context(|| format!("--resume: reading {}", state_path.display()))?,
    )
    .with_context(|| format!("--resume: {}", state_path.display()))?;
    if state.fingerprint != fingerprint {
        bail!(
            "--resume: {} was written by a run with another base model, data or training settings; \
             resume only with the arguments it was started with (or start a fresh --out-dir)",
            latest.display()
        );
    }
    let optimizer = latest.join(OPTIMIZER_FILE);
    if !optimizer.is_file() {
        bail!(
            "--resume: {} is missing, so the optimiser state of {} is lost; the checkpoint is incomplete \
             (start over with --overwrite)",
            optimizer.display(),
            latest.display()
        );
    }
    let moments = candle_core::safetensors::load(&optimizer, device)
        .with_context(|| format!("--resume: reading {}", optimizer.display()))?;
    Ok((latest, state, moments))
}
