//! Typed access to the columns of a record batch, with errors that name file, row and column.

use std::path::Path;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, LargeStringArray, PrimitiveArray, StringArray, StringViewArray,
};
use arrow::datatypes::{ArrowPrimitiveType, DataType};
use arrow::record_batch::RecordBatch;

use crate::artefacts::type_name;
use crate::error::{Result, SchemaError};

/// Where a batch sits: its file and the file row of its first row, so errors can name rows.
#[derive(Clone, Copy)]
pub struct BatchAt<'a> {
    pub path: &'a Path,
    pub first_row: usize,
}

impl BatchAt<'_> {
    pub fn bad_value(&self, row_in_batch: usize, column: &str, msg: impl Into<String>) -> SchemaError {
        SchemaError::bad_value(self.path, self.first_row + row_in_batch, column, msg)
    }
}

fn column<'b>(batch: &'b RecordBatch, name: &str, at: BatchAt, expected: &str) -> Result<&'b ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| SchemaError::MissingColumn {
        path: at.path.to_path_buf(),
        column: name.to_string(),
        expected: expected.to_string(),
        found: batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn wrong_type(at: BatchAt, name: &str, expected: &str, found: &DataType) -> SchemaError {
    SchemaError::WrongType {
        path: at.path.to_path_buf(),
        column: name.to_string(),
        expected: expected.to_string(),
        found: type_name(found),
    }
}

/// A string column in any of Arrow's three string layouts (datasets written by Hugging Face,
/// pandas or polars differ).
pub enum StrColumn<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> StrColumn<'a> {
    pub fn from_array(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Utf8 => StrColumn::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => StrColumn::Large(array.as_string::<i64>()),
            DataType::Utf8View => StrColumn::View(array.as_string_view()),
            _ => return None,
        })
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        let (valid, value) = match self {
            StrColumn::Utf8(a) => (a.is_valid(i), if a.is_valid(i) { a.value(i) } else { "" }),
            StrColumn::Large(a) => (a.is_valid(i), if a.is_valid(i) { a.value(i) } else { "" }),
            StrColumn::View(a) => (a.is_valid(i), if a.is_valid(i) { a.value(i) } else { "" }),
        };
        valid.then_some(value)
    }

    pub fn len(&self) -> usize {
        match self {
            StrColumn::Utf8(a) => a.len(),
            StrColumn::Large(a) => a.len(),
            StrColumn::View(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The string column `name`, or an error naming file and column.
pub fn strings<'b>(batch: &'b RecordBatch, name: &str, at: BatchAt) -> Result<StrColumn<'b>> {
    let array = column(batch, name, at, "utf8")?;
    StrColumn::from_array(array.as_ref()).ok_or_else(|| wrong_type(at, name, "utf8", array.data_type()))
}

/// Like [`strings`] but `None` when the column is absent.
pub fn optional_strings<'b>(batch: &'b RecordBatch, name: &str, at: BatchAt) -> Result<Option<StrColumn<'b>>> {
    if batch.column_by_name(name).is_none() {
        return Ok(None);
    }
    strings(batch, name, at).map(Some)
}

/// A non-null string, or an error naming the row.
pub fn required<'a>(col: &StrColumn<'a>, i: usize, name: &str, at: BatchAt) -> Result<&'a str> {
    col.get(i)
        .ok_or_else(|| at.bad_value(i, name, "null where a value is required"))
}

/// A column of strings lists (`list<utf8>` in any string/list layout).
pub struct StrListColumn<'a> {
    offsets: Vec<usize>,
    values: StrColumn<'a>,
    nulls: Option<&'a arrow::buffer::NullBuffer>,
}

impl<'a> StrListColumn<'a> {
    pub fn get(&self, i: usize) -> Option<impl Iterator<Item = Option<&'a str>> + '_> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return None;
        }
        Some((self.offsets[i]..self.offsets[i + 1]).map(|j| self.values.get(j)))
    }
}

type ListParts<'a> = (Vec<usize>, &'a ArrayRef, Option<&'a arrow::buffer::NullBuffer>);

fn list_parts<O: arrow::array::OffsetSizeTrait>(a: &GenericListArray<O>) -> ListParts<'_> {
    (
        a.value_offsets().iter().map(|o| o.as_usize()).collect(),
        a.values(),
        a.nulls(),
    )
}

pub fn string_lists<'b>(batch: &'b RecordBatch, name: &str, at: BatchAt) -> Result<StrListColumn<'b>> {
    let array = column(batch, name, at, "list<utf8>")?;
    let (offsets, values, nulls) = match array.data_type() {
        DataType::List(_) => list_parts(array.as_list::<i32>()),
        DataType::LargeList(_) => list_parts(array.as_list::<i64>()),
        other => return Err(wrong_type(at, name, "list<utf8>", other)),
    };
    let values =
        StrColumn::from_array(values.as_ref()).ok_or_else(|| wrong_type(at, name, "list<utf8>", array.data_type()))?;
    Ok(StrListColumn { offsets, values, nulls })
}

/// A primitive column with no nulls, as a slice.
pub fn primitive<'b, T: ArrowPrimitiveType>(
    batch: &'b RecordBatch,
    name: &str,
    at: BatchAt,
) -> Result<&'b [T::Native]> {
    let expected = type_name(&T::DATA_TYPE);
    let array = column(batch, name, at, &expected)?;
    let typed: &PrimitiveArray<T> = array
        .as_primitive_opt::<T>()
        .ok_or_else(|| wrong_type(at, name, &expected, array.data_type()))?;
    if let Some(nulls) = typed.nulls() {
        if let Some(row) = (0..typed.len()).find(|&i| nulls.is_null(i)) {
            return Err(at.bad_value(row, name, "null where a value is required"));
        }
    }
    Ok(typed.values())
}

/// A nullable primitive column, one option a row ([`primitive`] refuses nulls).
pub fn optional_primitive<T: ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
    at: BatchAt,
) -> Result<Vec<Option<T::Native>>> {
    let expected = type_name(&T::DATA_TYPE);
    let array = column(batch, name, at, &expected)?;
    let typed: &PrimitiveArray<T> = array
        .as_primitive_opt::<T>()
        .ok_or_else(|| wrong_type(at, name, &expected, array.data_type()))?;
    Ok(typed.iter().collect())
}
