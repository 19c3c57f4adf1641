//! Every stage, every file it reads: missing, a folder, empty, truncated, a corrupted footer, another
//! schema, another run's (and for folders: a file, an empty folder, a file inside truncated).

use std::path::PathBuf;

use saha_tests::repo_root;

use crate::fixture::fixture;
use crate::harness::{Fault, Input, Stage};

/// The model folder of run `a`, each of its files truncated in a case of its own.
fn model(flag: &'static str) -> Input {
    Input::folder(
        flag,
        fixture().a("model"),
        &[
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "preprocessor_config.json",
        ],
    )
}

/// An artefact of run `a` by its path in the run, with a file of another schema and the same
/// artefact of run `b`.
fn artefact(flag: &'static str, rel: &str, other_schema: &str) -> Input {
    let f = fixture();
    Input::parquet(flag, f.a(rel))
        .schema(f.a(other_schema))
        .lineage(f.b(rel))
}

/// An image root: every fault of a folder but a file in its place (the images under it are missing
/// then, which the image cases cover).
fn image_root(path: PathBuf) -> Input {
    Input::folder("--image-root", path, &[]).except(&[Fault::FileForFolder])
}

pub fn stages() -> Vec<Stage> {
    let f = fixture();
    let a = |p: &str| f.a(p);
    let pq = Input::parquet;
    vec![
        Stage::new("saha-prompt", &[])
            // (pairs.parquet would do as MMEB data: it has the four MMEB columns.)
            .input(pq("--data", a("data/train/ShapeCaps_i2t.parquet")).schema(a("embeddings.parquet")))
            .input(image_root(a("data/images")))
            .output("--out-dir", "run"),
        Stage::new("saha-embed", &[])
            .input(pq("--items", a("items.parquet")).schema(a("pairs.parquet")))
            .input(model("--model"))
            .input(image_root(a("data/images")))
            .output("--out", "embeddings.parquet"),
        Stage::new("saha-retrieve", &[])
            .input(artefact("--pairs", "pairs.parquet", "items.parquet"))
            .input(artefact("--embeddings", "embeddings.parquet", "pairs.parquet"))
            .output("--out", "candidates.parquet"),
        Stage::new("saha-remap", &[])
            .input(artefact("--pairs", "pairs.parquet", "items.parquet"))
            .input(artefact("--candidates", "candidates.parquet", "pairs.parquet"))
            .output("--out", "owners.parquet"),
        Stage::new("saha-filter", &["--also-classification", "ShapeClass"])
            .input(artefact("--pairs", "pairs.parquet", "items.parquet"))
            .input(artefact("--embeddings", "embeddings.parquet", "pairs.parquet"))
            .input(artefact("--candidates", "candidates.parquet", "owners.parquet"))
            .input(artefact("--owners", "owners.parquet", "candidates.parquet"))
            .output("--clusters", "clusters.parquet")
            .output("--stats", "mining_stats.parquet"),
        Stage::new("saha-train", &["--max-steps", "1", "--clusters-per-step", "2"])
            .input(pq("--clusters", a("clusters.parquet")).schema(a("pairs.parquet")))
            .input(artefact("--items", "items.parquet", "pairs.parquet"))
            .input(model("--model"))
            .input(image_root(a("data/images")))
            .output("--out-dir", "train"),
        Stage::new("saha-eval", &["mmeb", "--quiet"])
            .input(artefact("--pairs", "eval/pairs.parquet", "eval/items.parquet"))
            .input(artefact("--items", "eval/items.parquet", "eval/pairs.parquet"))
            .input(artefact(
                "--eval-lists",
                "eval/eval_lists.parquet",
                "eval/pairs.parquet",
            ))
            .input(artefact(
                "--embeddings",
                "eval/embeddings.parquet",
                "eval/pairs.parquet",
            ))
            .input(Input::text(
                "--task-map",
                repo_root().join("pipelines/demo-task-map.toml"),
            ))
            .input(pq("--compare", a("eval/eval_scores.parquet")).schema(a("eval/pairs.parquet")))
            .output("--out", "eval_scores.parquet")
            .output("--report", "eval_report.md"),
        Stage::new("saha-eval", &["sugarcrepe-items", "--benchmark", "sugarcrepe"])
            .input(Input::text("--data", f.root().join("sc/add_obj.json")))
            .input(image_root(f.root().join("sc/images")))
            .output("--out-dir", "sc"),
        Stage::new("saha-eval", &["sugarcrepe", "--quiet"])
            .input(pq("--sets", a("sugarcrepe/sugarcrepe_sets.parquet")).schema(a("sugarcrepe/items.parquet")))
            // Another run here: the training items' embeddings, not the SugarCrepe items'.
            .input(
                pq("--embeddings", a("sugarcrepe/embeddings.parquet"))
                    .schema(a("pairs.parquet"))
                    .lineage(a("embeddings.parquet")),
            )
            .output("--out", "sugarcrepe_scores.parquet")
            .output("--report", "sugarcrepe_report.md"),
        Stage::new("saha-report", &[])
            .input(
                Input::folder(
                    "--run",
                    a(""),
                    &[
                        "clusters.parquet",
                        "mining_stats.parquet",
                        "train/train_log.parquet",
                        "eval/eval_scores.parquet",
                    ],
                )
                // A run with no artefacts yet is reported as such (each section says what is missing).
                .except(&[Fault::EmptyFolder]),
            )
            // Every report input is optional (a missing one leaves its section saying so).
            .input(
                pq("--embeddings", a("embeddings.parquet"))
                    .schema(a("pairs.parquet"))
                    .except(&[Fault::Missing]),
            )
            .output("--out", "report.html"),
        Stage::new("saha-sql", &["-e", "select count(*) from pairs"])
            .input(Input::folder(
                "--run",
                a(""),
                &["pairs.parquet", "items.parquet", "clusters.parquet"],
            ))
            .output("--out", "result.csv"),
        Stage::new("saha-init-model", &[])
            .input(Input::text("--tokenizer", saha_tests::qwen_tokenizer()))
            .output("--out", "model"),
        Stage::new(
            "saha-wordnet",
            &[
                "--train-per-subset",
                "4",
                "--eval-per-subset",
                "3",
                "--candidates",
                "3",
                "--hard-distractors",
                "1",
            ],
        )
        .input(Input::folder("--wordnet", f.wordnet(), &["data.noun", "index.noun"]))
        .output("--out", "wn"),
    ]
}

#[test]
fn every_stage_refuses_every_bad_input_file_naming_it() {
    let start = std::time::Instant::now();
    let (mut problems, mut cases) = (Vec::new(), 0);
    for stage in stages() {
        let (p, n) = stage.bad_files();
        problems.extend(p);
        cases += n;
    }
    eprintln!("{cases} bad-file cases in {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        problems.is_empty(),
        "{} of {cases} cases went wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
