use clap::Parser;
use saha_init_model::{run, Args};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(params) => eprintln!("saha-init-model: {params} random parameters -> {}", args.out.display()),
        Err(e) => {
            eprintln!("saha-init-model: error: {e:#}");
            std::process::exit(1);
        }
    }
}
