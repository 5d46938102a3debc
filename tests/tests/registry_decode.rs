//! Registry-framed Debezium records: a real PostgreSQL capture (the bed's type zoo and workload)
//! through Confluent's AvroConverter and the bed's Schema Registry (`tests/fixtures/registry/avro`,
//! made by `tests/bed/run_capture.sh --converter avro`), a JsonConverter capture of the same
//! workload (`…/json`), and the JSON capture's payloads framed as JSON_SR with JSON Schemas in
//! Kafka Connect's conventions (`…/json_sr`). Decoded with the fixture's schemas (no registry),
//! the Avro and JSON_SR captures give PostgreSQL's final state and the same changes, with the
//! same column types, as the JSON capture; decoded by `decant decode --registry`
//! against a live bed registry (the fixture's schemas registered anew, the records re-framed with
//! the ids it gave), the same output again.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use decant_decode::{ChangeBatch, Decoder, DecoderConfig};
use decant_tests::bed::{decant_bin, random_name};
use decant_tests::registry::{
    Registry, kcat_lines, load_messages, load_schemas, reframe, register_all, registry_fixture_dir,
    static_resolver,
};
use decant_tests::{Input, PgMode, Run, assert_pg_state, decode_all};
use serde_json::Value as Json;

fn expected_state() -> Vec<Json> {
    let path = registry_fixture_dir("avro").join("expected-state.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("expected-state line"))
        .collect()
}

fn decode_avro_fixture() -> Run {
    decode_registry_fixture("avro")
}

/// A registry capture (`avro`, `json_sr`) decoded with its own schemas by id.
fn decode_registry_fixture(format: &str) -> Run {
    let dir = registry_fixture_dir(format);
    let schemas = load_schemas(&dir.join("schemas.jsonl"));
    let inputs = load_messages(&dir.join("messages.jsonl"));
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(static_resolver(&schemas)));
    decode_all(&mut dec, &inputs)
}

fn decode_json_fixture() -> Run {
    let inputs = load_messages(&registry_fixture_dir("json").join("messages.jsonl"));
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    decode_all(&mut dec, &inputs)
}

/// What a capture's batches say about its tables, in order: table, each column's name, type and
/// nullability, and the key columns' names.
fn table_schemas(format: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let dir = registry_fixture_dir(format);
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    if dir.join("schemas.jsonl").exists() {
        let schemas = load_schemas(&dir.join("schemas.jsonl"));
        dec = dec.with_resolver(Box::new(static_resolver(&schemas)));
    }
    // decode_all renders and drops the batches; their schemas are what is compared here.
    let mut batches: Vec<ChangeBatch> = Vec::new();
    for input in load_messages(&dir.join("messages.jsonl")) {
        let headers: Vec<decant_model::Header> = input
            .headers
            .iter()
            .map(|(key, value)| decant_model::Header {
                key,
                value: value.as_deref(),
            })
            .collect();
        let rec = decant_model::KafkaRecord {
            topic: &input.topic,
            partition: input.partition,
            offset: input.offset,
            timestamp_ms: None,
            headers: &headers,
            key: input.key.as_deref(),
            value: input.value.as_deref(),
        };
        dec.decode(&rec).unwrap_or_else(|e| panic!("{format}: {e}"));
        // Every record closes its batch, so each schema version a table had is seen.
        batches.extend(dec.take_batches().expect("batches build"));
    }
    let mut seen = Vec::new();
    for b in batches {
        let s = &b.schema;
        let entry = (
            s.table.to_string(),
            s.columns
                .iter()
                .map(|c| format!("{} {:?} nullable={}", c.name, c.ty, c.nullable))
                .collect(),
            s.key.iter().map(|&k| s.columns[k].name.clone()).collect(),
        );
        if !seen.contains(&entry) {
            seen.push(entry);
        }
    }
    seen
}

/// A change without what differs between two captures of one workload (source positions and
/// times) and without a tombstone's `key`: the decoder renders a JSON tombstone's raw key
/// document (Connect schema and payload) there and a registry-framed (Avro, JSON_SR)
/// tombstone's key as null — a difference of the decoder's tombstone rendering, not of the
/// captures.
fn comparable(c: &Json) -> Json {
    let mut c = c.clone();
    let tombstone = c["op"] == "tombstone";
    if let Some(o) = c.as_object_mut() {
        o.remove("source");
        if tombstone {
            o.remove("key");
        }
    }
    c
}

#[test]
fn avro_capture_decodes_to_postgres_state() {
    let run = decode_avro_fixture();
    let filled = assert_pg_state("registry/avro", &run, &expected_state(), PgMode::Exact);
    assert!(filled > 0, "the workload exercises TOAST-unchanged columns");
    let upserts = run.rows().filter(|c| c["op"] == "upsert").count();
    let deletes = run.rows().filter(|c| c["op"] == "delete").count();
    assert!(
        upserts >= 30 && deletes >= 3,
        "{upserts} upserts, {deletes} deletes"
    );
}

#[test]
fn avro_and_json_captures_of_one_workload_decode_alike() {
    let avro = decode_avro_fixture();
    let json = decode_json_fixture();
    assert!(json.errors.is_empty(), "{:?}", json.errors);
    assert_pg_state("registry/json", &json, &expected_state(), PgMode::Exact);
    assert_eq!(avro.changes.len(), json.changes.len());
    for (a, j) in avro.changes.iter().zip(&json.changes) {
        assert_eq!(comparable(a), comparable(j), "Avro vs JSON");
    }
}

#[test]
fn json_sr_capture_decodes_to_postgres_state() {
    let run = decode_registry_fixture("json_sr");
    let filled = assert_pg_state("registry/json_sr", &run, &expected_state(), PgMode::Exact);
    assert!(filled > 0, "the workload exercises TOAST-unchanged columns");
    let upserts = run.rows().filter(|c| c["op"] == "upsert").count();
    let deletes = run.rows().filter(|c| c["op"] == "delete").count();
    assert!(
        upserts >= 30 && deletes >= 3,
        "{upserts} upserts, {deletes} deletes"
    );
}

#[test]
fn json_sr_and_json_captures_of_one_workload_decode_alike() {
    let json_sr = decode_registry_fixture("json_sr");
    let json = decode_json_fixture();
    assert!(json_sr.errors.is_empty(), "{:?}", json_sr.errors);
    assert_eq!(json_sr.changes.len(), json.changes.len());
    for (s, j) in json_sr.changes.iter().zip(&json.changes) {
        assert_eq!(comparable(s), comparable(j), "JSON_SR vs JSON");
    }
    // The same tables, column types, nullability and keys: the registered JSON Schemas type the
    // documents as the embedded Connect schemas do (the type zoo: decimals, temporal types,
    // json, xml, uuid, enum, arrays, VariableScaleDecimal, geometry …).
    let sr_schemas = table_schemas("json_sr");
    let json_schemas = table_schemas("json");
    assert_eq!(sr_schemas, json_schemas);
    let zoo = sr_schemas
        .iter()
        .find(|(t, _, _)| t == "bed.typezoo")
        .expect("the type zoo table");
    let typed: Vec<&str> = zoo
        .1
        .iter()
        .map(|c| c.trim_end_matches(" nullable=true"))
        .collect();
    assert_eq!(
        typed,
        [
            "id Int32 nullable=false",
            "c_smallint Int16",
            "c_int Int32",
            "c_bigint Int64",
            "c_num_12_2 Decimal { precision: 12, scale: 2 }",
            "c_num_38_10 Decimal { precision: 38, scale: 10 }",
            "c_num DecimalText",
            "c_money Decimal { precision: 38, scale: 2 }",
            "c_real Float32",
            "c_double Float64",
            "c_bool Boolean",
            "c_char String",
            "c_varchar String",
            "c_text String",
            "c_date Date",
            "c_time Time(Micros)",
            "c_time3 Time(Micros)",
            "c_timetz ZonedTime",
            "c_ts Timestamp(Micros)",
            "c_ts3 Timestamp(Micros)",
            "c_tstz TimestampTz(Micros)",
            "c_interval Duration(Micros)",
            "c_uuid Uuid",
            "c_json Json",
            "c_jsonb Json",
            "c_xml Xml",
            "c_bytea Binary",
            "c_enum Enum",
            "c_int_arr List(Int32)",
            "c_text_arr List(String)",
            "c_inet String",
            "c_point Point",
            "c_big String",
        ]
    );
    assert_eq!(zoo.2, ["id"], "the type zoo's key");
}

#[test]
fn json_sr_key_columns_come_from_the_key_schema() {
    // The composite table's key documents written with their members in the reverse order:
    // the key schema's `connect.index` (k_int, then k_text) still orders the key columns.
    let dir = registry_fixture_dir("json_sr");
    let schemas = load_schemas(&dir.join("schemas.jsonl"));
    let mut reversed_keys = 0;
    let inputs: Vec<Input> = load_messages(&dir.join("messages.jsonl"))
        .into_iter()
        .map(|mut i| {
            if let Some(k) = &i.key {
                let doc: Json = serde_json::from_slice(&k[5..]).expect("a JSON key");
                if let Some(o) = doc.as_object().filter(|o| o.len() > 1) {
                    let members: Vec<String> = o
                        .iter()
                        .rev()
                        .map(|(name, v)| format!("{}:{v}", Json::String(name.clone())))
                        .collect();
                    let mut framed = k[..5].to_vec();
                    framed.extend_from_slice(format!("{{{}}}", members.join(",")).as_bytes());
                    i.key = Some(framed);
                    reversed_keys += 1;
                }
            }
            i
        })
        .collect();
    assert!(reversed_keys > 0, "the fixture has composite keys");
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(static_resolver(&schemas)));
    let run = decode_all(&mut dec, &inputs);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let composite: Vec<&Json> = run
        .rows()
        .filter(|c| c["table"] == "bed.composite")
        .collect();
    assert!(!composite.is_empty());
    for c in composite {
        let names: Vec<&String> = c["key"].as_object().expect("a key").keys().collect();
        assert_eq!(names, ["k_int", "k_text"], "{c}");
    }
    assert_pg_state(
        "json_sr, keys reversed",
        &run,
        &expected_state(),
        PgMode::Exact,
    );
}

#[test]
fn json_sr_fixture_frames_the_json_captures_payloads() {
    // The fixture itself: every id has its schema, and the document after the 5 bytes is the
    // JsonConverter payload of the same record (so decoding alike is decant's doing).
    let sr = registry_fixture_dir("json_sr");
    let schemas = load_schemas(&sr.join("schemas.jsonl"));
    let ids: Vec<u32> = schemas.iter().map(|s| s.id).collect();
    let framed = load_messages(&sr.join("messages.jsonl"));
    let plain = load_messages(&registry_fixture_dir("json").join("messages.jsonl"));
    assert_eq!(framed.len(), plain.len());
    let payload = |b: &Option<Vec<u8>>| -> Json {
        b.as_ref()
            .map(|b| serde_json::from_slice::<Json>(b).expect("JSON"))
            .map(|v| v.get("payload").cloned().unwrap_or(v))
            .unwrap_or(Json::Null)
    };
    for (f, p) in framed.iter().zip(&plain) {
        for (fb, pb) in [(&f.key, &p.key), (&f.value, &p.value)] {
            match fb {
                Some(b) => {
                    assert_eq!(b[0], 0, "magic byte");
                    let id = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
                    assert!(ids.contains(&id), "id {id}");
                    let body: Json = serde_json::from_slice(&b[5..]).expect("JSON after 5 bytes");
                    assert_eq!(body, payload(pb));
                }
                None => assert!(payload(pb).is_null()),
            }
        }
    }
    assert!(
        schemas
            .iter()
            .all(|s| s.text.contains("\"connect.index\"") || s.text.contains("\"title\""))
    );
}

/// Registers the Avro fixture's schemas in a fresh bed registry and writes the records, re-framed
/// with the new ids, as kcat -J lines; returns the registry and the file.
fn fixture_on_live_registry() -> (Registry, std::path::PathBuf, HashMap<u32, u32>) {
    let registry = Registry::start();
    let dir = registry_fixture_dir("avro");
    let schemas = load_schemas(&dir.join("schemas.jsonl"));
    // ids the fixture's own registry did not use, so that re-framing is visible
    let client = registry.client();
    client
        .register(
            "decant-test-offset",
            &decant_registry::Schema::avro(r#"{"type":"fixed","name":"Pad","size":3}"#),
        )
        .expect("a first schema");
    let ids = register_all(&client, &schemas);
    assert!(ids.iter().all(|(old, new)| old != new), "{ids:?}");
    let inputs: Vec<Input> = load_messages(&dir.join("messages.jsonl"))
        .into_iter()
        .map(|mut i| {
            i.key = i.key.map(|k| reframe(&k, &ids));
            i.value = i.value.map(|v| reframe(&v, &ids));
            i
        })
        .collect();
    let file = std::env::temp_dir().join(random_name("decant-registry-records") + ".jsonl");
    std::fs::write(&file, kcat_lines(&inputs)).expect("write records");
    (registry, file, ids)
}

fn decant_decode(args: &[&str]) -> std::process::Output {
    Command::new(decant_bin())
        .arg("decode")
        .args(args)
        .output()
        .expect("decant decode runs")
}

#[test]
fn decant_decode_resolves_through_the_bed_registry() {
    let (registry, file, _) = fixture_on_live_registry();
    let out = decant_decode(&["--registry", &registry.url(), file.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "decant decode --registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Run {
        changes: String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect(),
        errors: Vec::new(),
    };
    assert_pg_state("decode --registry", &run, &expected_state(), PgMode::Exact);
    // exactly what the same records decode to with the fixture's schemas and no registry
    let reference = decode_avro_fixture();
    assert_eq!(run.changes, reference.changes);
    let _ = std::fs::remove_file(file);
}

#[test]
fn decant_decode_reports_unknown_ids_and_a_stopped_registry() {
    let (registry, file, ids) = fixture_on_live_registry();
    // an id the registry does not know: not found, not retried
    let unknown: HashMap<u32, u32> = ids.keys().map(|&k| (k, 999_999)).collect();
    let dir = registry_fixture_dir("avro");
    let bad: Vec<Input> = load_messages(&dir.join("messages.jsonl"))
        .into_iter()
        .take(1)
        .map(|mut i| {
            i.value = i.value.map(|v| reframe(&v, &unknown));
            i
        })
        .collect();
    let bad_file = std::env::temp_dir().join(random_name("decant-registry-bad") + ".jsonl");
    std::fs::write(&bad_file, kcat_lines(&bad)).expect("write");
    let started = Instant::now();
    let out = decant_decode(&[
        "--registry",
        &registry.url(),
        bad_file.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("schema id 999999") && err.contains("40403"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 404 is not retried"
    );

    // the registry stopped: retried (about 3 s of backoff), then a connection error
    registry.stop();
    let started = Instant::now();
    let out = decant_decode(&["--registry", &registry.url(), file.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("schema registry http://127.0.0.1"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retried with backoff: {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(bad_file);
}

#[test]
fn protobuf_fixture_is_framed_with_message_indexes() {
    // What decant will decode once it reads Protobuf: every key and value is 0x00, the id, then
    // the message-index array, here always [0] written as the single byte 0x00 (the first
    // message of the schema: Key, Envelope); decoding is refused clearly for now.
    let dir = registry_fixture_dir("protobuf");
    let schemas = load_schemas(&dir.join("schemas.jsonl"));
    assert!(
        schemas
            .iter()
            .all(|s| s.schema_type == decant_registry::SchemaType::Protobuf)
    );
    let ids: Vec<u32> = schemas.iter().map(|s| s.id).collect();
    let inputs = load_messages(&dir.join("messages.jsonl"));
    let mut framed = 0;
    for i in &inputs {
        for b in [&i.key, &i.value].into_iter().flatten() {
            assert_eq!(b[0], 0, "magic byte");
            assert!(ids.contains(&u32::from_be_bytes([b[1], b[2], b[3], b[4]])));
            assert_eq!(b[5], 0, "message indexes [0]");
            framed += 1;
        }
    }
    assert!(framed >= 90, "{framed}");
    let mut dec = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(static_resolver(&schemas)));
    let run = decode_all(&mut dec, &inputs[..1]);
    assert!(
        run.errors.iter().any(|(_, e)| e.contains("Protobuf")),
        "{:?}",
        run.errors
    );
}
