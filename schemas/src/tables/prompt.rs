//! Tables written by `saha-prompt`: pairs, items, MMEB-eval candidate lists and skipped rows.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::artefacts::ColumnType;
use crate::column_value::{ColumnKind, ColumnValue};
use crate::columns::{required, strings, BatchAt};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Query,
    Target,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Query => "query",
            Side::Target => "target",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Side::Query),
            "target" => Some(Side::Target),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ColumnKind for Side {
    fn kind() -> ColumnType {
        ColumnType::Exact(DataType::Utf8)
    }
}

impl ColumnValue for Side {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.map(|s| s.as_str())))
    }

    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>> {
        let col = strings(batch, name, at)?;
        (0..col.len())
            .map(|i| {
                let s = required(&col, i, name, at)?;
                Side::parse(s).ok_or_else(|| at.bad_value(i, name, format!("`{s}` is neither `query` nor `target`")))
            })
            .collect()
    }
}

table! {
    artefact pairs {
        produced_by: "saha-prompt",
        doc: "One row per (query, positive) pair as read from the input, in input order (subsets in the order \
            given, rows in file order). For MMEB-eval rows the positive is candidate 0, the ground truth.",
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Pair {
        pair_id: u32 => "Row number in this file, from 0.",
        subset: String => "Subset (dataset) name: the file stem or the Hugging Face config folder.",
        qry: String => "Query text as in the data, with the `<|image_1|>` placeholder.",
        qry_image_path: Option<String> => "Query image, relative to the image root; null for text-only.",
        pos_text: String => "Positive target text as in the data.",
        pos_image_path: Option<String> => "Positive target image, relative to the image root; null for text-only.",
        query_id: u32 => "`item_id` of the query in items.parquet.",
        target_id: u32 => "`item_id` of the positive target in items.parquet.",
        label: Option<String> => "Ground-truth class when the data has one (used to audit false negatives).",
        source_file: String => "Input file the row came from.",
        source_row: u32 => "Row number inside that file, from 0.",
    }
}

table! {
    artefact items {
        produced_by: "saha-prompt",
        doc: "One row per unique encoder input, de-duplicated like the reference by `(side, subset, text, \
            image_path)`. Query items come first (in order of first use), then target items.",
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Item {
        item_id: u32 => "Row number in this file, from 0.",
        side: Side => "`query` or `target`.",
        subset: String => "Subset the item belongs to.",
        text: String => "Raw dataset text (placeholder form, no prompt, no suffix).",
        image_path: Option<String> => "Image relative to the image root; null for text-only.",
        system: Option<String> => "System turn; null when the template has no system block.",
        user: String => "User turn after instruction handling, image-token replacement, escaping and suffix.",
        prompt: String => "The fully rendered chat string the tokenizer sees.",
        role: String => "`Q` or `D`: the reference role the prompt was built with \
            (RefCOCO-Matching targets are `Q`).",
    }
}

table! {
    artefact eval_lists {
        produced_by: "saha-prompt",
        doc: "MMEB-eval candidate lists in long form: one row per (query row, candidate). \
            Rank 0 is the ground truth.",
    }
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct EvalListEntry {
        pair_id: u32 => "The eval row (pairs.parquet).",
        rank: u16 => "Position in the row's candidate list; 0 is the ground truth.",
        item_id: u32 => "The candidate's `item_id` in items.parquet.",
    }
}

table! {
    artefact skipped {
        produced_by: "saha-prompt",
        doc: "Input rows left out under `--on-missing skip` (or dropped duplicates), with why.",
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SkippedRow {
        source_file: String => "Input file.",
        source_row: u32 => "Row inside that file, from 0.",
        column: String => "Column that caused the skip.",
        reason: String => "What was wrong.",
        value: Option<String> => "The offending value, e.g. the image path.",
    }
}
