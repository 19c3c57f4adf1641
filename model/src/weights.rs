//! Named tensors of a snapshot, memory-mapped, in either published naming layout.
//!
//! Callers ask for tensors by their original Qwen2-VL names (`visual.*`, `model.*`); checkpoints saved by
//! newer transformers store the same tensors as `model.visual.*` and `model.language_model.*`.

use std::collections::HashSet;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{ModelError, Result};
use crate::snapshot::Snapshot;
use crate::tensors::nested_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLayout {
    /// `visual.*`, `model.*` (the checkpoints as Qwen published them).
    Original,
    /// `model.visual.*`, `model.language_model.*` (saved by transformers 4.52 and later).
    Nested,
}

pub struct Weights {
    /// Set when every loaded tensor becomes a trainable variable (full fine-tuning).
    trainable: Option<std::sync::Mutex<Vec<(String, Var)>>>,
    tensors: MmapedSafetensors,
    names: HashSet<String>,
    /// Stored names handed out by [`Weights::get`], to find the tensors no layer asked for.
    used: std::sync::Mutex<HashSet<String>>,
    layout: NameLayout,
    dtype: DType,
    device: Device,
}

impl Weights {
    pub fn open(snapshot: &Snapshot, dtype: DType, device: &Device) -> Result<Self> {
        // SAFETY: the files are mapped read-only; like every safetensors loader we rely on nobody
        // truncating a snapshot while it is in use.
        let tensors = unsafe { MmapedSafetensors::multi(&snapshot.weights) }
            .map_err(|e| ModelError::file(&snapshot.weights[0], format!("cannot read safetensors: {e}")))?;
        let names: HashSet<String> = tensors.tensors().into_iter().map(|(name, _)| name).collect();
        let layout = if names
            .iter()
            .any(|n| n.starts_with("model.language_model.") || n.starts_with("model.visual."))
        {
            NameLayout::Nested
        } else {
            NameLayout::Original
        };
        Ok(Weights {
            trainable: None,
            tensors,
            names,
            used: Default::default(),
            layout,
            dtype,
            device: device.clone(),
        })
    }

    /// Makes every tensor loaded from now on a trainable variable, recorded under its original-layout name.
    pub fn make_trainable(&mut self) {
        self.trainable = Some(std::sync::Mutex::new(Vec::new()));
    }

    /// The variables created so far (empty unless `make_trainable` was called).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.trainable
            .as_ref()
            .map(|t| t.lock().expect("not poisoned").clone())
            .unwrap_or_default()
    }

    pub fn layout(&self) -> NameLayout {
        self.layout
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn stored_name(&self, name: &str) -> String {
        match self.layout {
            NameLayout::Original => name.to_string(),
            NameLayout::Nested => nested_name(name),
        }
    }

    /// Tensors of the files that no [`Weights::get`] asked for, sorted; the language-model head
    /// (`lm_head.*`) is never needed, as the embedding is the final hidden state.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().expect("not poisoned");
        let mut unused: Vec<String> = self
            .names
            .iter()
            .filter(|n| !used.contains(*n) && !n.starts_with("lm_head."))
            .cloned()
            .collect();
        unused.sort();
        unused
    }

    /// The tensor `name` (original layout) with exactly `shape`, in the model dtype on the model device.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let stored = self.stored_name(name);
        if !self.names.contains(&stored) {
            return Err(ModelError::Tensor {
                name: stored,
                message: "missing from the snapshot".into(),
            });
        }
        let view = self.tensors.get(&stored)?;
        if view.shape() != shape {
            return Err(ModelError::Tensor {
                name: stored,
                message: format!("has shape {:?}, the config implies {:?}", view.shape(), shape),
            });
        }
        let tensor = self.tensors.load(&stored, &self.device)?.to_dtype(self.dtype)?;
        self.used.lock().expect("not poisoned").insert(stored);
        match &self.trainable {
            None => Ok(tensor),
            Some(vars) => {
                let var = Var::from_tensor(&tensor)?;
                vars.lock().expect("not poisoned").push((name.to_string(), var.clone()));
                Ok(var.as_tensor().clone())
            }
        }
    }
}
