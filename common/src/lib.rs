//! What the saha crates share and that needs no Parquet: the seeded random generator (the model
//! draws adapter weights and dropout masks from it), progress bars, and the command-line flags
//! several stage binaries take, each declared once.

pub mod flags;
pub mod progress;
pub mod rng;
pub mod stage;
