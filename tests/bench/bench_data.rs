//! Writes a mining benchmark dataset: `n` (query, target) pairs in one subset, `dim`-dimensional
//! unit vectors around `topics` centres, as pairs.parquet + embeddings.parquet for the stages and
//! q.npy + t.npy for the numpy baselines. By default query i owns target i; with `--targets K`
//! the pairs share K targets (a few-label subset: query i owns the target of its topic, one of K). With `--gemm-peak` it instead measures this machine's
//! f32 matrix-product rate with the same kernel the retrieval stage uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use saha_common::rng::Rng;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::write_records;
use saha_schemas::{Pair, Provenance};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| default.to_string())
}

fn gaussian(rng: &mut Rng) -> f32 {
    let u = |r: &mut Rng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

fn vectors(seed: u64, stream: u64, n: usize, dim: usize, centres: &[f32], topics: &[usize]) -> Vec<f32> {
    let mut out = vec![0f32; n * dim];
    out.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
        let mut rng = Rng::fork(seed, stream, i as u64);
        let c = &centres[topics[i] * dim..(topics[i] + 1) * dim];
        for (x, m) in row.iter_mut().zip(c) {
            *x = m + 0.8 * gaussian(&mut rng);
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    });
    out
}

fn write_npy(path: &Path, values: &[f32], rows: usize, cols: usize) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for v in values {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

fn gemm_peak(dim: usize) {
    let (m, n) = (2048, 8192);
    let a: Vec<f32> = (0..m * dim).map(|i| (i % 97) as f32 / 97.0).collect();
    let b: Vec<f32> = (0..n * dim).map(|i| (i % 89) as f32 / 89.0).collect();
    let threads = rayon::current_num_threads();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        // One product per thread, as the retrieval stage runs them.
        (0..threads).into_par_iter().for_each(|_| {
            let mut out = vec![0f32; m * n];
            saha_mining::retrieve::matmul_transposed(&a, &b, dim, &mut out);
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (m * n * dim * threads) as f64;
    println!("{:.1}", flops / best / 1e9);
}

fn main() {
    let dim: usize = arg("--dim", "1536").parse().unwrap();
    if std::env::args().any(|a| a == "--gemm-peak") {
        return gemm_peak(dim);
    }
    let out = PathBuf::from(arg("--out", "bench"));
    let n: usize = arg("--n", "100000").parse().unwrap();
    let n_targets: usize = arg("--targets", "0").parse().unwrap();
    let n_topics: usize = if n_targets > 0 {
        n_targets
    } else {
        arg("--topics", "1000").parse().unwrap()
    };
    let seed: u64 = arg("--seed", "1").parse().unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = Rng::new(seed);
    let centres: Vec<f32> = (0..n_topics * dim)
        .map(|_| gaussian(&mut rng) / (dim as f32).sqrt() * 1.5)
        .collect();
    let topics: Vec<usize> = (0..n).map(|_| rng.below(n_topics)).collect();
    let q = vectors(seed, 1, n, dim, &centres, &topics);
    let (t, target_of): (Vec<f32>, Vec<usize>) = if n_targets > 0 {
        let own: Vec<usize> = (0..n_targets).collect();
        (vectors(seed, 2, n_targets, dim, &centres, &own), topics.clone())
    } else {
        (vectors(seed, 2, n, dim, &centres, &topics), (0..n).collect())
    };
    let n_t = t.len() / dim;
    let pairs: Vec<Pair> = (0..n)
        .map(|i| Pair {
            pair_id: i as u32,
            subset: "Bench".into(),
            qry: format!("query {i}"),
            qry_image_path: None,
            pos_text: format!("target {}", target_of[i]),
            pos_image_path: None,
            query_id: i as u32,
            target_id: (n + target_of[i]) as u32,
            label: Some(format!("topic {}", topics[i])),
            source_file: "bench".into(),
            source_row: i as u32,
        })
        .collect();
    write_records(&out.join("pairs.parquet"), &pairs, &Provenance::new("bench", "0")).unwrap();
    write_npy(&out.join("q.npy"), &q, n, dim);
    write_npy(&out.join("t.npy"), &t, n_t, dim);
    std::fs::write(
        out.join("owner.txt"),
        target_of.iter().map(|t| format!("{t}\n")).collect::<String>(),
    )
    .unwrap();
    let mut values = q;
    values.extend_from_slice(&t);
    let e = Embeddings {
        item_ids: (0..(n + n_t) as u32).collect(),
        dim,
        values,
        model: "bench".into(),
        normalized: true,
    };
    e.write(&out.join("embeddings.parquet"), &Provenance::new("bench", "0"))
        .unwrap();
}
