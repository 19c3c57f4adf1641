//! The training run: open the inputs, set up the trained weights and the optimiser (fresh or from a
//! checkpoint), train step by step, write the result.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Var};
use rayon::prelude::*;
use saha_common::flags::Truncate;
use saha_common::lock::FolderLock;
use saha_common::progress;
use saha_model::adapter::AdapterKind;
use saha_model::image::ResolutionPolicy;
use saha_model::peft::{self, AdapterConfig};
use saha_model::{Embedder, EncodedInput, InputRules, Padding, Snapshot};
use saha_schemas::{Provenance, TrainLogRow};

use crate::args::{AdapterArg, Args};
use crate::checkpoint::{self, TrainerState};
use crate::data::{self, step_clusters, TrainData};
use crate::loss::{duplicate_targets, LossConfig};
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::schedule::linear_lr;
use crate::step::{grad_cache, plain, StepInputs};
use crate::timings::StepTime;

pub const STAGE: &str = "saha-train";

pub struct Summary {
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
    pub adapter_dir: PathBuf,
    /// Pairs left out before training because saha-embed skipped their query or positive image.
    pub left_out_pairs: u64,
}

pub fn run(args: &Args) -> Result<Summary> {
    // One process per output folder, held until the run ends (the lock goes with the process).
    let lock = FolderLock::acquire(&args.out_dir, &args.out_dir).map_err(anyhow::Error::msg)?;
    let result = locked_run(args);
    if result.is_err() {
        lock.discard_if_alone();
    }
    result
}

fn locked_run(args: &Args) -> Result<Summary> {
    let earlier = checkpoint::list(&args.out_dir)?;
    if !args.resume && !args.overwrite && !earlier.is_empty() {
        bail!(
            "{} holds checkpoints of an earlier run ({}); pass --resume to continue it, or --overwrite to delete them and start over",
            args.out_dir.display(),
            earlier
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let opened = open(args)?;
    let mut trainer = Trainer::prepare(args, opened)?;
    trainer.train(args)?;
    trainer.finish(args)
}

/// The run's data, base model and provenance, checked against the arguments.
struct Opened {
    model_dir: PathBuf,
    data: TrainData,
    embedder: Embedder,
    rules: InputRules,
    prov: Provenance,
}

fn open(args: &Args) -> Result<Opened> {
    let model_dir = args.model.dir().context("--model is required")?;
    let (device, dtype) = saha_model::compute::placement(&args.model)?;
    let resolution: ResolutionPolicy = args
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
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    prov.param("args", args);
    prov.input(&args.clusters)?;
    prov.input(&args.items)?;
    if data.left_out_pairs > 0 {
        prov.stat(saha_schemas::provenance::LEFT_OUT_PAIRS, data.left_out_pairs);
    }
    let embedder =
        Embedder::load(model_dir, dtype, &device).with_context(|| format!("loading {}", model_dir.display()))?;
    let width = embedder.config.text.hidden_size;
    if !args.full && args.rank > width {
        bail!(
            "--rank {} is larger than the model's hidden size {width}: an adapter update cannot have a higher rank",
            args.rank
        );
    }
    let backbone = embedder.config.arch.backbone();
    saha_schemas::provenance::check_backbone(&args.items, data.items_provenance.as_ref(), backbone, model_dir)
        .map_err(anyhow::Error::msg)?;
    for file in embedder.snapshot.content_files() {
        prov.input(&file)?;
    }
    let rules = InputRules {
        image_root: args.image_root.clone(),
        max_image_pixels: args.image_limits.max_image_pixels,
        resolution,
        max_len: args.max_len,
        truncate: Truncate::UserText,
    };
    Ok(Opened {
        model_dir: model_dir.to_path_buf(),
        data,
        embedder,
        rules,
        prov,
    })
}

/// One step's (query, target) pairs and their model inputs.
#[derive(Default)]
struct StepBatch {
    pairs: Vec<(u32, u32)>,
    queries: Vec<EncodedInput>,
    targets: Vec<EncodedInput>,
}

/// Everything a step needs and what the run has done so far.
struct Trainer {
    data: TrainData,
    embedder: Embedder,
    rules: InputRules,
    prov: Provenance,
    fingerprint: String,
    adapter: AdapterConfig,
    base_snapshot: Snapshot,
    base_name: String,
    /// Every weight as a variable, by original name (`--full` only): the f32 master copies the optimiser
    /// updates and checkpoints save.
    full_vars: Vec<(String, Var)>,
    /// The variables the model computes with, one per optimiser variable: the same variables, except for
    /// `--full` in a 16-bit dtype, where they are copies of the f32 masters, refreshed after each update.
    model_vars: Vec<Var>,
    names: Vec<String>,
    optimizer: AdamW,
    start: usize,
    log: Vec<TrainLogRow>,
    timings: Vec<StepTime>,
    last_checkpoint: Option<PathBuf>,
}

impl Trainer {
    /// Attaches a new adapter, or restores the adapter (or the full weights) and the optimiser
    /// moments of the latest checkpoint under `--resume`.
    fn prepare(args: &Args, opened: Opened) -> Result<Self> {
        let Opened {
            model_dir,
            data,
            mut embedder,
            rules,
            prov,
        } = opened;
        let fingerprint = prov.fingerprint();
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
            Some(checkpoint::restore(
                &args.out_dir,
                &fingerprint,
                embedder.model.device(),
            )?)
        } else {
            // --overwrite (checked in `run`): checkpoints of an earlier run would be mistaken for this one's.
            for old in checkpoint::list(&args.out_dir)? {
                std::fs::remove_dir_all(&old).with_context(|| format!("removing the earlier {}", old.display()))?;
            }
            None
        };
        let base_snapshot = embedder.snapshot.clone();
        let mut full_vars = Vec::new();
        let mut model_vars = Vec::new();
        if args.full {
            // Full training loads the weights as variables, from the checkpoint when resuming.
            let source = restored
                .as_ref()
                .map_or(model_dir.as_path(), |(dir, _, _)| dir.as_path());
            let (device, dtype) = (embedder.model.device().clone(), embedder.model.dtype());
            let load = |dtype| {
                Embedder::load_trainable(source, dtype, &device)
                    .with_context(|| format!("loading {} for full training", source.display()))
            };
            let (trainable, vars) = load(dtype)?;
            embedder = trainable;
            if dtype == DType::F32 {
                full_vars = vars;
            } else {
                // Mixed precision as PyTorch's AMP does it: the optimiser updates f32 masters, the model
                // computes with their 16-bit copies. The masters come from the files, not from the copies.
                let (_, masters) = load(DType::F32)?;
                model_vars = vars.into_iter().map(|(_, v)| v).collect();
                full_vars = masters;
            }
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
        if model_vars.is_empty() {
            model_vars = named.iter().map(|(_, v)| v.clone()).collect();
        }
        let mut optimizer = AdamW::new(
            named.into_iter().map(|(_, v)| v).collect(),
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
        let (log, timings) = if args.resume {
            (
                crate::log::read_until(&args.out_dir, start)?,
                crate::timings::read_until(&args.out_dir, start)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Trainer {
            data,
            embedder,
            rules,
            prov,
            fingerprint,
            adapter,
            base_snapshot,
            base_name: model_dir.display().to_string(),
            full_vars,
            model_vars,
            names,
            optimizer,
            start,
            log,
            timings,
            last_checkpoint: checkpoint::list(&args.out_dir)?.pop(),
        })
    }

    fn trained(&self, full: bool) -> checkpoint::Trained<'_> {
        if full {
            checkpoint::Trained::Full {
                base: &self.base_snapshot,
                vars: &self.full_vars,
            }
        } else {
            checkpoint::Trained::Adapter {
                config: &self.adapter,
                base_model: &self.base_name,
            }
        }
    }

    fn train(&mut self, args: &Args) -> Result<()> {
        let bar = progress::bar((args.max_steps - self.start) as u64, "train");
        let mut batch = if self.start < args.max_steps {
            self.batch(args, self.start)?
        } else {
            StepBatch::default()
        };
        for step in self.start..args.max_steps {
            let (loss, next) = self.step(args, step, batch)?;
            batch = next;
            bar.set_message(format!("loss {loss:.4}"));
            bar.inc(1);
            let done = step + 1;
            if done % args.save_steps == 0 || done == args.max_steps {
                self.save_checkpoint(args, done)?;
            }
            if args.stop_after_steps == Some(done - self.start) {
                bail!(
                    "stopped after {} steps as --stop-after-steps asked; rerun with --resume",
                    done - self.start
                );
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Step `step`'s pairs (its clusters, flattened) and their model inputs.
    fn batch(&self, args: &Args, step: usize) -> Result<StepBatch> {
        let chosen = step_clusters(self.data.clusters.len(), args.clusters_per_step, args.seed, step);
        let pairs: Vec<(u32, u32)> = chosen
            .iter()
            .flat_map(|&c| self.data.clusters[c].iter().copied())
            .collect();
        let queries = self.encode_all(pairs.iter().map(|p| p.0))?;
        let targets = self.encode_all(pairs.iter().map(|p| p.1))?;
        Ok(StepBatch {
            pairs,
            queries,
            targets,
        })
    }

    /// One optimiser step on `batch`; logs it and returns its loss and the next step's batch, which is
    /// read, decoded and tokenised on another thread while this step computes (an empty batch after the
    /// last step).
    fn step(&mut self, args: &Args, step: usize, batch: StepBatch) -> Result<(f32, StepBatch)> {
        let began = Instant::now();
        let StepBatch {
            pairs,
            queries,
            targets,
        } = batch;
        let same = args.mask_duplicate_targets.then(|| {
            duplicate_targets(
                &pairs
                    .iter()
                    .map(|p| {
                        let t = &self.data.items[&p.1];
                        (t.prompt.clone(), t.image_path.clone())
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let inputs = StepInputs {
            queries: &queries,
            targets: &targets,
            padding: Padding::Right,
            pad_token: self.embedder.tokenizer.pad_token(),
            loss: LossConfig {
                temperature: args.temperature,
                symmetric: args.symmetric,
            },
            same_target: same.as_deref(),
            seed: args.seed.wrapping_mul(1_000_003).wrapping_add(step as u64 * 1024),
        };
        let this = &*self;
        let (result, next) = std::thread::scope(|scope| {
            let next = scope.spawn(|| {
                if step + 1 < args.max_steps {
                    this.batch(args, step + 1)
                } else {
                    Ok(StepBatch::default())
                }
            });
            let result = if args.chunk == 0 {
                plain(&this.embedder.model, &this.model_vars, &inputs)
            } else {
                grad_cache(&this.embedder.model, &this.model_vars, &inputs, args.chunk)
            };
            (result, next.join().expect("the prefetching thread does not panic"))
        });
        let (mut result, next) = (result?, next?);
        if !result.loss.is_finite() {
            let kept = self
                .last_checkpoint
                .as_ref()
                .map_or("none was written yet".into(), |p| p.display().to_string());
            bail!(
                "the loss is {} at step {}; stopped. The last good checkpoint: {kept}",
                result.loss,
                step + 1
            );
        }
        // Gradients of 16-bit copies are applied to their f32 masters in f32.
        for g in result.grads.iter_mut().flatten() {
            *g = g.to_dtype(DType::F32)?;
        }
        let grad_norm = clip_grad_norm(&mut result.grads, args.max_grad_norm)?;
        let lr = linear_lr(args.lr, step, args.warmup_steps, args.max_steps);
        self.optimizer.step(&result.grads, lr)?;
        for (copy, master) in self.model_vars.iter().zip(&self.optimizer.vars) {
            if copy.dtype() != master.dtype() {
                copy.set(&master.to_dtype(copy.dtype())?)?;
            }
        }
        let seconds = began.elapsed().as_secs_f64();
        self.log.push(TrainLogRow {
            step: (step + 1) as u32,
            loss: result.loss,
            lr,
            grad_norm,
            pairs: pairs.len() as u32,
        });
        self.timings.push(StepTime {
            step: (step + 1) as u32,
            seconds,
            pairs_per_s: pairs.len() as f64 / seconds.max(1e-9),
        });
        Ok((result.loss, next))
    }

    /// The model inputs of these items, in order.
    fn encode_all(&self, ids: impl Iterator<Item = u32>) -> Result<Vec<EncodedInput>> {
        let encoder = self.embedder.item_encoder(self.rules.clone());
        let ids: Vec<u32> = ids.collect();
        ids.par_iter()
            .map(|id| {
                let item = &self.data.items[id];
                encoder
                    .encode(&item.prompt, item.image_path.as_deref())
                    .map(|(input, _)| input)
                    .with_context(|| format!("item {}", item.item_id))
            })
            // In order first, so that the first bad item is the one reported.
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    fn save_checkpoint(&mut self, args: &Args, done: usize) -> Result<()> {
        let state = TrainerState {
            step: done,
            fingerprint: self.fingerprint.clone(),
        };
        // The log first: whenever a checkpoint is in place, the log holds its steps (a resumed run keeps
        // the rows up to its checkpoint), even when the process is killed between the two writes.
        crate::log::write(&args.out_dir, &self.log, &self.prov)?;
        crate::timings::write(&args.out_dir, &self.timings)?;
        let saved = checkpoint::save(
            &args.out_dir,
            &self.embedder.model,
            &self.trained(args.full),
            &self.optimizer,
            &self.names,
            &state,
        )?;
        self.last_checkpoint = Some(saved);
        Ok(())
    }

    /// Writes the trained adapter (or model) next to the checkpoints, atomically.
    fn finish(self, args: &Args) -> Result<Summary> {
        let adapter_dir = args.out_dir.join(if args.full { "model" } else { "adapter" });
        let staging = args.out_dir.join(".result.tmp");
        let _ = std::fs::remove_dir_all(&staging);
        checkpoint::write_trained(&staging, &self.embedder.model, &self.trained(args.full))?;
        let _ = std::fs::remove_dir_all(&adapter_dir);
        std::fs::rename(&staging, &adapter_dir)?;
        Ok(Summary {
            steps: args.max_steps,
            first_loss: self.log.first().map_or(f32::NAN, |r| r.loss),
            last_loss: self.log.last().map_or(f32::NAN, |r| r.loss),
            adapter_dir,
            left_out_pairs: self.data.left_out_pairs,
        })
    }
}
