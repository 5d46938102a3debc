//! The Avro output against an in-memory registry: schema derivation for every column type,
//! every type's canonical JSON → Avro → read back by `apache-avro` with the derived schema,
//! evolution, refusals, outages and tombstones.

use std::sync::Arc;

use apache_avro::types::Value;
use decant_model::encode::{Encoded, RecordEncoder};
use decant_model::sink::{ChangeOp, OutputShape};
use decant_model::{Column, ColumnType, Disposition, TableId, TimeUnit};

use super::*;
use crate::registered::fixtures::{FakeRegistry, Fixture, documents_shape, shape};

/// Every column type, its canonical JSON (as `decant_decode::render` writes it) and the Avro
/// value it must read back as.
pub(crate) fn zoo() -> Vec<(&'static str, ColumnType, &'static str, Value)> {
    use ColumnType as C;
    let dec = |bytes: Vec<u8>| Value::Decimal(apache_avro::Decimal::from(bytes));
    vec![
        ("c_bool", C::Boolean, "true", Value::Boolean(true)),
        ("c_i8", C::Int8, "-128", Value::Int(-128)),
        ("c_i16", C::Int16, "32767", Value::Int(32767)),
        ("c_i32", C::Int32, "-2147483648", Value::Int(i32::MIN)),
        (
            "c_i64",
            C::Int64,
            "9223372036854775807",
            Value::Long(i64::MAX),
        ),
        ("c_f32", C::Float32, "0.1", Value::Float(0.1)),
        (
            "c_f64",
            C::Float64,
            "1.7976931348623157e308",
            Value::Double(f64::MAX),
        ),
        (
            "c_f64_inf",
            C::Float64,
            "\"-Infinity\"",
            Value::Double(f64::NEG_INFINITY),
        ),
        (
            "c_num",
            C::Decimal {
                precision: 10,
                scale: 2,
            },
            "\"-12.30\"",
            dec(vec![0xfb, 0x32]), // -1230
        ),
        (
            "c_num_38",
            C::Decimal {
                precision: 38,
                scale: 10,
            },
            "\"9999999999999999999999999999.9999999999\"",
            dec(minimal_twos_complement(&(10i128.pow(38) - 1).to_be_bytes())),
        ),
        (
            "c_num_wide",
            C::Decimal {
                precision: 65,
                scale: 30,
            },
            "\"123456789876543212345678987654321.110\"",
            Value::String("123456789876543212345678987654321.110".into()),
        ),
        (
            "c_numeric",
            C::DecimalText,
            "\"4.82\"",
            Value::String("4.82".into()),
        ),
        (
            "c_text",
            C::String,
            "\"a \\\"quoted\\\" é\\n\"",
            Value::String("a \"quoted\" é\n".into()),
        ),
        (
            "c_json",
            C::Json,
            "{\"n\":1.00000000000000000001,\"s\":\"123456789012345678901234567890.5\"}",
            Value::String(
                "{\"n\":1.00000000000000000001,\"s\":\"123456789012345678901234567890.5\"}".into(),
            ),
        ),
        ("c_xml", C::Xml, "\"<a/>\"", Value::String("<a/>".into())),
        (
            "c_uuid",
            C::Uuid,
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
            Value::Uuid(
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                    .parse()
                    .expect("uuid"),
            ),
        ),
        (
            "c_enum",
            C::Enum,
            "\"happy\"",
            Value::String("happy".into()),
        ),
        (
            "c_bytes",
            C::Binary,
            "\"AAEC/w==\"",
            Value::Bytes(vec![0, 1, 2, 255]),
        ),
        ("c_date", C::Date, "\"1969-12-31\"", Value::Date(-1)),
        (
            "c_time",
            C::Time(TimeUnit::Micros),
            "\"23:59:59.999999\"",
            Value::TimeMicros(86_399_999_999),
        ),
        (
            "c_time_24",
            C::Time(TimeUnit::Micros),
            "\"24:00:00\"",
            Value::TimeMicros(86_400_000_000),
        ),
        (
            "c_time_ns",
            C::Time(TimeUnit::Nanos),
            "\"12:00:00.000000001\"",
            Value::String("12:00:00.000000001".into()),
        ),
        (
            "c_mysql_time",
            C::SignedTime(TimeUnit::Micros),
            "\"-838:59:59.000001\"",
            Value::Long(-3_020_399_000_001),
        ),
        (
            "c_timetz",
            C::ZonedTime,
            "\"10:15:30.5Z\"",
            Value::String("10:15:30.5Z".into()),
        ),
        (
            "c_ts",
            C::Timestamp(TimeUnit::Micros),
            "\"2024-02-29T23:59:59.123456\"",
            Value::LocalTimestampMicros(1_709_251_199_123_456),
        ),
        (
            "c_ts_inf",
            C::Timestamp(TimeUnit::Micros),
            "\"infinity\"",
            Value::LocalTimestampMicros(i64::MAX),
        ),
        (
            "c_ts_ns",
            C::Timestamp(TimeUnit::Nanos),
            "\"2024-01-01T00:00:00.000000001\"",
            Value::String("2024-01-01T00:00:00.000000001".into()),
        ),
        (
            "c_tstz",
            C::TimestampTz(TimeUnit::Micros),
            "\"1900-01-01T00:00:00.000001Z\"",
            Value::TimestampMicros(-2_208_988_799_999_999),
        ),
        (
            "c_tstz_ninf",
            C::TimestampTz(TimeUnit::Micros),
            "\"-infinity\"",
            Value::TimestampMicros(i64::MIN),
        ),
        (
            "c_tstz_ns",
            C::TimestampTz(TimeUnit::Nanos),
            "\"2024-01-01T00:00:00.000000001Z\"",
            Value::String("2024-01-01T00:00:00.000000001Z".into()),
        ),
        (
            "c_interval",
            C::Duration(TimeUnit::Micros),
            "-90061000001",
            Value::Long(-90_061_000_001),
        ),
        (
            "c_geom",
            C::Geometry,
            "{\"wkb\":\"AQEAAAA=\",\"srid\":4326}",
            Value::String("{\"wkb\":\"AQEAAAA=\",\"srid\":4326}".into()),
        ),
        (
            "c_point",
            C::Point,
            "{\"x\":1.5,\"y\":-2,\"wkb\":null,\"srid\":null}",
            Value::String("{\"x\":1.5,\"y\":-2,\"wkb\":null,\"srid\":null}".into()),
        ),
        (
            "c_list",
            C::List(Box::new(C::Int32)),
            "[1,null,3]",
            Value::String("[1,null,3]".into()),
        ),
        (
            "c_struct",
            C::Struct(vec![Column::new("a", C::Int32, true)]),
            "{\"a\":1}",
            Value::String("{\"a\":1}".into()),
        ),
    ]
}

pub(crate) fn zoo_shape() -> Arc<OutputShape> {
    let mut cols = vec![("id".to_owned(), ColumnType::Int64)];
    cols.extend(zoo().into_iter().map(|(n, t, _, _)| (n.to_owned(), t)));
    shape(cols, &["id"])
}

/// Splits `0x00 + id + datum`, reads the datum with `schema_text`.
fn read_framed(bytes: &[u8], schema_text: &str) -> (u32, Value) {
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let schema = apache_avro::Schema::parse_str(schema_text).expect("schema parses");
    let mut rest = &bytes[5..];
    let v = apache_avro::from_avro_datum(&schema, &mut rest, None).expect("datum reads");
    assert!(rest.is_empty(), "the datum is the whole payload");
    (id, v)
}

fn schema_of(reg: &FakeRegistry, subject: &str) -> (u32, String) {
    let b = reg.book();
    let (_, text, id) = b
        .registered
        .iter()
        .rev()
        .find(|(s, _, _)| s == subject)
        .expect("registered");
    (*id, text.clone())
}

fn fields(text: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(text).expect("schema JSON");
    v["fields"].as_array().expect("fields").clone()
}

#[test]
fn every_column_type_has_its_avro_type() {
    use serde_json::json;
    let ((key_text, _), (value_text, _)) =
        derive(&TableId::new("bed", "type-zoo"), &zoo_shape()).expect("derives");
    let value: serde_json::Value = serde_json::from_str(&value_text).expect("JSON");
    assert_eq!(value["name"], "Value");
    assert_eq!(value["namespace"], "bed.type_zoo");
    let key: serde_json::Value = serde_json::from_str(&key_text).expect("JSON");
    assert_eq!(key["name"], "Key");
    assert_eq!(key["fields"], json!([{"name": "id", "type": "long"}]));
    let types: std::collections::HashMap<String, serde_json::Value> = fields(&value_text)
        .into_iter()
        .map(|f| (f["name"].as_str().unwrap_or_default().to_owned(), f))
        .collect();
    // Key columns are non-null in the value too; everything else is nullable, default null.
    assert_eq!(types["id"], json!({"name": "id", "type": "long"}));
    let t = |name: &str| {
        let f = &types[name];
        assert_eq!(
            f["default"],
            serde_json::Value::Null,
            "{name}: default null"
        );
        assert!(f.get("default").is_some(), "{name}: has a default");
        assert_eq!(f["type"][0], "null", "{name}: nullable");
        f["type"][1].clone()
    };
    let expected = [
        ("c_bool", json!("boolean")),
        ("c_i8", json!("int")),
        ("c_i16", json!("int")),
        ("c_i32", json!("int")),
        ("c_i64", json!("long")),
        ("c_f32", json!("float")),
        ("c_f64", json!("double")),
        (
            "c_num",
            json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}),
        ),
        (
            "c_num_38",
            json!({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10}),
        ),
        ("c_num_wide", json!("string")),
        ("c_numeric", json!("string")),
        ("c_text", json!("string")),
        ("c_json", json!("string")),
        ("c_xml", json!("string")),
        ("c_uuid", json!({"type": "string", "logicalType": "uuid"})),
        ("c_enum", json!("string")),
        ("c_bytes", json!("bytes")),
        ("c_date", json!({"type": "int", "logicalType": "date"})),
        (
            "c_time",
            json!({"type": "long", "logicalType": "time-micros"}),
        ),
        ("c_time_ns", json!("string")),
        ("c_mysql_time", json!("long")),
        ("c_timetz", json!("string")),
        (
            "c_ts",
            json!({"type": "long", "logicalType": "local-timestamp-micros"}),
        ),
        ("c_ts_ns", json!("string")),
        (
            "c_tstz",
            json!({"type": "long", "logicalType": "timestamp-micros"}),
        ),
        ("c_tstz_ns", json!("string")),
        ("c_interval", json!("long")),
        ("c_geom", json!("string")),
        ("c_point", json!("string")),
        ("c_list", json!("string")),
        ("c_struct", json!("string")),
    ];
    for (name, ty) in expected {
        assert_eq!(t(name), ty, "{name}");
    }
    // apache-avro reads the logical types as such.
    let parsed = apache_avro::Schema::parse_str(&value_text).expect("parses");
    let apache_avro::Schema::Record(r) = parsed else {
        panic!("a record");
    };
    let logical = |name: &str| {
        let f = r.fields.iter().find(|f| f.name == name).expect("field");
        match &f.schema {
            apache_avro::Schema::Union(u) => u.variants()[1].clone(),
            other => other.clone(),
        }
    };
    assert!(matches!(
        logical("c_ts"),
        apache_avro::Schema::LocalTimestampMicros
    ));
    assert!(matches!(
        logical("c_tstz"),
        apache_avro::Schema::TimestampMicros
    ));
    assert!(matches!(logical("c_uuid"), apache_avro::Schema::Uuid));
    assert!(matches!(logical("c_date"), apache_avro::Schema::Date));
    assert!(matches!(logical("c_time"), apache_avro::Schema::TimeMicros));
    assert!(matches!(logical("c_num"), apache_avro::Schema::Decimal(_)));
}

#[test]
fn names_become_valid_avro_names() {
    assert_eq!(avro_name("order-id"), "order_id");
    assert_eq!(avro_name("1st"), "_1st");
    assert_eq!(avro_name(""), "_");
    assert_eq!(avro_name("ünï"), "_n_");
    assert_eq!(avro_namespace(&TableId::new("", "t")), "t");
    assert_eq!(
        avro_namespace(&TableId::new("my-db.sch", "2tab")),
        "my_db.sch._2tab"
    );
    let s = shape(
        vec![
            ("a-b".into(), ColumnType::Int32),
            ("a_b".into(), ColumnType::Int32),
        ],
        &["a-b"],
    );
    let err = derive(&TableId::new("s", "t"), &s).expect_err("collision");
    assert!(err.contains("\"a_b\""), "{err}");
}

#[test]
fn every_type_round_trips_exactly() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let shape = zoo_shape();
    let mut value = String::from("{\"id\":20");
    for (name, _, json, _) in zoo() {
        value.push_str(&format!(",\"{name}\":{json}"));
    }
    value.push('}');
    let change = fx.change(&shape, ChangeOp::Upsert, "{\"id\":20}", Some(&value));
    let Encoded::Record {
        key,
        value: Some(v),
    } = enc.encode(&change).expect("encodes")
    else {
        panic!("a record with a value");
    };
    let (key, v) = (key.to_vec(), v.to_vec());
    let (key_id, key_text) = schema_of(&reg, "decant.bed.type-zoo-key");
    let (value_id, value_text) = schema_of(&reg, "decant.bed.type-zoo-value");
    let (id, k) = read_framed(&key, &key_text);
    assert_eq!(id, key_id);
    assert_eq!(k, Value::Record(vec![("id".into(), Value::Long(20))]));
    let (id, read) = read_framed(&v, &value_text);
    assert_eq!(id, value_id);
    let Value::Record(read) = read else {
        panic!("a record");
    };
    assert_eq!(read[0], ("id".into(), Value::Long(20)));
    for ((name, _, json, expected), (read_name, got)) in zoo().into_iter().zip(&read[1..]) {
        assert_eq!(read_name, name);
        let got = match got {
            Value::Union(1, v) => (**v).clone(),
            other => panic!("{name}: not the value branch: {other:?}"),
        };
        match (&expected, &got) {
            (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{name}"),
            (Value::Double(a), Value::Double(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{name}"),
            (Value::Uuid(a), Value::Uuid(b)) => assert_eq!(a, b, "{name}"),
            _ => assert_eq!(got, expected, "{name} from {json}"),
        }
    }
    // Once registered, the same shape registers nothing more.
    let before = reg.book().registered.len();
    enc.encode(&change).expect("encodes again");
    assert_eq!(reg.book().registered.len(), before);
    assert_eq!(before, 2);
}

#[test]
fn nulls_and_absent_columns_are_null_and_keys_never_are() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("note".into(), ColumnType::String),
            ("big".into(), ColumnType::String),
        ],
        &["id"],
    );
    // `big` TOAST-missing under emit_without_column: left out of the JSON, null in Avro.
    let c = fx.change(
        &s,
        ChangeOp::Upsert,
        "{\"id\":1}",
        Some("{\"id\":1,\"note\":null}"),
    );
    let Encoded::Record { value: Some(v), .. } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    let v = v.to_vec();
    let (_, text) = schema_of(&reg, "decant.bed.type-zoo-value");
    let (_, read) = read_framed(&v, &text);
    assert_eq!(
        read,
        Value::Record(vec![
            ("id".into(), Value::Int(1)),
            ("note".into(), Value::Union(0, Box::new(Value::Null))),
            ("big".into(), Value::Union(0, Box::new(Value::Null))),
        ])
    );
    let bad = fx.change(&s, ChangeOp::Upsert, "{\"id\":null}", Some("{\"id\":null}"));
    let e = enc.encode(&bad).expect_err("a null key is an error");
    assert_eq!(e.disposition, Disposition::Fatal);
    assert!(chain(&e).contains("null in a non-null"), "{e}");
}

/// A JSON `null` document is the string `null`; SQL NULL in the same kind of column is null.
#[test]
fn a_json_null_document_is_its_text_not_null() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = documents_shape();
    let c = fx.null_document_change(&s);
    let Encoded::Record { value: Some(v), .. } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    let v = v.to_vec();
    let (_, text) = schema_of(&reg, "decant.bed.type-zoo-value");
    let (_, read) = read_framed(&v, &text);
    assert_eq!(
        read,
        Value::Record(vec![
            ("id".into(), Value::Int(1)),
            (
                "doc".into(),
                Value::Union(1, Box::new(Value::String("null".into())))
            ),
            ("other".into(), Value::Union(0, Box::new(Value::Null))),
        ])
    );
}

fn chain(e: &SinkError) -> String {
    decant_model::error_chain(e)
}

#[test]
fn a_delete_is_a_tombstone_with_an_avro_key() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
    let fx = Fixture::new();
    let s = shape(
        vec![
            ("k_int".into(), ColumnType::Int32),
            ("k_text".into(), ColumnType::String),
            ("v".into(), ColumnType::Int64),
        ],
        &["k_int", "k_text"],
    );
    let c = fx.change(&s, ChangeOp::Delete, "{\"k_int\":1,\"k_text\":\"a\"}", None);
    let Encoded::Record { key, value } = enc.encode(&c).expect("encodes") else {
        panic!("a record");
    };
    assert_eq!(value, None, "a tombstone");
    let key = key.to_vec();
    let (id, text) = schema_of(&reg, "decant.bed.type-zoo-key");
    let (read_id, k) = read_framed(&key, &text);
    assert_eq!(read_id, id);
    assert_eq!(
        k,
        Value::Record(vec![
            ("k_int".into(), Value::Int(1)),
            ("k_text".into(), Value::String("a".into())),
        ])
    );
    // A truncate's delete carries no shape: the table's last one is used.
    let empty = shape(Vec::new(), &[]);
    let t = fx.change(
        &empty,
        ChangeOp::Truncate,
        "{\"k_int\":2,\"k_text\":\"b\"}",
        None,
    );
    let Encoded::Record { key, value: None } = enc.encode(&t).expect("encodes") else {
        panic!("a tombstone");
    };
    assert_eq!(read_framed(key, &text).0, id);
    // … and after a restart, the registry's latest key schema.
    let mut fresh = AvroEncoder::new(Box::new(reg.clone()));
    let Encoded::Record { key, value: None } = fresh.encode(&t).expect("encodes") else {
        panic!("a tombstone");
    };
    let (read_id, k) = read_framed(key, &text);
    assert_eq!(read_id, id);
    assert_eq!(
        k,
        Value::Record(vec![
            ("k_int".into(), Value::Int(2)),
            ("k_text".into(), Value::String("b".into())),
        ])
    );
}

#[test]
fn a_new_column_registers_a_compatible_value_schema_first() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
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
    let old = old.to_vec();
    let (v1_id, v1_text) = schema_of(&reg, "decant.bed.type-zoo-value");
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
    let (v2_id, v2_text) = schema_of(&reg, "decant.bed.type-zoo-value");
    assert_ne!(v1_id, v2_id, "a second version");
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
    assert_eq!(read_framed(&new, &v2_text).0, v2_id);
    // BACKWARD compatible: the new schema reads a record written with the old one (the new
    // column as its default, null).
    let writer = apache_avro::Schema::parse_str(&v1_text).expect("v1");
    let reader = apache_avro::Schema::parse_str(&v2_text).expect("v2");
    let read = apache_avro::from_avro_datum(&writer, &mut &old[5..], Some(&reader)).expect("reads");
    assert_eq!(
        read,
        Value::Record(vec![
            ("id".into(), Value::Int(1)),
            (
                "a".into(),
                Value::Union(1, Box::new(Value::String("x".into())))
            ),
            ("added".into(), Value::Union(0, Box::new(Value::Null))),
        ])
    );
    // Old-shape records after the change (another partition's backlog) go back to v1.
    let Encoded::Record {
        value: Some(again), ..
    } = enc.encode(&c1).expect("v1 again")
    else {
        panic!("a record");
    };
    assert_eq!(read_framed(again, &v1_text).0, v1_id);
    assert_eq!(reg.book().registered.len(), 3);
}

#[test]
fn a_key_column_left_out_of_the_value_keeps_its_type() {
    let reg = FakeRegistry::default();
    let mut enc = AvroEncoder::new(Box::new(reg.clone()));
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
        key,
        value: Some(_),
    } = enc.encode(&c).expect("encodes")
    else {
        panic!("a record");
    };
    let (_, text) = schema_of(&reg, "decant.bed.type-zoo-key");
    let (_, k) = read_framed(key, &text);
    assert_eq!(
        k,
        Value::Record(vec![(
            "id".into(),
            Value::Uuid(
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                    .parse()
                    .expect("uuid")
            )
        )])
    );
    let (_, value_text) = schema_of(&reg, "decant.bed.type-zoo-value");
    assert!(!value_text.contains("\"id\""), "{value_text}");
}

#[test]
fn twos_complement_is_minimal() {
    assert_eq!(minimal_twos_complement(&[0, 0, 0x7f]), [0x7f]);
    assert_eq!(minimal_twos_complement(&[0, 0, 0x80]), [0, 0x80]);
    assert_eq!(minimal_twos_complement(&[0xff, 0xff, 0x80]), [0x80]);
    assert_eq!(minimal_twos_complement(&[0xff, 0xff, 0x7f]), [0xff, 0x7f]);
    assert_eq!(minimal_twos_complement(&[0, 0]), [0]);
}
