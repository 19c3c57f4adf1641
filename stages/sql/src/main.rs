use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use clap::Parser;
use saha_sql::{format, Args, Session, STAGE};

fn run(args: &Args) -> Result<()> {
    let session = Session::open(args)?;
    if let Some(out) = &args.out {
        saha_sql::guard::check_out(out, args.force, &session.tables)?;
    }
    if args.tables || (args.sql.is_none() && std::io::stdin().is_terminal()) {
        for (name, path) in &session.tables {
            let batches = session.query(&format!("select count(*) as n from \"{name}\""))?;
            let n = format::cell(batches[0].column(0).as_ref(), 0)?;
            println!("{name} ({n} rows, {})", path.display());
            for field in session.schema(name)?.fields() {
                println!("  {} {}", field.name(), field.data_type());
            }
        }
        return Ok(());
    }
    let sql = match &args.sql {
        Some(s) => s.clone(),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading SQL from standard input")?;
            s
        }
    };
    let batches = session.query(&sql)?;
    match &args.out {
        Some(path) => {
            format::write_file(path, &batches, &sql)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            eprintln!("{STAGE}: wrote {rows} rows to {}", path.display());
        }
        None => print!("{}", format::table(&batches, args.max_width)?),
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    saha_common::stage::exit_on_error(STAGE, run(&args));
}
