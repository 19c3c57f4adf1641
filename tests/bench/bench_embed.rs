//! Embedding throughput of the candle Qwen2-VL (saha-model) on CPU, for `make bench-embed`.
//!
//! Builds `--batch` deterministic inputs of one kind (`text`: a ~60-token user text; `image`: a 448x448
//! PNG plus such a text), in the SaHa reference prompt template, embeds them once to warm up, then times
//! `--iters` batches (median batch time reported): encoding (PNG decode, image preprocessing, tokenisation) apart from the model
//! forward. Prints one JSON line. With `--dump FILE` it also writes the prompts, image paths and the
//! first batch's embeddings, which `tests/oracle/bench_embed_torch.py` reads to run the same inputs in
//! transformers and check that both compute the same embeddings.
//!
//! Usage: saha-bench-embed --model DIR --kind text|image --batch N --iters K [--images DIR] [--dump FILE]
//!        [--components] [--device cpu|cuda:N] [--dtype auto|f32|bf16|f16]
//! `--images DIR` holds img_00.png, img_01.png, ... (written there when missing). `--components` adds
//! (timed apart, after the main loop) the padded forward with every row through the decoder's last layer,
//! alternated batch by batch with the embedding (packed, last rows only); and the vision tower's share.

#[path = "common.rs"]
mod common;
use common::{encode, median, placement, sentence, threads, vm_kib, write_image, Argv, Item, SYSTEM_PROMPT};
use saha_common::rng::Rng;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use saha_model::model::l2_normalize;
use saha_model::{Embedder, EncodedInput};
use serde_json::json;

fn usage() -> ! {
    eprintln!(
        "usage: saha-bench-embed --model DIR --kind text|image --batch N --iters K [--images DIR] [--dump FILE] \
         [--components] [--device cpu|cuda:N] [--dtype auto|f32|bf16|f16]"
    );
    std::process::exit(2)
}

struct Args {
    model: PathBuf,
    kind: String,
    batch: usize,
    iters: usize,
    images: PathBuf,
    dump: Option<PathBuf>,
    components: bool,
    placement: (Device, DType),
}

fn parse_args() -> Args {
    let argv = Argv::from_env(usage);
    let args = Args {
        model: argv.path("--model").unwrap_or_else(|| usage()),
        kind: argv.value("--kind").unwrap_or_else(|| "text".into()),
        batch: argv.number("--batch", 16),
        iters: argv.number("--iters", 5),
        images: argv
            .path("--images")
            .unwrap_or_else(|| PathBuf::from("runs/bench-embed/images")),
        dump: argv.path("--dump"),
        components: argv.flag("--components"),
        placement: placement(&argv, usage),
    };
    if !matches!(args.kind.as_str(), "text" | "image") || args.batch == 0 || args.iters == 0 {
        usage();
    }
    args
}

fn template(user: &str) -> String {
    format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// Item `i`'s user text: words until the text alone is 52..=68 tokens (about 60 on average), so rows
/// of a batch differ in length and the batch is padded.
fn user_text(embedder: &Embedder, i: usize) -> String {
    let mut rng = Rng::new(0x5A4A_0000 + i as u64);
    let target = 52 + (i * 7) % 17;
    sentence(embedder, &mut rng, target)
}

fn main() {
    let args = parse_args();
    saha_model::startup::keep_freed_memory();
    let t_load = Instant::now();
    let (device, dtype) = &args.placement;
    let embedder = Embedder::load(&args.model, *dtype, device)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", args.model.display()));
    let load_s = t_load.elapsed().as_secs_f64();
    // Peak RSS from here on (the weights' load, which maps the file and copies it, peaks higher).
    let rss_after_load = vm_kib("VmRSS").map(|k| k / 1024);
    // Resetting the high-water mark also resets what `time` reports, so keep the load's peak.
    let peak_load = vm_kib("VmHWM").map(|k| k / 1024);
    let _ = std::fs::write("/proc/self/clear_refs", "5");

    if args.kind == "image" {
        std::fs::create_dir_all(&args.images).expect("create the image folder");
    }
    let items: Vec<Item> = (0..args.batch)
        .map(|i| {
            let text = user_text(&embedder, i);
            if args.kind == "image" {
                let path = args.images.join(format!("img_{i:02}.png"));
                if !path.is_file() {
                    write_image(&path, i as u64);
                }
                Item {
                    prompt: template(&format!("<|image_pad|> {text}")),
                    image: Some(path),
                }
            } else {
                Item {
                    prompt: template(&text),
                    image: None,
                }
            }
        })
        .collect();

    // Warm-up batch; its embeddings are the ones dumped for the cross-check.
    let t_warm = Instant::now();
    let inputs = encode(&embedder, &items);
    let first = embedder.embed(&inputs).expect("embed");
    let warmup_s = t_warm.elapsed().as_secs_f64();
    let tokens: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
    let padded_len = *tokens.iter().max().unwrap();
    let mean_tokens = tokens.iter().sum::<usize>() as f64 / tokens.len() as f64;
    let text_tokens: Vec<usize> = items
        .iter()
        .map(|it| {
            let user = it
                .prompt
                .split("<|im_start|>user\n")
                .nth(1)
                .unwrap()
                .split("<|im_end|>")
                .next()
                .unwrap();
            embedder
                .tokenizer
                .encode(user.trim_start_matches("<|image_pad|> "))
                .unwrap()
                .len()
        })
        .collect();

    if let Some(dump) = &args.dump {
        let items_json: Vec<_> = items
            .iter()
            .zip(&tokens)
            .map(|(it, n)| {
                let image = it
                    .image
                    .as_ref()
                    .map(|p| std::fs::canonicalize(p).unwrap().display().to_string());
                json!({"prompt": it.prompt, "image": image, "tokens": n})
            })
            .collect();
        let doc = json!({"kind": args.kind, "batch": args.batch, "items": items_json, "embeddings": first});
        std::fs::write(dump, serde_json::to_string(&doc).unwrap()).expect("write --dump");
    }

    let (mut encode_s, mut forward_s, mut total_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.iters {
        let t0 = Instant::now();
        let inputs = encode(&embedder, &items);
        let t1 = Instant::now();
        // `embed` returns host vectors, so the time includes waiting for the device.
        let out = embedder.embed(&inputs).expect("embed");
        std::hint::black_box(out);
        encode_s.push((t1 - t0).as_secs_f64());
        forward_s.push(t1.elapsed().as_secs_f64());
        total_s.push(t0.elapsed().as_secs_f64());
    }
    let (encode_s, forward_s, total_s) = (median(encode_s), median(forward_s), median(total_s));
    let b = args.batch as f64;
    let mut report = json!({
        "impl": "candle",
        "kind": args.kind,
        "batch": args.batch,
        "iters": args.iters,
        "threads": threads(),
        "device": format!("{:?}", device.location()),
        "dtype": format!("{dtype:?}"),
        "items_per_s": b / total_s,
        "forward_items_per_s": b / forward_s,
        "encode_s_per_batch": encode_s,
        "forward_s_per_batch": forward_s,
        "total_s_per_batch": total_s,
        "mean_tokens": mean_tokens,
        "padded_len": padded_len,
        "mean_text_tokens": text_tokens.iter().sum::<usize>() as f64 / text_tokens.len() as f64,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "peak_rss_load_mib": peak_load,
        "rss_after_load_mib": rss_after_load,
        "peak_rss_inference_mib": vm_kib("VmHWM").map(|k| k / 1024),
    });

    if args.components {
        // The embedding packs the inputs (no padding) and runs the decoder's last layer on each input's last
        // token only; the padded forward with every row's final hidden state shows what that saves.
        // Alternated batch by batch, as this machine's speed drifts from one minute to the next.
        let pad = embedder.tokenizer.pad_token();
        let timed = |f: &dyn Fn() -> Tensor| {
            let t = Instant::now();
            std::hint::black_box(f().to_vec2::<f32>().expect("read back"));
            t.elapsed().as_secs_f64()
        };
        let (mut embedding, mut padded, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.iters {
            let a = timed(&|| embedder.model.embed(&inputs, embedder.padding, pad).expect("embed"));
            let b = timed(&|| {
                let out = embedder.model.forward(&inputs, embedder.padding, pad).expect("forward");
                l2_normalize(&out.pooled().expect("pool")).expect("normalize")
            });
            (embedding.push(a), padded.push(b), ratios.push(a / b));
        }
        report["embedding_s_per_batch"] = json!(median(embedding));
        report["padded_every_row_s_per_batch"] = json!(median(padded));
        report["embedding_over_padded_every_row"] = json!(median(ratios));
    }

    if args.components && args.kind == "image" {
        // The vision tower alone on the same batch's patches (as Qwen2Vl::forward concatenates them).
        let vision = embedder.model.vision();
        let grids: Vec<[usize; 3]> = inputs.iter().flat_map(|i| &i.images).map(|p| p.grid_thw).collect();
        let values: Vec<f32> = inputs
            .iter()
            .flat_map(|i| &i.images)
            .flat_map(|p| p.values.iter().copied())
            .collect();
        let rows: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let patches = Tensor::from_vec(values, (rows, values_len(&inputs) / rows), device).unwrap();
        let times = (0..args.iters)
            .map(|_| {
                let t = Instant::now();
                let out = vision.forward(&patches, &grids).expect("vision");
                // One value read back waits for the device.
                let first = out
                    .flatten_all()
                    .and_then(|t| t.get(0))
                    .and_then(|t| t.to_dtype(DType::F32));
                std::hint::black_box(first.and_then(|t| t.to_scalar::<f32>()).expect("read back"));
                t.elapsed().as_secs_f64()
            })
            .collect();
        report["vision_s_per_batch"] = json!(median(times));
    }
    println!("{report}");
}

fn values_len(inputs: &[EncodedInput]) -> usize {
    inputs.iter().flat_map(|i| &i.images).map(|p| p.values.len()).sum()
}
