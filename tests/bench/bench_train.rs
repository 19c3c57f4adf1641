//! Contrastive training-step throughput of candle (saha-train) on CPU, for `make bench-train`.
//!
//! Builds one fixed batch of `--pairs` (query, target) pairs in the SaHa reference prompt template: the
//! first half text-only (a ~60-token query with the reference's query suffix, a ~60-token target), the
//! second half with a 448x448 PNG in the query (`<|image_pad|>` + a ~60-token text) and a ~60-token
//! target. The snapshot's image processor resizes the images by its own max_pixels (the tiny config
//! shrinks them to 112x112). It attaches fresh DoRA adapters as the reference recipe does (r 8, alpha 64,
//! dropout 0, on q/k/v/o/down_proj of the language model), saves them in PEFT's format (`--adapter DIR`)
//! so the PyTorch side starts from the same tensors, and then runs full optimisation steps on that batch:
//! forward + backward (GradCache with `--chunk` inputs per chunk, or plain backprop), global gradient
//! clipping at 1.0 and AdamW (lr 5e-5, weight decay 0). One warm-up step, then `--steps` timed steps.
//! The inputs are tokenised and preprocessed once, before the first step; steps time the model only.
//!
//! Prints one JSON line. `--dump FILE` writes the prompts, image paths, token counts and the loss and
//! gradient norm of every step, which `tests/oracle/bench_train_torch.py` reads to run the same steps
//! with PyTorch + PEFT and to check that both compute the same losses.
//!
//! Usage: saha-bench-train --model DIR --mode gradcache|plain [--pairs 16] [--chunk 4] [--steps 3]
//!        [--images DIR] [--adapter DIR] [--dump FILE] [--label NAME] [--device cpu|cuda:N] [--dtype ...]

#[path = "common.rs"]
mod common;
use common::{encode, median, placement, sentence, threads, vm_kib, write_image, Argv, Item, SYSTEM_PROMPT};
use saha_common::rng::Rng;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use saha_model::adapter::{AdapterKind, REFERENCE_TARGETS};
use saha_model::peft::{self, AdapterConfig};
use saha_model::{Embedder, EncodedInput, Padding};
use saha_train::loss::LossConfig;
use saha_train::optim::{clip_grad_norm, AdamW, AdamWConfig};
use saha_train::step::{grad_cache, plain, StepInputs};
use serde_json::json;

/// The README string every SaHa command passes as --Q_prompt and --D_prompt.
const QUERY_SUFFIX_TEXT: &str = "\nRepresent the given text in one word.";
const QUERY_SUFFIX_IMAGE: &str = "\nRepresent the given text/image in one word.";
const TEMPERATURE: f64 = 0.02;
const LR: f64 = 5e-5;
const MAX_GRAD_NORM: f64 = 1.0;
const RANK: usize = 8;
const ALPHA: f64 = 64.0;
const ADAPTER_SEED: u64 = 42;
const STEP_SEED: u64 = 7;

fn usage() -> ! {
    eprintln!(
        "usage: saha-bench-train --model DIR --mode gradcache|plain [--pairs 16] [--chunk 4] [--steps 3] \
         [--images DIR] [--adapter DIR] [--dump FILE] [--label NAME] [--device cpu|cuda:N] [--dtype auto|f32|bf16]"
    );
    std::process::exit(2)
}

struct Args {
    model: PathBuf,
    mode: String,
    pairs: usize,
    chunk: usize,
    steps: usize,
    images: PathBuf,
    adapter: Option<PathBuf>,
    dump: Option<PathBuf>,
    label: String,
    placement: (Device, DType),
}

fn parse_args() -> Args {
    let argv = Argv::from_env(usage);
    let args = Args {
        model: argv.path("--model").unwrap_or_else(|| usage()),
        mode: argv.value("--mode").unwrap_or_else(|| "gradcache".into()),
        pairs: argv.number("--pairs", 16),
        chunk: argv.number("--chunk", 4),
        steps: argv.number("--steps", 3),
        images: argv
            .path("--images")
            .unwrap_or_else(|| PathBuf::from("runs/bench-train/images")),
        adapter: argv.path("--adapter"),
        dump: argv.path("--dump"),
        label: argv.value("--label").unwrap_or_default(),
        placement: placement(&argv, usage),
    };
    if !matches!(args.mode.as_str(), "gradcache" | "plain") || args.pairs < 2 || args.steps == 0 || args.chunk == 0 {
        usage();
    }
    args
}

fn template(user: &str) -> String {
    format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// Text `i` of stream `stream`: words until the text alone is 52..=68 tokens (about 60 on average), so
/// rows of a batch differ in length and every batch is padded.
fn user_text(embedder: &Embedder, stream: u64, i: usize) -> String {
    let mut rng = Rng::new(0x7A41_0000 + (stream << 16) + i as u64);
    let target = 52 + (i * 7 + stream as usize * 5) % 17;
    sentence(embedder, &mut rng, target)
}

fn main() {
    saha_model::startup::elementwise_on_calling_thread();
    let args = parse_args();
    saha_model::startup::keep_freed_memory();
    let t_load = Instant::now();
    let (device, dtype) = &args.placement;
    let mut embedder = Embedder::load(&args.model, *dtype, device)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", args.model.display()));
    let load_s = t_load.elapsed().as_secs_f64();
    let rss_after_load = vm_kib("VmRSS").map(|k| k / 1024);
    // Peak RSS of the steps alone: reset the high-water mark after loading (which also resets what
    // `time` reports, so the load's own peak is kept and reported).
    let peak_load = vm_kib("VmHWM").map(|k| k / 1024);
    let _ = std::fs::write("/proc/self/clear_refs", "5");

    // The batch: pairs [0, n/2) text-only, [n/2, n) with an image in the query.
    let n = args.pairs;
    let with_image = |i: usize| i >= n / 2;
    if (0..n).any(with_image) {
        std::fs::create_dir_all(&args.images).expect("create the image folder");
    }
    let mut queries = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let q = user_text(&embedder, 0, i);
        let t = user_text(&embedder, 1, i);
        if with_image(i) {
            let path = args.images.join(format!("img_{i:02}.png"));
            if !path.is_file() {
                write_image(&path, i as u64);
            }
            queries.push(Item {
                prompt: template(&format!("<|image_pad|> {q}{QUERY_SUFFIX_IMAGE}")),
                image: Some(path),
            });
        } else {
            queries.push(Item {
                prompt: template(&format!("{q}{QUERY_SUFFIX_TEXT}")),
                image: None,
            });
        }
        targets.push(Item {
            prompt: template(&t),
            image: None,
        });
    }
    let t_encode = Instant::now();
    let q_inputs = encode(&embedder, &queries);
    let t_inputs = encode(&embedder, &targets);
    let encode_s = t_encode.elapsed().as_secs_f64();

    let adapter_cfg = AdapterConfig {
        kind: AdapterKind::Dora,
        rank: RANK,
        alpha: ALPHA,
        dropout: 0.0,
        targets: REFERENCE_TARGETS.iter().map(|s| s.to_string()).collect(),
    };
    let adapted = peft::attach_new(&mut embedder.model, &adapter_cfg, ADAPTER_SEED).expect("attach DoRA");
    if let Some(dir) = &args.adapter {
        peft::save(dir, &embedder.model, &adapter_cfg, &args.model.display().to_string()).expect("save the adapter");
    }
    let named = peft::named_vars(&embedder.model);
    let trainable: usize = named.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    let vars = named.iter().map(|(_, v)| v.clone()).collect();
    let mut optimizer = AdamW::new(vars, AdamWConfig::default()).expect("AdamW");

    let inputs = StepInputs {
        queries: &q_inputs,
        targets: &t_inputs,
        padding: Padding::Right,
        pad_token: embedder.tokenizer.pad_token(),
        loss: LossConfig {
            temperature: TEMPERATURE,
            symmetric: false,
        },
        same_target: None,
        seed: STEP_SEED,
    };
    let (mut losses, mut grad_norms, mut step_s, mut cpu_s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..=args.steps {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let mut result = if args.mode == "plain" {
            plain(&embedder.model, &optimizer.vars, &inputs)
        } else {
            grad_cache(&embedder.model, &optimizer.vars, &inputs, args.chunk)
        }
        .expect("training step");
        let norm = clip_grad_norm(&mut result.grads, MAX_GRAD_NORM).expect("clip");
        optimizer.step(&result.grads, LR).expect("AdamW step");
        step_s.push(t0.elapsed().as_secs_f64());
        cpu_s.push(cpu_seconds() - c0);
        losses.push(result.loss);
        grad_norms.push(norm);
    }
    let peak_train = vm_kib("VmHWM").map(|k| k / 1024);
    let warmup_s = step_s.remove(0);
    cpu_s.remove(0);
    let total: f64 = step_s.iter().sum();

    let tokens = |inputs: &[EncodedInput]| inputs.iter().map(|i| i.ids.len()).collect::<Vec<_>>();
    let (q_tokens, t_tokens) = (tokens(&q_inputs), tokens(&t_inputs));
    let image_tokens: usize = q_inputs
        .iter()
        .map(|i| i.ids.iter().filter(|&&t| t == embedder.tokenizer.image_token()).count())
        .sum();
    let n_images = queries.iter().filter(|q| q.image.is_some()).count();
    let report = json!({
        "impl": "candle",
        "label": args.label,
        "mode": args.mode,
        "chunk": if args.mode == "plain" { serde_json::Value::Null } else { json!(args.chunk) },
        "pairs": n,
        "images": n_images,
        "image_tokens_per_image": if n_images > 0 { image_tokens / n_images } else { 0 },
        "mean_query_tokens": q_tokens.iter().sum::<usize>() as f64 / n as f64,
        "mean_target_tokens": t_tokens.iter().sum::<usize>() as f64 / n as f64,
        "adapted_layers": adapted,
        "trainable_params": trainable,
        "threads": threads(),
        "device": format!("{:?}", device.location()),
        "dtype": format!("{dtype:?}"),
        "candle_num_threads_env": std::env::var("CANDLE_NUM_THREADS").ok(),
        "steps": args.steps,
        "steps_per_s": args.steps as f64 / total,
        "steps_per_s_median": 1.0 / median(step_s.clone()),
        "pairs_per_s": (args.steps * n) as f64 / total,
        "mean_step_s": total / args.steps as f64,
        "median_step_s": median(step_s.clone()),
        "step_s": step_s,
        "median_cpu_s": median(cpu_s.clone()),
        "cpu_s": cpu_s,
        "warmup_step_s": warmup_s,
        "losses": losses,
        "grad_norms": grad_norms,
        "encode_s": encode_s,
        "load_s": load_s,
        "peak_rss_load_mib": peak_load,
        "rss_after_load_mib": rss_after_load,
        "peak_rss_train_mib": peak_train,
    });

    if let Some(dump) = &args.dump {
        let side = |items: &[Item], counts: &[usize]| -> Vec<serde_json::Value> {
            items
                .iter()
                .zip(counts)
                .map(|(it, n)| {
                    let image = it
                        .image
                        .as_ref()
                        .map(|p| std::fs::canonicalize(p).unwrap().display().to_string());
                    json!({"prompt": it.prompt, "image": image, "tokens": n})
                })
                .collect()
        };
        let doc = json!({
            "mode": args.mode,
            "chunk": args.chunk,
            "pairs": n,
            "queries": side(&queries, &q_tokens),
            "targets": side(&targets, &t_tokens),
            "temperature": TEMPERATURE,
            "lr": LR,
            "max_grad_norm": MAX_GRAD_NORM,
            "adapter": args.adapter.as_ref().map(|p| std::fs::canonicalize(p).unwrap().display().to_string()),
            "losses": report["losses"],
            "grad_norms": report["grad_norms"],
        });
        std::fs::write(dump, serde_json::to_string(&doc).unwrap()).expect("write --dump");
    }
    println!("{report}");
}

/// CPU time (user + system, all threads) of this process so far, from `/proc/self/stat` (Linux only;
/// clock ticks taken as 100 per second, the Linux default).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(14) + ticks(15)) / 100.0
}
