//! The fault suite: every stage binary on missing, empty, truncated, corrupted, mismatched and
//! other-run inputs and on extreme flags must stop with a non-zero exit and a message naming the file
//! (or flag), never panic, and leave nothing in its output folder; the long stages, killed with
//! SIGKILL at several points and rerun, give the bytes of an uninterrupted run.

mod bad_files;
mod fixture;
mod flags;
mod harness;
mod images;
mod kill;
