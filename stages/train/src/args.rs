use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use saha_common::flags::{ImageRoot, ModelArgs};
use saha_common::numbers;
use serde::Serialize;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "saha-train",
    args_override_self = true,
    version,
    about,
    long_about = "Contrastive LoRA/DoRA fine-tuning of Qwen2-VL on SaHa clusters.\n\n\
Each step takes --clusters-per-step clusters (shuffled per epoch from --seed, members kept together) and \
flattens them into (query, positive) pairs; every positive is a negative for every other query of the step, so \
the mined negatives cost no extra forward passes. The loss is the reference's one-directional InfoNCE over \
cosine / temperature. GradCache (--chunk) keeps one chunk's graph in memory at a time and gives the gradients of \
plain backpropagation. Checkpoints are PEFT adapters (adapter_config.json + adapter_model.safetensors) plus the \
optimiser state; --resume continues a run exactly, and a folder with checkpoints is refused without --resume or \
--overwrite."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    /// clusters.parquet from saha-filter.
    #[arg(long)]
    #[serde(skip)]
    pub clusters: PathBuf,
    /// items.parquet from saha-prompt (the clusters' query and target items).
    #[arg(long)]
    #[serde(skip)]
    pub items: PathBuf,
    #[command(flatten)]
    #[serde(skip)]
    pub image_root: ImageRoot,
    #[command(flatten)]
    #[serde(flatten)]
    pub image_limits: saha_common::flags::ImageLimits,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// Output folder: train_log.parquet, timings.json, checkpoint-<step>/, adapter/ (the final adapter).
    /// One process per folder: a second saha-train on it stops at once.
    #[arg(long)]
    #[serde(skip)]
    pub out_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = AdapterArg::Dora)]
    pub adapter: AdapterArg,
    /// Train every weight instead of an adapter (for tiny models); the result is a full snapshot in
    /// <out-dir>/model instead of an adapter in <out-dir>/adapter.
    #[arg(long)]
    pub full: bool,
    /// Adapter rank (at least 1).
    #[arg(long, default_value_t = 8, value_parser = numbers::count)]
    pub rank: usize,
    /// Adapter scale numerator: the update is scaled by alpha / rank (above 0).
    #[arg(long, default_value_t = 64.0, value_parser = numbers::positive_float)]
    pub alpha: f64,
    /// Adapter dropout probability, at least 0 and below 1.
    #[arg(long, default_value_t = 0.1, value_parser = numbers::drop_probability)]
    pub dropout: f32,
    /// Layers to adapt, by last name component as PEFT matches them (the reference: q, k, v, o and down
    /// projections of the language model; on Qwen2.5-VL `down_proj` also names the vision blocks' MLP output).
    #[arg(long, value_delimiter = ',', default_value = "q_proj,k_proj,v_proj,o_proj,down_proj")]
    pub targets: Vec<String>,
    /// Clusters per step (the reference: 16 per GPU); at least 1.
    #[arg(long, default_value_t = 16, value_parser = numbers::count)]
    pub clusters_per_step: usize,
    /// Peak learning rate (above 0), reached after --warmup-steps and decayed linearly to 0.
    #[arg(long, default_value_t = 5e-5, value_parser = numbers::positive_float)]
    pub lr: f64,
    /// Steps of linear warm-up from 0 to --lr (0: none).
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    /// Optimiser steps in all (at least 1).
    #[arg(long, default_value_t = 1500, value_parser = numbers::count)]
    pub max_steps: usize,
    /// InfoNCE temperature: cosine similarities are divided by it (above 0).
    #[arg(long, default_value_t = 0.02, value_parser = numbers::positive_float)]
    pub temperature: f64,
    /// Also add the target -> query InfoNCE term (the reference has only query -> target).
    #[arg(long)]
    pub symmetric: bool,
    /// Do not count a target identical (text and image) to a query's own positive as its negative
    /// (the reference leaves such false negatives in).
    #[arg(long)]
    pub mask_duplicate_targets: bool,
    /// AdamW decoupled weight decay (0 or greater).
    #[arg(long, default_value_t = 0.0, value_parser = numbers::non_negative_float)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0, value_parser = numbers::non_negative_float)]
    pub max_grad_norm: f64,
    /// GradCache chunk size in inputs per tower (the reference: 4); 0 = plain backpropagation.
    #[arg(long, default_value_t = 4)]
    pub chunk: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Save a checkpoint every this many steps (and always at the end); at least 1.
    #[arg(long, default_value_t = 1000, value_parser = numbers::count)]
    pub save_steps: usize,
    /// Continue from the latest checkpoint in --out-dir.
    #[arg(long)]
    #[serde(skip)]
    pub resume: bool,
    /// Delete the checkpoints of an earlier run in --out-dir and start over; without it (or --resume)
    /// a folder that holds checkpoints is refused.
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub overwrite: bool,
    /// Image resolution policy (the reference trains with mid_low = 448x448).
    #[arg(long, default_value = "mid_low")]
    pub resolution: String,
    /// Longest prompt in tokens; longer ones lose user text, never the chat tail (the reference's
    /// effective training limit is 512). At least 1.
    #[arg(long, default_value_t = 512, value_parser = numbers::count)]
    pub max_len: usize,
    /// Stop with an error after this many steps, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub stop_after_steps: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterArg {
    Lora,
    Dora,
}
