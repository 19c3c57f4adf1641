use clap::Parser;
use saha_embed::{run, Cli, STAGE};

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(summary) => eprintln!("{STAGE}: {summary}"),
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
