//! Progress bars for long work, drawn on stderr and only on a terminal (never into logs).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units named `what`; hidden when stderr is not a terminal or when
/// `SAHA_NO_PROGRESS` is set.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if std::env::var_os("SAHA_NO_PROGRESS").is_some() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:32}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
