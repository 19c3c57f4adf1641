use clap::Parser;
use saha_filter::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error(STAGE, run(&args));
    for note in &s.notes {
        eprintln!("{STAGE}: {note}");
    }
    print!("{}", saha_mining::audit::table(&s.stats));
    eprintln!(
        "{STAGE}: wrote {} and {}",
        args.clusters.display(),
        args.stats.display()
    );
}
