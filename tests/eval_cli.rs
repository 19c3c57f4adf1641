//! `saha-eval` end to end: P@1 with the first-maximum tie rule, hit@5 and MRR on hand-made
//! embeddings, the meta-task / IND / OOD aggregation against hand-computed numbers, every bad
//! input the issue lists, --compare, `make eval` on the demo, and SugarCrepe(++).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use saha_schemas::embeddings::Embeddings;
use saha_schemas::read::ParquetTable;
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{EvalListEntry, EvalScore, Item, Provenance, Side, SugarCrepeScore};
use saha_tests::{make_small, run, stderr, stdout, write_eval, write_png, EvalRow};

/// A candidate: its text and the score it should get against the row's query.
type Cand = (String, f32);

/// One subset: rows of (query text, candidates), candidate 0 the ground truth.
struct Subset {
    name: String,
    rows: Vec<(String, Vec<Cand>)>,
}

/// Unique candidate texts per row; `dup` repeats the ground truth's text (so the same item).
fn row(subset: &str, r: usize, gt: f32, others: &[f32]) -> (String, Vec<Cand>) {
    let mut c = vec![(format!("{subset} r{r} c0"), gt)];
    c.extend(
        others
            .iter()
            .enumerate()
            .map(|(k, &s)| (format!("{subset} r{r} c{}", k + 1), s)),
    );
    (format!("{subset} query {r}"), c)
}

/// A query that is answered correctly (`true`) or not, with two distractors.
fn hit(subset: &str, r: usize, correct: bool) -> (String, Vec<Cand>) {
    if correct {
        row(subset, r, 0.9, &[0.1, 0.2])
    } else {
        row(subset, r, 0.1, &[0.5, 0.2])
    }
}

fn subset(name: &str, rows: Vec<(String, Vec<Cand>)>) -> Subset {
    Subset {
        name: name.to_string(),
        rows,
    }
}

/// Unit vector whose inner product with (1, 0) is `s`.
fn at(s: f32) -> Vec<f32> {
    vec![s, (1.0 - s * s).max(0.0).sqrt()]
}

/// Writes the subsets as MMEB-eval files, runs saha-prompt into `dir/eval`, and writes
/// embeddings (model `model`): queries (1, 0), each candidate at its planned score.
fn eval_set(dir: &Path, subsets: &[Subset], model: &str) {
    for s in subsets {
        let rows: Vec<EvalRow> = s
            .rows
            .iter()
            .map(|(q, c)| (q.as_str(), "", c.iter().map(|(t, _)| (t.as_str(), "")).collect()))
            .collect();
        write_eval(&dir.join(format!("data/{}.parquet", s.name)), &rows);
    }
    let out = run(
        "saha-prompt",
        &[
            "--data",
            dir.join("data").to_str().unwrap(),
            "--out-dir",
            dir.join("eval").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    write_vectors(dir, subsets, model, |_, s| at(s), "embeddings.parquet");
}

/// Embeddings for every item of `dir/eval/items.parquet`: queries get `query(item)`, candidates
/// `cand(item, planned score)`.
fn write_vectors(
    dir: &Path,
    subsets: &[Subset],
    model: &str,
    cand: impl Fn(&Item, f32) -> Vec<f32>,
    name: &str,
) -> PathBuf {
    let mut planned: HashMap<(String, String), f32> = HashMap::new();
    for s in subsets {
        for (_, cands) in &s.rows {
            for (t, score) in cands {
                let old = planned.insert((s.name.clone(), t.clone()), *score);
                assert!(old.is_none_or(|o| o == *score), "{t}: two planned scores");
            }
        }
    }
    let (items, _) = read_records::<Item>(&dir.join("eval/items.parquet")).unwrap();
    let mut values = Vec::new();
    for it in &items {
        values.extend(match it.side {
            Side::Query => vec![1.0, 0.0],
            Side::Target => cand(it, planned[&(it.subset.clone(), it.text.clone())]),
        });
    }
    let e = Embeddings {
        item_ids: items.iter().map(|i| i.item_id).collect(),
        dim: 2,
        values,
        model: model.to_string(),
        normalized: true,
    };
    let path = dir.join("eval").join(name);
    e.write(&path, &Provenance::new("test", "0")).unwrap();
    path
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).to_str().unwrap().to_string()
}

/// saha-eval mmeb on `dir/eval` with `embeddings` (relative to dir/eval), output `out`.
fn mmeb(dir: &Path, embeddings: &[&str], out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "mmeb".to_string(),
        "--pairs".into(),
        p(dir, "eval/pairs.parquet"),
        "--items".into(),
        p(dir, "eval/items.parquet"),
        "--eval-lists".into(),
        p(dir, "eval/eval_lists.parquet"),
        "--out".into(),
        p(dir, out),
    ];
    for e in embeddings {
        args.push("--embeddings".into());
        args.push(p(dir, &format!("eval/{e}")));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run("saha-eval", &refs)
}

#[track_caller]
fn succeeds(out: &Output) -> String {
    assert!(out.status.success(), "saha-eval failed: {}", stderr(out));
    stdout(out)
}

#[track_caller]
fn refused(out: &Output, expected: &[&str], not_written: &[&Path]) {
    let msg = stderr(out);
    assert!(!out.status.success(), "should fail: {msg}");
    for e in expected {
        assert!(msg.contains(e), "message lacks {e:?}: {msg}");
    }
    for f in not_written {
        assert!(!f.exists(), "{} written on error", f.display());
    }
}

fn scores(path: &Path) -> Vec<EvalScore> {
    read_records::<EvalScore>(path).unwrap().0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn tie_subsets() -> Vec<Subset> {
    vec![
        subset(
            "VisDial",
            vec![
                // Every candidate ties with the ground truth: correct (first maximum), rank 1.
                row("VisDial", 0, 0.5, &[0.5, 0.5, 0.5]),
                // One strictly higher; the later tie does not push it further down: rank 2.
                row("VisDial", 1, 0.3, &[0.9, 0.3, 0.1]),
                // Six strictly higher: rank 7, outside hit@5.
                row("VisDial", 2, 0.1, &[0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
                // A duplicate of the ground truth among the distractors (same item): a tie, correct.
                (
                    "VisDial query 3".into(),
                    vec![
                        ("VisDial r3 c0".into(), 0.6),
                        ("VisDial r3 c1".into(), 0.2),
                        ("VisDial r3 c0".into(), 0.6),
                        ("VisDial r3 c3".into(), 0.4),
                    ],
                ),
                // Clear win.
                row("VisDial", 4, 0.8, &[0.1, 0.2]),
                // Four strictly higher: rank 5, still a hit@5.
                row("VisDial", 5, 0.2, &[0.3, 0.4, 0.5, 0.6]),
            ],
        ),
        // A degenerate encoder: every candidate of every row has the same vector.
        subset(
            "NIGHTS",
            (0..3)
                .map(|r| row("NIGHTS", r, 0.25, &[0.25, 0.25, 0.25, 0.25]))
                .collect(),
        ),
    ]
}

#[test]
fn precision_at_1_breaks_ties_toward_the_ground_truth_and_ranks_for_hit5_and_mrr() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    eval_set(dir, &tie_subsets(), "hand-made");
    let text = succeeds(&mmeb(dir, &["embeddings.parquet"], "eval_scores.parquet", &[]));
    let rows = scores(&dir.join("eval_scores.parquet"));
    // Report order: the built-in list (VisDial before NIGHTS), not input order (sorted by name).
    assert_eq!(
        rows.iter().map(|r| r.subset.as_str()).collect::<Vec<_>>(),
        ["VisDial", "NIGHTS"]
    );
    let v = &rows[0];
    assert_eq!((v.n, v.correct, v.hits_at_5, v.ties_won), (6, 3, 5, 2));
    assert!(close(v.p_at_1, 0.5) && close(v.hit_at_5, 5.0 / 6.0));
    let mrr = (1.0 + 0.5 + 1.0 / 7.0 + 1.0 + 1.0 + 0.2) / 6.0;
    assert!(close(v.mrr, mrr), "{} vs {mrr}", v.mrr);
    assert_eq!((v.min_candidates, v.max_candidates), (3, 7));
    assert_eq!((v.meta_task.as_str(), v.ind_ood.as_str()), ("Retrieval", "IND"));

    // All candidates tie: P@1 = 1, as the reference's argmax gives.
    let n = &rows[1];
    assert_eq!((n.n, n.correct, n.ties_won), (3, 3, 3));
    assert!(close(n.p_at_1, 1.0) && close(n.mrr, 1.0) && close(n.hit_at_5, 1.0));

    assert!(
        text.contains("| VisDial | Retrieval | IND | 6 | 3 | 50.00 | 83.33 | 64.05 | 2 | 3-7 |"),
        "{text}"
    );
    assert!(
        text.contains("| NIGHTS | Retrieval | IND | 3 | 3 | 100.00 | 100.00 | 100.00 | 3 | 5 |"),
        "{text}"
    );
    assert!(
        text.contains("5 queries counted correct only through the first-maximum tie rule"),
        "{text}"
    );
    // The report file holds what was printed; the model is in both outputs' metadata.
    assert_eq!(std::fs::read_to_string(dir.join("eval_report.md")).unwrap(), text);
    assert!(text.contains("model: `hand-made`"), "{text}");
    let table = ParquetTable::open(&dir.join("eval_scores.parquet")).unwrap();
    assert_eq!(table.key_values["saha.embedding.model"], "hand-made");
    assert_eq!(table.key_values["saha.eval.set"].len(), 16);
}

#[test]
fn meta_task_ind_and_ood_are_unweighted_means_over_subsets() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mk = |name: &str, pattern: &[bool]| {
        subset(
            name,
            pattern.iter().enumerate().map(|(r, &c)| hit(name, r, c)).collect(),
        )
    };
    let subsets = vec![
        mk("ImageNet-1K", &[true, true, false, true]), // CLS IND 0.75
        mk("Place365", &[true, false]),                // CLS OOD 0.5
        mk("VisDial", &[true, true]),                  // RET IND 1.0
        mk("OVEN", &[false, true, false, false]),      // RET OOD 0.25
        mk("GQA", &[false]),                           // VQA OOD 0.0
        mk("MSCOCO", &[false, true]),                  // VG  IND 0.5
        mk("Shapes", &[true, true]),                   // not MMEB 1.0
    ];
    eval_set(dir, &subsets, "m");

    // Without a task map, Shapes is `unknown` / `custom`: in the overall mean, not in IND/OOD.
    let out = mmeb(dir, &["embeddings.parquet"], "a/eval_scores.parquet", &[]);
    let text = succeeds(&out);
    assert!(
        stderr(&out).contains("not MMEB subsets and not in a --task-map: Shapes"),
        "{}",
        stderr(&out)
    );
    let rows = scores(&dir.join("a/eval_scores.parquet"));
    let order: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.subset.as_str(), r.meta_task.as_str(), r.ind_ood.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("ImageNet-1K", "Classification", "IND"),
            ("Place365", "Classification", "OOD"),
            ("GQA", "VQA", "OOD"),
            ("VisDial", "Retrieval", "IND"),
            ("OVEN", "Retrieval", "OOD"),
            ("MSCOCO", "Visual Grounding", "IND"),
            ("Shapes", "unknown", "custom"),
        ]
    );
    // Hand-computed: CLS (0.75+0.5)/2, VQA 0, RET (1+0.25)/2, VG 0.5, IND (0.75+1+0.5)/3,
    // OOD (0.5+0.25+0)/3, overall (0.75+0.5+1+0.25+0+0.5+1)/7 (queries-weighted would be 10/17).
    for line in [
        "| Classification | 2 | 62.50 |",
        "| VQA | 1 | 0.00 |",
        "| Retrieval | 2 | 62.50 |",
        "| Visual Grounding | 1 | 50.00 |",
        "| unknown | 1 | 100.00 |",
        "| IND | 3 | 75.00 |",
        "| OOD | 3 | 25.00 |",
        "| **Overall** | 7 | 57.14 |",
    ] {
        assert!(text.contains(line), "lacks {line:?}:\n{text}");
    }
    assert!(text.contains("only 6 of the 36 MMEB subsets are present"), "{text}");
    let prov = ParquetTable::open(&dir.join("a/eval_scores.parquet"))
        .unwrap()
        .provenance()
        .unwrap();
    let agg = &prov.stats["aggregates"];
    let get = |k: &str| agg[k]["p_at_1"].as_f64().unwrap();
    assert!(close(get("Classification"), 0.625) && close(get("Retrieval"), 0.625));
    assert!(close(get("IND"), 0.75) && close(get("OOD"), 0.25) && close(get("Overall"), 4.0 / 7.0));

    // A task map places Shapes (and may move a built-in subset).
    let map = dir.join("map.toml");
    std::fs::write(
        &map,
        "[subsets]\nShapes = { meta_task = \"VQA\", ind_ood = \"OOD\" }\nGQA = \"Riddles\"\n",
    )
    .unwrap();
    let text = succeeds(&mmeb(
        dir,
        &["embeddings.parquet"],
        "b/eval_scores.parquet",
        &["--task-map", map.to_str().unwrap()],
    ));
    for line in [
        "| VQA | 1 | 100.00 |",
        "| Riddles | 1 | 0.00 |",
        "| IND | 3 | 75.00 |",
        // OOD: Place365 0.5, OVEN 0.25, Shapes 1.0 (GQA is custom now).
        "| OOD | 3 | 58.33 |",
        "| **Overall** | 7 | 57.14 |",
        "| Shapes | VQA | OOD | 2 | 2 |",
        "| GQA | Riddles | custom | 1 | 0 |",
    ] {
        assert!(text.contains(line), "lacks {line:?}:\n{text}");
    }
    // The same in JSON.
    let json = dir.join("map.json");
    std::fs::write(
        &json,
        r#"{"subsets": {"Shapes": {"meta_task": "VQA", "ind_ood": "OOD"}, "GQA": "Riddles"}}"#,
    )
    .unwrap();
    succeeds(&mmeb(
        dir,
        &["embeddings.parquet"],
        "c/eval_scores.parquet",
        &["--task-map", json.to_str().unwrap()],
    ));
    assert_eq!(
        scores(&dir.join("b/eval_scores.parquet")),
        scores(&dir.join("c/eval_scores.parquet"))
    );
    // A bad task map is named.
    std::fs::write(
        &map,
        "[subsets]\nShapes = { meta_task = \"VQA\", ind_ood = \"sideways\" }\n",
    )
    .unwrap();
    refused(
        &mmeb(
            dir,
            &["embeddings.parquet"],
            "d/eval_scores.parquet",
            &["--task-map", map.to_str().unwrap()],
        ),
        &["map.toml", "subset `Shapes`", "`sideways`", "IND, OOD or custom"],
        &[&dir.join("d/eval_scores.parquet")],
    );
}

fn rewrite_lists(dir: &Path, f: impl Fn(&mut Vec<EvalListEntry>)) -> PathBuf {
    let (mut rows, prov) = read_records::<EvalListEntry>(&dir.join("eval/eval_lists.parquet")).unwrap();
    f(&mut rows);
    let path = dir.join("bad/eval_lists.parquet");
    write_records(&path, &rows, &prov.unwrap()).unwrap();
    path
}

#[test]
fn bad_input_is_refused_with_names_and_nothing_written() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    eval_set(dir, &tie_subsets(), "m");
    let out = dir.join("x/eval_scores.parquet");
    let report = dir.join("x/eval_report.md");
    let outputs = [out.as_path(), report.as_path()];
    let with_lists = |lists: &Path| {
        let args = [
            "mmeb".to_string(),
            "--pairs".into(),
            p(dir, "eval/pairs.parquet"),
            "--items".into(),
            p(dir, "eval/items.parquet"),
            "--embeddings".into(),
            p(dir, "eval/embeddings.parquet"),
            "--eval-lists".into(),
            lists.to_str().unwrap().to_string(),
            "--out".into(),
            out.to_str().unwrap().to_string(),
        ];
        run("saha-eval", &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Pair ids follow the prompt stage's subset order (by name: NIGHTS first).
    let (pairs, _) = read_records::<saha_schemas::Pair>(&dir.join("eval/pairs.parquet")).unwrap();
    let pair = |q: &str| pairs.iter().find(|p| p.qry == q).unwrap().clone();
    let (p1, p2, p4) = (
        pair("VisDial query 1"),
        pair("VisDial query 2"),
        pair("VisDial query 4"),
    );

    // An eval row whose candidate list is empty (no eval_lists rows for it).
    let lists = rewrite_lists(dir, |r| r.retain(|e| e.pair_id != p1.pair_id));
    refused(
        &with_lists(&lists),
        &[
            "bad/eval_lists.parquet",
            "1 eval row(s) have an empty candidate list",
            &format!("pair_id {} (VisDial)", p1.pair_id),
        ],
        &outputs,
    );
    // A gap in the ranks.
    let lists = rewrite_lists(dir, |r| r.retain(|e| !(e.pair_id == p2.pair_id && e.rank == 3)));
    refused(
        &with_lists(&lists),
        &[&format!("pair_id {} (subset VisDial)", p2.pair_id), "rank 3 is missing"],
        &outputs,
    );
    // The ground truth is not candidate 0.
    let lists = rewrite_lists(dir, |r| {
        for e in r.iter_mut().filter(|e| e.pair_id == p4.pair_id && e.rank <= 1) {
            e.rank = 1 - e.rank;
        }
    });
    refused(
        &with_lists(&lists),
        &[
            &format!("pair_id {}", p4.pair_id),
            "candidate 0 is item",
            "target_id",
            "ground truth must be candidate 0",
        ],
        &outputs,
    );
    // A list for an eval row that does not exist.
    let lists = rewrite_lists(dir, |r| {
        let mut e = r[0];
        e.pair_id = 99;
        r.push(e);
    });
    refused(
        &with_lists(&lists),
        &[
            "bad/eval_lists.parquet",
            "column `pair_id`",
            "pair_id 99 is not in the pairs file",
        ],
        &outputs,
    );

    // Queries and candidates without an embedding are named with the eval rows using them.
    let (lists, _) = read_records::<EvalListEntry>(&dir.join("eval/eval_lists.parquet")).unwrap();
    let query = p1.query_id;
    let cand = lists
        .iter()
        .find(|e| e.pair_id == p2.pair_id && e.rank == 4)
        .unwrap()
        .item_id;
    let full = Embeddings::read(&dir.join("eval/embeddings.parquet")).unwrap();
    let keep: Vec<usize> = (0..full.len())
        .filter(|&i| full.item_ids[i] != query && full.item_ids[i] != cand)
        .collect();
    let holes = Embeddings {
        item_ids: keep.iter().map(|&i| full.item_ids[i]).collect(),
        values: keep.iter().flat_map(|&i| full.row(i).to_vec()).collect(),
        ..full.clone()
    };
    holes
        .write(&dir.join("eval/holes.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    refused(
        &mmeb(dir, &["holes.parquet"], "x/eval_scores.parquet", &[]),
        &[
            "holes.parquet",
            &format!("1 query item(s): item_id {query} (pair_id {})", p1.pair_id),
            &format!("1 candidate item(s): item_id {cand} (pair_id {})", p2.pair_id),
        ],
        &outputs,
    );

    // Embedding files from two different models are not mixed.
    let half = full.len() / 2;
    let a = Embeddings {
        item_ids: full.item_ids[..half].to_vec(),
        values: full.values[..half * 2].to_vec(),
        ..full.clone()
    };
    let b = Embeddings {
        item_ids: full.item_ids[half..].to_vec(),
        values: full.values[half * 2..].to_vec(),
        model: "other".into(),
        ..full.clone()
    };
    a.write(&dir.join("eval/a.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    b.write(&dir.join("eval/b.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    refused(
        &mmeb(dir, &["a.parquet", "b.parquet"], "x/eval_scores.parquet", &[]),
        &[
            "embeddings from different models",
            "a.parquet has `m`",
            "b.parquet has `other`",
        ],
        &outputs,
    );
    // Split files of one model combine, and give the same scores.
    let b = Embeddings { model: "m".into(), ..b };
    b.write(&dir.join("eval/b.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    succeeds(&mmeb(
        dir,
        &["a.parquet", "b.parquet"],
        "split/eval_scores.parquet",
        &[],
    ));
    succeeds(&mmeb(dir, &["embeddings.parquet"], "whole/eval_scores.parquet", &[]));
    assert_eq!(
        scores(&dir.join("split/eval_scores.parquet")),
        scores(&dir.join("whole/eval_scores.parquet"))
    );

    // Ragged or empty candidate lists never reach saha-eval: the prompt stage refuses them
    // (tests/prompt_cli.rs covers the messages; this checks the eval path end to end).
    write_eval(&dir.join("ragged/data/S.parquet"), &[("q", "", vec![])]);
    let res = run(
        "saha-prompt",
        &["--data", &p(dir, "ragged/data"), "--out-dir", &p(dir, "ragged/eval")],
    );
    assert!(
        !res.status.success() && stderr(&res).contains("empty candidate list"),
        "{}",
        stderr(&res)
    );
}

#[test]
fn compare_prints_deltas_and_refuses_other_eval_sets_and_models() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let subsets = tie_subsets();
    eval_set(dir, &subsets, "model-a");
    succeeds(&mmeb(dir, &["embeddings.parquet"], "before/eval_scores.parquet", &[]));
    let before = dir.join("before/eval_scores.parquet");
    let before_s = before.to_str().unwrap();
    // A second model: every ground truth now scores 0.95 and every distractor 0.1, except the
    // duplicate-of-GT item (same item) -> VisDial P@1 100%.
    let gt: Vec<String> = subsets
        .iter()
        .flat_map(|s| s.rows.iter().map(|r| r.1[0].0.clone()))
        .collect();
    write_vectors(
        dir,
        &subsets,
        "model-b",
        |it, _| at(if gt.contains(&it.text) { 0.95 } else { 0.1 }),
        "after.parquet",
    );
    let text = succeeds(&mmeb(
        dir,
        &["after.parquet"],
        "after/eval_scores.parquet",
        &["--compare", before_s],
    ));
    assert!(text.contains("Before: `model-a`; after: `model-b`."), "{text}");
    assert!(text.contains("| VisDial | 50.00 | 100.00 | +50.00 |"), "{text}");
    assert!(text.contains("| NIGHTS | 100.00 | 100.00 | +0.00 |"), "{text}");
    assert!(text.contains("| **Overall** | 75.00 | 100.00 | +25.00 |"), "{text}");

    // --expect-model: the earlier file's model differs -> refuse.
    let out = dir.join("no/eval_scores.parquet");
    refused(
        &mmeb(
            dir,
            &["after.parquet"],
            "no/eval_scores.parquet",
            &["--compare", before_s, "--expect-model", "model-b"],
        ),
        &[
            "score files from a different model (metadata mismatch: refuse)",
            "before/eval_scores.parquet",
            "`model-a`",
        ],
        &[&out],
    );
    // ... and the embeddings' model differs -> refuse.
    refused(
        &mmeb(
            dir,
            &["after.parquet"],
            "no/eval_scores.parquet",
            &["--expect-model", "model-a"],
        ),
        &["metadata mismatch: refuse", "after.parquet was made by `model-b`"],
        &[&out],
    );
    refused(
        &mmeb(
            dir,
            &["after.parquet"],
            "no/eval_scores.parquet",
            &["--compare", before_s, "--same-model"],
        ),
        &["metadata mismatch: refuse", "--same-model"],
        &[&out],
    );
    // The same model on both sides passes --expect-model.
    let text = succeeds(&mmeb(
        dir,
        &["embeddings.parquet"],
        "same/eval_scores.parquet",
        &["--compare", before_s, "--expect-model", "model-a", "--same-model"],
    ));
    assert!(text.contains("Same model on both sides: `model-a`."), "{text}");

    // A different eval set: one candidate text changed in VisDial, and a subset missing.
    let d2 = tempfile::tempdir().unwrap();
    let mut other = tie_subsets();
    other[0].rows[4].1[2].0 = "changed".into();
    eval_set(d2.path(), &other, "model-a");
    refused(
        &mmeb(
            d2.path(),
            &["embeddings.parquet"],
            "x/eval_scores.parquet",
            &["--compare", before_s],
        ),
        &["different eval set", "different rows or candidates in VisDial"],
        &[&d2.path().join("x/eval_scores.parquet")],
    );
    let d3 = tempfile::tempdir().unwrap();
    eval_set(d3.path(), &tie_subsets()[..1], "model-a");
    refused(
        &mmeb(
            d3.path(),
            &["embeddings.parquet"],
            "x/eval_scores.parquet",
            &["--compare", before_s],
        ),
        &["different eval set", "subsets only in", "NIGHTS"],
        &[&d3.path().join("x/eval_scores.parquet")],
    );
    // Something that is not a score file.
    refused(
        &mmeb(
            dir,
            &["embeddings.parquet"],
            "x/eval_scores.parquet",
            &["--compare", &p(dir, "eval/pairs.parquet")],
        ),
        &["--compare", "pairs.parquet", "missing column `meta_task`"],
        &[&dir.join("x/eval_scores.parquet")],
    );
}

#[test]
fn make_eval_scores_the_demo_and_prints_the_table() {
    let runs = tempfile::tempdir().unwrap();
    let out = make_small(runs.path(), &["eval"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("saha-eval mmeb"), "{text}");
    for line in [
        "# MMEB evaluation",
        "| **Overall** | 4 |",
        "| IND | 4 |",
        "| ShapeClass | Classification | IND | 4 |",
        "| ShapeVQA | VQA | IND | 4 |",
        "| ShapeCaps_t2i | Retrieval | IND | 4 |",
    ] {
        assert!(text.contains(line), "lacks {line:?}:\n{text}");
    }
    let eval = runs.path().join("demo/eval");
    let rows = scores(&eval.join("eval_scores.parquet"));
    assert_eq!(rows.len(), 4);
    let model = Embeddings::read(&eval.join("embeddings.parquet")).unwrap().model;
    assert!(model.starts_with("qwen2-vl:"), "{model}");
    assert_eq!(
        ParquetTable::open(&eval.join("eval_scores.parquet"))
            .unwrap()
            .key_values["saha.embedding.model"],
        model
    );
    // Up to date: the stage does not rerun, the table is still printed.
    let again = make_small(runs.path(), &["eval"]);
    let text = format!("{}{}", stdout(&again), stderr(&again));
    assert!(again.status.success() && !text.contains("saha-eval mmeb"), "{text}");
    assert!(text.contains("| **Overall** | 4 |"), "{text}");
}

// ---- SugarCrepe ------------------------------------------------------------------------------

#[test]
fn sugarcrepe_items_carry_the_reference_prompts_and_scores_are_strict() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let images = dir.join("val2017");
    for f in ["1.jpg", "2.jpg", "3.jpg"] {
        write_png(&images, f);
    }
    let data = dir.join("sugarcrepe");
    std::fs::create_dir_all(&data).unwrap();
    // Scores come from the text: "good" captions score 0.9, "bad" 0.2, "same" 0.5 against
    // any image (a tie between "same" captions counts as wrong).
    std::fs::write(
        data.join("add_obj.json"),
        r#"{"0": {"filename": "1.jpg", "caption": "good a", "negative_caption": "bad a"},
            "1": {"filename": "2.jpg", "caption": "bad b", "negative_caption": "good b"},
            "2": {"filename": "1.jpg", "caption": "same c", "negative_caption": "same d"},
            "10": {"filename": "3.jpg", "caption": "good e", "negative_caption": "bad e"}}"#,
    )
    .unwrap();
    std::fs::write(
        data.join("swap_att.json"),
        r#"{"0": {"filename": "3.jpg", "caption": "good f", "negative_caption": "bad f"}}"#,
    )
    .unwrap();
    let items_run = |data: &Path, bench: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "sugarcrepe-items",
            "--benchmark",
            bench,
            "--data",
            data.to_str().unwrap(),
            "--image-root",
            images.to_str().unwrap(),
            "--out-dir",
        ];
        let out = dir.join(out);
        let out = out.to_str().unwrap().to_string();
        args.push(&out);
        args.extend_from_slice(extra);
        run("saha-eval", &args)
    };
    // Without --subsets, all seven SugarCrepe files are expected.
    refused(
        &items_run(&data, "sugarcrepe", "sc", &[]),
        &["replace_obj.json", "--subsets"],
        &[&dir.join("sc/items.parquet")],
    );
    let res = items_run(&data, "sugarcrepe", "sc", &["--subsets", "add_obj,swap_att"]);
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("5 examples (add_obj 4, swap_att 1)"),
        "{}",
        stderr(&res)
    );

    let (items, _) = read_records::<Item>(&dir.join("sc/items.parquet")).unwrap();
    let sys =
        "Given an image, summarize the provided image in one word. Given only text, describe the text in one word.";
    let caption = items.iter().find(|i| i.text == "good a").unwrap();
    assert_eq!((caption.side, caption.role.as_str()), (Side::Query, "Q"));
    assert_eq!(
        caption.prompt,
        format!(
            "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\nFind me an image that matches the given caption: \
             good a\nRepresent the given text in one word.<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    let image = items.iter().find(|i| i.image_path.as_deref() == Some("1.jpg")).unwrap();
    assert_eq!(
        (image.side, image.role.as_str(), image.user.as_str()),
        (Side::Target, "D", "<|image_pad|>")
    );
    assert_eq!(
        image.prompt,
        format!(
            "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n<|image_pad|><|im_end|>\n<|im_start|>assistant\n"
        )
    );
    // 1.jpg is used twice in add_obj but is one item there.
    assert_eq!(
        items
            .iter()
            .filter(|i| i.image_path.as_deref() == Some("1.jpg") && i.subset == "add_obj")
            .count(),
        1
    );

    // The items embed with the real embedding stage (tiny random model).
    let model = saha_tests::init_model(dir, 0, &[]);
    let res = run(
        "saha-embed",
        &[
            "--items",
            &p(dir, "sc/items.parquet"),
            "--image-root",
            images.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            &p(dir, "sc/tiny.parquet"),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));

    // Hand-made embeddings: images (1, 0); captions at their planned score.
    let planned = |text: &str| {
        if text.starts_with("good") {
            0.9
        } else if text.starts_with("bad") {
            0.2
        } else {
            0.5
        }
    };
    let write = |name: &str, items: &[Item], model: &str| {
        let e = Embeddings {
            item_ids: items.iter().map(|i| i.item_id).collect(),
            dim: 2,
            values: items
                .iter()
                .flat_map(|i| match i.side {
                    Side::Target => vec![1.0, 0.0],
                    Side::Query => at(planned(&i.text)),
                })
                .collect(),
            model: model.to_string(),
            normalized: true,
        };
        e.write(&dir.join(name), &Provenance::new("test", "0")).unwrap();
    };
    write("sc/embeddings.parquet", &items, "hand");
    let score = |sets: &str, emb: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "sugarcrepe".to_string(),
            "--sets".into(),
            p(dir, sets),
            "--embeddings".into(),
            p(dir, emb),
            "--out".into(),
            p(dir, out),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("saha-eval", &refs)
    };
    let res = score(
        "sc/sugarcrepe_sets.parquet",
        "sc/embeddings.parquet",
        "sc/sugarcrepe_scores.parquet",
        &[],
    );
    let text = succeeds(&res);
    let (rows, _) = read_records::<SugarCrepeScore>(&dir.join("sc/sugarcrepe_scores.parquet")).unwrap();
    // add_obj: "good a" wins, "bad b" loses, the tie loses, "good e" wins: 2/4; swap_att 1/1.
    let got: Vec<(&str, u32, u32, u32)> = rows
        .iter()
        .map(|r| (r.subset.as_str(), r.n, r.itt_correct, r.ties))
        .collect();
    assert_eq!(got, [("swap_att", 1, 1, 0), ("add_obj", 4, 2, 1)]);
    assert!(rows.iter().all(|r| r.tot_correct.is_none()));
    assert!(text.contains("| add_obj | 4 | 50.00 | 1 |"), "{text}");
    assert!(text.contains("| **Average** | | 75.00 | |"), "{text}");
    assert_eq!(
        ParquetTable::open(&dir.join("sc/sugarcrepe_scores.parquet"))
            .unwrap()
            .key_values["saha.embedding.model"],
        "hand"
    );
    // The tiny model's real embeddings score too (any accuracy).
    succeeds(&score(
        "sc/sugarcrepe_sets.parquet",
        "sc/tiny.parquet",
        "sc/tiny_scores.parquet",
        &[],
    ));
    // Missing embeddings are named with their examples; a wrong model is refused.
    let partial: Vec<Item> = items.iter().filter(|i| i.text != "bad e").cloned().collect();
    write("sc/partial.parquet", &partial, "hand");
    let missing = items.iter().find(|i| i.text == "bad e").unwrap().item_id;
    refused(
        &score("sc/sugarcrepe_sets.parquet", "sc/partial.parquet", "sc/x.parquet", &[]),
        &[&format!("item_id {missing} (example add_obj `10`)"), "partial.parquet"],
        &[&dir.join("sc/x.parquet")],
    );
    refused(
        &score(
            "sc/sugarcrepe_sets.parquet",
            "sc/embeddings.parquet",
            "sc/x.parquet",
            &["--expect-model", "other"],
        ),
        &["metadata mismatch: refuse", "`hand`"],
        &[&dir.join("sc/x.parquet")],
    );

    // SugarCrepe++: a list with two positives; image-to-text needs both to beat the negative,
    // text-only needs cos(p1, p2) above cos(p1, neg) and cos(p2, neg).
    let plus = dir.join("plus");
    std::fs::create_dir_all(&plus).unwrap();
    std::fs::write(
        plus.join("swap_obj.json"),
        r#"[{"filename": "1.jpg", "caption": "good g", "caption2": "good h", "negative_caption": "bad g"},
            {"filename": "2.jpg", "caption": "good i", "caption2": "bad j", "negative_caption": "same k"}]"#,
    )
    .unwrap();
    // The wrong layout for the benchmark is explained.
    refused(
        &items_run(&plus.join("swap_obj.json"), "sugarcrepe", "pp", &[]),
        &[
            "swap_obj.json",
            "JSON object keyed by example id",
            "--benchmark sugarcrepe++",
        ],
        &[&dir.join("pp/items.parquet")],
    );
    // Missing images are named.
    std::fs::write(
        plus.join("swap_att.json"),
        r#"[{"filename": "nope.jpg", "caption": "a", "caption2": "b", "negative_caption": "c"}]"#,
    )
    .unwrap();
    refused(
        &items_run(&plus, "sugarcrepe++", "pp", &["--subsets", "swap_obj,swap_att"]),
        &["images missing", "swap_att.json example `0`: nope.jpg"],
        &[&dir.join("pp/items.parquet")],
    );
    let res = items_run(&plus.join("swap_obj.json"), "sugarcrepe++", "pp", &[]);
    assert!(res.status.success(), "{}", stderr(&res));
    let (items, _) = read_records::<Item>(&dir.join("pp/items.parquet")).unwrap();
    let (sets, _) = read_records::<saha_schemas::SugarCrepeExample>(&dir.join("pp/sugarcrepe_sets.parquet")).unwrap();
    assert!(sets
        .iter()
        .all(|s| s.pos2_id.is_some() && s.benchmark == "sugarcrepe++"));
    // Captions as 2-D unit vectors at angles: good g / good h close together, bad g far.
    let angle = |t: &str| -> f32 {
        match t {
            "good g" => 0.1,
            "good h" => 0.2,
            "bad g" => 1.2,
            "good i" => 0.1,
            "bad j" => 1.5,
            "same k" => 1.0,
            other => panic!("{other}"),
        }
    };
    let e = Embeddings {
        item_ids: items.iter().map(|i| i.item_id).collect(),
        dim: 2,
        values: items
            .iter()
            .flat_map(|i| match i.side {
                Side::Target => vec![1.0, 0.0],
                Side::Query => vec![angle(&i.text).cos(), angle(&i.text).sin()],
            })
            .collect(),
        model: "hand".into(),
        normalized: true,
    };
    e.write(&dir.join("pp/embeddings.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    let text = succeeds(&score(
        "pp/sugarcrepe_sets.parquet",
        "pp/embeddings.parquet",
        "pp/scores.parquet",
        &[],
    ));
    let (rows, _) = read_records::<SugarCrepeScore>(&dir.join("pp/scores.parquet")).unwrap();
    // Example 0: ITT yes (0.1, 0.2 both nearer than 1.2), TOT yes (0.1 apart vs 1.1 / 1.0).
    // Example 1: ITT no (bad j at 1.5 is farther than same k at 1.0); TOT: cos(0.1, 1.5) = cos 1.4
    // against cos(0.1, 1.0) = cos 0.9 -> no.
    assert_eq!((rows[0].n, rows[0].itt_correct, rows[0].tot_correct), (2, 1, Some(1)));
    assert!(text.contains("| swap_obj | 2 | 50.00 | 50.00 | 0 |"), "{text}");
}

#[test]
fn make_sugarcrepe_embeds_the_items_with_the_run_model_and_scores_them() {
    let runs = tempfile::tempdir().unwrap();
    let out = make_small(runs.path(), &["sugarcrepe"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("set SUGARCREPE_DATA="), "{}", stderr(&out));

    let data = runs.path().join("sc");
    let images = data.join("images");
    write_png(&images, "a.jpg");
    write_png(&images, "b.jpg");
    std::fs::write(
        data.join("add_obj.json"),
        r#"{"0": {"filename": "a.jpg", "caption": "a red square", "negative_caption": "a red square and a dog"},
            "1": {"filename": "b.jpg", "caption": "two circles", "negative_caption": "two circles and a cat"},
            "2": {"filename": "a.jpg", "caption": "a square", "negative_caption": "a square with a hat"}}"#,
    )
    .unwrap();
    let vars = [
        format!("SUGARCREPE_DATA={}", data.display()),
        format!("SUGARCREPE_IMAGES={}", images.display()),
        "SUGARCREPE_SUBSETS=add_obj".to_string(),
    ];
    let mut args: Vec<&str> = vec!["sugarcrepe"];
    args.extend(vars.iter().map(String::as_str));
    let out = make_small(runs.path(), &args);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("saha-eval sugarcrepe-items")
            && text.contains("saha-embed")
            && text.contains("# SugarCrepe evaluation"),
        "{text}"
    );
    assert!(text.contains("| add_obj | 3 |"), "{text}");
    let scores = runs.path().join("demo/sugarcrepe/sugarcrepe_scores.parquet");
    let (rows, _) = read_records::<SugarCrepeScore>(&scores).unwrap();
    assert_eq!((rows.len(), rows[0].n), (1, 3));
    // Up to date: nothing reruns, the table is printed again.
    let again = make_small(runs.path(), &args);
    let text = format!("{}{}", stdout(&again), stderr(&again));
    assert!(again.status.success() && !text.contains("saha-embed --items"), "{text}");
    assert!(text.contains("| add_obj | 3 |"), "{text}");
}

/// Embeddings of another run (e.g. the training split's, given by mistake) are refused before
/// anything is scored (saha-eval used to score them: P@1 12.50 instead of 18.23), unless
/// --allow-mixed-runs says the mix is deliberate.
#[test]
fn embeddings_of_another_run_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    eval_set(dir, &tie_subsets(), "hand-made");
    let path = dir.join("eval/embeddings.parquet");
    let e = Embeddings::read(&path).unwrap();
    let mut prov = Provenance::new("saha-embed", "0");
    prov.set(&saha_schemas::provenance::ORIGIN, "the-training-split".to_string());
    std::fs::remove_file(&path).unwrap();
    e.write(&path, &prov).unwrap();
    let out = mmeb(dir, &["embeddings.parquet"], "eval_scores.parquet", &[]);
    refused(
        &out,
        &[
            "eval/embeddings.parquet",
            "eval/pairs.parquet",
            "another run",
            "--allow-mixed-runs",
        ],
        &[&dir.join("eval_scores.parquet")],
    );
    let out = mmeb(
        dir,
        &["embeddings.parquet"],
        "eval_scores.parquet",
        &["--allow-mixed-runs"],
    );
    succeeds(&out);
    let table = ParquetTable::open(&dir.join("eval_scores.parquet")).unwrap();
    let prov = table.provenance().unwrap();
    assert_eq!(prov.params["mixed_origins"], serde_json::json!(["the-training-split"]));
}

#[test]
fn only_items_embed_skipped_may_lack_an_embedding_and_their_rows_or_candidates_are_left_out() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    eval_set(dir, &tie_subsets(), "m");
    let full = Embeddings::read(&dir.join("eval/embeddings.parquet")).unwrap();
    let (pairs, _) = read_records::<saha_schemas::Pair>(&dir.join("eval/pairs.parquet")).unwrap();
    let (lists, _) = read_records::<EvalListEntry>(&dir.join("eval/eval_lists.parquet")).unwrap();
    // A query's item, and a candidate that is never a ground truth (so only taken from lists).
    let truths: Vec<u32> = lists.iter().filter(|e| e.rank == 0).map(|e| e.item_id).collect();
    let negative = lists
        .iter()
        .find(|e| e.rank > 0 && e.pair_id != pairs[0].pair_id && !truths.contains(&e.item_id))
        .unwrap()
        .item_id;
    let skipped = vec![pairs[0].query_id, negative];
    let (rows_left, candidates_left) = saha_tests::eval_left_out(&pairs, &lists, &skipped);
    assert!(!rows_left.is_empty() && candidates_left > 0);

    let keep: Vec<usize> = (0..full.len())
        .filter(|&r| !skipped.contains(&full.item_ids[r]))
        .collect();
    let without = Embeddings {
        item_ids: keep.iter().map(|&r| full.item_ids[r]).collect(),
        dim: full.dim,
        values: keep.iter().flat_map(|&r| full.row(r).to_vec()).collect(),
        model: "m".into(),
        normalized: true,
    };
    let mut prov = Provenance::new("saha-embed", "0");
    without.write(&dir.join("eval/unlisted.parquet"), &prov).unwrap();
    prov.stat(saha_schemas::provenance::SKIPPED_ITEM_IDS, &skipped);
    without.write(&dir.join("eval/skipped.parquet"), &prov).unwrap();

    // Missing without being listed as skipped: still an error naming the file.
    let out = dir.join("u/eval_scores.parquet");
    refused(
        &mmeb(dir, &["unlisted.parquet"], "u/eval_scores.parquet", &[]),
        &["no embedding in", "unlisted.parquet"],
        &[out.as_path()],
    );
    // Listed: the rows are left out, the candidate taken from the other lists, and it is said.
    let out = mmeb(dir, &["skipped.parquet"], "s/eval_scores.parquet", &[]);
    succeeds(&out);
    let path = dir.join("s/eval_scores.parquet");
    let n: u32 = scores(&path).iter().map(|r| r.n).sum();
    assert_eq!(n as usize, pairs.len() - rows_left.len());
    let stat = |name: &str| saha_tests::footer_stat(&path, name);
    assert_eq!(stat("left_out_pairs"), serde_json::json!(rows_left.len()));
    assert_eq!(stat("left_out_candidates"), serde_json::json!(candidates_left));
    let note = format!(
        "{} eval rows left out and {candidates_left} candidates taken",
        rows_left.len()
    );
    assert!(stderr(&out).contains(&note), "{}", stderr(&out));
}
