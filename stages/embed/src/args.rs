use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use saha_common::flags::{ImageRoot, ModelArgs, Truncate};
use saha_common::numbers;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "saha-embed",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    about,
    long_about = "Embed items.parquet with Qwen2-VL: the final-norm hidden state of each prompt's last real token, \
L2-normalised, as the reference pools.\n\n\
Items are tokenised and their image sizes read first; then they are sorted by length and packed into batches \
under a token budget, so padding stays small. Work is written in parts under --work-dir as it goes: a killed run \
started again with the same arguments skips the finished parts, and the final file is byte-identical to an \
uninterrupted run. --shard i/n embeds every n-th part so machines can split the work; `saha-embed merge` joins \
the shard files."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the shard files of one `--shard i/n` run into one embeddings.parquet.
    Merge(MergeArgs),
}

#[derive(Debug, ClapArgs)]
pub struct MergeArgs {
    /// Output embeddings.parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// The shard files, one per shard, any order.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

#[derive(Debug, Clone, ClapArgs, Serialize)]
pub struct EmbedArgs {
    /// items.parquet from saha-prompt.
    #[arg(long, required = true)]
    #[serde(skip)]
    pub items: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    pub image_root: ImageRoot,
    #[command(flatten)]
    #[serde(flatten)]
    pub image_limits: saha_common::flags::ImageLimits,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// A PEFT LoRA/DoRA adapter folder (adapter_config.json + adapter_model.safetensors, e.g. from
    /// saha-train), merged into the weights before embedding.
    #[arg(long)]
    #[serde(skip)]
    pub adapter: Option<PathBuf>,
    /// Output embeddings.parquet (for --shard, this shard's file).
    #[arg(long, required = true)]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// Token budget of a batch: (longest prompt in the batch) x (batch size) stays under it.
    #[arg(long, default_value_t = 8192, value_parser = numbers::count)]
    pub batch_tokens: usize,
    /// Most prompts in one batch (at least 1).
    #[arg(long, default_value_t = 32, value_parser = numbers::count)]
    pub max_batch: usize,
    /// Longest prompt in tokens (image tokens included); the reference samples and evaluates with 2048.
    #[arg(long, default_value_t = 2048, value_parser = numbers::count)]
    pub max_len: usize,
    /// What to do with a prompt over --max-len.
    #[arg(long, value_enum, default_value_t = Truncate::UserText)]
    pub truncate: Truncate,
    /// Image resolution policy applied before the processor, as the reference's --image_resolution:
    /// random (aspect-clamped, the reference's sampling and eval setting), high, mid_high, mid, mid_low, clip,
    /// low, or native (no pre-resize).
    #[arg(long, default_value = "random")]
    pub resolution: String,
    /// Missing or unreadable image: error (stop, naming item and path) or skip (leave the item out and
    /// list it in --skipped; every image is then decoded once while planning, so a file broken past its
    /// header is skipped too rather than stopping the run).
    #[arg(long, value_enum, default_value_t = OnBadImage::Error)]
    pub on_bad_image: OnBadImage,
    /// Where --on-bad-image skip lists the items it left out (default: embed_skipped.parquet next to --out;
    /// embed_skipped.<i>-of-<n>.parquet with --shard i/n, shard 1 listing those found when planning).
    #[arg(long)]
    #[serde(skip)]
    pub skipped: Option<PathBuf>,
    /// Padding side inside a batch (left is how Qwen2-VL's processor pads); pooling uses each row's last
    /// real token and positions ignore padding, so both sides give the same embeddings up to rounding.
    /// f32 on the CPU packs a batch's inputs one after the other instead, with no padding at all.
    #[arg(long, value_enum, default_value_t = PaddingArg::Right)]
    pub padding: PaddingArg,
    /// Embed only shard i of n (1-based): every n-th part of the plan, for splitting over machines.
    #[arg(long)]
    #[serde(skip)]
    pub shard: Option<String>,
    /// Folder for finished parts (default: <out>.work); removed when the output is written.
    #[arg(long)]
    #[serde(skip)]
    pub work_dir: Option<PathBuf>,
    /// Items per resumable part (whole batches; a part is the unit of resuming and sharding).
    #[arg(long, default_value_t = 256, value_parser = numbers::count)]
    #[serde(skip)]
    pub part_items: usize,
    /// Stop with an error after writing this many parts, as if killed (for testing resumption).
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub stop_after_parts: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadImage {
    Error,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaddingArg {
    Right,
    Left,
}

impl PaddingArg {
    pub fn padding(self) -> saha_model::Padding {
        match self {
            PaddingArg::Right => saha_model::Padding::Right,
            PaddingArg::Left => saha_model::Padding::Left,
        }
    }
}

/// `i/n` with 1 <= i <= n.
pub fn parse_shard(text: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if i >= 1 && i <= n => Ok((i, n)),
        _ => anyhow::bail!("--shard {text}: expected i/n with 1 <= i <= n, e.g. 2/4"),
    }
}
