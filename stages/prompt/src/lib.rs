//! `saha-prompt`: turns an MMEB-format dataset into `pairs.parquet` and `items.parquet`
//! (plus `eval_lists.parquet` for MMEB-eval data and `skipped.parquet`), rendering every unique
//! encoder input with the hierarchical embedding prompt.

pub mod build;
pub mod images;
pub mod mmeb;
pub mod source;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use saha_common::flags::ImageRoot;
use saha_schemas::provenance::{BACKBONE, ORIGIN};
use saha_schemas::records::{sink_for, write_rows};
use saha_schemas::write::finish_all;
use saha_schemas::{EvalListEntry, Item, Pair, Provenance, SkippedRow};

use crate::build::{build, BuildOptions, OnDuplicate, Stats};
use crate::images::{ImagePolicy, OnMissing};
use crate::mmeb::Layout;
use saha_prompting::config::{PromptFile, PromptSettings};
use saha_prompting::preset::Preset;
use saha_prompting::render::SpecialTextPolicy;
use saha_prompting::template::Backbone;

pub const STAGE: &str = "saha-prompt";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Render an MMEB-format dataset into pairs.parquet and items.parquet with the hierarchical \
embedding prompt.\n\nDefaults reproduce the reference code byte for byte: the Qwen2-VL chat template, the shared \
system prompt for queries and targets, `<|image_1|>` replaced by a bare `<|image_pad|>`, the \"Represent the given \
text[/image] in one word.\" suffix on queries only, and RefCOCO-Matching targets encoded as queries.\n\n\
Reads MMEB-train files (qry, qry_image_path, pos_text, pos_image_path) and MMEB-eval files (qry_text, \
qry_img_path, tgt_text[], tgt_img_path[]); an optional `label` column is carried into pairs.parquet."
)]
pub struct Args {
    /// The data: one Parquet file, a folder with one Parquet file per subset (file stem = subset),
    /// or a Hugging Face dataset folder (one sub-folder per subset).
    #[arg(long)]
    pub data: PathBuf,
    /// Split to read in a Hugging Face folder (e.g. diverse_instruction, original, test); optional
    /// when each subset has only one.
    #[arg(long)]
    pub split: Option<String>,
    /// Subsets to keep, comma-separated, in this order (default: all, sorted by name).
    #[arg(long, value_delimiter = ',')]
    pub subsets: Vec<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub image_root: ImageRoot,
    /// Folder for the outputs (pairs.parquet, items.parquet, eval_lists.parquet, skipped.parquet).
    #[arg(long, default_value = ".")]
    #[serde(skip)]
    pub out_dir: PathBuf,
    /// Output path of pairs.parquet (overrides --out-dir).
    #[arg(long)]
    #[serde(skip)]
    pub pairs: Option<PathBuf>,
    /// Output path of items.parquet (overrides --out-dir).
    #[arg(long)]
    #[serde(skip)]
    pub items: Option<PathBuf>,
    /// Output path of eval_lists.parquet, written for MMEB-eval data (overrides --out-dir).
    #[arg(long)]
    #[serde(skip)]
    pub eval_lists: Option<PathBuf>,
    /// Output path of skipped.parquet, always written, empty when nothing was skipped.
    #[arg(long)]
    #[serde(skip)]
    pub skipped: Option<PathBuf>,
    /// Chat template and image token of the backbone.
    #[arg(long, value_enum, default_value_t = Backbone::Qwen2Vl)]
    pub backbone: Backbone,
    /// Prompt format to start from: the hierarchical prompt (the reference's), or Qwen3-VL-Embedding's own
    /// (its default instruction "Represent the user's input." as the system turn for queries and targets, no
    /// suffix, the image wrapped and placed before the text; --system and friends set the instruction, with
    /// a full stop added as its code adds one). Use it with --backbone qwen3-vl.
    #[arg(long, value_enum, default_value_t = Preset::Hierarchical)]
    pub preset: Preset,
    /// System prompt for queries and targets (default: the reference's).
    #[arg(long)]
    pub system: Option<String>,
    /// System prompt for queries only (the reference's --Q_prompt).
    #[arg(long)]
    pub query_system: Option<String>,
    /// System prompt for targets only (the reference's --D_prompt).
    #[arg(long)]
    pub target_system: Option<String>,
    /// Render without a system block (what the reference does when no prompt is passed).
    #[arg(long, conflicts_with_all = ["system", "query_system", "target_system"])]
    pub no_system: bool,
    /// TOML or JSON file with per-task and per-subset prompt settings (see the README).
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Wrap the image token in <|vision_start|>/<|vision_end|> (Qwen2-VL), which gives image
    /// tokens 3-D M-RoPE positions; the reference does not.
    #[arg(long)]
    pub wrap_vision: bool,
    /// Control-token strings in dataset text: escape them so they stay plain text, or refuse.
    #[arg(long, value_enum, default_value_t = SpecialTextPolicy::Escape)]
    pub special_text: SpecialTextPolicy,
    /// A row whose image file does not exist: stop, or skip it and list it in skipped.parquet.
    #[arg(long, value_enum, default_value_t = OnMissing::Error)]
    pub on_missing: OnMissing,
    /// Rows repeated within a subset: stop, keep them (as the reference does), or drop repeats.
    #[arg(long, value_enum, default_value_t = OnDuplicate::Error)]
    pub on_duplicate: OnDuplicate,
}

pub struct Outcome {
    pub layout: Layout,
    pub stats: Stats,
    pub written: Vec<PathBuf>,
}

impl Args {
    fn settings(&self) -> PromptSettings {
        let mut s = self.preset.settings();
        if self.no_system {
            s.query_system = None;
            s.target_system = None;
        }
        if let Some(v) = &self.system {
            s.query_system = Some(v.clone());
            s.target_system = Some(v.clone());
        }
        if let Some(v) = &self.query_system {
            s.query_system = Some(v.clone());
        }
        if let Some(v) = &self.target_system {
            s.target_system = Some(v.clone());
        }
        s.query_system = s.query_system.map(|v| self.preset.instruction(&v));
        s.target_system = s.target_system.map(|v| self.preset.instruction(&v));
        s
    }

    fn out(&self, explicit: &Option<PathBuf>, name: &str) -> PathBuf {
        explicit
            .clone()
            .unwrap_or_else(|| self.out_dir.join(format!("{name}.parquet")))
    }
}

pub fn run(args: &Args) -> Result<Outcome> {
    let subsets = source::discover(&args.data, args.split.as_deref(), &args.subsets)?;
    let prompt_file = args.prompt_file.as_deref().map(PromptFile::load).transpose()?;
    if let Some(f) = &prompt_file {
        for name in f.mentioned_subsets() {
            if !subsets.iter().any(|s| s.name == name) {
                eprintln!("{STAGE}: warning: prompt file names subset `{name}`, which is not in the data");
            }
        }
    }
    let opts = BuildOptions {
        backbone: args.backbone,
        wrap_vision: args.wrap_vision || args.preset.wraps_vision(),
        special_text: args.special_text,
        on_missing: args.on_missing,
        on_duplicate: args.on_duplicate,
        images: ImagePolicy {
            root: args.image_root.clone(),
        },
        settings: args.settings(),
        prompt_file,
    };
    let built = build(&subsets, &opts)?;

    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    prov.param("settings", &opts.settings);
    prov.param("layout", format!("{:?}", built.layout));
    prov.set(&BACKBONE, args.backbone.name());
    for f in &built.input_files {
        prov.input(f)?;
    }
    if let Some(p) = &args.prompt_file {
        prov.input(p)?;
    }
    prov.stat("counts", &built.stats);
    // Every artefact made from these items and pairs inherits this origin (the run's identity).
    let origin = prov.fingerprint();
    prov.set(&ORIGIN, origin);

    let mut sinks = Vec::new();
    let mut pairs = sink_for::<Pair>(&args.out(&args.pairs, "pairs"), &prov)?;
    write_rows(&mut pairs, &built.pairs)?;
    sinks.push(pairs);
    let mut items = sink_for::<Item>(&args.out(&args.items, "items"), &prov)?;
    write_rows(&mut items, &built.items)?;
    sinks.push(items);
    if built.layout == Layout::Eval {
        let mut lists = sink_for::<EvalListEntry>(&args.out(&args.eval_lists, "eval_lists"), &prov)?;
        write_rows(&mut lists, &built.eval_lists)?;
        sinks.push(lists);
    }
    let mut skipped = sink_for::<SkippedRow>(&args.out(&args.skipped, "skipped"), &prov)?;
    write_rows(&mut skipped, &built.skipped)?;
    sinks.push(skipped);
    let written = finish_all(sinks).context("writing outputs")?;
    Ok(Outcome {
        layout: built.layout,
        stats: built.stats,
        written,
    })
}
