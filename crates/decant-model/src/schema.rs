//! Decoded table schemas: decant's logical column types and how they map onto Arrow.
//!
//! A logical type says what a value *is* (a zoned timestamp, a JSON document, an exact decimal),
//! whatever wire encoding it came in. The Arrow mapping keeps the meaning Arrow has no type for in
//! the field metadata key [`SEMANTIC_KEY`], so writers and renderers downstream need nothing else.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Arrow field metadata key naming the logical type where the Arrow type alone is ambiguous.
pub const SEMANTIC_KEY: &str = "decant.type";

/// A source table: `schema.table` (PostgreSQL, SQL Server, Oracle) or `db.table` (MySQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// Schema (PostgreSQL) or database (MySQL) name; empty when the source has neither.
    pub namespace: String,
    pub name: String,
}

impl TableId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `ns.table`; a name without a dot has an empty namespace.
    pub fn parse(text: &str) -> Self {
        match text.rsplit_once('.') {
            Some((ns, name)) => TableId::new(ns, name),
            None => TableId::new("", text),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}.{}", self.namespace, self.name)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Micros,
    Nanos,
}

impl TimeUnit {
    fn arrow(self) -> arrow_schema::TimeUnit {
        match self {
            TimeUnit::Micros => arrow_schema::TimeUnit::Microsecond,
            TimeUnit::Nanos => arrow_schema::TimeUnit::Nanosecond,
        }
    }
}

/// decant's logical column types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal with a fixed scale. Precision above 38 maps to Arrow Decimal256.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Exact decimal whose scale varies per value (Debezium VariableScaleDecimal): kept as text.
    DecimalText,
    String,
    /// A JSON document, kept as its text and rendered as an embedded value.
    Json,
    Xml,
    Uuid,
    /// An enum label (or a MySQL SET's comma-joined labels).
    Enum,
    Binary,
    /// Days since 1970-01-01.
    Date,
    /// Time of day without zone: 00:00:00 to 24:00:00 (PostgreSQL allows the latter).
    Time(TimeUnit),
    /// A signed span written as a clock reading: MySQL / MariaDB `TIME`, which runs from
    /// `-838:59:59.000000` to `838:59:59.000000` and is not a time of day. Arrow Duration,
    /// tagged `signed_time`, rendered as MySQL writes it (`-01:30:00.500000`).
    SignedTime(TimeUnit),
    /// Time of day normalised to UTC (PostgreSQL timetz).
    ZonedTime,
    /// Date-time without zone (wall clock as written in the database).
    Timestamp(TimeUnit),
    /// An instant, normalised to UTC.
    TimestampTz(TimeUnit),
    /// An elapsed time (Debezium MicroDuration / NanoDuration).
    Duration(TimeUnit),
    /// OGC WKB with an optional SRID.
    Geometry,
    /// A point: x, y, and optionally its WKB and SRID.
    Point,
    List(Box<ColumnType>),
    Struct(Vec<Column>),
}

impl ColumnType {
    pub fn arrow_type(&self) -> DataType {
        use ColumnType as C;
        match self {
            C::Boolean => DataType::Boolean,
            C::Int8 => DataType::Int8,
            C::Int16 => DataType::Int16,
            C::Int32 => DataType::Int32,
            C::Int64 => DataType::Int64,
            C::Float32 => DataType::Float32,
            C::Float64 => DataType::Float64,
            C::Decimal { precision, scale } if *precision <= 38 => {
                DataType::Decimal128(*precision, *scale)
            }
            C::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            C::DecimalText | C::String | C::Json | C::Xml | C::Enum => DataType::Utf8,
            C::Uuid => DataType::FixedSizeBinary(16),
            C::Binary => DataType::Binary,
            C::Date => DataType::Date32,
            C::Time(u) => DataType::Time64(u.arrow()),
            C::ZonedTime => DataType::Time64(arrow_schema::TimeUnit::Microsecond),
            C::Timestamp(u) => DataType::Timestamp(u.arrow(), None),
            C::TimestampTz(u) => DataType::Timestamp(u.arrow(), Some("UTC".into())),
            C::Duration(u) | C::SignedTime(u) => DataType::Duration(u.arrow()),
            C::Geometry => DataType::Struct(geometry_fields()),
            C::Point => DataType::Struct(point_fields()),
            C::List(elem) => DataType::List(Arc::new(elem.arrow_field("element", true))),
            C::Struct(cols) => {
                // Struct members are nullable in Arrow for the same reason top-level columns are.
                DataType::Struct(
                    cols.iter()
                        .map(|c| c.ty.arrow_field(&c.name, true))
                        .collect::<Fields>(),
                )
            }
        }
    }

    /// The metadata tag that disambiguates this type on an Arrow field, if Arrow needs one.
    pub fn semantic(&self) -> Option<&'static str> {
        use ColumnType as C;
        Some(match self {
            C::DecimalText => "decimal",
            C::Json => "json",
            C::Xml => "xml",
            C::Uuid => "uuid",
            C::Enum => "enum",
            C::ZonedTime => "zoned_time",
            C::SignedTime(_) => "signed_time",
            C::Geometry => "geometry",
            C::Point => "point",
            _ => return None,
        })
    }

    pub fn arrow_field(&self, name: &str, nullable: bool) -> Field {
        let field = Field::new(name, self.arrow_type(), nullable);
        match self.semantic() {
            Some(tag) => {
                field.with_metadata(HashMap::from([(SEMANTIC_KEY.to_owned(), tag.to_owned())]))
            }
            None => field,
        }
    }
}

fn geometry_fields() -> Fields {
    Fields::from(vec![
        Field::new("wkb", DataType::Binary, true),
        Field::new("srid", DataType::Int32, true),
    ])
}

fn point_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
        Field::new("wkb", DataType::Binary, true),
        Field::new("srid", DataType::Int32, true),
    ])
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: ColumnType, nullable: bool) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable,
        }
    }

    pub fn arrow_field(&self) -> Field {
        self.ty.arrow_field(&self.name, self.nullable)
    }
}

/// A decoded table's columns and which of them form the key.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub table: TableId,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key columns, in key order.
    pub key: Vec<usize>,
    /// The row schema as Arrow. Every column is nullable in Arrow: deletes carry no row and
    /// TOAST-unchanged columns carry no value, whatever the database declares.
    pub arrow: SchemaRef,
}

impl TableSchema {
    pub fn new(table: TableId, columns: Vec<Column>, key: Vec<usize>) -> Self {
        let arrow = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| c.ty.arrow_field(&c.name, true))
                .collect::<Fields>(),
        ));
        TableSchema {
            table,
            columns,
            key,
            arrow,
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().map(|&i| &self.columns[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_decimals_use_decimal256_and_semantic_tags_survive() {
        let t = ColumnType::Decimal {
            precision: 65,
            scale: 30,
        };
        assert_eq!(t.arrow_type(), DataType::Decimal256(65, 30));
        let f = ColumnType::Json.arrow_field("doc", true);
        assert_eq!(
            f.metadata().get(SEMANTIC_KEY).map(String::as_str),
            Some("json")
        );
    }

    #[test]
    fn signed_times_are_tagged_durations() {
        let f = ColumnType::SignedTime(TimeUnit::Micros).arrow_field("t", true);
        assert_eq!(
            f.data_type(),
            &DataType::Duration(arrow_schema::TimeUnit::Microsecond)
        );
        assert_eq!(
            f.metadata().get(SEMANTIC_KEY).map(String::as_str),
            Some("signed_time")
        );
        assert_eq!(
            ColumnType::SignedTime(TimeUnit::Nanos).arrow_type(),
            DataType::Duration(arrow_schema::TimeUnit::Nanosecond)
        );
        // Elapsed-time durations stay untagged, times of day stay Time64.
        assert_eq!(ColumnType::Duration(TimeUnit::Micros).semantic(), None);
        assert_eq!(
            ColumnType::Time(TimeUnit::Micros).arrow_type(),
            DataType::Time64(arrow_schema::TimeUnit::Microsecond)
        );
    }

    #[test]
    fn table_id_round_trips() {
        let id = TableId::parse("inventory.products");
        assert_eq!(id, TableId::new("inventory", "products"));
        assert_eq!(id.to_string(), "inventory.products");
        assert_eq!(TableId::parse("solo").to_string(), "solo");
    }
}
