//! Seeded mutation fuzzing of the artefact readers: truncated, bit-flipped and overwritten copies
//! of valid files must be refused with an error naming the file (or, rarely, still read), never
//! make the reader panic. The seeds of any panicking case are printed, to keep as regressions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{Pair, Provenance};

/// SplitMix64: small, seeded, and enough to pick offsets.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Mix(seed);
    let mut out = bytes.to_vec();
    match seed % 4 {
        0 => out.truncate(rng.below(bytes.len())),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let start = rng.below(out.len());
            let end = (start + 1 + rng.below(64)).min(out.len());
            out[start..end].iter_mut().for_each(|b| *b = rng.next() as u8);
        }
        _ => {
            // The footer and its length are where readers trust the file most.
            let tail = out.len().min(256);
            let i = out.len() - 1 - rng.below(tail);
            out[i] = rng.next() as u8;
        }
    }
    out
}

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
