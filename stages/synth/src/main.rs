use clap::Parser;
use saha_synth::{generate, Args, STAGE};

fn main() {
    let args = Args::parse();
    match generate(&args) {
        Ok(s) => eprintln!(
            "{STAGE}: {} train rows, {} eval rows, {} images in {}",
            s.train_rows,
            s.eval_rows,
            s.images,
            args.out.display()
        ),
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
