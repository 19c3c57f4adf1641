//! Bad input to the mining stages: each a clear error naming what is wrong, or documented
//! behaviour, and no output left behind on error.

use std::path::Path;

use saha_common::rng::Rng;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::Provenance;
use saha_tests::mining_data::Dataset;
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
    let p = |f: &str| d.path().join(f).to_str().unwrap().to_string();
    let res = run(
        "saha-remap",
        &[
            "--pairs",
            &p("pairs.parquet"),
            "--embeddings",
            &p("embeddings.parquet"),
            "--candidates",
            &p("candidates.parquet"),
            "--out",
            &p("owners.parquet"),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let filter = |k: &str, m: &str| {
        run(
            "saha-filter",
            &[
                "--pairs",
                &p("pairs.parquet"),
                "--candidates",
                &p("candidates.parquet"),
                "--owners",
                &p("owners.parquet"),
                "--clusters",
                &p("clusters.parquet"),
                "--stats",
                &p("stats.parquet"),
                "--top-k",
                k,
                "--pool-mult",
                m,
            ],
        )
    };
    let res = filter("3", "2");
    let msg = stderr(&res);
    assert!(
        !res.status.success() && msg.contains("retrieved 6 deep") && msg.contains("--pool 12"),
        "{msg}"
    );
    assert!(!d.path().join("clusters.parquet").exists() && !d.path().join("stats.parquet").exists());
    let res = filter("0", "2");
    assert!(!res.status.success() && stderr(&res).contains("at least 1"));
    let res = filter("1", "3");
    assert!(res.status.success(), "{}", stderr(&res));
    let (stats, _) =
        saha_schemas::records::read_records::<saha_schemas::MiningStats>(&d.path().join("stats.parquet")).unwrap();
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
            "--embeddings",
            &o("embeddings.parquet"),
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
