//! Seeded mutation fuzzing of the artefact readers: truncated, bit-flipped and overwritten copies
//! of valid files must be refused with an error naming the file (or, rarely, still read), never
//! make the reader panic. The seeds of any panicking case are printed, to keep as regressions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use saha_common::mutate::mutate;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{Pair, Provenance};

fn pairs() -> Vec<Pair> {
    (0..300u32)
        .map(|i| Pair {
            pair_id: i,
            subset: format!("S{}", i % 3),
            qry: format!("query {i}"),
            qry_image_path: (i % 2 == 0).then(|| format!("img/{i}.png")),
            pos_text: format!("target {}", i % 17),
            pos_image_path: None,
            query_id: i,
            target_id: 1000 + i % 17,
            label: Some(format!("l{}", i % 5)),
            source_file: "f".into(),
            source_row: i,
        })
        .collect()
}

fn fuzz(valid: &Path, cases: u64, read: impl Fn(&Path) -> Result<(), String>) {
    let bytes = std::fs::read(valid).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut panicked = Vec::new();
    let mut refused = 0;
    for seed in 0..cases {
        let path = dir.path().join(format!("case-{seed}.parquet"));
        std::fs::write(&path, mutate(&bytes, seed)).unwrap();
        match catch_unwind(AssertUnwindSafe(|| read(&path))) {
            Err(_) => panicked.push(seed),
            Ok(Err(message)) => {
                assert!(
                    message.contains(&format!("case-{seed}.parquet")),
                    "seed {seed}: {message}"
                );
                refused += 1;
            }
            Ok(Ok(())) => {}
        }
    }
    assert!(
        panicked.is_empty(),
        "{}: the reader panicked for seeds {panicked:?}",
        valid.display()
    );
    assert!(
        refused > cases / 2,
        "most corruptions are noticed: {refused} of {cases}"
    );
}

#[test]
fn corrupted_pairs_and_embeddings_files_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let prov = Provenance::new("test", "0");
    let pairs_path = dir.path().join("pairs.parquet");
    write_records(&pairs_path, &pairs(), &prov).unwrap();
    fuzz(&pairs_path, 4000, |p| {
        read_records::<Pair>(p).map(|_| ()).map_err(|e| e.to_string())
    });

    let e = Embeddings {
        item_ids: (0..200).collect(),
        dim: 16,
        values: (0..200 * 16).map(|i| ((i % 13) as f32 - 6.0) / 7.0 + 0.01).collect(),
        model: "m".into(),
        normalized: false,
    };
    let emb_path = dir.path().join("embeddings.parquet");
    e.write(&emb_path, &prov).unwrap();
    fuzz(&emb_path, 4000, |p| {
        Embeddings::read(p).map(|_| ()).map_err(|e| e.to_string())
    });
}
