use clap::Parser;
use saha_init_model::{run, Args};

fn main() {
    let args = Args::parse();
    let params = saha_common::stage::exit_on_error("saha-init-model", run(&args));
    eprintln!("saha-init-model: {params} random parameters -> {}", args.out.display());
}
