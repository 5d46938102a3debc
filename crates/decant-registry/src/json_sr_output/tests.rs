//! The JSON_SR output against an in-memory registry: schema derivation for every column type
//! (and its reading back), every type's canonical JSON → JSON_SR value, the same records read
//! back by decant's own JSON_SR decoder as the same columns, nulls, keys, tombstones,
//! evolution, refusals and outages.

use std::collections::HashMap;
use std::sync::Arc;

use decant_decode::render::render_in_order;
use decant_decode::{Decoder, DecoderConfig, Outcome, SchemaFormat, StaticResolver};
use decant_model::encode::{Encoded, RecordEncoder};
use decant_model::sink::{ChangeOp, OutputShape};
use decant_model::{ColumnType, Disposition, KafkaRecord, TableId, TimeUnit};
use serde_json::json;

use super::*;
use crate::avro_output::tests::{zoo, zoo_shape};
use crate::registered::fixtures::{FakeRegistry, Fixture, documents_shape, shape};

/// What each zoo column's canonical JSON becomes in a JSON_SR document, as JSON text.
fn expected_value(name: &str) -> &'static str {
    match name {
        "c_bool" => "true",
        "c_i8" => "-128",
        "c_i16" => "32767",
        "c_i32" => "-2147483648",
        "c_i64" => "9223372036854775807",
        "c_f32" => "0.1",
        "c_f64" => "1.7976931348623157e308",
        "c_f64_inf" => "\"-Infinity\"",
        "c_num" => "-12.30",
        "c_num_38" => "9999999999999999999999999999.9999999999",
        "c_num_wide" => "\"123456789876543212345678987654321.110\"",
        "c_numeric" => "\"4.82\"",
        "c_text" => "\"a \\\"quoted\\\" é\\n\"",
        "c_json" => {
            "\"{\\\"n\\\":1.00000000000000000001,\\\"s\\\":\\\"123456789012345678901234567890.5\\\"}\""
        }
        "c_xml" => "\"<a/>\"",
        "c_uuid" => "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
        "c_enum" => "\"happy\"",
        "c_bytes" => "\"AAEC/w==\"",
        "c_date" => "-1",
        "c_time" => "86399999999",
        "c_time_24" => "86400000000",
        "c_time_ns" => "43200000000001",
        "c_mysql_time" => "-3020399000001",
        "c_timetz" => "\"10:15:30.5Z\"",
        "c_ts" => "1709251199123456",
        "c_ts_inf" => "9223372036854775807",
        "c_ts_ns" => "\"2024-01-01T00:00:00.000000001\"",
        "c_tstz" => "\"1900-01-01T00:00:00.000001Z\"",
        "c_tstz_ninf" => "\"-infinity\"",
        "c_tstz_ns" => "\"2024-01-01T00:00:00.000000001Z\"",
        "c_interval" => "-90061000001",
        "c_geom" => "\"{\\\"wkb\\\":\\\"AQEAAAA=\\\",\\\"srid\\\":4326}\"",
        "c_point" => "\"{\\\"x\\\":1.5,\\\"y\\\":-2,\\\"wkb\\\":null,\\\"srid\\\":null}\"",
        "c_list" => "\"[1,null,3]\"",
        "c_struct" => "\"{\\\"a\\\":1}\"",
        other => panic!("no expected value for {other}"),
    }
}

/// The zoo's value object: `id` 20 and every zoo column.
fn zoo_value() -> String {
    let mut value = String::from("{\"id\":20");
    for (name, _, json, _) in zoo() {
        value.push_str(&format!(",\"{name}\":{json}"));
    }
    value.push('}');
    value
}

/// Splits `0x00 + id + document`: the id and the document's members as JSON text, in order.
fn read_framed(bytes: &[u8]) -> (u32, Vec<(String, String)>) {
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let text = std::str::from_utf8(&bytes[5..]).expect("UTF-8 JSON");
    let members: indexmap_free::Ordered = serde_json::from_str(text).expect("a JSON object");
    (
        id,
        members
            .0
            .into_iter()
            .map(|(k, v)| (k, v.get().to_owned()))
            .collect(),
    )
}

/// A JSON object's members in document order with their raw text (serde_json's map would parse
/// the numbers).
mod indexmap_free {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    pub struct Ordered(pub Vec<(String, Box<RawValue>)>);

    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = m.next_entry()? {
                        out.push(entry);
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V)
        }
    }
}

fn schema_of(reg: &FakeRegistry, subject: &str) -> (u32, Json) {
    let b = reg.book();
    let (_, text, id) = b
        .registered
        .iter()
        .rev()
        .find(|(s, _, _)| s == subject)
        .expect("registered");
    (*id, serde_json::from_str(text).expect("schema JSON"))
}

/// A property's schema without its null alternative and `connect.index`.
fn inner(property: &Json) -> Json {
    let mut t = match property.get("oneOf") {
        Some(branches) => branches[1].clone(),
        None => property.clone(),
    };
    if let Some(o) = t.as_object_mut() {
        o.remove("connect.index");
    }
    t
}

#[test]
fn every_column_type_has_its_json_schema() {
    let ((key_text, _), (value_text, _)) =
        derive(&TableId::new("bed", "type-zoo"), &zoo_shape()).expect("derives");
    let value: Json = serde_json::from_str(&value_text).expect("JSON");
    assert_eq!(value["title"], "bed.type_zoo.Value");
    assert_eq!(value["type"], "object");
    assert_eq!(value["additionalProperties"], false);
    assert_eq!(value["required"], json!(["id"]));
    let key: Json = serde_json::from_str(&key_text).expect("JSON");
    assert_eq!(key["title"], "bed.type_zoo.Key");
    assert_eq!(
        key["properties"],
        json!({"id": {"type": "integer", "connect.type": "int64", "connect.index": 0}})
    );
    assert_eq!(key["required"], json!(["id"]));
    let properties = value["properties"].as_object().expect("properties");
    // Key columns are required in the value too; everything else is optional, default null.
    assert_eq!(
        properties["id"],
        json!({"type": "integer", "connect.type": "int64", "connect.index": 0})
    );
    let int64 = |title: &str| json!({"type": "integer", "connect.type": "int64", "title": title, "connect.version": 1});
    let string = |title: &str| json!({"type": "string", "title": title, "connect.version": 1});
    let tagged = |tag: &str| json!({"type": "string", "decant.type": tag});
    let decimal = |p: &str, s: &str| {
        json!({"type": "number", "connect.type": "bytes", "title": "org.apache.kafka.connect.data.Decimal",
               "connect.version": 1, "connect.parameters": {"scale": s, "connect.decimal.precision": p}})
    };
    let expected = [
        ("c_bool", json!({"type": "boolean"})),
        ("c_i8", json!({"type": "integer", "connect.type": "int8"})),
        ("c_i16", json!({"type": "integer", "connect.type": "int16"})),
        ("c_i32", json!({"type": "integer", "connect.type": "int32"})),
        ("c_i64", json!({"type": "integer", "connect.type": "int64"})),
        (
            "c_f32",
            json!({"type": "number", "connect.type": "float32"}),
        ),
        (
            "c_f64",
            json!({"type": "number", "connect.type": "float64"}),
        ),
        (
            "c_f64_inf",
            json!({"type": "number", "connect.type": "float64"}),
        ),
        ("c_num", decimal("10", "2")),
        ("c_num_38", decimal("38", "10")),
        ("c_num_wide", tagged("decimal")),
        ("c_numeric", tagged("decimal")),
        ("c_text", json!({"type": "string"})),
        ("c_json", string("io.debezium.data.Json")),
        ("c_xml", string("io.debezium.data.Xml")),
        ("c_uuid", string("io.debezium.data.Uuid")),
        ("c_enum", string("io.debezium.data.Enum")),
        (
            "c_bytes",
            json!({"type": "string", "connect.type": "bytes"}),
        ),
        (
            "c_date",
            json!({"type": "integer", "connect.type": "int32", "title": "org.apache.kafka.connect.data.Date", "connect.version": 1}),
        ),
        ("c_time", int64("io.debezium.time.MicroTime")),
        ("c_time_24", int64("io.debezium.time.MicroTime")),
        ("c_time_ns", int64("io.debezium.time.NanoTime")),
        (
            "c_mysql_time",
            json!({"type": "integer", "connect.type": "int64", "decant.type": "signed_time_micros"}),
        ),
        ("c_timetz", string("io.debezium.time.ZonedTime")),
        ("c_ts", int64("io.debezium.time.MicroTimestamp")),
        ("c_ts_inf", int64("io.debezium.time.MicroTimestamp")),
        ("c_ts_ns", tagged("timestamp_nanos")),
        ("c_tstz", string("io.debezium.time.ZonedTimestamp")),
        ("c_tstz_ninf", string("io.debezium.time.ZonedTimestamp")),
        ("c_tstz_ns", tagged("timestamp_tz_nanos")),
        ("c_interval", int64("io.debezium.time.MicroDuration")),
        ("c_geom", tagged("geometry")),
        ("c_point", tagged("point")),
        ("c_list", tagged("list")),
        ("c_struct", tagged("struct")),
    ];
    assert_eq!(expected.len(), zoo().len(), "every zoo column is listed");
    for (index, ((name, ty, _, _), (expected_name, schema))) in
        zoo().into_iter().zip(expected).enumerate()
    {
        assert_eq!(name, expected_name);
        let p = &properties[name];
        assert_eq!(p["oneOf"][0], json!({"type": "null"}), "{name}: nullable");
        assert_eq!(p["default"], Json::Null, "{name}: default null");
        assert!(p.get("default").is_some(), "{name}: has a default");
        assert_eq!(
            p["connect.index"],
            index + 1,
            "{name}: Connect's field order"
        );
        assert_eq!(inner(p), schema, "{name}");
        // A registered schema reads back as the conversion it was derived with.
        assert_eq!(
            enc_of_schema(p),
            Some(field_type(&ty).1),
            "{name} read back"
        );
    }
    // decant's own JSON_SR decoder translates it as a Connect struct.
    assert!(matches!(
        decant_decode::json_schema::translate(&value_text),
        Ok(decant_decode::json_schema::Translated::Connect(_))
    ));
}

#[test]
fn every_type_is_written_exactly() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let shape = zoo_shape();
    let value = zoo_value();
    let change = fx.change(&shape, ChangeOp::Upsert, "{\"id\":20}", Some(&value));
    let Encoded::Record {
        key,
        value: Some(v),
    } = enc.encode(&change).expect("encodes")
    else {
        panic!("a record with a value");
    };
    let (key, v) = (key.to_vec(), v.to_vec());
    let (key_id, key_schema) = schema_of(&reg, "decant.bed.type-zoo-key");
    let (value_id, _) = schema_of(&reg, "decant.bed.type-zoo-value");
    assert_eq!(key_schema["title"], "bed.type_zoo.Key");
    assert_eq!(
        reg.book().schemas[&key_id].schema_type,
        SchemaType::Json,
        "registered as JSON"
    );
    assert_eq!(
        read_framed(&key),
        (key_id, vec![("id".into(), "20".into())])
    );
    let (id, members) = read_framed(&v);
    assert_eq!(id, value_id);
    assert_eq!(members[0], ("id".into(), "20".into()));
    assert_eq!(members.len(), zoo().len() + 1);
    for ((name, _, json, _), (read_name, got)) in zoo().into_iter().zip(&members[1..]) {
        assert_eq!(read_name, name);
        assert_eq!(got, expected_value(name), "{name} from {json}");
    }
    // Once registered, the same shape registers nothing more.
    let before = reg.book().registered.len();
    enc.encode(&change).expect("encodes again");
    assert_eq!(reg.book().registered.len(), before);
    assert_eq!(before, 2);
}

/// A decoded table's columns and one rendered row, each as (name, type or JSON text).
type Decoded = (Vec<(String, ColumnType)>, Vec<(String, String)>);

/// The zoo record as a Debezium envelope document, typed by the registered value schema, and
/// read by decant's JSON_SR decoder: the columns and the canonical JSON it renders.
fn decoded_by_decant(key: &[u8], key_schema: &str, value: &[u8], value_schema: &str) -> Decoded {
    let envelope = format!(
        r##"{{"type":"object","title":"decant.bed.type_zoo.Envelope","properties":{{
            "before":{{"oneOf":[{{"type":"null"}},{{"$ref":"#/definitions/row"}}],"connect.index":0}},
            "after":{{"oneOf":[{{"type":"null"}},{{"$ref":"#/definitions/row"}}],"connect.index":1}},
            "source":{{"type":"object","connect.index":2,"properties":{{
                "schema":{{"type":"string","connect.index":0}},"table":{{"type":"string","connect.index":1}}}}}},
            "op":{{"type":"string","connect.index":3}}}},
          "definitions":{{"row":{value_schema}}}}}"##
    );
    let resolver = StaticResolver::new()
        .with(1, SchemaFormat::Json, envelope)
        .with(2, SchemaFormat::Json, key_schema);
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(resolver));
    let mut framed_key = vec![0, 0, 0, 0, 2];
    framed_key.extend_from_slice(&key[5..]);
    let mut document = vec![0, 0, 0, 0, 1];
    document.extend_from_slice(
        format!(
            r#"{{"before":null,"after":{},"source":{{"schema":"bed","table":"type_zoo"}},"op":"c"}}"#,
            std::str::from_utf8(&value[5..]).expect("UTF-8")
        )
        .as_bytes(),
    );
    let rec = KafkaRecord {
        topic: "decant.bed.type-zoo",
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        headers: &[],
        key: Some(&framed_key),
        value: Some(&document),
    };
    let outcome = dec
        .decode(&rec)
        .unwrap_or_else(|e| panic!("decant decodes it: {e}"));
    assert!(matches!(outcome, Outcome::Row { .. }), "{outcome:?}");
    let batches = dec.take_batches().expect("batches");
    let columns = batches[0]
        .schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.clone()))
        .collect();
    let mut text = String::new();
    render_in_order(&batches, &[], &mut text);
    #[derive(serde::Deserialize)]
    struct Line {
        row: indexmap_free::Ordered,
    }
    let line: Line = serde_json::from_str(text.trim()).expect("rendered line");
    let row = line
        .row
        .0
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect();
    (columns, row)
}

#[test]
fn decants_own_json_sr_decoder_reads_every_type_back() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let shape = zoo_shape();
    let value = zoo_value();
    let change = fx.change(&shape, ChangeOp::Upsert, "{\"id\":20}", Some(&value));
    let Encoded::Record {
        key,
        value: Some(v),
    } = enc.encode(&change).expect("encodes")
    else {
        panic!("a record with a value");
    };
    let (key, v) = (key.to_vec(), v.to_vec());
    let key_schema = reg.book().registered[0].1.clone();
    let value_schema = reg.book().registered[1].1.clone();
    let (columns, row) = decoded_by_decant(&key, &key_schema, &v, &value_schema);
    let columns: HashMap<String, ColumnType> = columns.into_iter().collect();
    let row: HashMap<String, String> = row.into_iter().collect();
    assert_eq!(columns["id"], ColumnType::Int64);
    assert_eq!(row["id"], "20");
    for (name, ty, json, _) in zoo() {
        // What JSON Schema and Connect have no type for comes back as what it is written as:
        // exact text (or a signed count), its meaning in `decant.type`.
        let (expected_ty, expected_json) = match name {
            "c_num_wide" | "c_numeric" | "c_ts_ns" | "c_tstz_ns" => {
                (ColumnType::String, json.to_owned())
            }
            "c_geom" | "c_point" | "c_list" | "c_struct" => {
                (ColumnType::String, expected_value(name).to_owned())
            }
            "c_mysql_time" => (ColumnType::Int64, expected_value(name).to_owned()),
            // The same time; the decoder renders ZonedTime with six fraction digits.
            "c_timetz" => (ty, "\"10:15:30.500000Z\"".to_owned()),
            _ => (ty, json.to_owned()),
        };
        assert_eq!(columns[name], expected_ty, "{name}: column type");
        assert_eq!(row[name], expected_json, "{name}: value");
    }
}

#[test]
fn nulls_and_absent_columns_are_null_and_keys_never_are() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("note".into(), ColumnType::String),
            ("big".into(), ColumnType::String),
        ],
        &["id"],
    );
    // `big` TOAST-missing under emit_without_column: left out of the JSON, null in the record.
    let c = fx.change(
        &s,
        ChangeOp::Upsert,
        "{\"id\":1}",
        Some("{\"id\":1,\"note\":null}"),
    );
    let Encoded::Record { value: Some(v), .. } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    assert_eq!(&v[5..], br#"{"id":1,"note":null,"big":null}"#);
    let bad = fx.change(&s, ChangeOp::Upsert, "{\"id\":null}", Some("{\"id\":null}"));
    let e = enc.encode(&bad).expect_err("a null key is an error");
    assert_eq!(e.disposition, Disposition::Fatal);
    assert!(
        decant_model::error_chain(&e).contains("null in a non-null"),
        "{e}"
    );
    // A value that is not what the column's type says is decant's fault: fatal, named.
    let wrong = fx.change(&s, ChangeOp::Upsert, "{\"id\":2}", Some("{\"id\":\"two\"}"));
    let e = enc.encode(&wrong).expect_err("not an integer");
    assert!(decant_model::error_chain(&e).contains("column id"), "{e}");
}

/// A JSON `null` document is the string `null`; SQL NULL in the same kind of column is null.
#[test]
fn a_json_null_document_is_its_text_not_null() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = documents_shape();
    let c = fx.null_document_change(&s);
    let Encoded::Record { value: Some(v), .. } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    assert_eq!(&v[5..], br#"{"id":1,"doc":"null","other":null}"#);
}

#[test]
fn a_delete_is_a_tombstone_with_a_json_sr_key() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("k_int".into(), ColumnType::Int32),
            ("k_ts".into(), ColumnType::Timestamp(TimeUnit::Micros)),
            ("v".into(), ColumnType::Int64),
        ],
        &["k_int", "k_ts"],
    );
    let c = fx.change(
        &s,
        ChangeOp::Delete,
        "{\"k_int\":1,\"k_ts\":\"1970-01-01T00:00:01\"}",
        None,
    );
    let Encoded::Record { key, value } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    assert_eq!(value, None, "a tombstone");
    let key = key.to_vec();
    let (id, schema) = schema_of(&reg, "decant.bed.type-zoo-key");
    assert_eq!(schema["required"], json!(["k_int", "k_ts"]));
    let expected = (
        id,
        vec![
            ("k_int".to_owned(), "1".to_owned()),
            ("k_ts".to_owned(), "1000000".to_owned()),
        ],
    );
    assert_eq!(read_framed(&key), expected);
    // A truncate's delete carries no shape: the table's last one is used.
    let empty = shape(Vec::new(), &[]);
    let t = fx.change(
        &empty,
        ChangeOp::Truncate,
        "{\"k_int\":2,\"k_ts\":\"1970-01-01T00:00:02\"}",
        None,
    );
    let Encoded::Record { key, value: None } = enc.encode(&t).expect("encodes") else {
        panic!("a tombstone");
    };
    let truncated = (
        id,
        vec![
            ("k_int".to_owned(), "2".to_owned()),
            ("k_ts".to_owned(), "2000000".to_owned()),
        ],
    );
    assert_eq!(read_framed(key), truncated);
    // … and after a restart, the registry's latest key schema, converted the same way.
    let mut fresh = JsonSrEncoder::new(Box::new(reg.clone()));
    let Encoded::Record { key, value: None } = fresh.encode(&t).expect("encodes") else {
        panic!("a tombstone");
    };
    assert_eq!(read_framed(key), truncated);
}

#[test]
fn a_new_column_registers_a_compatible_value_schema_first() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let v1 = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("a".into(), ColumnType::String),
        ],
        &["id"],
    );
    let c1 = fx.change(
        &v1,
        ChangeOp::Upsert,
        "{\"id\":1}",
        Some("{\"id\":1,\"a\":\"x\"}"),
    );
    let Encoded::Record {
        value: Some(old), ..
    } = enc.encode(&c1).expect("v1")
    else {
        panic!("a record");
    };
    assert_eq!(&old[5..], br#"{"id":1,"a":"x"}"#);
    let (v1_id, v1_schema) = schema_of(&reg, "decant.bed.type-zoo-value");
    let v2 = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("a".into(), ColumnType::String),
            (
                "added".into(),
                ColumnType::Decimal {
                    precision: 5,
                    scale: 1,
                },
            ),
        ],
        &["id"],
    );
    let c2 = fx.change(
        &v2,
        ChangeOp::Upsert,
        "{\"id\":2}",
        Some("{\"id\":2,\"a\":\"y\",\"added\":\"12.5\"}"),
    );
    let Encoded::Record {
        value: Some(new), ..
    } = enc.encode(&c2).expect("v2")
    else {
        panic!("a record");
    };
    let new = new.to_vec();
    let (v2_id, v2_schema) = schema_of(&reg, "decant.bed.type-zoo-value");
    assert_ne!(v1_id, v2_id, "a second version");
    assert_eq!(read_framed(&new).0, v2_id);
    assert_eq!(&new[5..], br#"{"id":2,"a":"y","added":12.5}"#);
    let subjects: Vec<String> = reg.book().registered.iter().map(|r| r.0.clone()).collect();
    assert_eq!(
        subjects,
        [
            "decant.bed.type-zoo-key",
            "decant.bed.type-zoo-value",
            "decant.bed.type-zoo-value"
        ],
        "the key schema did not change: registered once"
    );
    // Compatible: the new version only adds an optional property (null by default) to a closed
    // record, and keeps every old property as it was.
    let (old_props, new_props) = (&v1_schema["properties"], &v2_schema["properties"]);
    for (name, p) in old_props.as_object().expect("properties") {
        assert_eq!(&new_props[name], p, "{name} unchanged");
    }
    assert_eq!(v2_schema["required"], v1_schema["required"]);
    assert_eq!(v2_schema["additionalProperties"], false);
    let added = &new_props["added"];
    assert_eq!(added["oneOf"][0], json!({"type": "null"}));
    assert_eq!(added["default"], Json::Null);
    assert!(added.get("default").is_some());
    assert_eq!(added["connect.index"], 2);
    // Old-shape records after the change (another partition's backlog) go back to v1.
    let Encoded::Record {
        value: Some(again), ..
    } = enc.encode(&c1).expect("v1 again")
    else {
        panic!("a record");
    };
    assert_eq!(read_framed(again).0, v1_id);
    assert_eq!(reg.book().registered.len(), 3);
}

#[test]
fn a_key_column_left_out_of_the_value_keeps_its_type() {
    let reg = FakeRegistry::default();
    let mut enc = JsonSrEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    // `exclude = ["id"]`: the key has the column, the value does not.
    let s = Arc::new(OutputShape {
        columns: vec![("note".into(), ColumnType::String)],
        key: vec!["id".into()],
        key_types: vec![ColumnType::Uuid],
        sources: vec![Some(1)],
    });
    let key = "{\"id\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}";
    let c = fx.change(&s, ChangeOp::Upsert, key, Some("{\"note\":\"n\"}"));
    let Encoded::Record {
        key: framed,
        value: Some(_),
    } = enc.encode(&c).expect("encodes")
    else {
        panic!("a record");
    };
    assert_eq!(&framed[5..], key.as_bytes());
    let (_, key_schema) = schema_of(&reg, "decant.bed.type-zoo-key");
    assert_eq!(
        key_schema["properties"]["id"]["title"],
        "io.debezium.data.Uuid"
    );
    let (_, value_schema) = schema_of(&reg, "decant.bed.type-zoo-value");
    assert!(
        value_schema["properties"].get("id").is_none(),
        "{value_schema}"
    );
    assert!(
        value_schema.get("required").is_none(),
        "no empty required list"
    );
}
