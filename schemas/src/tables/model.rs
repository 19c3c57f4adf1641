//! Tables of the model stages: `saha-embed` and `saha-train`.

use crate::column_value::Vector;

table! {
    artefact embeddings {
        produced_by: "saha-embed",
        doc: "One row per item. Footer metadata holds the model (`saha.embedding.model`), the dimension \
            (`saha.embedding.dim`) and whether vectors are L2-normalised (`saha.embedding.normalized`).",
    }
    columns {
        item_id: u32 => "The item (items.parquet).",
        embedding: Vector => "Final hidden state of the last real token, L2-normalised unless stated otherwise.",
    }
}

table! {
    artefact train_log {
        produced_by: "saha-train",
        doc: "One row per optimisation step. Only what the inputs and settings determine, so the same run gives \
            the same bytes; the steps' wall-clock times are in `timings.json` next to it (JSON, not an artefact: \
            `seconds` in all, and per step `step`, `seconds`, `pairs_per_s`).",
    }
    /// A `train_log.parquet` row.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TrainLogRow {
        step: u32 => "Step number, from 1.",
        loss: f32 => "InfoNCE loss of the step's batch.",
        lr: f64 => "Learning rate used for the step.",
        grad_norm: f64 => "Global gradient L2 norm before clipping.",
        pairs: u32 => "(query, positive) pairs in the step.",
    }
}
