//! Envelope kinds and type encodings the corpus and the PostgreSQL captures do not reach:
//! heartbeats, transaction metadata, truncate and logical messages, JSON_SR framing (value and
//! key; typed by the registered JSON Schema, or schemaless under an open one), DynamoDB (Confluent CDC envelope and Streams records), TOAST placeholder forms,
//! VariableScaleDecimal, MySQL-precise unsigned, Bits, binary handling modes, ±infinity,
//! and the errors for values that do not fit.

use decant_decode::render::render_in_order;
use decant_decode::{
    BinaryText, DeclaredTable, Decoder, DecoderConfig, Outcome, SchemaFormat, StaticResolver,
};
use decant_model::{ControlEvent, KafkaRecord, TableId};
use serde_json::{Value as Json, json};

fn rec<'a>(topic: &'a str, key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> KafkaRecord<'a> {
    KafkaRecord {
        topic,
        partition: 0,
        offset: 7,
        timestamp_ms: None,
        headers: &[],
        key,
        value,
    }
}

/// Decodes one record and returns its rendered line(s).
fn one(dec: &mut Decoder, r: KafkaRecord) -> Vec<Json> {
    let mut controls = Vec::new();
    match dec.decode(&r).unwrap_or_else(|e| panic!("{e}")) {
        Outcome::Control(c) => controls.push(*c),
        Outcome::Row { .. } => {}
    }
    let batches = dec.take_batches().expect("batches");
    let mut text = String::new();
    render_in_order(&batches, &controls, &mut text);
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn control(dec: &mut Decoder, value: &str) -> ControlEvent {
    match dec
        .decode(&rec("t", None, Some(value.as_bytes())))
        .unwrap_or_else(|e| panic!("{e}"))
    {
        Outcome::Control(c) => c.event,
        other => panic!("expected a control record, got {other:?}"),
    }
}

#[test]
fn control_records_are_never_rows() {
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    assert_eq!(
        control(
            &mut dec,
            r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat"},"payload":{"ts_ms":1700000000000}}"#
        ),
        ControlEvent::Heartbeat
    );
    assert_eq!(
        control(&mut dec, r#"{"ts_ms":1700000000000}"#),
        ControlEvent::Heartbeat
    );
    assert_eq!(
        control(
            &mut dec,
            r#"{"status":"BEGIN","id":"571:53195829","event_count":null,"data_collections":null,"ts_ms":1}"#
        ),
        ControlEvent::TransactionBegin {
            id: "571:53195829".into()
        }
    );
    assert_eq!(
        control(
            &mut dec,
            r#"{"status":"END","id":"571:53195829","event_count":2,"data_collections":[{"data_collection":"s.a","event_count":2}],"ts_ms":1}"#
        ),
        ControlEvent::TransactionEnd {
            id: "571:53195829".into(),
            event_count: Some(2)
        }
    );
    assert_eq!(
        control(
            &mut dec,
            r#"{"source":{"db":"postgres","schema":"public","table":"orders","lsn":1},"op":"t","ts_ms":1}"#
        ),
        ControlEvent::Truncate
    );
    assert_eq!(
        control(
            &mut dec,
            r#"{"source":{"db":"postgres","lsn":2},"op":"m","ts_ms":1,"message":{"prefix":"audit","content":"aGk="}}"#
        ),
        ControlEvent::Message {
            prefix: "audit".into(),
            content_b64: Some("aGk=".into())
        }
    );
    assert_eq!(
        control(
            &mut dec,
            r#"{"source":{"db":"inventory"},"databaseName":"inventory","ddl":"ALTER TABLE t ADD c INT","tableChanges":[]}"#
        ),
        ControlEvent::SchemaChange {
            ddl: Some("ALTER TABLE t ADD c INT".into())
        }
    );
    assert_eq!(dec.pending_rows(), 0);
}

#[test]
fn json_sr_framed_value_and_key() {
    let resolver = StaticResolver::new()
        .with(5, SchemaFormat::Json, r#"{"type":"object"}"#)
        .with(6, SchemaFormat::Json, r#"{"type":"object"}"#);
    let mut cfg = DecoderConfig::default();
    cfg.tables.insert(
        TableId::parse("public.t"),
        DeclaredTable {
            columns: vec![("id".into(), "int64".into()), ("v".into(), "string".into())],
            key: vec![],
        },
    );
    let mut dec = Decoder::new(cfg)
        .expect("config")
        .with_resolver(Box::new(resolver));
    let frame = |id: u8, body: &str| {
        let mut v = vec![0, 0, 0, 0, id];
        v.extend_from_slice(body.as_bytes());
        v
    };
    let key = frame(6, r#"{"id":42}"#);
    let value = frame(
        5,
        r#"{"before":null,"after":{"id":42,"v":"x"},"source":{"schema":"public","table":"t"},"op":"c"}"#,
    );
    let out = one(&mut dec, rec("p.public.t", Some(&key), Some(&value)));
    assert_eq!(
        out[0]["key"],
        json!({"id": 42}),
        "key columns named by the framed key"
    );
    assert_eq!(out[0]["row"], json!({"id": 42, "v": "x"}));
    let del = frame(
        5,
        r#"{"before":null,"after":null,"source":{"schema":"public","table":"t"},"op":"d"}"#,
    );
    let out = one(&mut dec, rec("p.public.t", Some(&key), Some(&del)));
    assert_eq!(out[0]["op"], "delete");
    assert_eq!(
        out[0]["key"],
        json!({"id": 42}),
        "delete identified by the framed key"
    );
}

/// A JSON_SR envelope in Kafka Connect's JSON Schema conventions (what Confluent's
/// JsonSchemaConverter registers for a Debezium PostgreSQL table).
const JSON_SR_ENVELOPE: &str = r##"{"type":"object","title":"p.public.t.Envelope","properties":{
    "before":{"oneOf":[{"type":"null"},{"$ref":"#/definitions/row"}],"connect.index":0},
    "after":{"oneOf":[{"type":"null"},{"$ref":"#/definitions/row"}],"connect.index":1},
    "source":{"type":"object","title":"io.debezium.connector.postgresql.Source","connect.index":2,"properties":{
        "schema":{"type":"string","connect.index":0},"table":{"type":"string","connect.index":1},
        "lsn":{"oneOf":[{"type":"null"},{"type":"integer","connect.type":"int64"}],"connect.index":2}}},
    "op":{"type":"string","connect.index":3}},
  "definitions":{"row":{"type":"object","title":"p.public.t.Value","properties":{
    "id":{"type":"integer","connect.type":"int32","connect.index":0},
    "price":{"oneOf":[{"type":"null"},{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.type":"bytes","connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"}}],"connect.index":1},
    "raw":{"oneOf":[{"type":"null"},{"type":"string","connect.type":"bytes"}],"connect.index":2},
    "ts":{"oneOf":[{"type":"null"},{"type":"integer","title":"io.debezium.time.MicroTimestamp","connect.type":"int64","connect.version":1}],"connect.index":3},
    "tags":{"oneOf":[{"type":"null"},{"type":"array","items":{"oneOf":[{"type":"null"},{"type":"string"}]}}],"connect.index":4},
    "attrs":{"oneOf":[{"type":"null"},{"type":"object","connect.type":"map","additionalProperties":{"type":"integer","connect.type":"int32"}}],"connect.index":5}}}}}"##;

#[test]
fn json_sr_documents_are_typed_by_their_registered_schema() {
    let resolver = StaticResolver::new()
        .with(11, SchemaFormat::Json, JSON_SR_ENVELOPE)
        .with(
            12,
            SchemaFormat::Json,
            r#"{"type":"object","title":"p.public.t.Key","properties":{"id":{"type":"integer","connect.type":"int32","connect.index":0}}}"#,
        );
    // No declared table and no inference: the registered schemas alone type the records.
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(resolver));
    let frame = |id: u8, body: &str| {
        let mut v = vec![0, 0, 0, 0, id];
        v.extend_from_slice(body.as_bytes());
        v
    };
    let key = frame(12, r#"{"id":1}"#);
    // A Decimal as a JSON number (JsonSchemaConverter) and as base64 bytes (JsonConverter).
    for price in ["12.5", r#""BOI=""#] {
        let value = frame(
            11,
            &format!(
                r#"{{"before":null,"after":{{"id":1,"price":{price},"raw":"AQI=","ts":1596001099434000,"tags":["a",null],"attrs":{{"k":2}}}},"source":{{"schema":"public","table":"t","lsn":5}},"op":"c"}}"#
            ),
        );
        let r = rec("p.public.t", Some(&key), Some(&value));
        assert!(matches!(dec.decode(&r), Ok(Outcome::Row { .. })));
        let batches = dec.take_batches().expect("batches");
        let schema = &batches[0].schema;
        let types: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {:?} {}", c.name, c.ty, c.nullable))
            .collect();
        assert_eq!(
            types,
            [
                "id Int32 false",
                "price Decimal { precision: 10, scale: 2 } true",
                "raw Binary true",
                "ts Timestamp(Micros) true",
                "tags List(String) true",
                "attrs Json true",
            ]
        );
        assert_eq!(schema.key, [0], "the key schema names the key column");
        let mut text = String::new();
        render_in_order(&batches, &[], &mut text);
        let line: Json = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(line["key"], json!({"id": 1}));
        assert_eq!(
            line["row"],
            json!({"id": 1, "price": "12.50", "raw": "AQI=", "ts": "2020-07-29T05:38:19.434000",
                   "tags": ["a", null], "attrs": {"k": 2}}),
            "price {price}"
        );
    }
    let delete = frame(
        11,
        r#"{"before":null,"after":null,"source":{"schema":"public","table":"t","lsn":6},"op":"d"}"#,
    );
    let out = one(&mut dec, rec("p.public.t", Some(&key), Some(&delete)));
    assert_eq!(
        (&out[0]["op"], &out[0]["key"]),
        (&json!("delete"), &json!({"id": 1}))
    );
    // A null document is a tombstone, as a null value is.
    let null = frame(11, "null");
    let out = one(&mut dec, rec("p.public.t", Some(&key), Some(&null)));
    assert_eq!(out[0]["op"], "tombstone");
}

#[test]
fn json_sr_schemas_without_a_connect_equivalent_are_refused_by_field() {
    let union = JSON_SR_ENVELOPE.replace(
        r#""raw":{"oneOf":[{"type":"null"},{"type":"string","connect.type":"bytes"}]"#,
        r#""raw":{"oneOf":[{"type":"null"},{"type":"string"},{"type":"integer"}]"#,
    );
    assert_ne!(union, JSON_SR_ENVELOPE);
    let resolver = StaticResolver::new().with(21, SchemaFormat::Json, union);
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(resolver));
    let mut value = vec![0, 0, 0, 0, 21];
    value.extend_from_slice(
        br#"{"before":null,"after":{"id":1,"raw":"x"},"source":{"schema":"public","table":"t"},"op":"c"}"#,
    );
    let e = dec
        .decode(&rec("p.public.t", None, Some(&value)))
        .expect_err("an unsupported schema is refused");
    assert_eq!(e.class(), "schema");
    let message = e.to_string();
    assert!(
        message.contains("schema id 21 (JSON Schema): field before.raw:")
            && message.contains("union"),
        "{message}"
    );
    assert_eq!(dec.pending_rows(), 0);
}

#[test]
fn dynamodb_streams_records_keep_numbers_exact() {
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    let insert = r#"{"eventID":"1","eventName":"INSERT","eventSource":"aws:dynamodb","eventSourceARN":"arn:aws:dynamodb:eu-west-1:1:table/Orders/stream/2024","dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys":{"pk":{"S":"o-1"}},"NewImage":{"pk":{"S":"o-1"},"total":{"N":"12345678901234567890.125"},"paid":{"BOOL":true},"note":{"NULL":true},"blob":{"B":"AQID"},"tags":{"SS":["a","b"]},"qty":{"NS":["1","2.5"]},"items":{"L":[{"M":{"sku":{"S":"x"},"n":{"N":"3"}}}]}},"SequenceNumber":"111","StreamViewType":"NEW_AND_OLD_IMAGES"}}"#;
    let out = one(&mut dec, rec("ddb.orders", None, Some(insert.as_bytes())));
    assert_eq!(out[0]["table"], "Orders");
    assert_eq!(out[0]["key"], json!({"pk": "o-1"}));
    let row = &out[0]["row"];
    assert_eq!(
        row["total"], "12345678901234567890.125",
        "N never goes through f64"
    );
    assert_eq!(row["paid"], true);
    assert_eq!(row["note"], Json::Null);
    assert_eq!(row["blob"], "AQID");
    assert_eq!(row["tags"], json!(["a", "b"]));
    assert_eq!(row["qty"], json!(["1", "2.5"]));
    assert_eq!(row["items"], json!([{"sku": "x", "n": 3}]));
    assert_eq!(out[0]["source"]["scn"], "111");
    let remove = r#"{"eventName":"REMOVE","eventSourceARN":"arn:aws:dynamodb:eu-west-1:1:table/Orders/stream/2024","dynamodb":{"Keys":{"pk":{"S":"o-1"}},"OldImage":{"pk":{"S":"o-1"}},"SequenceNumber":"112"}}"#;
    let out = one(&mut dec, rec("ddb.orders", None, Some(remove.as_bytes())));
    assert_eq!(out[0]["op"], "delete");
    assert_eq!(out[0]["key"], json!({"pk": "o-1"}));
}

#[test]
fn confluent_dynamodb_cdc_envelope_with_lowercase_tags() {
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    let doc = r#"{\"id\":{\"s\":\"k1\"},\"price\":{\"n\":\"0.1\"},\"attrs\":{\"m\":{\"a\":{\"n\":\"1\"}}}}"#;
    let value = format!(
        r#"{{"op":"c","before":null,"after":{{"document":"{doc}"}},"source":{{"version":"1","tableName":"shop"}},"ts_ms":1}}"#
    );
    let out = one(
        &mut dec,
        rec(
            "dynamo.shop",
            Some(br#"{"id":"k1"}"#),
            Some(value.as_bytes()),
        ),
    );
    assert_eq!(out[0]["table"], "shop");
    assert_eq!(
        out[0]["row"],
        json!({"id": "k1", "price": "0.1", "attrs": {"a": 1}})
    );
    assert_eq!(out[0]["key"], json!({"id": "k1"}));
}

fn schema_msg(fields: &str, after: &str) -> String {
    format!(
        r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","fields":[{fields}],"optional":true,"name":"p.s.t.Value","field":"after"}},{{"type":"struct","fields":[],"optional":false,"field":"source"}},{{"type":"string","optional":false,"field":"op"}}],"optional":false,"name":"p.s.t.Envelope"}},"payload":{{"after":{after},"source":{{"schema":"s","table":"t"}},"op":"u"}}}}"#
    )
}

#[test]
fn semantic_types_and_toast_placeholder_forms() {
    let fields = r#"{"type":"int32","optional":false,"field":"id"},
        {"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","field":"vsd"},
        {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0","connect.decimal.precision":"20"},"field":"big_un"},
        {"type":"bytes","optional":true,"name":"io.debezium.data.Bits","parameters":{"length":"16"},"field":"bits"},
        {"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"inf"},
        {"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","field":"ninf"},
        {"type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp","field":"nanos"},
        {"type":"string","optional":true,"field":"t"},
        {"type":"bytes","optional":true,"field":"b"},
        {"type":"array","items":{"type":"int32"},"optional":true,"field":"ia"},
        {"type":"array","items":{"type":"string"},"optional":true,"field":"ta"},
        {"type":"array","items":{"type":"string","name":"io.debezium.data.Uuid"},"optional":true,"field":"ua"},
        {"type":"string","optional":true,"name":"io.debezium.data.Json","field":"j"}"#;
    let p = "__debezium_unavailable_value";
    let after = format!(
        r#"{{"id":1,"vsd":{{"scale":3,"value":"AeI="}},"big_un":"AP//////////","bits":"AQI=","inf":9223372036825200000,"ninf":"-infinity","nanos":1500,"t":"{p}","b":"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==","ia":[95,95,100,101,98,101,122,105,117,109,95,117,110,97,118,97,105,108,97,98,108,101,95,118,97,108,117,101],"ta":["{p}"],"ua":["b68a35a7-17ad-35b3-af2a-ae46edb4545a"],"j":"{p}"}}"#
    );
    let msg = schema_msg(fields, &after);
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    let out = one(&mut dec, rec("p.s.t", None, Some(msg.as_bytes())));
    let row = &out[0]["row"];
    assert_eq!(row["vsd"], "0.482");
    assert_eq!(row["big_un"], "18446744073709551615");
    assert_eq!(row["bits"], "AQI=");
    assert_eq!(row["inf"], "infinity");
    assert_eq!(row["ninf"], "-infinity");
    assert_eq!(row["nanos"], "1970-01-01T00:00:00.000001500");
    assert_eq!(
        out[0]["unchanged"],
        json!(["t", "b", "ia", "ta", "ua", "j"]),
        "every placeholder form is reported, never decoded as data"
    );
    for c in ["t", "b", "ia", "ta", "ua", "j"] {
        assert!(row.get(c).is_none(), "{c} must not appear as data");
    }
}

#[test]
fn binary_handling_modes_through_declared_types_and_propagated_source_types() {
    let mut cfg = DecoderConfig {
        binary_handling_mode: Some(BinaryText::Hex),
        ..Default::default()
    };
    cfg.tables.insert(
        TableId::parse("s.declared"),
        DeclaredTable {
            columns: vec![
                ("id".into(), "int32".into()),
                ("h".into(), "bytes_hex".into()),
                ("u".into(), "bytes_base64_url_safe".into()),
            ],
            key: vec!["id".into()],
        },
    );
    let mut dec = Decoder::new(cfg).expect("config");
    let out = one(
        &mut dec,
        rec("x", None, Some(br#"{"after":{"id":1,"h":"deadbeef","u":"-_8"},"source":{"schema":"s","table":"declared"},"op":"c"}"#)),
    );
    assert_eq!(
        out[0]["row"],
        json!({"id": 1, "h": "3q2+7w==", "u": "+/8="})
    );
    // With column.propagate.source.type the schema says the string was a BYTEA.
    let fields = r#"{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"parameters":{"__debezium.source.column.type":"BYTEA"},"field":"h"}"#;
    let out = one(
        &mut dec,
        rec(
            "p.s.t",
            None,
            Some(schema_msg(fields, r#"{"id":2,"h":"00ff"}"#).as_bytes()),
        ),
    );
    assert_eq!(out[0]["row"], json!({"id": 2, "h": "AP8="}));
}

#[test]
fn values_that_do_not_fit_are_errors_naming_the_field() {
    let fields = r#"{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"4"},"field":"d"},{"type":"int16","optional":true,"field":"s"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","field":"z"},
        {"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","field":"ms"},
        {"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"day"},
        {"type":"string","optional":true,"name":"io.debezium.time.IsoDate","field":"iso"},
        {"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","field":"vsd"}"#;
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    for (after, field, expected) in [
        (r#"{"id":1,"d":"AYag"}"#, "after.d", "precision"),
        (r#"{"id":1,"s":70000}"#, "after.s", "range"),
        (
            r#"{"id":1,"z":"2020-01-01T00:00:00.123456789Z"}"#,
            "after.z",
            "microsecond",
        ),
        (r#"{"id":"one"}"#, "after.id", "an integer"),
        // Beyond i64 µs once multiplied: an error, not ±infinity.
        (
            r#"{"id":1,"ms":9223372036854776}"#,
            "after.ms",
            "found a number 9223372036854776",
        ),
        (r#"{"id":1,"day":2147483648}"#, "after.day", "range"),
        (
            r#"{"id":1,"iso":"99999999999999999-01-01"}"#,
            "after.iso",
            "an ISO date",
        ),
        // A scale that would wrap as i32, or be written out as billions of zeros.
        (
            r#"{"id":1,"vsd":{"scale":4294967298,"value":"AeI="}}"#,
            "after.vsd",
            "scale within",
        ),
    ] {
        let msg = schema_msg(fields, after);
        let err = dec
            .decode(&rec("p.s.t", None, Some(msg.as_bytes())))
            .expect_err("must not decode");
        let text = err.to_string();
        assert!(text.starts_with("p.s.t/0@7: field "), "{text}");
        assert_eq!(err.field(), Some(field), "{text}");
        assert!(text.contains(expected), "{text}");
        assert_eq!(
            dec.pending_rows(),
            0,
            "nothing of a failed record stays behind"
        );
    }
}
