//! The report's sections, one function each: `Ok(None)` when the run has nothing for it.

mod audit;
mod eval;
mod similarity;
mod sizes;
mod training;

use anyhow::Result;

use crate::inputs::{Artefacts, Miner};
use crate::plot;
use crate::stats::Similarities;

/// One section of the page.
pub struct Section {
    pub id: &'static str,
    pub heading: &'static str,
    /// `None`: the run has nothing for it, and the page shows `empty`.
    pub html: Option<String>,
    pub empty: &'static str,
}

/// Every section, in page order.
pub fn render(
    artefacts: &Artefacts,
    similarities: Option<&[(&Miner, Similarities)]>,
    bins: usize,
) -> Result<Vec<Section>> {
    let miners = &artefacts.miners;
    Ok(vec![
        Section {
            id: "similarities",
            heading: "Hard negatives: anchor-positive vs anchor-negative similarity",
            html: similarity::section(miners, similarities, &artefacts.embeddings_name, bins)?,
            empty: "No clusters.parquet in this run (nor under mining/): run the mining stages (make filter).",
        },
        Section {
            id: "audit",
            heading: "False-negative audit",
            html: audit::section(miners)?,
            empty: "No mining_stats.parquet in this run: run the mining stages (make filter).",
        },
        Section {
            id: "sizes",
            heading: "Cluster sizes",
            html: sizes::section(miners)?,
            empty: "No clusters.parquet in this run: run the mining stages (make filter).",
        },
        Section {
            id: "training",
            heading: "Training",
            html: training::section(artefacts.train.as_deref())?,
            empty: "No training yet (train/train_log.parquet is missing): make train.",
        },
        Section {
            id: "eval",
            heading: "Held-out P@1 per subset",
            html: eval::section(&artefacts.scores)?,
            empty: "No evaluation yet (eval/eval_scores.parquet and eval/tuned/eval_scores.parquet are missing): \
make eval, then make eval-tuned after training.",
        },
    ])
}

fn miner_color(i: usize) -> plotters::style::RGBColor {
    plot::PALETTE[i % plot::PALETTE.len()]
}
