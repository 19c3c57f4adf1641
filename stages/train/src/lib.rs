//! `saha-train`: contrastive fine-tuning of Qwen2-VL on SaHa clusters.

pub mod loss;
pub mod optim;
pub mod schedule;
pub mod step;
