//! SaHa mining, shared by the three stage binaries:
//! `saha-retrieve` (candidate space), `saha-remap` (query space: owner lists) and `saha-filter`
//! (the reference's greedy cluster construction, baselines and the false-negative audit).

pub mod audit;
pub mod data;
pub mod depth;
pub mod quantized;
pub mod remap;
pub mod retrieve;
pub mod sampler;
pub mod scores;
pub mod skips;
pub mod strategies;
pub mod vectors;

use std::path::PathBuf;

use saha_common::flags::EmbeddingsInput;
use saha_schemas::records::read_records;
use saha_schemas::{InputHash, Pair, Provenance};

/// The inputs saha-retrieve and saha-filter share: pairs and their embeddings.
#[derive(Debug, clap::Args, serde::Serialize)]
pub struct EmbeddedPairs {
    /// pairs.parquet from saha-prompt.
    #[arg(long)]
    pub pairs: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub vectors: EmbeddingsInput,
}

impl EmbeddedPairs {
    /// Reads the pairs (grouped by subset) and the vectors, and records both as inputs. Pairs whose
    /// query or positive saha-embed skipped are left out (counted in the footer, see [`skips`]). The
    /// files are hashed on a second thread while they are decoded, which is single-threaded.
    pub fn load(&self, prov: &mut Provenance) -> anyhow::Result<(Vec<data::Subset>, vectors::Vectors, skips::LeftOut)> {
        let embeddings = &self.vectors.embeddings;
        let files: Vec<&PathBuf> = std::iter::once(&self.pairs).chain(embeddings).collect();
        let (hashes, loaded) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| files.iter().map(|f| InputHash::of(f)).collect::<Result<Vec<_>, _>>());
            let loaded = read_records::<Pair>(&self.pairs)
                .map_err(anyhow::Error::from)
                .and_then(|(pairs, _)| Ok((pairs, vectors::Vectors::load(embeddings, self.vectors.normalize())?)));
            (hashing.join().expect("hashing thread"), loaded)
        });
        let (pairs, vectors) = loaded?;
        for (file, hash) in files.iter().zip(hashes?) {
            prov.add_input(file, hash)?;
        }
        let (pairs, left_out) = skips::without_skipped(pairs, &vectors.skipped);
        left_out.record(prov);
        Ok((data::group_pairs(&pairs), vectors, left_out))
    }
}
