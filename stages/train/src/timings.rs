//! timings.json: the wall-clock time of each step, kept apart from train_log.parquet so that the log
//! (and the report built from it) is the same bytes on every run of the same inputs and settings.
//! Rewritten at every checkpoint, as the log is; a resumed run keeps the steps it keeps in the log.

use std::path::Path;

use anyhow::{Context, Result};
use saha_schemas::atomic::write_atomic;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "timings.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// Step number, from 1 (as in train_log.parquet).
    pub step: u32,
    /// Wall time of the step.
    pub seconds: f64,
    /// (query, positive) pairs per second of the step.
    pub pairs_per_s: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Timings {
    /// Sum of the steps' wall times.
    seconds: f64,
    steps: Vec<StepTime>,
}

pub fn write(out_dir: &Path, steps: &[StepTime]) -> Result<()> {
    let timings = Timings {
        seconds: steps.iter().map(|s| s.seconds).sum(),
        steps: steps.to_vec(),
    };
    write_atomic(
        &out_dir.join(FILE),
        (serde_json::to_string_pretty(&timings)? + "\n").as_bytes(),
    )?;
    Ok(())
}

/// The timed steps up to and including `step` (those a resumed run keeps); none if the file is absent.
pub fn read_until(out_dir: &Path, step: usize) -> Result<Vec<StepTime>> {
    let path = out_dir.join(FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let timings: Timings =
        serde_json::from_str(&text).with_context(|| format!("{}: not a timings file", path.display()))?;
    Ok(timings.steps.into_iter().filter(|s| s.step as usize <= step).collect())
}
