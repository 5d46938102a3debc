//! Confluent-framed Avro: writer schema → wire types (via the `connect.*` properties Debezium's
//! AvroConverter leaves), datum decoding with `apache-avro`, and Avro value → column builder.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use decant_model::{ControlEvent, SourcePosition, TableId};
use serde_json::Value as Json;

use crate::batch::ColBuilder;
use crate::convert::{Appended, ConvCtx, FieldError};
use crate::decimal;
use crate::error::DecodeErrorKind;
use crate::json_schema;
use crate::registry::{RegisteredSchema, SchemaFormat};
use crate::temporal;
use crate::wire::{self, SourceKind, Wire, WireField};

/// A parsed registered schema (Avro; JSON_SR carries its Connect translation).
pub struct Registered {
    pub format: SchemaFormat,
    schema: Option<apache_avro::Schema>,
    /// Row image fields when the schema is a Debezium envelope.
    pub row: Option<Arc<[WireField]>>,
    /// What records of this schema are when they are not data (heartbeat, transaction …).
    pub control: Option<ControlEvent>,
    /// A JSON_SR schema read as the Connect schema it stands for, translated once per id.
    pub json_schema: Option<json_schema::Translated>,
}

/// The parts of a decoded Avro envelope the decoder needs.
pub struct AvroEnvelope {
    pub op: Option<String>,
    pub before: Option<AvroValue>,
    pub after: Option<AvroValue>,
    pub source: Option<AvroValue>,
}

fn schema_err(id: u32, message: String) -> DecodeErrorKind {
    DecodeErrorKind::Registry {
        id,
        message,
        retriable: false,
    }
}

impl Registered {
    pub fn parse(
        s: RegisteredSchema,
        id: u32,
        binary_mode: Option<&str>,
    ) -> Result<Self, DecodeErrorKind> {
        if s.format != SchemaFormat::Avro {
            let translated = match s.format {
                SchemaFormat::Json => Some(json_schema::translate(&s.text).map_err(|e| {
                    DecodeErrorKind::Schema(format!("schema id {id} (JSON Schema): {e}"))
                })?),
                _ => None,
            };
            return Ok(Registered {
                format: s.format,
                schema: None,
                row: None,
                control: None,
                json_schema: translated,
            });
        }
        let schema = apache_avro::Schema::parse_str(&s.text)
            .map_err(|e| schema_err(id, format!("invalid Avro schema: {e}")))?;
        let node: Json = serde_json::from_str(&s.text)
            .map_err(|e| schema_err(id, format!("invalid Avro schema JSON: {e}")))?;
        let mut names = HashMap::new();
        let mut node = inline_refs(&node, &mut names, None);
        if let Some(mode) = binary_mode {
            tag_binary_mode(&mut node, mode);
        }
        let name = node.get("name").and_then(Json::as_str).unwrap_or("");
        let connect_name = node
            .get("connect.name")
            .and_then(Json::as_str)
            .unwrap_or(name);
        let control = if connect_name.ends_with("Heartbeat") {
            Some(ControlEvent::Heartbeat)
        } else if connect_name.ends_with("SchemaChangeValue") {
            Some(ControlEvent::SchemaChange { ddl: None })
        } else {
            None
        };
        let fields = node.get("fields").and_then(Json::as_array);
        // The connector (named by the `source` record) decides what some types mean.
        let source_kind = SourceKind::of_source_schema(
            fields
                .and_then(|fs| {
                    fs.iter()
                        .find(|f| f.get("name").and_then(Json::as_str) == Some("source"))
                })
                .and_then(|f| first_record(f.get("type")?))
                .and_then(wire::avro_full_name)
                .as_deref(),
        );
        let row = fields
            .and_then(|fields| {
                fields.iter().find(|f| {
                    matches!(
                        f.get("name").and_then(Json::as_str),
                        Some("before" | "after")
                    )
                })
            })
            .map(|f| -> Result<Arc<[WireField]>, DecodeErrorKind> {
                let record = first_record(f.get("type").unwrap_or(&Json::Null))
                    .ok_or_else(|| schema_err(id, "row image is not a record".into()))?;
                let fields = wire::avro_record_fields(record).map_err(|e| schema_err(id, e))?;
                Ok(source_kind.row_fields(fields).into())
            })
            .transpose()?;
        Ok(Registered {
            format: s.format,
            schema: Some(schema),
            row,
            control,
            json_schema: None,
        })
    }
}

/// The record definition inside a type node or a nullable union.
fn first_record(node: &Json) -> Option<&Json> {
    match node {
        Json::Array(branches) => branches.iter().find_map(first_record),
        Json::Object(o) if o.get("type").and_then(Json::as_str) == Some("record") => Some(node),
        _ => None,
    }
}

/// Replaces references to named types with their definitions, so every node is self-contained.
fn inline_refs(node: &Json, names: &mut HashMap<String, Json>, ns: Option<&str>) -> Json {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    match node {
        Json::String(s) if !PRIMITIVES.contains(&s.as_str()) => {
            let full = if s.contains('.') {
                s.clone()
            } else {
                ns.map(|n| format!("{n}.{s}")).unwrap_or_else(|| s.clone())
            };
            names
                .get(&full)
                .or_else(|| names.get(s))
                .cloned()
                .unwrap_or_else(|| node.clone())
        }
        Json::Array(items) => {
            Json::Array(items.iter().map(|i| inline_refs(i, names, ns)).collect())
        }
        Json::Object(o) => {
            let own_ns = o
                .get("namespace")
                .and_then(Json::as_str)
                .or(ns)
                .map(str::to_owned);
            let mut out = serde_json::Map::new();
            for (k, v) in o {
                let v = match k.as_str() {
                    "type" | "items" | "values" => inline_refs(v, names, own_ns.as_deref()),
                    "fields" => match v {
                        Json::Array(fs) => Json::Array(
                            fs.iter()
                                .map(|f| match f {
                                    Json::Object(fo) => {
                                        let mut fo = fo.clone();
                                        if let Some(t) = fo.get("type").cloned() {
                                            fo.insert(
                                                "type".into(),
                                                inline_refs(&t, names, own_ns.as_deref()),
                                            );
                                        }
                                        Json::Object(fo)
                                    }
                                    other => other.clone(),
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            let out = Json::Object(out);
            if let (Some(name), Some(t)) = (
                o.get("name").and_then(Json::as_str),
                o.get("type").and_then(Json::as_str),
            ) && matches!(t, "record" | "enum" | "fixed")
            {
                let full = match (&own_ns, name.contains('.')) {
                    (Some(n), false) => format!("{n}.{name}"),
                    _ => name.to_owned(),
                };
                names.insert(full, out.clone());
            }
            out
        }
        other => other.clone(),
    }
}

fn tag_binary_mode(node: &mut Json, mode: &str) {
    match node {
        Json::Object(o) => {
            if let Some(Json::Object(p)) = o.get_mut("connect.parameters") {
                p.insert("decant.binary.mode".into(), Json::String(mode.into()));
            }
            o.values_mut().for_each(|v| tag_binary_mode(v, mode));
        }
        Json::Array(a) => a.iter_mut().for_each(|v| tag_binary_mode(v, mode)),
        _ => {}
    }
}

pub fn decode_datum(reg: &Registered, bytes: &[u8], id: u32) -> Result<AvroValue, DecodeErrorKind> {
    let schema = reg
        .schema
        .as_ref()
        .ok_or_else(|| schema_err(id, "not an Avro schema".into()))?;
    let mut reader = bytes;
    let value = apache_avro::from_avro_datum(schema, &mut reader, None)
        .map_err(|e| DecodeErrorKind::Avro(format!("schema id {id}: {e}")))?;
    if !reader.is_empty() {
        return Err(DecodeErrorKind::Avro(format!(
            "schema id {id}: {} trailing bytes after the datum",
            reader.len()
        )));
    }
    Ok(value)
}

pub fn decode_envelope(
    reg: &Registered,
    bytes: &[u8],
    id: u32,
) -> Result<AvroEnvelope, DecodeErrorKind> {
    let value = decode_datum(reg, bytes, id)?;
    let AvroValue::Record(fields) = value else {
        return Err(DecodeErrorKind::Avro(format!(
            "schema id {id}: value is not a record"
        )));
    };
    let mut env = AvroEnvelope {
        op: None,
        before: None,
        after: None,
        source: None,
    };
    for (k, v) in fields {
        let v = match v {
            AvroValue::Union(_, inner) => *inner,
            other => other,
        };
        if v == AvroValue::Null {
            continue;
        }
        match k.as_str() {
            "op" => {
                if let AvroValue::String(s) = v {
                    env.op = Some(s);
                }
            }
            "before" => env.before = Some(v),
            "after" => env.after = Some(v),
            "source" => env.source = Some(v),
            _ => {}
        }
    }
    Ok(env)
}

pub fn unwrap_union(v: &AvroValue) -> &AvroValue {
    match v {
        AvroValue::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn as_i64(v: &AvroValue) -> Option<i64> {
    match unwrap_union(v) {
        AvroValue::Int(i) | AvroValue::Date(i) | AvroValue::TimeMillis(i) => Some(*i as i64),
        AvroValue::Long(l)
        | AvroValue::TimeMicros(l)
        | AvroValue::TimestampMillis(l)
        | AvroValue::TimestampMicros(l)
        | AvroValue::TimestampNanos(l)
        | AvroValue::LocalTimestampMillis(l)
        | AvroValue::LocalTimestampMicros(l)
        | AvroValue::LocalTimestampNanos(l) => Some(*l),
        _ => None,
    }
}

fn as_str(v: &AvroValue) -> Option<&str> {
    match unwrap_union(v) {
        AvroValue::String(s) | AvroValue::Enum(_, s) => Some(s),
        _ => None,
    }
}

/// A `source` block's members gathered into a position and a table, whatever encoding carries
/// them (an Avro record here, a Protobuf message in [`crate::protobuf`]): each member is read as
/// the kind its name calls for.
#[derive(Default)]
pub(crate) struct SourceMembers {
    position: SourcePosition,
    db: Option<String>,
    schema: Option<String>,
    table: Option<String>,
}

impl SourceMembers {
    pub(crate) fn member(
        &mut self,
        name: &str,
        int: impl FnOnce() -> Option<i64>,
        text: impl FnOnce() -> Option<String>,
        flag: impl FnOnce() -> bool,
    ) {
        let p = &mut self.position;
        match name {
            "ts_ms" => p.ts_ms = int(),
            "snapshot" => p.snapshot = flag(),
            "db" => {
                self.db = text();
                p.db = self.db.as_deref().map(Arc::from);
            }
            "schema" => self.schema = text(),
            "table" | "collection" => self.table = text(),
            "lsn" => p.lsn = int(),
            "txId" => p.tx_id = int(),
            "file" => p.file = text().map(Arc::from),
            "pos" => p.pos = int(),
            "row" => p.row = int(),
            "scn" | "change_lsn" => p.scn = text().map(Arc::from),
            _ => {}
        }
    }

    pub(crate) fn finish(self) -> (SourcePosition, Option<TableId>) {
        let (schema, db) = (self.schema, self.db);
        (
            self.position,
            self.table
                .map(|t| TableId::new(schema.or(db).unwrap_or_default(), t)),
        )
    }
}

/// Position and table from an Avro `source` record.
pub fn source_position(source: Option<&AvroValue>) -> (SourcePosition, Option<TableId>) {
    let mut members = SourceMembers::default();
    let Some(AvroValue::Record(fields)) = source.map(unwrap_union) else {
        return members.finish();
    };
    for (k, v) in fields {
        members.member(
            k,
            || as_i64(v),
            || as_str(v).map(str::to_owned),
            || match unwrap_union(v) {
                AvroValue::Boolean(b) => *b,
                other => as_str(other).is_some_and(|s| s != "false"),
            },
        );
    }
    members.finish()
}

fn found(v: &AvroValue) -> String {
    crate::convert::excerpt(&format!("{v:?}"))
}

fn want(expected: &str, v: &AvroValue) -> FieldError {
    FieldError {
        path: String::new(),
        expected: expected.into(),
        found: found(v),
    }
}

fn bytes_of(v: &AvroValue) -> Option<Vec<u8>> {
    match v {
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => Some(b.clone()),
        AvroValue::Decimal(d) => Vec::<u8>::try_from(d).ok(),
        _ => None,
    }
}

/// Converts one Avro value of `wire` type and appends it to `b`.
pub fn append_avro(
    b: &mut ColBuilder,
    wire: &Wire,
    v: &AvroValue,
    ctx: &mut ConvCtx,
) -> Result<Appended, FieldError> {
    let v = unwrap_union(v);
    if *v == AvroValue::Null {
        b.push_null();
        return Ok(Appended::Value);
    }
    if wire.carries_placeholder() {
        let text = ctx.placeholder.text();
        let hit = match v {
            AvroValue::String(s) => s == text,
            AvroValue::Bytes(bs) => bs == text.as_bytes(),
            AvroValue::Array(items) => match items.as_slice() {
                [one] => {
                    matches!(unwrap_union(one), AvroValue::String(s) if s == text)
                        || matches!(unwrap_union(one), AvroValue::Bytes(bs) if bs == text.as_bytes())
                }
                many => {
                    many.len() == text.len()
                        && many
                            .iter()
                            .zip(text.bytes())
                            .all(|(i, c)| as_i64(i) == Some(c as i64))
                }
            },
            _ => false,
        };
        if hit {
            b.push_null();
            return Ok(Appended::Unchanged);
        }
    }
    match wire {
        Wire::Bool => match v {
            AvroValue::Boolean(x) => b.push_bool(*x),
            _ => return Err(want("a boolean", v)),
        },
        Wire::Int8 | Wire::Int16 | Wire::Int32 | Wire::Int64 | Wire::Year | Wire::Date => {
            b.push_int(as_i64(v).ok_or_else(|| want("an integer", v))?)?
        }
        Wire::Float32 | Wire::Float64 => match v {
            AvroValue::Float(f) => b.push_float(*f as f64),
            AvroValue::Double(f) => b.push_float(*f),
            _ => return Err(want("a float", v)),
        },
        Wire::String
        | Wire::Interval
        | Wire::Xml
        | Wire::Enum
        | Wire::EnumSet
        | Wire::Json
        | Wire::Map => match v {
            AvroValue::String(s) | AvroValue::Enum(_, s) => {
                if *wire == Wire::Json && serde_json::from_str::<serde::de::IgnoredAny>(s).is_err()
                {
                    return Err(FieldError::new("JSON document text", s));
                }
                b.push_bytes(s.as_bytes())
            }
            AvroValue::Map(m) => {
                let obj: serde_json::Map<String, Json> = m
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            as_str(v)
                                .map(|s| Json::String(s.into()))
                                .unwrap_or(Json::Null),
                        )
                    })
                    .collect();
                b.push_bytes(Json::Object(obj).to_string().as_bytes())
            }
            _ => return Err(want("a string", v)),
        },
        Wire::Bytes | Wire::Bits | Wire::BinaryText(_) => match v {
            AvroValue::String(s) => {
                crate::convert::append_json_text_bytes(b, wire, s)?;
            }
            other => b.push_bytes(&bytes_of(other).ok_or_else(|| want("bytes", v))?),
        },
        Wire::Decimal { scale, text, .. } => {
            let unscaled = match v {
                AvroValue::String(s) if *text => {
                    let d =
                        decimal::parse_text(s).ok_or_else(|| FieldError::new("decimal text", s))?;
                    d.rescale(*scale as i32)
                        .ok_or_else(|| FieldError::new("a decimal at the column scale", s))?
                }
                other => {
                    let bytes = bytes_of(other).ok_or_else(|| want("decimal bytes", v))?;
                    decimal::from_twos_complement(&bytes)
                        .ok_or_else(|| want("a decimal of at most 76 digits", v))?
                }
            };
            b.push_decimal(unscaled)?
        }
        Wire::DecimalText => {
            let s = as_str(v).ok_or_else(|| want("decimal text", v))?;
            if decimal::parse_text(s).is_none() {
                return Err(FieldError::new("decimal text", s));
            }
            b.push_bytes(s.as_bytes())
        }
        Wire::VariableScaleDecimal => {
            let AvroValue::Record(fields) = v else {
                return Err(want("a VariableScaleDecimal record", v));
            };
            let scale = fields
                .iter()
                .find(|(k, _)| k == "scale")
                .and_then(|(_, v)| as_i64(v));
            let value = fields
                .iter()
                .find(|(k, _)| k == "value")
                .and_then(|(_, v)| bytes_of(unwrap_union(v)));
            let (Some(scale), Some(value)) = (scale, value) else {
                return Err(want("a VariableScaleDecimal record", v));
            };
            let scale = crate::convert::variable_scale(scale)
                .ok_or_else(|| want(crate::convert::VARIABLE_SCALE, v))?;
            let unscaled =
                decimal::from_twos_complement(&value).ok_or_else(|| want("a decimal", v))?;
            let mut s = String::new();
            decimal::format(unscaled, scale, &mut s);
            b.push_bytes(s.as_bytes())
        }
        Wire::TimeMillis | Wire::TimeMicros | Wire::TimeNanos => {
            let count = as_i64(v).ok_or_else(|| want("a time", v))?;
            b.push_int(
                crate::convert::time_of_day(count, wire)
                    .ok_or_else(|| want(crate::convert::TIME_OF_DAY, v))?,
            )?
        }
        Wire::SignedTimeMillis => {
            let ms = as_i64(v).ok_or_else(|| want("a time span", v))?;
            b.push_int(
                ms.checked_mul(1000)
                    .ok_or_else(|| want("a time span in ms within ±292,000 years", v))?,
            )?
        }
        Wire::SignedTimeMicros
        | Wire::SignedTimeNanos
        | Wire::TimestampNanos
        | Wire::MicroDuration
        | Wire::NanoDuration => b.push_int(as_i64(v).ok_or_else(|| want("an integer", v))?)?,
        Wire::TimestampMillis => {
            let ms = as_i64(v).ok_or_else(|| want("a timestamp", v))?;
            let micros = ms
                .checked_mul(1000)
                .ok_or_else(|| want("a timestamp in ms within ±292,000 years of 1970", v))?;
            // PostgreSQL's ±infinity sentinels, as in JSON.
            b.push_int(match micros {
                temporal::PG_INFINITY_MICROS => temporal::INFINITY,
                temporal::PG_NEG_INFINITY_MICROS => temporal::NEG_INFINITY,
                other => other,
            })?
        }
        Wire::TimestampMicros => {
            let us = as_i64(v).ok_or_else(|| want("a timestamp", v))?;
            b.push_int(match us {
                temporal::PG_INFINITY_MICROS => temporal::INFINITY,
                temporal::PG_NEG_INFINITY_MICROS => temporal::NEG_INFINITY,
                other => other,
            })?
        }
        Wire::ZonedTimestamp
        | Wire::IsoTimestamp
        | Wire::ZonedTime
        | Wire::IsoTime
        | Wire::IsoDate
        | Wire::Uuid => {
            let s = match v {
                AvroValue::Uuid(u) => u.to_string(),
                other => as_str(other).ok_or_else(|| want("a string", v))?.to_owned(),
            };
            // The text forms share the JSON converter's parsing.
            let quoted = serde_json::to_string(&s).map_err(|_| want("text", v))?;
            let lazy = crate::json::parse(&quoted).map_err(|_| want("text", v))?;
            crate::convert::append_json(b, wire, &lazy, ctx)?;
        }
        Wire::Geometry | Wire::Point => {
            let AvroValue::Record(fields) = v else {
                return Err(want("a geometry record", v));
            };
            let names: &[(&str, Wire)] = if *wire == Wire::Point {
                &[
                    ("x", Wire::Float64),
                    ("y", Wire::Float64),
                    ("wkb", Wire::Bytes),
                    ("srid", Wire::Int32),
                ]
            } else {
                &[("wkb", Wire::Bytes), ("srid", Wire::Int32)]
            };
            for (child, (name, w)) in b.struct_children().iter_mut().zip(names) {
                match fields.iter().find(|(k, _)| k == name) {
                    Some((_, fv)) => {
                        append_avro(child, w, fv, ctx).map_err(|mut e| {
                            e.path = format!(".{name}{}", e.path);
                            e
                        })?;
                    }
                    None => child.push_null(),
                }
            }
            b.end_struct();
        }
        Wire::Array(elem) => {
            let AvroValue::Array(items) = v else {
                return Err(want("an array", v));
            };
            for (i, item) in items.iter().enumerate() {
                append_avro(b.list_child(), elem, item, ctx).map_err(|mut e| {
                    e.path = format!("[{i}]{}", e.path);
                    e
                })?;
            }
            b.end_list();
        }
        Wire::Struct(fields) => {
            let AvroValue::Record(members) = v else {
                return Err(want("a record", v));
            };
            for (child, field) in b.struct_children().iter_mut().zip(fields) {
                match members.iter().find(|(k, _)| *k == field.name) {
                    Some((_, fv)) => {
                        append_avro(child, &field.wire, fv, ctx).map_err(|mut e| {
                            e.path = format!(".{}{}", field.name, e.path);
                            e
                        })?;
                    }
                    None => child.push_null(),
                }
            }
            b.end_struct();
        }
    }
    Ok(Appended::Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_references_are_inlined() {
        let node: Json = serde_json::from_str(
            r#"{"type":"record","name":"Envelope","namespace":"a.b","fields":[
                {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"long"}]}]},
                {"name":"after","type":["null","Value"]}]}"#,
        )
        .expect("json");
        let mut names = HashMap::new();
        let inlined = inline_refs(&node, &mut names, None);
        let after = &inlined["fields"][1]["type"][1];
        assert_eq!(after["name"], "Value");
        assert!(first_record(after).is_some());
    }
}
