//! A random-weight Qwen2-VL snapshot in the published Hugging Face layout, from a seed.
//!
//! The files are what a real snapshot has (config.json, safetensors, tokenizer.json,
//! preprocessor_config.json), so the tiny model goes through the same loader as Qwen2-VL-2B.

mod files;
mod random;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

pub use files::write_snapshot;
pub use random::random_tensors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// Flat config.json, tensors named `visual.*` / `model.*` (as Qwen published Qwen2-VL).
    Original,
    /// `text_config` / `rope_parameters` config, tensors named `model.visual.*` / `model.language_model.*`.
    Nested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoredDtype {
    F32,
    Bf16,
    F16,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "saha-init-model", about)]
pub struct Args {
    /// Snapshot folder to write (replaced atomically if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// The Qwen2 tokenizer.json to ship in the snapshot (scripts/fetch-tokenizer.sh fetches it).
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Text hidden size (also the embedding dimension).
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    #[arg(long, default_value_t = 128)]
    pub intermediate: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    /// Rotary sections (t,h,w) of the text head's half dimension; must sum to hidden/heads/2.
    #[arg(long, value_delimiter = ',', default_value = "2,3,3")]
    pub mrope_section: Vec<usize>,
    #[arg(long, default_value_t = 151936)]
    pub vocab: usize,
    #[arg(long, default_value_t = 2)]
    pub vision_depth: usize,
    #[arg(long, default_value_t = 32)]
    pub vision_dim: usize,
    #[arg(long, default_value_t = 4)]
    pub vision_heads: usize,
    /// Smallest image area in pixels the processor resizes to.
    #[arg(long, default_value_t = 3136)]
    pub min_pixels: usize,
    /// Largest image area in pixels the processor resizes to (small keeps the tiny model fast).
    #[arg(long, default_value_t = 28 * 28 * 16)]
    pub max_pixels: usize,
    /// Standard deviation of the random matrices.
    #[arg(long, default_value_t = 0.02)]
    pub init_std: f32,
    #[arg(long, value_enum, default_value_t = Layout::Original)]
    pub layout: Layout,
    #[arg(long, value_enum, default_value_t = StoredDtype::F32)]
    pub dtype: StoredDtype,
    /// Split the weights over this many safetensors files with an index, as large checkpoints are.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
}

impl Args {
    pub fn config_json(&self) -> serde_json::Value {
        let [t, h, w] = match self.mrope_section[..] {
            [t, h, w] => [t, h, w],
            _ => [0, 0, 0],
        };
        let vision = serde_json::json!({
            "depth": self.vision_depth, "embed_dim": self.vision_dim, "num_heads": self.vision_heads,
            "mlp_ratio": 4, "hidden_act": "quick_gelu", "patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "in_channels": 3, "hidden_size": self.hidden,
        });
        let text = serde_json::json!({
            "hidden_size": self.hidden, "intermediate_size": self.intermediate, "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads, "num_key_value_heads": self.kv_heads, "rms_norm_eps": 1e-6,
            "vocab_size": self.vocab, "hidden_act": "silu", "max_position_embeddings": 32768,
        });
        let ids = serde_json::json!({
            "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
            "video_token_id": 151656,
        });
        let mut root = serde_json::json!({
            "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
            "tie_word_embeddings": true, "torch_dtype": self.dtype_name(), "vision_config": vision,
        });
        let object = root.as_object_mut().expect("object");
        object.extend(ids.as_object().expect("object").clone());
        match self.layout {
            Layout::Original => {
                object.extend(text.as_object().expect("object").clone());
                object.insert("rope_theta".into(), 1_000_000.0.into());
                object.insert(
                    "rope_scaling".into(),
                    serde_json::json!({"type": "mrope", "mrope_section": [t, h, w]}),
                );
            }
            Layout::Nested => {
                let mut text = text;
                text["rope_parameters"] =
                    serde_json::json!({"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [t, h, w]});
                text["model_type"] = "qwen2_vl_text".into();
                object.insert("text_config".into(), text);
            }
        }
        root
    }

    pub fn preprocessor_json(&self) -> serde_json::Value {
        serde_json::json!({
            "image_processor_type": "Qwen2VLImageProcessor", "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_resize": true, "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
            "do_convert_rgb": true, "resample": 3,
        })
    }

    fn dtype_name(&self) -> &'static str {
        match self.dtype {
            StoredDtype::F32 => "float32",
            StoredDtype::Bf16 => "bfloat16",
            StoredDtype::F16 => "float16",
        }
    }
}

/// Writes the snapshot; returns the number of parameters.
pub fn run(args: &Args) -> Result<usize> {
    if args.mrope_section.len() != 3 {
        bail!(
            "--mrope-section needs three numbers (t,h,w), got {:?}",
            args.mrope_section
        );
    }
    if args.shards == 0 {
        bail!("--shards must be at least 1");
    }
    let config = saha_model::ModelConfig::from_value(&args.config_json())
        .context("the requested shape is not a valid Qwen2-VL")?;
    let tensors = random_tensors(&config, args.seed, args.init_std)?;
    let params = tensors.iter().map(|(_, t)| t.elem_count()).sum();
    write_snapshot(args, &tensors)?;
    Ok(params)
}
