//! Primary-key changes: Debezium sends the delete of the old key with the header
//! `__debezium.newkey` and the create of the new key with `__debezium.oldkey`. The decoder reads
//! the other key into `RowMeta::key_change` (typed, like a record key) and `decant decode`
//! renders it as `new_key` / `old_key`; a header that does not decode as the table's key leaves
//! the row as it is, without the other key.

use decant_decode::render::render_in_order;
use decant_decode::{Decoder, DecoderConfig, Outcome};
use decant_model::{ChangeKind, Header, KafkaRecord};
use serde_json::{Value as Json, json};

const SOURCE: &str = r#"{"version":"3.6.3.Final","connector":"postgresql","name":"p","ts_ms":1,"snapshot":"false","db":"postgres","schema":"s","table":"t","txId":1,"lsn":10}"#;

fn decoder() -> Decoder {
    Decoder::new(DecoderConfig::default().declare(
        "s.t",
        &["k_int", "k_text"],
        &[
            ("k_int", "int32"),
            ("k_text", "string"),
            ("amount", "decimal_string(10,2)"),
            ("big", "string"),
        ],
    ))
    .expect("config")
}

/// Decodes `(value, headers)` records in order and renders every line.
fn decode(dec: &mut Decoder, records: &[(String, Vec<(&str, &str)>)]) -> Vec<Json> {
    for (i, (value, headers)) in records.iter().enumerate() {
        let headers: Vec<Header> = headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: Some(v.as_bytes()),
            })
            .collect();
        let rec = KafkaRecord {
            topic: "p.s.t",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            headers: &headers,
            key: None,
            value: Some(value.as_bytes()),
        };
        match dec.decode(&rec) {
            Ok(Outcome::Row { .. }) => {}
            other => panic!("record {i}: {other:?}"),
        }
    }
    let batches = dec.take_batches().expect("batches");
    let mut text = String::new();
    render_in_order(&batches, &[], &mut text);
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn event(op: &str, before: &str, after: &str) -> String {
    format!(r#"{{"before":{before},"after":{after},"source":{SOURCE},"op":"{op}","ts_ms":1}}"#)
}

#[test]
fn both_halves_of_a_key_change_name_the_other_key() {
    let mut dec = decoder();
    let lines = decode(
        &mut dec,
        &[
            (
                event(
                    "c",
                    "null",
                    r#"{"k_int":1,"k_text":"a","amount":"1.50","big":"X"}"#,
                ),
                vec![],
            ),
            // SimpleHeaderConverter (the worker default) writes the key struct as JSON text.
            (
                event(
                    "d",
                    r#"{"k_int":1,"k_text":"a","amount":null,"big":null}"#,
                    "null",
                ),
                vec![
                    ("__debezium.context.taskId", "0"),
                    ("__debezium.newkey", r#"{"k_int":1,"k_text":"b"}"#),
                ],
            ),
            // JsonConverter as the header converter: a schema/payload envelope.
            (
                event(
                    "c",
                    "null",
                    r#"{"k_int":1,"k_text":"b","amount":"1.50","big":"__debezium_unavailable_value"}"#,
                ),
                vec![(
                    "__debezium.oldkey",
                    r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"k_int"},{"type":"string","optional":false,"field":"k_text"}],"optional":false,"name":"p.s.t.Key"},"payload":{"k_int":1,"k_text":"a"}}"#,
                )],
            ),
        ],
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[0].get("old_key").is_none() && lines[0].get("new_key").is_none());
    assert_eq!(lines[1]["op"], "delete");
    assert_eq!(lines[1]["key"], json!({"k_int":1,"k_text":"a"}));
    assert_eq!(lines[1]["new_key"], json!({"k_int":1,"k_text":"b"}));
    assert!(lines[1].get("old_key").is_none());
    assert_eq!(lines[2]["op"], "upsert");
    assert_eq!(lines[2]["key"], json!({"k_int":1,"k_text":"b"}));
    assert_eq!(lines[2]["old_key"], json!({"k_int":1,"k_text":"a"}));
    assert_eq!(lines[2]["unchanged"], json!(["big"]));
}

#[test]
fn the_other_key_is_typed_like_a_record_key() {
    let mut dec = decoder();
    dec.decode(&KafkaRecord::value_only(
        "p.s.t",
        0,
        0,
        event(
            "c",
            "null",
            r#"{"k_int":7,"k_text":"x","amount":"2.00","big":"Y"}"#,
        )
        .as_bytes(),
    ))
    .expect("decodes");
    let headers = [Header {
        key: "__debezium.oldkey",
        value: Some(br#"{"k_int":6,"k_text":"w"}"#),
    }];
    let value = event(
        "c",
        "null",
        r#"{"k_int":7,"k_text":"y","amount":"2.00","big":"Z"}"#,
    );
    let rec = KafkaRecord {
        headers: &headers,
        ..KafkaRecord::value_only("p.s.t", 0, 1, value.as_bytes())
    };
    dec.decode(&rec).expect("decodes");
    let batches = dec.take_batches().expect("batches");
    let meta = &batches[0].meta[1];
    let other = meta.key_change.as_deref().expect("the old key");
    assert_eq!(other.len(), 1);
    assert_eq!(
        other.meta[0].kind,
        ChangeKind::Delete,
        "the other half is the old key's delete"
    );
    assert_eq!(other.schema.table, batches[0].schema.table);
    assert!(batches[0].meta[0].key_change.is_none());
}

#[test]
fn a_header_that_is_not_the_tables_key_is_left_out() {
    let mut dec = decoder();
    let bad = [
        "not json",
        r#"["k_int",1]"#,
        r#"{"k_int":"one","k_text":"a"}"#,
        r#"{"k_int":1}"#,
    ];
    let records: Vec<(String, Vec<(&str, &str)>)> = bad
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                event(
                    "c",
                    "null",
                    &format!(r#"{{"k_int":{i},"k_text":"b","amount":"1.00","big":"X"}}"#),
                ),
                vec![("__debezium.oldkey", *h)],
            )
        })
        .collect();
    let lines = decode(&mut dec, &records);
    assert_eq!(lines.len(), bad.len(), "every row decodes");
    for (l, h) in lines.iter().zip(bad) {
        assert!(l.get("old_key").is_none(), "{h}: {l}");
    }
}
