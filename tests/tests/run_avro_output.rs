//! `decant run` with `output.format = "avro"` on the live bed: PostgreSQL → Debezium → broker →
//! the `decant` binary → compacted topics whose keys and values are Avro, their schemas
//! registered in the bed's Schema Registry under `<topic>-key` / `<topic>-value`. The output is
//! read back by confluent-kafka-python's AvroDeserializer (`tests/bed/avro_output_reader.py`:
//! schemas by the framed id, each field's Python type checked against its Avro type) and must
//! equal PostgreSQL's final state column by column. Mid-stream `ALTER TABLE … ADD COLUMN`
//! registers a second value schema version, and the records after it carry the column.

use std::collections::BTreeMap;
use std::process::Command;

use decant_registry::Version;
use decant_tests::bed::{bed_dir, random_name, run_ok, write_decant_config};
use decant_tests::registry_output::RegistryOutputRun;
use serde_json::Value as Json;

/// The value schema's fields by name (`type` with the null union stripped, and the field).
fn fields(schema_text: &str) -> BTreeMap<String, Json> {
    let v: Json = serde_json::from_str(schema_text).expect("schema JSON");
    v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["name"].as_str().expect("name").to_owned(), f.clone()))
        .collect()
}

fn non_null(ty: &Json) -> Json {
    match ty {
        Json::Array(u) => u
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Json::Null),
        t => t.clone(),
    }
}

#[test]
fn avro_output_read_by_confluent_python_equals_postgres_and_evolves() {
    let run = RegistryOutputRun::start("avro");
    let (bootstrap, registry) = (run.broker.bootstrap(), &run.registry);

    // The independent reader: confluent-kafka-python's AvroDeserializer.
    let py = run.bed.get("DECANT_PY");
    let text = run_ok(
        Command::new(&py)
            .arg(bed_dir().join("avro_output_reader.py"))
            .args(["--bootstrap", &bootstrap])
            .args(["--registry", &registry.url()])
            .args(["--prefix", &format!("{}.", run.out)]),
        "avro_output_reader.py",
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("reader line"))
        .collect();
    run.compare_with_postgres("avro output", &lines);

    // Python's datetime cannot hold ±infinity: only those values needed the raw-long path.
    let unrepresentable: std::collections::BTreeSet<String> = lines
        .iter()
        .flat_map(|l| {
            l["python_unrepresentable"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert!(
        unrepresentable.iter().all(|n| n.starts_with("c_ts")),
        "only timestamp columns hold ±infinity: {unrepresentable:?}"
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
        "c_jsonb lost digits on its way to Avro: {doc}"
    );

    // The registry: TopicNameStrategy subjects, Tableflow's logical types.
    let client = registry.client();
    let topic = |t: &str| run.topic(t);
    let zoo = client
        .version(&format!("{}-value", topic("typezoo")), Version::Latest)
        .expect("typezoo value schema");
    let zoo_fields = fields(&zoo.schema.text);
    let ty = |name: &str| non_null(&zoo_fields[name]["type"]);
    assert_eq!(zoo_fields["id"]["type"], "int", "key columns are non-null");
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
    assert_eq!(zoo_fields["c_jsonb"]["decant.type"], "json");
    assert_eq!(ty("c_bytea"), "bytes");
    assert_eq!(zoo_fields["c_text"]["default"], Json::Null);
    let zoo_key = client
        .version(&format!("{}-key", topic("typezoo")), Version::Latest)
        .expect("typezoo key schema");
    assert_eq!(
        fields(&zoo_key.schema.text).keys().collect::<Vec<_>>(),
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
    assert!(!fields(&v1.schema.text).contains_key("added_col"));
    let added = &fields(&v2.schema.text)["added_col"];
    assert_eq!(added["type"], serde_json::json!(["null", "int"]));
    assert_eq!(added["default"], Json::Null);
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

    run.finish("run_avro_output");
}

/// `decant validate` says what `output.format` needs and what is not there yet.
#[test]
fn validate_checks_the_output_format() {
    let work = std::env::temp_dir().join(random_name("decant-avro-validate"));
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
    let (ok, text) = validate("avro");
    assert!(!ok, "{text}");
    assert!(
        text.contains("output.format = \"avro\" needs [schema_registry]"),
        "{text}"
    );
    let (ok, text) = validate("protobuf");
    assert!(
        !ok && text.contains("output.format = \"protobuf\" needs [schema_registry]"),
        "{text}"
    );
    let (ok, text) = validate("json_sr");
    assert!(
        !ok && text.contains("\"json_sr\" is not yet supported"),
        "{text}"
    );
    let (ok, text) = validate("json");
    assert!(ok, "{text}");
    let _ = std::fs::remove_dir_all(&work);
}
