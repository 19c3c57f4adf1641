//! Every table the saha stages exchange: its Arrow schema, a doc of each column, typed
//! read/write helpers, validation with errors that name file, row and column, provenance
//! metadata, and an atomic Parquet writer.

pub mod artefacts;
pub mod atomic;
mod column_value;
pub mod columns;
pub mod embeddings;
pub mod error;
pub mod mmeb_data;
pub mod provenance;
pub mod read;
pub mod records;
mod tables;
pub mod write;

pub use artefacts::{ArtefactSpec, ColumnSpec};
pub use atomic::AtomicFile;
pub use error::{Result, SchemaError};
pub use provenance::{InputHash, ParamKey, Provenance};
pub use read::ParquetTable;
pub use records::Record;
pub use tables::{
    Candidate, ClusterMember, EvalListEntry, EvalScore, Item, MiningStats, Owner, Pair, Side, SkippedRow,
    SugarCrepeExample, SugarCrepeScore, TrainLogRow,
};
pub use write::ParquetSink;
