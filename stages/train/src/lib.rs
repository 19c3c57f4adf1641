//! `saha-train`: contrastive fine-tuning of Qwen2-VL on SaHa clusters.

pub mod args;
pub mod checkpoint;
pub mod data;
pub mod log;
pub mod loss;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod step;
pub mod timings;

pub use args::Args;
pub use run::{run, Summary, STAGE};
