use clap::Parser;
use saha_retrieve::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("{STAGE}: warning: {w}");
            }
            if s.renormalised > 0 {
                eprintln!(
                    "{STAGE}: note: {} vectors were not unit length and were L2-normalised",
                    s.renormalised
                );
            }
            eprintln!(
                "{STAGE}: {} candidates for {} queries -> {}",
                s.rows,
                s.queries,
                args.out.display()
            );
        }
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
