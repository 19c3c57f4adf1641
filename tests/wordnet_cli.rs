//! saha-wordnet on a small WordNet-format database (wordnet_data.rs): deterministic, MMEB-shaped (the prompt
//! stage reads it), synset-labelled with synonym traps, disjoint train and eval synsets, clear errors.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use saha_schemas::records::read_records;
use saha_schemas::{EvalListEntry, Item, Pair};
use saha_tests::wordnet_data::{database, database_with, word};
use saha_tests::{run, stderr};

fn generate(wordnet: &Path, out: &Path, seed: &str) -> std::process::Output {
    generate_with(
        wordnet,
        out,
        seed,
        &["--eval-per-subset", "6", "--candidates", "4", "--hard-distractors", "2"],
    )
}

fn generate_with(wordnet: &Path, out: &Path, seed: &str, sizes: &[&str]) -> std::process::Output {
    let args = [
        &[
            "--wordnet",
            wordnet.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--train-per-subset",
            "12",
        ][..],
        sizes,
    ]
    .concat();
    run("saha-wordnet", &args)
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

    // The default of 8 hard distractors shrinks to fit short candidate lists; an explicit count does not.
    let wn8 = database(&d.path().join("wn8"), 8, 20);
    let short = ["--eval-per-subset", "6", "--candidates", "4"];
    let res = generate_with(&wn8, &d.path().join("short/data"), "1", &short);
    assert!(res.status.success(), "{}", stderr(&res));
    let res = generate_with(&wn8, &out, "1", &[&short[..], &["--hard-distractors", "4"]].concat());
    assert_eq!(res.status.code(), Some(1));
    assert!(
        stderr(&res).contains("--hard-distractors (4) must be below --candidates (4)"),
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

/// Candidate lists per eval row (texts in rank order), read back through saha-prompt.
fn candidate_lists(data: &Path, out: &Path) -> (Vec<Pair>, HashMap<u32, Vec<String>>) {
    let res = run(
        "saha-prompt",
        &[
            "--data",
            data.join("eval").to_str().unwrap(),
            "--image-root",
            data.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let pairs = read_records::<Pair>(&out.join("pairs.parquet")).unwrap().0;
    let items: HashMap<u32, String> = read_records::<Item>(&out.join("items.parquet"))
        .unwrap()
        .0
        .into_iter()
        .map(|i| (i.item_id, i.text))
        .collect();
    let mut lists: Vec<EvalListEntry> = read_records(&out.join("eval_lists.parquet")).unwrap().0;
    lists.sort_by_key(|e| (e.pair_id, e.rank));
    let mut by_pair: HashMap<u32, Vec<String>> = HashMap::new();
    for e in lists {
        by_pair.entry(e.pair_id).or_default().push(items[&e.item_id].clone());
    }
    (pairs, by_pair)
}

#[test]
fn eval_candidates_start_with_siblings_and_never_hold_another_right_answer() {
    let d = tempfile::tempdir().unwrap();
    // Twelve categories of four members, each member's first word also naming a second synset.
    let (categories, per) = (12, 4);
    let wn = database_with(d.path(), categories, per, true);
    let sizes = [
        "--eval-per-subset",
        "16",
        "--candidates",
        "10",
        "--hard-distractors",
        "4",
    ];
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for out in [&a, &b] {
        let res = generate_with(&wn, out, "7", &sizes);
        assert!(res.status.success(), "{}", stderr(&res));
    }
    assert_eq!(files(&a), files(&b), "one seed, the same distractors");
    let (pairs, lists) = candidate_lists(&a, &d.path().join("run"));
    let number: HashMap<String, usize> = (0..categories * per).map(|i| (word(i), i)).collect();
    // The member number a lemma or definition names, and its category.
    let of = |text: &str| -> usize {
        let w = text
            .split(' ')
            .find(|w| number.contains_key(*w) || w.parse::<usize>().is_ok());
        let w = w.unwrap_or_else(|| panic!("no number in {text:?}"));
        w.parse().unwrap_or_else(|_| number[w])
    };
    let mut seen = BTreeSet::new();
    for p in &pairs {
        let c = &lists[&p.pair_id];
        assert_eq!(c.len(), 10, "{p:?}");
        assert_eq!(c[0], p.pos_text);
        assert_eq!(
            c.iter().collect::<BTreeSet<_>>().len(),
            10,
            "distinct candidates: {c:?}"
        );
        let (distractors, hard) = (&c[1..], &c[1..5]);
        seen.insert(p.subset.as_str());
        // The query's word: after the instruction, before the definition in the hypernym subset.
        let w = match p.subset.as_str() {
            "WordNet_Hypernym" => p.qry.split("? ").nth(1).unwrap().split(": ").next().unwrap(),
            _ => p.qry.rsplit(": ").next().unwrap(),
        };
        let i = of(w);
        let right: Vec<String> = match p.subset.as_str() {
            "WordNet_Synonym" => {
                let n = word(i);
                let mut right = vec![format!("alias {n}"), format!("thing {n}")];
                if w.starts_with("thing") {
                    right.extend([format!("item {n}"), format!("object {n}")]);
                }
                right
            }
            "WordNet_Gloss" => {
                let mut right = vec![format!("another sense number {i} of a thing")];
                if w.starts_with("thing") {
                    right.push(format!("member number {i} of a class of things"));
                }
                right
            }
            _ => {
                let c = word(i / per);
                vec![
                    format!("kind {c}"),
                    format!("sort {c}"),
                    "entity".into(),
                    "being".into(),
                ]
            }
        };
        assert!(right.contains(&c[0]), "{p:?}");
        assert!(
            !distractors.iter().any(|t| right.contains(t)),
            "{}: a right answer among the distractors {distractors:?} of {:?}",
            p.subset,
            p.qry
        );
        if p.subset == "WordNet_Hypernym" {
            assert!(
                hard.iter().all(|t| t.starts_with("kind ")),
                "sibling categories first: {c:?}"
            );
        } else {
            assert!(
                hard.iter().all(|t| of(t) / per == i / per),
                "siblings in the query's category first: {:?} -> {c:?}",
                p.qry
            );
        }
    }
    assert_eq!(seen.len(), 3);
}

/// `make prompt-eval prompt-no-system prompt-plain` of the wordnet pipeline: the three prompt variants of
/// demo-real's zero-shot table, byte for byte, for one synonym query and its positive.
#[test]
fn demo_real_prompt_variants_render_the_hierarchical_the_user_level_only_and_the_bare_prompt() {
    let d = tempfile::tempdir().unwrap();
    let wn = database(d.path(), 8, 20);
    let out = saha_tests::make(
        d.path(),
        &[
            "PIPELINE=wordnet",
            "RUN=r",
            &format!("WORDNET_DIR={}", wn.display()),
            "TRAIN_PER_SUBSET=12",
            "EVAL_PER_SUBSET=6",
            "CANDIDATES=4",
            "HARD_DISTRACTORS=2",
            "prompt-eval",
            "prompt-no-system",
            "prompt-plain",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run_dir = d.path().join("r");
    let pairs = read_records::<Pair>(&run_dir.join("eval/pairs.parquet")).unwrap().0;
    let p = pairs.iter().find(|p| p.subset == "WordNet_Synonym").unwrap();
    let (query, positive) = (p.qry.as_str(), p.pos_text.as_str());
    let prompts = |variant: &str| -> (String, String) {
        let items = read_records::<Item>(&run_dir.join(variant).join("items.parquet"))
            .unwrap()
            .0;
        let find = |text: &str| {
            items
                .iter()
                .find(|i| i.subset == "WordNet_Synonym" && i.text == text)
                .unwrap_or_else(|| panic!("{variant}: no item {text:?}"))
                .prompt
                .clone()
        };
        (find(query), find(positive))
    };
    let turn = |system: Option<&str>, user: &str| {
        system.map_or(String::new(), |s| format!("<|im_start|>system\n{s}<|im_end|>\n"))
            + &format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
    };
    let instruction = "\nRepresent the given text in one word.";
    assert_eq!(
        prompts("eval"),
        (
            turn(
                Some(
                    "Given a word, find another word or phrase that means the same. Describe the meaning in one word."
                ),
                &format!("{query}{instruction}")
            ),
            turn(
                Some("Given a word or phrase, describe its meaning in one word."),
                positive
            )
        )
    );
    assert_eq!(
        prompts("eval-no-system"),
        (turn(None, &format!("{query}{instruction}")), turn(None, positive)),
        "the reference's ablation: no system block, the user-level instruction kept"
    );
    assert_eq!(prompts("eval-plain"), (turn(None, query), turn(None, positive)));
}
