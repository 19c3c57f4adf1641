//! Adapters in PEFT's on-disk format (`adapter_config.json` + `adapter_model.safetensors`), attached to
//! the linear layers whose last name component is one of `target_modules`, as PEFT matches them: the
//! language model's, and on Qwen2.5-VL also the vision blocks' `down_proj`.
//!
//! Names are written as current PEFT + transformers write them
//! (`base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight`,
//! `base_model.model.model.visual.blocks.0.mlp.down_proj.lora_A.weight`,
//! `...q_proj.lora_magnitude_vector` for DoRA); the older `base_model.model.model.layers.*` and
//! `base_model.model.visual.*` form (peft 0.11 with transformers 4.x, the reference's stack) is read too.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::adapter::{init_adapter, Adapter, AdapterKind};
use crate::error::{ModelError, Result};
use crate::model::Qwen2Vl;
use crate::tensors::nested_name;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    pub kind: AdapterKind,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Suffixes of the adapted layers (`q_proj`, ...).
    pub targets: Vec<String>,
}

/// The fields of PEFT's `LoraConfig` this project reads and writes.
#[derive(Debug, Serialize, Deserialize)]
struct PeftConfigFile {
    peft_type: String,
    r: usize,
    lora_alpha: f64,
    lora_dropout: f32,
    target_modules: Vec<String>,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    init_lora_weights: serde_json::Value,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    inference_mode: bool,
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
}

fn peft_prefix(layer: &str) -> String {
    format!("base_model.model.{}", nested_name(layer))
}

fn legacy_prefix(layer: &str) -> String {
    format!("base_model.model.{layer}")
}

fn is_target(layer: &str, targets: &[String]) -> bool {
    let last = layer.rsplit('.').next().unwrap_or(layer);
    targets.iter().any(|t| t == last)
}

/// Adds fresh, seeded adapters to every targeted layer (A Gaussian, B zero, DoRA magnitude ‖W‖).
pub fn attach_new(model: &mut Qwen2Vl, cfg: &AdapterConfig, seed: u64) -> Result<usize> {
    let mut rng = saha_common::rng::Rng::new(seed);
    let mut index = 0;
    model.for_each_linear_mut(&mut |name, linear| {
        if is_target(name, &cfg.targets) {
            let adapter = init_adapter(
                cfg.kind,
                linear.weight(),
                cfg.rank,
                cfg.alpha,
                cfg.dropout,
                index,
                &mut || rng.normal(),
            )?;
            linear.set_adapter(Some(adapter));
            index += 1;
        }
        Ok(())
    })?;
    if index == 0 {
        return Err(ModelError::Input(format!(
            "no layer of the model matches the adapter targets {:?}",
            cfg.targets
        )));
    }
    Ok(index)
}

/// Every adapter tensor with its PEFT name, in layer order.
pub fn named_vars(model: &Qwen2Vl) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    model.for_each_linear(&mut |name, linear| {
        if let Some(a) = linear.adapter() {
            let p = peft_prefix(name);
            out.push((format!("{p}.lora_A.weight"), a.a.clone()));
            out.push((format!("{p}.lora_B.weight"), a.b.clone()));
            if let Some(m) = &a.magnitude {
                out.push((format!("{p}.lora_magnitude_vector"), m.clone()));
            }
        }
    });
    out
}

pub fn save(dir: &Path, model: &Qwen2Vl, cfg: &AdapterConfig, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::file(dir, e))?;
    let file = PeftConfigFile {
        peft_type: "LORA".into(),
        r: cfg.rank,
        lora_alpha: cfg.alpha,
        lora_dropout: cfg.dropout,
        target_modules: cfg.targets.clone(),
        use_dora: cfg.kind == AdapterKind::Dora,
        init_lora_weights: "gaussian".into(),
        bias: Some("none".into()),
        fan_in_fan_out: false,
        inference_mode: true,
        task_type: None,
        base_model_name_or_path: Some(base_model.to_string()),
        modules_to_save: None,
    };
    let json = serde_json::to_string_pretty(&file).expect("serialisable") + "\n";
    std::fs::write(dir.join(CONFIG_FILE), json).map_err(|e| ModelError::file(dir.join(CONFIG_FILE), e))?;
    let tensors: HashMap<String, Tensor> = named_vars(model)
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
    Ok(())
}

pub fn read_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, e))?;
    let file: PeftConfigFile = serde_json::from_str(&text).map_err(|e| ModelError::file(&path, e))?;
    if file.peft_type != "LORA" {
        return Err(ModelError::file(
            &path,
            format!("peft_type {} is not supported (LORA only)", file.peft_type),
        ));
    }
    Ok(AdapterConfig {
        kind: if file.use_dora {
            AdapterKind::Dora
        } else {
            AdapterKind::Lora
        },
        rank: file.r,
        alpha: file.lora_alpha,
        dropout: file.lora_dropout,
        targets: file.target_modules,
    })
}

/// Attaches the adapter saved in `dir` (trainable, for resuming or evaluating).
pub fn load(dir: &Path, model: &mut Qwen2Vl) -> Result<AdapterConfig> {
    let cfg = read_config(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let device = model.device().clone();
    let tensors = candle_core::safetensors::load(&path, &device).map_err(|e| ModelError::file(&path, e))?;
    let get = |layer: &str, suffix: &str, shape: &[usize]| -> Result<Var> {
        let names = [
            format!("{}.{suffix}", peft_prefix(layer)),
            format!("{}.{suffix}", legacy_prefix(layer)),
        ];
        let tensor = names
            .iter()
            .find_map(|n| tensors.get(n))
            .ok_or_else(|| ModelError::Tensor {
                name: names[0].clone(),
                message: format!("missing from {}", path.display()),
            })?;
        if tensor.dims() != shape {
            return Err(ModelError::Tensor {
                name: names[0].clone(),
                message: format!(
                    "has shape {:?}, the model and adapter_config.json imply {shape:?}",
                    tensor.dims()
                ),
            });
        }
        Ok(Var::from_tensor(&tensor.to_dtype(DType::F32)?)?)
    };
    let mut index = 0;
    model.for_each_linear_mut(&mut |name, linear| {
        if !is_target(name, &cfg.targets) {
            return Ok(());
        }
        let (out, inp) = linear.weight().dims2()?;
        let magnitude = match cfg.kind {
            AdapterKind::Dora => Some(get(name, "lora_magnitude_vector", &[out])?),
            AdapterKind::Lora => None,
        };
        linear.set_adapter(Some(Adapter {
            kind: cfg.kind,
            a: get(name, "lora_A.weight", &[cfg.rank, inp])?,
            b: get(name, "lora_B.weight", &[out, cfg.rank])?,
            magnitude,
            scale: cfg.alpha / cfg.rank as f64,
            dropout: cfg.dropout,
            index,
            norm_memo: Default::default(),
        }));
        index += 1;
        Ok(())
    })?;
    if index == 0 {
        return Err(ModelError::file(
            dir,
            format!("no layer of the model matches target_modules {:?}", cfg.targets),
        ));
    }
    Ok(cfg)
}

/// Folds every adapter into its layer's weight, for inference at base-model speed.
pub fn merge_all(model: &mut Qwen2Vl) -> Result<()> {
    model.for_each_linear_mut(&mut |_, linear| linear.merge_adapter())
}
