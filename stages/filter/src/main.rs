use clap::Parser;
use saha_filter::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(s) => {
            print!("{}", saha_mining::audit::table(&s.stats));
            eprintln!(
                "{STAGE}: wrote {} and {}",
                args.clusters.display(),
                args.stats.display()
            );
        }
        Err(e) => {
            eprintln!("{STAGE}: error: {e:#}");
            std::process::exit(1);
        }
    }
}
