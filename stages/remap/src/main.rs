use clap::Parser;
use saha_remap::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(s) => eprintln!(
            "{STAGE}: {} owner rows, {} owner lists cut at --max-owners {} -> {}",
            s.rows,
            s.cap_hits,
            args.max_owners,
            args.out.display()
        ),
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
