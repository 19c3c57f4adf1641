//! `saha-retrieve`: the candidate space. For every unique query, the top `P` targets of its own
//! subset by exact inner product, best first, with scores.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use saha_common::progress;
use saha_mining::depth::MiningDepth;
use saha_mining::quantized::{FastCheck, FastTargets, Int8Kernel};
use saha_mining::retrieve::top_p;
use saha_mining::EmbeddedPairs;
use saha_schemas::provenance::RETRIEVAL_DEPTH;
use saha_schemas::records::{sink_for, write_rows};
use saha_schemas::{Candidate, Provenance};

pub const STAGE: &str = "saha-retrieve";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Retrieve, per query, the top-P targets of its own subset by exact inner product.\n\n\
The candidate pool of a subset is its unique targets, as in the reference (intra-task mining). Vectors are \
L2-normalised first (so scores are cosines, as FAISS IndexFlatIP on the reference's normalised vectors); \
rows that were not unit length are counted and reported. Scores come from blocked f32 matrix products with a \
fused partial top-k: the query x target matrix is never held whole."
)]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub mixed: saha_common::flags::MixedRuns,
    #[command(flatten)]
    pub input: EmbeddedPairs,
    /// Output candidates.parquet.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub depth: MiningDepth,
    /// Retrieval depth P [default: 2 * top_k * pool_mult, the reference's 2 * 15 * 3 = 90].
    #[arg(long, value_parser = saha_common::numbers::count)]
    pub pool: Option<usize>,
    /// exact: f32 scores for every pair. fast: int8 scores pick an `--oversample` times deeper
    /// pool, re-scored exactly in f32; equal to exact whenever the true top P lie in that pool
    /// (checked by the tests, `make bench-mining` and --check-queries). On a CPU with neither AVX-512 VNNI nor AVX2
    /// fast mode runs exact retrieval (recorded as mode_used).
    #[arg(long, value_enum, default_value_t = Mode::Exact)]
    pub mode: Mode,
    /// fast mode: the int8 kernel [default: vnni where the CPU has AVX-512 VNNI, else avx2 where it
    /// has AVX2, else none: exact retrieval]. vnni scores at 8 bits, avx2 at 7 (a little coarser,
    /// so its pool may differ; the re-scored candidates do not wherever the pool holds the true top
    /// P). Naming one the CPU cannot run is an error.
    #[arg(long, value_enum)]
    pub int8_kernel: Option<Int8Kernel>,
    /// fast mode: depth of the int8 pre-selection, in multiples of --pool (2 gave clusters
    /// identical to exact mode on the 100k x 1536 benchmark; raise it if in doubt).
    #[arg(long, default_value_t = 2, value_parser = saha_common::numbers::count)]
    pub oversample: usize,
    /// fast mode: about this many queries, every k-th of each subset, are searched exactly as well;
    /// the footer (fast_check) and the last line say how many of them got other candidates (0: no
    /// check). At 256 of 100k queries it costs a fraction of a percent.
    #[arg(long, default_value_t = 256)]
    pub check_queries: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Exact,
    Fast,
}

pub struct Summary {
    pub queries: usize,
    pub rows: usize,
    pub renormalised: usize,
    pub warnings: Vec<String>,
    /// Pairs left out because saha-embed skipped their query or positive.
    pub left_out: saha_mining::skips::LeftOut,
    /// The int8 kernel that pre-selected the pool; `None` where exact retrieval ran.
    pub int8_kernel: Option<Int8Kernel>,
    /// Fast mode against exact search on `--check-queries` queries; `None` where none were checked.
    pub fast_check: Option<FastCheck>,
}

/// The int8 kernel fast mode pre-selects with, or `None` where exact retrieval runs (exact mode, or no
/// kernel chosen on this CPU); a named kernel the CPU cannot run is refused before any input is read.
fn int8_kernel(args: &Args, warnings: &mut Vec<String>) -> Result<Option<Int8Kernel>> {
    match (args.mode, args.int8_kernel) {
        (Mode::Exact, named) => {
            if named.is_some() {
                warnings.push("--int8-kernel has no effect without --mode fast".to_string());
            }
            Ok(None)
        }
        (Mode::Fast, Some(k)) if !k.runs_here() => bail!(
            "--int8-kernel {}: this CPU cannot run it (it lacks the instructions the kernel needs)",
            k.name()
        ),
        (Mode::Fast, Some(k)) => Ok(Some(k)),
        (Mode::Fast, None) => {
            let k = Int8Kernel::fastest_here();
            if k.is_none() {
                warnings.push(
                    "--mode fast: this CPU has neither AVX-512 VNNI nor AVX2 for the int8 pre-selection; running \
exact retrieval (the same candidates)"
                        .to_string(),
                );
            }
            Ok(k)
        }
    }
}

pub fn run(args: &Args) -> Result<Summary> {
    let pool = match args.pool {
        Some(pool) => pool,
        None => args.depth.retrieval_depth()?,
    };
    // candidates.parquet stores ranks as u16.
    if pool > 1 << 16 {
        bail!("retrieval depth {pool} (--pool, or 2 * --top-k * --pool-mult) is above the 65536 ranks candidates.parquet holds");
    }
    let mut warnings = Vec::new();
    let fast_kernel = int8_kernel(args, &mut warnings)?;
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.allow_mixed_runs = args.mixed.allow_mixed_runs;
    prov.param("args", args);
    prov.set(&RETRIEVAL_DEPTH, pool);
    let (subsets, vectors, left_out) = args.input.load(&mut prov)?;
    for s in &subsets {
        vectors.require(s.queries.iter().copied(), &format!("subset {} query", s.name))?;
        vectors.require(s.targets.iter().copied(), &format!("subset {} target", s.name))?;
        if s.targets.len() < 2 {
            warnings.push(format!(
                "subset {} has {} target(s): no negatives can be mined there",
                s.name,
                s.targets.len()
            ));
        }
    }
    prov.stat("renormalised_vectors", vectors.renormalised);
    prov.stat(
        "mode_used",
        if fast_kernel.is_some() { Mode::Fast } else { Mode::Exact },
    );
    if let Some(k) = fast_kernel {
        prov.stat("int8_kernel", k);
    }
    let total: usize = subsets.iter().map(|s| s.queries.len()).sum();
    // Every `stride`-th query of each subset is checked, and the counts add up here.
    let mut check = (fast_kernel.is_some() && args.check_queries > 0)
        .then(|| (total.div_ceil(args.check_queries).max(1), FastCheck::default()));
    let bar = progress::bar(total as u64, "retrieve");
    // All subsets are searched before the output is opened, since the footer records the check.
    let mut found = Vec::with_capacity(subsets.len());
    for s in &subsets {
        let q = vectors.matrix(&s.queries);
        let t = vectors.matrix(&s.targets);
        let on_block = |n: usize| bar.inc(n as u64);
        found.push(match fast_kernel {
            None => top_p(&q, &t, vectors.dim, pool, &on_block),
            Some(k) => {
                let targets = FastTargets::new(&t, vectors.dim, k);
                if let Some((stride, counts)) = check.as_mut() {
                    let sample: Vec<usize> = (0..s.queries.len()).step_by(*stride).collect();
                    *counts += targets.check(&q, &sample, pool, args.oversample);
                }
                targets.top_p(&q, pool, args.oversample, &on_block)
            }
        });
    }
    bar.finish_and_clear();
    let fast_check = check.map(|(_, counts)| counts);
    if let Some(check) = fast_check {
        prov.stat("fast_check", check);
        if check.differing > 0 {
            warnings.push(format!(
                "fast mode: {} of {} queries searched exactly as well got other candidates ({} of their top {pool} \
targets missing); raise --oversample, or use --mode exact",
                check.differing, check.queries, check.missed
            ));
        }
    }
    let mut sink = sink_for::<Candidate>(&args.out, &prov)?;
    let mut rows = 0;
    for (s, best) in subsets.iter().zip(found) {
        let mut out = Vec::with_capacity(best.iter().map(Vec::len).sum());
        for (&query_id, list) in s.queries.iter().zip(&best) {
            out.extend(list.iter().enumerate().map(|(rank, &(t, score))| Candidate {
                query_id,
                rank: rank as u16,
                target_id: s.targets[t as usize],
                score,
            }));
        }
        rows += out.len();
        write_rows(&mut sink, &out)?;
    }
    sink.finish()?;
    Ok(Summary {
        queries: total,
        rows,
        renormalised: vectors.renormalised,
        warnings,
        left_out,
        int8_kernel: fast_kernel,
        fast_check,
    })
}
