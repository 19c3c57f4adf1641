//! `saha-embed`: items.parquet -> embeddings.parquet with a Qwen2-VL snapshot.

mod args;
mod images;
mod merge;
mod plan;
mod work;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use rayon::prelude::*;
use saha_model::{Embedder, EncodedInput};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{progress, Item, Provenance, SkippedRow};

pub use args::{Cli, Command, DtypeArg, EmbedArgs, MergeArgs, OnBadImage, PaddingArg, Truncate};
use images::ImageContext;
use plan::Planned;
use work::WorkDir;

pub const STAGE: &str = "saha-embed";

pub fn run(cli: &Cli) -> Result<String> {
    match &cli.command {
        Some(Command::Merge(merge)) => merge::run(merge),
        None => embed(&cli.embed),
    }
}

/// What one run counted; recorded in the output's metadata.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    embedded: usize,
    truncated: usize,
    skipped: usize,
    batches: usize,
}

fn embed(args: &EmbedArgs) -> Result<String> {
    let items_path = args.items.as_deref().context("--items is required")?;
    let model_dir = args.model.as_deref().context("--model is required")?;
    let out = args.out.as_deref().context("--out is required")?;
    let shard = args.shard.as_deref().map(args::parse_shard).transpose()?;
    let device = parse_device(&args.device)?;
    let dtype = match (args.dtype, &device) {
        (DtypeArg::Auto, Device::Cpu) | (DtypeArg::F32, _) => DType::F32,
        (DtypeArg::Auto, _) | (DtypeArg::Bf16, _) => DType::BF16,
        (DtypeArg::F16, _) => DType::F16,
    };
    let policy = images::parse_policy(&args.resolution)?;

    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    prov.param("dtype", format!("{dtype:?}").to_lowercase());
    let (items, _): (Vec<Item>, _) = read_records(items_path)?;
    if items.is_empty() {
        bail!("{}: no items to embed", items_path.display());
    }
    prov.input(items_path)?;
    let mut embedder =
        Embedder::load(model_dir, dtype, &device).with_context(|| format!("loading {}", model_dir.display()))?;
    for file in embedder.snapshot.content_files() {
        prov.input(&file)?;
    }
    if let Some(adapter) = &args.adapter {
        saha_model::peft::load(adapter, &mut embedder.model)
            .with_context(|| format!("loading adapter {}", adapter.display()))?;
        saha_model::peft::merge_all(&mut embedder.model)?;
        prov.input(&adapter.join(saha_model::peft::CONFIG_FILE))?;
        prov.input(&adapter.join(saha_model::peft::WEIGHTS_FILE))?;
    }
    let embedder = embedder;
    let model_name = model_name(model_dir, &prov);
    let images = ImageContext {
        root: args.image_root.clone(),
        processor: &embedder.processor,
        policy,
    };

    let bar = progress::bar(items.len() as u64, "plan");
    let planned: Vec<Result<(Planned, bool), Bad>> = items
        .par_iter()
        .enumerate()
        .map(|(index, item)| {
            let grids = images.planned_grids(item).map_err(|reason| Bad::Image(reason))?;
            let tokens = tokens_for(&embedder, args, item, &grids).map_err(Bad::Fatal)?;
            bar.inc(1);
            Ok((
                Planned {
                    item: index,
                    len: tokens.ids.len(),
                },
                tokens.dropped > 0,
            ))
        })
        .collect();
    bar.finish_and_clear();
    let mut keep = Vec::with_capacity(items.len());
    let mut truncated = vec![false; items.len()];
    let mut skipped = Vec::new();
    for (index, result) in planned.into_iter().enumerate() {
        match result {
            Ok((p, cut)) => {
                truncated[index] = cut;
                keep.push(p);
            }
            Err(Bad::Fatal(e)) => return Err(e.context(item_label(items_path, index, &items[index]))),
            Err(Bad::Image(reason)) => match args.on_bad_image {
                OnBadImage::Error => bail!("{}: {reason}", item_label(items_path, index, &items[index])),
                OnBadImage::Skip => skipped.push(SkippedRow {
                    source_file: items_path.display().to_string(),
                    source_row: index as u32,
                    column: "image_path".into(),
                    reason,
                    value: items[index].image_path.clone(),
                }),
            },
        }
    }
    let all_parts = plan::parts(plan::batches(&keep, args.batch_tokens, args.max_batch), args.part_items);
    let fingerprint = work::fingerprint(&prov);
    let mine: Vec<usize> = match shard {
        None => (0..all_parts.len()).collect(),
        Some((i, n)) => (0..all_parts.len()).filter(|p| p % n == i - 1).collect(),
    };
    let work_dir = args.work_dir.clone().unwrap_or_else(|| sibling(out, ".work"));
    let work = WorkDir::open(&work_dir, &fingerprint, args.shard.as_deref())?;

    let total: usize = mine
        .iter()
        .map(|&p| all_parts[p].iter().map(Vec::len).sum::<usize>())
        .sum();
    let bar = progress::bar(total as u64, "embed");
    let mut counts = Counts::default();
    let mut resumed = 0;
    let mut written = 0;
    let mut rows: Vec<(u32, Arc<Vec<f32>>)> = Vec::with_capacity(total);
    let dim = embedder.config.text.hidden_size;
    for &part in &mine {
        let batches = &all_parts[part];
        counts.batches += batches.len();
        if let Some(done) = work.load_part(part, dim)? {
            resumed += 1;
            bar.inc(done.len() as u64);
            rows.extend(done);
            continue;
        }
        let mut part_rows = Vec::new();
        for batch in batches {
            let inputs: Vec<EncodedInput> = batch
                .par_iter()
                .map(|&index| {
                    encode(&embedder, args, &images, &items[index])
                        .map_err(|e| e.context(item_label(items_path, index, &items[index])))
                })
                .collect::<Result<_>>()?;
            let vectors = embedder.embed(&inputs)?;
            for (&index, vector) in batch.iter().zip(vectors) {
                if vector.iter().any(|v| !v.is_finite()) {
                    bail!(
                        "{}: the model produced a non-finite embedding",
                        item_label(items_path, index, &items[index])
                    );
                }
                part_rows.push((items[index].item_id, Arc::new(vector)));
            }
            bar.inc(batch.len() as u64);
        }
        work.save_part(part, dim, &part_rows, &model_name)?;
        rows.extend(part_rows);
        written += 1;
        if args.stop_after_parts == Some(written) {
            bail!("stopped after {written} parts as --stop-after-parts asked; run again to resume");
        }
    }
    bar.finish_and_clear();
    counts.embedded = rows.len();
    counts.truncated = mine
        .iter()
        .flat_map(|&p| all_parts[p].iter().flatten())
        .filter(|&&i| truncated[i])
        .count();
    counts.skipped = skipped.len();

    rows.sort_by_key(|(id, _)| *id);
    let embeddings = Embeddings {
        item_ids: rows.iter().map(|(id, _)| *id).collect(),
        dim,
        values: rows.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        model: model_name,
        normalized: true,
    };
    prov.stat("embedded_items", counts.embedded);
    prov.stat("truncated_prompts", counts.truncated);
    prov.stat("skipped_items", counts.skipped);
    prov.stat("batches", counts.batches);
    prov.stat("plan_fingerprint", &fingerprint);
    if let Some((i, n)) = shard {
        prov.stat("shard", format!("{i}/{n}"));
    }
    if args.on_bad_image == OnBadImage::Skip {
        let path = args
            .skipped
            .clone()
            .unwrap_or_else(|| out.with_file_name("embed_skipped.parquet"));
        write_records(&path, &skipped, &prov)?;
    }
    embeddings.write(out, &prov)?;
    work.remove()?;
    let resumed = if resumed > 0 {
        format!(
            ", {resumed} of {} parts resumed from {}",
            mine.len(),
            work_dir.display()
        )
    } else {
        String::new()
    };
    Ok(format!(
        "{} items embedded ({} batches, {} prompts shortened, {} skipped{resumed}) -> {}",
        counts.embedded,
        counts.batches,
        counts.truncated,
        counts.skipped,
        out.display()
    ))
}

enum Bad {
    /// The item's image is missing or unreadable: an error or a skip, as --on-bad-image says.
    Image(String),
    Fatal(anyhow::Error),
}

struct Tokens {
    ids: Vec<u32>,
    dropped: usize,
}

fn tokens_for(embedder: &Embedder, args: &EmbedArgs, item: &Item, grids: &[[usize; 3]]) -> Result<Tokens> {
    let merge = embedder.config.vision.merge_unit();
    let counts: Vec<usize> = grids.iter().map(|g| g.iter().product::<usize>() / merge).collect();
    let mut ids = embedder
        .tokenizer
        .expand_images(&embedder.tokenizer.encode(&item.prompt)?, &counts)?;
    let dropped = match args.truncate {
        Truncate::UserText => embedder.tokenizer.fit_user_text(&mut ids, args.max_len)?,
        Truncate::Error if ids.len() > args.max_len => {
            bail!(
                "the prompt has {} tokens, over --max-len {} (use --truncate user-text)",
                ids.len(),
                args.max_len
            )
        }
        Truncate::Error => 0,
    };
    Ok(Tokens { ids, dropped })
}

fn encode(embedder: &Embedder, args: &EmbedArgs, images: &ImageContext, item: &Item) -> Result<EncodedInput> {
    let patches = images.load(item).map_err(anyhow::Error::msg)?;
    let grids: Vec<[usize; 3]> = patches.iter().map(|p| p.grid_thw).collect();
    let tokens = tokens_for(embedder, args, item, &grids)?;
    Ok(EncodedInput {
        ids: tokens.ids,
        images: patches,
    })
}

fn item_label(items: &Path, row: usize, item: &Item) -> String {
    match &item.image_path {
        Some(path) => format!("{} row {row} (item {}, image {path})", items.display(), item.item_id),
        None => format!("{} row {row} (item {})", items.display(), item.item_id),
    }
}

/// The model's folder name and a hash of its files, so embeddings from different weights never mix.
fn model_name(dir: &Path, prov: &Provenance) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for input in prov.inputs.iter().skip(1) {
        hash.update(input.sha256.as_bytes());
    }
    let digest = hash.finalize();
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("qwen2-vl:{}@{hex}", name.unwrap_or_else(|| "model".into()))
}

fn parse_device(text: &str) -> Result<Device> {
    if text == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(ordinal) = text.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) else {
        bail!("--device {text}: expected cpu or cuda:N");
    };
    Device::new_cuda(ordinal)
        .with_context(|| format!("--device {text} (this binary needs the `cuda` feature and a GPU)"))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}
