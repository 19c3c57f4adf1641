//! Bad input to the mining stages: each a clear error naming what is wrong, or documented
//! behaviour, and no output left behind on error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use saha_common::rng::Rng;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::read_records;
use saha_schemas::{Candidate, ClusterMember, Owner, Pair, Provenance};
use saha_tests::mining_data::{filter_in, remap_in, Dataset};
use saha_tests::{run, stderr};

fn dataset(dir: &Path) {
    let mut rng = Rng::new(5);
    let mut d = Dataset::new(8);
    d.retrieval(&mut rng, "VisDial", 12, 3);
    d.write(dir, false);
}

fn retrieve(dir: &Path, embeddings: &[&Path]) -> std::process::Output {
    let pairs = dir.join("pairs.parquet");
    let out = dir.join("candidates.parquet");
    let mut args = vec![
        "--pairs",
        pairs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pool",
        "6",
    ];
    for e in embeddings {
        args.push("--embeddings");
        args.push(e.to_str().unwrap());
    }
    run("saha-retrieve", &args)
}

fn refused(out: &std::process::Output, dir: &Path, expected: &[&str]) {
    let msg = stderr(out);
    assert!(!out.status.success(), "should fail: {msg}");
    for e in expected {
        assert!(msg.contains(e), "message lacks {e:?}: {msg}");
    }
    assert!(!dir.join("candidates.parquet").exists());
}

#[test]
fn embedding_problems_are_named() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let full = Embeddings::read(&d.path().join("embeddings.parquet")).unwrap();
    let write = |name: &str, e: &Embeddings| {
        let p = d.path().join(name);
        e.write(&p, &Provenance::new("test", "0")).unwrap();
        p
    };

    let mut missing = full.clone();
    missing.item_ids.truncate(full.len() - 2);
    missing.values.truncate((full.len() - 2) * full.dim);
    let p = write("missing.parquet", &missing);
    refused(
        &retrieve(d.path(), &[&p]),
        d.path(),
        &[
            "2 subset VisDial target items have no embedding",
            "missing.parquet",
            "item_id",
        ],
    );

    let mut nan = full.clone();
    nan.values[3 * full.dim + 1] = f32::NAN;
    let p = write("nan.parquet", &nan);
    let item = full.item_ids[3].to_string();
    refused(
        &retrieve(d.path(), &[&p]),
        d.path(),
        &["nan.parquet", &format!("item {item}"), "non-finite"],
    );

    // Queries and targets in two files with different dimensions.
    let half = full.len() / 2;
    let first = Embeddings {
        item_ids: full.item_ids[..half].to_vec(),
        values: full.values[..half * full.dim].to_vec(),
        ..full.clone()
    };
    let second = Embeddings {
        item_ids: full.item_ids[half..].to_vec(),
        dim: 4,
        values: full.values[half * full.dim..]
            .chunks(full.dim)
            .flat_map(|r| r[..4].to_vec())
            .collect(),
        ..full.clone()
    };
    let (a, b) = (write("a.parquet", &first), write("b.parquet", &second));
    refused(
        &retrieve(d.path(), &[&a, &b]),
        d.path(),
        &["dimension mismatch", "a.parquet has 8", "b.parquet has 4"],
    );

    // Split files of one dimension combine.
    let second = Embeddings {
        item_ids: full.item_ids[half..].to_vec(),
        values: full.values[half * full.dim..].to_vec(),
        ..full.clone()
    };
    let b = write("b.parquet", &second);
    let res = retrieve(d.path(), &[&a, &b]);
    assert!(res.status.success(), "{}", stderr(&res));

    // Vectors that are not unit length are normalised, and the stage says so.
    let scaled = Embeddings {
        values: full.values.iter().map(|v| v * 3.0).collect(),
        ..full.clone()
    };
    let p = write("scaled.parquet", &scaled);
    let res = retrieve(d.path(), &[&p]);
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("were not unit length and were L2-normalised"),
        "{}",
        stderr(&res)
    );
}

#[test]
fn pool_and_subset_size_problems() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(6);
    let mut data = Dataset::new(8);
    data.retrieval(&mut rng, "VisDial", 12, 3);
    data.retrieval(&mut rng, "One", 1, 1);
    data.write(d.path(), false);
    let e = d.path().join("embeddings.parquet");
    let res = retrieve(d.path(), &[&e]);
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("subset One has 1 target(s): no negatives can be mined there"),
        "{}",
        stderr(&res)
    );
    let res = remap_in(d.path());
    assert!(res.status.success(), "{}", stderr(&res));
    let filter = |k: &str, m: &str| filter_in(d.path(), None, &["--top-k", k, "--pool-mult", m]);
    let res = filter("3", "2");
    let msg = stderr(&res);
    assert!(
        !res.status.success() && msg.contains("retrieved 6 deep") && msg.contains("--pool 12"),
        "{msg}"
    );
    assert!(!d.path().join("clusters.parquet").exists() && !d.path().join("mining_stats.parquet").exists());
    let res = filter("0", "2");
    assert!(!res.status.success() && stderr(&res).contains("at least 1"));
    let res = filter("1", "3");
    assert!(res.status.success(), "{}", stderr(&res));
    let (stats, _) =
        saha_schemas::records::read_records::<saha_schemas::MiningStats>(&d.path().join("mining_stats.parquet"))
            .unwrap();
    let one = stats.iter().find(|s| s.subset == "One").unwrap();
    assert_eq!(
        (one.clusters, one.leftover_anchors),
        (0, 1),
        "a one-target subset builds no cluster"
    );
}

#[test]
fn candidates_from_other_pairs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let e = d.path().join("embeddings.parquet");
    assert!(retrieve(d.path(), &[&e]).status.success());
    let other = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(99);
    let mut data = Dataset::new(8);
    data.retrieval(&mut rng, "VisDial", 30, 3);
    data.write(other.path(), false);
    let p = |f: &str| d.path().join(f).to_str().unwrap().to_string();
    let o = |f: &str| other.path().join(f).to_str().unwrap().to_string();
    let res = run(
        "saha-remap",
        &[
            "--pairs",
            &o("pairs.parquet"),
            "--candidates",
            &p("candidates.parquet"),
            "--out",
            &p("owners.parquet"),
        ],
    );
    let msg = stderr(&res);
    assert!(!res.status.success() && msg.contains("do not match"), "{msg}");
    assert!(!d.path().join("owners.parquet").exists());
}

/// Queries and targets embedded apart (two `--embeddings` files, in either order) give saha-retrieve
/// and saha-filter exactly the rows, parameters and summary counts of the single-file run, and no other
/// output files.
#[test]
fn split_embedding_files_give_the_single_file_results() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let full = Embeddings::read(&d.path().join("embeddings.parquet")).unwrap();
    let (pairs, _) = read_records::<Pair>(&d.path().join("pairs.parquet")).unwrap();
    let queries: HashSet<u32> = pairs.iter().map(|p| p.query_id).collect();
    let targets: HashSet<u32> = pairs.iter().map(|p| p.target_id).collect();
    assert!(
        queries.is_disjoint(&targets),
        "the data set keeps query and target items apart"
    );
    let side = |keep: &HashSet<u32>| {
        let rows: Vec<usize> = (0..full.len()).filter(|&i| keep.contains(&full.item_ids[i])).collect();
        Embeddings {
            item_ids: rows.iter().map(|&i| full.item_ids[i]).collect(),
            values: rows
                .iter()
                .flat_map(|&i| full.values[i * full.dim..(i + 1) * full.dim].to_vec())
                .collect(),
            ..full.clone()
        }
    };
    let (q, t) = (side(&queries), side(&targets));
    assert_eq!(q.len() + t.len(), full.len(), "every item is a query or a target");
    assert!(q.len() > 0 && t.len() > 0);
    let inputs = d.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let write = |name: &str, e: &Embeddings| {
        let p = inputs.join(name);
        e.write(&p, &Provenance::new("test", "0")).unwrap();
        p
    };
    let (qp, tp) = (write("queries.parquet", &q), write("targets.parquet", &t));
    let single = d.path().join("embeddings.parquet");

    let pairs_path = d.path().join("pairs.parquet");
    let stages = |name: &str, embeddings: &[&Path]| -> PathBuf {
        let out = d.path().join(name);
        std::fs::create_dir(&out).unwrap();
        let (cands, owners) = (out.join("candidates.parquet"), out.join("owners.parquet"));
        let mut args = vec!["--pairs", pairs_path.to_str().unwrap(), "--pool", "6"];
        for e in embeddings {
            args.extend(["--embeddings", e.to_str().unwrap()]);
        }
        let mut retrieve = args.clone();
        retrieve.extend(["--out", cands.to_str().unwrap()]);
        let res = run("saha-retrieve", &retrieve);
        assert!(res.status.success(), "{name}: {}", stderr(&res));
        let remap = [
            "--pairs",
            pairs_path.to_str().unwrap(),
            "--candidates",
            cands.to_str().unwrap(),
            "--out",
            owners.to_str().unwrap(),
        ];
        let res = run("saha-remap", &remap);
        assert!(res.status.success(), "{name}: {}", stderr(&res));
        let mut filter: Vec<&str> = args.into_iter().filter(|a| *a != "--pool" && *a != "6").collect();
        let (clusters, stats) = (out.join("clusters.parquet"), out.join("mining_stats.parquet"));
        filter.extend([
            "--candidates",
            cands.to_str().unwrap(),
            "--owners",
            owners.to_str().unwrap(),
        ]);
        filter.extend([
            "--clusters",
            clusters.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
        ]);
        filter.extend(["--top-k", "1", "--pool-mult", "3"]);
        let res = run("saha-filter", &filter);
        assert!(res.status.success(), "{name}: {}", stderr(&res));
        out
    };
    let files = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let one = stages("single", &[&single]);
    for (name, split) in [("split", [&qp, &tp]), ("split_reversed", [&tp, &qp])] {
        let two = stages(name, &[split[0].as_path(), split[1].as_path()]);
        assert_eq!(files(&two), files(&one), "{name}: output files");
        // The provenance differs only in the input files it names (the paths in the recorded
        // arguments and one input hash per embedding file).
        let same = |what: &str, a: Option<Provenance>, b: Option<Provenance>| {
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            let files = |p: &mut Provenance| {
                let args = p.params.get_mut("args").expect("args recorded");
                // filter names the candidates and owners files of its own run (compared row by row).
                args.as_object_mut().unwrap().remove("candidates");
                args.as_object_mut().unwrap().remove("owners");
                args["input"]
                    .as_object_mut()
                    .unwrap()
                    .remove("embeddings")
                    .expect("embedding files recorded")
                    .as_array()
                    .unwrap()
                    .len()
            };
            assert_eq!((files(&mut a), files(&mut b)), (1, 2), "{name}: {what} embedding files");
            assert_eq!(
                (&a.stage, &a.version, &a.params, &a.stats),
                (&b.stage, &b.version, &b.params, &b.stats),
                "{name}: {what} provenance"
            );
            assert_eq!(b.inputs.len(), a.inputs.len() + 1, "{name}: {what} input hashes");
        };
        let (a, _) = read_records::<Owner>(&one.join("owners.parquet")).unwrap();
        let (b, _) = read_records::<Owner>(&two.join("owners.parquet")).unwrap();
        assert_eq!(a, b, "{name}: owners differ from the single-file run");
        let (a, pa) = read_records::<Candidate>(&one.join("candidates.parquet")).unwrap();
        let (b, pb) = read_records::<Candidate>(&two.join("candidates.parquet")).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name}: candidates differ from the single-file run");
        same("candidates", pa, pb);
        let (a, pa) = read_records::<ClusterMember>(&one.join("clusters.parquet")).unwrap();
        let (b, pb) = read_records::<ClusterMember>(&two.join("clusters.parquet")).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name}: clusters differ from the single-file run");
        same("clusters", pa, pb);
    }
}

/// saha-filter given the owners of another run, or a flag out of range, stops before writing
/// and says which file or flag (it used to panic on foreign owners and accept a NaN fraction).
#[test]
fn filter_refuses_foreign_owners_and_bad_flags() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let p = |f: &str| d.path().join(f).to_str().unwrap().to_string();
    assert!(retrieve(d.path(), &[Path::new(&p("embeddings.parquet"))])
        .status
        .success());
    let remap = |pairs: &str, out: &str| {
        run(
            "saha-remap",
            &["--pairs", pairs, "--candidates", &p("candidates.parquet"), "--out", out],
        )
    };
    assert!(remap(&p("pairs.parquet"), &p("owners.parquet")).status.success());
    // The same pairs with two queries' positives swapped: owner lists of another run.
    let (mut pairs, _) = read_records::<Pair>(&d.path().join("pairs.parquet")).unwrap();
    let (a, b) = (pairs[0].target_id, pairs[3].target_id);
    assert_ne!(a, b);
    pairs[0].target_id = b;
    pairs[3].target_id = a;
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    saha_schemas::records::write_records(&other.join("pairs.parquet"), &pairs, &Provenance::new("test", "0")).unwrap();
    let other_pairs = other.join("pairs.parquet").to_str().unwrap().to_string();
    let other_owners = other.join("owners.parquet").to_str().unwrap().to_string();
    assert!(remap(&other_pairs, &other_owners).status.success());
    let filter = |owners: &str, extra: &[&str]| {
        let flags: Vec<&str> = ["--top-k", "1", "--pool-mult", "3"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        filter_in(d.path(), Some(owners), &flags)
    };
    let nothing_written =
        || !d.path().join("clusters.parquet").exists() && !d.path().join("mining_stats.parquet").exists();
    for strategy in ["saha", "topk"] {
        let res = filter(&other_owners, &["--strategy", strategy]);
        let msg = stderr(&res);
        assert!(!res.status.success(), "{strategy}: {msg}");
        assert!(
            msg.contains("other/owners.parquet row") && msg.contains("another run") && !msg.contains("panicked"),
            "{msg}"
        );
        assert!(nothing_written());
    }
    for (flags, named) in [
        (
            &["--strategy", "positive-aware", "--positive-fraction", "NaN"][..],
            "--positive-fraction",
        ),
        (
            &["--strategy", "positive-aware", "--positive-fraction=-5"][..],
            "--positive-fraction",
        ),
        (
            &["--strategy", "range", "--range-start", "6", "--range-end", "9"][..],
            "--range-start 6",
        ),
        (
            &["--strategy", "range", "--range-start", "4", "--range-end", "2"][..],
            "--range-start 4",
        ),
    ] {
        let res = filter(&p("owners.parquet"), flags);
        let msg = stderr(&res);
        assert!(
            !res.status.success() && msg.contains(named) && !msg.contains("panicked"),
            "{flags:?}: {msg}"
        );
        assert!(nothing_written());
    }
    // A window deeper than the candidates is drawn from what there is, and says so.
    let res = filter(
        &p("owners.parquet"),
        &["--strategy", "range", "--range-start", "1", "--range-end", "50"],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(stderr(&res).contains("drawing from ranks [1, 6)"), "{}", stderr(&res));
    let (_, prov) = read_records::<ClusterMember>(&d.path().join("clusters.parquet")).unwrap();
    assert_eq!(prov.unwrap().stats["range_end_used"], 6);
}

/// Artefacts of two runs with the same item numbering: each mining stage refuses the mix, naming
/// both files (saha-retrieve used to mine another run's pairs with these embeddings and exit 0),
/// unless --allow-mixed-runs says the mix is deliberate, which the footer then records.
#[test]
fn artefacts_of_different_runs_are_not_mixed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, seed, origin) in [(a.path(), 5, "run-a"), (b.path(), 6, "run-b")] {
        let mut rng = Rng::new(seed);
        let mut d = Dataset::new(8);
        d.retrieval(&mut rng, "VisDial", 12, 3);
        d.write_as(dir, false, origin);
    }
    let pa = |f: &str| a.path().join(f).to_str().unwrap().to_string();
    let pb = |f: &str| b.path().join(f).to_str().unwrap().to_string();
    let mixed = |res: &std::process::Output, first: &str, second: &str| {
        let msg = stderr(res);
        assert!(!res.status.success(), "{msg}");
        assert!(
            msg.contains(first)
                && msg.contains(second)
                && msg.contains("another run")
                && msg.contains("--allow-mixed-runs"),
            "{msg}"
        );
    };
    let retrieve = |pairs: &str, extra: &[&str]| {
        let (embeddings, out) = (pa("embeddings.parquet"), pa("candidates.parquet"));
        let mut args = vec![
            "--pairs",
            pairs,
            "--embeddings",
            &embeddings,
            "--out",
            &out,
            "--pool",
            "6",
        ];
        args.extend(extra);
        run("saha-retrieve", &args)
    };
    let res = retrieve(&pb("pairs.parquet"), &[]);
    mixed(&res, &pb("pairs.parquet"), &pa("embeddings.parquet"));
    assert!(!a.path().join("candidates.parquet").exists());
    let res = retrieve(&pb("pairs.parquet"), &["--allow-mixed-runs"]);
    assert!(res.status.success(), "{}", stderr(&res));
    let (_, prov) = read_records::<Candidate>(&a.path().join("candidates.parquet")).unwrap();
    let prov = prov.unwrap();
    assert_eq!(prov.params["origin"], "run-b");
    assert_eq!(prov.params["mixed_origins"], serde_json::json!(["run-a"]));

    // Run a's own candidates, then b's pairs given to remap and filter.
    assert!(retrieve(&pa("pairs.parquet"), &[]).status.success());
    let remap = |pairs: &str| {
        run(
            "saha-remap",
            &[
                "--pairs",
                pairs,
                "--candidates",
                &pa("candidates.parquet"),
                "--out",
                &pa("owners.parquet"),
            ],
        )
    };
    mixed(
        &remap(&pb("pairs.parquet")),
        &pa("candidates.parquet"),
        &pb("pairs.parquet"),
    );
    assert!(!a.path().join("owners.parquet").exists());
    assert!(remap(&pa("pairs.parquet")).status.success());
    let res = run(
        "saha-filter",
        &[
            "--pairs",
            &pb("pairs.parquet"),
            "--embeddings",
            &pb("embeddings.parquet"),
            "--candidates",
            &pa("candidates.parquet"),
            "--owners",
            &pa("owners.parquet"),
            "--clusters",
            &pa("clusters.parquet"),
            "--stats",
            &pa("stats.parquet"),
            "--top-k",
            "1",
            "--pool-mult",
            "3",
        ],
    );
    mixed(&res, &pa("candidates.parquet"), &pb("pairs.parquet"));
    assert!(!a.path().join("clusters.parquet").exists());
}

/// Retrieval depths that cannot be honoured are refused before anything is read: zero (it gave
/// an empty candidates file and exit 0) and more ranks than candidates.parquet can number.
#[test]
fn retrieval_depth_is_validated() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let p = |f: &str| d.path().join(f).to_str().unwrap().to_string();
    let base = [
        "--pairs",
        &p("pairs.parquet"),
        "--embeddings",
        &p("embeddings.parquet"),
        "--out",
        &p("candidates.parquet"),
    ];
    for (extra, named) in [
        (&["--pool", "0"][..], "--pool"),
        (&["--top-k", "0"][..], "--top-k"),
        (&["--pool", "70000"][..], "65536"),
        (&["--top-k", "1000", "--pool-mult", "100"][..], "65536"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let res = run("saha-retrieve", &args);
        refused(&res, d.path(), &[named]);
    }
}

/// Valid inputs that give no cluster say why: here every vector is the same, so every candidate
/// scores as high as the positive and positive-aware mining keeps none.
#[test]
fn an_empty_result_says_why() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path());
    let path = d.path().join("embeddings.parquet");
    let mut e = Embeddings::read(&path).unwrap();
    let first = e.values[..e.dim].to_vec();
    e.values = first.iter().copied().cycle().take(e.values.len()).collect();
    let (_, prov) = read_records::<Pair>(&d.path().join("pairs.parquet")).unwrap();
    std::fs::remove_file(&path).unwrap();
    e.write(&path, &prov.unwrap()).unwrap();
    assert!(retrieve(d.path(), &[&path]).status.success());
    assert!(remap_in(d.path()).status.success());
    let res = filter_in(
        d.path(),
        None,
        &["--top-k", "1", "--pool-mult", "3", "--strategy", "positive-aware"],
    );
    let msg = stderr(&res);
    assert!(res.status.success(), "{msg}");
    assert!(
        msg.contains("subset VisDial: no cluster") && msg.contains("scored above --positive-fraction 0.95"),
        "{msg}"
    );
    let (_, prov) = read_records::<ClusterMember>(&d.path().join("clusters.parquet")).unwrap();
    assert!(prov.unwrap().stats["empty_subsets"][0]
        .as_str()
        .unwrap()
        .starts_with("VisDial"));
}
