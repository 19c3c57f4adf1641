//! The three mining stages against an independent Python re-statement of the reference sampler
//! (tests/oracle/saha_sampler.py): identical clusters (anchor, members, order, phase).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use saha_common::rng::Rng;
use saha_schemas::records::read_records;
use saha_schemas::{ClusterMember, MiningStats, Pair};
use saha_tests::mining_data::{filter_in, remap_in, Dataset};
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
    let res = remap_in(dir);
    assert!(res.status.success(), "{}", stderr(&res));
    let (k, m) = (top_k.to_string(), pool_mult.to_string());
    let mut args = vec![
        "--top-k",
        &k,
        "--pool-mult",
        &m,
        "--classification-subsets",
        classification,
    ];
    args.extend(extra);
    let res = filter_in(dir, None, &args);
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

/// Runs the Python oracle `tests/oracle/<script>` on `spec` (written as JSON into `dir`) and parses
/// what it prints.
fn run_oracle(script: &str, spec: &serde_json::Value, dir: &Path) -> serde_json::Value {
    let path = dir.join(script.replace(".py", ".json"));
    std::fs::write(&path, serde_json::to_vec(spec).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(repo_root().join("tests/oracle").join(script))
        .arg(&path)
        .output()
        .expect("python3 runs (make test installs numpy)");
    assert!(
        out.status.success(),
        "oracle {script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn oracle(data: &Dataset, dir: &Path, top_k: usize, pool_mult: usize, classification: &[&str]) -> Vec<Group> {
    let oracle = run_oracle(
        "saha_sampler.py",
        &data.oracle_spec(top_k, pool_mult, classification),
        dir,
    );
    let groups: Vec<serde_json::Value> = serde_json::from_value(oracle).unwrap();
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

/// Few-label subsets (yes/no, a handful of colours, a class list): every answer is owned by
/// hundreds of questions, more than the 128 owners the filter used to keep per candidate by default.
/// With defaults the clusters are the reference's, with and without the classification exception.
#[test]
fn few_label_subsets_match_the_oracle_with_defaults() {
    for (seed, answers, pairs) in [(21u64, 2usize, 1100usize), (22, 13, 2000), (23, 24, 3400)] {
        let mut rng = Rng::new(seed);
        let mut d = Dataset::new(24);
        d.few_answers(&mut rng, "VQA", pairs, answers, 6);
        d.repeat_queries(&mut rng, "VQA", 40);
        let dir = tempfile::tempdir().unwrap();
        d.write(dir.path(), seed % 2 == 0);
        for classification in [&[][..], &["VQA"][..]] {
            let ours = mine(dir.path(), 4, 3, &classification.join(","), &[]);
            let theirs = oracle(&d, dir.path(), 4, 3, classification);
            assert_eq!(
                ours.len(),
                theirs.len(),
                "{answers} answers, {classification:?}: cluster count"
            );
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                assert_eq!(
                    a, b,
                    "{answers} answers, {classification:?}: cluster {i} differs (ours vs oracle)"
                );
            }
        }
        let (owners, _) = read_records::<saha_schemas::Owner>(&dir.path().join("owners.parquet")).unwrap();
        let most = owners.iter().map(|o| o.owners_total).max().unwrap();
        assert!(
            most > 128,
            "{answers} answers: the largest owner list has {most} owners"
        );
        let (stats, _) = read_records::<MiningStats>(&dir.path().join("mining_stats.parquet")).unwrap();
        assert!(stats[0].shared_target_visits > 0);
    }
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
    let rate = |strategy: &str| -> f64 {
        mine(dir.path(), 3, 2, "", &["--strategy", strategy]);
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
    // With neither AVX-512 VNNI nor AVX2 (and no --int8-kernel) fast mode runs exact retrieval and records that it did.
    let (_, prov) = read_records::<saha_schemas::Candidate>(&dir.path().join("candidates.parquet")).unwrap();
    let used = if saha_mining::quantized::Int8Kernel::fastest_here().is_some() {
        "fast"
    } else {
        "exact"
    };
    assert_eq!(prov.unwrap().stats["mode_used"], used);
    let (a, _) = read_records::<saha_schemas::Candidate>(&dir.path().join("candidates.parquet")).unwrap();
    std::fs::write(dir.path().join("exact.parquet"), exact_candidates).unwrap();
    let (b, _) = read_records::<saha_schemas::Candidate>(&dir.path().join("exact.parquet")).unwrap();
    assert_eq!(a, b, "same candidates, ranks and scores");
    assert_eq!(exact, oracle(&d, dir.path(), 5, 3, &["ImageNet_1K"]));
    // Each int8 kernel this CPU runs, named: the same candidates again; one it cannot run is refused.
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    for kernel in ["vnni", "avx2"] {
        let out = p(&format!("candidates-{kernel}.parquet"));
        let res = run(
            "saha-retrieve",
            &[
                "--mode",
                "fast",
                "--int8-kernel",
                kernel,
                "--pairs",
                &p("pairs.parquet"),
                "--embeddings",
                &p("embeddings.parquet"),
                "--out",
                &out,
                "--pool",
                "30",
            ],
        );
        let runs = match kernel {
            "vnni" => saha_mining::quantized::Int8Kernel::Vnni.runs_here(),
            _ => saha_mining::quantized::Int8Kernel::Avx2.runs_here(),
        };
        if !runs {
            assert!(!res.status.success(), "{kernel}: accepted on a CPU that cannot run it");
            assert!(stderr(&res).contains("cannot run"), "{}", stderr(&res));
            assert!(!Path::new(&out).exists());
            eprintln!("fast_mode_gives_the_exact_clusters: the {kernel} kernel cannot run here");
            continue;
        }
        assert!(res.status.success(), "{}", stderr(&res));
        let (c, prov) = read_records::<saha_schemas::Candidate>(Path::new(&out)).unwrap();
        let stats = prov.unwrap().stats;
        assert_eq!(stats["int8_kernel"], kernel);
        assert_eq!(c, b, "{kernel}: same candidates, ranks and scores as exact retrieval");
        // The default check: every `stride`-th query of each of the two subsets, about 256 in all.
        let queries = a.iter().filter(|x| x.rank == 0).count();
        let stride = queries.div_ceil(256);
        let checked = stats["fast_check"]["queries"].as_u64().unwrap() as usize;
        assert!(
            stride > 1 && (queries / stride..=queries / stride + 2).contains(&checked),
            "{checked} of {queries}"
        );
        assert_eq!(
            stats["fast_check"]["differing"], 0,
            "{kernel}: {:?}",
            stats["fast_check"]
        );
        assert!(stderr(&res).contains("queries searched exactly as well got other candidates"));
    }
}

/// The positive-aware and range baselines against their definitions (`saha-filter --help`,
/// mining/src/strategies.rs), restated here from candidates.parquet, pairs.parquet and the embeddings:
/// * positive-aware: per pair, the first `top_k` candidates of its query, in rank order, that are not its
///   positive and score at most `positive_fraction` x the query-positive inner product;
/// * range: `min(top_k, available)` distinct candidates from ranks [range_start, range_end) of that
///   non-positive list, in rank order, drawn at random (not simply the first ones).
///
/// The range draw itself (SplitMix, forked per pair) is not re-implemented: its properties are checked.
#[test]
fn positive_aware_and_range_baselines_follow_their_definitions() {
    let mut rng = Rng::new(16);
    let mut d = Dataset::new(16);
    d.retrieval(&mut rng, "VisDial", 120, 6);
    d.retrieval(&mut rng, "WebQA", 40, 4);
    let dir = tempfile::tempdir().unwrap();
    d.write(dir.path(), false);
    let embeddings = saha_schemas::embeddings::Embeddings::read(&dir.path().join("embeddings.parquet")).unwrap();
    let unit = |id: u32| -> Vec<f64> {
        let i = embeddings.item_ids.iter().position(|&x| x == id).unwrap();
        let v: Vec<f64> = embeddings.values[i * embeddings.dim..(i + 1) * embeddings.dim]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let (pairs, _) = read_records::<Pair>(&dir.path().join("pairs.parquet")).unwrap();
    let (top_k, pool_mult) = (3usize, 3usize);
    let run_strategy = |strategy: &str, extra: &[&str]| -> (Vec<ClusterMember>, HashMap<u32, Vec<(u32, f32)>>) {
        let mut args = vec!["--strategy", strategy];
        args.extend(extra);
        mine(dir.path(), top_k, pool_mult, "", &args);
        let (members, _) = read_records::<ClusterMember>(&dir.path().join("clusters.parquet")).unwrap();
        let (cands, _) = read_records::<saha_schemas::Candidate>(&dir.path().join("candidates.parquet")).unwrap();
        let mut by_query: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for c in &cands {
            let list = by_query.entry(c.query_id).or_default();
            assert_eq!(list.len(), c.rank as usize, "candidates in rank order");
            list.push((c.target_id, c.score));
        }
        (members, by_query)
    };
    // The chosen negative targets per anchor pair, in cluster order.
    let chosen = |members: &[ClusterMember]| -> BTreeMap<u32, Vec<u32>> {
        let mut clusters: BTreeMap<u32, Vec<&ClusterMember>> = BTreeMap::new();
        for m in members {
            clusters.entry(m.cluster_id).or_default().push(m);
        }
        let mut out = BTreeMap::new();
        for ms in clusters.values() {
            assert_eq!(ms[0].position, 0);
            assert!(ms.iter().all(|m| m.phase == 1));
            let previous = out.insert(ms[0].pair_id, ms[1..].iter().map(|m| m.target_id).collect());
            assert!(previous.is_none(), "pair {} anchors two clusters", ms[0].pair_id);
        }
        out
    };
    let non_positive = |cands: &HashMap<u32, Vec<(u32, f32)>>, p: &Pair| -> Vec<(u32, f32)> {
        cands[&p.query_id]
            .iter()
            .copied()
            .filter(|c| c.0 != p.target_id)
            .collect()
    };

    // Positive-aware, at a fraction that drops some candidates and keeps others.
    let fraction = 0.8f64;
    let (members, cands) = run_strategy("positive-aware", &["--positive-fraction", "0.8"]);
    let got = chosen(&members);
    let mut dropped = 0;
    let mut near = std::collections::HashSet::new();
    let mut want = BTreeMap::new();
    for p in &pairs {
        let (q, t) = (unit(p.query_id), unit(p.target_id));
        let ceiling = fraction * q.iter().zip(&t).map(|(a, b)| a * b).sum::<f64>();
        let list = non_positive(&cands, p);
        if list.iter().any(|c| (c.1 as f64 - ceiling).abs() < 1e-5) {
            near.insert(p.pair_id); // float32 rounding could decide this one either way
            continue;
        }
        dropped += list.iter().filter(|c| c.1 as f64 > ceiling).count();
        let keep: Vec<u32> = list
            .iter()
            .filter(|c| c.1 as f64 <= ceiling)
            .take(top_k)
            .map(|c| c.0)
            .collect();
        if !keep.is_empty() {
            want.insert(p.pair_id, keep);
        }
    }
    assert!(near.len() <= 2, "{} pairs have a candidate at the ceiling", near.len());
    assert!(dropped > 0, "the fraction drops candidates in this data");
    assert!(!want.is_empty());
    for (pair, keep) in &want {
        assert_eq!(got.get(pair), Some(keep), "positive-aware: negatives of pair {pair}");
    }
    for pair in got.keys() {
        assert!(
            want.contains_key(pair) || near.contains(pair),
            "positive-aware: a cluster for pair {pair}, which has no admissible negative"
        );
    }

    // Range: ranks [2, 9) of the non-positive list.
    let (start, end) = (2usize, 9usize);
    let range_args = ["--range-start", "2", "--range-end", "9"];
    let (members, cands) = run_strategy("range", &[&range_args[..], &["--seed", "42"]].concat());
    let got = chosen(&members);
    let mut not_first = 0;
    // How often each rank of the window was drawn (pairs with a full window): every rank, the first
    // (range_start) and the last (range_end - 1) included, is drawn for some pair.
    let mut drawn = vec![0usize; end - start];
    for p in &pairs {
        let list = non_positive(&cands, p);
        let window: Vec<u32> = list[start.min(list.len())..end.min(list.len())]
            .iter()
            .map(|c| c.0)
            .collect();
        let k = top_k.min(window.len());
        let picked = got.get(&p.pair_id).cloned().unwrap_or_default();
        assert_eq!(
            picked.len(),
            k,
            "range: pair {} takes min(top_k, window) negatives",
            p.pair_id
        );
        let positions: Vec<usize> = picked
            .iter()
            .map(|t| {
                window
                    .iter()
                    .position(|w| w == t)
                    .unwrap_or_else(|| panic!("range: pair {}: target {t} outside ranks [{start}, {end})", p.pair_id))
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "range: pair {}: distinct, rank order",
            p.pair_id
        );
        if positions != (0..k).collect::<Vec<_>>() {
            not_first += 1;
        }
        if window.len() == end - start {
            positions.iter().for_each(|&i| drawn[i] += 1);
        }
    }
    assert!(
        not_first > pairs.len() / 2,
        "range draws at random: {not_first} of {} differ from the first k",
        pairs.len()
    );
    assert!(
        drawn.iter().all(|&n| n > 0),
        "range: times each rank {start}..{end} was drawn: {drawn:?}"
    );
    // Exactly the picks of an independent statement of the draw (tests/oracle/range_draw.py).
    let spec = serde_json::json!({
        "seed": 42, "top_k": top_k, "range_start": start, "range_end": end,
        "pairs": pairs.iter().map(|p| serde_json::json!({
            "pair_id": p.pair_id, "negatives": non_positive(&cands, p).len()
        })).collect::<Vec<_>>(),
    });
    let drawn_by_oracle: HashMap<String, Vec<usize>> =
        serde_json::from_value(run_oracle("range_draw.py", &spec, dir.path())).unwrap();
    for p in &pairs {
        let list = non_positive(&cands, p);
        let want: Vec<u32> = drawn_by_oracle[&p.pair_id.to_string()]
            .iter()
            .map(|&r| list[r].0)
            .collect();
        let picked = got.get(&p.pair_id).cloned().unwrap_or_default();
        assert_eq!(
            picked, want,
            "range: pair {} draws other ranks than the oracle",
            p.pair_id
        );
    }
    let again = chosen(&run_strategy("range", &[&range_args[..], &["--seed", "42"]].concat()).0);
    assert_eq!(again, got, "range: the same seed draws the same negatives");
    let other = chosen(&run_strategy("range", &[&range_args[..], &["--seed", "43"]].concat()).0);
    assert_ne!(other, got, "range: another seed draws other negatives");
}
