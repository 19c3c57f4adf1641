use clap::Parser;
use saha_retrieve::{run, Args, STAGE};

fn main() {
    let args = Args::parse();
    let s = saha_common::stage::exit_on_error(STAGE, run(&args));
    for w in &s.warnings {
        eprintln!("{STAGE}: warning: {w}");
    }
    saha_common::stage::note_renormalised(STAGE, s.renormalised);
    if let Some(note) = s.left_out.note() {
        eprintln!("{STAGE}: {note}");
    }
    let scoring = match s.int8_kernel {
        Some(k) => format!("int8 pre-selection by the {} kernel, exact f32 re-score", k.name()),
        None => "exact f32 scores".to_string(),
    };
    if let Some(c) = s.fast_check {
        eprintln!(
            "{STAGE}: fast mode checked: {} of {} queries searched exactly as well got other candidates",
            c.differing, c.queries
        );
    }
    eprintln!(
        "{STAGE}: {} candidates for {} queries ({scoring}) -> {}",
        s.rows,
        s.queries,
        args.out.display()
    );
}
