//! Exactly-once under crashes: a sustained PostgreSQL workload (TOAST-unchanged updates, toasted
//! value changes, composite keys, primary-key changes, deletes, multi-statement transactions) flows
//! through Debezium (its PostgreSQL connector on a Kafka Connect worker) while `decant run` is
//! killed with SIGKILL at random moments and restarted (`DECANT_CRASH_KILLS` times, default 22;
//! every other incarnation flushes every 20 rows so that kills leave open transactions behind), and
//! the broker and the Connect worker are each restarted once mid-load, and the worker is killed
//! (SIGKILL) once, so that Debezium sends again what it sent after its last offset flush.
//! Afterwards the committed output, reduced per key, equals PostgreSQL, and no source record (by
//! the provenance headers) appears twice in it, and every data source record produced one output
//! record but for re-sent changes skipped as older than their key's delete (each matched to
//! decant's log and to the earlier record it repeats). The broker (Apache Kafka) is the only judge
//! of what committed: the output is read with read_committed, and a read_uncommitted pass counts
//! the records of aborted transactions it hid.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, consume, consume_uncommitted, header, http_get, random_name, topics_with_prefix,
    upsert_changes, write_decant_config,
};
use decant_tests::connect::ConnectSource;
use decant_tests::workload::{
    Rng, SMALL_FLUSHES, committed, crash_kills, disturb_mid_load, resent_before_delete,
    resent_records, round_sql, unexplained_absences,
};
use decant_tests::{Input, PgMode, assert_pg_state};

/// (topic, partition, offset) of the source record behind an output record.
fn source_of(r: &Input) -> (String, String, String) {
    (
        header(r, "decant.source.topic")
            .unwrap_or_default()
            .to_owned(),
        header(r, "decant.source.partition")
            .unwrap_or_default()
            .to_owned(),
        header(r, "decant.source.offset")
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The test's name in its progress lines.
const NAME: &str = "run_crash";

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let started = Instant::now();
    // Debezium runs as users run it: a connector on a Kafka Connect worker.
    let source = ConnectSource::start();
    let (bed, broker, schema, prefix) =
        (&source.bed, &source.broker, &source.schema, &source.prefix);
    let out_prefix = random_name("out");
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);

    let work = std::env::temp_dir().join(random_name("decant-crash"));
    // Small transactions so that kills land in every phase (open, staging, committing).
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        prefix,
        &out_prefix,
        "[defaults]\non_toast_missing = \"fail\"\n\n[log]\nformat = \"json\"\nlevel = \"info,decant_pipeline=debug\"\n",
    );
    let log = work.join("decant.log");

    // The sustained workload.
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
        let small = [SMALL_FLUSHES];
        let env: &[(&str, &str)] = if k % 2 == 1 { &small } else { &[] };
        let decant = DecantProcess::start(&config, &log, env);
        disturb_mid_load(NAME, k, kills, &mut rng, &source);
        // Two kills in three wait for the first commit of this incarnation (they land
        // mid-stream: in an open transaction, while staging, while committing); the others
        // land anywhere from start-up through state resolution and the group join.
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

    // The last incarnation runs to the end.
    let mut decant = DecantProcess::start(&config, &log, &[]);
    let expected = bed.pg_state(&schema.name);
    let settle_start = Instant::now();
    let mut last_len = usize::MAX;
    let records = loop {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            decant.is_running(),
            "decant exited:\n{}",
            decant.log_tail(60)
        );
        // A failed connector would only show as output that never settles.
        source.connect.check_alive(&source.connector);
        let topics = topics_with_prefix(&broker.bootstrap(), &format!("{out_prefix}."));
        let records = consume(&broker.bootstrap(), &topics, 0, Duration::from_secs(2));
        let marker = records.iter().any(|r| r.topic.ends_with(".marker"));
        if marker && records.len() == last_len {
            break records;
        }
        last_len = records.len();
        assert!(
            settle_start.elapsed() < Duration::from_secs(300),
            "output did not settle; log:\n{}",
            decant.log_tail(80)
        );
    };
    // What the killed incarnations left in open transactions: written, then aborted by the
    // next incarnation's fencing, and hidden by the broker.
    let topics = topics_with_prefix(&broker.bootstrap(), &format!("{out_prefix}."));
    let all_written = consume_uncommitted(&broker.bootstrap(), &topics, records.len());
    let hidden = all_written.len() - records.len();
    eprintln!(
        "{NAME}: {} committed output records, {hidden} records of aborted transactions hidden by the broker",
        records.len()
    );
    assert!(
        hidden > 0,
        "no kill left an open transaction behind: the abort path went untested"
    );
    let committed_records = records.clone();
    let run = upsert_changes(&out_prefix, &committed_records);
    assert_pg_state("after kill -9", &run, &expected, PgMode::Exact);
    let mut seen = HashSet::new();
    for r in &committed_records {
        let src = source_of(r);
        assert!(
            seen.insert(src.clone()),
            "source record {src:?} appears twice among committed transactions"
        );
    }
    // Every source record that can produce output did, once: compare with the source topics.
    let sources = topics_with_prefix(&broker.bootstrap(), &format!("{prefix}."));
    let source_records = consume(&broker.bootstrap(), &sources, 0, Duration::from_secs(2));
    let data_records = source_records.iter().filter(|r| r.value.is_some()).count();
    assert!(
        mid_stream >= kills / 2,
        "only {mid_stream} kills landed after a commit"
    );
    // A change the connector sent again from before its key's delete is skipped (it would be a
    // TOAST miss); every other data record must have produced exactly one output record.
    let (skipped_resends, unexplained) = unexplained_absences(&source_records, &seen, &log);
    assert!(
        unexplained.is_empty(),
        "{} of {data_records} data source records produced no output record:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    assert_eq!(
        seen.len() + skipped_resends,
        data_records,
        "one output record per data source record, but for re-sends skipped as older than their key's delete"
    );
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    eprintln!(
        "{NAME}: {} output records, {} source records; {}",
        records.len(),
        source_records.len(),
        metrics
            .lines()
            .filter(|l| l.starts_with("decant_toast_fills_total")
                || l.starts_with("decant_rewinds_total"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    eprintln!(
        "{NAME}: the connector sent {} record(s) again; {} re-sent change(s) older than their key's delete skipped (log)",
        resent_records(&source_records),
        resent_before_delete(&log)
    );
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("{NAME}: {:.1} s", started.elapsed().as_secs_f64());
}
