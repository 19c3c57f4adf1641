//! The make interface: the demo DAG, up-to-date checks, parameter stamps, make -n and make sql.

use std::path::Path;
use std::process::Output;
use std::time::SystemTime;

/// The small demo, with three training steps.
fn make(runs: &Path, args: &[&str]) -> Output {
    saha_tests::make_small(runs, &[&["TRAIN_STEPS=3"], args].concat())
}

#[track_caller]
fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "make failed:\n{text}");
    text
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .modified()
        .unwrap()
}

#[test]
fn demo_dag_reruns_only_what_is_stale() {
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("demo");
    let text = ok(&make(runs.path(), &["demo"]));
    assert!(text.contains("saha-synth") && text.contains("saha-prompt"), "{text}");
    assert!(text.contains("| ShapeClass"), "demo prints its summary:\n{text}");
    assert!(
        text.contains("saha-init-model") && text.contains("saha-embed") && text.contains("| saha "),
        "{text}"
    );
    for f in [
        "model/config.json",
        "embeddings.parquet",
        "eval/embeddings.parquet",
        "clusters.parquet",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let embeddings = run.join("embeddings.parquet");
    let synth = run.join("data/synth.json");
    let pairs = run.join("pairs.parquet");
    let eval_lists = run.join("eval/eval_lists.parquet");
    let (t_synth, t_pairs, t_eval) = (mtime(&synth), mtime(&pairs), mtime(&eval_lists));

    // Twice: nothing to do, and the dry run agrees.
    let text = ok(&make(runs.path(), &["-n", "demo"]));
    assert!(
        !text.contains("saha-prompt --data") && !text.contains("saha-synth --out"),
        "{text}"
    );
    let text = ok(&make(runs.path(), &["demo"]));
    assert!(
        !text.contains("saha-prompt --data") && !text.contains("saha-synth --out"),
        "{text}"
    );
    assert_eq!((mtime(&synth), mtime(&pairs)), (t_synth, t_pairs));

    // make -n shows what a parameter change would run, and runs nothing.
    let text = ok(&make(runs.path(), &["-n", "demo", "SYSTEM=Describe it."]));
    assert!(
        text.contains("saha-prompt --data") && text.contains("--system 'Describe it.'"),
        "{text}"
    );
    assert_eq!(mtime(&pairs), t_pairs);

    // A new system prompt reruns the prompt stages and nothing upstream.
    let text = ok(&make(runs.path(), &["demo", "SYSTEM=Describe it."]));
    assert!(
        text.contains("saha-prompt --data") && !text.contains("saha-synth --out"),
        "{text}"
    );
    assert_eq!(mtime(&synth), t_synth);
    assert!(mtime(&pairs) > t_pairs && mtime(&eval_lists) > t_eval);
    let text = ok(&make(
        runs.path(),
        &["sql", "SYSTEM=Describe it.", "Q=select distinct system from items"],
    ));
    assert!(text.contains("| Describe it. |"), "{text}");

    // -B on one artefact reruns that stage only.
    let t_pairs = mtime(&pairs);
    let text = ok(&make(
        runs.path(),
        &["-B", pairs.to_str().unwrap(), "SYSTEM=Describe it."],
    ));
    assert!(text.contains("saha-prompt"), "{text}");
    assert!(mtime(&pairs) > t_pairs);

    // A new TOP_K reruns mining (the retrieval depth follows it) and what follows it (training, the tuned
    // evaluation), not the embedding of the training items.
    ok(&make(runs.path(), &["demo", "SYSTEM=Describe it."]));
    let t_embeddings = mtime(&embeddings);
    let text = ok(&make(runs.path(), &["demo", "SYSTEM=Describe it.", "TOP_K=5"]));
    let embeds_train_items = format!("--out {}", embeddings.display());
    assert!(
        text.contains("saha-filter") && text.contains("saha-train") && !text.contains(&embeds_train_items),
        "{text}"
    );
    assert_eq!(mtime(&embeddings), t_embeddings);
}

#[test]
fn sql_target_and_pipeline_errors() {
    let runs = tempfile::tempdir().unwrap();
    ok(&make(runs.path(), &["prompt", "RUN=s"]));
    let text = ok(&make(
        runs.path(),
        &[
            "sql",
            "RUN=s",
            "Q=select side, count(*) from items group by side order by side",
        ],
    ));
    assert!(text.contains("| query ") && text.contains("(2 rows)"), "{text}");

    let out = make(runs.path(), &["PIPELINE=mmeb-train", "prompt"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs DATA="));
    let out = make(runs.path(), &["PIPELINE=nope", "help"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pipelines/nope.mk"));
    let text = ok(&make(runs.path(), &["help"]));
    assert!(text.contains("PIPELINE=demo") && text.contains("prompt"), "{text}");
}

#[test]
fn mining_dag_on_planted_embeddings() {
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("m");
    ok(&make(runs.path(), &["prompt", "RUN=m"]));
    // Mining on vectors made elsewhere: EMBEDDINGS points at them and saha-embed does not run.
    let planted_path = run.join("planted.parquet");
    let planted = format!("EMBEDDINGS={}", planted_path.display());
    let out = make(runs.path(), &["retrieve", "RUN=m", &planted]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("EMBEDDINGS="),
        "a missing embeddings file is explained"
    );
    saha_tests::mining_data::write_label_embeddings(&run, 16, 3);
    std::fs::rename(run.join("embeddings.parquet"), &planted_path).unwrap();

    let text = ok(&make(
        runs.path(),
        &["audit", "RUN=m", &planted, "TOP_K=4", "POOL_MULT=2"],
    ));
    assert!(
        text.contains("False-negative audit") && text.contains("| topk ") && text.contains("| saha "),
        "{text}"
    );
    for f in [
        "candidates.parquet",
        "owners.parquet",
        "clusters.parquet",
        "mining_stats.parquet",
        "mining/range/clusters.parquet",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let text = ok(&make(
        runs.path(),
        &[
            "sql",
            "RUN=m",
            &planted,
            "Q=select phase, count(*) as n from clusters group by phase order by phase",
        ],
    ));
    assert!(text.contains("| phase |") && text.contains("|     1 |"), "{text}");

    // Up to date: nothing reruns.
    let text = ok(&make(
        runs.path(),
        &["-n", "filter", "RUN=m", &planted, "TOP_K=4", "POOL_MULT=2"],
    ));
    assert!(!text.contains("saha-"), "{text}");
    // -B on candidates reruns retrieval and what depends on it, not the prompt stage.
    let cands = run.join("candidates.parquet");
    let t_cands = mtime(&cands);
    let text = ok(&make(
        runs.path(),
        &[
            "-B",
            cands.to_str().unwrap(),
            "RUN=m",
            &planted,
            "TOP_K=4",
            "POOL_MULT=2",
        ],
    ));
    assert!(
        text.contains("saha-retrieve") && !text.contains("saha-prompt --data"),
        "{text}"
    );
    assert!(mtime(&cands) > t_cands);
    let text = ok(&make(
        runs.path(),
        &["filter", "RUN=m", &planted, "TOP_K=4", "POOL_MULT=2"],
    ));
    assert!(
        text.contains("saha-remap") && text.contains("saha-filter"),
        "what depends on candidates reruns: {text}"
    );
    let t_pairs = mtime(&run.join("pairs.parquet"));
    let t_clusters = mtime(&run.join("clusters.parquet"));
    let text = ok(&make(
        runs.path(),
        &["filter", "RUN=m", &planted, "TOP_K=5", "POOL_MULT=2"],
    ));
    assert!(text.contains("saha-filter") && !text.contains("saha-prompt"), "{text}");
    assert_eq!(mtime(&run.join("pairs.parquet")), t_pairs);
    assert!(mtime(&run.join("clusters.parquet")) > t_clusters);
}

/// The first command in `make -n` output that runs `binary`, its continuation lines joined.
fn command_of(text: &str, binary: &str) -> String {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .find(|l| l.contains(&format!("/{binary} ")))
        .unwrap_or_else(|| panic!("no {binary} command in:\n{text}"))
        .to_string()
}

#[test]
fn unset_parameters_are_left_to_the_stages_own_defaults() {
    let runs = tempfile::tempdir().unwrap();
    let text = ok(&saha_tests::make(runs.path(), &["-n", "train"]));
    let embed = command_of(&text, "saha-embed");
    for flag in ["--resolution", "--max-len", "--batch-tokens"] {
        assert!(!embed.contains(flag), "{flag} passed though unset: {embed}");
    }
    let retrieve = command_of(&text, "saha-retrieve");
    for flag in ["--pool", "--top-k", "--pool-mult"] {
        assert!(!retrieve.contains(flag), "{flag} passed though unset: {retrieve}");
    }
    assert!(!command_of(&text, "saha-filter").contains("--top-k"));
    // The demo pipeline's own choices are passed; what it leaves alone is not.
    let train = command_of(&text, "saha-train");
    assert!(
        train.contains("--max-steps '150'") && !train.contains("--adapter"),
        "{train}"
    );

    let text = ok(&saha_tests::make(
        runs.path(),
        &["-n", "train", "MAX_LEN=512", "TOP_K=5", "ADAPTER=lora"],
    ));
    assert!(command_of(&text, "saha-embed").contains("--max-len '512'"));
    let retrieve = command_of(&text, "saha-retrieve");
    assert!(
        retrieve.contains("--top-k '5'") && !retrieve.contains("--pool "),
        "{retrieve}"
    );
    assert!(command_of(&text, "saha-filter").contains("--top-k '5'"));
    assert!(command_of(&text, "saha-train").contains("--adapter 'lora'"));
}

/// `BACKBONE=qwen2.5-vl`: prompts rendered for Qwen2.5-VL and a tiny Qwen2.5-VL made, embedded, mined,
/// trained (every weight) and evaluated; left unset, neither flag is passed.
#[test]
fn demo_with_backbone_qwen2_5_vl_runs_the_whole_dag() {
    let runs = tempfile::tempdir().unwrap();
    let text = ok(&make(runs.path(), &["-n", "demo"]));
    assert!(!command_of(&text, "saha-prompt").contains("--backbone"), "{text}");
    assert!(!command_of(&text, "saha-init-model").contains("--arch"), "{text}");

    let text = ok(&make(runs.path(), &["demo", "BACKBONE=qwen2.5-vl"]));
    assert!(
        command_of(&text, "saha-prompt").contains("--backbone 'qwen2.5-vl'"),
        "{text}"
    );
    assert!(
        command_of(&text, "saha-init-model").contains("--arch 'qwen2.5-vl'"),
        "{text}"
    );
    let run = runs.path().join("demo");
    let config = std::fs::read_to_string(run.join("model/config.json")).unwrap();
    assert!(config.contains("\"model_type\": \"qwen2_5_vl\""), "{config}");
    for items in ["items.parquet", "eval/items.parquet"] {
        let (_, prov) = saha_schemas::records::read_records::<saha_schemas::Item>(&run.join(items)).unwrap();
        let backbone = prov.unwrap().get(&saha_schemas::provenance::BACKBONE);
        assert_eq!(backbone.as_deref(), Some("qwen2.5-vl"), "{items}");
    }
    for f in [
        "clusters.parquet",
        "train/model/config.json",
        "eval/eval_report.md",
        "eval/tuned/eval_report.md",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    assert!(text.contains("| ShapeClass"), "demo prints its summary:\n{text}");
}

/// The stage commands make printed (continued lines joined), leaving out the demo's silent
/// `saha-sql` summary, which only `make -n` shows.
fn stage_commands(text: &str) -> Vec<String> {
    let bin = saha_tests::bin_dir().display().to_string();
    text.replace("\\\n", " ")
        .lines()
        .filter(|l| l.starts_with(&bin) && !l.contains("/saha-sql "))
        .map(str::to_string)
        .collect()
}

#[test]
fn make_n_lists_exactly_what_make_then_runs_after_a_parameter_change() {
    let runs = tempfile::tempdir().unwrap();
    ok(&make(runs.path(), &["demo"]));
    for change in ["SYSTEM=Describe it.", "TOP_K=5"] {
        let planned = stage_commands(&ok(&make(runs.path(), &["-n", "demo", change])));
        let ran = stage_commands(&ok(&make(runs.path(), &["demo", change])));
        assert!(!ran.is_empty(), "{change}: nothing reran");
        assert_eq!(planned, ran, "{change}: make -n and make disagree");
        let nothing = stage_commands(&ok(&make(runs.path(), &["-n", "demo", change])));
        assert!(nothing.is_empty(), "{change}: still stale after the run: {nothing:?}");
    }
}

/// Every file of `dir` (recursively) by relative path, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// `make demo` twice from scratch gives the same bytes in every artefact, report.html included: the
/// steps' wall-clock times live only in train/timings.json.
#[test]
fn demo_twice_from_scratch_gives_identical_artefacts() {
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("demo");
    ok(&make(runs.path(), &["demo"]));
    let first = tree(&run);
    std::fs::remove_dir_all(&run).unwrap();
    ok(&make(runs.path(), &["demo"]));
    let second = tree(&run);
    let timings = "train/timings.json";
    assert!(
        first.contains_key(timings)
            && first.contains_key("report.html")
            && first.contains_key("train/train_log.parquet")
    );
    let names = |t: &std::collections::BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second));
    let differ: Vec<&String> = first
        .iter()
        .filter(|(name, bytes)| name.as_str() != timings && second[name.as_str()] != **bytes)
        .map(|(name, _)| name)
        .collect();
    assert!(differ.is_empty(), "these differ between two identical runs: {differ:?}");
}

#[test]
fn demo_real_runs_the_wordnet_pipeline_with_three_prompt_variants_dora_and_the_converted_decoder() {
    let runs = tempfile::tempdir().unwrap();
    let text = ok(&saha_tests::make(runs.path(), &["-n", "demo-real"]));
    let commands = stage_commands(&text);
    let find = |binary: &str, needle: &str| {
        commands
            .iter()
            .find(|c| c.contains(binary) && c.contains(needle))
            .unwrap_or_else(|| panic!("no {binary} command with {needle:?} in:\n{text}"))
    };
    let run_dir = runs.path().join("demo-real").display().to_string();
    assert!(find("saha-wordnet", "--wordnet").contains(&format!("--out {run_dir}/data")));
    assert!(find("saha-wordnet", "--hard-distractors").contains("--candidates"));
    find("saha-init-model", "--text-from-gguf");
    find("saha-prompt", "wordnet-prompts.toml");
    assert!(find("saha-prompt", "eval-plain").contains("--no-system --prompt-file pipelines/wordnet-plain.toml"));
    let no_system = find("saha-prompt", "eval-no-system");
    assert!(
        no_system.contains("--no-system") && !no_system.contains("--prompt-file"),
        "the reference's ablation: no system block, the default user-level instruction: {no_system}"
    );
    assert!(find("saha-eval", "--compare").contains("eval-plain/eval_scores.parquet"));
    for variant in ["eval-plain", "eval-no-system"] {
        assert!(find("saha-embed", &format!("{variant}/items.parquet")).contains(&format!("--model '{run_dir}/model'")));
        find("saha-eval", &format!("--out {run_dir}/{variant}/eval_scores.parquet"));
    }
    find("saha-filter", "--also-classification WordNet_Hypernym");
    for baseline in ["topk", "positive-aware", "range"] {
        find("saha-filter", &format!("--strategy {baseline}"));
    }
    assert!(find("saha-train", "--clusters").contains("--adapter 'dora'"));
    find("saha-embed", "--adapter");
    let tuned = find("saha-eval", "tuned/eval_scores.parquet");
    assert_eq!(tuned.matches("--compare").count(), 1, "{tuned}");
    assert!(find("saha-report", "report.html").contains(
        "--scores 'plain=eval-plain/eval_scores.parquet' --scores 'no-system=eval-no-system/eval_scores.parquet' \
--scores 'hierarchical=eval/eval_scores.parquet' --scores 'hierarchical+DoRA=eval/tuned/eval_scores.parquet'"
    ));
}

/// The footer stat `name` of an artefact, as a number (0 when absent).
fn footer_count(path: &Path, name: &str) -> u64 {
    saha_tests::footer_stat(path, name).as_u64().unwrap_or(0)
}

#[test]
fn demo_runs_end_to_end_with_corrupt_images_skipped_and_every_stage_counts_what_it_left_out() {
    use saha_schemas::records::read_records;
    use saha_schemas::{EvalListEntry, Item, Pair};
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("bad");
    ok(&make(runs.path(), &["prompt", "prompt-eval", "RUN=bad"]));
    let read = |file: &str| {
        let (pairs, _) = read_records::<Pair>(&run.join(format!("{file}pairs.parquet"))).unwrap();
        let (items, _) = read_records::<Item>(&run.join(format!("{file}items.parquet"))).unwrap();
        (pairs, items)
    };
    let (pairs, items) = read("");
    let (eval_pairs, eval_items) = read("eval/");
    let (lists, _) = read_records::<EvalListEntry>(&run.join("eval/eval_lists.parquet")).unwrap();
    let image_of = |items: &[Item], id: u32| items.iter().find(|i| i.item_id == id).unwrap().image_path.clone();
    // Training: a query's image and a positive's image. Evaluation: a query's image and the image of a
    // negative candidate of another row.
    let train_images = [
        pairs.iter().find_map(|p| p.qry_image_path.clone()).unwrap(),
        pairs.iter().find_map(|p| p.pos_image_path.clone()).unwrap(),
    ];
    let eval_query = &eval_pairs[0];
    let negative = lists
        .iter()
        .find(|e| e.rank > 0 && e.pair_id != eval_query.pair_id && image_of(&eval_items, e.item_id).is_some())
        .unwrap();
    let eval_images = [
        eval_query.qry_image_path.clone().unwrap(),
        image_of(&eval_items, negative.item_id).unwrap(),
    ];
    let images = run.join("data/images");
    for image in train_images.iter().chain(&eval_images) {
        saha_tests::corrupt_png_inside(&images.join(image));
    }
    let ids_of = |items: &[Item], images: &[String]| -> Vec<u32> {
        let mut ids: Vec<u32> = items
            .iter()
            .filter(|i| i.image_path.as_ref().is_some_and(|p| images.contains(p)))
            .map(|i| i.item_id)
            .collect();
        ids.sort_unstable();
        ids
    };
    let (train_ids, eval_ids) = (ids_of(&items, &train_images), ids_of(&eval_items, &eval_images));
    let train_left_out = pairs
        .iter()
        .filter(|p| train_ids.contains(&p.query_id) || train_ids.contains(&p.target_id))
        .count() as u64;
    let (eval_left_out, candidates_left_out) = saha_tests::eval_left_out(&eval_pairs, &lists, &eval_ids);
    assert!(train_ids.len() >= 2 && train_left_out >= 2 && candidates_left_out > 0);

    // Without skip the DAG stops at embedding, naming the image and the row.
    let out = make(runs.path(), &["embed", "RUN=bad"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains(".png") && text.contains("row"),
        "{text}"
    );

    let text = ok(&make(
        runs.path(),
        &["demo", "RUN=bad", "EMBED_FLAGS_EXTRA=--on-bad-image skip"],
    ));
    let prov = saha_schemas::read::ParquetTable::open(&run.join("embeddings.parquet"))
        .unwrap()
        .provenance()
        .unwrap();
    assert_eq!(prov.stats["skipped_item_ids"], serde_json::json!(train_ids));
    assert_eq!(
        prov.stats["skipped_reasons"],
        serde_json::json!({"undecodable": train_ids.len()})
    );
    for artefact in [
        "candidates.parquet",
        "owners.parquet",
        "clusters.parquet",
        "mining_stats.parquet",
    ] {
        assert_eq!(
            footer_count(&run.join(artefact), "left_out_pairs"),
            train_left_out,
            "{artefact}"
        );
    }
    for artefact in ["eval/eval_scores.parquet", "eval/tuned/eval_scores.parquet"] {
        assert_eq!(
            footer_count(&run.join(artefact), "left_out_pairs"),
            eval_left_out.len() as u64,
            "{artefact}"
        );
        assert_eq!(
            footer_count(&run.join(artefact), "left_out_candidates"),
            candidates_left_out as u64
        );
    }
    let eval_report = std::fs::read_to_string(run.join("eval/eval_report.md")).unwrap();
    let note = format!(
        "{} eval rows left out and {candidates_left_out} candidates taken",
        eval_left_out.len()
    );
    assert!(eval_report.contains(&note), "{eval_report}");
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        page.contains(&format!("saha: {train_left_out} pairs left out before mining")),
        "report.html says what mining left out"
    );
    for stage in ["saha-retrieve", "saha-remap", "saha-filter"] {
        assert!(
            text.contains(&format!("{stage}: {train_left_out} pairs left out")),
            "{stage} says what it left out:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("saha-train: trained without {train_left_out} pairs")),
        "{text}"
    );
}
