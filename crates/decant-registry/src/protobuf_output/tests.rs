//! The Protobuf output against an in-memory registry: every column type's field declaration,
//! every type's canonical JSON → Protobuf → read back both by prost-reflect with the registered
//! schema and by decant's own Protobuf decoder (the text it renders must be the input), nulls
//! against zero values, keys and tombstones, field numbers across evolution and restarts,
//! refusals and outages.

use std::sync::Arc;

use decant_decode::{Decoder, DecoderConfig, Outcome, SchemaFormat, StaticResolver};
use decant_model::encode::{Encoded, RecordEncoder};
use decant_model::sink::{ChangeOp, OutputShape};
use decant_model::{ColumnType, Disposition, KafkaRecord, TableId, TimeUnit};
use prost_reflect::ReflectMessage as _;

use super::*;
use crate::avro_output::tests::{zoo, zoo_shape};
use crate::registered::fixtures::{FakeRegistry, Fixture, documents_shape, shape};

const KEY: &str = "decant.bed.type-zoo-key";
const VALUE: &str = "decant.bed.type-zoo-value";

/// The latest schema registered under `subject`: id and schema.
fn latest(reg: &FakeRegistry, subject: &str) -> (u32, Schema) {
    let b = reg.book();
    let (_, _, id) = b
        .registered
        .iter()
        .rev()
        .find(|(s, _, _)| s == subject)
        .expect("registered");
    (*id, b.schemas[id].clone())
}

/// Splits `0x00 + id + [0] + message` and decodes the message with message `name` of `text`.
fn read_framed(bytes: &[u8], text: &str, name: &str) -> (u32, DynamicMessage) {
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    assert_eq!(bytes[5], 0, "message indexes [0] as the single byte 0");
    let file = protobuf::compile_file(text, HashMap::new()).expect("compiles");
    let desc = file.messages().find(|m| m.name() == name).expect("message");
    (
        id,
        DynamicMessage::decode(desc, &bytes[6..]).expect("decodes"),
    )
}

/// The declarations of message `name` of `text`, by field name.
fn decls(text: &str, name: &str) -> HashMap<String, FieldDecl> {
    read_previous(text, name)
        .expect("compiles")
        .fields
        .into_iter()
        .map(|f| (f.name.clone(), f))
        .collect()
}

fn numbers(text: &str, name: &str) -> Vec<(String, u32)> {
    read_previous(text, name)
        .expect("compiles")
        .fields
        .into_iter()
        .map(|f| (f.name, f.number))
        .collect()
}

fn encode_value(enc: &mut ProtobufEncoder, c: &decant_model::sink::Change<'_>) -> Vec<u8> {
    match enc.encode(c).expect("encodes") {
        Encoded::Record { value: Some(v), .. } => v.to_vec(),
        other => panic!("a record with a value, got {other:?}"),
    }
}

/// The zoo's value object: `id` 20 and every type's canonical JSON.
fn zoo_value() -> String {
    let mut value = String::from("{\"id\":20");
    for (name, _, json, _) in zoo() {
        value.push_str(&format!(",\"{name}\":{json}"));
    }
    value.push('}');
    value
}

#[test]
fn every_column_type_has_its_protobuf_declaration() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = zoo_shape();
    let value = zoo_value();
    encode_value(
        &mut enc,
        &fx.change(&s, ChangeOp::Upsert, "{\"id\":20}", Some(&value)),
    );
    let (_, key) = latest(&reg, KEY);
    let (_, val) = latest(&reg, VALUE);
    assert_eq!(key.schema_type, SchemaType::Protobuf);
    assert!(key.references.is_empty() && val.references.is_empty());
    assert_eq!(
        key.text,
        "syntax = \"proto3\";\npackage bed.type_zoo;\n\nmessage Key {\n  int64 id = 1;\n}\n"
    );
    assert!(val.text.starts_with(
        "syntax = \"proto3\";\npackage bed.type_zoo;\n\nimport \"confluent/meta.proto\";\nimport \"confluent/type/decimal.proto\";\nimport \"google/protobuf/timestamp.proto\";\nimport \"google/type/date.proto\";\nimport \"google/type/timeofday.proto\";\n\nmessage Value {\n  int64 id = 1;\n  optional bool c_bool = 2;\n"
    ), "{}", val.text);
    assert!(
        val.text.contains("  .confluent.type.Decimal c_num = 10 [(confluent.field_meta) = { params: [ { key: \"precision\", value: \"10\" }, { key: \"scale\", value: \"2\" } ] }];\n"),
        "{}",
        val.text
    );
    let d = decls(&val.text, "Value");
    let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let expected: Vec<(&str, &str, bool, BTreeMap<String, String>)> = vec![
        ("c_bool", "bool", true, p(&[])),
        ("c_i8", "int32", true, p(&[("connect.type", "int8")])),
        ("c_i16", "int32", true, p(&[("connect.type", "int16")])),
        ("c_i32", "int32", true, p(&[])),
        ("c_i64", "int64", true, p(&[])),
        ("c_f32", "float", true, p(&[])),
        ("c_f64", "double", true, p(&[])),
        (
            "c_num_38",
            DECIMAL,
            false,
            p(&[("precision", "38"), ("scale", "10")]),
        ),
        ("c_num_wide", "string", true, p(&[(DECANT_TYPE, "decimal")])),
        ("c_numeric", "string", true, p(&[(DECANT_TYPE, "decimal")])),
        ("c_text", "string", true, p(&[])),
        ("c_json", "string", true, p(&[(DECANT_TYPE, "json")])),
        ("c_xml", "string", true, p(&[(DECANT_TYPE, "xml")])),
        ("c_uuid", "string", true, p(&[(DECANT_TYPE, "uuid")])),
        ("c_enum", "string", true, p(&[(DECANT_TYPE, "enum")])),
        ("c_bytes", "bytes", true, p(&[])),
        ("c_date", DATE, false, p(&[])),
        ("c_time", TIME_OF_DAY, false, p(&[("flink.precision", "6")])),
        ("c_time_ns", TIME_OF_DAY, false, p(&[])),
        (
            "c_mysql_time",
            "int64",
            true,
            p(&[(DECANT_TYPE, "signed_time_micros")]),
        ),
        (
            "c_timetz",
            "string",
            true,
            p(&[(DECANT_TYPE, "zoned_time")]),
        ),
        (
            "c_ts",
            TIMESTAMP,
            false,
            p(&[("flink.precision", "6"), ("flink.type", "timestamp")]),
        ),
        (
            "c_ts_ns",
            TIMESTAMP,
            false,
            p(&[("flink.type", "timestamp")]),
        ),
        ("c_tstz", TIMESTAMP, false, p(&[("flink.precision", "6")])),
        ("c_tstz_ns", TIMESTAMP, false, p(&[])),
        (
            "c_interval",
            "int64",
            true,
            p(&[(DECANT_TYPE, "duration_micros")]),
        ),
        ("c_geom", "string", true, p(&[(DECANT_TYPE, "geometry")])),
        ("c_point", "string", true, p(&[(DECANT_TYPE, "point")])),
        ("c_list", "string", true, p(&[(DECANT_TYPE, "list")])),
        ("c_struct", "string", true, p(&[(DECANT_TYPE, "struct")])),
    ];
    for (name, ty, optional, params) in expected {
        let f = &d[name];
        assert_eq!(
            (f.ty.as_str(), f.optional, &f.params),
            (ty, optional, &params),
            "{name}"
        );
    }
    // Key columns are plain fields in the value too; numbers follow the shape on first sight.
    assert!(!d["id"].optional);
    let nums: Vec<u32> = numbers(&val.text, "Value").iter().map(|n| n.1).collect();
    assert_eq!(nums, (1..=zoo().len() as u32 + 1).collect::<Vec<_>>());
}

#[test]
fn names_and_packages_are_valid_protobuf() {
    let s = shape(
        vec![
            ("a-b".into(), ColumnType::Int32),
            ("a_b".into(), ColumnType::Int32),
        ],
        &["a-b"],
    );
    match ProtobufFormat.derive(&TableId::new("s", "t"), &s, &Previous::default()) {
        Err(SinkOrRefusal::Refused(why)) => assert!(why.contains("\"a_b\""), "{why}"),
        _ => panic!("a refusal"),
    }
    // Two names protoc's JSON mapping makes equal: a schema that does not compile refuses
    // the table rather than stopping the process.
    let s = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("foo_bar".into(), ColumnType::Int32),
            ("fooBar".into(), ColumnType::Int32),
        ],
        &["id"],
    );
    if let Err(SinkOrRefusal::Sink(e)) =
        ProtobufFormat.derive(&TableId::new("s", "t"), &s, &Previous::default())
    {
        panic!("a fault of decant's own: {e}");
    }
    // A package part that shadows `google` does not capture the imported types.
    let s = shape(
        vec![
            ("id".into(), ColumnType::Date),
            ("at".into(), ColumnType::TimestampTz(TimeUnit::Micros)),
        ],
        &["id"],
    );
    let d = ProtobufFormat
        .derive(
            &TableId::new("my-db.google", "2tab"),
            &s,
            &Previous::default(),
        )
        .unwrap_or_else(|_| panic!("derives"));
    assert!(
        d.value.schema.text.contains("package my_db.google._2tab;"),
        "{}",
        d.value.schema.text
    );
}

#[test]
fn every_type_round_trips_exactly() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = zoo_shape();
    let value = zoo_value();
    let change = fx.change(&s, ChangeOp::Upsert, "{\"id\":20}", Some(&value));
    let Encoded::Record {
        key,
        value: Some(v),
    } = enc.encode(&change).expect("encodes")
    else {
        panic!("a record with a value");
    };
    let (key, v) = (key.to_vec(), v.to_vec());
    let (key_id, key_schema) = latest(&reg, KEY);
    let (value_id, value_schema) = latest(&reg, VALUE);
    let (id, k) = read_framed(&key, &key_schema.text, "Key");
    assert_eq!(id, key_id);
    assert_eq!(k.get_field_by_name("id").as_deref(), Some(&Value::I64(20)));
    let (id, m) = read_framed(&v, &value_schema.text, "Value");
    assert_eq!(id, value_id);

    // prost-reflect's view: the exact Protobuf values.
    let get = |name: &str| {
        let f = m.descriptor().get_field_by_name(name).expect(name);
        assert!(m.has_field(&f), "{name} is set");
        m.get_field(&f).into_owned()
    };
    let members = |name: &str| -> Vec<(String, Value)> {
        let Value::Message(sub) = get(name) else {
            panic!("{name}: a message");
        };
        sub.descriptor()
            .fields()
            .map(|f| (f.name().to_owned(), sub.get_field(&f).into_owned()))
            .collect()
    };
    let kv = |pairs: &[(&str, Value)]| -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    assert_eq!(get("c_i8"), Value::I32(-128));
    assert_eq!(get("c_i64"), Value::I64(i64::MAX));
    assert_eq!(get("c_f32"), Value::F32(0.1));
    assert_eq!(get("c_f64_inf"), Value::F64(f64::NEG_INFINITY));
    assert_eq!(
        members("c_num"),
        kv(&[
            ("value", Value::Bytes(vec![0xfb, 0x32].into())),
            ("precision", Value::U32(4)),
            ("scale", Value::I32(2)),
        ])
    );
    assert_eq!(
        get("c_num_wide"),
        Value::String("123456789876543212345678987654321.110".into())
    );
    assert_eq!(
        get("c_json"),
        Value::String(
            "{\"n\":1.00000000000000000001,\"s\":\"123456789012345678901234567890.5\"}".into()
        )
    );
    assert_eq!(get("c_bytes"), Value::Bytes(vec![0, 1, 2, 255].into()));
    assert_eq!(
        members("c_date"),
        kv(&[
            ("year", Value::I32(1969)),
            ("month", Value::I32(12)),
            ("day", Value::I32(31))
        ])
    );
    assert_eq!(
        members("c_time_ns"),
        kv(&[
            ("hours", Value::I32(12)),
            ("minutes", Value::I32(0)),
            ("seconds", Value::I32(0)),
            ("nanos", Value::I32(1)),
        ])
    );
    assert_eq!(members("c_time_24")[0], ("hours".into(), Value::I32(24)));
    assert_eq!(get("c_mysql_time"), Value::I64(-3_020_399_000_001));
    let ts = |seconds: i64, nanos: i32| {
        kv(&[
            ("seconds", Value::I64(seconds)),
            ("nanos", Value::I32(nanos)),
        ])
    };
    assert_eq!(members("c_ts"), ts(1_709_251_199, 123_456_000));
    assert_eq!(members("c_ts_ns"), ts(1_704_067_200, 1));
    assert_eq!(members("c_tstz"), ts(-2_208_988_800, 1_000));
    assert_eq!(members("c_tstz_ns"), ts(1_704_067_200, 1));
    assert_eq!(members("c_ts_inf"), ts(MAX_SECONDS, 999_999_000));
    assert_eq!(members("c_tstz_ninf"), ts(MIN_SECONDS, 0));
    assert_eq!(get("c_interval"), Value::I64(-90_061_000_001));

    // decant's own decoder reads the bytes back as typed columns; its canonical JSON is the
    // input, except where it has no type for the exact value (see `decoder_differences`).
    let row = decode_with_decant(&value_schema.text, &v[5..]);
    let row: HashMap<String, Box<RawValue>> = serde_json::from_str(&row).expect("row JSON");
    let input: HashMap<String, Box<RawValue>> = serde_json::from_str(&value).expect("input");
    let mut compared = 0;
    for (name, expected) in &input {
        let got = row[name].get();
        match decoder_differences(name) {
            Some(read_as) => assert_eq!(got, read_as, "{name}"),
            // JSON documents read back as the string of their exact text (the decoder has no
            // `connect.name` to type them by).
            None if ["c_json", "c_geom", "c_point", "c_list", "c_struct"]
                .contains(&name.as_str()) =>
            {
                assert_eq!(json_string(got).as_deref(), Some(expected.get()), "{name}")
            }
            // The same number, however the exponent is spelled.
            None if name.starts_with("c_f") => {
                assert_eq!(float_text(got), float_text(expected.get()), "{name}");
                compared += 1;
            }
            None => {
                assert_eq!(got, expected.get(), "{name}");
                compared += 1;
            }
        }
    }
    // Everything but the 7 differences and the 5 JSON documents compares as text.
    assert_eq!(compared, input.len() - 12, "columns compared exactly");

    // Once registered, the same shape registers nothing more.
    let before = reg.book().registered.len();
    enc.encode(&change).expect("encodes again");
    assert_eq!(reg.book().registered.len(), before);
    assert_eq!(before, 2);
}

/// What decant's decoder reads differently from the input, and why: it keeps timestamps and
/// times to the µs (refusing more digits, so the ns columns are left out of its input), reads
/// every `Timestamp` as Connect's zone-less Timestamp (no `Z`), and reads the range ends as
/// values, not ±infinity. A MySQL TIME is its count of µs (the `decant.type` param is decant's
/// output's, not a Connect name the decoder reads).
fn decoder_differences(name: &str) -> Option<&'static str> {
    Some(match name {
        "c_time_ns" | "c_ts_ns" | "c_tstz_ns" => "null",
        "c_mysql_time" => "-3020399000001",
        "c_tstz" => "\"1900-01-01T00:00:00.000001\"",
        "c_ts_inf" => "\"9999-12-31T23:59:59.999999\"",
        "c_tstz_ninf" => "\"0001-01-01T00:00:00\"",
        _ => return None,
    })
}

/// The value payload (message indexes + message) read by decant's Protobuf decoder as the
/// `after` image of a Debezium envelope around it: the row's canonical JSON text.
fn decode_with_decant(value_text: &str, payload: &[u8]) -> String {
    // ns columns are dropped: the decoder refuses digits beyond the µs.
    let envelope_text =
        format!("{value_text}\nmessage Envelope {{ Value after = 1; string op = 2; }}\n");
    let (_, message) = read_framed(
        &[&[0, 0, 0, 0, 9][..], payload].concat(),
        value_text,
        "Value",
    );
    let mut message = message;
    for ns in ["c_time_ns", "c_ts_ns", "c_tstz_ns"] {
        message.clear_field_by_name(ns);
    }
    let body = message.encode_to_vec();
    let mut framed = vec![0, 0, 0, 0, 9, 2, 2, 0x0a];
    prost_reflect::prost::encoding::encode_varint(body.len() as u64, &mut framed);
    framed.extend(&body);
    framed.extend([0x12, 1, b'c']);
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(StaticResolver::new().with(
            9,
            SchemaFormat::Protobuf,
            &envelope_text,
        )));
    match dec.decode(&KafkaRecord::value_only("p.bed.zoo", 0, 1, &framed)) {
        Ok(Outcome::Row { .. }) => {}
        Ok(_) => panic!("not a row"),
        Err(e) => panic!("decant's decoder: {e}"),
    }
    let mut out = String::new();
    decant_decode::render::render_in_order(&dec.take_batches().expect("batches"), &[], &mut out);
    let start = out.find("\"row\":").expect("a row") + "\"row\":".len();
    let mut de = serde_json::Deserializer::from_str(&out[start..]).into_iter::<serde_json::Value>();
    de.next().expect("row").expect("row JSON").to_string()
}

#[test]
fn nulls_are_not_zero_values_and_keys_are_never_null() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("n".into(), ColumnType::Int64),
            ("t".into(), ColumnType::String),
            ("b".into(), ColumnType::Boolean),
            (
                "d".into(),
                ColumnType::Decimal {
                    precision: 5,
                    scale: 2,
                },
            ),
            ("big".into(), ColumnType::String),
        ],
        &["id"],
    );
    let zeros = encode_value(
        &mut enc,
        &fx.change(
            &s,
            ChangeOp::Upsert,
            "{\"id\":0}",
            Some("{\"id\":0,\"n\":0,\"t\":\"\",\"b\":false,\"d\":\"0.00\",\"big\":\"x\"}"),
        ),
    );
    // `big` TOAST-missing under emit_without_column: left out of the JSON, null.
    let nulls = encode_value(
        &mut enc,
        &fx.change(
            &s,
            ChangeOp::Upsert,
            "{\"id\":0}",
            Some("{\"id\":0,\"n\":null,\"t\":null,\"b\":null,\"d\":null}"),
        ),
    );
    let (_, schema) = latest(&reg, VALUE);
    let (_, z) = read_framed(&zeros, &schema.text, "Value");
    let (_, n) = read_framed(&nulls, &schema.text, "Value");
    for name in ["n", "t", "b", "d"] {
        assert!(z.has_field_by_name(name), "{name}: a zero value is present");
        assert!(!n.has_field_by_name(name), "{name}: null is absent");
    }
    assert!(!n.has_field_by_name("big"));
    // decant's decoder (and any reader honouring presence) tells them apart.
    let zj = decode_with_decant(&schema.text, &zeros[5..]);
    let nj = decode_with_decant(&schema.text, &nulls[5..]);
    assert_eq!(
        zj,
        "{\"id\":0,\"n\":0,\"t\":\"\",\"b\":false,\"d\":\"0.00\",\"big\":\"x\"}"
    );
    assert_eq!(
        nj,
        "{\"id\":0,\"n\":null,\"t\":null,\"b\":null,\"d\":null,\"big\":null}"
    );
    let bad = fx.change(&s, ChangeOp::Upsert, "{\"id\":null}", Some("{\"id\":null}"));
    let e = enc.encode(&bad).expect_err("a null key is an error");
    assert_eq!(e.disposition, Disposition::Fatal);
    assert!(
        decant_model::error_chain(&e).contains("null in a non-null"),
        "{e}"
    );
    // A value the column type cannot hold is an error naming the column, not a panic.
    let bad = fx.change(
        &s,
        ChangeOp::Upsert,
        "{\"id\":1}",
        Some("{\"id\":1,\"d\":\"1.234\"}"),
    );
    let e = enc.encode(&bad).expect_err("not exact at scale 2");
    assert!(decant_model::error_chain(&e).contains("column d"), "{e}");
}

/// A JSON `null` document is the string `null`; SQL NULL in the same kind of column is absent.
#[test]
fn a_json_null_document_is_its_text_not_null() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = documents_shape();
    let c = fx.null_document_change(&s);
    let value = encode_value(&mut enc, &c);
    let (_, schema) = latest(&reg, VALUE);
    let (_, read) = read_framed(&value, &schema.text, "Value");
    assert_eq!(
        read.get_field_by_name("doc").as_deref(),
        Some(&prost_reflect::Value::String("null".into()))
    );
    assert!(!read.has_field_by_name("other"), "SQL NULL is absent");
}

#[test]
fn a_delete_is_a_tombstone_with_a_protobuf_key() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("k_int".into(), ColumnType::Int32),
            ("k_ts".into(), ColumnType::TimestampTz(TimeUnit::Micros)),
            ("k_text".into(), ColumnType::String),
            ("v".into(), ColumnType::Int64),
        ],
        &["k_int", "k_ts", "k_text"],
    );
    let key_json = "{\"k_int\":1,\"k_ts\":\"2024-01-01T00:00:00.5Z\",\"k_text\":\"a\"}";
    let c = fx.change(&s, ChangeOp::Delete, key_json, None);
    let Encoded::Record { key, value } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    assert_eq!(value, None, "a tombstone");
    let key = key.to_vec();
    let (id, schema) = latest(&reg, KEY);
    let (read_id, k) = read_framed(&key, &schema.text, "Key");
    assert_eq!(read_id, id);
    assert_eq!(
        k.get_field_by_name("k_int").as_deref(),
        Some(&Value::I32(1))
    );
    assert_eq!(
        k.get_field_by_name("k_text").as_deref(),
        Some(&Value::String("a".into()))
    );
    // A truncate's delete carries no shape: the table's last one, and after a restart the
    // registry's latest key schema, give the same bytes.
    let empty = shape(Vec::new(), &[]);
    let t = fx.change(&empty, ChangeOp::Truncate, key_json, None);
    let Encoded::Record {
        key: same,
        value: None,
    } = enc.encode(&t).expect("encodes")
    else {
        panic!("a tombstone");
    };
    assert_eq!(same, key.as_slice());
    let mut fresh = ProtobufEncoder::new(Box::new(reg.clone()));
    let Encoded::Record {
        key: again,
        value: None,
    } = fresh.encode(&t).expect("encodes")
    else {
        panic!("a tombstone");
    };
    assert_eq!(again, key.as_slice());
}

/// The value schema's (name, number) pairs after encoding one record of `columns`.
fn value_numbers(
    enc: &mut ProtobufEncoder,
    reg: &FakeRegistry,
    columns: &[(&str, ColumnType)],
    value: &str,
) -> (Vec<(String, u32)>, Vec<u8>) {
    let fx = Fixture::new();
    let s = shape(
        columns
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect(),
        &["id"],
    );
    let bytes = encode_value(
        enc,
        &fx.change(&s, ChangeOp::Upsert, "{\"id\":1}", Some(value)),
    );
    (numbers(&latest(reg, VALUE).1.text, "Value"), bytes)
}

fn owned(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, i)| ((*n).to_owned(), *i)).collect()
}

#[test]
fn field_numbers_survive_evolution_and_restarts() {
    use ColumnType as C;
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let v1 = [("id", C::Int32), ("a", C::String), ("b", C::Int64)];
    let (n1, old) = value_numbers(&mut enc, &reg, &v1, "{\"id\":1,\"a\":\"x\",\"b\":5}");
    assert_eq!(n1, owned(&[("id", 1), ("a", 2), ("b", 3)]));
    let (v1_id, v1_schema) = latest(&reg, VALUE);

    // A column added in the middle: the others keep their numbers, the new one takes 4.
    let v2 = [
        ("id", C::Int32),
        ("added", C::Date),
        ("a", C::String),
        ("b", C::Int64),
    ];
    let (n2, _) = value_numbers(
        &mut enc,
        &reg,
        &v2,
        "{\"id\":1,\"added\":\"2024-01-01\",\"a\":\"x\",\"b\":5}",
    );
    assert_eq!(n2, owned(&[("id", 1), ("a", 2), ("b", 3), ("added", 4)]));
    // A record written with v1 reads with v2 as the same values, `added` null.
    let (_, v2_schema) = latest(&reg, VALUE);
    let (_, m) = read_framed(&old, &v2_schema.text, "Value");
    assert_eq!(m.get_field_by_name("b").as_deref(), Some(&Value::I64(5)));
    assert!(!m.has_field_by_name("added"));

    // A restart (a fresh encoder) with `b` dropped and `c` added: `b` stays declared, never
    // written, and `c` does not take its number.
    let mut restarted = ProtobufEncoder::new(Box::new(reg.clone()));
    let v3 = [
        ("id", C::Int32),
        ("a", C::String),
        ("added", C::Date),
        ("c", C::Boolean),
    ];
    let (n3, rec) = value_numbers(
        &mut restarted,
        &reg,
        &v3,
        "{\"id\":1,\"a\":\"y\",\"added\":null,\"c\":true}",
    );
    assert_eq!(
        n3,
        owned(&[("id", 1), ("a", 2), ("b", 3), ("added", 4), ("c", 5)])
    );
    let (_, v3_schema) = latest(&reg, VALUE);
    let (_, m) = read_framed(&rec, &v3_schema.text, "Value");
    assert!(!m.has_field_by_name("b"), "a dropped column is null");

    // `a` changes type: a new number, its old one reserved (never to mean the new type).
    let v4 = [
        ("id", C::Int32),
        ("a", C::Int32),
        ("added", C::Date),
        ("c", C::Boolean),
    ];
    let (n4, _) = value_numbers(&mut restarted, &reg, &v4, "{\"id\":1,\"a\":7}");
    assert_eq!(
        n4,
        owned(&[("id", 1), ("b", 3), ("added", 4), ("c", 5), ("a", 6)])
    );
    let (_, v4_schema) = latest(&reg, VALUE);
    assert!(
        v4_schema.text.contains("  reserved 2;\n"),
        "{}",
        v4_schema.text
    );
    // … and the next new column goes above the reservation and every field.
    let v5 = [
        ("id", C::Int32),
        ("a", C::Int32),
        ("b", C::Int64),
        ("z", C::Float64),
    ];
    let (n5, _) = value_numbers(&mut restarted, &reg, &v5, "{\"id\":1,\"b\":9}");
    assert_eq!(
        n5,
        owned(&[
            ("id", 1),
            ("b", 3),
            ("added", 4),
            ("c", 5),
            ("a", 6),
            ("z", 7)
        ]),
        "`b` came back with its type: its number back"
    );
    assert!(latest(&reg, VALUE).1.text.contains("  reserved 2;\n"));

    // Reordered columns derive the same text: nothing new is registered.
    let before = reg.book().registered.len();
    let reordered = [
        ("z", C::Float64),
        ("b", C::Int64),
        ("a", C::Int32),
        ("id", C::Int32),
    ];
    value_numbers(&mut restarted, &reg, &reordered, "{\"id\":1}");
    assert_eq!(reg.book().registered.len(), before);
    // Old-shape records (another partition's backlog) use the latest version, whose numbers
    // still mean what they meant in v1's records.
    let (_, _) = value_numbers(&mut restarted, &reg, &v5, "{\"id\":1}");
    assert_ne!(latest(&reg, VALUE).0, v1_id);
    assert!(v1_schema.text.contains("optional int64 b = 3;"));
    assert!(latest(&reg, VALUE).1.text.contains("optional int64 b = 3;"));
}

#[test]
fn numbering_skips_the_implementation_range_and_reads_foreign_reservations() {
    let previous = MessageDecl {
        fields: vec![FieldDecl {
            name: "x".into(),
            number: 18_999,
            ty: "int32".into(),
            optional: false,
            params: BTreeMap::new(),
        }],
        reserved: BTreeSet::new(),
    };
    let wanted = vec![declare("y".into(), &ColumnType::Int32, true)];
    let m = number(wanted, Some(&previous));
    assert_eq!(m.fields[1].number, 20_000);
    // Someone else's `reserved 10 to max`: new numbers cannot go anywhere, the schema does
    // not compile, and the table is refused rather than the process stopped.
    let text = "syntax = \"proto3\";\npackage p;\nmessage Value {\n  int32 id = 1;\n  reserved 10 to max;\n}\n";
    let read = read_previous(text, "Value").expect("reads");
    assert_eq!(read.reserved.len(), 2, "a wide range keeps its ends");
    let s = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("n".into(), ColumnType::Int32),
        ],
        &["id"],
    );
    let previous = Previous {
        key: None,
        value: Some(Schema::new(SchemaType::Protobuf, text)),
    };
    assert!(matches!(
        ProtobufFormat.derive(&TableId::new("s", "t"), &s, &previous),
        Err(SinkOrRefusal::Refused(_))
    ));
}

#[test]
fn a_key_column_left_out_of_the_value_keeps_its_type() {
    let reg = FakeRegistry::default();
    let mut enc = ProtobufEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = Arc::new(OutputShape {
        columns: vec![("note".into(), ColumnType::String)],
        key: vec!["id".into()],
        key_types: vec![ColumnType::Uuid],
        sources: vec![Some(1)],
    });
    let key = "{\"id\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}";
    let c = fx.change(&s, ChangeOp::Upsert, key, Some("{\"note\":\"n\"}"));
    let Encoded::Record {
        key,
        value: Some(_),
    } = enc.encode(&c).expect("encodes")
    else {
        panic!("a record");
    };
    let (_, schema) = latest(&reg, KEY);
    let (_, k) = read_framed(key, &schema.text, "Key");
    assert_eq!(
        k.get_field_by_name("id").as_deref(),
        Some(&Value::String(
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()
        ))
    );
    assert!(!latest(&reg, VALUE).1.text.contains(" id = "));
    let bad = fx.change(
        &s,
        ChangeOp::Upsert,
        "{\"id\":\"nope\"}",
        Some("{\"note\":\"n\"}"),
    );
    assert!(enc.encode(&bad).is_err(), "not a UUID");
}
