use clap::Parser;
use saha_report::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error(STAGE, run(&args));
    eprint!("{STAGE}: {} inputs -> {}", s.inputs, s.out.display());
    if s.missing_sections.is_empty() {
        eprintln!();
    } else {
        eprintln!(" (nothing yet for: {})", s.missing_sections.join(", "));
    }
}
