//! Every stage, every file it reads: missing, a folder, empty, truncated, a corrupted footer, another
//! schema, another run's (and for folders: a file, an empty folder, a file inside truncated).

use saha_tests::repo_root;

use crate::fixture::fixture;
use crate::harness::{Fault, Input, Stage};

/// The model folder of run `a`, each of its files truncated in a case of its own.
fn model(flag: &'static str) -> Input {
    Input::folder(
        flag,
        fixture().a("model"),
        &["config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"],
    )
}

pub fn stages() -> Vec<Stage> {
    let f = fixture();
    let (a, b) = (|p: &str| f.a(p), |p: &str| f.b(p));
    let pq = Input::parquet;
    vec![
        Stage::new("saha-prompt", &[])
            // (pairs.parquet would do as MMEB data: it has the four MMEB columns.)
            .input(pq("--data", a("data/train/ShapeCaps_i2t.parquet")).schema(a("embeddings.parquet")))
            .input(Input::folder("--image-root", a("data/images"), &[]).except(&[Fault::FileForFolder]))
            .output("--out-dir", "run"),
        Stage::new("saha-embed", &[])
            .input(pq("--items", a("items.parquet")).schema(a("pairs.parquet")))
            .input(model("--model"))
            .input(Input::folder("--image-root", a("data/images"), &[]).except(&[Fault::FileForFolder]))
            .output("--out", "embeddings.parquet"),
        Stage::new("saha-retrieve", &[])
            .input(pq("--pairs", a("pairs.parquet")).schema(a("items.parquet")).lineage(b("pairs.parquet")))
            .input(pq("--embeddings", a("embeddings.parquet")).schema(a("pairs.parquet")).lineage(b("embeddings.parquet")))
            .output("--out", "candidates.parquet"),
        Stage::new("saha-remap", &[])
            .input(pq("--pairs", a("pairs.parquet")).schema(a("items.parquet")).lineage(b("pairs.parquet")))
            .input(pq("--candidates", a("candidates.parquet")).schema(a("pairs.parquet")).lineage(b("candidates.parquet")))
            .output("--out", "owners.parquet"),
        Stage::new("saha-filter", &["--also-classification", "ShapeClass"])
            .input(pq("--pairs", a("pairs.parquet")).schema(a("items.parquet")).lineage(b("pairs.parquet")))
            .input(pq("--embeddings", a("embeddings.parquet")).schema(a("pairs.parquet")).lineage(b("embeddings.parquet")))
            .input(pq("--candidates", a("candidates.parquet")).schema(a("owners.parquet")).lineage(b("candidates.parquet")))
            .input(pq("--owners", a("owners.parquet")).schema(a("candidates.parquet")).lineage(b("owners.parquet")))
            .output("--clusters", "clusters.parquet")
            .output("--stats", "mining_stats.parquet"),
        Stage::new("saha-train", &["--max-steps", "1", "--clusters-per-step", "2"])
            .input(pq("--clusters", a("clusters.parquet")).schema(a("pairs.parquet")))
            .input(pq("--items", a("items.parquet")).schema(a("pairs.parquet")).lineage(b("items.parquet")))
            .input(model("--model"))
            .input(Input::folder("--image-root", a("data/images"), &[]).except(&[Fault::FileForFolder]))
            .output("--out-dir", "train"),
        Stage::new("saha-eval", &["mmeb", "--quiet"])
            .input(pq("--pairs", a("eval/pairs.parquet")).schema(a("eval/items.parquet")).lineage(b("eval/pairs.parquet")))
            .input(pq("--items", a("eval/items.parquet")).schema(a("eval/pairs.parquet")).lineage(b("eval/items.parquet")))
            .input(pq("--eval-lists", a("eval/eval_lists.parquet")).schema(a("eval/pairs.parquet")).lineage(b("eval/eval_lists.parquet")))
            .input(pq("--embeddings", a("eval/embeddings.parquet")).schema(a("eval/pairs.parquet")).lineage(b("eval/embeddings.parquet")))
            .input(Input::text("--task-map", repo_root().join("pipelines/demo-task-map.toml")))
            .input(pq("--compare", a("eval/eval_scores.parquet")).schema(a("eval/pairs.parquet")))
            .output("--out", "eval_scores.parquet")
            .output("--report", "eval_report.md"),
        Stage::new("saha-eval", &["sugarcrepe-items", "--benchmark", "sugarcrepe"])
            .input(Input::text("--data", f.root().join("sc/add_obj.json")))
            .input(Input::folder("--image-root", f.root().join("sc/images"), &[]).except(&[Fault::FileForFolder]))
            .output("--out-dir", "sc"),
        Stage::new("saha-eval", &["sugarcrepe", "--quiet"])
            .input(pq("--sets", a("sugarcrepe/sugarcrepe_sets.parquet")).schema(a("sugarcrepe/items.parquet")))
            .input(pq("--embeddings", a("sugarcrepe/embeddings.parquet")).schema(a("pairs.parquet")).lineage(a("embeddings.parquet")))
            .output("--out", "sugarcrepe_scores.parquet")
            .output("--report", "sugarcrepe_report.md"),
        Stage::new("saha-report", &[])
            .input(
                Input::folder(
                    "--run",
                    a(""),
                    &["clusters.parquet", "mining_stats.parquet", "train/train_log.parquet", "eval/eval_scores.parquet"],
                )
                // A run with no artefacts yet is reported as such (each section says what is missing).
                .except(&[Fault::EmptyFolder]),
            )
            // Every report input is optional (a missing one leaves its section saying so).
            .input(pq("--embeddings", a("embeddings.parquet")).schema(a("pairs.parquet")).except(&[Fault::Missing]))
            .output("--out", "report.html"),
        Stage::new("saha-sql", &["-e", "select count(*) from pairs"])
            .input(Input::folder("--run", a(""), &["pairs.parquet", "items.parquet", "clusters.parquet"]))
            .output("--out", "result.csv"),
        Stage::new("saha-init-model", &[])
            .input(Input::text("--tokenizer", saha_tests::qwen_tokenizer()))
            .output("--out", "model"),
        Stage::new("saha-wordnet", &["--train-per-subset", "4", "--eval-per-subset", "3", "--candidates", "3"])
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
