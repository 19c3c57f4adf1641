//! Every artefact's declaration: its spec and, where it has one, its row type, each column
//! written once (see [`declare`]).

#[macro_use]
mod declare;
mod eval;
mod mining;
mod model;
mod prompt;

pub use eval::*;
pub use mining::*;
pub use model::*;
pub use prompt::*;
