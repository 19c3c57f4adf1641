//! What keeps saha-sql read-only: only queries run, and `--out` never replaces a file by accident
//! and never replaces one of the tables it reads.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SQLOptions;

/// Refuses every statement that is not a query: DDL (CREATE, DROP), DML (INSERT, COPY ... TO) and
/// session statements (SET, BEGIN). COPY gets its own message, as it is the one a user may reach for
/// to write a file.
pub fn check_plan(plan: &LogicalPlan) -> Result<()> {
    let mut copies = false;
    plan.apply_with_subqueries(|node| {
        copies |= matches!(node, LogicalPlan::Copy(_));
        Ok(TreeNodeRecursion::Continue)
    })?;
    if copies {
        bail!("COPY ... TO writes files, and saha-sql is read-only: write a query's result with --out FILE.csv|FILE.parquet instead");
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    options.verify_plan(plan).map_err(|e| {
        anyhow::anyhow!("saha-sql runs queries only (SELECT, WITH, VALUES, EXPLAIN), nothing that creates, changes or sets anything: {e}")
    })
}

/// Checks `--out` before the query runs: a .csv or .parquet name, not a folder, not an existing file
/// unless `force`, and never the file (or inside the folder) of one of the session's tables.
pub fn check_out(out: &Path, force: bool, tables: &[(String, PathBuf)]) -> Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "csv" && ext != "parquet" {
        bail!("--out {}: use a .csv or .parquet file name", out.display());
    }
    if out.is_dir() {
        bail!("--out {} is a folder; give a file name", out.display());
    }
    let resolved = resolve(out);
    for (name, path) in tables {
        let Ok(table) = path.canonicalize() else { continue };
        if resolved.iter().any(|r| *r == table || r.starts_with(&table)) {
            bail!(
                "--out {} is the file of table `{name}` ({}), an input of this query; saha-sql never overwrites its inputs, not even with --force",
                out.display(),
                path.display()
            );
        }
    }
    if !force && out.symlink_metadata().is_ok() {
        bail!("--out {} already exists; pass --force to replace it", out.display());
    }
    Ok(())
}

/// The absolute paths `out` stands for: the file itself if it exists (through links), and its
/// folder's real path joined with its name.
fn resolve(out: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = out.canonicalize().into_iter().collect();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let (Ok(dir), Some(name)) = (parent.canonicalize(), out.file_name()) {
        paths.push(dir.join(name));
    }
    paths
}
