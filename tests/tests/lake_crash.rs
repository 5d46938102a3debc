//! Exactly-once into Iceberg under crashes: a sustained PostgreSQL workload (TOAST-unchanged
//! updates, toasted value changes, composite keys, primary-key changes, deletes, multi-statement
//! transactions) flows through Debezium (its PostgreSQL connector on a Kafka Connect worker) while
//! `decant run` (Iceberg sink, 1 s commits) is killed with SIGKILL at random moments and restarted
//! (`DECANT_CRASH_KILLS` times, default 22; every other incarnation flushes every 20 rows), and the
//! broker and the Connect worker are each restarted once mid-load, and the worker is killed
//! (SIGKILL) once, so that Debezium sends again what it sent after its last offset flush.
//! Afterwards the tables equal PostgreSQL, every snapshot's offsets continue its predecessor's
//! (each offset range committed once, never twice, by unique commit ids), and the last committed
//! offsets reach the end of every source partition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, consume, random_name, topics_with_prefix, write_decant_config,
};
use decant_tests::connect::ConnectSource;
use decant_tests::lake::{Catalog, assert_lake_equals_pg, assert_snapshot_log, lake_settled};
use decant_tests::workload::{
    Rng, SMALL_FLUSHES, committed, crash_kills, disturb_mid_load, resent_before_delete,
    resent_records, round_sql,
};

/// The test's name in its progress lines.
const NAME: &str = "lake_crash";

#[test]
fn kill_9_at_random_moments_commits_every_change_once() {
    let started = Instant::now();
    // Debezium runs as users run it: a connector on a Kafka Connect worker.
    let source = ConnectSource::start();
    let (bed, broker, schema, prefix) =
        (&source.bed, &source.broker, &source.schema, &source.prefix);
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);

    let work = std::env::temp_dir().join(random_name("decant-lake-crash"));
    let catalog = Catalog::sqlite(&work);
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        prefix,
        "unused",
        &catalog.config(
            "[defaults]\non_toast_missing = \"fail\"\n\n[log]\nlevel = \"info,decant_iceberg=debug\"\n",
        ),
    );
    let env = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let log = work.join("decant.log");

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, rounds, bed, name) = (
            stop.clone(),
            rounds.clone(),
            bed.clone(),
            schema.name.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 10;
            while !stop.load(Ordering::SeqCst) {
                bed.psql(&round_sql(&name, i), &[]);
                rounds.fetch_add(1, Ordering::SeqCst);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    eprintln!("{NAME}: kill schedule seed {seed}");
    let mut rng = Rng(seed);
    let mut mid_stream = 0;
    let kills = crash_kills();
    for k in 0..kills {
        // Every other incarnation flushes small (see SMALL_FLUSHES).
        let small = [env[0], SMALL_FLUSHES];
        let decant = DecantProcess::start(&config, &log, if k % 2 == 1 { &small } else { &env });
        disturb_mid_load(NAME, k, kills, &mut rng, &source);
        // Two kills in three land after this incarnation's first commit (while a batch is
        // open, while files are written, while a commit is being published); the others
        // anywhere from start-up through claiming and state resolution.
        if k % 3 != 2 {
            let until = Instant::now() + Duration::from_secs(90);
            while Instant::now() < until && committed(port) == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            if committed(port) > 0 {
                mid_stream += 1;
            }
            std::thread::sleep(rng.millis(50, 3_000));
        } else {
            std::thread::sleep(rng.millis(100, 8_000));
        }
        decant.kill9();
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("workload thread");
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    eprintln!(
        "{NAME}: {kills} kills ({mid_stream} after a commit) during {} workload rounds, {:.0} s",
        rounds.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    );

    let mut decant = DecantProcess::start(&config, &log, &env);
    let expected = bed.pg_state(&schema.name);
    let tables = lake_settled(bed, &catalog, &mut decant);
    assert_lake_equals_pg("after kill -9 (iceberg)", bed, &tables, &expected, None);
    let snapshots = assert_snapshot_log(&tables);
    assert!(
        mid_stream >= kills / 2,
        "only {mid_stream} kills landed after a commit"
    );

    // Every source partition is committed at least past its last data record (a trailing
    // tombstone changes no table, so no snapshot needs to cover it).
    let sources = topics_with_prefix(&broker.bootstrap(), &format!("{prefix}."));
    let source_records = consume(&broker.bootstrap(), &sources, 0, Duration::from_secs(2));
    let mut ends: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in source_records.iter().filter(|r| r.value.is_some()) {
        let e = ends
            .entry((r.topic.clone(), r.partition.to_string()))
            .or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let mut committed_to: BTreeMap<(String, String), i64> = BTreeMap::new();
    for t in &tables {
        if let Some(last) = t.main_snapshots().last() {
            let offsets: serde_json::Value =
                serde_json::from_str(last["summary"]["decant.offsets"].as_str().expect("offsets"))
                    .expect("json");
            for (topic, parts) in offsets.as_object().into_iter().flatten() {
                for (p, o) in parts.as_object().into_iter().flatten() {
                    let e = committed_to.entry((topic.clone(), p.clone())).or_insert(0);
                    *e = (*e).max(o.as_i64().unwrap_or(0));
                }
            }
        }
    }
    for (tp, end) in &ends {
        let got = committed_to.get(tp).copied().unwrap_or(0);
        assert!(
            got >= *end,
            "{tp:?}: committed to {got}, last data record ends at {end}"
        );
    }
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    eprintln!(
        "{NAME}: {snapshots} snapshots over {} tables, {} source records, {:.1} s",
        tables.len(),
        source_records.len(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "{NAME}: the connector sent {} record(s) again; {} re-sent change(s) older than their key's delete skipped (log)",
        resent_records(&source_records),
        resent_before_delete(&log)
    );
    let _ = std::fs::remove_dir_all(&work);
}
