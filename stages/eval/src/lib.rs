//! `saha-eval`: scores embeddings on the evaluation benchmarks.
//!
//! * `mmeb`: MMEB-eval. Each query against its own candidate list; Precision@1 with the
//!   ground truth at candidate 0 and ties resolved to the first maximum (the reference's
//!   `np.argmax`), plus hit@5 and MRR; per subset, per meta-task, IND, OOD and overall.
//! * `sugarcrepe-items`: SugarCrepe / SugarCrepe++ JSON files -> items.parquet with the
//!   reference's prompts (for saha-embed) and sugarcrepe_sets.parquet.
//! * `sugarcrepe`: accuracy of those embeddings (image-to-text, and text-only for SugarCrepe++).

pub mod aggregate;
pub mod compare;
pub mod mmeb;
pub mod models;
mod output;
pub mod report;
pub mod sugarcrepe;
pub mod taskmap;

use clap::{Parser, Subcommand};

pub const STAGE: &str = "saha-eval";

#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = "Score embeddings on the evaluation benchmarks.\n\n\
mmeb: every query of eval/pairs.parquet against its own candidate list (eval/eval_lists.parquet), by the f32 \
inner product of L2-normalised vectors. The ground truth is candidate 0; a query is correct when no candidate \
scores strictly higher, i.e. ties resolve to the first maximum as the reference's np.argmax does. The ground \
truth's rank (for hit@5 and MRR) is 1 + the number of candidates scoring strictly higher, which is its position \
after a stable sort, so rank 1 is exactly P@1. Writes eval_scores.parquet and eval_report.md.\n\n\
sugarcrepe-items / sugarcrepe: SugarCrepe and SugarCrepe++ as the reference evaluates them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// MMEB-eval: P@1 (first-maximum ties), hit@5 and MRR per subset and aggregate.
    Mmeb(mmeb::MmebArgs),
    /// Read SugarCrepe / SugarCrepe++ JSON files into items.parquet + sugarcrepe_sets.parquet.
    SugarcrepeItems(sugarcrepe::ItemsArgs),
    /// Score SugarCrepe / SugarCrepe++ from sugarcrepe_sets.parquet and the items' embeddings.
    Sugarcrepe(sugarcrepe::ScoreArgs),
}
