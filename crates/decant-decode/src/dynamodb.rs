//! DynamoDB change records: Confluent's DynamoDB CDC envelope (`op`, `before.document` /
//! `after.document` holding typed-JSON strings) and AWS DynamoDB Streams records (`eventName`,
//! `dynamodb.Keys/NewImage/OldImage`). Typed attribute values become typed columns: `N` exact
//! decimal text (never f64), `S` string, `BOOL`, `NULL`, `B` bytes, sets as lists, `L`/`M` as JSON.
//! Type tags are matched case-insensitively (open-source connectors write `s`, `n`, `m` …).

use crate::json::{Kind as JsonType, Value as LazyValue};
use decant_model::{ChangeKind, KafkaRecord, SourceOp, SourcePosition, TableId};
use serde_json::{Map, Value as Json};

use crate::decoder::{Decoder, Outcome};
use crate::error::DecodeErrorKind;
use crate::wire::{Wire, WireField};

type KResult<T> = Result<T, DecodeErrorKind>;

/// Whether an image is a `{"document": "<typed JSON>"}` object.
pub fn is_document_image(img: Option<&LazyValue>) -> bool {
    img.filter(|v| v.kind() == JsonType::Object)
        .and_then(|v| v.get("document"))
        .is_some_and(|d| d.kind() == JsonType::String)
}

fn err(msg: impl Into<String>) -> DecodeErrorKind {
    DecodeErrorKind::Envelope(msg.into())
}

/// One typed AttributeValue → (plain JSON, wire type of the column it lands in).
fn plain(av: &Json, path: &str) -> KResult<(Json, Wire)> {
    let obj = av.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        err(format!(
            "{path}: expected an AttributeValue with exactly one type tag, found {av}"
        ))
    })?;
    let (tag, v) = obj
        .iter()
        .next()
        .ok_or_else(|| err(format!("{path}: empty AttributeValue")))?;
    let tag = tag.to_ascii_uppercase();
    let bad = |what: &str| err(format!("{path}: {tag} expects {what}, found {v}"));
    Ok(match tag.as_str() {
        "S" => (
            Json::String(v.as_str().ok_or_else(|| bad("a string"))?.into()),
            Wire::String,
        ),
        "N" => {
            let text = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                _ => return Err(bad("a number string")),
            };
            if crate::decimal::parse_text(&text).is_none() {
                return Err(bad("a decimal number"));
            }
            (Json::String(text), Wire::DecimalText)
        }
        "B" => (
            Json::String(v.as_str().ok_or_else(|| bad("base64 text"))?.into()),
            Wire::Bytes,
        ),
        "BOOL" => (
            Json::Bool(v.as_bool().ok_or_else(|| bad("a boolean"))?),
            Wire::Bool,
        ),
        "NULL" => (Json::Null, Wire::Json),
        "SS" | "NS" | "BS" => {
            let items = v.as_array().ok_or_else(|| bad("an array"))?;
            let elem = match tag.as_str() {
                "SS" => Wire::String,
                "NS" => Wire::DecimalText,
                _ => Wire::Bytes,
            };
            for i in items {
                let s = i.as_str().ok_or_else(|| bad("an array of strings"))?;
                if elem == Wire::DecimalText && crate::decimal::parse_text(s).is_none() {
                    return Err(bad("decimal numbers"));
                }
            }
            (Json::Array(items.clone()), Wire::Array(Box::new(elem)))
        }
        "L" => {
            let items = v.as_array().ok_or_else(|| bad("an array"))?;
            let plain_items = items
                .iter()
                .enumerate()
                .map(|(i, x)| nested(x, &format!("{path}[{i}]")))
                .collect::<KResult<Vec<_>>>()?;
            (Json::Array(plain_items), Wire::Json)
        }
        "M" => {
            let m = v.as_object().ok_or_else(|| bad("an object"))?;
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), nested(x, &format!("{path}.{k}"))?);
            }
            (Json::Object(out), Wire::Json)
        }
        other => return Err(err(format!("{path}: unknown DynamoDB type tag {other:?}"))),
    })
}

/// Inside `L`/`M`, numbers stay exact as JSON number literals.
fn nested(av: &Json, path: &str) -> KResult<Json> {
    let (v, wire) = plain(av, path)?;
    Ok(match (wire, v) {
        (Wire::DecimalText, Json::String(s)) => s
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .unwrap_or(Json::String(s)),
        (Wire::Array(e), Json::Array(items)) if *e == Wire::DecimalText => Json::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Json::String(s) => s
                        .parse::<serde_json::Number>()
                        .map(Json::Number)
                        .unwrap_or(Json::String(s)),
                    other => other,
                })
                .collect(),
        ),
        (_, v) => v,
    })
}

/// A typed item (`{"attr": {"S": "…"}, …}`) → plain row JSON text and the attributes' wires.
fn item(doc: &Json, what: &str) -> KResult<(String, Vec<WireField>)> {
    let obj = doc.as_object().ok_or_else(|| {
        err(format!(
            "{what}: expected an object of attributes, found {doc}"
        ))
    })?;
    let mut row = Map::new();
    let mut fields = Vec::new();
    for (name, av) in obj {
        let (v, wire) = plain(av, &format!("{what}.{name}"))?;
        row.insert(name.clone(), v);
        fields.push(WireField {
            name: name.clone(),
            wire,
            optional: true,
        });
    }
    Ok((Json::Object(row).to_string(), fields))
}

fn document_of(img: &LazyValue, what: &str) -> KResult<Json> {
    let text = img
        .get("document")
        .and_then(|d| d.as_str().map(std::borrow::Cow::into_owned))
        .ok_or_else(|| err(format!("{what}.document: expected a JSON string")))?;
    serde_json::from_str(&text)
        .map_err(|e| err(format!("{what}.document: malformed typed JSON: {e}")))
}

/// Confluent DynamoDB CDC source envelope.
pub fn decode_document_envelope(
    dec: &mut Decoder,
    rec: &KafkaRecord,
    op: &str,
    before: Option<LazyValue>,
    after: Option<LazyValue>,
    table: TableId,
    position: SourcePosition,
) -> KResult<Outcome> {
    let kind = match op.to_ascii_lowercase().as_str() {
        "c" | "r" | "u" => ChangeKind::Upsert,
        "d" => ChangeKind::Delete,
        other => return Err(err(format!("unknown DynamoDB CDC \"op\" value {other:?}"))),
    };
    let img = match kind {
        ChangeKind::Upsert => after.filter(|x| x.raw() != "null"),
        ChangeKind::Delete => before.filter(|x| x.raw() != "null"),
    }
    .ok_or_else(|| err(format!("{op} event without its document image")))?;
    let what = if kind == ChangeKind::Upsert {
        "after"
    } else {
        "before"
    };
    let (row, fields) = item(&document_of(&img, what)?, what)?;
    let key_names = key_names_of(rec);
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

/// Key attribute names from a JSON Kafka key (`{"id": …}`), when there is one.
fn key_names_of(rec: &KafkaRecord) -> Vec<String> {
    rec.key
        .and_then(|k| serde_json::from_slice::<Json>(k).ok())
        .and_then(|k| k.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

/// AWS DynamoDB Streams record.
pub fn decode_streams_record(
    dec: &mut Decoder,
    rec: &KafkaRecord,
    payload: &str,
) -> KResult<Outcome> {
    let record: Json =
        serde_json::from_str(payload).map_err(|e| err(format!("DynamoDB Streams record: {e}")))?;
    let event = record.get("eventName").and_then(Json::as_str).unwrap_or("");
    let ddb = record
        .get("dynamodb")
        .ok_or_else(|| err("DynamoDB Streams record without \"dynamodb\""))?;
    let table = record
        .get("eventSourceARN")
        .and_then(Json::as_str)
        .and_then(|arn| arn.split(":table/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .map(|t| TableId::new("", t))
        .unwrap_or_else(|| {
            let name = rec.topic.rsplit('.').next().unwrap_or(rec.topic);
            TableId::new("", name)
        });
    let position = SourcePosition {
        ts_ms: ddb
            .get("ApproximateCreationDateTime")
            .and_then(Json::as_f64)
            .map(|s| (s * 1000.0) as i64),
        scn: ddb
            .get("SequenceNumber")
            .and_then(Json::as_str)
            .map(std::sync::Arc::from),
        ..Default::default()
    };
    let keys = ddb
        .get("Keys")
        .ok_or_else(|| err("DynamoDB Streams record without dynamodb.Keys"))?;
    let key_names: Vec<String> = keys
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let (kind, img, what) = match event {
        "INSERT" | "MODIFY" => match ddb.get("NewImage") {
            Some(img) => (ChangeKind::Upsert, img, "NewImage"),
            None => {
                return Err(err(format!(
                    "{event} record without NewImage (stream view type must include new images)"
                )));
            }
        },
        "REMOVE" => (ChangeKind::Delete, keys, "Keys"),
        other => return Err(err(format!("unknown DynamoDB Streams eventName {other:?}"))),
    };
    let (row, fields) = item(img, what)?;
    let source_op = match event {
        "INSERT" => SourceOp::Create,
        "MODIFY" => SourceOp::Update,
        _ => SourceOp::Delete,
    };
    dec.append_document_row(
        rec,
        table,
        (kind, source_op),
        position,
        (&row, fields),
        &key_names,
    )
}
