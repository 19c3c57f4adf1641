//! The hierarchical embedding prompt as the reference renders it: a system-level task definition,
//! the task instruction in the user turn, the backbone's chat template. Used by `saha-prompt` for
//! MMEB data and by `saha-eval` for SugarCrepe, so both render byte-identical prompts.

pub mod config;
pub mod preset;
pub mod render;
pub mod template;
