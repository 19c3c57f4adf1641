//! `saha-synth`: a small, seeded MMEB-format dataset with real PNG images, for the demo and tests.
//!
//! Writes `OUT/train/<Subset>.parquet` (MMEB-train columns), `OUT/eval/<Subset>.parquet`
//! (MMEB-eval columns), `OUT/images/<Subset>/*.png` and `OUT/synth.json`. Every file carries a
//! `label` column with the ground-truth class, and the data is full of false-negative traps:
//! shared class names and answers, and paraphrased captions of identical scenes.

pub mod scene;
pub mod tasks;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use rayon::prelude::*;
use saha_common::progress;
use saha_schemas::mmeb_data::{eval_batch, replace_folder, train_batch, write_data_file, DataRow};
use saha_schemas::Provenance;

use crate::scene::Scene;
use crate::tasks::{answers, classes, describe, phrase, Kind, TASKS};
use saha_common::rng::Rng;

pub const STAGE: &str = "saha-synth";

#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(version, about)]
pub struct Args {
    /// Output folder; replaced as a whole, atomically.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Training pairs per subset (at most 100000).
    #[arg(long, default_value_t = 64, value_parser = rows)]
    pub train_per_subset: usize,
    /// Evaluation queries per subset (at most 100000).
    #[arg(long, default_value_t = 24, value_parser = rows)]
    pub eval_per_subset: usize,
    /// Candidates per evaluation query for the retrieval subsets (classification and VQA use
    /// every label): from 2 to the 128 distinct scenes there are.
    #[arg(long, default_value_t = 8, value_parser = candidates)]
    pub candidates: usize,
}

/// A synthetic demo, not a benchmark: more rows would only fill the disk with pictures.
const MAX_ROWS: usize = 100_000;

/// Scenes with distinct descriptions (size, colour, shape, position): a query's candidates must differ.
const DISTINCT_SCENES: usize = 2 * scene::SHAPES.len() * scene::COLOURS.len() * scene::POSITIONS.len();

fn rows(text: &str) -> Result<usize, String> {
    let n = saha_common::numbers::count(text)?;
    if n > MAX_ROWS {
        return Err(format!("at most {MAX_ROWS} rows per subset"));
    }
    Ok(n)
}

fn candidates(text: &str) -> Result<usize, String> {
    let n = saha_common::numbers::count(text)?;
    if !(2..=DISTINCT_SCENES).contains(&n) {
        return Err(format!(
            "must be from 2 (the positive and a distractor) to {DISTINCT_SCENES} (the distinct scenes)"
        ));
    }
    Ok(n)
}

struct Picture {
    path: String,
    scene: Scene,
}

fn image_path(subset: &str, name: &str, pictures: &mut Vec<Picture>, scene: &Scene) -> String {
    let path = format!("{subset}/{name}.png");
    pictures.push(Picture {
        path: path.clone(),
        scene: scene.clone(),
    });
    path
}

/// The scene of example `i`. Caption subsets draw from a small pool of prototype scenes, each
/// photographed several times and described in other words: the same content owns many targets.
fn scene_for(kind: Kind, args: &Args, stream: u64, rng: &mut Rng) -> Scene {
    match kind {
        Kind::TextToImage | Kind::ImageToText => {
            let prototypes = (args.train_per_subset / 4).max(4);
            let p = rng.below(prototypes);
            let mut scene = Scene::random(&mut Rng::fork(args.seed, 1000 + stream, p as u64));
            scene.restyle(rng);
            scene
        }
        Kind::Classification | Kind::Vqa => Scene::random(rng),
    }
}

fn train_rows(subset: &str, kind: Kind, args: &Args, stream: u64, pictures: &mut Vec<Picture>) -> Vec<DataRow> {
    (0..args.train_per_subset)
        .map(|i| {
            let mut rng = Rng::fork(args.seed, stream, i as u64);
            let scene = scene_for(kind, args, stream, &mut rng);
            let p = phrase(kind, &scene, rng.below(4), rng.below(3));
            let img = |pictures: &mut Vec<Picture>| image_path(subset, &format!("train_{i:05}"), pictures, &scene);
            let query_image = if p.query_has_image {
                img(pictures)
            } else {
                String::new()
            };
            let target_image = if p.target_has_image {
                img(pictures)
            } else {
                String::new()
            };
            DataRow {
                query: p.query,
                query_image,
                targets: vec![(p.target, target_image)],
                label: p.label,
            }
        })
        .collect()
}

fn eval_rows(subset: &str, kind: Kind, args: &Args, stream: u64, pictures: &mut Vec<Picture>) -> Vec<DataRow> {
    (0..args.eval_per_subset)
        .map(|i| {
            let mut rng = Rng::fork(args.seed, stream, i as u64);
            let scene = scene_for(kind, args, stream, &mut rng);
            let (variant, question) = (rng.below(4), rng.below(3));
            let p = phrase(kind, &scene, variant, question);
            let name = format!("eval_{i:05}");
            let query_image = if p.query_has_image {
                image_path(subset, &name, pictures, &scene)
            } else {
                String::new()
            };
            let first_image = if p.target_has_image {
                image_path(subset, &format!("{name}_0"), pictures, &scene)
            } else {
                String::new()
            };
            let mut targets = vec![(p.target.clone(), first_image)];
            match kind {
                Kind::Classification | Kind::Vqa => {
                    let all = if kind == Kind::Vqa {
                        answers(question)
                    } else {
                        classes()
                    };
                    targets.extend(all.into_iter().filter(|c| *c != p.target).map(|c| (c, String::new())));
                }
                Kind::TextToImage | Kind::ImageToText => {
                    let mut seen = vec![describe(&scene)];
                    while targets.len() < args.candidates {
                        let other = Scene::random(&mut rng);
                        if seen.contains(&describe(&other)) {
                            continue;
                        }
                        seen.push(describe(&other));
                        let d = phrase(kind, &other, rng.below(4), question);
                        let img = if d.target_has_image {
                            image_path(subset, &format!("{name}_{}", targets.len()), pictures, &other)
                        } else {
                            String::new()
                        };
                        targets.push((d.target, img));
                    }
                }
            }
            DataRow {
                query: p.query,
                query_image,
                targets,
                label: p.label,
            }
        })
        .collect()
}

pub struct Summary {
    pub train_rows: usize,
    pub eval_rows: usize,
    pub images: usize,
}

/// Generates the dataset into a temporary sibling folder, then swaps it in for `args.out`.
pub fn generate(args: &Args) -> Result<Summary> {
    replace_folder(&args.out, |tmp| write_into(tmp, args))
}

fn write_into(dir: &Path, args: &Args) -> Result<Summary> {
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    let mut pictures = Vec::new();
    let (mut n_train, mut n_eval) = (0, 0);
    for (t, (subset, kind)) in TASKS.iter().enumerate() {
        let train = train_rows(subset, *kind, args, t as u64, &mut pictures);
        let eval = eval_rows(subset, *kind, args, 100 + t as u64, &mut pictures);
        n_train += train.len();
        n_eval += eval.len();
        write_data_file(
            &dir.join(format!("train/{subset}.parquet")),
            &train_batch(&train),
            &prov,
            "mmeb-train",
        )?;
        write_data_file(
            &dir.join(format!("eval/{subset}.parquet")),
            &eval_batch(&eval),
            &prov,
            "mmeb-eval",
        )?;
    }
    let bar = progress::bar(pictures.len() as u64, "images");
    pictures.par_iter().try_for_each(|p| -> Result<()> {
        let path = dir.join("images").join(&p.path);
        fs::create_dir_all(path.parent().expect("images live in subset folders"))?;
        p.scene
            .draw()
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let manifest = serde_json::json!({
        "stage": STAGE,
        "version": env!("CARGO_PKG_VERSION"),
        "params": args,
        "subsets": TASKS.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "train_rows": n_train,
        "eval_rows": n_eval,
        "images": pictures.len(),
    });
    fs::write(dir.join("synth.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    Ok(Summary {
        train_rows: n_train,
        eval_rows: n_eval,
        images: pictures.len(),
    })
}
