use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use saha_model::tensors::nested_name;

use crate::{ArchArg, Args, Layout, StoredDtype};

/// Writes config, weights, tokenizer and preprocessor config into a fresh folder next to `args.out`, then
/// swaps it in, so a reader never sees half a snapshot.
pub fn write_snapshot(args: &Args, config: &serde_json::Value, tensors: &[(String, Tensor)]) -> Result<()> {
    if !args.tokenizer.is_file() {
        bail!(
            "{}: tokenizer not found (run scripts/fetch-tokenizer.sh)",
            args.tokenizer.display()
        );
    }
    let out = &args.out;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().context("--out needs a folder name")?.to_string_lossy();
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let written = fill(args, config, tensors, &staging);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let previous = parent.join(format!(".{name}.old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &previous).with_context(|| format!("moving the old {} aside", out.display()))?;
    }
    std::fs::rename(&staging, out).with_context(|| format!("moving the snapshot to {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&previous);
    Ok(())
}

fn fill(args: &Args, config: &serde_json::Value, tensors: &[(String, Tensor)], dir: &Path) -> Result<()> {
    let json = |value: &serde_json::Value| serde_json::to_string_pretty(value).expect("serialisable") + "\n";
    std::fs::write(dir.join("config.json"), json(config))?;
    std::fs::write(dir.join("preprocessor_config.json"), json(&args.preprocessor_json()))?;
    std::fs::copy(&args.tokenizer, dir.join("tokenizer.json"))
        .with_context(|| format!("copying {}", args.tokenizer.display()))?;
    let dtype = match args.dtype {
        StoredDtype::F32 => DType::F32,
        StoredDtype::Bf16 => DType::BF16,
        StoredDtype::F16 => DType::F16,
    };
    // Qwen3-VL was published with the nested names only.
    let nested = args.layout == Layout::Nested || args.arch == ArchArg::Qwen3Vl;
    let mut stored = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let name = if nested { nested_name(name) } else { name.clone() };
        stored.push((name, tensor.to_dtype(dtype)?));
    }
    if args.shards == 1 {
        let map: HashMap<String, Tensor> = stored.into_iter().collect();
        candle_core::safetensors::save(&map, dir.join("model.safetensors"))?;
        return Ok(());
    }
    let per_shard = stored.len().div_ceil(args.shards);
    let shards = stored.len().div_ceil(per_shard);
    let mut weight_map = serde_json::Map::new();
    let mut total_size = 0usize;
    for (i, chunk) in stored.chunks(per_shard).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        let mut map = HashMap::new();
        for (name, tensor) in chunk {
            weight_map.insert(name.clone(), file.clone().into());
            total_size += tensor.elem_count() * dtype.size_in_bytes();
            map.insert(name.clone(), tensor.clone());
        }
        candle_core::safetensors::save(&map, dir.join(&file))?;
    }
    let index = serde_json::json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), json(&index))?;
    Ok(())
}
