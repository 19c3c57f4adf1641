//! train_log.parquet: rewritten just before every checkpoint, so a resumed run continues the same log. It holds
//! only what the inputs and settings determine (wall-clock times are in timings.json), so the same run
//! gives the same bytes.

use std::path::Path;

use anyhow::Result;
use saha_schemas::records::{read_records, write_records};
use saha_schemas::{Provenance, TrainLogRow};

pub const FILE: &str = "train_log.parquet";

pub fn write(out_dir: &Path, rows: &[TrainLogRow], prov: &Provenance) -> Result<()> {
    write_records(&out_dir.join(FILE), rows, prov)?;
    Ok(())
}

/// The logged steps up to and including `step` (those a resumed run keeps).
pub fn read_until(out_dir: &Path, step: usize) -> Result<Vec<TrainLogRow>> {
    let path = out_dir.join(FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let (rows, _): (Vec<TrainLogRow>, _) = read_records(&path)?;
    Ok(rows.into_iter().filter(|r| r.step as usize <= step).collect())
}
