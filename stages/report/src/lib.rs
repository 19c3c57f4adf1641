//! `saha-report`: one self-contained HTML page per run (`runs/<run>/report.html`) with inline SVG
//! charts: anchor-positive vs anchor-negative similarities per miner, the false-negative audit,
//! cluster sizes, the training loss and learning rate, and P@1 per subset before and after
//! training. Every input is optional: a section whose artefact is missing says so. The footer
//! lists each input with its SHA-256; the page holds no clock time, so the same inputs give the
//! same bytes.

mod args;
mod html;
mod inputs;
mod page;
pub mod plot;
mod sections;
mod stats;

use std::path::PathBuf;

use anyhow::Result;

pub use args::Args;
pub use html::esc;
pub use stats::{shares, similarities, Similarities, Vectors};

pub const STAGE: &str = "saha-report";

pub struct Summary {
    pub out: PathBuf,
    pub inputs: usize,
    /// Sections that had nothing to show.
    pub missing_sections: Vec<&'static str>,
}

pub fn run(args: &Args) -> Result<Summary> {
    let (inputs, artefacts) = inputs::open(args)?;
    let similarities = stats::miner_similarities(&artefacts.miners, artefacts.vectors.as_ref())?;
    let sections = sections::render(&artefacts, similarities.as_deref(), args.bins as usize)?;
    let page = page::render(&page::title(args), &sections, &inputs, args)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.join("report.html"));
    saha_schemas::atomic::write_atomic(&out, page.as_bytes())?;
    Ok(Summary {
        out,
        inputs: inputs.used.len(),
        missing_sections: sections.iter().filter(|s| s.html.is_none()).map(|s| s.id).collect(),
    })
}
