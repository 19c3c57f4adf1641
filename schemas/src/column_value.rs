//! How a Rust field type maps to a catalogue column: its Arrow type and nullability
//! ([`ColumnKind`]), and its conversion to and from Arrow arrays ([`ColumnValue`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveArray, StringArray};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float32Type, Float64Type, UInt16Type, UInt32Type, UInt8Type};
use arrow::record_batch::RecordBatch;

use crate::artefacts::{ColumnSpec, ColumnType};
use crate::columns::{optional_primitive, primitive, required, strings, BatchAt};
use crate::error::Result;

/// The column type a field of this Rust type is stored as.
pub trait ColumnKind {
    const NULLABLE: bool = false;
    fn kind() -> ColumnType;
}

/// A field type the generated `Record` impls can write and read.
pub trait ColumnValue: ColumnKind + Sized {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// Column `name` of `batch`, one value a row; errors name file, row and column.
    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>>;
}

/// The catalogue entry of a column holding `C`.
pub fn column<C: ColumnKind>(name: &'static str, doc: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: C::kind(),
        nullable: C::NULLABLE,
        doc,
    }
}

/// `FixedSizeList<Float32, D>`: only declared here; embeddings.rs reads and writes it as a matrix.
pub struct Vector;

impl ColumnKind for Vector {
    fn kind() -> ColumnType {
        ColumnType::Vector
    }
}

/// A Rust number stored as the Arrow primitive `Arrow`.
pub trait Primitive: Copy + 'static {
    type Arrow: ArrowPrimitiveType<Native = Self>;
}

impl Primitive for u8 {
    type Arrow = UInt8Type;
}
impl Primitive for u16 {
    type Arrow = UInt16Type;
}
impl Primitive for u32 {
    type Arrow = UInt32Type;
}
impl Primitive for f32 {
    type Arrow = Float32Type;
}
impl Primitive for f64 {
    type Arrow = Float64Type;
}

impl<T: Primitive> ColumnKind for T {
    fn kind() -> ColumnType {
        ColumnType::Exact(T::Arrow::DATA_TYPE)
    }
}

impl<T: Primitive> ColumnValue for T {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(PrimitiveArray::<T::Arrow>::from_iter_values(values.copied()))
    }

    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>> {
        Ok(primitive::<T::Arrow>(batch, name, at)?.to_vec())
    }
}

impl<T: Primitive> ColumnKind for Option<T> {
    const NULLABLE: bool = true;
    fn kind() -> ColumnType {
        T::kind()
    }
}

impl<T: Primitive> ColumnValue for Option<T> {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.copied().collect::<PrimitiveArray<T::Arrow>>())
    }

    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>> {
        optional_primitive::<T::Arrow>(batch, name, at)
    }
}

impl ColumnKind for String {
    fn kind() -> ColumnType {
        ColumnType::Exact(DataType::Utf8)
    }
}

impl ColumnValue for String {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.map(String::as_str)))
    }

    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>> {
        let col = strings(batch, name, at)?;
        (0..col.len())
            .map(|i| required(&col, i, name, at).map(str::to_string))
            .collect()
    }
}

impl ColumnKind for Option<String> {
    const NULLABLE: bool = true;
    fn kind() -> ColumnType {
        String::kind()
    }
}

impl ColumnValue for Option<String> {
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(Option::as_deref).collect::<StringArray>())
    }

    fn read_column(batch: &RecordBatch, name: &str, at: BatchAt) -> Result<Vec<Self>> {
        let col = strings(batch, name, at)?;
        Ok((0..col.len()).map(|i| col.get(i).map(str::to_string)).collect())
    }
}
