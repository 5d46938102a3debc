//! How decant's logical column types are stored in Iceberg, and the table layout (columns,
//! field ids, identifier fields) derived from a decoded schema.
//!
//! MySQL `TIME` spans (signed, beyond a day) are not Iceberg `time`s of day: they are `long`
//! microseconds, like durations.
//!
//! Iceberg v2 has no nanosecond, zoned-time, JSON, geometry or unsigned-128 types; those
//! columns are stored as their canonical text (the same text `decant decode` prints), so no
//! value is ever rounded. UUIDs are stored as text too: engines disagree on Iceberg's `uuid`
//! (a 16-byte fixed in Parquet), while the text reads the same everywhere.

use std::sync::Arc;

use decant_model::{ColumnType, TimeUnit};
use iceberg::spec::{ListType, NestedField, PrimitiveType, Schema, Type};

use crate::error::IcebergError;

/// How one column's values are stored; what the pipeline converts canonical values into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Boolean,
    /// 32-bit integer (also 8/16-bit sources).
    Int,
    Long,
    Float,
    Double,
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Text as-is (strings, enums, XML, UUIDs, variable-scale decimals, nanosecond and zoned
    /// times as their canonical text).
    Text,
    /// A value that is JSON in the canonical rendering (JSON columns, geometry, points,
    /// structs), stored as its compact JSON text.
    JsonText,
    Binary,
    Date,
    /// Microseconds since midnight.
    Time,
    /// Microseconds since the epoch, no zone.
    Timestamp,
    /// Microseconds since the epoch, UTC.
    TimestampTz,
    /// A duration as its integer count in the source's unit (µs or ns); a MySQL `TIME` span
    /// as its count of µs (rendered as `[-]HH:MM:SS[.ffffff]`, parsed back exactly).
    DurationCount,
    List(Box<Storage>),
}

impl Storage {
    pub fn of(ty: &ColumnType) -> Storage {
        use ColumnType as C;
        match ty {
            C::Boolean => Storage::Boolean,
            C::Int8 | C::Int16 | C::Int32 => Storage::Int,
            C::Int64 => Storage::Long,
            C::Float32 => Storage::Float,
            C::Float64 => Storage::Double,
            C::Decimal { precision, scale } if *precision <= 38 && *scale >= 0 => {
                Storage::Decimal {
                    precision: u32::from(*precision),
                    scale: *scale as u32,
                }
            }
            C::Decimal { .. }
            | C::DecimalText
            | C::String
            | C::Xml
            | C::Uuid
            | C::Enum
            | C::ZonedTime
            | C::Time(TimeUnit::Nanos)
            | C::SignedTime(TimeUnit::Nanos)
            | C::Timestamp(TimeUnit::Nanos)
            | C::TimestampTz(TimeUnit::Nanos) => Storage::Text,
            C::Json | C::Geometry | C::Point | C::Struct(_) => Storage::JsonText,
            C::Binary => Storage::Binary,
            C::Date => Storage::Date,
            C::Time(TimeUnit::Micros) => Storage::Time,
            C::Timestamp(TimeUnit::Micros) => Storage::Timestamp,
            C::TimestampTz(TimeUnit::Micros) => Storage::TimestampTz,
            // MySQL TIME: the signed µs count (no Iceberg type is a signed span of a day's
            // clock; `time` is a time of day).
            C::Duration(_) | C::SignedTime(TimeUnit::Micros) => Storage::DurationCount,
            C::List(elem) => match Storage::of(elem) {
                Storage::List(_) => Storage::JsonText,
                inner => Storage::List(Box::new(inner)),
            },
        }
    }

    fn primitive(&self) -> Option<PrimitiveType> {
        Some(match self {
            Storage::Boolean => PrimitiveType::Boolean,
            Storage::Int => PrimitiveType::Int,
            Storage::Long | Storage::DurationCount => PrimitiveType::Long,
            Storage::Float => PrimitiveType::Float,
            Storage::Double => PrimitiveType::Double,
            Storage::Decimal { precision, scale } => PrimitiveType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            Storage::Text | Storage::JsonText => PrimitiveType::String,
            Storage::Binary => PrimitiveType::Binary,
            Storage::Date => PrimitiveType::Date,
            Storage::Time => PrimitiveType::Time,
            Storage::Timestamp => PrimitiveType::Timestamp,
            Storage::TimestampTz => PrimitiveType::Timestamptz,
            Storage::List(_) => return None,
        })
    }
}

/// The Iceberg type of a decant column type; list elements get ids from `next_id`.
pub fn iceberg_type(ty: &ColumnType, next_id: &mut i32) -> Type {
    storage_type(&Storage::of(ty), next_id)
}

fn storage_type(s: &Storage, next_id: &mut i32) -> Type {
    match s {
        Storage::List(elem) => {
            *next_id += 1;
            let id = *next_id;
            let elem_ty = storage_type(elem, next_id);
            Type::List(ListType::new(Arc::new(NestedField::list_element(
                id, elem_ty, false,
            ))))
        }
        other => Type::Primitive(other.primitive().unwrap_or(PrimitiveType::String)),
    }
}

/// One output column as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutColumn {
    pub name: String,
    pub ty: ColumnType,
    pub storage: Storage,
}

/// The columns and key of one destination table, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub columns: Vec<LayoutColumn>,
    /// Names of the key columns (the Iceberg identifier fields).
    pub key: Vec<String>,
}

impl TableLayout {
    pub fn new(columns: Vec<(String, ColumnType)>, key: Vec<String>) -> Self {
        TableLayout {
            columns: columns
                .into_iter()
                .map(|(name, ty)| LayoutColumn {
                    storage: Storage::of(&ty),
                    name,
                    ty,
                })
                .collect(),
            key,
        }
    }

    /// A fresh Iceberg schema: ids in column order, key columns required.
    pub fn fresh_schema(&self, table: &str) -> Result<Schema, IcebergError> {
        let mut next = 0;
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut key_ids = Vec::new();
        for c in &self.columns {
            next += 1;
            let id = next;
            let ty = storage_type(&c.storage, &mut next);
            let is_key = self.key.contains(&c.name);
            if is_key {
                check_key_type(table, &c.name, &c.storage)?;
                key_ids.push(id);
            }
            fields.push(Arc::new(if is_key {
                NestedField::required(id, &c.name, ty)
            } else {
                NestedField::optional(id, &c.name, ty)
            }));
        }
        if key_ids.len() != self.key.len() {
            return Err(IcebergError::IncompatibleSchema {
                table: table.to_owned(),
                why: format!(
                    "key columns {:?} are not all among the table's columns",
                    self.key
                ),
            });
        }
        let ordered: Vec<i32> = self
            .key
            .iter()
            .filter_map(|k| {
                self.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .and_then(|p| fields.get(p).map(|f| f.id))
            })
            .collect();
        Schema::builder()
            .with_fields(fields)
            .with_identifier_field_ids(ordered)
            .build()
            .map_err(IcebergError::iceberg(format!(
                "table {table}: building its schema"
            )))
    }

    /// The schema the table needs next: `current` plus this layout's new columns (optional,
    /// fresh ids after `last_column_id`). `None` when `current` already holds every column.
    /// Changed types, a changed key, or a lost required column are incompatible.
    pub fn evolve(
        &self,
        table: &str,
        current: &Schema,
        last_column_id: i32,
    ) -> Result<Option<Schema>, IcebergError> {
        let incompatible = |why: String| IcebergError::IncompatibleSchema {
            table: table.to_owned(),
            why,
        };
        let current_key: Vec<String> = current
            .identifier_field_ids()
            .filter_map(|id| current.field_by_id(id).map(|f| f.name.clone()))
            .collect();
        let mut want_key = self.key.clone();
        let mut have_key = current_key.clone();
        want_key.sort();
        have_key.sort();
        if want_key != have_key {
            return Err(incompatible(format!(
                "the key changed from {current_key:?} to {:?}",
                self.key
            )));
        }
        let mut next = last_column_id;
        let mut added = Vec::new();
        for c in &self.columns {
            match current.field_by_name(&c.name) {
                Some(f) => {
                    let mut scratch = 0;
                    let want = storage_type(&c.storage, &mut scratch);
                    if !same_shape(&f.field_type, &want) {
                        return Err(incompatible(format!(
                            "column {} changed type: the table has {}, the source now sends {} (stored as {})",
                            c.name,
                            f.field_type,
                            c.ty_name(),
                            want
                        )));
                    }
                }
                None => {
                    next += 1;
                    let id = next;
                    let ty = storage_type(&c.storage, &mut next);
                    added.push(Arc::new(NestedField::optional(id, &c.name, ty)));
                }
            }
        }
        for f in current.as_struct().fields() {
            if f.required && !self.columns.iter().any(|c| c.name == f.name) {
                return Err(incompatible(format!(
                    "required column {} is no longer sent",
                    f.name
                )));
            }
        }
        if added.is_empty() {
            return Ok(None);
        }
        let mut fields: Vec<_> = current.as_struct().fields().to_vec();
        fields.extend(added);
        let key_ids: Vec<i32> = current.identifier_field_ids().collect();
        Schema::builder()
            .with_schema_id(current.schema_id() + 1)
            .with_fields(fields)
            .with_identifier_field_ids(key_ids)
            .build()
            .map(Some)
            .map_err(IcebergError::iceberg(format!(
                "table {table}: evolving its schema"
            )))
    }
}

impl LayoutColumn {
    fn ty_name(&self) -> String {
        format!("{:?}", self.ty)
    }
}

/// Types compare without their (nested) field ids.
fn same_shape(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Primitive(x), Type::Primitive(y)) => x == y,
        (Type::List(x), Type::List(y)) => {
            same_shape(&x.element_field.field_type, &y.element_field.field_type)
        }
        _ => false,
    }
}

fn check_key_type(table: &str, name: &str, s: &Storage) -> Result<(), IcebergError> {
    match s {
        Storage::Float | Storage::Double | Storage::List(_) => {
            Err(IcebergError::IncompatibleSchema {
                table: table.to_owned(),
                why: format!(
                    "key column {name} is {s:?}: Iceberg identifier fields cannot be floating point or nested"
                ),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(cols: &[(&str, ColumnType)]) -> TableLayout {
        TableLayout::new(
            cols.iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
            vec!["id".into()],
        )
    }

    #[test]
    fn fresh_schema_marks_the_key_required_and_numbers_list_elements() {
        let l = layout(&[
            ("id", ColumnType::Int64),
            ("tags", ColumnType::List(Box::new(ColumnType::String))),
            (
                "price",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ]);
        let s = l.fresh_schema("t").expect("schema");
        assert_eq!(s.identifier_field_ids().collect::<Vec<_>>(), vec![1]);
        assert!(s.field_by_name("id").expect("id").required);
        assert_eq!(s.field_by_name("price").expect("price").id, 4);
        assert_eq!(s.highest_field_id(), 4);
    }

    #[test]
    fn mysql_time_spans_are_long_microseconds_not_times_of_day() {
        let mut next = 0;
        let span = ColumnType::SignedTime(TimeUnit::Micros);
        assert_eq!(Storage::of(&span), Storage::DurationCount);
        assert_eq!(
            iceberg_type(&span, &mut next),
            Type::Primitive(PrimitiveType::Long)
        );
        // Nanosecond spans keep every digit as their canonical text, like nanosecond times.
        assert_eq!(
            Storage::of(&ColumnType::SignedTime(TimeUnit::Nanos)),
            Storage::Text
        );
        // A time of day stays Iceberg `time`.
        assert_eq!(
            iceberg_type(&ColumnType::Time(TimeUnit::Micros), &mut next),
            Type::Primitive(PrimitiveType::Time)
        );
        // A table made when MySQL TIME was (wrongly) a time of day refuses the change loudly.
        let before = layout(&[
            ("id", ColumnType::Int64),
            ("t", ColumnType::Time(TimeUnit::Micros)),
        ]);
        let s = before.fresh_schema("t").expect("schema");
        let after = layout(&[("id", ColumnType::Int64), ("t", span)]);
        let err = after.evolve("t", &s, 2).expect_err("time → long");
        assert!(err.to_string().contains("column t changed type"), "{err}");
    }

    #[test]
    fn evolution_adds_nullable_columns_and_refuses_type_changes() {
        let v1 = layout(&[("id", ColumnType::Int64), ("a", ColumnType::String)]);
        let s1 = v1.fresh_schema("t").expect("schema");
        assert!(v1.evolve("t", &s1, 2).expect("same").is_none());
        let v2 = layout(&[
            ("id", ColumnType::Int64),
            ("a", ColumnType::String),
            ("b", ColumnType::Date),
        ]);
        let s2 = v2.evolve("t", &s1, 2).expect("ok").expect("changed");
        let b = s2.field_by_name("b").expect("b");
        assert_eq!((b.id, b.required), (3, false));
        let v3 = layout(&[("id", ColumnType::Int64), ("a", ColumnType::Int32)]);
        let err = v3.evolve("t", &s1, 2).expect_err("type change");
        assert!(err.to_string().contains("column a changed type"), "{err}");
        // A dropped nullable column is fine (it reads as null from then on).
        let v4 = layout(&[("id", ColumnType::Int64)]);
        assert!(v4.evolve("t", &s1, 2).expect("ok").is_none());
    }
}
