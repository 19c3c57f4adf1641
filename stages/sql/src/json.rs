//! Cells of nested columns (lists, embedding vectors, structs) as JSON, for CSV output: a vector is
//! written in full as numbers (`[0.1,-0.2]`), never as its printed preview.

use anyhow::Result;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

/// The value at `row` of `array` as JSON text.
pub fn cell(array: &dyn Array, row: usize) -> Result<String> {
    Ok(value(array, row)?.to_string())
}

fn value(array: &dyn Array, row: usize) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::List(_) => elements(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => elements(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => elements(array.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                map.insert(f.name().clone(), value(c.as_ref(), row)?);
            }
            Value::Object(map)
        }
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        // Through the shortest decimal text of the f32, so 0.1f32 is written 0.1, not 0.10000000149.
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row).to_string().parse()?),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        t => {
            let text = ArrayFormatter::try_new(array, &FormatOptions::default())?
                .value(row)
                .to_string();
            if t.is_integer() {
                Value::Number(text.parse::<Number>()?)
            } else {
                Value::String(text)
            }
        }
    })
}

fn elements(values: &dyn Array) -> Result<Value> {
    Ok(Value::Array(
        (0..values.len()).map(|i| value(values, i)).collect::<Result<_>>()?,
    ))
}

/// A finite float as a JSON number; NaN and infinities, which JSON lacks, as the strings "NaN",
/// "inf" and "-inf".
fn float(v: f64) -> Value {
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}
