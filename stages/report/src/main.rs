use clap::Parser;
use saha_report::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(s) => {
            eprint!("{STAGE}: {} inputs -> {}", s.inputs, s.out.display());
            if s.missing_sections.is_empty() {
                eprintln!();
            } else {
                eprintln!(" (nothing yet for: {})", s.missing_sections.join(", "));
            }
        }
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
