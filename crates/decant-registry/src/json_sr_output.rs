//! [`JsonSrEncoder`]: `output.format = "json_sr"` for the compacted-topic sink. Each table's key
//! and value get JSON Schemas (draft-07) derived from its output shape, written in Kafka
//! Connect's JSON Schema conventions (what Confluent's `JsonSchemaConverter` registers), so that
//! Confluent's JSON Schema deserializers, Flink's `json-registry` / Tableflow and decant's own
//! JSON_SR decoder ([`decant_decode::json_schema`]) read typed columns back. Records are
//! `0x00 + id (big-endian u32) + UTF-8 JSON`; deletes stay tombstones (null value) with a
//! JSON_SR key.
//!
//! Map: [`field_type`] (column type → JSON Schema and [`Enc`]), [`derive`] (record schemas),
//! [`enc_of_schema`] (a registered key schema read back, for a truncate after a restart),
//! [`JsonSchemaFormat`] (the [`WireFormat`]) and [`convert_value`] (canonical JSON → the value
//! the schema promises).
//!
//! **Schemas.** `{"type":"object","title":"<namespace>.Value",…}` (`Key` for the key; the
//! namespace as Avro's, [`avro_namespace`]); properties named by the output columns as they
//! are (JSON allows any name), ordered by `connect.index`. Key columns are plain required
//! properties; every other value column is `{"oneOf":[{"type":"null"},T],"default":null}`.
//! Records are closed (`"additionalProperties": false`): under Confluent's JSON Schema rules an
//! optional property added to a closed content model is BACKWARD compatible, while any property
//! added to an open one is not — so `ALTER TABLE … ADD COLUMN` registers a compatible version.
//! (The price: a dropped column is a removed property, which BACKWARD refuses; the table stops
//! with the registry's reason, as with any refusal.) Types, per [`ColumnType`]:
//!
//! | decant type | JSON Schema (`type`, `connect.type`, `title`) | value | Tableflow / Flink |
//! |---|---|---|---|
//! | Boolean | `boolean` | `true` | BOOLEAN |
//! | Int8/16/32/64 | `integer`, `int8`…`int64` | number | TINYINT … BIGINT |
//! | Float32/64 | `number`, `float32`/`float64` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` as Jackson (so Connect) writes them | FLOAT / DOUBLE |
//! | Decimal(p,s), 1 ≤ p ≤ 38, 0 ≤ s ≤ p | `number`, `bytes`, Connect `Decimal` (`scale`, `connect.decimal.precision`) | number with exactly s fraction digits (Connect's `decimal.format=NUMERIC`) | DECIMAL(p,s) |
//! | Decimal beyond that, DecimalText | `string` (`decant.type` `decimal`) | exact text | STRING |
//! | String; Xml, Enum, Uuid | `string`; title `io.debezium.data.Xml` / `.Enum` / `.Uuid` | text | STRING |
//! | Binary | `string`, `bytes` | base64 | BYTES |
//! | Date | `integer`, `int32`, Connect `Date` | days since 1970-01-01 | DATE |
//! | Time µs / ns | `integer`, `int64`, `io.debezium.time.MicroTime` / `NanoTime` | µs / ns of the day | BIGINT |
//! | Timestamp µs (no zone) | `integer`, `int64`, `io.debezium.time.MicroTimestamp` | µs since the epoch of the wall clock; ±infinity as `i64::MAX` / `i64::MIN` | BIGINT |
//! | TimestampTz µs | `string`, `io.debezium.time.ZonedTimestamp` | ISO-8601 UTC text (`…Z`, or `infinity`) | STRING |
//! | ZonedTime | `string`, `io.debezium.time.ZonedTime` | ISO-8601 text | STRING |
//! | Duration µs / ns | `integer`, `int64`, `io.debezium.time.MicroDuration` / `NanoDuration` | count | BIGINT |
//! | MySQL TIME (SignedTime) µs / ns | `integer`, `int64` (`decant.type` `signed_time_…`) | signed count | BIGINT |
//! | Timestamp / TimestampTz ns | `string` (`decant.type` `timestamp_nanos` / `timestamp_tz_nanos`) | canonical text | STRING |
//! | Json | `string`, `io.debezium.data.Json` | the document's text, byte for byte | STRING |
//! | Geometry, Point, List, Struct | `string` (`decant.type` `geometry` …) | the canonical JSON text | STRING |
//!
//! Why not Connect's `Time` and `Timestamp`: they are milliseconds (Flink and Tableflow map them
//! to TIME(3) / TIMESTAMP_LTZ(3)), and decant's columns are µs or ns — writing them would drop
//! digits. Debezium's names keep every digit, are what a Debezium JSON_SR topic already carries,
//! and decant's decoder reads them back as the same column types; Flink and Tableflow see the
//! counts as BIGINT (as they see Avro's `time-micros`) and the zoned texts as STRING. A
//! timestamp with zone is kept as text rather than a count because no Connect or Debezium
//! logical type is a µs instant. Decimals are written as JSON numbers with their exact digits,
//! never through f64 (Connect's readers take a number or base64 bytes; a number is what the
//! schema's `"type":"number"` validates). Non-finite floats cannot be JSON numbers: they are
//! the strings Jackson writes, which a strictly validating reader refuses (no Connect type says
//! "number or one of three strings"); readers in Connect's convention read them back.
//! `decant.type` (as in the Avro output) names what a type alone does not say; JSON Schema
//! readers ignore keywords they do not know.
//!
//! **Registration, evolution, refusals and outages** are [`RegisteredEncoder`]'s, shared with
//! the other registry formats.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decant_decode::{convert, decimal, temporal};
use decant_model::sink::{OutputShape, SinkError};
use decant_model::{ColumnType, TableId, TimeUnit};
use serde_json::value::RawValue;
use serde_json::{Value as Json, json};

use crate::avro_output::{
    Members, avro_namespace, bounded_decimal, float_text, json_string, semantic_tag,
};
use crate::registered::{
    Derived, DerivedSchema, Previous, RegisteredEncoder, ShapeField, SinkOrRefusal, WireFormat,
    shape_fields,
};
use crate::types::{Schema, SchemaType};

/// Connect's logical and Debezium's semantic type names used here.
const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
const DATE: &str = "org.apache.kafka.connect.data.Date";
const MICRO_TIME: &str = "io.debezium.time.MicroTime";
const NANO_TIME: &str = "io.debezium.time.NanoTime";
const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
const ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
const ZONED_TIME: &str = "io.debezium.time.ZonedTime";
const MICRO_DURATION: &str = "io.debezium.time.MicroDuration";
const NANO_DURATION: &str = "io.debezium.time.NanoDuration";
const JSON_DOC: &str = "io.debezium.data.Json";
const XML: &str = "io.debezium.data.Xml";
const ENUM: &str = "io.debezium.data.Enum";
const UUID: &str = "io.debezium.data.Uuid";

/// `decant.type` values whose string holds JSON text.
const JSON_TAGS: [&str; 5] = ["json", "geometry", "point", "list", "struct"];

/// How one field's canonical JSON becomes the JSON value its schema promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Boolean,
    /// An integer (Int8 … Int64, durations), copied.
    Integer,
    /// A float's number text, or one of Jackson's non-finite strings, copied.
    Float,
    /// Exact decimal text → a JSON number at this scale.
    Decimal(i32),
    /// A JSON string copied; any other JSON value's text as a string.
    Text,
    /// The JSON value's own text, as a string.
    JsonText,
    Uuid,
    /// Base64 text, checked and copied.
    Bytes,
    /// `YYYY-MM-DD` → days since the epoch.
    Date,
    /// `HH:MM:SS.f` → a count of 1/n seconds of the day (n = 10⁶ or 10⁹).
    Time(u64),
    /// A local date-time → µs since the epoch of that wall clock; ±infinity as the extremes.
    TimestampMicros,
    /// An ISO offset date-time (or ±infinity), checked and copied.
    ZonedTimestamp,
    /// An ISO offset time, checked and copied.
    ZonedTime,
    /// A signed clock reading (`-838:59:59.000000`) → a count of 1/n seconds.
    SignedTime(u64),
}

fn per_second(unit: &TimeUnit) -> u64 {
    match unit {
        TimeUnit::Micros => temporal::MICROS_PER_SECOND,
        TimeUnit::Nanos => temporal::NANOS_PER_SECOND,
    }
}

/// `{"type": json_type, "connect.type": connect_type}`, with `title` and Connect's version 1
/// when a logical or semantic type names it (Connect and Debezium version theirs 1).
fn typed(json_type: &str, connect_type: Option<&str>, title: Option<&str>) -> Json {
    let mut schema = json!({ "type": json_type });
    if let Some(c) = connect_type {
        schema["connect.type"] = Json::from(c);
    }
    if let Some(t) = title {
        schema["title"] = Json::from(t);
        schema["connect.version"] = Json::from(1);
    }
    schema
}

/// The JSON Schema of a column (without the null alternative) and how its values are written.
fn field_type(ty: &ColumnType) -> (Json, Enc) {
    use ColumnType as C;
    let int64 = |title| typed("integer", Some("int64"), title);
    let string = |title| typed("string", None, title);
    match ty {
        C::Boolean => (typed("boolean", None, None), Enc::Boolean),
        C::Int8 => (typed("integer", Some("int8"), None), Enc::Integer),
        C::Int16 => (typed("integer", Some("int16"), None), Enc::Integer),
        C::Int32 => (typed("integer", Some("int32"), None), Enc::Integer),
        C::Int64 => (int64(None), Enc::Integer),
        C::Float32 => (typed("number", Some("float32"), None), Enc::Float),
        C::Float64 => (typed("number", Some("float64"), None), Enc::Float),
        C::Decimal { precision, scale } if bounded_decimal(*precision, *scale) => {
            let mut schema = typed("number", Some("bytes"), Some(DECIMAL));
            schema["connect.parameters"] = json!({
                "scale": scale.to_string(),
                "connect.decimal.precision": precision.to_string(),
            });
            (schema, Enc::Decimal(i32::from(*scale)))
        }
        C::Decimal { .. }
        | C::DecimalText
        | C::String
        | C::Timestamp(TimeUnit::Nanos)
        | C::TimestampTz(TimeUnit::Nanos) => (string(None), Enc::Text),
        C::Xml => (string(Some(XML)), Enc::Text),
        C::Enum => (string(Some(ENUM)), Enc::Text),
        C::Uuid => (string(Some(UUID)), Enc::Uuid),
        C::Json => (string(Some(JSON_DOC)), Enc::JsonText),
        C::Geometry | C::Point | C::List(_) | C::Struct(_) => (string(None), Enc::JsonText),
        C::Binary => (typed("string", Some("bytes"), None), Enc::Bytes),
        C::Date => (typed("integer", Some("int32"), Some(DATE)), Enc::Date),
        C::Time(unit) => {
            let title = match unit {
                TimeUnit::Micros => MICRO_TIME,
                TimeUnit::Nanos => NANO_TIME,
            };
            (int64(Some(title)), Enc::Time(per_second(unit)))
        }
        C::Timestamp(TimeUnit::Micros) => (int64(Some(MICRO_TIMESTAMP)), Enc::TimestampMicros),
        C::TimestampTz(TimeUnit::Micros) => (string(Some(ZONED_TIMESTAMP)), Enc::ZonedTimestamp),
        C::ZonedTime => (string(Some(ZONED_TIME)), Enc::ZonedTime),
        C::Duration(unit) => {
            let title = match unit {
                TimeUnit::Micros => MICRO_DURATION,
                TimeUnit::Nanos => NANO_DURATION,
            };
            (int64(Some(title)), Enc::Integer)
        }
        C::SignedTime(unit) => (int64(None), Enc::SignedTime(per_second(unit))),
    }
}

/// The `decant.type` of a column whose schema's title does not already say what it is.
fn tag(ty: &ColumnType, schema: &Json) -> Option<&'static str> {
    if schema.get("title").is_some() {
        None
    } else {
        semantic_tag(ty)
    }
}

/// What [`field_type`] gives, read back from a registered field schema (a truncate's keys when
/// this process has not seen the table's shape yet); `None` for a schema decant does not write.
fn enc_of_schema(schema: &Json) -> Option<Enc> {
    // An optional field: the non-null alternative.
    let schema = match schema.get("oneOf").and_then(Json::as_array) {
        Some(branches) => branches
            .iter()
            .find(|b| b.get("type").and_then(Json::as_str) != Some("null"))?,
        None => schema,
    };
    let text = |key: &str| schema.get(key).and_then(Json::as_str);
    if let Some(title) = text("title") {
        return Some(match title {
            DECIMAL => {
                let scale = schema.get("connect.parameters")?.get("scale")?.as_str()?;
                Enc::Decimal(scale.parse().ok()?)
            }
            DATE => Enc::Date,
            MICRO_TIME => Enc::Time(temporal::MICROS_PER_SECOND),
            NANO_TIME => Enc::Time(temporal::NANOS_PER_SECOND),
            MICRO_TIMESTAMP => Enc::TimestampMicros,
            ZONED_TIMESTAMP => Enc::ZonedTimestamp,
            ZONED_TIME => Enc::ZonedTime,
            MICRO_DURATION | NANO_DURATION => Enc::Integer,
            JSON_DOC => Enc::JsonText,
            UUID => Enc::Uuid,
            XML | ENUM => Enc::Text,
            _ => return None,
        });
    }
    match text("decant.type") {
        Some("signed_time_micros") => return Some(Enc::SignedTime(temporal::MICROS_PER_SECOND)),
        Some("signed_time_nanos") => return Some(Enc::SignedTime(temporal::NANOS_PER_SECOND)),
        Some(t) if JSON_TAGS.contains(&t) => return Some(Enc::JsonText),
        _ => {}
    }
    Some(match (text("type")?, text("connect.type")) {
        ("boolean", None) => Enc::Boolean,
        ("integer", _) => Enc::Integer,
        ("number", Some("float32" | "float64")) => Enc::Float,
        ("string", Some("bytes")) => Enc::Bytes,
        ("string", None) => Enc::Text,
        _ => return None,
    })
}

/// One record property: its name (the output column's), its conversion, whether it may be null.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    enc: Enc,
    nullable: bool,
}

/// How to fill one registered record schema.
pub struct Codec {
    fields: Vec<Field>,
}

/// The record schema `title` of `fields` (Connect's struct form, closed) and its fields.
fn record(title: &str, shape: Vec<ShapeField<'_>>) -> (Json, Vec<Field>) {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    let mut fields = Vec::with_capacity(shape.len());
    for (index, c) in shape.into_iter().enumerate() {
        let (mut schema, enc) = field_type(c.ty);
        if let Some(t) = tag(c.ty, &schema) {
            schema["decant.type"] = Json::from(t);
        }
        // Connect's placement: `connect.index` on the field's outermost schema.
        let property = if c.nullable {
            json!({"oneOf": [{"type": "null"}, schema], "default": null, "connect.index": index})
        } else {
            required.push(Json::from(c.name));
            schema["connect.index"] = Json::from(index);
            schema
        };
        properties.insert(c.name.to_owned(), property);
        fields.push(Field {
            name: c.name.to_owned(),
            enc,
            nullable: c.nullable,
        });
    }
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    // Draft-04 readers refuse an empty `required`.
    if !required.is_empty() {
        schema["required"] = Json::Array(required);
    }
    (schema, fields)
}

/// A derived record schema's text and its fields.
type RecordSchema = (String, Vec<Field>);

/// The key and value record schemas of `shape`.
fn derive(table: &TableId, shape: &OutputShape) -> Result<(RecordSchema, RecordSchema), String> {
    let (key_title, value_title) = JsonSchemaFormat.record_names(table);
    let (value_shape, key_shape) = shape_fields(shape)?;
    let (key, key_fields) = record(&key_title, key_shape);
    let (value, value_fields) = record(&value_title, value_shape);
    Ok((
        (key.to_string(), key_fields),
        (value.to_string(), value_fields),
    ))
}

/// JSON Schema as a [`WireFormat`]: record schemas titled `<namespace>.Key` / `<namespace>.Value`,
/// payloads in UTF-8 JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSchemaFormat;

/// The JSON_SR [`decant_model::RecordEncoder`] (see the module documentation).
pub type JsonSrEncoder = RegisteredEncoder<JsonSchemaFormat>;

impl WireFormat for JsonSchemaFormat {
    const NAME: &'static str = "json_sr";
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
        let schema = |text: String, fields: Vec<Field>| DerivedSchema {
            schema: Schema::new(SchemaType::Json, text),
            codec: Codec { fields },
        };
        Ok(Derived {
            key: schema(key_text, key_fields),
            value: schema(value_text, value_fields),
        })
    }

    fn registered_key(&self, subject: &str, schema: &Schema) -> Result<Codec, SinkError> {
        let parsed: Json = serde_json::from_str(&schema.text).map_err(|e| {
            SinkError::fatal(format!(
                "the schema registered under {subject} is not JSON: {e}"
            ))
        })?;
        let Some(properties) = parsed.get("properties").and_then(Json::as_object) else {
            return Err(SinkError::fatal(format!(
                "the schema registered under {subject} is not an object schema with properties"
            )));
        };
        let mut fields = Vec::with_capacity(properties.len());
        for (position, (name, property)) in properties.iter().enumerate() {
            let enc = enc_of_schema(property).ok_or_else(|| {
                SinkError::fatal(format!(
                    "the schema registered under {subject}: property {name} has a type decant does not write"
                ))
            })?;
            let index = property
                .get("connect.index")
                .and_then(Json::as_u64)
                .unwrap_or(position as u64);
            fields.push((
                index,
                Field {
                    name: name.clone(),
                    enc,
                    nullable: false,
                },
            ));
        }
        fields.sort_by_key(|(index, _)| *index);
        Ok(Codec {
            fields: fields.into_iter().map(|(_, f)| f).collect(),
        })
    }

    fn encode_payload(
        &self,
        codec: &Codec,
        json: &str,
        null_document: &dyn Fn(&str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let members = Members::parse(json)?;
        let mut next = 0;
        out.push(b'{');
        for (i, f) in codec.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(&f.name, out);
            out.push(b':');
            // An absent column (a TOAST value left out) is null, written as such.
            let raw = members
                .get(&f.name, &mut next)
                .map_or("null", RawValue::get);
            // A JSON `null` document is not SQL NULL: its text, `null`, is the string written.
            let sql_null = raw == "null" && !(f.enc == Enc::JsonText && null_document(&f.name));
            if sql_null {
                if !f.nullable {
                    return Err(format!("column {}: null in a non-null (key) field", f.name));
                }
                out.extend_from_slice(b"null");
            } else if convert_value(f.enc, raw, out).is_none() {
                return Err(format!(
                    "column {}: {} is not a {:?} value",
                    f.name,
                    convert::excerpt(raw),
                    f.enc
                ));
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// `text` as a JSON string literal.
fn write_string(text: &str, out: &mut Vec<u8>) {
    // Serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `n` as a JSON number.
fn write_number(n: impl std::fmt::Display, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// One non-null canonical JSON value written as `enc` promises into `out`; `None` (with `out`
/// possibly partly written: the record is then abandoned) when it is not such a value.
fn convert_value(enc: Enc, raw: &str, out: &mut Vec<u8>) -> Option<()> {
    match enc {
        Enc::Boolean => {
            if raw != "true" && raw != "false" {
                return None;
            }
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::Integer => {
            raw.parse::<i64>().ok()?;
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::Float => {
            float_text(raw)?;
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::Decimal(scale) => {
            let unscaled = decimal::parse_text(&json_string(raw)?)?.rescale(scale)?;
            let mut text = String::new();
            decimal::format(unscaled, scale, &mut text);
            out.extend_from_slice(text.as_bytes());
        }
        Enc::Text => {
            if raw.starts_with('"') {
                out.extend_from_slice(raw.as_bytes());
            } else {
                write_string(raw, out);
            }
        }
        Enc::JsonText => write_string(raw, out),
        Enc::Uuid => {
            convert::parse_uuid(&json_string(raw)?)?;
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::Bytes => {
            STANDARD.decode(json_string(raw)?).ok()?;
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::Date => {
            let days = i32::try_from(temporal::parse_date(&json_string(raw)?)?).ok()?;
            write_number(days, out);
        }
        Enc::Time(per_second) => {
            let nanos = temporal::parse_time(&json_string(raw)?)?;
            let per_unit = (temporal::NANOS_PER_SECOND / per_second) as i64;
            if nanos % per_unit != 0 {
                return None;
            }
            write_number(nanos / per_unit, out);
        }
        Enc::TimestampMicros => {
            let micros = match json_string(raw)?.as_str() {
                "infinity" => temporal::INFINITY,
                "-infinity" => temporal::NEG_INFINITY,
                text => {
                    let nanos = temporal::parse_local_datetime(text)?;
                    if nanos % 1000 != 0 {
                        return None;
                    }
                    i64::try_from(nanos / 1000).ok()?
                }
            };
            write_number(micros, out);
        }
        Enc::ZonedTimestamp => {
            let text = json_string(raw)?;
            if text != "infinity" && text != "-infinity" {
                temporal::parse_offset_datetime(&text)?;
            }
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::ZonedTime => {
            temporal::parse_offset_time(&json_string(raw)?)?;
            out.extend_from_slice(raw.as_bytes());
        }
        Enc::SignedTime(per_second) => {
            write_number(temporal::parse_clock(&json_string(raw)?, per_second)?, out);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests;
