use clap::Parser;
use saha_wordnet::{generate, Args};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error("saha-wordnet", generate(&args));
    eprintln!(
        "saha-wordnet: {} noun synsets read; {} training and {} evaluation rows -> {}",
        s.synsets,
        s.train_rows,
        s.eval_rows,
        args.out.display()
    );
}
