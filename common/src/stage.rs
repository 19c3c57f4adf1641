//! What every stage binary does on the way out.

use std::fmt::Display;

/// The value of a stage's run, or, on error, `<stage>: error: <message and its causes>` on stderr
/// and exit status 1.
pub fn exit_on_error<T, E: Display>(stage: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("{stage}: error: {e:#}");
        std::process::exit(1)
    })
}

/// The note a stage prints when it L2-normalised vectors that were not unit length.
pub fn note_renormalised(stage: &str, count: usize) {
    if count > 0 {
        eprintln!("{stage}: note: {count} vectors were not unit length and were L2-normalised");
    }
}
