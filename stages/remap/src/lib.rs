//! `saha-remap`: the query space. Every retrieved target mapped back to the queries that own it.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Parser;
use saha_common::progress;
use saha_mining::data::group_pairs;
use saha_mining::remap::{owner_lists, RemapCounts};
use saha_mining::sampler::Lookup;
use saha_mining::skips::{without_skipped, LeftOut};
use saha_schemas::provenance::skipped_item_ids;
use saha_schemas::records::{read_records, sink_for, write_rows};
use saha_schemas::{Candidate, Owner, Pair, Provenance};

pub const STAGE: &str = "saha-remap";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Map every retrieved target back to its owner queries (the queries whose positive it is): \
the reference's D2Q, one list per target, every owner included.\n\nA class label or a yes/no answer can be the \
positive of thousands of queries. saha-filter scores a target's owners against each anchor as it walks, so \
owners.parquet grows with the number of pairs, not with candidates x owners."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    /// pairs.parquet from saha-prompt.
    #[arg(long)]
    pub pairs: PathBuf,
    /// candidates.parquet from saha-retrieve.
    #[arg(long)]
    pub candidates: PathBuf,
    /// Output owners.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
}

/// The owner lists' counts, and the pairs left out as saha-retrieve left them out.
pub fn run(args: &Args) -> Result<(RemapCounts, LeftOut)> {
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    prov.param("args", args);
    let (pairs, _) = read_records::<Pair>(&args.pairs)?;
    prov.input(&args.pairs)?;
    let (candidates, candidates_prov) = read_records::<Candidate>(&args.candidates)?;
    prov.input(&args.candidates)?;
    // The pairs saha-retrieve left out (a query or positive skipped by saha-embed) own nothing.
    let skipped = skipped_item_ids(candidates_prov.as_ref()).into_iter().collect();
    let (pairs, left_out) = without_skipped(pairs, &skipped);
    left_out.record(&mut prov);
    let lookup = Lookup::new(&candidates, usize::MAX).map_err(|q| {
        anyhow!(
            "{}: candidates of query {q} are not contiguous",
            args.candidates.display()
        )
    })?;
    let subsets = group_pairs(&pairs);
    let bar = progress::bar(subsets.len() as u64, "remap");
    let mut all = Vec::new();
    let mut total = RemapCounts::default();
    for s in &subsets {
        lookup.check_targets(s, &args.candidates, &args.pairs)?;
        let (owners, counts) = owner_lists(s, &lookup);
        total.targets += counts.targets;
        total.shared_targets += counts.shared_targets;
        total.max_owners = total.max_owners.max(counts.max_owners);
        all.push(owners);
        bar.inc(1);
    }
    bar.finish_and_clear();
    prov.stat("retrieved_targets", total.targets);
    prov.stat("shared_targets", total.shared_targets);
    prov.stat("max_owners", total.max_owners);
    let mut sink = sink_for::<Owner>(&args.out, &prov)?;
    for owners in &all {
        write_rows(&mut sink, owners)?;
    }
    sink.finish()?;
    Ok((total, left_out))
}
