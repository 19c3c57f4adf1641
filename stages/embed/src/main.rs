use clap::Parser;
use saha_embed::{run, Cli, STAGE};

fn main() {
    let cli = Cli::parse();
    saha_model::startup::keep_freed_memory();
    let summary = saha_common::stage::exit_on_error(STAGE, run(&cli));
    eprintln!("{STAGE}: {summary}");
}
