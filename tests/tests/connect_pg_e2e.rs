//! PostgreSQL through a real Kafka Connect worker, as users run Debezium: the connector is created
//! with `POST /connectors` on a distributed worker (JSON converters, schemas on), its snapshot
//! and then its WAL stream flow into `decant run` (upsert topics), and the reduced output equals
//! PostgreSQL's own state (`pg_state.py`) for the type zoo, TOAST-unchanged updates, composite
//! keys, key changes, deletes and multi-table transactions. A worker restart in the middle of the
//! stream (offsets committed by the worker, not by a test runner) loses and duplicates nothing
//! that decant's output could show.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    Bed, Broker, DecantProcess, PgSchema, assert_no_duplicate_sources, http_get, random_name,
    read_output_settled, wait_for, write_decant_config,
};
use decant_tests::connect::{Connect, postgres_connector, wait_snapshot_done};
use decant_tests::{PgMode, assert_pg_state};

#[test]
fn connect_postgres_to_upsert_topics_equals_postgres() {
    let started = Instant::now();
    let bed = Bed::load();
    let broker = Broker::start_retrying();
    let schema = PgSchema::create(&bed);
    bed.psql_files(&["workload_snapshot.sql"], &[("schema", &schema.name)]);
    let connect = Connect::start(&broker);
    let prefix = random_name("src");
    let name = format!("pg-{}", schema.name);
    connect.create_connector(&name, &postgres_connector(&bed, &schema, &prefix));
    connect.wait_running(&name, Duration::from_secs(120));
    let snapshot = wait_snapshot_done(&connect, &name, &prefix, Duration::from_secs(300));
    eprintln!(
        "connect_pg_e2e: snapshot of {snapshot} records after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let out_prefix = random_name("out");
    let work = std::env::temp_dir().join(random_name("decant-connect-pg"));
    let (config, decant_port) =
        write_decant_config(&work, &broker.bootstrap(), &prefix, &out_prefix, "");
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &[]);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(decant_port, "/ready").filter(|(s, _)| *s == 200)
    });

    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    // The worker commits source offsets every second; a restart resumes the slot from there.
    // Debezium's PostgreSQL source is at-least-once across a restart: decant's output is keyed,
    // so a re-sent change can only repeat a value, never change the final state.
    std::thread::sleep(Duration::from_secs(2));
    connect.restart();
    connect.wait_running(&name, Duration::from_secs(120));
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);
    let (records, run) = read_output_settled(&broker.bootstrap(), &out_prefix, &mut decant);
    connect.check_alive(&name);
    assert_pg_state("Connect → decant run", &run, &expected, PgMode::Exact);
    assert_no_duplicate_sources(&records);
    assert!(
        run.changes.iter().any(|c| c["op"] == "delete"),
        "deletes and key changes produce tombstones"
    );

    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    // Deleting the connector stops its task: the slot is free for PgSchema's drop.
    connect.delete(&name);
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "connect_pg_e2e: {} output records, {:.1} s",
        records.len(),
        started.elapsed().as_secs_f64()
    );
}
