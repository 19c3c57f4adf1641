use clap::Parser;
use saha_train::{run, Args, STAGE};

fn main() {
    saha_model::startup::elementwise_on_calling_thread();
    let args = Args::parse();
    saha_model::startup::keep_freed_memory();
    let s = saha_common::stage::exit_on_error(STAGE, run(&args));
    if s.left_out_pairs > 0 {
        eprintln!(
            "{STAGE}: trained without {} pairs that saha-filter left out: {}",
            s.left_out_pairs,
            saha_schemas::provenance::LEFT_OUT_REASON
        );
    }
    eprintln!(
        "{STAGE}: {} steps, loss {:.4} -> {:.4}; result in {}",
        s.steps,
        s.first_loss,
        s.last_loss,
        s.adapter_dir.display()
    );
}
