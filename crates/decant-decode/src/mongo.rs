//! MongoDB connector events: `before`/`after` are strings of MongoDB Extended JSON, the key is
//! `{"id": "<Extended JSON of _id>"}`. Documents become typed columns like DynamoDB items:
//! `$numberLong`/`$numberInt` → int64, `$numberDouble` → float64, `$numberDecimal` → exact
//! decimal text, `$date` → UTC timestamp, `$oid` → string, `$binary` → bytes; other `$` types,
//! sub-documents and arrays → JSON. A new field becomes a new column.

use decant_model::{ChangeKind, KafkaRecord, SourceOp, SourcePosition, TableId};
use serde_json::{Map, Value as Json};

use crate::decoder::{Decoder, Outcome};
use crate::error::DecodeErrorKind;
use crate::json::{Kind, Value};
use crate::wire::{Wire, WireField};

type KResult<T> = Result<T, DecodeErrorKind>;

fn err(msg: impl Into<String>) -> DecodeErrorKind {
    DecodeErrorKind::Envelope(msg.into())
}

/// Whether an image is a MongoDB document string.
pub fn is_document_string(img: Option<&Value>) -> bool {
    img.is_some_and(|v| {
        v.kind() == Kind::String && v.raw().trim_start_matches('"').starts_with('{')
    })
}

fn ms_to_iso(ms: i64) -> String {
    let mut s = String::new();
    crate::temporal::format_timestamp_nanos(ms as i128 * 1_000_000, &mut s);
    s.push('Z');
    s
}

/// One Extended-JSON value → (plain JSON, column wire type).
fn plain(v: &Json, path: &str) -> KResult<(Json, Wire)> {
    let bad = |what: &str| err(format!("{path}: {what}, found {v}"));
    Ok(match v {
        Json::Null => (Json::Null, Wire::Json),
        Json::Bool(b) => (Json::Bool(*b), Wire::Bool),
        Json::Number(n) if n.is_i64() => (v.clone(), Wire::Int64),
        Json::Number(_) => (v.clone(), Wire::Float64),
        Json::String(s) => (Json::String(s.clone()), Wire::String),
        Json::Array(_) => (relaxed(v), Wire::Json),
        Json::Object(o) => {
            let Some((tag, inner)) = o.iter().next().filter(|_| o.len() <= 2) else {
                return Ok((relaxed(v), Wire::Json));
            };
            match tag.as_str() {
                "$oid" => (inner.clone(), Wire::String),
                "$numberLong" | "$numberInt" => {
                    let s = inner
                        .as_str()
                        .ok_or_else(|| bad("expected a number string"))?;
                    let n: i64 = s.parse().map_err(|_| bad("expected an integer"))?;
                    (Json::from(n), Wire::Int64)
                }
                "$numberDouble" => {
                    let s = inner
                        .as_str()
                        .ok_or_else(|| bad("expected a number string"))?;
                    match s {
                        "NaN" | "Infinity" | "-Infinity" => (Json::String(s.into()), Wire::Float64),
                        _ => {
                            let f: f64 = s.parse().map_err(|_| bad("expected a double"))?;
                            (
                                serde_json::Number::from_f64(f)
                                    .map(Json::Number)
                                    .unwrap_or(Json::Null),
                                Wire::Float64,
                            )
                        }
                    }
                }
                "$numberDecimal" => (
                    Json::String(
                        inner
                            .as_str()
                            .ok_or_else(|| bad("expected a decimal string"))?
                            .into(),
                    ),
                    Wire::DecimalText,
                ),
                "$date" => {
                    let ms = match inner {
                        Json::Number(n) => n.as_i64(),
                        Json::Object(d) => d
                            .get("$numberLong")
                            .and_then(Json::as_str)
                            .and_then(|s| s.parse().ok()),
                        Json::String(iso) => {
                            return Ok((Json::String(iso.clone()), Wire::ZonedTimestamp));
                        }
                        _ => None,
                    }
                    .ok_or_else(|| bad("expected $date milliseconds"))?;
                    (Json::String(ms_to_iso(ms)), Wire::ZonedTimestamp)
                }
                "$binary" => {
                    let b64 = match inner {
                        Json::String(s) => s.clone(),
                        Json::Object(b) => b
                            .get("base64")
                            .and_then(Json::as_str)
                            .ok_or_else(|| bad("expected $binary.base64"))?
                            .to_owned(),
                        _ => return Err(bad("expected $binary")),
                    };
                    (Json::String(b64), Wire::Bytes)
                }
                _ => (relaxed(v), Wire::Json),
            }
        }
    })
}

/// Extended JSON → relaxed JSON for nested values: `$numberLong` etc. become plain numbers.
fn relaxed(v: &Json) -> Json {
    match v {
        Json::Array(items) => Json::Array(items.iter().map(relaxed).collect()),
        Json::Object(o) if o.len() == 1 => {
            let (tag, inner) = o
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("", v));
            let number = |s: &str| s.parse::<serde_json::Number>().ok().map(Json::Number);
            match (tag, inner) {
                ("$numberLong" | "$numberInt" | "$numberDecimal", Json::String(s)) => {
                    number(s).unwrap_or_else(|| inner.clone())
                }
                ("$numberDouble", Json::String(s)) => number(s).unwrap_or_else(|| inner.clone()),
                ("$oid", Json::String(s)) => Json::String(s.clone()),
                ("$date", Json::Number(n)) => n
                    .as_i64()
                    .map(|ms| Json::String(ms_to_iso(ms)))
                    .unwrap_or_else(|| inner.clone()),
                _ => Json::Object(o.iter().map(|(k, v)| (k.clone(), relaxed(v))).collect()),
            }
        }
        Json::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), relaxed(v))).collect()),
        other => other.clone(),
    }
}

/// A document (Extended JSON text) → plain row JSON text and the fields' wires.
fn document(text: &str, what: &str) -> KResult<(String, Vec<WireField>)> {
    let doc: Json = serde_json::from_str(text)
        .map_err(|e| err(format!("{what}: malformed Extended JSON: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| err(format!("{what}: expected a document, found {doc}")))?;
    let mut row = Map::new();
    let mut fields = Vec::new();
    for (name, v) in obj {
        let (value, wire) = plain(v, &format!("{what}.{name}"))?;
        row.insert(name.clone(), value);
        fields.push(WireField {
            name: name.clone(),
            wire,
            optional: true,
        });
    }
    Ok((Json::Object(row).to_string(), fields))
}

/// `_id` from the Kafka key `{"id": "<Extended JSON>"}` (or `{"id": <value>}`).
fn key_document(rec: &KafkaRecord) -> KResult<Option<(String, Vec<WireField>)>> {
    let Some(key) = rec.key else { return Ok(None) };
    let key: Json = serde_json::from_slice(key).map_err(|e| err(format!("key: {e}")))?;
    let key = match (key.get("schema"), key.get("payload")) {
        (Some(_), Some(p)) => p.clone(),
        _ => key,
    };
    let Some(id) = key.get("id") else {
        return Ok(None);
    };
    let id = match id {
        Json::String(s) => {
            serde_json::from_str::<Json>(s).unwrap_or_else(|_| Json::String(s.clone()))
        }
        other => other.clone(),
    };
    let (value, wire) = plain(&id, "key.id")?;
    let mut row = Map::new();
    row.insert("_id".into(), value);
    Ok(Some((
        Json::Object(row).to_string(),
        vec![WireField {
            name: "_id".into(),
            wire,
            optional: false,
        }],
    )))
}

pub fn decode_event(
    dec: &mut Decoder,
    rec: &KafkaRecord,
    op: &str,
    before: Option<Value>,
    after: Option<Value>,
    table: TableId,
    position: SourcePosition,
) -> KResult<Outcome> {
    let key_names = vec!["_id".to_owned()];
    let text_of = |v: Option<Value>| {
        v.filter(|x| x.kind() == Kind::String)
            .and_then(|x| x.as_str().map(|s| s.into_owned()))
    };
    let (kind, row, fields) = match op {
        "c" | "r" | "u" => {
            let Some(text) = text_of(after) else {
                return Err(err(format!(
                    "MongoDB op {op:?} without the full document in \"after\" (use capture.mode=change_streams_update_full)"
                )));
            };
            let (row, fields) = document(&text, "after")?;
            (ChangeKind::Upsert, row, fields)
        }
        "d" => match (key_document(rec)?, text_of(before)) {
            (Some((row, fields)), _) => (ChangeKind::Delete, row, fields),
            (None, Some(text)) => {
                let (row, fields) = document(&text, "before")?;
                (ChangeKind::Delete, row, fields)
            }
            (None, None) => {
                return Err(err(
                    "MongoDB delete without a key and without a before document",
                ));
            }
        },
        other => return Err(err(format!("unknown MongoDB \"op\" value {other:?}"))),
    };
    let source_op = SourceOp::from_code(op).unwrap_or(SourceOp::Update);
    dec.append_document_row(
        rec,
        table,
        (kind, source_op),
        position,
        (&row, fields),
        &key_names,
    )
}
