//! What the saha crates share and that needs no Parquet: the seeded random generator (the model
//! draws adapter weights and dropout masks from it), progress bars, the command-line flags
//! several stage binaries take, each declared once, the value parsers of numeric flags, and the
//! lock that keeps one process per output, the seeded byte mutations the fuzz tests use, and the one
//! call into the gemm crate for matrix products outside candle.

pub mod flags;
pub mod lock;
pub mod mutate;
pub mod numbers;
pub mod product;
pub mod progress;
pub mod rng;
pub mod stage;
