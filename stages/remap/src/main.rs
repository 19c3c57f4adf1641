use clap::Parser;
use saha_remap::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let (c, left_out) = saha_common::stage::exit_on_error(STAGE, run(&args));
    if let Some(note) = left_out.note() {
        eprintln!("{STAGE}: {note}");
    }
    eprintln!(
        "{STAGE}: {} retrieved targets, {} of them owned by several queries (at most {}) -> {}",
        c.targets,
        c.shared_targets,
        c.max_owners,
        args.out.display()
    );
}
