//! `decant run` with a registry output format on the live bed: PostgreSQL → Debezium → broker →
//! the `decant` binary → compacted topics whose keys and values are framed `0x00 + schema id`,
//! their schemas registered in the bed's Schema Registry under `<topic>-key` / `<topic>-value`.
//! One `#[test]` per format, one body ([`output_read_by_confluent_python_equals_postgres`]); what
//! differs between formats is a [`Format`]: its name, how a schema lists its fields, and what the
//! registered schemas must say. The output is read back by confluent-kafka-python's
//! deserializer of the format (`tests/bed/registry_output_reader.py --format …`: schemas by the
//! framed id, each field's Python type checked against its schema type) and must equal
//! PostgreSQL's final state column by column. Mid-stream `ALTER TABLE … ADD COLUMN` registers a
//! second value schema version, and the records after it carry the column.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use decant_registry::Version;
use decant_tests::bed::{
    DecantProcess, LiveSource, assert_no_duplicate_sources, bed_dir, http_get, random_name, run_ok,
    settle_markers, upsert_changes, wait_for, write_decant_config,
};
use decant_tests::registry::Registry;
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
};

#[test]
fn avro_output_read_by_confluent_python_equals_postgres_and_evolves() {
    output_read_by_confluent_python_equals_postgres(&AVRO);
}

#[test]
fn json_sr_output_read_by_confluent_python_equals_postgres_and_evolves() {
    output_read_by_confluent_python_equals_postgres(&JSON_SR);
}

fn output_read_by_confluent_python_equals_postgres(format: &Format) {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();
    let registry = Registry::start();
    let bootstrap = broker.bootstrap();
    let out = random_name("out");
    let work = std::env::temp_dir().join(random_name(&format!("decant-{}-out", format.name)));
    let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
    let log = work.join("decant.log");
    let env = [("DECANT_OUTPUT__FORMAT", format.name)];
    let mut decant = DecantProcess::start(&config, &log, &env);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });

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

    // The independent reader: confluent-kafka-python's deserializer of the format.
    let py = bed.get("DECANT_PY");
    let text = run_ok(
        Command::new(&py)
            .arg(bed_dir().join("registry_output_reader.py"))
            .args(["--format", format.name])
            .args(["--bootstrap", &bootstrap])
            .args(["--registry", &registry.url()])
            .args(["--prefix", &format!("{out}.")]),
        "registry_output_reader.py",
    );
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
        !fallback.is_empty(),
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

    // The registry: TopicNameStrategy subjects, Tableflow's logical types.
    let client = registry.client();
    let topic = |t: &str| format!("{out}.{s}.{t}");
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
    assert!(!(format.fields)(&v1.schema.text).contains_key("added_col"));
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

/// `decant validate` says what `output.format` needs and what is not there yet.
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
    for registered in ["avro", "json_sr"] {
        let (ok, text) = validate(registered);
        assert!(!ok, "{text}");
        assert!(
            text.contains(&format!(
                "output.format = \"{registered}\" needs [schema_registry]"
            )),
            "{text}"
        );
    }
    let (ok, text) = validate("protobuf");
    assert!(
        !ok && text.contains("\"protobuf\" is not yet supported"),
        "{text}"
    );
    let (ok, text) = validate("json");
    assert!(ok, "{text}");
    let _ = std::fs::remove_dir_all(&work);
}
