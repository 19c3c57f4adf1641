//! The command line of saha-report.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Write a self-contained HTML report of a run (report.html, charts as inline SVG).\n\n\
Inputs, all looked up in --run and all optional (a missing one leaves its section saying so): \
clusters.parquet + mining_stats.parquet (SaHa) and mining/<baseline>/ (the baseline miners), \
embeddings.parquet (for anchor-positive / anchor-negative similarities), train/train_log.parquet, \
eval/eval_scores.parquet (before training) and eval/tuned/eval_scores.parquet (after), or the --scores files. \
The footer lists \
every input with its SHA-256. The page holds no clock time: the same inputs give the same bytes."
)]
pub struct Args {
    /// The run folder (runs/<run>).
    #[arg(long)]
    #[serde(skip)]
    pub run: PathBuf,
    /// Output HTML file [default: <run>/report.html].
    #[arg(long)]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// Embeddings the miners ran on [default: <run>/embeddings.parquet].
    #[arg(long)]
    #[serde(skip)]
    pub embeddings: Option<PathBuf>,
    /// A baseline miner, read from <run>/mining/<NAME>/; repeat for several [default: every folder
    /// under <run>/mining/, sorted].
    #[arg(long = "baseline", value_name = "NAME")]
    pub baselines: Vec<String>,
    /// Scores for the P@1 section, in order: LABEL=FILE, FILE relative to --run; repeat for several (the
    /// last minus the first is the table's difference) [default: before=eval/eval_scores.parquet,
    /// after=eval/tuned/eval_scores.parquet].
    #[arg(long = "scores", value_name = "LABEL=FILE")]
    pub scores: Vec<String>,
    /// Bins of the similarity histograms.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(2..=400))]
    pub bins: u32,
    /// Page title [default: "saha run <run folder name>"].
    #[arg(long)]
    pub title: Option<String>,
}
