//! `table!`: one declaration per artefact. Each column is written once, as
//! `field: RustType => "doc"`; the Arrow type and nullability follow from the Rust type
//! (`ColumnKind`), the conversions too (`ColumnValue`). The artefact's file stem is the name of
//! its spec function.
//!
//! ```text
//! table! {
//!     artefact pairs {
//!         produced_by: "saha-prompt",
//!         doc: "One row per (query, positive) pair.",
//!     }
//!     #[derive(Debug, Clone)]
//!     pub struct Pair {
//!         pair_id: u32 => "Row number in this file, from 0.",
//!         label: Option<String> => "Ground-truth class, if any.",
//!     }
//! }
//! ```
//!
//! gives `pub fn pairs() -> ArtefactSpec`, `pub struct Pair` (fields documented with their
//! column docs) and `impl Record for Pair`. Without the struct only the spec function is made.

macro_rules! table {
    (
        artefact $spec:ident { produced_by: $by:literal, doc: $doc:literal $(,)? }
        columns { $( $field:ident: $ty:ty => $col_doc:literal ),* $(,)? }
    ) => {
        pub fn $spec() -> $crate::artefacts::ArtefactSpec {
            $crate::artefacts::ArtefactSpec {
                name: stringify!($spec),
                produced_by: $by,
                doc: $doc,
                columns: vec![ $( $crate::column_value::column::<$ty>(stringify!($field), $col_doc) ),* ],
            }
        }
    };
    (
        artefact $spec:ident { produced_by: $by:literal, doc: $doc:literal $(,)? }
        $(#[$meta:meta])*
        pub struct $Row:ident { $( $field:ident: $ty:ty => $col_doc:literal ),* $(,)? }
    ) => {
        table! {
            artefact $spec { produced_by: $by, doc: $doc }
            columns { $( $field: $ty => $col_doc ),* }
        }

        $(#[$meta])*
        pub struct $Row {
            $( #[doc = $col_doc] pub $field: $ty, )*
        }

        impl $crate::records::Record for $Row {
            fn spec() -> $crate::artefacts::ArtefactSpec {
                $spec()
            }

            fn to_columns(rows: &[Self]) -> Vec<arrow::array::ArrayRef> {
                use $crate::column_value::ColumnValue;
                vec![ $( <$ty as ColumnValue>::to_array(rows.iter().map(|r| &r.$field)) ),* ]
            }

            fn from_batch(
                batch: &arrow::record_batch::RecordBatch,
                at: $crate::columns::BatchAt,
                out: &mut Vec<Self>,
            ) -> $crate::error::Result<()> {
                use $crate::column_value::ColumnValue;
                $( let mut $field = <$ty as ColumnValue>::read_column(batch, stringify!($field), at)?.into_iter(); )*
                out.extend((0..batch.num_rows()).map(|_| $Row {
                    $( $field: $field.next().expect("one value a row"), )*
                }));
                Ok(())
            }
        }
    };
}
