//! `saha-sql`: query a run's Parquet artefacts with SQL (DataFusion).

pub mod format;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::record_batch::RecordBatch;
use clap::Parser;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

pub const STAGE: &str = "saha-sql";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Query a run's Parquet artefacts with SQL (DataFusion).\n\nEvery .parquet file under the run folder \
becomes a table named after its file stem (pairs, items, embeddings ...); a file in a sub-folder whose stem is \
already taken is named <folder>_<stem>. Embedding vectors print as their dimension and first values.\n\n\
Examples:\n  saha-sql --run runs/demo -e \"select side, count(*) from items group by side\"\n  \
echo \"select * from pairs limit 3\" | saha-sql --run runs/demo\n  saha-sql --run runs/demo --tables"
)]
pub struct Args {
    /// Run folder whose Parquet files become tables (searched recursively).
    #[arg(long, default_value = "runs/demo")]
    pub run: PathBuf,
    /// Extra tables: NAME=PATH to a Parquet file.
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub tables_extra: Vec<String>,
    /// The SQL to run; read from standard input when absent.
    #[arg(short = 'e', long = "execute")]
    pub sql: Option<String>,
    /// Write the result to this file instead of printing it: .csv or .parquet.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List the tables, their row counts and columns, and exit.
    #[arg(long)]
    pub tables: bool,
    /// Widest a printed cell may be before it is cut with `…`.
    #[arg(long, default_value_t = 60)]
    pub max_width: usize,
}

/// Every Parquet file under `dir` with the table name it gets.
pub fn discover_tables(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        bail!(
            "run folder {} does not exist (run the pipeline first, or pass --run)",
            dir.display()
        );
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let path = entry?.path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    // Shallow files first, so top-level artefacts keep the plain names.
    files.sort_by_key(|p| (p.components().count(), p.clone()));
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for f in files {
        let stem = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let mut name = sanitize(&stem);
        if out.iter().any(|(n, _)| *n == name) {
            let folder = f
                .parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default()
                .to_string_lossy();
            name = sanitize(&format!("{folder}_{stem}"));
        }
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, f));
        }
    }
    Ok(out)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect::<String>()
        .to_lowercase()
}

pub struct Session {
    ctx: SessionContext,
    pub tables: Vec<(String, PathBuf)>,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    pub fn open(args: &Args) -> Result<Self> {
        let mut tables = discover_tables(&args.run)?;
        for spec in &args.tables_extra {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--table {spec}: expected NAME=PATH"))?;
            tables.retain(|(n, _)| n != name);
            tables.push((name.to_string(), PathBuf::from(path)));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let ctx = SessionContext::new();
        for (name, path) in &tables {
            let p = path
                .to_str()
                .with_context(|| format!("{}: path is not UTF-8", path.display()))?;
            runtime
                .block_on(ctx.register_parquet(name, p, ParquetReadOptions::default()))
                .with_context(|| format!("{}: cannot register as table `{name}`", path.display()))?;
        }
        Ok(Self { ctx, tables, runtime })
    }

    pub fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime
            .block_on(async {
                let df = self.ctx.sql(sql).await?;
                df.collect().await
            })
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
