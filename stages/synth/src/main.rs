use clap::Parser;
use saha_synth::{generate, Args, STAGE};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error(STAGE, generate(&args));
    eprintln!(
        "{STAGE}: {} train rows, {} eval rows, {} images in {}",
        s.train_rows,
        s.eval_rows,
        s.images,
        args.out.display()
    );
}
