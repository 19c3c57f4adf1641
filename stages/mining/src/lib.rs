//! SaHa mining, shared by the three stage binaries:
//! `saha-retrieve` (candidate space), `saha-remap` (query space) and `saha-filter`
//! (the reference's greedy cluster construction, baselines and the false-negative audit).

pub mod audit;
pub mod data;
pub mod remap;
pub mod retrieve;
pub mod sampler;
pub mod strategies;
pub mod vectors;
