//! `saha-remap`: the query space. Every retrieved target mapped back to the queries that own it,
//! each with its similarity to the anchor query.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use saha_common::progress;
use saha_mining::remap::owners_of;
use saha_mining::EmbeddedPairs;
use saha_schemas::records::{read_records, sink_for, write_rows};
use saha_schemas::{Candidate, Owner, Provenance};

pub const STAGE: &str = "saha-remap";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Map every retrieved target back to its owner queries (the queries whose positive it is), \
each with its inner product to the anchor query, most similar first.\n\nClassification subsets can give a \
target thousands of owners (a class label shared by many queries): --max-owners keeps the most \
anchor-similar ones and records how many there were, so saha-filter can count where it may deviate from \
the reference (which considers every owner)."
)]
pub struct Args {
    #[command(flatten)]
    pub input: EmbeddedPairs,
    /// candidates.parquet from saha-retrieve.
    #[arg(long)]
    pub candidates: PathBuf,
    /// Output owners.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    /// Owners kept per (query, target), most anchor-similar first; 0 keeps all.
    #[arg(long, default_value_t = 128)]
    pub max_owners: usize,
}

pub struct Summary {
    pub rows: usize,
    pub cap_hits: usize,
}

pub fn run(args: &Args) -> Result<Summary> {
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    let (subsets, vectors) = args.input.load(&mut prov)?;
    let (candidates, _) = read_records::<Candidate>(&args.candidates)?;
    prov.input(&args.candidates)?;
    let mut by_query: std::collections::HashMap<u32, &[Candidate]> = std::collections::HashMap::new();
    for chunk in candidates.chunk_by(|a, b| a.query_id == b.query_id) {
        if by_query.insert(chunk[0].query_id, chunk).is_some() {
            bail!(
                "{}: candidates of query {} are not contiguous",
                args.candidates.display(),
                chunk[0].query_id
            );
        }
    }
    let bar = progress::bar(subsets.len() as u64, "remap");
    let mut all = Vec::new();
    let mut cap_hits = 0;
    for s in &subsets {
        vectors.require(s.queries.iter().copied(), &format!("subset {} query", s.name))?;
        let lists: Vec<&[Candidate]> = s
            .queries
            .iter()
            .map(|q| by_query.get(q).copied().unwrap_or(&[]))
            .collect();
        if let Some(c) = lists
            .iter()
            .flat_map(|l| l.iter())
            .find(|c| !s.owners.contains_key(&c.target_id))
        {
            bail!(
                "{}: query {} has candidate target {}, which is not a positive in subset {} of {}: candidates and pairs do not match",
                args.candidates.display(),
                c.query_id,
                c.target_id,
                s.name,
                args.input.pairs.display()
            );
        }
        let (owners, counts) = owners_of(s, &lists, &vectors, args.max_owners);
        cap_hits += counts.cap_hits;
        all.push(owners);
        bar.inc(1);
    }
    bar.finish_and_clear();
    prov.stat("cut_owner_lists", cap_hits);
    let mut sink = sink_for::<Owner>(&args.out, &prov)?;
    let mut rows = 0;
    for owners in &all {
        rows += owners.len();
        write_rows(&mut sink, owners)?;
    }
    sink.finish()?;
    Ok(Summary { rows, cap_hits })
}
