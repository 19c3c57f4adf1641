//! SaHa mining, shared by the three stage binaries:
//! `saha-retrieve` (candidate space), `saha-remap` (query space) and `saha-filter`
//! (the reference's greedy cluster construction, baselines and the false-negative audit).

pub mod audit;
pub mod data;
pub mod quantized;
pub mod remap;
pub mod retrieve;
pub mod sampler;
pub mod strategies;
pub mod vectors;

use std::path::PathBuf;

use saha_schemas::records::read_records;
use saha_schemas::{Pair, Provenance};

/// The inputs saha-retrieve and saha-remap share: pairs and their embeddings.
#[derive(Debug, clap::Args, serde::Serialize)]
pub struct EmbeddedPairs {
    /// pairs.parquet from saha-prompt.
    #[arg(long)]
    pub pairs: PathBuf,
    /// embeddings.parquet from saha-embed; repeat to combine files (e.g. queries and targets
    /// embedded apart).
    #[arg(long, required = true)]
    pub embeddings: Vec<PathBuf>,
    /// Use raw inner products, without L2-normalising the vectors.
    #[arg(long)]
    pub no_normalize: bool,
}

impl EmbeddedPairs {
    /// Reads the pairs (grouped by subset) and the vectors, and records both as inputs.
    pub fn load(&self, prov: &mut Provenance) -> anyhow::Result<(Vec<data::Subset>, vectors::Vectors)> {
        let (pairs, _) = read_records::<Pair>(&self.pairs)?;
        let vectors = vectors::Vectors::load(&self.embeddings, !self.no_normalize)?;
        prov.input(&self.pairs)?;
        for e in &self.embeddings {
            prov.input(e)?;
        }
        Ok((data::group_pairs(&pairs), vectors))
    }
}
