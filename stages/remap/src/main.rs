use clap::Parser;
use saha_remap::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error(STAGE, run(&args));
    eprintln!(
        "{STAGE}: {} owner rows, {} owner lists cut at --max-owners {} -> {}",
        s.rows,
        s.cap_hits,
        args.max_owners,
        args.out.display()
    );
}
