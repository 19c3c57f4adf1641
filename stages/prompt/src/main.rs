use clap::Parser;
use saha_prompt::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let out = saha_common::stage::exit_on_error(STAGE, run(&args));
    let s = &out.stats;
    eprintln!(
            "{STAGE}: {} pairs ({:?}) from {} subsets: {} query items, {} target items; {} skipped, {} duplicates, {} control strings escaped",
            s.pairs,
            out.layout,
            s.subsets.len(),
            s.query_items,
            s.target_items,
            s.skipped_rows,
            s.duplicate_rows,
            s.escaped_control_strings
        );
    for p in &out.written {
        eprintln!("  wrote {}", p.display());
    }
}
