//! The training loop.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use rayon::prelude::*;
use saha_model::adapter::AdapterKind;
use saha_model::image::{PilImage, ResolutionPolicy};
use saha_model::peft::{self, AdapterConfig};
use saha_model::{Embedder, EncodedInput, Padding};
use saha_schemas::{progress, Item, Provenance, TrainLogRow};
use sha2::{Digest, Sha256};

use crate::args::{AdapterArg, Args};
use crate::checkpoint::{self, TrainerState};
use crate::data::{self, step_clusters};
use crate::loss::{duplicate_targets, LossConfig};
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::schedule::linear_lr;
use crate::step::{grad_cache, plain, StepInputs};

pub const STAGE: &str = "saha-train";

pub struct Summary {
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
    pub adapter_dir: std::path::PathBuf,
}

pub fn run(args: &Args) -> Result<Summary> {
    if args.clusters_per_step == 0 || args.max_steps == 0 {
        bail!("--clusters-per-step and --max-steps must be at least 1");
    }
    let policy: ResolutionPolicy = args
        .resolution
        .parse()
        .map_err(|e| anyhow::anyhow!("--resolution: {e}"))?;
    let data = data::load(&args.clusters, &args.items)?;
    if args.clusters_per_step > data.clusters.len() {
        bail!(
            "--clusters-per-step {} is larger than the {} clusters in {}",
            args.clusters_per_step,
            data.clusters.len(),
            args.clusters.display()
        );
    }
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    prov.input(&args.clusters)?;
    prov.input(&args.items)?;
    let mut embedder = Embedder::load(&args.model, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    for file in embedder.snapshot.content_files() {
        prov.input(&file)?;
    }
    let fingerprint = fingerprint(&prov);
    let adapter = AdapterConfig {
        kind: match args.adapter {
            AdapterArg::Lora => AdapterKind::Lora,
            AdapterArg::Dora => AdapterKind::Dora,
        },
        rank: args.rank,
        alpha: args.alpha,
        dropout: args.dropout,
        targets: args.targets.clone(),
    };
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;

    let restored = if args.resume {
        Some(checkpoint::restore(&args.out_dir, &fingerprint)?)
    } else {
        None
    };
    if restored.is_none() {
        // A fresh run owns its folder: checkpoints of an earlier run there would be mistaken for its own.
        for old in checkpoint::list(&args.out_dir)? {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing the earlier {}", old.display()))?;
        }
    }
    let base_snapshot = embedder.snapshot.clone();
    let mut full_vars = Vec::new();
    if args.full {
        // Full training loads the weights as variables, from the checkpoint when resuming.
        let source = restored
            .as_ref()
            .map_or(args.model.as_path(), |(dir, _, _)| dir.as_path());
        let (trainable, vars) = Embedder::load_trainable(source, DType::F32, &Device::Cpu)
            .with_context(|| format!("loading {} for full training", source.display()))?;
        embedder = trainable;
        full_vars = vars;
    } else if let Some((dir, _, _)) = &restored {
        peft::load(dir, &mut embedder.model)?;
    } else {
        peft::attach_new(&mut embedder.model, &adapter, args.seed)?;
    }
    let start = restored.as_ref().map_or(0, |(_, state, _)| state.step);
    let named = if args.full {
        full_vars.clone()
    } else {
        peft::named_vars(&embedder.model)
    };
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let vars = named.iter().map(|(_, v)| v.clone()).collect();
    let mut optimizer = AdamW::new(
        vars,
        AdamWConfig {
            weight_decay: args.weight_decay,
            ..AdamWConfig::default()
        },
    )?;
    if let Some((_, _, moments)) = &restored {
        for (i, n) in names.iter().enumerate() {
            let get = |k: String| {
                moments
                    .get(&k)
                    .cloned()
                    .with_context(|| format!("checkpoint lacks optimiser state {k}"))
            };
            optimizer.first[i] = get(format!("first.{n}"))?;
            optimizer.second[i] = get(format!("second.{n}"))?;
        }
        optimizer.step = start;
    }
    let base_name = args.model.display().to_string();
    let trained = if args.full {
        checkpoint::Trained::Full {
            base: &base_snapshot,
            vars: &full_vars,
        }
    } else {
        checkpoint::Trained::Adapter {
            config: &adapter,
            base_model: &base_name,
        }
    };
    let mut log = if args.resume {
        crate::log::read_until(&args.out_dir, start)?
    } else {
        Vec::new()
    };

    let bar = progress::bar((args.max_steps - start) as u64, "train");
    let mut last_checkpoint = checkpoint::list(&args.out_dir)?.pop();
    let loss_cfg = LossConfig {
        temperature: args.temperature,
        symmetric: args.symmetric,
    };
    for step in start..args.max_steps {
        let began = Instant::now();
        let chosen = step_clusters(data.clusters.len(), args.clusters_per_step, args.seed, step);
        let pairs: Vec<(u32, u32)> = chosen.iter().flat_map(|&c| data.clusters[c].iter().copied()).collect();
        let encode_side = |pick: fn(&(u32, u32)) -> u32| -> Result<Vec<EncodedInput>> {
            pairs
                .par_iter()
                .map(|p| encode(&embedder, args, policy, &data.items[&pick(p)]))
                .collect()
        };
        let queries = encode_side(|p| p.0)?;
        let targets = encode_side(|p| p.1)?;
        let same = args.mask_duplicate_targets.then(|| {
            duplicate_targets(
                &pairs
                    .iter()
                    .map(|p| {
                        let t = &data.items[&p.1];
                        (t.prompt.clone(), t.image_path.clone())
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let inputs = StepInputs {
            queries: &queries,
            targets: &targets,
            padding: Padding::Right,
            pad_token: embedder.tokenizer.pad_token(),
            loss: loss_cfg,
            same_target: same.as_deref(),
            seed: args.seed.wrapping_mul(1_000_003).wrapping_add(step as u64 * 1024),
        };
        let mut result = if args.chunk == 0 {
            plain(&embedder.model, &optimizer.vars, &inputs)?
        } else {
            grad_cache(&embedder.model, &optimizer.vars, &inputs, args.chunk)?
        };
        if !result.loss.is_finite() {
            let kept = last_checkpoint
                .as_ref()
                .map_or("none was written yet".into(), |p| p.display().to_string());
            bail!(
                "the loss is {} at step {}; stopped. The last good checkpoint: {kept}",
                result.loss,
                step + 1
            );
        }
        let grad_norm = clip_grad_norm(&mut result.grads, args.max_grad_norm)?;
        let lr = linear_lr(args.lr, step, args.warmup_steps, args.max_steps);
        optimizer.step(&result.grads, lr)?;
        let seconds = began.elapsed().as_secs_f64();
        log.push(TrainLogRow {
            step: (step + 1) as u32,
            loss: result.loss,
            lr,
            grad_norm,
            pairs: pairs.len() as u32,
            pairs_per_s: pairs.len() as f64 / seconds.max(1e-9),
            seconds,
        });
        bar.set_message(format!("loss {:.4}", result.loss));
        bar.inc(1);
        let done = step + 1;
        if done % args.save_steps.max(1) == 0 || done == args.max_steps {
            let state = TrainerState {
                step: done,
                fingerprint: fingerprint.clone(),
            };
            last_checkpoint = Some(checkpoint::save(
                &args.out_dir,
                &embedder.model,
                &trained,
                &optimizer,
                &names,
                &state,
            )?);
            crate::log::write(&args.out_dir, &log, &prov)?;
        }
        if args.stop_after_steps == Some(done - start) {
            bail!(
                "stopped after {} steps as --stop-after-steps asked; rerun with --resume",
                done - start
            );
        }
    }
    bar.finish_and_clear();
    let adapter_dir = args.out_dir.join(if args.full { "model" } else { "adapter" });
    let staging = args.out_dir.join(".result.tmp");
    let _ = std::fs::remove_dir_all(&staging);
    checkpoint::write_trained(&staging, &embedder.model, &trained)?;
    let _ = std::fs::remove_dir_all(&adapter_dir);
    std::fs::rename(&staging, &adapter_dir)?;
    Ok(Summary {
        steps: args.max_steps,
        first_loss: log.first().map_or(f32::NAN, |r| r.loss),
        last_loss: log.last().map_or(f32::NAN, |r| r.loss),
        adapter_dir,
    })
}

fn encode(embedder: &Embedder, args: &Args, policy: ResolutionPolicy, item: &Item) -> Result<EncodedInput> {
    let images = match &item.image_path {
        None => Vec::new(),
        Some(relative) => {
            let root = args.image_root.as_deref().unwrap_or(Path::new("."));
            let path = root.join(relative);
            let image = PilImage::open(&path).with_context(|| format!("item {}: {}", item.item_id, path.display()))?;
            vec![policy
                .apply(&image)
                .with_context(|| format!("item {}: {}", item.item_id, path.display()))?]
        }
    };
    let mut input = embedder
        .encode(&item.prompt, &images)
        .with_context(|| format!("item {}", item.item_id))?;
    embedder
        .tokenizer
        .fit_user_text(&mut input.ids, args.max_len)
        .with_context(|| format!("item {}", item.item_id))?;
    Ok(input)
}

fn fingerprint(prov: &Provenance) -> String {
    let mut hash = Sha256::new();
    hash.update(serde_json::to_string(&prov.params).expect("serialisable"));
    for input in &prov.inputs {
        hash.update(input.sha256.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
