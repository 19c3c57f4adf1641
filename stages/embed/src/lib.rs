//! `saha-embed`: items.parquet -> embeddings.parquet with a Qwen2-VL snapshot.
//!
//! The run has four phases: open the inputs (items, model, adapter), plan (every item's token count,
//! from image headers alone, packed into batches and resumable parts), compute (part by part, each
//! saved as it finishes), and write the embeddings with their provenance.

mod args;
mod merge;
mod plan;
mod work;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use saha_common::lock::FolderLock;
use saha_common::progress;
use saha_model::image::ResolutionPolicy;
use saha_model::{BadImage, Embedder, EncodeError, EncodedInput, InputRules, ItemEncoder};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::provenance::{check_backbone, SKIPPED_ITEM_IDS, SKIPPED_REASONS};
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{Item, Provenance, SkippedRow};

pub use args::{Cli, Command, EmbedArgs, MergeArgs, OnBadImage, PaddingArg};
use plan::Planned;
use work::{Skip, WorkDir};

pub const STAGE: &str = "saha-embed";

pub fn run(cli: &Cli) -> Result<String> {
    match &cli.command {
        Some(Command::Merge(merge)) => merge::run(merge),
        None => embed(&cli.embed),
    }
}

fn embed(args: &EmbedArgs) -> Result<String> {
    let out = args.out.as_deref().context("--out is required")?;
    let shard = args.shard.as_deref().map(args::parse_shard).transpose()?;
    let work_dir = args.work_dir.clone().unwrap_or_else(|| sibling(out, ".work"));
    // One process per output: a second saha-embed on the same --out (or --work-dir) stops here.
    let lock = FolderLock::acquire(&work_dir, out).map_err(anyhow::Error::msg)?;
    let result = (|| {
        let inputs = open(args)?;
        let plan = plan(args, &inputs, shard, work_dir.clone())?;
        let rows = compute(args, &inputs, &plan)?;
        write(args, inputs, plan, rows, out)
    })();
    if result.is_err() {
        work::discard_if_unused(&work_dir, lock.path());
    }
    result
}

/// The items, the loaded model and the provenance that records both.
struct Inputs {
    items_path: PathBuf,
    items: Vec<Item>,
    embedder: Embedder,
    rules: InputRules,
    model_name: String,
    prov: Provenance,
}

impl Inputs {
    fn encoder(&self) -> ItemEncoder<'_> {
        self.embedder.item_encoder(self.rules.clone())
    }

    /// An item with a bad image: an error naming the file and the row, or (with --on-bad-image skip)
    /// a skip to record.
    fn bad_image(&self, args: &EmbedArgs, row: usize, bad: BadImage) -> Result<Skip> {
        match args.on_bad_image {
            OnBadImage::Error => bail!("{}: {}", self.label(row), bad.message),
            OnBadImage::Skip => Ok(Skip {
                row,
                kind: bad.kind.to_string(),
                reason: bad.message,
            }),
        }
    }

    fn label(&self, row: usize) -> String {
        let item = &self.items[row];
        let items = self.items_path.display();
        match &item.image_path {
            Some(path) => format!("{items} row {row} (item {}, image {path})", item.item_id),
            None => format!("{items} row {row} (item {})", item.item_id),
        }
    }
}

fn open(args: &EmbedArgs) -> Result<Inputs> {
    let items_path = args.items.clone().context("--items is required")?;
    let model_dir = args.model.dir().context("--model is required")?;
    let (device, dtype) = saha_model::compute::placement(&args.model)?;
    let resolution = args
        .resolution
        .parse::<ResolutionPolicy>()
        .map_err(|e| anyhow::anyhow!("--resolution {}: {e}", args.resolution))?;

    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    prov.param("dtype", format!("{dtype:?}").to_lowercase());
    let (items, items_provenance): (Vec<Item>, _) = read_records(&items_path)?;
    if items.is_empty() {
        bail!("{}: no items to embed", items_path.display());
    }
    prov.input(&items_path)?;
    let mut embedder =
        Embedder::load(model_dir, dtype, &device).with_context(|| format!("loading {}", model_dir.display()))?;
    let backbone = embedder.config.arch.backbone();
    check_backbone(&items_path, items_provenance.as_ref(), backbone, model_dir).map_err(anyhow::Error::msg)?;
    embedder.padding = args.padding.padding();
    prov.param("padding", format!("{:?}", embedder.padding).to_lowercase());
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
    let model_name = model_name(backbone, model_dir, &prov);
    let rules = InputRules {
        image_root: args.image_root.clone(),
        max_image_pixels: args.image_limits.max_image_pixels,
        resolution,
        max_len: args.max_len,
        truncate: args.truncate,
    };
    Ok(Inputs {
        items_path,
        items,
        embedder,
        rules,
        model_name,
        prov,
    })
}

/// Which items are embedded, in which batches and parts, and which this shard computes.
struct Plan {
    parts: Vec<Vec<Vec<usize>>>,
    mine: Vec<usize>,
    truncated: Vec<bool>,
    /// Items whose image was found bad when planning (header, size, truncation).
    skipped: Vec<Skip>,
    fingerprint: String,
    work_dir: PathBuf,
}

impl Plan {
    fn my_items(&self) -> impl Iterator<Item = usize> + '_ {
        self.mine.iter().flat_map(|&p| self.parts[p].iter().flatten().copied())
    }
}

fn plan(args: &EmbedArgs, inputs: &Inputs, shard: Option<(usize, usize)>, work_dir: PathBuf) -> Result<Plan> {
    let encoder = inputs.encoder();
    let bar = progress::bar(inputs.items.len() as u64, "plan");
    let planned: Vec<Result<saha_model::Tokens, EncodeError>> = inputs
        .items
        .par_iter()
        .map(|item| {
            let tokens = encoder.tokens(&item.prompt, item.image_path.as_deref());
            bar.inc(1);
            tokens
        })
        .collect();
    bar.finish_and_clear();
    let mut keep = Vec::with_capacity(inputs.items.len());
    let mut truncated = vec![false; inputs.items.len()];
    let mut skipped = Vec::new();
    for (index, result) in planned.into_iter().enumerate() {
        match result {
            Ok(tokens) => {
                truncated[index] = tokens.dropped > 0;
                keep.push(Planned {
                    item: index,
                    len: tokens.ids.len(),
                });
            }
            Err(EncodeError::Other(e)) => return Err(anyhow::Error::from(e).context(inputs.label(index))),
            Err(EncodeError::Image(bad)) => skipped.push(inputs.bad_image(args, index, bad)?),
        }
    }
    let parts = plan::parts(plan::batches(&keep, args.batch_tokens, args.max_batch), args.part_items);
    let mine = match shard {
        None => (0..parts.len()).collect(),
        Some((i, n)) => (0..parts.len()).filter(|p| p % n == i - 1).collect(),
    };
    Ok(Plan {
        parts,
        mine,
        truncated,
        skipped,
        fingerprint: inputs.prov.fingerprint(),
        work_dir,
    })
}

/// What the compute phase produced: (item id, vector) rows, the items whose image failed to decode or
/// preprocess (skipped), and how the parts were come by.
struct Computed {
    rows: Vec<(u32, Arc<Vec<f32>>)>,
    skipped: Vec<Skip>,
    batches: usize,
    resumed: usize,
    work: WorkDir,
}

fn compute(args: &EmbedArgs, inputs: &Inputs, plan: &Plan) -> Result<Computed> {
    let work = WorkDir::open(&plan.work_dir, &plan.fingerprint, args.shard.as_deref())?;
    let encoder = inputs.encoder();
    let total = plan.my_items().count();
    let bar = progress::bar(total as u64, "embed");
    let dim = inputs.embedder.config.text.hidden_size;
    let mut rows: Vec<(u32, Arc<Vec<f32>>)> = Vec::with_capacity(total);
    let mut skipped = Vec::new();
    let (mut batches, mut resumed, mut written) = (0, 0, 0);
    for &part in &plan.mine {
        let part_batches = &plan.parts[part];
        batches += part_batches.len();
        if let Some((done, done_skips)) = work.load_part(part, dim)? {
            resumed += 1;
            bar.inc((done.len() + done_skips.len()) as u64);
            rows.extend(done);
            skipped.extend(done_skips);
            continue;
        }
        let mut part_rows = Vec::new();
        let mut part_skips = Vec::new();
        // A batch's items that encoded, and the skips of those whose image failed (read, decode, size, preprocess).
        let encode = |batch: &[usize]| -> Result<(Vec<usize>, Vec<EncodedInput>, Vec<Skip>)> {
            let results: Vec<Result<EncodedInput, EncodeError>> = batch
                .par_iter()
                .map(|&index| {
                    let item = &inputs.items[index];
                    encoder
                        .encode(&item.prompt, item.image_path.as_deref())
                        .map(|(input, _)| input)
                })
                .collect();
            let (mut kept, mut encoded, mut skips) = (Vec::new(), Vec::new(), Vec::new());
            for (&index, result) in batch.iter().zip(results) {
                match result {
                    Ok(input) => {
                        kept.push(index);
                        encoded.push(input);
                    }
                    Err(EncodeError::Image(bad)) => skips.push(inputs.bad_image(args, index, bad)?),
                    Err(EncodeError::Other(e)) => return Err(anyhow::Error::from(e).context(inputs.label(index))),
                }
            }
            Ok((kept, encoded, skips))
        };
        let mut next = part_batches.first().map(|b| encode(b)).transpose()?;
        for (b, batch) in part_batches.iter().enumerate() {
            let (kept, encoded, skips) = next.take().expect("each batch is encoded before its turn");
            part_skips.extend(skips);
            // The next batch is read, decoded and tokenised while the model embeds this one.
            let (vectors, following) = std::thread::scope(|scope| {
                let following = part_batches.get(b + 1).map(|n| scope.spawn(|| encode(n)));
                let vectors = match encoded.is_empty() {
                    true => Ok(Vec::new()),
                    false => inputs.embedder.embed(&encoded),
                };
                (
                    vectors,
                    following.map(|h| h.join().expect("the encoding thread does not panic")),
                )
            });
            let vectors = vectors?;
            next = following.transpose()?;
            for (&index, vector) in kept.iter().zip(vectors) {
                if vector.iter().any(|v| !v.is_finite()) {
                    bail!("{}: the model produced a non-finite embedding", inputs.label(index));
                }
                if vector.iter().all(|&v| v == 0.0) {
                    bail!(
                        "{}: the model produced an all-zero embedding (its last hidden state is zero), which has no direction to compare",
                        inputs.label(index)
                    );
                }
                part_rows.push((inputs.items[index].item_id, Arc::new(vector)));
            }
            bar.inc(batch.len() as u64);
        }
        work.save_part(part, dim, &part_rows, &part_skips, &inputs.model_name)?;
        rows.extend(part_rows);
        skipped.extend(part_skips);
        written += 1;
        if args.stop_after_parts == Some(written) {
            bail!("stopped after {written} parts as --stop-after-parts asked; run again to resume");
        }
    }
    bar.finish_and_clear();
    Ok(Computed {
        rows,
        skipped,
        batches,
        resumed,
        work,
    })
}

fn write(args: &EmbedArgs, inputs: Inputs, plan: Plan, computed: Computed, out: &Path) -> Result<String> {
    let Computed {
        mut rows,
        skipped: computed_skips,
        batches,
        resumed,
        work,
    } = computed;
    let mut prov = inputs.prov;
    let embedded = rows.len();
    let truncated = plan.my_items().filter(|&i| plan.truncated[i]).count();
    // Skips found when planning concern every shard's plan: shard 1 reports them, so merged shards count each once.
    let plan_skips = match &args.shard {
        Some(shard) if args::parse_shard(shard)?.0 != 1 => Vec::new(),
        _ => plan.skipped,
    };
    let mut skips: Vec<Skip> = plan_skips.into_iter().chain(computed_skips).collect();
    skips.sort_by_key(|s| s.row);
    let skipped = skips.len();
    rows.sort_by_key(|(id, _)| *id);
    let embeddings = Embeddings {
        item_ids: rows.iter().map(|(id, _)| *id).collect(),
        dim: inputs.embedder.config.text.hidden_size,
        values: rows.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        model: inputs.model_name,
        normalized: true,
    };
    prov.stat("embedded_items", embedded);
    prov.stat("truncated_prompts", truncated);
    prov.stat("skipped_items", skipped);
    if skipped > 0 {
        let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &skips {
            *reasons.entry(s.kind.as_str()).or_default() += 1;
        }
        prov.stat(SKIPPED_REASONS, reasons);
        let mut ids: Vec<u32> = skips.iter().map(|s| inputs.items[s.row].item_id).collect();
        ids.sort_unstable();
        prov.stat(SKIPPED_ITEM_IDS, ids);
    }
    prov.stat("batches", batches);
    prov.stat("plan_fingerprint", &plan.fingerprint);
    if let Some(shard) = &args.shard {
        let (i, n) = args::parse_shard(shard)?;
        prov.stat("shard", format!("{i}/{n}"));
    }
    if args.on_bad_image == OnBadImage::Skip {
        let path = args.skipped.clone().unwrap_or_else(|| match &args.shard {
            // Shards may share a folder: each lists its own skips.
            Some(shard) => out.with_file_name(format!("embed_skipped.{}.parquet", shard.replace('/', "-of-"))),
            None => out.with_file_name("embed_skipped.parquet"),
        });
        let rows: Vec<SkippedRow> = skips
            .into_iter()
            .map(|s| SkippedRow {
                source_file: inputs.items_path.display().to_string(),
                source_row: s.row as u32,
                column: "image_path".into(),
                value: inputs.items[s.row].image_path.clone(),
                reason: format!("{}: {}", s.kind, s.reason),
            })
            .collect();
        write_records(&path, &rows, &prov)?;
    }
    embeddings.write(out, &prov)?;
    work.remove()?;
    let resumed = if resumed > 0 {
        format!(
            ", {resumed} of {} parts resumed from {}",
            plan.mine.len(),
            plan.work_dir.display()
        )
    } else {
        String::new()
    };
    Ok(format!(
        "{embedded} items embedded ({batches} batches, {truncated} prompts shortened, {skipped} skipped{resumed}) -> {}",
        out.display()
    ))
}

/// The model's folder name and a hash of its files, so embeddings from different weights never mix.
/// `<backbone>:<folder name>@<hash of the model files>`, e.g. `qwen2-vl:tiny-0@0123456789abcdef`.
fn model_name(backbone: &str, dir: &Path, prov: &Provenance) -> String {
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
    format!("{backbone}:{}@{hex}", name.unwrap_or_else(|| "model".into()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}
