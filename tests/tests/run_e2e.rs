//! `decant run` end to end on the live bed: PostgreSQL → Debezium → broker → the real `decant`
//! binary → compacted upsert topics, read back with read_committed, reduced to the last value
//! per key (tombstone = absent) and compared with PostgreSQL's own state. The workload covers
//! the type zoo, TOAST-unchanged updates, composite keys, primary-key changes, deletes and
//! multi-table transactions; a clean SIGTERM must exit 0 and a restart must not re-emit.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, LiveSource, assert_no_duplicate_sources, consume, http_get, random_name,
    read_output_settled, topics_with_prefix, upsert_changes, wait_for, write_decant_config,
};
use decant_tests::{PgMode, Run, assert_pg_state};

/// Reads every output topic; returns the records and the change list.
fn read_output(bootstrap: &str, out_prefix: &str) -> (Vec<decant_tests::Input>, Run) {
    let topics = topics_with_prefix(bootstrap, &format!("{out_prefix}."));
    let records = consume(bootstrap, &topics, 0, Duration::from_secs(2));
    let run = upsert_changes(out_prefix, &records);
    (records, run)
}

#[test]
fn debezium_to_upsert_topics_equals_postgres() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();
    let out_prefix = random_name("out");

    let work = std::env::temp_dir().join(random_name("decant-e2e"));
    let (config, port) = write_decant_config(&work, &broker.bootstrap(), &prefix, &out_prefix, "");
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &[]);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });

    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);
    // decant keeps up on its own schedule: read until the marker is out and nothing changes.
    let (records, run) = read_output_settled(&broker.bootstrap(), &out_prefix, &mut decant);
    assert_pg_state("decant run", &run, &expected, PgMode::Exact);
    assert_no_duplicate_sources(&records);
    // JSON documents keep every number exactly as PostgreSQL has it.
    let doc = records
        .iter()
        .rev()
        .filter(|r| r.topic.ends_with(".typezoo") && r.key.as_deref() == Some(b"{\"id\":1}"))
        .find_map(|r| r.value.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("typezoo row 1");
    assert!(
        doc.contains("12345678901234567890.5") && doc.contains("18446744073709551616"),
        "c_jsonb lost digits on its way to the topic: {doc}"
    );
    assert!(
        run.changes.iter().any(|c| c["op"] == "delete"),
        "deletes and key changes produce tombstones"
    );
    let by_table = |t: &str| {
        records
            .iter()
            .filter(|r| r.topic.ends_with(&format!(".{t}")))
            .count()
    };
    assert!(by_table("typezoo") > 0 && by_table("composite") > 0 && by_table("toasty") > 0);

    let (status, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    for name in [
        "decant_input_records_total",
        "decant_output_records_total",
        "decant_transaction_commit_duration_seconds_bucket",
        "decant_source_to_output_latency_seconds_bucket",
        "decant_toast_fills_total",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert_eq!(http_get(port, "/health").map(|x| x.0), Some(200));

    // Clean shutdown: SIGTERM commits and exits 0; a restart re-emits nothing.
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    let before = records.len();
    let decant = DecantProcess::start(&config, &log, &[]);
    wait_for(
        Duration::from_secs(60),
        "decant /ready after restart",
        || http_get(port, "/ready").filter(|(s, _)| *s == 200),
    );
    std::thread::sleep(Duration::from_secs(15));
    let (records, _) = read_output(&broker.bootstrap(), &out_prefix);
    assert_eq!(
        records.len(),
        before,
        "a restart after a clean stop re-emits nothing"
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success());
    dbz.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("run_e2e: {:.1} s", started.elapsed().as_secs_f64());
}
