//! saha-wordnet on a small WordNet-format database (wordnet_data.rs): deterministic, MMEB-shaped (the prompt
//! stage reads it), synset-labelled with synonym traps, disjoint train and eval synsets, clear errors.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use saha_schemas::records::read_records;
use saha_schemas::Pair;
use saha_tests::wordnet_data::database;
use saha_tests::{run, stderr};

fn generate(wordnet: &Path, out: &Path, seed: &str) -> std::process::Output {
    run(
        "saha-wordnet",
        &[
            "--wordnet",
            wordnet.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--train-per-subset",
            "12",
            "--eval-per-subset",
            "6",
            "--candidates",
            "4",
        ],
    )
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = ["wordnet.json"]
        .into_iter()
        .map(String::from)
        .chain(["train", "eval"].iter().flat_map(|split| {
            std::fs::read_dir(dir.join(split))
                .unwrap()
                .map(move |e| format!("{split}/{}", e.unwrap().file_name().to_string_lossy()))
        }))
        .map(|name| (name.clone(), std::fs::read(dir.join(&name)).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_and_mmeb_shaped_synset_labelled_data() {
    let d = tempfile::tempdir().unwrap();
    let wn = database(d.path(), 8, 20);
    let (a, b, c) = (
        d.path().join("a/data"),
        d.path().join("b/data"),
        d.path().join("c/data"),
    );
    for (out, seed) in [(&a, "1"), (&b, "1"), (&c, "2")] {
        let res = generate(&wn, out, seed);
        assert!(res.status.success(), "{}", stderr(&res));
    }
    assert_eq!(files(&a), files(&b), "one seed, one set of bytes");
    assert_ne!(files(&a), files(&c));
    assert_eq!(files(&a).len(), 7, "three subsets, train and eval, and the manifest");
    assert_eq!(
        std::fs::read_dir(d.path().join("a")).unwrap().count(),
        1,
        "no temporary folder left"
    );

    let prompt = |data: &str, out: &Path| {
        let res = run(
            "saha-prompt",
            &[
                "--data",
                a.join(data).to_str().unwrap(),
                "--image-root",
                a.to_str().unwrap(),
                "--out-dir",
                out.to_str().unwrap(),
            ],
        );
        assert!(res.status.success(), "{}", stderr(&res));
        read_records::<Pair>(&out.join("pairs.parquet")).unwrap().0
    };
    let train = prompt("train", &d.path().join("run"));
    let eval = prompt("eval", &d.path().join("run/eval"));
    let subsets: BTreeSet<_> = train.iter().map(|p| p.subset.as_str()).collect();
    assert_eq!(
        subsets,
        BTreeSet::from(["WordNet_Gloss", "WordNet_Hypernym", "WordNet_Synonym"])
    );
    assert!(train
        .iter()
        .chain(&eval)
        .all(|p| p.label.as_deref().is_some_and(|l| l.starts_with('n'))));
    // Synonym traps: each synset gives several pairs with the same label and different positives.
    let mut by_label: HashMap<&str, BTreeSet<u32>> = HashMap::new();
    for p in train.iter().filter(|p| p.subset == "WordNet_Synonym") {
        by_label
            .entry(p.label.as_deref().unwrap())
            .or_default()
            .insert(p.target_id);
    }
    assert_eq!(by_label.len(), 12);
    assert!(by_label.values().all(|targets| targets.len() == 3), "{by_label:?}");
    // Hypernym labels are categories, shared by many queries; the category appears under both its names.
    let hyper: Vec<_> = train.iter().filter(|p| p.subset == "WordNet_Hypernym").collect();
    let labels: BTreeSet<_> = hyper.iter().map(|p| p.label.as_deref().unwrap()).collect();
    assert!(
        labels.len() < hyper.len() && labels.iter().all(|l| l.starts_with("n1")),
        "{labels:?}"
    );
    assert_eq!(labels.len(), 3, "four training synsets per category");
    let names = |label: &str| -> BTreeSet<u32> {
        hyper
            .iter()
            .filter(|p| p.label.as_deref() == Some(label))
            .map(|p| p.target_id)
            .collect()
    };
    assert!(
        labels.iter().any(|l| names(l).len() == 2),
        "some category under both its names"
    );
    // Train and eval draw disjoint synsets.
    for subset in ["WordNet_Synonym", "WordNet_Gloss"] {
        let of = |pairs: &[Pair]| -> BTreeSet<String> {
            pairs
                .iter()
                .filter(|p| p.subset == subset)
                .map(|p| p.label.clone().unwrap())
                .collect()
        };
        assert!(of(&train).is_disjoint(&of(&eval)), "{subset}");
        assert_eq!(of(&eval).len(), 6, "{subset}");
    }
    let lists = saha_schemas::records::read_records::<saha_schemas::EvalListEntry>(
        &d.path().join("run/eval/eval_lists.parquet"),
    )
    .unwrap()
    .0;
    let mut per_query: HashMap<_, usize> = HashMap::new();
    for e in &lists {
        *per_query.entry(e.pair_id).or_default() += 1;
    }
    assert_eq!(per_query.len(), 18);
    assert!(per_query.values().all(|&n| n == 4), "{per_query:?}");
}

#[test]
fn a_missing_or_malformed_database_and_too_few_synsets_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("data");
    let res = generate(&d.path().join("nowhere"), &out, "1");
    assert_eq!(res.status.code(), Some(1));
    assert!(
        stderr(&res).contains("nowhere/data.noun") && stderr(&res).contains("wordnet-base"),
        "{}",
        stderr(&res)
    );

    let wn = database(d.path(), 2, 10);
    let res = generate(&wn, &out, "1");
    assert_eq!(res.status.code(), Some(1));
    assert!(
        stderr(&res).contains("usable synsets, fewer than the 54"),
        "{}",
        stderr(&res)
    );

    let data = wn.join("data.noun");
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("12345678 03 n 02 lonely 0\n");
    std::fs::write(&data, text).unwrap();
    let res = generate(&wn, &out, "1");
    assert_eq!(res.status.code(), Some(1));
    assert!(stderr(&res).contains("data.noun line 25"), "{}", stderr(&res));
    assert!(!out.exists(), "nothing written");
}
