use clap::Parser;
use saha_embed::{run, Cli, STAGE};

fn main() {
    let cli = Cli::parse();
    saha_model::startup::keep_freed_memory();
    match run(&cli) {
        Ok(summary) => eprintln!("{STAGE}: {summary}"),
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
