//! The three mining stages against an independent Python re-statement of the reference sampler
//! (tests/oracle/saha_sampler.py): identical clusters (anchor, members, order, phase).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use saha_common::rng::Rng;
use saha_schemas::records::read_records;
use saha_schemas::{ClusterMember, MiningStats, Pair};
use saha_tests::mining_data::Dataset;
use saha_tests::{repo_root, run, stderr};

/// (subset, phase, anchor index, member indices), indices within the subset.
type Group = (String, u8, usize, Vec<usize>);

fn mine(dir: &Path, top_k: usize, pool_mult: usize, classification: &str, extra: &[&str]) -> Vec<Group> {
    mine_with(dir, "exact", top_k, pool_mult, classification, extra)
}

fn mine_with(
    dir: &Path,
    mode: &str,
    top_k: usize,
    pool_mult: usize,
    classification: &str,
    extra: &[&str],
) -> Vec<Group> {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let pool = (2 * top_k * pool_mult).to_string();
    let res = run(
        "saha-retrieve",
        &[
            "--mode",
            mode,
            "--pairs",
            &p("pairs.parquet"),
            "--embeddings",
            &p("embeddings.parquet"),
            "--out",
            &p("candidates.parquet"),
            "--pool",
            &pool,
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
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
            "--max-owners",
            "0",
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let (k, m) = (top_k.to_string(), pool_mult.to_string());
    let mut args = vec![
        "--pairs".to_string(),
        p("pairs.parquet"),
        "--candidates".into(),
        p("candidates.parquet"),
        "--owners".into(),
        p("owners.parquet"),
        "--clusters".into(),
        p("clusters.parquet"),
        "--stats".into(),
        p("mining_stats.parquet"),
        "--top-k".into(),
        k,
        "--pool-mult".into(),
        m,
        "--classification-subsets".into(),
        classification.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let res = run("saha-filter", &args);
    assert!(res.status.success(), "{}", stderr(&res));
    groups_of(dir)
}

fn groups_of(dir: &Path) -> Vec<Group> {
    let (pairs, _) = read_records::<Pair>(&dir.join("pairs.parquet")).unwrap();
    let mut index_in_subset = HashMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in &pairs {
        let c = counts.entry(p.subset.as_str()).or_default();
        index_in_subset.insert(p.pair_id, *c);
        *c += 1;
    }
    let (members, _) = read_records::<ClusterMember>(&dir.join("clusters.parquet")).unwrap();
    let mut clusters: BTreeMap<u32, Vec<&ClusterMember>> = BTreeMap::new();
    for m in &members {
        clusters.entry(m.cluster_id).or_default().push(m);
    }
    clusters
        .values()
        .map(|ms| {
            assert!(ms.windows(2).all(|w| w[1].position == w[0].position + 1) && ms[0].position == 0);
            (
                ms[0].subset.clone(),
                ms[0].phase,
                index_in_subset[&ms[0].pair_id],
                ms[1..].iter().map(|m| index_in_subset[&m.pair_id]).collect(),
            )
        })
        .collect()
}

fn oracle(data: &Dataset, dir: &Path, top_k: usize, pool_mult: usize, classification: &[&str]) -> Vec<Group> {
    let spec = dir.join("oracle.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&data.oracle_spec(top_k, pool_mult, classification)).unwrap(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(repo_root().join("tests/oracle/saha_sampler.py"))
        .arg(&spec)
        .output()
        .expect("python3 runs (make test installs numpy)");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    groups
        .iter()
        .map(|g| {
            (
                g["subset"].as_str().unwrap().to_string(),
                g["phase"].as_u64().unwrap() as u8,
                g["anchor"].as_u64().unwrap() as usize,
                g["negatives"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect()
}

fn check(data: &Dataset, top_k: usize, pool_mult: usize, classification: &[&str], scramble: bool) -> Vec<Group> {
    let dir = tempfile::tempdir().unwrap();
    data.write(dir.path(), scramble);
    let ours = mine(dir.path(), top_k, pool_mult, &classification.join(","), &[]);
    let theirs = oracle(data, dir.path(), top_k, pool_mult, classification);
    assert!(!ours.is_empty());
    assert_eq!(ours.len(), theirs.len(), "cluster count");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "cluster {i} differs (ours vs oracle)");
    }
    ours
}

#[test]
fn retrieval_subsets_match_the_oracle() {
    let mut rng = Rng::new(11);
    let mut d = Dataset::new(24);
    d.retrieval(&mut rng, "VisDial", 90, 9);
    d.retrieval(&mut rng, "WebQA", 40, 4);
    let groups = check(&d, 3, 2, &["ImageNet_1K"], false);
    assert!(
        groups.iter().any(|g| g.1 == 2),
        "the leftover pass ran and built clusters"
    );
    check(&d, 4, 3, &["ImageNet_1K"], true);
}

#[test]
fn classification_with_few_labels_matches_the_oracle() {
    let mut rng = Rng::new(12);
    let mut d = Dataset::new(16);
    d.classification(&mut rng, "ImageNet_1K", 70, 5);
    d.retrieval(&mut rng, "MSCOCO_t2i", 30, 3);
    let groups = check(&d, 3, 2, &["ImageNet_1K", "N24News"], true);
    // With five labels an ImageNet cluster has at most four negatives, one per other label.
    assert!(groups.iter().filter(|g| g.0 == "ImageNet_1K").all(|g| g.3.len() <= 3));
    // Without the classification exception the same data is re-sorted and must still match.
    check(&d, 3, 2, &["N24News"], false);
}

#[test]
fn duplicate_query_keys_and_tiny_subsets_match_the_oracle() {
    let mut rng = Rng::new(13);
    let mut d = Dataset::new(20);
    d.retrieval(&mut rng, "CIRR", 50, 5);
    d.duplicate_queries(&mut rng, "CIRR", 12);
    d.retrieval(&mut rng, "Tiny", 5, 2);
    let groups = check(&d, 3, 2, &[], false);
    assert!(groups.iter().any(|g| g.0 == "Tiny"));
    check(&d, 2, 5, &[], true);
}

#[test]
fn audit_shows_saha_avoids_the_false_negatives_topk_takes() {
    let mut rng = Rng::new(14);
    let mut d = Dataset::new(16);
    // Few topics: most hard candidates share the anchor's topic label (false-negative traps).
    d.retrieval(&mut rng, "VisDial", 120, 6);
    let dir = tempfile::tempdir().unwrap();
    d.write(dir.path(), false);
    let embeddings = dir.path().join("embeddings.parquet");
    let rate = |strategy: &str| -> f64 {
        mine(
            dir.path(),
            3,
            2,
            "",
            &["--strategy", strategy, "--embeddings", embeddings.to_str().unwrap()],
        );
        let (stats, _) = read_records::<MiningStats>(&dir.path().join("mining_stats.parquet")).unwrap();
        assert_eq!(stats[0].strategy, strategy);
        stats[0].false_negative_rate.unwrap()
    };
    let (saha, topk) = (rate("saha"), rate("topk"));
    eprintln!("false-negative rate: saha {saha:.3}, topk {topk:.3}");
    assert!(saha < topk, "saha {saha} vs topk {topk}");
    for s in ["positive-aware", "range"] {
        let r = rate(s);
        assert!((0.0..=1.0).contains(&r), "{s}: {r}");
    }
}

#[test]
fn fast_mode_gives_the_exact_clusters() {
    let mut rng = Rng::new(15);
    let mut d = Dataset::new(96);
    d.retrieval(&mut rng, "VisDial", 300, 12);
    d.classification(&mut rng, "ImageNet_1K", 120, 8);
    d.duplicate_queries(&mut rng, "VisDial", 20);
    let dir = tempfile::tempdir().unwrap();
    d.write(dir.path(), true);
    let exact = mine_with(dir.path(), "exact", 5, 3, "ImageNet_1K", &[]);
    let exact_candidates = std::fs::read(dir.path().join("candidates.parquet")).unwrap();
    let fast = mine_with(dir.path(), "fast", 5, 3, "ImageNet_1K", &[]);
    assert_eq!(exact, fast);
    let (a, _) = read_records::<saha_schemas::Candidate>(&dir.path().join("candidates.parquet")).unwrap();
    std::fs::write(dir.path().join("exact.parquet"), exact_candidates).unwrap();
    let (b, _) = read_records::<saha_schemas::Candidate>(&dir.path().join("exact.parquet")).unwrap();
    assert_eq!(a, b, "same candidates, ranks and scores");
    assert_eq!(exact, oracle(&d, dir.path(), 5, 3, &["ImageNet_1K"]));
}
