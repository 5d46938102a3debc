//! MariaDB end to end, as users run it: MariaDB 10.11 (row binlog) → Debezium's MariaDB connector
//! on a Kafka Connect worker (created with `POST /connectors`, JSON converters with schemas on) →
//! the broker → two `decant run` processes at once, one writing compacted upsert topics, one
//! writing Iceberg tables (SQLite catalog) → each read back independently (read_committed
//! consumer; chdb and iceberg-rust's scan) and compared column by column with MariaDB's own
//! final state (`mysql_state.py`).
//!
//! The database (`tests/bed/sql/mysql_*.sql`) holds a type zoo — signed and unsigned integers up
//! to BIGINT UNSIGNED's maximum, BIT(1), BIT(10), TINYINT(1), DECIMAL(10,2), DECIMAL(38,10),
//! FLOAT, DOUBLE, DATE, TIME(6) and TIME(0) including negative spans (`-838:59:59`,
//! `-00:00:00.000001`, `-01:30:00.5`) and `838:59:59`, DATETIME(6), TIMESTAMP(6), YEAR, ENUM, SET,
//! JSON, VARCHAR/TEXT/BLOB, a GEOMETRY point — and a composite-key table; rows come from the
//! snapshot and from the binlog: inserts, updates, deletes, a primary-key change and a
//! multi-statement transaction.
//!
//! MariaDB never sends Debezium's unavailable-value placeholder, so the topics process runs
//! with `keep_state = false` (and `on_truncate = "skip"`, which it needs): its state store must
//! stay empty while its output still equals MariaDB. The Iceberg process keeps the state (the
//! default), so both modes meet the same capture.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, assert_no_duplicate_sources, http_get, random_name, read_output_settled,
    wait_for, write_decant_config,
};
use decant_tests::lake::{Catalog, lake_settled};
use decant_tests::mysql::{MysqlCapture, assert_lake_equals_mysql, mysql_value_matches};
use decant_tests::workload::metric;
use decant_tests::{Run, assert_state_by};

/// Rows per table of the final state, as `mysql_state.py` prints it.
fn count_by_table(expected: &[serde_json::Value]) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for e in expected {
        *counts
            .entry(e["table"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    counts.into_iter().collect()
}

fn ops(run: &Run, op: &str) -> usize {
    run.changes.iter().filter(|c| c["op"] == op).count()
}

#[test]
fn mariadb_connect_to_topics_and_iceberg_equals_mariadb() {
    let started = Instant::now();
    let cap = MysqlCapture::start();
    let snapshot_done = started.elapsed();
    let bootstrap = cap.broker.bootstrap();
    let work = std::env::temp_dir().join(random_name("decant-mysql"));

    let out_prefix = random_name("out");
    let (topics_config, topics_port) = write_decant_config(
        &work.join("topics"),
        &bootstrap,
        &cap.prefix,
        &out_prefix,
        "",
    );
    let catalog = Catalog::sqlite(&work.join("lake"));
    let (lake_config, lake_port) = write_decant_config(
        &work.join("lake"),
        &bootstrap,
        &cap.prefix,
        "unused",
        &catalog.config(""),
    );
    let mut topics = DecantProcess::start(
        &topics_config,
        &work.join("topics.log"),
        &[
            ("DECANT_DEFAULTS__KEEP_STATE", "false"),
            ("DECANT_DEFAULTS__ON_TRUNCATE", "skip"),
        ],
    );
    let mut lake = DecantProcess::start(
        &lake_config,
        &work.join("lake.log"),
        &[("DECANT_OUTPUT__TYPE", "iceberg")],
    );
    for port in [topics_port, lake_port] {
        wait_for(Duration::from_secs(60), "decant /ready", || {
            http_get(port, "/ready").filter(|(s, _)| *s == 200)
        });
    }

    cap.db.sql_files(&["mysql_workload_stream.sql"]);
    // Past the lake's commit interval: the marker's batch changes no other table.
    std::thread::sleep(Duration::from_secs(3));
    cap.db.sql("insert into marker values (1, 'end')");
    let expected = cap.bed.mysql_state(&cap.db.name);
    assert_eq!(
        count_by_table(&expected)
            .iter()
            .map(|(t, n)| (t.rsplit('.').next().unwrap_or_default().to_owned(), *n))
            .collect::<Vec<_>>(),
        [
            ("composite".into(), 3),
            ("marker".into(), 1),
            ("zoo".into(), 8)
        ],
        "MariaDB's final state"
    );

    // Upsert topics: the last value per key (a tombstone removes it) equals MariaDB.
    let (records, run) = read_output_settled(&bootstrap, &out_prefix, &mut topics);
    cap.connect.check_alive(&cap.connector);
    assert_state_by(
        "MariaDB → Connect → decant run (topics)",
        &run,
        &expected,
        mysql_value_matches,
    );
    assert_no_duplicate_sources(&records);
    assert_eq!(
        metric(topics_port, "decant_state_keys "),
        Some(0.0),
        "keep_state = false: nothing is kept for any table"
    );
    assert!(
        ops(&run, "delete") >= 4,
        "deletes, the key change and the transaction's deletes are tombstones: {} deletes",
        ops(&run, "delete")
    );

    // Iceberg: both readers see MariaDB's rows (TIME as the table's long of microseconds).
    let tables = lake_settled(&cap.bed, &catalog, &mut lake);
    assert_eq!(tables.len(), 3, "one Iceberg table per MariaDB table");
    let zoo = tables
        .iter()
        .find(|t| t.name.ends_with(".zoo"))
        .expect("zoo table");
    for col in ["c_time", "c_time0"] {
        assert_eq!(
            zoo.types()[col],
            "long",
            "MySQL TIME is a signed span: Iceberg long µs"
        );
    }
    assert_lake_equals_mysql(
        "MariaDB → Connect → decant run (iceberg)",
        &cap.bed,
        &tables,
        &expected,
        &catalog.lake(),
    );
    // Applied right after the commit that readers already see.
    wait_for(
        Duration::from_secs(30),
        "the Iceberg process's state to hold every live key",
        || metric(lake_port, "decant_state_keys ").filter(|&k| k >= expected.len() as f64),
    );

    for (what, p) in [("topics", topics), ("iceberg", lake)] {
        let status = p.terminate(Duration::from_secs(60));
        assert!(status.success(), "decant ({what}) exit status {status}");
    }
    cap.connect.delete(&cap.connector);
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "mysql_e2e: snapshot done after {:.1} s, {} output records, {:.1} s",
        snapshot_done.as_secs_f64(),
        records.len(),
        started.elapsed().as_secs_f64()
    );
}
