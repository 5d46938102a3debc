//! The full stack, live: PostgreSQL (logical WAL) → Debezium 3.6.3's embedded engine → the local
//! Kafka-API broker → read_committed consumer → decant's decoder, equal to PostgreSQL's own final
//! state across the type zoo, TOAST-unchanged updates, composite keys, key changes, deletes and
//! multi-table transactions.

use std::time::Duration;

use decant_decode::{Decoder, DecoderConfig};
use decant_tests::bed::{
    Bed, Broker, Debezium, PgSchema, consume, random_name, topics_with_prefix, wait_for,
};
use decant_tests::{PgMode, assert_pg_state, decode_all};

fn capture_and_decode(extra: &[(&str, &str)], mode: PgMode) {
    let bed = Bed::load();
    let broker = Broker::start();
    let schema = PgSchema::create(&bed);
    bed.psql_files(&["workload_snapshot.sql"], &[("schema", &schema.name)]);
    let prefix = random_name("t");
    let mut dbz = Debezium::start(&bed, &schema, &broker, &prefix, extra);
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
    assert!(topics.len() >= 5, "one topic per table: {topics:?}");
    let inputs = consume(
        &broker.bootstrap(),
        &topics,
        produced,
        Duration::from_secs(2),
    );
    assert_eq!(
        inputs.len(),
        produced,
        "every record Debezium produced is read back"
    );
    let mut decoder = Decoder::new(DecoderConfig::default()).expect("config");
    let run = decode_all(&mut decoder, &inputs);
    let expected = bed.pg_state(&schema.name);
    let filled = assert_pg_state("live capture", &run, &expected, mode);
    assert!(filled > 0, "the workload exercises TOAST-unchanged columns");
    assert!(
        run.changes.iter().any(|c| c["op"] == "tombstone"),
        "deletes are followed by tombstones, reported as such"
    );
}

#[test]
fn postgres_debezium_broker_decoder_equals_postgres() {
    capture_and_decode(&[], PgMode::Exact);
}

#[test]
fn connect_time_and_string_decimals_live() {
    capture_and_decode(
        &[
            ("time.precision.mode", "connect"),
            ("decimal.handling.mode", "string"),
        ],
        PgMode::MillisTimes,
    );
}
