//! What the eval modes write: the provenance footer, and a scores file with its Markdown report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use saha_schemas::records::{sink_with_keys, write_rows};
use saha_schemas::{AtomicFile, Provenance, Record};

/// Where a scoring mode's Markdown report goes, and whether it is printed.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportFlags {
    /// Output Markdown report [default: eval_report.md (mmeb) or sugarcrepe_report.md (sugarcrepe)
    /// next to --out].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Do not print the report on stdout.
    #[arg(long)]
    pub quiet: bool,
}

impl ReportFlags {
    /// `--report`, or `default_name` in the folder of `out`.
    pub fn path(&self, out: &Path, default_name: &str) -> PathBuf {
        self.report.clone().unwrap_or_else(|| out.with_file_name(default_name))
    }
}

/// The footer of one mode's outputs, with its arguments.
pub fn provenance(mode: &str, args: impl serde::Serialize) -> Provenance {
    let mut prov = Provenance::new(crate::STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("mode", mode);
    prov.param("args", args);
    prov
}

/// Writes the scores (with `keys` in the footer) and the Markdown report: both appear together or
/// not at all.
pub fn scores_and_report<R: Record>(
    out: &Path,
    prov: &Provenance,
    keys: &[(String, String)],
    rows: &[R],
    report_path: &Path,
    report: &str,
) -> Result<()> {
    let mut sink = sink_with_keys::<R>(out, prov, keys)?;
    write_rows(&mut sink, rows)?;
    let scores_file = sink.close()?;
    let mut md = AtomicFile::create(report_path)?;
    std::io::Write::write_all(md.file(), report.as_bytes()).with_context(|| report_path.display().to_string())?;
    scores_file.commit()?;
    md.commit()?;
    Ok(())
}
