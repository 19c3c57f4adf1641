use clap::Parser;
use saha_init_model::{run, Args};

fn main() {
    let args = Args::parse();
    let built = saha_common::stage::exit_on_error("saha-init-model", run(&args));
    match &args.text_from_gguf {
        Some(gguf) => eprintln!(
            "saha-init-model: {} parameters from {} + {} random vision parameters -> {}",
            built.from_file,
            gguf.display(),
            built.random,
            args.out.display()
        ),
        None => eprintln!(
            "saha-init-model: {} random parameters -> {}",
            built.random,
            args.out.display()
        ),
    }
}
