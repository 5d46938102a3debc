//! [`AvroEncoder`]: `output.format = "avro"` for the compacted-topic sink. Each table's key and
//! value get Avro record schemas derived from its output shape, registered under `<topic>-key`
//! and `<topic>-value` (TopicNameStrategy, what Tableflow and Flink's `avro-confluent` read)
//! before the first record that needs them; records are `0x00 + id (big-endian u32) + Avro
//! binary`. Deletes stay tombstones (null value) with an Avro key.
//!
//! **Schemas.** Namespace: the table's namespace and name, each dot-separated part made a valid
//! Avro name (`[A-Za-z_][A-Za-z0-9_]*`, other characters become `_`, a leading digit gets a `_`):
//! `inventory.products`; record names `Key` and `Value` (Debezium's convention). Field names are
//! the output column names made valid the same way (two columns that become the same name stop
//! the table). Key columns are non-null; every other value column is `["null", T]` with default
//! null (the output shape does not carry the database's nullability, and a TOAST value left out
//! under `emit_without_column` is null). Types, per [`ColumnType`] ([`field_type`]):
//!
//! | decant type | Avro |
//! |---|---|
//! | Boolean, Int8/16/32, Int64, Float32, Float64 | `boolean`, `int`, `long`, `float`, `double` |
//! | Decimal(p,s), 1 ≤ p ≤ 38, 0 ≤ s ≤ p | `bytes` + `decimal`(p,s) |
//! | Decimal beyond that, DecimalText, String, Xml, Enum | `string` (exact text) |
//! | Uuid | `string` + `uuid` |
//! | Binary | `bytes` |
//! | Date | `int` + `date` |
//! | Time µs | `long` + `time-micros` |
//! | Timestamp µs (no zone) | `long` + `local-timestamp-micros` (wall clock, not an instant) |
//! | TimestampTz µs | `long` + `timestamp-micros` (UTC) |
//! | ±infinity timestamps | the extreme longs `i64::MAX` / `i64::MIN` |
//! | Duration µs/ns, MySQL TIME (SignedTime) | `long` (µs or ns, as the column's unit) |
//! | Time/Timestamp/TimestampTz ns, ZonedTime | `string` (the canonical text: no Avro type keeps it exactly) |
//! | Json, Geometry, Point, List, Struct | `string` (the canonical JSON text, byte for byte) |
//!
//! Types kept as `string` or `long` whose meaning the Avro type does not carry are named in a
//! field attribute, `"decant.type"`: `json`, `geometry`, `point`, `list`, `struct`, `xml`,
//! `enum`, `decimal`, `zoned_time`, `time_nanos`, `timestamp_nanos`, `timestamp_tz_nanos`,
//! `duration_micros` / `_nanos`, `signed_time_micros` / `_nanos`.
//!
//! Zone-less timestamps are `local-timestamp-micros`: Flink maps it to `TIMESTAMP(6)` and
//! Tableflow to a timestamp without time zone, which is what the column is; `timestamp-micros`
//! would claim an instant the database never recorded.
//!
//! **Values.** The loop hands the sink each value as canonical JSON text (`Change::value`);
//! this first version converts that text per column type. It is exact: decimals from their
//! text (never through f64), timestamps and times at full precision, floats from their
//! shortest round-trip text, JSON documents copied as written.
//!
//! **Registration, evolution, refusals and outages** are [`RegisteredEncoder`]'s, shared with
//! the other registry formats: a changed shape registers its schemas before the first record
//! that carries it (an added column is nullable with default null, so BACKWARD-compatible).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decant_decode::{convert, decimal, temporal};
use decant_model::sink::{OutputShape, SinkError};
use decant_model::{ColumnType, Disposition, TableId, TimeUnit};
use serde_json::value::RawValue;

use crate::registered::{
    Derived, DerivedSchema, Previous, RegisteredEncoder, ShapeField, SinkOrRefusal, WireFormat,
    shape_fields,
};
use crate::types::Schema;

/// How one field's canonical JSON becomes an Avro value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    /// Exact decimal at this scale, as `bytes` + `decimal`.
    Decimal(i32),
    /// A JSON string's contents (or any other JSON value's text).
    Text,
    /// The JSON value's own text (documents, geometry, lists, structs).
    JsonText,
    Uuid,
    /// Base64 text → bytes.
    Bytes,
    Date,
    TimeMicros,
    /// Local (`false`) or UTC (`true`) timestamp in µs.
    TimestampMicros(bool),
    /// A signed clock reading (`-838:59:59.000000`) → a count of 1/per_second seconds.
    SignedTime(u64),
}

/// The Avro type of a column (without the null union) and how its values are converted.
fn field_type(ty: &ColumnType) -> (serde_json::Value, Enc) {
    use serde_json::json;
    match ty {
        ColumnType::Boolean => (json!("boolean"), Enc::Boolean),
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 => (json!("int"), Enc::Int),
        ColumnType::Int64 => (json!("long"), Enc::Long),
        ColumnType::Float32 => (json!("float"), Enc::Float),
        ColumnType::Float64 => (json!("double"), Enc::Double),
        ColumnType::Decimal { precision, scale } if bounded_decimal(*precision, *scale) => (
            json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}),
            Enc::Decimal(i32::from(*scale)),
        ),
        ColumnType::Decimal { .. }
        | ColumnType::DecimalText
        | ColumnType::String
        | ColumnType::Xml
        | ColumnType::Enum
        | ColumnType::ZonedTime
        | ColumnType::Time(TimeUnit::Nanos)
        | ColumnType::Timestamp(TimeUnit::Nanos)
        | ColumnType::TimestampTz(TimeUnit::Nanos) => (json!("string"), Enc::Text),
        ColumnType::Json
        | ColumnType::Geometry
        | ColumnType::Point
        | ColumnType::List(_)
        | ColumnType::Struct(_) => (json!("string"), Enc::JsonText),
        ColumnType::Uuid => (json!({"type": "string", "logicalType": "uuid"}), Enc::Uuid),
        ColumnType::Binary => (json!("bytes"), Enc::Bytes),
        ColumnType::Date => (json!({"type": "int", "logicalType": "date"}), Enc::Date),
        ColumnType::Time(TimeUnit::Micros) => (
            json!({"type": "long", "logicalType": "time-micros"}),
            Enc::TimeMicros,
        ),
        ColumnType::Timestamp(TimeUnit::Micros) => (
            json!({"type": "long", "logicalType": "local-timestamp-micros"}),
            Enc::TimestampMicros(false),
        ),
        ColumnType::TimestampTz(TimeUnit::Micros) => (
            json!({"type": "long", "logicalType": "timestamp-micros"}),
            Enc::TimestampMicros(true),
        ),
        ColumnType::Duration(_) => (json!("long"), Enc::Long),
        ColumnType::SignedTime(u) => (
            json!("long"),
            Enc::SignedTime(match u {
                TimeUnit::Micros => temporal::MICROS_PER_SECOND,
                TimeUnit::Nanos => temporal::NANOS_PER_SECOND,
            }),
        ),
    }
}

/// Whether a decimal's precision and scale fit a fixed-scale decimal type that Tableflow and
/// Flink map to `DECIMAL(p,s)` (1 ≤ p ≤ 38, 0 ≤ s ≤ p); wider ones are kept as exact text.
pub(crate) fn bounded_decimal(precision: u8, scale: i8) -> bool {
    (1..=38).contains(&precision) && scale >= 0 && scale as u8 <= precision
}

/// A field attribute `decant.type` naming what an Avro type alone does not say (the text of a
/// JSON document, a decimal kept as text, a span's unit), for readers that want it back; Avro
/// readers ignore attributes they do not know.
pub(crate) fn semantic_tag(ty: &ColumnType) -> Option<&'static str> {
    Some(match ty {
        ColumnType::Json => "json",
        ColumnType::Geometry => "geometry",
        ColumnType::Point => "point",
        ColumnType::List(_) => "list",
        ColumnType::Struct(_) => "struct",
        ColumnType::Xml => "xml",
        ColumnType::Enum => "enum",
        ColumnType::DecimalText => "decimal",
        ColumnType::Decimal { .. } if field_type(ty).1 == Enc::Text => "decimal",
        ColumnType::ZonedTime => "zoned_time",
        ColumnType::Time(TimeUnit::Nanos) => "time_nanos",
        ColumnType::Timestamp(TimeUnit::Nanos) => "timestamp_nanos",
        ColumnType::TimestampTz(TimeUnit::Nanos) => "timestamp_tz_nanos",
        ColumnType::Duration(TimeUnit::Micros) => "duration_micros",
        ColumnType::Duration(TimeUnit::Nanos) => "duration_nanos",
        ColumnType::SignedTime(TimeUnit::Micros) => "signed_time_micros",
        ColumnType::SignedTime(TimeUnit::Nanos) => "signed_time_nanos",
        _ => return None,
    })
}

/// What [`field_type`] gives, read back from a registered schema (a truncate's keys when this
/// process has not seen the table's shape yet).
fn enc_of_avro(schema: &apache_avro::Schema) -> Option<Enc> {
    use apache_avro::Schema as S;
    Some(match schema {
        S::Boolean => Enc::Boolean,
        S::Int => Enc::Int,
        S::Long => Enc::Long,
        S::Float => Enc::Float,
        S::Double => Enc::Double,
        S::Decimal(d) => Enc::Decimal(i32::try_from(d.scale).ok()?),
        S::String => Enc::Text,
        S::Uuid => Enc::Uuid,
        S::Bytes => Enc::Bytes,
        S::Date => Enc::Date,
        S::TimeMicros => Enc::TimeMicros,
        S::TimestampMicros => Enc::TimestampMicros(true),
        S::LocalTimestampMicros => Enc::TimestampMicros(false),
        _ => return None,
    })
}

/// `[A-Za-z_][A-Za-z0-9_]*`: other characters become `_`, a leading digit gets a `_`.
pub fn avro_name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The schemas' namespace: the table's namespace parts and name, each a valid Avro name.
pub fn avro_namespace(table: &TableId) -> String {
    table
        .namespace
        .split('.')
        .filter(|p| !p.is_empty())
        .chain(std::iter::once(table.name.as_str()))
        .map(avro_name)
        .collect::<Vec<_>>()
        .join(".")
}

/// One record field: where its value is in the JSON object, its Avro name, its conversion.
#[derive(Debug, Clone)]
struct Field {
    json_name: String,
    avro_name: String,
    enc: Enc,
    nullable: bool,
    /// [`semantic_tag`], written as the field's `decant.type` attribute.
    tag: Option<&'static str>,
}

/// How to fill a registered record schema: its fields in order.
pub struct Codec {
    fields: Vec<Field>,
}

/// A derived record schema's Avro text and its fields.
type RecordSchema = (String, Vec<Field>);

/// Derives the key and value record schemas of `shape`; `Err` says why the shape cannot be
/// written as Avro (two columns with the same Avro name).
fn derive(table: &TableId, shape: &OutputShape) -> Result<(RecordSchema, RecordSchema), String> {
    let namespace = avro_namespace(table);
    let (value_shape, key_shape) = shape_fields(shape)?;
    let fields = |shape: Vec<ShapeField<'_>>| -> (Vec<Field>, Vec<serde_json::Value>) {
        shape
            .into_iter()
            .map(|c| {
                let (avro_type, enc) = field_type(c.ty);
                let field = Field {
                    json_name: c.name.to_owned(),
                    avro_name: avro_name(c.name),
                    enc,
                    nullable: c.nullable,
                    tag: semantic_tag(c.ty),
                };
                let json = field_json(&field, avro_type);
                (field, json)
            })
            .unzip()
    };
    let (value_fields, value_json) = fields(value_shape);
    let (key_fields, key_json) = fields(key_shape);
    for fields in [&value_fields, &key_fields] {
        let mut seen = std::collections::HashSet::new();
        for f in fields {
            if !seen.insert(f.avro_name.as_str()) {
                return Err(format!(
                    "two output columns become the Avro field name {:?} (rename one with tables.\"…\".rename)",
                    f.avro_name
                ));
            }
        }
    }
    let record = |name: &str, fields: Vec<serde_json::Value>| {
        serde_json::json!({"type": "record", "name": name, "namespace": namespace, "fields": fields})
            .to_string()
    };
    Ok((
        (record("Key", key_json), key_fields),
        (record("Value", value_json), value_fields),
    ))
}

fn field_json(f: &Field, avro_type: serde_json::Value) -> serde_json::Value {
    let mut field = if f.nullable {
        serde_json::json!({"name": f.avro_name, "type": ["null", avro_type], "default": null})
    } else {
        serde_json::json!({"name": f.avro_name, "type": avro_type})
    };
    if let Some(tag) = f.tag {
        field["decant.type"] = serde_json::Value::from(tag);
    }
    field
}

/// Avro as a [`WireFormat`]: record schemas `<namespace>.Key` / `<namespace>.Value`, payloads
/// in Avro binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct AvroFormat;

/// The Avro [`decant_model::RecordEncoder`] (see the module documentation).
pub type AvroEncoder = RegisteredEncoder<AvroFormat>;

/// `text` parsed for encoding; a derived schema that does not parse is decant's own fault.
fn parse(subject_or_table: &str, text: &str) -> Result<apache_avro::Schema, SinkError> {
    apache_avro::Schema::parse_str(text).map_err(|e| {
        SinkError::new(
            format!("the Avro schema of {subject_or_table} does not parse"),
            Disposition::Fatal,
            e,
        )
    })
}

impl WireFormat for AvroFormat {
    const NAME: &'static str = "avro";
    type Codec = Codec;

    fn record_names(&self, table: &TableId) -> (String, String) {
        let namespace = avro_namespace(table);
        (format!("{namespace}.Key"), format!("{namespace}.Value"))
    }

    fn derive(
        &self,
        table: &TableId,
        shape: &OutputShape,
        _previous: &Previous,
    ) -> Result<Derived<Codec>, SinkOrRefusal> {
        let ((key_text, key_fields), (value_text, value_fields)) =
            derive(table, shape).map_err(SinkOrRefusal::Refused)?;
        let label = table.to_string();
        let schema =
            |text: String, fields: Vec<Field>| -> Result<DerivedSchema<Codec>, SinkOrRefusal> {
                // Registered only if `apache_avro` (like every Avro reader) takes it.
                parse(&label, &text).map_err(SinkOrRefusal::Sink)?;
                Ok(DerivedSchema {
                    codec: Codec { fields },
                    schema: Schema::avro(text),
                })
            };
        Ok(Derived {
            key: schema(key_text, key_fields)?,
            value: schema(value_text, value_fields)?,
        })
    }

    fn registered_key(&self, subject: &str, schema: &Schema) -> Result<Codec, SinkError> {
        let parsed = parse(subject, &schema.text)?;
        let apache_avro::Schema::Record(record) = &parsed else {
            return Err(SinkError::fatal(format!(
                "the schema registered under {subject} is not a record"
            )));
        };
        let mut fields = Vec::new();
        for f in &record.fields {
            let enc = enc_of_avro(&f.schema).ok_or_else(|| {
                SinkError::fatal(format!(
                    "the schema registered under {subject}: field {} has a type decant does not write",
                    f.name
                ))
            })?;
            fields.push(Field {
                json_name: f.name.clone(),
                avro_name: f.name.clone(),
                enc,
                nullable: false,
                tag: None,
            });
        }
        Ok(Codec { fields })
    }

    fn encode_payload(
        &self,
        codec: &Codec,
        json: &str,
        null_document: &dyn Fn(&str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        write_record(codec, json, null_document, out)
    }
}

/// A JSON object's members in their order, names unescaped only when they must be.
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of the JSON object `json`.
    pub(crate) fn parse(json: &'a str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))
    }

    /// Member `name`'s raw value. `next` is where the previous lookup left off: the loop
    /// renders columns in the shape's order, so the next member is usually the one asked for.
    pub(crate) fn get(&self, name: &str, next: &mut usize) -> Option<&'a RawValue> {
        let at = match self.0.get(*next) {
            Some((k, _)) if k == name => *next,
            _ => self.0.iter().position(|(k, _)| k == name)?,
        };
        *next = at + 1;
        Some(self.0[at].1)
    }

    /// Member `name`, else the member whose name [`avro_name`] makes `schema_name`: a key
    /// schema read back from the registry knows only the names it was registered with.
    pub(crate) fn get_or_schema_name(
        &self,
        name: &str,
        schema_name: &str,
        next: &mut usize,
    ) -> Option<&'a RawValue> {
        self.get(name, next).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| avro_name(k) == schema_name)
                .map(|(_, v)| *v)
        })
    }
}

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(entry) = m.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The Avro binary of the record `codec` describes, from the JSON object `json`, appended to
/// `out`. Written here rather than through `apache_avro::to_avro_datum`, which resolves the
/// schema's names and validates the value on every call and needs a `Value` tree per record:
/// the encode bench measured that at about 24 µs per orders record, more than the rest of the
/// pipeline. The records decant derives are flat (primitives, logical types, `["null", T]`),
/// so their binary form is a few lines; the tests read every type back with `apache_avro`.
fn write_record(
    codec: &Codec,
    json: &str,
    null_document: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let members = Members::parse(json)?;
    let mut next = 0;
    for f in &codec.fields {
        let raw = members
            .get_or_schema_name(&f.json_name, &f.avro_name, &mut next)
            .map_or("null", RawValue::get);
        // A JSON `null` document is not SQL NULL: its text, `null`, is the string written.
        let sql_null = raw == "null" && !(f.enc == Enc::JsonText && null_document(&f.json_name));
        if sql_null {
            if !f.nullable {
                return Err(format!(
                    "column {}: null in a non-null (key) field",
                    f.json_name
                ));
            }
            out.push(0); // union branch 0: null
            continue;
        }
        if f.nullable {
            out.push(2); // union branch 1 (zigzag): the type
        }
        write_value(f.enc, raw, out).ok_or_else(|| {
            format!(
                "column {}: {} is not a {:?} value",
                f.json_name,
                convert::excerpt(raw),
                f.enc
            )
        })?;
    }
    Ok(())
}

/// Avro's `int` / `long`: zigzag, then base-128 varint.
fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro's `bytes` / `string`: the length, then the bytes.
fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// The text of a JSON string literal; `None` for any other JSON value.
pub(crate) fn json_string(raw: &str) -> Option<String> {
    if raw.starts_with('"') {
        serde_json::from_str(raw).ok()
    } else {
        None
    }
}

/// A float from its canonical JSON: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(crate) fn float_text(raw: &str) -> Option<f64> {
    match json_string(raw).as_deref() {
        Some("NaN") => Some(f64::NAN),
        Some("Infinity") => Some(f64::INFINITY),
        Some("-Infinity") => Some(f64::NEG_INFINITY),
        Some(_) => None,
        None => raw.parse().ok(),
    }
}

/// One non-null canonical JSON value in the Avro binary of `enc`, appended to `out`; `None`
/// when it is not such a value.
fn write_value(enc: Enc, raw: &str, out: &mut Vec<u8>) -> Option<()> {
    match enc {
        Enc::Boolean => out.push(match raw {
            "true" => 1,
            "false" => 0,
            _ => return None,
        }),
        Enc::Int => write_long(i64::from(raw.parse::<i32>().ok()?), out),
        Enc::Long => write_long(raw.parse().ok()?, out),
        // The shortest text that round-trips an f32 parses back to the same f32.
        Enc::Float => out.extend_from_slice(
            &match json_string(raw).as_deref() {
                Some("NaN") => f32::NAN,
                Some("Infinity") => f32::INFINITY,
                Some("-Infinity") => f32::NEG_INFINITY,
                Some(_) => return None,
                None => raw.parse::<f32>().ok()?,
            }
            .to_le_bytes(),
        ),
        Enc::Double => out.extend_from_slice(&float_text(raw)?.to_le_bytes()),
        Enc::Decimal(scale) => write_bytes(&decimal_at_scale(raw, scale)?.0, out),
        Enc::Text => match json_string(raw) {
            Some(text) => write_bytes(text.as_bytes(), out),
            None => write_bytes(raw.as_bytes(), out),
        },
        Enc::JsonText => write_bytes(raw.as_bytes(), out),
        Enc::Uuid => {
            let text = json_string(raw)?;
            convert::parse_uuid(&text)?;
            write_bytes(text.as_bytes(), out);
        }
        Enc::Bytes => write_bytes(&STANDARD.decode(json_string(raw)?).ok()?, out),
        Enc::Date => write_long(
            i64::from(i32::try_from(temporal::parse_date(&json_string(raw)?)?).ok()?),
            out,
        ),
        Enc::TimeMicros => {
            let nanos = temporal::parse_time(&json_string(raw)?)?;
            if nanos % 1000 != 0 {
                return None;
            }
            write_long(nanos / 1000, out);
        }
        Enc::TimestampMicros(zoned) => {
            let text = json_string(raw)?;
            let micros = match text.as_str() {
                "infinity" => temporal::INFINITY,
                "-infinity" => temporal::NEG_INFINITY,
                _ => {
                    let nanos = if zoned {
                        temporal::parse_offset_datetime(&text)?
                    } else {
                        temporal::parse_local_datetime(&text)?
                    };
                    if nanos % 1000 != 0 {
                        return None;
                    }
                    i64::try_from(nanos / 1000).ok()?
                }
            };
            write_long(micros, out);
        }
        Enc::SignedTime(per_second) => {
            write_long(temporal::parse_clock(&json_string(raw)?, per_second)?, out)
        }
    }
    Some(())
}

/// A decimal's canonical JSON (its exact text) at `scale`: the unscaled value as minimal
/// big-endian two's complement, and its count of digits (Java's `BigDecimal.precision`, at
/// least 1). `None` when it is not a decimal or not exact at that scale.
pub(crate) fn decimal_at_scale(raw: &str, scale: i32) -> Option<(Vec<u8>, u32)> {
    let unscaled = decimal::parse_text(&json_string(raw)?)?.rescale(scale)?;
    let digits = unscaled.to_string().trim_start_matches('-').len() as u32;
    Some((minimal_twos_complement(&unscaled.to_be_bytes()), digits))
}

/// Big-endian two's complement without redundant sign bytes (what Java's
/// `BigInteger.toByteArray` writes and Avro decimal readers expect; at least one byte).
pub(crate) fn minimal_twos_complement(bytes: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

#[cfg(test)]
pub(crate) mod tests;
