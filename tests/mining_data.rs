//! Generated mining inputs: pairs and embeddings with planted structure (topics, shared targets,
//! class labels, duplicate query keys), written as the stages read them, plus the JSON the
//! Python oracle reads.

use std::collections::HashMap;
use std::path::Path;

use saha_common::rng::Rng;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::write_records;
use saha_schemas::{Pair, Provenance};

#[derive(Clone)]
pub struct Row {
    pub subset: String,
    pub qry: String,
    pub qry_image: String,
    pub pos: String,
    pub pos_image: String,
    pub label: String,
}

/// (side, subset, text, image); side 0 = query, 1 = target.
type Key = (u8, String, String, String);

pub struct Dataset {
    pub rows: Vec<Row>,
    pub dim: usize,
    /// Vectors by (side, subset, text, image); side 0 = query, 1 = target.
    pub vectors: HashMap<(u8, String, String, String), Vec<f32>>,
}

fn gaussian(rng: &mut Rng) -> f32 {
    let u = |r: &mut Rng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

impl Dataset {
    pub fn new(dim: usize) -> Self {
        Dataset {
            rows: Vec::new(),
            dim,
            vectors: HashMap::new(),
        }
    }

    fn noisy(&self, rng: &mut Rng, centre: &[f32], noise: f32) -> Vec<f32> {
        unit(centre.iter().map(|c| c + noise * gaussian(rng)).collect())
    }

    fn centres(&self, rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| unit((0..self.dim).map(|_| gaussian(rng)).collect()))
            .collect()
    }

    fn put(&mut self, side: u8, subset: &str, text: &str, image: &str, v: Vec<f32>) {
        self.vectors
            .entry((side, subset.into(), text.into(), image.into()))
            .or_insert(v);
    }

    /// Retrieval-style: `n` pairs on `topics` topics; every third target is shared by two queries.
    pub fn retrieval(&mut self, rng: &mut Rng, subset: &str, n: usize, topics: usize) {
        let centres = self.centres(rng, topics);
        for i in 0..n {
            let topic = rng.below(topics);
            let qry = format!("{subset} query {i}");
            let t = if i % 3 == 2 { i - 1 } else { i };
            let pos = format!("{subset} target {t}");
            let qv = self.noisy(rng, &centres[topic], 0.6);
            let tv = self.noisy(rng, &centres[topic], 0.6);
            self.put(0, subset, &qry, "", qv);
            self.put(1, subset, &pos, "", tv);
            self.rows.push(Row {
                subset: subset.into(),
                qry,
                qry_image: String::new(),
                pos,
                pos_image: String::new(),
                label: format!("topic {topic}"),
            });
        }
    }

    /// Classification: image queries, `labels` class-name targets owned by many queries each.
    pub fn classification(&mut self, rng: &mut Rng, subset: &str, n: usize, labels: usize) {
        let centres = self.centres(rng, labels);
        for (c, centre) in centres.iter().enumerate() {
            let v = self.noisy(rng, centre, 0.3);
            self.put(1, subset, &format!("class {c}"), "", v);
        }
        for i in 0..n {
            let c = rng.below(labels);
            let qry = "<|image_1|> Represent the given image for classification".to_string();
            let image = format!("{subset}/{i}.jpg");
            let v = self.noisy(rng, &centres[c], 0.8);
            self.put(0, subset, &qry, &image, v);
            self.rows.push(Row {
                subset: subset.into(),
                qry,
                qry_image: image,
                pos: format!("class {c}"),
                pos_image: String::new(),
                label: format!("class {c}"),
            });
        }
    }

    /// Repeats `k` earlier query keys of `subset` with new positives (duplicate query keys).
    pub fn duplicate_queries(&mut self, rng: &mut Rng, subset: &str, k: usize) {
        let existing: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.rows[i].subset == subset)
            .collect();
        for j in 0..k {
            let src = existing[rng.below(existing.len())];
            let (qry, qry_image, label) = (
                self.rows[src].qry.clone(),
                self.rows[src].qry_image.clone(),
                self.rows[src].label.clone(),
            );
            let pos = format!("{subset} extra target {j}");
            let qv = self.vectors[&(0, subset.to_string(), qry.clone(), qry_image.clone())].clone();
            let tv = self.noisy(rng, &qv, 0.9);
            self.put(1, subset, &pos, "", tv);
            self.rows.push(Row {
                subset: subset.into(),
                qry,
                qry_image,
                pos,
                pos_image: String::new(),
                label,
            });
        }
    }

    /// VQA-style: `n` text questions on `topics` topics whose positives are `answers` short answers
    /// (yes/no, colours, counts), so that every answer is the positive of many questions.
    pub fn few_answers(&mut self, rng: &mut Rng, subset: &str, n: usize, answers: usize, topics: usize) {
        let answer_centres = self.centres(rng, answers);
        let topic_centres = self.centres(rng, topics);
        for (a, centre) in answer_centres.iter().enumerate() {
            let v = self.noisy(rng, centre, 0.3);
            self.put(1, subset, &format!("answer {a}"), "", v);
        }
        for i in 0..n {
            let (a, t) = (rng.below(answers), rng.below(topics));
            let qry = format!("{subset} question {i}");
            let mix: Vec<f32> = answer_centres[a]
                .iter()
                .zip(&topic_centres[t])
                .map(|(x, y)| 0.5 * x + y)
                .collect();
            let v = self.noisy(rng, &mix, 0.5);
            self.put(0, subset, &qry, "", v);
            self.rows.push(Row {
                subset: subset.into(),
                qry,
                qry_image: String::new(),
                pos: format!("answer {a}"),
                pos_image: String::new(),
                label: format!("answer {a}"),
            });
        }
    }

    /// Repeats `k` earlier query keys of `subset`, each with the positive of another row of the
    /// subset: duplicate query keys that add no new target.
    pub fn repeat_queries(&mut self, rng: &mut Rng, subset: &str, k: usize) {
        let existing: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.rows[i].subset == subset)
            .collect();
        for _ in 0..k {
            let (src, other) = (existing[rng.below(existing.len())], existing[rng.below(existing.len())]);
            let row = Row {
                pos: self.rows[other].pos.clone(),
                pos_image: self.rows[other].pos_image.clone(),
                label: self.rows[other].label.clone(),
                ..self.rows[src].clone()
            };
            self.rows.push(row);
        }
    }

    /// Writes pairs.parquet and embeddings.parquet; item ids are given in a scrambled order when
    /// `scramble`, so the stages cannot rely on contiguous ids.
    pub fn write(&self, dir: &Path, scramble: bool) {
        self.write_as(dir, scramble, "generated")
    }

    /// [`Self::write`], the files marked as artefacts of run `origin`.
    pub fn write_as(&self, dir: &Path, scramble: bool, origin: &str) {
        let mut prov = Provenance::new("test", "0");
        prov.set(&saha_schemas::provenance::ORIGIN, origin.to_string());
        let mut ids: HashMap<(u8, String, String, String), u32> = HashMap::new();
        let mut keys: Vec<(u8, String, String, String)> = Vec::new();
        for side in [0u8, 1] {
            for r in &self.rows {
                let k = if side == 0 {
                    (0, r.subset.clone(), r.qry.clone(), r.qry_image.clone())
                } else {
                    (1, r.subset.clone(), r.pos.clone(), r.pos_image.clone())
                };
                if !ids.contains_key(&k) {
                    ids.insert(k.clone(), keys.len() as u32);
                    keys.push(k);
                }
            }
        }
        if scramble {
            let n = keys.len() as u32;
            for v in ids.values_mut() {
                *v = (*v * 7919 + 13) % n.max(1);
            }
            assert_eq!(
                ids.values().collect::<std::collections::HashSet<_>>().len(),
                keys.len(),
                "scramble is a permutation"
            );
        }
        let pairs: Vec<Pair> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| Pair {
                pair_id: i as u32,
                subset: r.subset.clone(),
                qry: r.qry.clone(),
                qry_image_path: (!r.qry_image.is_empty()).then(|| r.qry_image.clone()),
                pos_text: r.pos.clone(),
                pos_image_path: (!r.pos_image.is_empty()).then(|| r.pos_image.clone()),
                query_id: ids[&(0, r.subset.clone(), r.qry.clone(), r.qry_image.clone())],
                target_id: ids[&(1, r.subset.clone(), r.pos.clone(), r.pos_image.clone())],
                label: Some(r.label.clone()),
                source_file: "generated".into(),
                source_row: i as u32,
            })
            .collect();
        write_records(&dir.join("pairs.parquet"), &pairs, &prov).unwrap();
        let mut order: Vec<(u32, &Key)> = keys.iter().map(|k| (ids[k], k)).collect();
        order.sort();
        let e = Embeddings {
            item_ids: order.iter().map(|o| o.0).collect(),
            dim: self.dim,
            values: order.iter().flat_map(|o| self.vectors[o.1].clone()).collect(),
            model: "generated".into(),
            normalized: true,
        };
        e.write(&dir.join("embeddings.parquet"), &prov).unwrap();
    }

    /// The oracle's input.
    pub fn oracle_spec(&self, top_k: usize, pool_mult: usize, classification: &[&str]) -> serde_json::Value {
        let key = |t: &str, i: &str| format!("{t}\u{0}{i}");
        let mut q = serde_json::Map::new();
        let mut t = serde_json::Map::new();
        for ((side, _subset, text, image), v) in &self.vectors {
            let map = if *side == 0 { &mut q } else { &mut t };
            map.insert(key(text, image), serde_json::json!(v));
        }
        serde_json::json!({
            "top_k": top_k,
            "pool_mult": pool_mult,
            "classification": classification,
            "rows": self.rows.iter().map(|r| serde_json::json!({
                "subset": r.subset, "qry": r.qry, "qry_image_path": r.qry_image,
                "pos_text": r.pos, "pos_image_path": r.pos_image,
            })).collect::<Vec<_>>(),
            "vectors": {"q": q, "t": t},
        })
    }
}

/// Embeddings for every item of a prompt-stage run, planted around the items' labels: items of
/// one label (a class, an answer, one scene) sit close together, as a good encoder would put
/// them, which makes every same-label target a false-negative trap for a naive miner.
pub fn write_label_embeddings(run: &Path, dim: usize, seed: u64) {
    let (pairs, _) = saha_schemas::records::read_records::<Pair>(&run.join("pairs.parquet")).unwrap();
    let (items, _) = saha_schemas::records::read_records::<saha_schemas::Item>(&run.join("items.parquet")).unwrap();
    let mut label_of: HashMap<u32, String> = HashMap::new();
    for p in &pairs {
        let l = p.label.clone().unwrap_or_default();
        label_of.entry(p.query_id).or_insert_with(|| l.clone());
        label_of.entry(p.target_id).or_insert(l);
    }
    let mut rng = Rng::new(seed);
    let mut centres: HashMap<String, Vec<f32>> = HashMap::new();
    let d = Dataset::new(dim);
    let mut values = Vec::with_capacity(items.len() * dim);
    for it in &items {
        let label = label_of.get(&it.item_id).cloned().unwrap_or_default();
        let centre = centres
            .entry(label)
            .or_insert_with(|| unit((0..dim).map(|_| gaussian(&mut rng)).collect()))
            .clone();
        values.extend(d.noisy(&mut rng, &centre, 0.5));
    }
    let e = Embeddings {
        item_ids: items.iter().map(|i| i.item_id).collect(),
        dim,
        values,
        model: "label-planted".into(),
        normalized: true,
    };
    e.write(&run.join("embeddings.parquet"), &Provenance::new("test", "0"))
        .unwrap();
}

/// saha-remap on the run files in `dir`: pairs.parquet and candidates.parquet to owners.parquet.
pub fn remap_in(dir: &Path) -> std::process::Output {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    crate::run(
        "saha-remap",
        &[
            "--pairs",
            &p("pairs.parquet"),
            "--candidates",
            &p("candidates.parquet"),
            "--out",
            &p("owners.parquet"),
        ],
    )
}

/// saha-filter on the run files in `dir` (owners.parquet unless `owners` names another file),
/// writing clusters.parquet and mining_stats.parquet there, with `extra` flags.
pub fn filter_in(dir: &Path, owners: Option<&str>, extra: &[&str]) -> std::process::Output {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let owners = owners.map(str::to_string).unwrap_or_else(|| p("owners.parquet"));
    let mut args = vec![
        "--pairs".to_string(),
        p("pairs.parquet"),
        "--embeddings".into(),
        p("embeddings.parquet"),
        "--candidates".into(),
        p("candidates.parquet"),
        "--owners".into(),
        owners,
        "--clusters".into(),
        p("clusters.parquet"),
        "--stats".into(),
        p("mining_stats.parquet"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run("saha-filter", &args)
}
