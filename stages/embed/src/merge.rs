//! `saha-embed merge`: the shard files of one `--shard i/n` run, joined into the file an unsharded run
//! writes (same rows, same order, same metadata).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::provenance::{skipped_item_ids, SKIPPED_ITEM_IDS, SKIPPED_REASONS};
use saha_schemas::read::ParquetTable;
use saha_schemas::Provenance;

use crate::args::{parse_shard, MergeArgs};

const SUMMED_STATS: [&str; 4] = ["embedded_items", "truncated_prompts", "skipped_items", "batches"];

pub fn run(args: &MergeArgs) -> Result<String> {
    let mut shards: BTreeMap<usize, (Embeddings, Provenance)> = BTreeMap::new();
    let mut expected: Option<(usize, String)> = None;
    for path in &args.shards {
        let prov = ParquetTable::open(path)?
            .provenance()
            .with_context(|| format!("{}: no saha-embed metadata", path.display()))?;
        let shard = prov
            .stats
            .get("shard")
            .and_then(|v| v.as_str())
            .map(parse_shard)
            .transpose()?;
        let Some((i, n)) = shard else {
            bail!("{}: not a shard file (written without --shard)", path.display());
        };
        let fingerprint = prov
            .stats
            .get("plan_fingerprint")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        match &expected {
            None => expected = Some((n, fingerprint)),
            Some((n0, f0)) if *n0 != n || *f0 != fingerprint => bail!(
                "{}: shard {i}/{n} belongs to a different run than the first file (other shard count, items, model or settings)",
                path.display()
            ),
            Some(_) => {}
        }
        if shards.contains_key(&i) {
            bail!("{}: shard {i}/{n} given twice", path.display());
        }
        shards.insert(i, (Embeddings::read(path)?, prov));
    }
    let (n, _) = expected.context("no shard files given")?;
    let missing: Vec<usize> = (1..=n).filter(|i| !shards.contains_key(i)).collect();
    if !missing.is_empty() {
        bail!("shards {missing:?} of {n} are missing");
    }
    let mut prov = shards[&1].1.clone();
    prov.stats.remove("shard");
    for key in SUMMED_STATS {
        let total: u64 = shards
            .values()
            .map(|(_, p)| p.stats.get(key).and_then(|v| v.as_u64()).unwrap_or(0))
            .sum();
        prov.stats.insert(key.to_string(), total.into());
    }
    // Each shard lists the items it skipped (shard 1 also those skipped when planning).
    let mut ids: Vec<u32> = shards.values().flat_map(|(_, p)| skipped_item_ids(Some(p))).collect();
    ids.sort_unstable();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (_, p) in shards.values() {
        if let Some(serde_json::Value::Object(m)) = p.stats.get(SKIPPED_REASONS) {
            for (kind, n) in m {
                *reasons.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    prov.stats.remove(SKIPPED_ITEM_IDS);
    prov.stats.remove(SKIPPED_REASONS);
    if !ids.is_empty() {
        prov.stat(SKIPPED_REASONS, reasons);
        prov.stat(SKIPPED_ITEM_IDS, ids);
    }
    let first = &shards[&1].0;
    let (dim, model) = (first.dim, first.model.clone());
    let mut rows: Vec<(u32, &[f32])> = Vec::new();
    for (i, (e, _)) in &shards {
        if e.dim != dim || e.model != model {
            bail!(
                "shard {i}: model {} / dimension {} differ from shard 1's",
                e.model,
                e.dim
            );
        }
        rows.extend((0..e.len()).map(|r| (e.item_ids[r], e.row(r))));
    }
    rows.sort_by_key(|(id, _)| *id);
    let merged = Embeddings {
        item_ids: rows.iter().map(|(id, _)| *id).collect(),
        dim,
        values: rows.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        model,
        normalized: true,
    };
    merged.write(&args.out, &prov)?;
    Ok(format!(
        "{} shards, {} items -> {}",
        n,
        merged.len(),
        args.out.display()
    ))
}
