//! SugarCrepe and SugarCrepe++: a reader that turns the benchmarks' JSON files into items (with
//! the reference's prompts) and example triples, and the scoring of their embeddings.
//!
//! Input layouts (as the reference's `cli/evaluate_sugarcrepe*.py` read them):
//! * SugarCrepe: `<subset>.json`, an object keyed by example id, each value
//!   `{"filename": ..., "caption": ..., "negative_caption": ...}`.
//! * SugarCrepe++: `<subset>.json`, a list of
//!   `{"filename": ..., "caption": ..., "caption2": ..., "negative_caption": ...}`.
//!
//! `filename` is relative to the image folder (COCO val2017).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use saha_common::flags::{EmbeddingsInput, ImageRoot};
use saha_mining::vectors::{dot, Vectors};
use saha_prompting::config::PromptSettings;
use saha_prompting::render::{Renderer, Role, SpecialTextPolicy};
use saha_prompting::template::{Backbone, IMAGE_PLACEHOLDER};
use saha_schemas::embeddings::KEY_MODEL;
use saha_schemas::provenance::{LEFT_OUT_PAIRS, LEFT_OUT_REASON, ORIGIN};
use saha_schemas::records::{read_records, sink_for, write_rows};
use saha_schemas::write::finish_all;
use saha_schemas::{Item, Provenance, Side, SugarCrepeExample, SugarCrepeScore};

use crate::models::{check_expected, embeddings_model, listed, ExpectModel};
use crate::output::ReportFlags;
use crate::{output, report};

/// SugarCrepe's seven subsets, in the reference's order.
pub const SUGARCREPE_SUBSETS: [&str; 7] = [
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
    "add_obj",
    "add_att",
];
/// SugarCrepe++'s five subsets, in the reference's order.
pub const SUGARCREPE_PLUS_SUBSETS: [&str; 5] = ["swap_obj", "swap_att", "replace_obj", "replace_att", "replace_rel"];

/// The caption prefix of the reference's SugarCrepe collators (role Q, so the text suffix follows).
pub const CAPTION_PREFIX: &str = "Find me an image that matches the given caption: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Benchmark {
    #[value(name = "sugarcrepe")]
    #[serde(rename = "sugarcrepe")]
    SugarCrepe,
    #[value(name = "sugarcrepe++", alias = "sugarcrepe-plus")]
    #[serde(rename = "sugarcrepe++")]
    SugarCrepePlus,
}

impl Benchmark {
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::SugarCrepe => "sugarcrepe",
            Benchmark::SugarCrepePlus => "sugarcrepe++",
        }
    }

    fn subsets(self) -> &'static [&'static str] {
        match self {
            Benchmark::SugarCrepe => &SUGARCREPE_SUBSETS,
            Benchmark::SugarCrepePlus => &SUGARCREPE_PLUS_SUBSETS,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "sugarcrepe" => Some(Benchmark::SugarCrepe),
            "sugarcrepe++" => Some(Benchmark::SugarCrepePlus),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct ItemsArgs {
    /// Which benchmark the files are: sugarcrepe (object of {caption, negative_caption, filename})
    /// or sugarcrepe++ (list of {caption, caption2, negative_caption, filename}).
    #[arg(long, value_enum)]
    pub benchmark: Benchmark,
    /// A folder holding `<subset>.json` per subset, or one JSON file (subset = its stem).
    #[arg(long)]
    pub data: PathBuf,
    /// Subsets to read from the folder, comma-separated; default: all of the benchmark's.
    #[arg(long, value_delimiter = ',')]
    pub subsets: Vec<String>,
    // The `filename` values are image paths (COCO val2017); every image must exist.
    #[command(flatten)]
    #[serde(flatten)]
    pub image_root: ImageRoot,
    /// Folder for items.parquet and sugarcrepe_sets.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct ScoreArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    /// sugarcrepe_sets.parquet from `saha-eval sugarcrepe-items`.
    #[arg(long)]
    pub sets: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub vectors: EmbeddingsInput,
    /// Output sugarcrepe_scores.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    #[command(flatten)]
    #[serde(skip)]
    pub output: ReportFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub expect: ExpectModel,
}

/// One example as read: (key, filename, caption, caption2, negative).
struct RawExample {
    key: String,
    filename: String,
    caption: String,
    caption2: Option<String>,
    negative: String,
}

fn field(v: &serde_json::Value, name: &str, file: &Path, key: &str) -> Result<String> {
    match v.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => bail!(
            "{}: example `{key}`: `{name}` is not a string ({other})",
            file.display()
        ),
        None => bail!("{}: example `{key}`: missing `{name}`", file.display()),
    }
}

fn read_json(file: &Path, benchmark: Benchmark) -> Result<Vec<RawExample>> {
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", file.display()))?;
    let entries: Vec<(String, &serde_json::Value)> = match (benchmark, &value) {
        (Benchmark::SugarCrepe, serde_json::Value::Object(map)) => {
            let mut e: Vec<(String, &serde_json::Value)> = map.iter().map(|(k, v)| (k.clone(), v)).collect();
            // Numeric ids in numeric order (the map is sorted as text).
            if e.iter().all(|(k, _)| k.parse::<u64>().is_ok()) {
                e.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(0));
            }
            e
        }
        (Benchmark::SugarCrepePlus, serde_json::Value::Array(list)) => {
            list.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect()
        }
        (Benchmark::SugarCrepe, _) => bail!(
            "{}: SugarCrepe files are a JSON object keyed by example id (is this SugarCrepe++? use --benchmark sugarcrepe++)",
            file.display()
        ),
        (Benchmark::SugarCrepePlus, _) => bail!(
            "{}: SugarCrepe++ files are a JSON list of examples (is this SugarCrepe? use --benchmark sugarcrepe)",
            file.display()
        ),
    };
    if entries.is_empty() {
        bail!("{}: no examples", file.display());
    }
    entries
        .into_iter()
        .map(|(key, v)| {
            if !v.is_object() {
                bail!("{}: example `{key}` is not an object", file.display());
            }
            Ok(RawExample {
                filename: field(v, "filename", file, &key)?,
                caption: field(v, "caption", file, &key)?,
                caption2: match benchmark {
                    Benchmark::SugarCrepePlus => Some(field(v, "caption2", file, &key)?),
                    Benchmark::SugarCrepe => None,
                },
                negative: field(v, "negative_caption", file, &key)?,
                key,
            })
        })
        .collect()
}

/// The input files, one per subset.
fn discover(args: &ItemsArgs) -> Result<Vec<(String, PathBuf)>> {
    if args.data.is_file() {
        let stem = args
            .data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("--data has no file name")?;
        return Ok(vec![(stem, args.data.clone())]);
    }
    if !args.data.is_dir() {
        bail!("--data {}: no such file or folder", args.data.display());
    }
    let wanted: Vec<String> = if args.subsets.is_empty() {
        args.benchmark.subsets().iter().map(|s| s.to_string()).collect()
    } else {
        args.subsets.clone()
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|s| !args.data.join(format!("{s}.json")).is_file())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: no {} for subsets {} (expected <subset>.json per subset; pass --subsets to read fewer)",
            args.data.display(),
            missing
                .iter()
                .map(|s| format!("{s}.json"))
                .collect::<Vec<_>>()
                .join(", "),
            missing.join(", ")
        );
    }
    Ok(wanted
        .into_iter()
        .map(|s| {
            let p = args.data.join(format!("{s}.json"));
            (s, p)
        })
        .collect())
}

pub struct ItemsSummary {
    pub examples: usize,
    pub items: usize,
    pub subsets: Vec<(String, usize)>,
    pub items_path: PathBuf,
    pub sets_path: PathBuf,
}

/// Reads the benchmark files and writes items.parquet (the reference's prompts) and
/// sugarcrepe_sets.parquet.
pub fn items(args: &ItemsArgs) -> Result<ItemsSummary> {
    let mut prov = output::provenance("sugarcrepe-items", args);
    let files = discover(args)?;
    let read = read_examples(args, &files, &mut prov)?;
    // The items and sets of this call are one run, as saha-prompt's outputs are.
    let origin = prov.fingerprint();
    prov.set(&ORIGIN, origin);
    let settings = PromptSettings {
        query_prefix: CAPTION_PREFIX.to_string(),
        ..PromptSettings::default()
    };
    let renderer = Renderer {
        backbone: Backbone::Qwen2Vl,
        wrap_vision: false,
        policy: SpecialTextPolicy::Escape,
        settings: &settings,
    };
    let items = render_items(&renderer, &read.captions.keys, &read.images.keys)?;
    let sets = numbered_examples(read.examples, read.captions.keys.len(), args.benchmark);
    prov.stat("examples", sets.len());
    prov.stat("items", items.len());
    prov.stat("image_items", read.images.keys.len());
    prov.stat("subsets", &read.per_subset);

    let items_path = args.out_dir.join("items.parquet");
    let sets_path = args.out_dir.join("sugarcrepe_sets.parquet");
    let mut a = sink_for::<Item>(&items_path, &prov)?;
    write_rows(&mut a, &items)?;
    let mut b = sink_for::<SugarCrepeExample>(&sets_path, &prov)?;
    write_rows(&mut b, &sets)?;
    finish_all(vec![a, b])?;
    Ok(ItemsSummary {
        examples: sets.len(),
        items: items.len(),
        subsets: read.per_subset,
        items_path,
        sets_path,
    })
}

/// An item before numbering: (subset, text, image path).
type ItemKey = (String, String, Option<String>);

/// Items de-duplicated per subset, text and image, in order of first appearance.
#[derive(Default)]
struct Distinct {
    keys: Vec<ItemKey>,
    at: HashMap<ItemKey, usize>,
}

impl Distinct {
    /// The item's index, added when new.
    fn index(&mut self, key: ItemKey) -> usize {
        *self.at.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            self.keys.len() - 1
        })
    }
}

/// One example with its items as indices into the captions and images.
struct LocalExample {
    subset: String,
    key: String,
    image: usize,
    pos: usize,
    pos2: Option<usize>,
    neg: usize,
    source: String,
}

/// Every example of every file, with its captions and images de-duplicated.
struct ReadExamples {
    captions: Distinct,
    images: Distinct,
    examples: Vec<LocalExample>,
    /// Examples per subset.
    per_subset: Vec<(String, usize)>,
}

/// Reads the files (recording them in `prov`); every image must exist under --image-root.
fn read_examples(args: &ItemsArgs, files: &[(String, PathBuf)], prov: &mut Provenance) -> Result<ReadExamples> {
    let mut captions = Distinct::default();
    let mut images = Distinct::default();
    let mut examples = Vec::new();
    let mut missing_images = Vec::new();
    let mut per_subset = Vec::new();
    for (subset, file) in files {
        let read = read_json(file, args.benchmark)?;
        per_subset.push((subset.clone(), read.len()));
        prov.input(file)?;
        for ex in read {
            match args.image_root.resolve(&ex.filename) {
                Err(why) => bail!("{} example `{}`: {why}", file.display(), ex.key),
                Ok(path) if !path.is_file() && missing_images.len() < 5 => {
                    missing_images.push(format!("{} example `{}`: {}", file.display(), ex.key, ex.filename));
                }
                Ok(_) => {}
            }
            let cap = |t: &str| (subset.clone(), t.to_string(), None);
            let image = images.index((subset.clone(), IMAGE_PLACEHOLDER.to_string(), Some(ex.filename.clone())));
            let pos = captions.index(cap(&ex.caption));
            let pos2 = ex.caption2.as_deref().map(|c| captions.index(cap(c)));
            let neg = captions.index(cap(&ex.negative));
            examples.push(LocalExample {
                subset: subset.clone(),
                key: ex.key,
                image,
                pos,
                pos2,
                neg,
                source: file.display().to_string(),
            });
        }
    }
    if !missing_images.is_empty() {
        bail!(
            "images missing under --image-root {}: {}",
            args.image_root.path().display(),
            missing_images.join("; ")
        );
    }
    Ok(ReadExamples {
        captions,
        images,
        examples,
        per_subset,
    })
}

/// The captions (queries, numbered first) and then the images, with their prompts.
fn render_items(renderer: &Renderer, captions: &[ItemKey], images: &[ItemKey]) -> Result<Vec<Item>> {
    let mut items = Vec::with_capacity(captions.len() + images.len());
    for (side, role, list) in [
        (Side::Query, Role::Query, captions),
        (Side::Target, Role::Document, images),
    ] {
        for (subset, text, image) in list {
            let r = renderer
                .render(text, image.is_some(), role)
                .map_err(|e| anyhow::anyhow!("subset {subset}: text {text:?}: {e}"))?;
            items.push(Item {
                item_id: items.len() as u32,
                side,
                subset: subset.clone(),
                text: text.clone(),
                image_path: image.clone(),
                system: r.system,
                user: r.user,
                prompt: r.prompt,
                role: role.code().to_string(),
            });
        }
    }
    Ok(items)
}

/// The examples numbered in order, with item ids (the images' come after the `n_captions` captions).
fn numbered_examples(examples: Vec<LocalExample>, n_captions: usize, benchmark: Benchmark) -> Vec<SugarCrepeExample> {
    examples
        .into_iter()
        .enumerate()
        .map(|(n, e)| SugarCrepeExample {
            example: n as u32,
            benchmark: benchmark.name().to_string(),
            subset: e.subset,
            key: e.key,
            image_id: (n_captions + e.image) as u32,
            pos_id: e.pos as u32,
            pos2_id: e.pos2.map(|p| p as u32),
            neg_id: e.neg as u32,
            source_file: e.source,
        })
        .collect()
}

/// Outcome of one example: (image-to-text correct, text-only correct, any exact tie).
pub fn judge(image: &[f32], pos: &[f32], pos2: Option<&[f32]>, neg: &[f32]) -> (bool, Option<bool>, bool) {
    let (ip, in_) = (dot(image, pos), dot(image, neg));
    match pos2 {
        None => (ip > in_, None, ip == in_),
        Some(p2) => {
            let ip2 = dot(image, p2);
            let (pp, p1n, p2n) = (dot(pos, p2), dot(pos, neg), dot(p2, neg));
            let itt = ip > in_ && ip2 > in_;
            let tot = pp > p1n && pp > p2n;
            let tie = ip == in_ || ip2 == in_ || pp == p1n || pp == p2n;
            (itt, Some(tot), tie)
        }
    }
}

pub struct ScoreSummary {
    pub rows: Vec<SugarCrepeScore>,
    pub average: Option<f64>,
    pub model: String,
    pub report: String,
    pub report_path: PathBuf,
    pub renormalised: usize,
}

pub fn score(args: &ScoreArgs) -> Result<ScoreSummary> {
    let mut prov = output::provenance("sugarcrepe", args);
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    let (model, sets, vectors) = open(args, &mut prov)?;
    let mut rows = Vec::new();
    for ((benchmark, subset), examples) in by_subset(&sets, &args.sets)? {
        rows.push(subset_score(benchmark, subset, &examples, &vectors, &args.sets)?);
    }
    let plain: Vec<&SugarCrepeScore> = rows.iter().filter(|r| r.benchmark == "sugarcrepe").collect();
    let average = (!plain.is_empty()).then(|| plain.iter().map(|r| r.itt_accuracy).sum::<f64>() / plain.len() as f64);
    prov.stat("examples", sets.len());
    prov.stat("model", &model);
    if let Some(a) = average {
        prov.stat("sugarcrepe_average", a);
    }
    prov.stat("renormalised_vectors", vectors.renormalised);
    let text = report::sugarcrepe_markdown(&rows, &model, average);
    let report_path = args.output.path(&args.out, "sugarcrepe_report.md");
    let keys = [(KEY_MODEL.to_string(), model.clone())];
    output::scores_and_report(&args.out, &prov, &keys, &rows, &report_path, &text)?;
    Ok(ScoreSummary {
        rows,
        average,
        model,
        report: text,
        report_path,
        renormalised: vectors.renormalised,
    })
}

/// The embeddings' model, the examples and their vectors, checked to cover every example's
/// items; the inputs are recorded in `prov`.
fn open(args: &ScoreArgs, prov: &mut Provenance) -> Result<(String, Vec<SugarCrepeExample>, Vectors)> {
    let model = embeddings_model(&args.vectors.embeddings)?;
    check_expected(args.expect.expect_model.as_deref(), &model, &args.vectors.embeddings)?;
    let (sets, _) = read_records::<SugarCrepeExample>(&args.sets)?;
    if sets.is_empty() {
        bail!("{}: no examples", args.sets.display());
    }
    prov.input(&args.sets)?;
    for e in &args.vectors.embeddings {
        prov.input(e)?;
    }
    let vectors = Vectors::load(&args.vectors.embeddings, args.vectors.normalize())?;
    let mut sets = sets;
    if !vectors.skipped.is_empty() {
        // An example whose image or a caption saha-embed skipped cannot be scored: it is left out.
        let before = sets.len();
        sets.retain(|ex| !example_items(ex).any(|id| vectors.skipped.contains(&id)));
        prov.stat(LEFT_OUT_PAIRS, before - sets.len());
        prov.stat("left_out_reason", LEFT_OUT_REASON);
        if sets.is_empty() {
            bail!(
                "{}: every example was left out ({LEFT_OUT_REASON})",
                args.sets.display()
            );
        }
    }
    require_embeddings(&sets, &vectors, &args.vectors.embeddings)?;
    Ok((model, sets, vectors))
}

fn example_items(ex: &SugarCrepeExample) -> impl Iterator<Item = u32> {
    [Some(ex.image_id), Some(ex.pos_id), ex.pos2_id, Some(ex.neg_id)]
        .into_iter()
        .flatten()
}

/// Items without an embedding, as an error naming them and up to three examples each.
fn require_embeddings(sets: &[SugarCrepeExample], vectors: &Vectors, files: &[PathBuf]) -> Result<()> {
    let mut missing: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for ex in sets {
        for id in example_items(ex) {
            if vectors.get(id).is_none() {
                let v = missing.entry(id).or_default();
                if v.len() < 3 {
                    v.push(format!("{} `{}`", ex.subset, ex.key));
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing
        .iter()
        .take(5)
        .map(|(id, ex)| format!("item_id {id} (example {})", ex.join(", ")))
        .collect();
    bail!(
        "no embedding in {} for {} item(s): {}{}",
        listed(files),
        missing.len(),
        shown.join(", "),
        if missing.len() > 5 { ", …" } else { "" }
    )
}

/// A (benchmark, subset) and its examples.
type Group<'a> = ((String, String), Vec<&'a SugarCrepeExample>);

/// The examples grouped by (benchmark, subset), each benchmark's subsets in the reference's order.
fn by_subset<'a>(sets: &'a [SugarCrepeExample], path: &Path) -> Result<Vec<Group<'a>>> {
    let mut groups: Vec<Group> = Vec::new();
    for ex in sets {
        if Benchmark::parse(&ex.benchmark).is_none() {
            bail!(
                "{}: example {}: unknown benchmark `{}`",
                path.display(),
                ex.example,
                ex.benchmark
            );
        }
        let k = (ex.benchmark.clone(), ex.subset.clone());
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.1.push(ex),
            None => groups.push((k, vec![ex])),
        }
    }
    let order = |b: &str, s: &str| {
        let list = Benchmark::parse(b).map(Benchmark::subsets).unwrap_or(&[]);
        (b.to_string(), list.iter().position(|x| *x == s).unwrap_or(usize::MAX))
    };
    groups.sort_by_key(|g| order(&g.0 .0, &g.0 .1));
    Ok(groups)
}

/// The accuracies of one subset's examples.
fn subset_score(
    benchmark: String,
    subset: String,
    examples: &[&SugarCrepeExample],
    vectors: &Vectors,
    path: &Path,
) -> Result<SugarCrepeScore> {
    let v = |id: u32| vectors.get(id).expect("checked");
    let plus = benchmark == "sugarcrepe++";
    let (mut itt, mut tot, mut ties) = (0u32, 0u32, 0u32);
    for ex in examples {
        let pos2 = match (plus, ex.pos2_id) {
            (true, Some(p)) => Some(v(p)),
            (true, None) => bail!(
                "{}: example {} (subset {subset}) is SugarCrepe++ but has no pos2_id",
                path.display(),
                ex.example
            ),
            (false, _) => None,
        };
        let (a, b, tie) = judge(v(ex.image_id), v(ex.pos_id), pos2, v(ex.neg_id));
        itt += a as u32;
        tot += b.unwrap_or(false) as u32;
        ties += tie as u32;
    }
    let n = examples.len() as u32;
    Ok(SugarCrepeScore {
        benchmark,
        subset,
        n,
        itt_correct: itt,
        itt_accuracy: itt as f64 / n as f64,
        tot_correct: plus.then_some(tot),
        tot_accuracy: plus.then_some(tot as f64 / n as f64),
        ties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_comparisons_as_the_reference() {
        let (i, p, n) = ([1.0, 0.0], [0.8, 0.6], [0.6, 0.8]);
        assert_eq!(judge(&i, &p, None, &n), (true, None, false));
        assert_eq!(judge(&i, &n, None, &p), (false, None, false));
        // A tie is wrong.
        assert_eq!(judge(&i, &p, None, &p), (false, None, true));
        // ++: both positives must beat the negative; text-only needs p1.p2 above both.
        let p2 = [0.8, -0.6];
        let (itt, tot, _) = judge(&i, &p, Some(&p2), &n);
        assert!(itt);
        // p.p2 = 0.28, p.n = 0.96: text-only fails.
        assert_eq!(tot, Some(false));
    }
}
