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
//!        [--components] [--ops]
//! `--images DIR` holds img_00.png, img_01.png, ... (written there when missing). `--components` adds
//! the vision tower's share of the forward time (timed apart, after the main loop). `--ops` then replays
//! one text layer and one vision block op by op with the batch's shapes and prints where the time goes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use saha_model::image::PilImage;
use saha_model::{Embedder, EncodedInput};
use serde_json::json;

/// The README string every SaHa command passes as --Q_prompt and --D_prompt.
const SYSTEM_PROMPT: &str =
    "Given an image, summarize the provided image in one word. Given only text, describe the text in one word.";
const IMAGE_SIDE: u32 = 448;

const WORDS: &[&str] = &[
    "the",
    "a",
    "man",
    "woman",
    "child",
    "dog",
    "cat",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "old",
    "young",
    "boat",
    "harbour",
    "street",
    "market",
    "bicycle",
    "train",
    "station",
    "window",
    "garden",
    "river",
    "bridge",
    "mountain",
    "forest",
    "beach",
    "wave",
    "cloud",
    "morning",
    "evening",
    "quiet",
    "busy",
    "walks",
    "runs",
    "sits",
    "holds",
    "watches",
    "carries",
    "past",
    "along",
    "under",
    "behind",
    "near",
    "with",
    "and",
    "while",
    "two",
    "three",
    "painted",
    "wooden",
    "stone",
    "glass",
    "bright",
    "faded",
    "coat",
    "hat",
    "umbrella",
    "basket",
    "apples",
    "bread",
    "coffee",
    "table",
    "chairs",
    "lamp",
    "light",
    "shadow",
    "crowd",
    "tourists",
    "seagulls",
    "photographs",
    "kitchen",
    "library",
    "museum",
    "painting",
    "sculpture",
    "festival",
    "music",
    "guitar",
    "football",
    "stadium",
    "airport",
    "airplane",
    "tower",
    "clock",
    "rain",
    "snow",
    "sunset",
    "harvest",
    "field",
    "farmer",
    "tractor",
    "horse",
    "sheep",
    "village",
    "church",
    "castle",
    "road",
    "car",
    "truck",
    "bus",
];

fn usage() -> ! {
    eprintln!(
        "usage: saha-bench-embed --model DIR --kind text|image --batch N --iters K [--images DIR] [--dump FILE] \
         [--components] [--ops]"
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
    ops: bool,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<String> {
        argv.iter()
            .position(|a| a == name)
            .map(|i| argv.get(i + 1).cloned().unwrap_or_else(|| usage()))
    };
    let number = |name: &str, default: usize| -> usize {
        value(name).map_or(default, |v| v.parse().unwrap_or_else(|_| usage()))
    };
    let args = Args {
        model: value("--model").map(PathBuf::from).unwrap_or_else(|| usage()),
        kind: value("--kind").unwrap_or_else(|| "text".into()),
        batch: number("--batch", 16),
        iters: number("--iters", 5),
        images: value("--images")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("runs/bench-embed/images")),
        dump: value("--dump").map(PathBuf::from),
        components: argv.iter().any(|a| a == "--components"),
        ops: argv.iter().any(|a| a == "--ops"),
    };
    if !matches!(args.kind.as_str(), "text" | "image") || args.batch == 0 || args.iters == 0 {
        usage();
    }
    args
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn template(user: &str) -> String {
    format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// Item `i`'s user text: words until the text alone is 52..=68 tokens (about 60 on average), so rows
/// of a batch differ in length and the batch is padded.
fn user_text(embedder: &Embedder, i: usize) -> String {
    let mut rng = Rng(0x5A4A_0000 + i as u64);
    let target = 52 + (i * 7) % 17;
    let mut text = String::new();
    loop {
        let word = WORDS[rng.below(WORDS.len())];
        let candidate = if text.is_empty() {
            let mut w = word.to_string();
            w[..1].make_ascii_uppercase();
            w
        } else {
            format!("{text} {word}")
        };
        let n = embedder
            .tokenizer
            .encode(&format!("{candidate}."))
            .expect("tokenise")
            .len();
        if n > target {
            return format!("{text}.");
        }
        text = candidate;
        if n == target {
            return format!("{text}.");
        }
    }
}

/// A deterministic 448x448 RGB image: smooth gradients with a per-image phase plus pixel noise (so PNG
/// decoding does real work, as with photos).
fn write_image(path: &Path, seed: u64) {
    let mut rng = Rng(0x1A6E_0000 + seed);
    let phase = [rng.below(628) as f32 / 100.0, rng.below(628) as f32 / 100.0];
    let side = IMAGE_SIDE as f32 - 1.0;
    let img = image::RgbImage::from_fn(IMAGE_SIDE, IMAGE_SIDE, |x, y| {
        let (u, v) = (x as f32 / side, y as f32 / side);
        let noise = |r: &mut Rng| (r.below(37) as f32) - 18.0;
        let r = 255.0 * u + noise(&mut rng);
        let g = 255.0 * (0.5 + 0.5 * (std::f32::consts::TAU * (u + v) + phase[0]).sin()) + noise(&mut rng);
        let b =
            255.0 * (1.0 - v) * (0.6 + 0.4 * (3.0 * std::f32::consts::PI * u * v + phase[1]).cos()) + noise(&mut rng);
        image::Rgb([r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8))
    });
    img.save(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

struct Item {
    prompt: String,
    image: Option<PathBuf>,
}

fn encode(embedder: &Embedder, items: &[Item]) -> Vec<EncodedInput> {
    items
        .iter()
        .map(|item| {
            let images: Vec<PilImage> = item
                .image
                .iter()
                .map(|p| PilImage::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
                .collect();
            embedder.encode(&item.prompt, &images).expect("encode")
        })
        .collect()
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn main() {
    let args = parse_args();
    let t_load = Instant::now();
    let embedder = Embedder::load(&args.model, DType::F32, &Device::Cpu)
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
        let patches = Tensor::from_vec(values, (rows, values_len(&inputs) / rows), &Device::Cpu).unwrap();
        let times = (0..args.iters)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(vision.forward(&patches, &grids).expect("vision"));
                t.elapsed().as_secs_f64()
            })
            .collect();
        report["vision_s_per_batch"] = json!(median(times));
    }
    println!("{report}");

    if args.ops {
        let images = if args.kind == "image" { args.batch } else { 0 };
        ops::run(&embedder, &args.model, args.batch, padded_len, images, args.iters);
    }
}

fn values_len(inputs: &[EncodedInput]) -> usize {
    inputs.iter().flat_map(|i| &i.images).map(|p| p.values.len()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A `/proc/self/status` field in KiB (Linux only).
fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `--ops`: one text decoder layer and one vision block replayed op by op, as saha-model's text.rs and
/// vision.rs run them, with this batch's shapes and the snapshot's layer-0 weights; prints where the
/// forward time goes (seconds per batch, every layer counted) as a Markdown table. For optimising.
mod ops {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use candle_core::{DType, Device, Tensor, D};
    use saha_model::layers::{apply_rotary, quick_gelu, softmax_f32, LayerNorm, Linear, RmsNorm};
    use saha_model::text::MASKED;
    use saha_model::{Embedder, Snapshot, Weights};

    #[derive(Default)]
    struct Clock {
        total: BTreeMap<&'static str, f64>,
    }

    impl Clock {
        fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
            let t = Instant::now();
            let out = f();
            *self.total.entry(name).or_default() += t.elapsed().as_secs_f64();
            out
        }
    }

    pub fn run(embedder: &Embedder, model: &std::path::Path, batch: usize, len: usize, images: usize, reps: usize) {
        let dev = Device::Cpu;
        let snapshot = Snapshot::open(model).unwrap();
        let w = Weights::open(&snapshot, DType::F32, &dev).unwrap();
        let cfg = &embedder.config;
        let mut rows = Vec::new();

        // Text decoder layer 0, `[batch, len, hidden]`, causal + padding mask.
        let t = &cfg.text;
        let (h, hd, heads, kv) = (t.hidden_size, t.head_dim(), t.num_attention_heads, t.num_key_value_heads);
        let p = "model.layers.0";
        let q_proj = Linear::load(&w, &format!("{p}.self_attn.q_proj"), h, heads * hd, true).unwrap();
        let k_proj = Linear::load(&w, &format!("{p}.self_attn.k_proj"), h, kv * hd, true).unwrap();
        let v_proj = Linear::load(&w, &format!("{p}.self_attn.v_proj"), h, kv * hd, true).unwrap();
        let o_proj = Linear::load(&w, &format!("{p}.self_attn.o_proj"), heads * hd, h, false).unwrap();
        let gate = Linear::load(&w, &format!("{p}.mlp.gate_proj"), h, t.intermediate_size, false).unwrap();
        let up = Linear::load(&w, &format!("{p}.mlp.up_proj"), h, t.intermediate_size, false).unwrap();
        let down = Linear::load(&w, &format!("{p}.mlp.down_proj"), t.intermediate_size, h, false).unwrap();
        let norm = RmsNorm::load(&w, &format!("{p}.input_layernorm"), h, t.rms_norm_eps).unwrap();
        let (b, l) = (batch, len);
        let x = Tensor::randn(0f32, 1.0, (b, l, h), &dev).unwrap();
        let angles = Tensor::arange(0u32, (l * hd) as u32, &dev).unwrap().to_dtype(DType::F32).unwrap();
        let angles = (angles.reshape((1, 1, l, hd)).unwrap() * 1e-3).unwrap().repeat((b, 1, 1, 1)).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let mut mask = vec![MASKED; b * l * l];
        for r in 0..b {
            let real = l - (r * 7) % (l / 8 + 1); // some rows padded
            for q in 0..l {
                for k in 0..=q.min(real - 1) {
                    mask[(r * l + q) * l + k] = 0.0;
                }
            }
        }
        let mask = Tensor::from_vec(mask, (b, 1, l, l), &dev).unwrap();
        let mut c = Clock::default();
        for _ in 0..reps {
            let xn = c.time("text rmsnorm (x2 per layer)", || norm.forward(&x).unwrap());
            let _ = c.time("text rmsnorm (x2 per layer)", || norm.forward(&x).unwrap());
            let split = |c: &mut Clock, t: Tensor, n: usize| {
                c.time("text split heads (transpose+contiguous)", || {
                    t.reshape((b, l, n, hd)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap()
                })
            };
            let q = c.time("text q/k/v proj", || q_proj.forward(&xn).unwrap());
            let k = c.time("text q/k/v proj", || k_proj.forward(&xn).unwrap());
            let v = c.time("text q/k/v proj", || v_proj.forward(&xn).unwrap());
            let (q, k, v) = (split(&mut c, q, heads), split(&mut c, k, kv), split(&mut c, v, kv));
            let q = c.time("text rotary q,k", || apply_rotary(&q, &cos, &sin).unwrap());
            let k = c.time("text rotary q,k", || apply_rotary(&k, &cos, &sin).unwrap());
            let group = heads / kv;
            let q = q.reshape((b, kv, group * l, hd)).unwrap();
            let scores = c.time("text q@kT", || q.matmul(&k.t().unwrap()).unwrap());
            let scores = c.time("text scores / sqrt(d)", || (scores / (hd as f64).sqrt()).unwrap());
            let scores = c.time("text + mask (broadcast_add)", || {
                scores.reshape((b, heads, l, l)).unwrap().to_dtype(DType::F32).unwrap().broadcast_add(&mask).unwrap()
            });
            let probs = c.time("text softmax (masked)", || softmax_f32(&scores, saha_model::layers::Mode::INFERENCE).unwrap());
            let probs = probs.reshape((b, kv, group * l, l)).unwrap();
            let out = c.time("text probs@v", || probs.matmul(&v).unwrap().reshape((b, heads, l, hd)).unwrap());
            let out = c.time("text merge heads (transpose+copy)", || {
                out.transpose(1, 2).unwrap().reshape((b, l, heads * hd)).unwrap()
            });
            let o = c.time("text o proj", || o_proj.forward(&out).unwrap());
            let x2 = c.time("text residual adds (x2)", || (&x + &o).unwrap());
            let _ = c.time("text residual adds (x2)", || (&x2 + &o).unwrap());
            let g = c.time("text mlp gate/up proj", || gate.forward(&xn).unwrap());
            let u = c.time("text mlp gate/up proj", || up.forward(&xn).unwrap());
            let a = c.time("text mlp silu*up", || (g.silu().unwrap() * u).unwrap());
            let _ = c.time("text mlp down proj", || down.forward(&a).unwrap());
        }
        let layers = t.num_hidden_layers as f64;
        rows.extend(c.total.into_iter().map(|(k, v)| (k, v / reps as f64 * layers)));

        // Vision block 0 over `images` images of 1024 patches (448x448), one attention block per image.
        if images > 0 {
            let v = &cfg.vision;
            let (e, vheads) = (v.embed_dim, v.num_heads);
            let vhd = e / vheads;
            let per = 1024;
            let n = images * per;
            let p = "visual.blocks.0";
            let norm1 = LayerNorm::load(&w, &format!("{p}.norm1"), e, 1e-6).unwrap();
            let qkv_proj = Linear::load(&w, &format!("{p}.attn.qkv"), e, 3 * e, true).unwrap();
            let proj = Linear::load(&w, &format!("{p}.attn.proj"), e, e, true).unwrap();
            let fc1 = Linear::load(&w, &format!("{p}.mlp.fc1"), e, v.mlp_dim(), true).unwrap();
            let fc2 = Linear::load(&w, &format!("{p}.mlp.fc2"), v.mlp_dim(), e, true).unwrap();
            let x = Tensor::randn(0f32, 1.0, (n, e), &dev).unwrap();
            let angles = Tensor::arange(0u32, (n * vhd) as u32, &dev).unwrap().to_dtype(DType::F32).unwrap();
            let angles = (angles.reshape((n, 1, vhd)).unwrap() * 1e-4).unwrap();
            let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
            let mut c = Clock::default();
            for _ in 0..reps {
                let xn = c.time("vision layernorm (x2 per block)", || norm1.forward(&x).unwrap());
                let _ = c.time("vision layernorm (x2 per block)", || norm1.forward(&x).unwrap());
                let qkv = c.time("vision qkv proj", || qkv_proj.forward(&xn).unwrap().reshape((n, 3, vheads, vhd)).unwrap());
                let q = c.time("vision rotary q,k (strided input)", || {
                    apply_rotary(&qkv.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(), &cos, &sin).unwrap()
                });
                let k = c.time("vision rotary q,k (strided input)", || {
                    apply_rotary(&qkv.narrow(1, 1, 1).unwrap().squeeze(1).unwrap(), &cos, &sin).unwrap()
                });
                let vv = qkv.narrow(1, 2, 1).unwrap().squeeze(1).unwrap();
                let scale = 1.0 / (vhd as f64).sqrt();
                let mut outs = Vec::new();
                for i in 0..images {
                    let part = |c: &mut Clock, t: &Tensor| {
                        c.time("vision per-image q/k/v transpose+contiguous", || {
                            t.narrow(0, i * per, per).unwrap().transpose(0, 1).unwrap().contiguous().unwrap()
                        })
                    };
                    let (qi, ki, vi) = (part(&mut c, &q), part(&mut c, &k), part(&mut c, &vv));
                    let s = c.time("vision q@kT", || qi.matmul(&ki.t().unwrap()).unwrap());
                    let s = c.time("vision scores * scale", || (s * scale).unwrap());
                    let pr = c.time("vision softmax", || softmax_f32(&s, saha_model::layers::Mode::INFERENCE).unwrap());
                    let o = c.time("vision probs@v", || pr.matmul(&vi).unwrap());
                    outs.push(c.time("vision merge heads (transpose+reshape)", || {
                        o.transpose(0, 1).unwrap().reshape((per, e)).unwrap()
                    }));
                }
                let cat = c.time("vision cat images", || Tensor::cat(&outs, 0).unwrap());
                let a = c.time("vision attn proj", || proj.forward(&cat).unwrap());
                let x2 = c.time("vision residual adds (x2)", || (&x + &a).unwrap());
                let _ = c.time("vision residual adds (x2)", || (&x2 + &a).unwrap());
                let f = c.time("vision fc1", || fc1.forward(&xn).unwrap());
                let g = c.time("vision quick_gelu", || quick_gelu(&f).unwrap());
                let _ = c.time("vision fc2", || fc2.forward(&g).unwrap());
            }
            let depth = v.depth as f64;
            rows.extend(c.total.into_iter().map(|(k, t)| (k, t / reps as f64 * depth)));
        }
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let sum: f64 = rows.iter().map(|r| r.1).sum();
        println!("| op (text: batch {batch} x len {len}; vision: {images} x 1024 patches) | s per batch | share |");
        println!("|---|---|---|");
        for (name, s) in &rows {
            println!("| {name} | {s:.4} | {:.1}% |", 100.0 * s / sum);
        }
        println!("| sum (layers/blocks only; embeddings, patch embed, merger, final norm excluded) | {sum:.4} | |");
        let _ = D::Minus1;
    }
}
