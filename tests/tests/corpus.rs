//! Every file of `../shared/corpus` decoded and checked against what its source project expects
//! (`.expected.jsonl` change lists or `.expected-state.jsonl` final states), or — where the
//! project asserts only the wire values — against those values decoded by hand from the spec.

use std::collections::HashMap;
use std::fs;

use decant_decode::{Decoder, DecoderConfig, SchemaFormat, StaticResolver, TombstonePolicy};
use decant_tests::{
    Input, Run, corpus_dir, decode_all, final_state, json_lines, key_text, row_matches,
    values_match,
};
use serde_json::{Value as Json, json};

fn read(rel: &str) -> String {
    let p = corpus_dir().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn lines_as_inputs(rel: &str, topic: &str) -> Vec<Input> {
    json_lines(&read(rel))
        .iter()
        .enumerate()
        .map(|(i, l)| Input::value(topic, i as i64, l.as_bytes()))
        .collect()
}

fn declared(table: &str, key: &[&str], cols: &[(&str, &str)]) -> DecoderConfig {
    DecoderConfig::default().declare(table, key, cols)
}

fn decoder(cfg: DecoderConfig) -> Decoder {
    Decoder::new(cfg).expect("valid config")
}

fn products(table: &str) -> DecoderConfig {
    declared(
        table,
        &["id"],
        &[
            ("id", "int32"),
            ("name", "string"),
            ("description", "string"),
            ("weight", "float32"),
        ],
    )
}

fn expected_lines(rel: &str) -> Vec<Json> {
    json_lines(&read(rel))
        .iter()
        .map(|l| serde_json::from_str(l).expect("expected file is JSON"))
        .collect()
}

/// Checks decoded changes against Flink-style `+I/-U/+U/-D` expectations: every `+I`/`+U` is
/// an upsert of that row, every `-D` a delete whose key/image matches that row, in order.
fn assert_changes(run: &Run, expected: &[Json], id_col: &str) {
    assert!(run.errors.is_empty(), "errors: {:?}", run.errors);
    let want: Vec<&Json> = expected.iter().filter(|e| e["op"] != "-U").collect();
    let got: Vec<&Json> = run.rows().collect();
    assert_eq!(got.len(), want.len(), "change count; got {got:#?}");
    for (g, w) in got.iter().zip(&want) {
        match w["op"].as_str() {
            Some("+I" | "+U") => {
                assert_eq!(g["op"], "upsert", "{g} vs {w}");
                let row = g["row"].as_object().expect("upsert has row");
                assert!(row_matches(&w["row"], row), "row {g} vs expected {w}");
            }
            Some("-D") => {
                assert_eq!(g["op"], "delete", "{g} vs {w}");
                assert!(
                    values_match(&w["row"][id_col], &g["key"][id_col]),
                    "delete key {g} vs expected {w}"
                );
            }
            other => panic!("unexpected expected op {other:?}"),
        }
    }
}

#[test]
fn flink_json_with_and_without_schema() {
    for (file, topic, table) in [
        (
            "flink/debezium-data-schema-exclude",
            "dbserver1.inventory.products",
            "inventory.products",
        ),
        (
            "flink/debezium-data-schema-include",
            "dbserver1.inventory.products",
            "inventory.products",
        ),
        (
            "flink/debezium-postgres-data-schema-exclude",
            "fullfillment.inventory.products",
            "inventory.products",
        ),
        (
            "flink/debezium-postgres-data-schema-include",
            "fullfillment.inventory.products",
            "inventory.products",
        ),
    ] {
        let mut dec = decoder(products(table));
        let run = decode_all(&mut dec, &lines_as_inputs(&format!("{file}.txt"), topic));
        assert_changes(
            &run,
            &expected_lines(&format!("{file}.expected.jsonl")),
            "id",
        );
        assert!(
            run.rows().all(|r| r["table"] == table),
            "{file}: table named from source"
        );
    }
}

#[test]
fn flink_postgres_replica_identity_default_decodes_where_flink_fails() {
    // Flink stops at line 10 (an update with before = null). decant decodes the whole file, and
    // its final state equals that of the same changes captured with REPLICA IDENTITY FULL.
    let topic = "fullfillment.inventory.products";
    let mut dec = decoder(products("inventory.products"));
    let run = decode_all(
        &mut dec,
        &lines_as_inputs("flink/debezium-postgres-data-replica-identity.txt", topic),
    );
    let expected = expected_lines("flink/debezium-postgres-data-replica-identity.expected.jsonl");
    let error_line = expected
        .iter()
        .find_map(|e| e["line"].as_u64())
        .expect("expected file names Flink's failing line");
    assert_eq!(error_line, 10);
    // Only the last record fails: a delete with before = null, after = null and no key
    // identifies no row. It is reported with its coordinates, never silently dropped.
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    assert_eq!(run.errors[0].0, 15);
    assert!(
        run.errors[0].1.contains("@15: delete without"),
        "{:?}",
        run.errors
    );
    let mut full = decoder(products("inventory.products"));
    let mut full_inputs = lines_as_inputs("flink/debezium-postgres-data-schema-exclude.txt", topic);
    full_inputs.truncate(15);
    let full_run = decode_all(&mut full, &full_inputs);
    assert_eq!(
        final_state(&run.changes, key_text),
        final_state(&full_run.changes, key_text)
    );
    assert_eq!(final_state(&run.changes, key_text).len(), 11);
}

#[test]
fn flink_confluent_avro() {
    let schema = read("flink/debezium-test-schema.json");
    for name in ["insert", "update", "delete"] {
        let mut value = fs::read(corpus_dir().join(format!("flink/debezium-avro-{name}.avro")))
            .expect("avro file");
        // The resource files end with a newline that is not part of the Kafka value (Flink's
        // reader ignores trailing bytes; decant rejects them as corruption).
        if value.last() == Some(&b'\n') {
            value.pop();
        }
        let resolver = StaticResolver::new().with(81, SchemaFormat::Avro, schema.clone());
        let mut dec = decoder(DecoderConfig::default()).with_resolver(Box::new(resolver));
        let run = decode_all(
            &mut dec,
            &[Input::value("fullfillment.test1.person", 0, &value)],
        );
        assert_changes(
            &run,
            &expected_lines(&format!("flink/debezium-avro-{name}.expected.jsonl")),
            "id",
        );
        assert!(run.rows().all(|r| r["table"] == "test1.person"));
    }
}

#[test]
fn debezium_serde_fixtures() {
    let one = |rel: &str, cfg: DecoderConfig| -> Run {
        let text = read(rel);
        let mut dec = decoder(cfg);
        decode_all(
            &mut dec,
            &[Input::value(
                "dbserver1.inventory.customers",
                0,
                text.as_bytes(),
            )],
        )
    };
    let customers = || {
        declared(
            "inventory.customers",
            &["id"],
            &[
                ("id", "int32"),
                ("first_name", "string"),
                ("last_name", "string"),
                ("email", "string"),
                ("middle_name", "string"),
            ],
        )
    };
    for (file, expected) in [
        (
            "debezium/serde-with-schema.json",
            "debezium/serde-with-schema.expected.jsonl",
        ),
        (
            "debezium/serde-without-schema.json",
            "debezium/serde-without-schema.expected.jsonl",
        ),
        (
            "debezium/serde-update.json",
            "debezium/serde-update.expected.jsonl",
        ),
    ] {
        assert_changes(&one(file, customers()), &expected_lines(expected), "id");
    }
    // Unknown top-level members are ignored (Debezium's serde needs a flag for that).
    let run = one("debezium/serde-unknown-property.json", customers());
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.rows().count(), 1);
    // A bare row (already unwrapped by ExtractNewRecordState) is not a change event: rejected
    // with a clear error, never guessed into a row.
    let run = one("debezium/serde-unwrapped.json", customers());
    assert_eq!(run.errors.len(), 1);
    assert!(run.errors[0].1.contains("no \"op\""), "{:?}", run.errors);
    // Schemaless with explicit inference: the values still come through.
    let cfg = DecoderConfig {
        infer_schemaless: true,
        ..Default::default()
    };
    assert_changes(
        &one("debezium/serde-without-schema.json", cfg),
        &expected_lines("debezium/serde-without-schema.expected.jsonl"),
        "id",
    );
}

fn assert_state(run: &Run, expected_rel: &str, key_col: &str, map: impl Fn(&str, &Json) -> Json) {
    assert!(run.errors.is_empty(), "errors: {:?}", run.errors);
    let state = final_state(&run.changes, |c| {
        let img = if c["op"] == "delete" {
            &c["key"]
        } else {
            &c["row"]
        };
        img[key_col].to_string()
    });
    let expected = expected_lines(expected_rel);
    assert_eq!(state.len(), expected.len(), "row count of {expected_rel}");
    for e in &expected {
        let row = state
            .get(&e[key_col].to_string())
            .unwrap_or_else(|| panic!("missing row {e}"));
        let mapped: serde_json::Map<String, Json> =
            row.iter().map(|(k, v)| (k.clone(), map(k, v))).collect();
        assert!(row_matches(e, &mapped), "row {mapped:?} vs expected {e}");
    }
}

#[test]
fn arroyo_postgres_830_changes() {
    let cfg = declared(
        "public.orders",
        &["id"],
        &[
            ("id", "int32"),
            ("customer_name", "string"),
            ("product_name", "string"),
            ("quantity", "int32"),
            ("price", "float64"),
            ("order_date", "io.debezium.time.MicroTimestamp"),
            ("status", "string"),
        ],
    );
    let mut dec = decoder(cfg);
    let run = decode_all(
        &mut dec,
        &lines_as_inputs("arroyo/aggregate_updates.json", "arroyo.public.orders"),
    );
    assert_eq!(run.rows().count(), 830);
    // Arroyo's sink renders order_date in whole seconds; decant keeps microseconds.
    assert_state(
        &run,
        "arroyo/aggregate_updates.json.expected-state.jsonl",
        "id",
        |k, v| {
            if k == "order_date" {
                let s = v.as_str().expect("timestamp text");
                let (date, time) = s.split_once('T').expect("ISO");
                let mut p = date.split('-').map(|x| x.parse::<i64>().expect("digits"));
                let (y, m, d) = (
                    p.next().expect("y"),
                    p.next().expect("m"),
                    p.next().expect("d"),
                );
                let days = decant_decode::temporal::days_from_civil(y, m as u32, d as u32);
                let secs: Vec<i64> = time[..8]
                    .split(':')
                    .map(|x| x.parse().expect("digits"))
                    .collect();
                json!(days * 86_400 + secs[0] * 3600 + secs[1] * 60 + secs[2])
            } else {
                v.clone()
            }
        },
    );
}

#[test]
fn risingwave_mysql_with_and_without_schema() {
    let customers = declared(
        "inventory.customers",
        &["id"],
        &[
            ("id", "int32"),
            ("first_name", "string"),
            ("last_name", "string"),
            ("email", "string"),
        ],
    );
    for (file, cfg) in [
        ("risingwave/debezium_log.1", DecoderConfig::default()),
        ("risingwave/debezium_log_no_schema_field.1", customers),
    ] {
        let mut dec = decoder(cfg);
        let run = decode_all(
            &mut dec,
            &lines_as_inputs(file, "dbserver1.inventory.customers"),
        );
        assert_state(
            &run,
            &format!("{file}.expected-state.jsonl"),
            "id",
            |_, v| v.clone(),
        );
    }
}

fn caret_inputs(rel: &str, topic: &str) -> Vec<Input> {
    read(rel)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let (k, v) = l.split_once('^').unwrap_or(("", l));
            Input {
                topic: topic.into(),
                offset: i as i64,
                key: Some(k.as_bytes().to_vec()).filter(|k| !k.is_empty()),
                value: Some(v.as_bytes().to_vec()).filter(|v| !v.is_empty()),
                ..Default::default()
            }
        })
        .collect()
}

#[test]
fn risingwave_postgres_non_json_key_and_null_before() {
    // The key is deliberately not JSON; upserts never need it. The update has before = null.
    let cfg = declared(
        "public.orders",
        &["order_id"],
        &[
            ("order_id", "int32"),
            ("order_date", "io.debezium.time.Timestamp"),
            ("customer_name", "string"),
            ("price", "decimal(10,5)"),
            ("product_id", "int32"),
            ("order_status", "int16"),
        ],
    );
    let mut dec = decoder(cfg);
    let run = decode_all(
        &mut dec,
        &caret_inputs("risingwave/debezium_mess_key.1", "postgres.public.orders"),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let state = final_state(&run.changes, key_text);
    assert_eq!(state.len(), 3, "RisingWave expects count(order_id) = 3");
}

#[test]
fn risingwave_payload_without_schema_member() {
    let cfg = DecoderConfig {
        infer_schemaless: true,
        ..Default::default()
    };
    let mut dec = decoder(cfg);
    let run = decode_all(
        &mut dec,
        &lines_as_inputs("risingwave/debezium_ignore_case_json.1", "rw.lineitem"),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.rows().count(), 3);
}

#[test]
fn paimon_all_types_numeric_decimals_stay_exact() {
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(
        &mut dec,
        &lines_as_inputs(
            "paimon/kafka/debezium/table/schema/alltype/debezium-data-1.txt",
            "paimon.alltype",
        ),
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let row = run.rows().next().expect("one row")["row"].clone();
    assert_eq!(row["_fixed"], "123456789876543212345678987654321.110");
}

#[test]
fn paimon_schema_evolution_and_tombstones() {
    let dir = "paimon/kafka/debezium/table/schema/schemaevolution";
    let mut inputs = Vec::new();
    for f in [
        "debezium-data-1.txt",
        "debezium-data-2.txt",
        "debezium-data-3.txt",
        "debezium-data-4.txt",
        "debezium-data-5.txt",
    ] {
        inputs.extend(lines_as_inputs(&format!("{dir}/{f}"), "paimon.evolution"));
    }
    // `"schema": null` with a payload: typed by the schema learned from the earlier messages.
    inputs.extend(lines_as_inputs(
        &format!("{dir}/debezium-data-with-delete.txt"),
        "paimon.evolution",
    ));
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(&mut dec, &inputs);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert!(run.rows().count() >= 6);
    assert_eq!(
        run.rows().last().map(|r| r["op"].clone()),
        Some(json!("delete"))
    );

    let mut nv = lines_as_inputs(
        "paimon/kafka/debezium/table/nullvalue/debezium-data-1.txt",
        "t",
    );
    nv.push(Input {
        topic: "t".into(),
        offset: 1,
        ..Default::default()
    });
    nv.extend(lines_as_inputs(
        "paimon/kafka/debezium/table/nullvalue/debezium-data-2.txt",
        "t",
    ));
    let mut cfg = declared(
        "test.test",
        &["id"],
        &[("id", "int32"), ("value", "string")],
    );
    cfg.tombstones = TombstonePolicy::Skip;
    let mut dec = decoder(cfg);
    let run = decode_all(&mut dec, &nv);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(
        run.changes
            .iter()
            .filter(|c| c["op"] == "tombstone")
            .count(),
        1
    );
    let state = final_state(&run.changes, key_text);
    let rows: Vec<Json> = state.values().map(|r| Json::Object(r.clone())).collect();
    assert_eq!(
        rows,
        vec![json!({"id":1,"value":"A"}), json!({"id":2,"value":"B"})]
    );
}

#[test]
fn paimon_schema_change_record_is_reported_not_a_row() {
    let full = read("paimon/mysql/debezium-event-change.json");
    // A pretty-printed document after a license comment block.
    let text = &full[full.find("\n{").expect("document") + 1..];
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(
        &mut dec,
        &[Input::value("mysql_binlog_source", 0, text.as_bytes())],
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.changes.len(), 1);
    assert_eq!(run.changes[0]["op"], "schema_change");
}

#[test]
fn paimon_key_and_value_lines_with_propagated_source_types() {
    let inputs = key_value_pairs(
        "paimon/kafka/debezium-avro/table/schema/alltype/debezium-avro-data-1.txt",
        "paimon.avro",
    );
    assert!(!inputs.is_empty());
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(&mut dec, &inputs);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.rows().count(), inputs.len());
    // The key's fields name the key columns.
    assert!(run.rows().all(|r| r["key"].is_object()));
}

/// The full_types row of Flink CDC's MySQL test, decoded from the wire by the spec.
fn flink_cdc_expected() -> HashMap<&'static str, Json> {
    HashMap::from([
        ("id", json!("1")),
        ("big_un_c", json!("18446744073709551615")),
        ("decimal_c", json!("123.4567")),
        ("numeric_c", json!("346")),
        ("bit1_c", json!(false)),
        ("date_c", json!("2020-07-17")),
        ("time_c", json!("18:00:22")),
        ("datetime3_c", json!("2020-07-17T18:00:22.123000")),
        ("datetime6_c", json!("2020-07-17T18:00:22.123456")),
        ("timestamp_c", json!("2020-07-17T18:00:22Z")),
        ("json_c", json!({"key1": "value1"})),
        ("set_c", json!("a,b")),
        ("year_c", json!(2021)),
        ("real_c", json!(123.102)),
    ])
}

#[test]
fn flink_cdc_mysql_full_types() {
    let cols: &[(&str, &str)] = &[
        ("id", "decimal(20,0)"),
        ("big_un_c", "decimal(20,0)"),
        ("decimal_c", "decimal(8,4)"),
        ("numeric_c", "decimal(6,0)"),
        ("bit1_c", "boolean"),
        ("date_c", "date"),
        ("time_c", "micro_time"),
        ("datetime3_c", "timestamp"),
        ("datetime6_c", "micro_timestamp"),
        ("timestamp_c", "zoned_timestamp"),
        ("json_c", "json"),
        ("set_c", "set"),
        ("year_c", "year"),
        ("real_c", "float64"),
        ("point_c", "point"),
        ("geometry_c", "geometry"),
        ("file_uuid", "bytes"),
        ("bit_c", "bits"),
    ];
    for file in [
        "flink-cdc/debezium-data-schema-exclude.json",
        "flink-cdc/debezium-data-schema-exclude-with-numeric-decimal.json",
        "flink-cdc/debezium-data-schema-include.json",
    ] {
        let doc: Json = serde_json::from_str(&read(file)).expect("json");
        let mut cfg = declared("test.full_types", &["id"], cols);
        cfg.infer_schemaless = false;
        let mut inputs = Vec::new();
        for (i, part) in ["expected_snapshot", "expected_binlog"].iter().enumerate() {
            // The schema-include file's schema is stale (see the corpus README): use its payload.
            let event = doc[part].get("payload").unwrap_or(&doc[part]).clone();
            let mut event = event;
            // Only the declared columns matter here; drop the rest of the wide row.
            for img in ["before", "after"] {
                if let Some(o) = event[img].as_object_mut() {
                    o.retain(|k, _| cols.iter().any(|(c, _)| c == k));
                }
            }
            event["source"] = json!({"db": "test", "table": "full_types"});
            inputs.push(Input::value(
                "cdc.test.full_types",
                i as i64,
                event.to_string().as_bytes(),
            ));
        }
        let mut dec = decoder(cfg);
        let run = decode_all(&mut dec, &inputs);
        assert!(run.errors.is_empty(), "{file}: {:?}", run.errors);
        let rows: Vec<&Json> = run.rows().collect();
        assert_eq!(rows.len(), 2);
        for (col, want) in flink_cdc_expected() {
            assert!(
                values_match(&want, &rows[0]["row"][col]),
                "{file} {col}: {} vs {want}",
                rows[0]["row"][col]
            );
        }
        assert_eq!(rows[0]["row"]["point_c"]["x"], json!(1.0));
        assert_eq!(rows[1]["row"]["timestamp_c"], "2020-07-17T18:33:22Z");
    }
}

#[test]
fn risingwave_mongodb_extended_json_with_and_without_schema() {
    for file in [
        "risingwave/debezium_mongo_json_customers.1",
        "risingwave/debezium_mongo_json_customers_no_schema_field.1",
    ] {
        let mut dec = decoder(DecoderConfig::default());
        let run = decode_all(
            &mut dec,
            &lines_as_inputs(file, "dbserver1.inventory.customers"),
        );
        assert!(run.rows().all(|r| r["table"] == "inventory.customers"));
        // `_id` arrives as {"$numberLong": "1001"} and is decoded to the integer 1001.
        assert_state(
            &run,
            &format!("{file}.expected-state.jsonl"),
            "_id",
            |_, v| v.clone(),
        );
    }
}

fn key_value_pairs(rel: &str, topic: &str) -> Vec<Input> {
    let text = read(rel);
    json_lines(&text)
        .chunks(2)
        .enumerate()
        .filter_map(|(i, pair)| match pair {
            [k, v] => Some(Input {
                topic: topic.into(),
                offset: i as i64,
                key: Some(k.as_bytes().to_vec()),
                value: Some(v.as_bytes().to_vec()),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn paimon_mongodb_insert_update_delete_by_oid_key() {
    let dir = "paimon/kafka/debezium-bson/table/event";
    let mut inputs = Vec::new();
    for f in ["event-insert.txt", "event-update.txt", "event-delete.txt"] {
        inputs.extend(key_value_pairs(
            &format!("{dir}/{f}"),
            "mongodb_bigdata_test.bigdata_test.sync_test_table",
        ));
    }
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(&mut dec, &inputs);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let ops: Vec<&str> = run.rows().map(|r| r["op"].as_str().unwrap_or("")).collect();
    assert_eq!(ops.first(), Some(&"upsert"));
    assert_eq!(ops.last(), Some(&"delete"));
    let upsert = run.rows().find(|r| r["op"] == "upsert").expect("an upsert");
    assert_eq!(
        upsert["key"]["_id"], "67ab25755c0d5ac87eb8c632",
        "$oid becomes the key text"
    );
    // The delete carries only the key: the document is gone.
    assert!(final_state(&run.changes, key_text).is_empty());
}

#[test]
fn paimon_mongodb_extended_json_types() {
    // Paimon's own expectation (`event-json.txt`) is the same document with every value turned
    // into a string; decant keeps the types instead, so the values are checked one by one.
    let expected = read("paimon/kafka/debezium-bson/table/event/event-json.txt");
    let expected: Json = serde_json::from_str(
        json_lines(&expected)
            .into_iter()
            .find(|l| l.contains("Sally"))
            .expect("expected line"),
    )
    .expect("json");
    // A bare Extended-JSON document with every BSON type, wrapped the way the MongoDB connector
    // carries it (a string in `after`).
    let text = read("paimon/kafka/debezium-bson/table/event/event-bson.txt");
    let doc = json_lines(&text)
        .into_iter()
        .find(|l| l.contains("$oid"))
        .expect("document line");
    let event = json!({
        "after": doc,
        "source": {"connector": "mongodb", "db": "db", "collection": "all"},
        "op": "r"
    });
    let mut dec = decoder(DecoderConfig::default());
    let run = decode_all(
        &mut dec,
        &[Input::value("m.db.all", 0, event.to_string().as_bytes())],
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let row = &run.rows().next().expect("row")["row"];
    assert_eq!(row["id"], "596e275826f08b2730779e1f");
    assert_eq!(row["created_time"], 1_735_934_393_769_i64);
    assert_eq!(row["deleted_time"], "2025-01-03T19:59:53.769000Z");
    assert_eq!(row["double_nan"], "NaN");
    assert_eq!(row["double_ninf"], "-Infinity");
    assert_eq!(row["decimal"], "3.14");
    assert_eq!(row["binary"], "uE2/4v5MSVOiJZkOo3APKQ==");
    assert_eq!(row["array_mix"], json!(["1", 2, 1_735_934_393_769_i64]));
    assert_eq!(row["context"]["location"]["lon"], json!(121.4737));
    assert_eq!(row["boolean_true"], true);
    for col in [
        "id",
        "name",
        "decimal",
        "binary",
        "double_nan",
        "code",
        "symbol",
    ] {
        if let (Some(e), Some(g)) = (expected[col].as_str(), row[col].as_str()) {
            assert_eq!(e, g, "{col}");
        }
    }
    assert!(values_match(
        &json!(
            expected["created_time"]
                .as_str()
                .expect("text")
                .parse::<i64>()
                .expect("int")
        ),
        &row["created_time"]
    ));
}

/// RisingWave's Avro-JSON fixtures encoded into Confluent Avro (key schema id 1, value id 2).
fn risingwave_avro_inputs(rel: &str) -> (StaticResolver, Vec<Input>) {
    use decant_tests::avro_json::{encode, framed};
    let text = read(rel);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (key_schema, value_schema) = lines
        .next()
        .and_then(|l| l.split_once('^'))
        .expect("schema line");
    let resolver = StaticResolver::new()
        .with(1, SchemaFormat::Avro, key_schema)
        .with(2, SchemaFormat::Avro, value_schema);
    let inputs = lines
        .enumerate()
        .map(|(i, l)| {
            let (k, v) = l.split_once('^').unwrap_or((l, ""));
            Input {
                topic: "postgres.public.orders".into(),
                offset: i as i64,
                key: Some(framed(1, &encode(key_schema, k).expect("key encodes"))),
                value: (!v.trim().is_empty())
                    .then(|| framed(2, &encode(value_schema, v).expect("value encodes"))),
                ..Default::default()
            }
        })
        .collect();
    (resolver, inputs)
}

#[test]
fn risingwave_avro_compact_and_non_compact_streams() {
    for file in [
        "risingwave/debezium_compact_avro_json.1",
        "risingwave/debezium_non_compact_avro_json.1",
    ] {
        let (resolver, inputs) = risingwave_avro_inputs(file);
        // RisingWave applies a tombstone as a delete of its key; so does decant when asked.
        let cfg = DecoderConfig {
            tombstones: TombstonePolicy::Delete,
            ..Default::default()
        };
        let mut dec = decoder(cfg).with_resolver(Box::new(resolver));
        let run = decode_all(&mut dec, &inputs);
        assert!(run.errors.is_empty(), "{file}: {:?}", run.errors);
        assert!(run.rows().all(|r| r["table"] == "public.orders"));
        let state = final_state(&run.changes, key_text);
        assert_eq!(
            state.len(),
            2,
            "{file}: RisingWave expects count(*) = 2; {state:?}"
        );
        let first = run.rows().next().expect("row");
        // This fixture's schema declares order_date as a plain long (no connect.name).
        assert_eq!(first["row"]["order_date"], 1_558_430_840_000_i64);
    }
}
