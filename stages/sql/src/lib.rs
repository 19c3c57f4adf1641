//! `saha-sql`: query a run's Parquet artefacts with SQL (DataFusion).

pub mod format;
pub mod guard;
pub mod json;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use clap::Parser;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

pub const STAGE: &str = "saha-sql";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    version,
    about,
    long_about = "Query a run's Parquet artefacts with SQL (DataFusion).\n\nEvery .parquet file under the run folder \
becomes a table named after its file stem (pairs, items, embeddings ...); a file in a sub-folder whose stem is \
already taken is named <folder>_<stem>. Embedding vectors print as their dimension and first values; \
--out writes them in full.\n\n\
Read-only: only queries run (SELECT, WITH, VALUES, EXPLAIN); CREATE, INSERT, COPY ... TO, SET and the like are \
refused. --out does not replace an existing file without --force, and never replaces a table's file.\n\n\
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
    /// Write the result to this file instead of printing it: .csv (list and vector cells as JSON
    /// arrays of numbers, e.g. "[0.1,-0.2]") or .parquet (columns as they are). An existing file is
    /// an error unless --force; a file of one of the tables is always refused.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Let --out replace an existing file (never one of the tables' files).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// List the tables with their files, row counts, and columns with their types, and exit.
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
    /// The run folder, named when a query cannot be planned (e.g. a table it does not have).
    run: PathBuf,
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
        // Strings keep the type they have in the files (Utf8), not DataFusion's Utf8View, so --tables
        // shows the artefacts' own types and --out .parquet writes them unchanged.
        let config = SessionConfig::new().set_bool("datafusion.execution.parquet.schema_force_view_types", false);
        let ctx = SessionContext::new_with_config(config);
        for (name, path) in &tables {
            let p = path
                .to_str()
                .with_context(|| format!("{}: path is not UTF-8", path.display()))?;
            runtime
                .block_on(ctx.register_parquet(name, p, ParquetReadOptions::default()))
                .with_context(|| format!("{}: cannot register as table `{name}`", path.display()))?;
        }
        Ok(Self {
            ctx,
            tables,
            runtime,
            run: args.run.clone(),
        })
    }

    /// Runs one query; anything but a query is refused before it runs (see [`guard::check_plan`]).
    pub fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(async {
            let plan =
                self.ctx.state().create_logical_plan(sql).await.map_err(|e| {
                    anyhow::anyhow!("{e} (the tables of {}: {})", self.run.display(), self.table_names())
                })?;
            guard::check_plan(&plan)?;
            let df = self.ctx.execute_logical_plan(plan).await?;
            df.collect().await.map_err(|e| anyhow::anyhow!("{e}"))
        })
    }

    fn table_names(&self) -> String {
        match self.tables.is_empty() {
            true => "none, no Parquet file".into(),
            false => self
                .tables
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The columns and types of table `name`.
    pub fn schema(&self, name: &str) -> Result<SchemaRef> {
        let df = self
            .runtime
            .block_on(self.ctx.table(name))
            .with_context(|| format!("table `{name}`"))?;
        Ok(df.schema().inner().clone())
    }
}
