//! `saha-report` end to end: every section on a planted run (numbers checked against hand-computed
//! values, input hashes in the footer, same bytes on a rerun), the page rendered by headless
//! Chromium and its screenshot checked, a run with nothing (each section says what is missing),
//! bad inputs, and `make report`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use saha_schemas::embeddings::Embeddings;
use saha_schemas::provenance::sha256_file;
use saha_schemas::records::write_records;
use saha_schemas::{ClusterMember, EvalScore, MiningStats, Provenance, TrainLogRow};
use saha_tests::{files_in, run, stderr, write_columns};

fn prov() -> Provenance {
    Provenance::new("test", "0")
}

/// Unit vector whose cosine with (1, 0) is `s`.
fn at(s: f32) -> Vec<f32> {
    vec![s, (1.0 - s * s).max(0.0).sqrt()]
}

/// Scores of targets 100.. against every query (all queries are (1, 0)).
const TARGET_SCORES: [f32; 5] = [0.9, 0.3, 0.3, 0.9, 0.5];

fn write_embeddings(path: &Path) {
    let mut item_ids: Vec<u32> = (0..5).collect();
    let mut values: Vec<f32> = (0..5).flat_map(|_| [2.0, 0.0]).collect(); // not unit: the report normalises
    for (i, &s) in TARGET_SCORES.iter().enumerate() {
        item_ids.push(100 + i as u32);
        values.extend(at(s));
    }
    Embeddings {
        item_ids,
        dim: 2,
        values,
        model: "planted".into(),
        normalized: false,
    }
    .write(path, &prov())
    .unwrap();
}

/// Clusters as lists of pair numbers, anchor first; pair i is (query i, target 100 + i).
fn write_clusters(path: &Path, clusters: &[&[u32]]) {
    let rows: Vec<ClusterMember> = clusters
        .iter()
        .enumerate()
        .flat_map(|(c, pairs)| {
            pairs.iter().enumerate().map(move |(pos, &p)| ClusterMember {
                cluster_id: c as u32,
                position: pos as u16,
                pair_id: p,
                query_id: p,
                target_id: 100 + p,
                phase: 1,
                subset: "S1".into(),
                anchor_similarity: 1.0,
            })
        })
        .collect();
    write_records(path, &rows, &prov()).unwrap();
}

fn stats(strategy: &str, subset: &str, labelled: u32, false_negatives: u32) -> MiningStats {
    MiningStats {
        strategy: strategy.into(),
        subset: subset.into(),
        pairs: 5,
        labelled_negatives: labelled,
        negatives: labelled,
        false_negatives,
        false_negative_rate: (labelled > 0).then(|| false_negatives as f64 / labelled as f64),
        ..Default::default()
    }
}

fn score(subset: &str, p_at_1: f64) -> EvalScore {
    EvalScore {
        subset: subset.into(),
        meta_task: "Retrieval".into(),
        ind_ood: "IND".into(),
        n: 4,
        correct: (p_at_1 * 4.0) as u32,
        p_at_1,
        hits_at_5: 4,
        hit_at_5: 1.0,
        mrr: p_at_1,
        ties_won: 0,
        min_candidates: 8,
        max_candidates: 8,
        eval_set: format!("set-{subset}"),
    }
}

/// A run with every input the report reads.
fn planted_run(run: &Path) {
    write_embeddings(&run.join("embeddings.parquet"));
    // SaHa: positives 0.9, 0.9; negatives 0.3, 0.3, 0.5 (none above its positive).
    write_clusters(&run.join("clusters.parquet"), &[&[0, 1, 2], &[3, 4]]);
    write_records(
        &run.join("mining_stats.parquet"),
        &[stats("saha", "S1", 4, 1), stats("saha", "S2", 0, 0)],
        &prov(),
    )
    .unwrap();
    // topk: positive 0.3; negatives 0.9 and 0.5, both above it.
    let topk = run.join("mining/topk");
    write_clusters(&topk.join("clusters.parquet"), &[&[1, 0, 4]]);
    write_records(
        &topk.join("mining_stats.parquet"),
        &[stats("topk", "S1", 10, 5)],
        &prov(),
    )
    .unwrap();
    let log: Vec<TrainLogRow> = (1..=20)
        .map(|step| TrainLogRow {
            step,
            loss: 3.0 - step as f32 * 0.1,
            lr: if step <= 4 {
                step as f64 * 1e-4
            } else {
                4e-4 * (20 - step) as f64 / 16.0
            },
            grad_norm: 1.5,
            pairs: 10,
        })
        .collect();
    write_records(&run.join("train/train_log.parquet"), &log, &prov()).unwrap();
    write_records(
        &run.join("eval/eval_scores.parquet"),
        &[score("S1", 0.25), score("S2", 0.5)],
        &prov(),
    )
    .unwrap();
    write_records(
        &run.join("eval/tuned/eval_scores.parquet"),
        &[score("S1", 0.75), score("S2", 0.5)],
        &prov(),
    )
    .unwrap();
}

fn report(run_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--run", run_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run("saha-report", &args)
}

/// The `<section id="...">` block of the page.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").unwrap() + start;
    &html[start..end]
}

/// Headless Chromium: $SAHA_CHROMIUM, else `chromium` or `chromium-headless-shell` on PATH
/// (scripts/setup-test.sh installs Debian's `chromium`; `make test` runs it first).
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("SAHA_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-headless-shell",
        "chromium-browser",
        "google-chrome",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no headless Chromium on PATH (chromium or chromium-headless-shell): run scripts/setup-test.sh \
         (make test does), or set SAHA_CHROMIUM"
    );
}

/// Opens `html` in headless Chromium at 1200 x 2000 and saves a PNG screenshot to `png`.
fn screenshot(html: &Path, png: &Path, profile: &Path) {
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2000")
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "chromium failed ({status}):\n{err}");
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium took over 120 s to screenshot {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn planted_run_every_section_and_chromium_renders_it() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("planted");
    planted_run(&run_dir);
    let out = report(&run_dir, &["--title", "Planted <run>"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page_path = run_dir.join("report.html");
    assert!(stderr(&out).contains("8 inputs"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("nothing yet"), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(
        html.contains("<title>Planted &lt;run&gt;</title>"),
        "the title is escaped"
    );
    // Self-contained: no scripts, stylesheets or images fetched from elsewhere.
    for external in ["<script", "<link", "<img", "src=", "http://", "https://"] {
        let stripped = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!stripped.contains(external), "external resource {external}");
    }
    assert!(!html.contains("class=\"missing\""), "nothing is missing:\n{html}");

    // Similarities: SaHa positives 0.9, 0.9 / negatives 0.3, 0.3, 0.5; topk 0.3 / 0.9, 0.5.
    let sims = section(&html, "similarities");
    assert!(
        sims.contains("<td>saha</td><td>2</td><td>3</td><td>0.900</td><td>0.367</td><td>0.0%</td>"),
        "{sims}"
    );
    assert!(
        sims.contains("<td>topk</td><td>1</td><td>2</td><td>0.300</td><td>0.700</td><td>100.0%</td>"),
        "{sims}"
    );
    assert_eq!(sims.matches("<svg").count(), 2, "one histogram per miner");
    assert!(sims.contains("anchor-positive (2)") && sims.contains("anchor-negative (3)"));

    // Audit: SaHa 1/4 on S1, no labels on S2; topk 5/10.
    let audit = section(&html, "audit");
    assert!(audit.contains("25.0% <span class=\"dim\">(1 / 4)</span>"), "{audit}");
    assert!(audit.contains("n/a <span class=\"dim\">(0 / 0)</span>"), "{audit}");
    assert!(audit.contains("50.0% <span class=\"dim\">(5 / 10)</span>"), "{audit}");
    assert_eq!(audit.matches("<svg").count(), 1);

    // Cluster sizes: SaHa one of 3 and one of 2; topk one of 3.
    let sizes = section(&html, "sizes");
    assert!(
        sizes.contains("<b>saha</b> 2 clusters, mean size 2.50, largest 3"),
        "{sizes}"
    );
    assert!(
        sizes.contains("<b>topk</b> 1 clusters, mean size 3.00, largest 3"),
        "{sizes}"
    );
    assert_eq!(sizes.matches("<svg").count(), 2);

    // Training: 20 steps of 10 pairs; loss 2.9 -> 1.0.
    let training = section(&html, "training");
    assert!(
        training.contains("20 steps (1 to 20), 200 (query, positive) pairs. Mean loss"),
        "{training}"
    );
    assert!(
        training.contains("first 2 steps 2.850, of the last 2 1.050; peak learning rate 4.000e-4"),
        "{training}"
    );
    assert_eq!(training.matches("<svg").count(), 2, "loss and learning rate");
    assert!(training.contains("<polyline"), "curves are drawn");

    // P@1: S1 25 -> 75, S2 50 -> 50; mean 37.5 -> 62.5.
    let eval = section(&html, "eval");
    assert!(
        eval.contains("<td>S1</td><td>Retrieval</td><td>4</td><td>25.0</td><td>75.0</td><td>+50.0</td>"),
        "{eval}"
    );
    assert!(eval.contains("<td>S2</td><td>Retrieval</td><td>4</td><td>50.0</td><td>50.0</td><td>+0.0</td>"));
    assert!(eval.contains("<td>37.5</td><td>62.5</td><td>+25.0</td>"), "{eval}");
    assert_eq!(eval.matches("<svg").count(), 1);

    // Footer: every input with its SHA-256, paths relative to the run.
    let inputs = section(&html, "inputs");
    for rel in [
        "clusters.parquet",
        "mining_stats.parquet",
        "mining/topk/clusters.parquet",
        "mining/topk/mining_stats.parquet",
        "embeddings.parquet",
        "train/train_log.parquet",
        "eval/eval_scores.parquet",
        "eval/tuned/eval_scores.parquet",
    ] {
        let (sha, bytes) = sha256_file(&run_dir.join(rel)).unwrap();
        assert!(
            inputs.contains(&format!(
                "<tr><td>{rel}</td><td>test 0</td><td>{bytes}</td><td>{sha}</td></tr>"
            )),
            "{rel} in the footer:\n{inputs}"
        );
    }

    // The same inputs give the same bytes, and the write leaves no temporary behind.
    let first = std::fs::read(&page_path).unwrap();
    let out = report(&run_dir, &["--title", "Planted <run>"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(&page_path).unwrap() == first,
        "the same inputs gave other bytes"
    );
    assert_eq!(
        files_in(&run_dir),
        [
            "clusters.parquet",
            "embeddings.parquet",
            "mining_stats.parquet",
            "report.html"
        ]
    );

    // Rendered by a real browser: a 1200 x 2000 screenshot with the charts' colours in it.
    let png = dir.path().join("report.png");
    screenshot(&page_path, &png, &dir.path().join("chromium-profile"));
    let bytes = std::fs::metadata(&png).expect("chromium wrote the screenshot").len();
    assert!(bytes > 20_000, "screenshot is only {bytes} bytes");
    let image = image::open(&png).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (1200, 2000));
    let mut colours = std::collections::HashSet::new();
    let (mut saha_blue, mut dark) = (0usize, 0usize);
    for p in image.pixels() {
        colours.insert(p.0);
        let [r, g, b] = p.0;
        // SaHa's bars in the audit chart and its legend chips: rgb(31, 119, 180).
        saha_blue += usize::from(r.abs_diff(31) < 8 && g.abs_diff(119) < 8 && b.abs_diff(180) < 8);
        dark += usize::from(r < 80 && g < 80 && b < 80);
    }
    eprintln!(
        "screenshot: {bytes} bytes, {} colours, {saha_blue} SaHa-blue pixels, {dark} dark pixels",
        colours.len()
    );
    assert!(
        colours.len() > 100,
        "only {} colours: not a rendered page",
        colours.len()
    );
    assert!(
        saha_blue > 1_000,
        "{saha_blue} pixels of SaHa's bar colour: the SVG charts did not render"
    );
    assert!(dark > 5_000, "{dark} dark pixels: the text did not render");
}

#[test]
fn empty_run_each_section_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("empty");
    std::fs::create_dir_all(&run_dir).unwrap();
    let out = report(&run_dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 inputs")
            && stderr(&out).contains("nothing yet for: similarities, audit, sizes, training, eval"),
        "{}",
        stderr(&out)
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(!html.contains("<svg"));
    assert!(section(&html, "similarities").contains("No clusters.parquet in this run"));
    assert!(section(&html, "audit").contains("No mining_stats.parquet in this run"));
    assert!(section(&html, "training").contains("No training yet"));
    assert!(section(&html, "eval").contains("No evaluation yet"));
    assert!(section(&html, "inputs").contains("Not in this run: <code>clusters.parquet</code>"));

    // Scores before training only, and clusters without embeddings: partial sections.
    write_records(&run_dir.join("eval/eval_scores.parquet"), &[score("S1", 0.25)], &prov()).unwrap();
    write_clusters(&run_dir.join("clusters.parquet"), &[&[0, 1]]);
    let out = report(
        &run_dir,
        &["--out", dir.path().join("elsewhere/r.html").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing yet for: audit, training"),
        "{}",
        stderr(&out)
    );
    let html = std::fs::read_to_string(dir.path().join("elsewhere/r.html")).unwrap();
    let eval = section(&html, "eval");
    assert!(
        eval.contains("No scores after training yet") && eval.contains("<td>25.0</td><td>n/a</td>"),
        "{eval}"
    );
    assert!(section(&html, "similarities").contains("embeddings.parquet is missing"));
    assert!(section(&html, "sizes").contains("<b>saha</b> 1 clusters"));
}

#[test]
fn bad_inputs_fail_and_leave_the_old_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = report(&dir.path().join("nope"), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a folder"), "{}", stderr(&out));

    let run_dir = dir.path().join("bad");
    planted_run(&run_dir);
    let page = run_dir.join("report.html");
    std::fs::write(&page, "old").unwrap();
    // Clusters naming a target the embeddings lack.
    write_clusters(&run_dir.join("mining/topk/clusters.parquet"), &[&[1, 7]]);
    let out = report(&run_dir, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("mining/topk/clusters.parquet") && stderr(&out).contains("target 107"),
        "{}",
        stderr(&out)
    );
    // A file that is not a clusters table.
    write_columns(
        &run_dir.join("clusters.parquet"),
        vec![(
            "cluster",
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["x"])) as arrow::array::ArrayRef,
        )],
    );
    let out = report(&run_dir, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad/clusters.parquet"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        "old",
        "a failed run leaves the old report"
    );
    assert_eq!(
        files_in(&run_dir),
        [
            "clusters.parquet",
            "embeddings.parquet",
            "mining_stats.parquet",
            "report.html"
        ]
    );
}

fn make(runs: &Path, args: &[&str]) -> String {
    let out = saha_tests::make_small(runs, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "make {args:?} failed:\n{text}");
    text
}

#[test]
fn make_report_follows_the_run() {
    let runs = tempfile::tempdir().unwrap();
    let run_dir = runs.path().join("r");
    make(runs.path(), &["prompt", "RUN=r"]);
    let text = make(runs.path(), &["report", "RUN=r"]);
    assert!(text.contains("saha-report --run"), "{text}");
    let page = run_dir.join("report.html");
    assert!(std::fs::read_to_string(&page)
        .unwrap()
        .contains("No clusters.parquet in this run"));
    // Up to date: nothing reruns; a new flag reruns it.
    assert!(!make(runs.path(), &["-n", "report", "RUN=r"]).contains("saha-report"));
    let text = make(runs.path(), &["-n", "report", "RUN=r", "REPORT_FLAGS_EXTRA=--bins 10"]);
    assert!(text.contains("saha-report") && text.contains("--bins 10"), "{text}");

    // Mining on planted embeddings: the report reruns and shows it, without training or eval.
    // Planted vectors under another name, so saha-embed (and the model) stay out of it.
    saha_tests::mining_data::write_label_embeddings(&run_dir, 16, 3);
    let planted_path = run_dir.join("planted.parquet");
    std::fs::rename(run_dir.join("embeddings.parquet"), &planted_path).unwrap();
    let planted = format!("EMBEDDINGS={}", planted_path.display());
    make(runs.path(), &["filter", "RUN=r", &planted, "TOP_K=4", "POOL_MULT=2"]);
    let text = make(runs.path(), &["report", "RUN=r", &planted, "TOP_K=4", "POOL_MULT=2"]);
    assert!(text.contains("saha-report") && !text.contains("saha-train"), "{text}");
    let html = std::fs::read_to_string(&page).unwrap();
    for miner in ["saha", "topk", "positive-aware", "range"] {
        assert!(
            section(&html, "similarities").contains(&format!("<b>{miner}</b>")),
            "{miner}"
        );
    }
    assert!(section(&html, "training").contains("No training yet"));
    assert!(section(&html, "inputs").contains("<tr><td>planted.parquet</td><td>test 0</td>"));
}

/// `--scores LABEL=FILE`, repeated: one P@1 series per file in the given order (prompt variants, then a
/// fine-tune), the difference last minus first, a missing file named, a malformed spec refused.
#[test]
fn scores_flags_give_one_series_per_file_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    for (file, s1, s2) in [
        ("eval-plain/eval_scores.parquet", 0.25, 0.5),
        ("eval-no-system/eval_scores.parquet", 0.5, 0.5),
        ("eval/eval_scores.parquet", 0.75, 0.25),
        ("eval/tuned/eval_scores.parquet", 1.0, 0.75),
    ] {
        write_records(&run_dir.join(file), &[score("S1", s1), score("S2", s2)], &prov()).unwrap();
    }
    let series = [
        "--scores",
        "plain=eval-plain/eval_scores.parquet",
        "--scores",
        "no-system=eval-no-system/eval_scores.parquet",
        "--scores",
        "hierarchical=eval/eval_scores.parquet",
        "--scores",
        "hierarchical+DoRA=eval/tuned/eval_scores.parquet",
    ];
    let out = report(&run_dir, &series);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    let eval = section(&html, "eval");
    assert!(
        eval.contains(
            "<th>P@1 plain</th><th>P@1 no-system</th><th>P@1 hierarchical</th><th>P@1 hierarchical+DoRA</th><th>&Delta;</th>"
        ),
        "{eval}"
    );
    assert!(
        eval.contains("<td>S1</td><td>Retrieval</td><td>4</td><td>25.0</td><td>50.0</td><td>75.0</td><td>100.0</td><td>+75.0</td>"),
        "{eval}"
    );
    assert!(
        eval.contains("<td>37.5</td><td>50.0</td><td>50.0</td><td>87.5</td><td>+50.0</td>"),
        "means: {eval}"
    );
    assert!(
        eval.contains("hierarchical+DoRA (eval/tuned/eval_scores.parquet)"),
        "{eval}"
    );
    assert_eq!(eval.matches("<svg").count(), 1);

    std::fs::remove_file(run_dir.join("eval-no-system/eval_scores.parquet")).unwrap();
    let out = report(&run_dir, &series);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    let eval = section(&html, "eval");
    assert!(
        eval.contains("No no-system scores (eval-no-system/eval_scores.parquet is missing).")
            && eval.contains("<td>25.0</td><td>n/a</td><td>75.0</td>"),
        "{eval}"
    );

    let out = report(&run_dir, &["--scores", "eval/eval_scores.parquet"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("expected LABEL=FILE"), "{}", stderr(&out));
}
