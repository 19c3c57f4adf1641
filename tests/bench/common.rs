//! What the embedding and training benchmarks share: prompts, words, images, thread count, memory.

use std::path::{Path, PathBuf};

use saha_common::flags::Truncate;
use saha_common::rng::Rng;
use saha_model::image::ResolutionPolicy;
use saha_model::{Embedder, EncodedInput, InputRules};

/// The README string every SaHa command passes as --Q_prompt and --D_prompt.
pub const SYSTEM_PROMPT: &str =
    "Given an image, summarize the provided image in one word. Given only text, describe the text in one word.";

pub const IMAGE_SIDE: u32 = 448;

pub const WORDS: &[&str] = &[
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

/// A deterministic 448x448 RGB image: smooth gradients with a per-image phase plus pixel noise (so PNG
/// decoding does real work, as with photos).
pub fn write_image(path: &Path, seed: u64) {
    let mut rng = Rng::new(0x1A6E_0000 + seed);
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

pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Command-line arguments as `--name value` pairs and bare `--flag`s; `usage` prints the usage and
/// exits, on a value that is missing or does not parse.
pub struct Argv {
    args: Vec<String>,
    usage: fn() -> !,
}

impl Argv {
    pub fn from_env(usage: fn() -> !) -> Self {
        Argv {
            args: std::env::args().skip(1).collect(),
            usage,
        }
    }

    pub fn value(&self, name: &str) -> Option<String> {
        let i = self.args.iter().position(|a| a == name)?;
        Some(self.args.get(i + 1).cloned().unwrap_or_else(|| (self.usage)()))
    }

    pub fn number(&self, name: &str, default: usize) -> usize {
        self.value(name)
            .map_or(default, |v| v.parse().unwrap_or_else(|_| (self.usage)()))
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.value(name).map(PathBuf::from)
    }

    #[allow(dead_code)] // saha-bench-train takes no bare flags
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }
}

/// A `/proc/self/status` field in KiB (Linux only).
pub fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Seeded words up to `target` tokens (with the closing full stop), capitalised, ending in a full stop.
pub fn sentence(embedder: &Embedder, rng: &mut Rng, target: usize) -> String {
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

pub struct Item {
    pub prompt: String,
    pub image: Option<PathBuf>,
}

/// The items' model inputs through the stages' own path, images at their native size, no length limit.
pub fn encode(embedder: &Embedder, items: &[Item]) -> Vec<EncodedInput> {
    let encoder = embedder.item_encoder(InputRules {
        image_root: saha_common::flags::ImageRoot::new("").allowing_outside_root(),
        max_image_pixels: u64::MAX,
        resolution: ResolutionPolicy::Native,
        max_len: usize::MAX,
        truncate: Truncate::UserText,
    });
    items
        .iter()
        .map(|item| {
            let image = item.image.as_ref().map(|p| p.to_str().expect("UTF-8 image path"));
            encoder
                .encode(&item.prompt, image)
                .unwrap_or_else(|e| panic!("{image:?}: {e}"))
                .0
        })
        .collect()
}

/// `--device cpu|cuda:N` (default cpu) and `--dtype auto|f32|bf16|f16` (default auto: f32 on the CPU,
/// bf16 on a GPU), as the stages read them.
pub fn placement(argv: &Argv, usage: fn() -> !) -> (candle_core::Device, candle_core::DType) {
    let device = argv.value("--device").unwrap_or_else(|| "cpu".into());
    let device = saha_model::compute::device(&device).unwrap_or_else(|e| panic!("{e}"));
    let dtype = argv
        .value("--dtype")
        .map(|d| clap::ValueEnum::from_str(&d, true).unwrap_or_else(|_| usage()))
        .unwrap_or(saha_common::flags::Dtype::Auto);
    let dtype = saha_model::compute::dtype(dtype, &device);
    (device, dtype)
}
