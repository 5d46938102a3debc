//! Throughput harness (not a timed test; `#[ignore]`d): end-to-end changes/s through the local
//! broker with decant's CPU share and peak RSS.
//!
//! ```text
//! nice cargo build --release -p decant
//! DECANT_BIN=target/release/decant DECANT_BENCH_RECORDS=200000 \
//!   cargo test -p decant-tests --test run_throughput -- --ignored --nocapture
//! ```
//!
//! It pre-loads one source topic with Debezium JSON-with-schema changes of an 8-column
//! `bench.public.orders` table (the shape a JsonConverter with schemas produces: decimal, micro
//! and zoned timestamps, JSON, text), 80 % creates, 15 % updates, 5 % deletes each followed by
//! its tombstone, then starts `decant run` (exactly once, default cadence) and samples
//! `/metrics` and `/proc/<pid>` from the first record read to the last one, so the group join
//! is not counted. The output is read back with read_committed and counted.

use std::time::{Duration, Instant};

use base64::Engine as _;
use decant_tests::bed::{
    Broker, DecantProcess, KeyValue, consume, http_get, produce, random_name, topics_with_prefix,
    write_decant_config,
};

const COLS: &str = r#"[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":true,"field":"customer"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"total"},{"type":"string","optional":true,"field":"status"},{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"placed_at"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"notes"},{"type":"int32","optional":true,"field":"qty"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated_at"}]"#;

fn value_schema() -> String {
    format!(
        r#"{{"type":"struct","fields":[{{"type":"struct","fields":{COLS},"optional":true,"name":"bench.public.orders.Value","field":"before"}},{{"type":"struct","fields":{COLS},"optional":true,"name":"bench.public.orders.Value","field":"after"}},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"version"}},{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"name"}},{{"type":"int64","optional":false,"field":"ts_ms"}},{{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{{"allowed":"true,last,false,incremental"}},"default":"false","field":"snapshot"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}},{{"type":"int64","optional":true,"field":"txId"}},{{"type":"int64","optional":true,"field":"lsn"}}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}}],"optional":false,"name":"bench.public.orders.Envelope","version":1}}"#
    )
}

const KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"bench.public.orders.Key"}"#;

/// Big-endian two's complement, minimal length, base64: Connect's Decimal on the wire.
fn decimal_b64(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

fn after(id: u64, i: u64) -> String {
    format!(
        r#"{{"id":{id},"customer":"customer-{c}","total":"{t}","status":"{s}","placed_at":{p},"notes":"{{\"n\":{i},\"tags\":[\"a\",\"b\"]}}","qty":{q},"updated_at":"2026-11-21T10:{m:02}:{sec:02}.123456Z"}}"#,
        c = id % 9973,
        t = decimal_b64((id * 7 + i) as i64 % 10_000_000),
        s = ["new", "paid", "shipped", "done"][(i % 4) as usize],
        p = 1_795_000_000_000_000u64 + i * 1_000,
        q = i % 50,
        m = i % 60,
        sec = (i / 60) % 60,
    )
}

/// A source record: key and value (`None` = tombstone).
type Owned = (Vec<u8>, Option<Vec<u8>>);

/// The source records and how many output records they make.
fn workload(n: u64, now_ms: u64) -> (Vec<Owned>, u64) {
    let schema = value_schema();
    let mut out = Vec::with_capacity(n as usize + n as usize / 20);
    let mut next_id = 1u64;
    let mut outputs = 0;
    for i in 0..n {
        let (op, id) = match i % 20 {
            0..=15 => ("c", {
                next_id += 1;
                next_id - 1
            }),
            16..=18 => ("u", 1 + (i * 31) % next_id),
            _ => ("d", 1 + (i * 17) % next_id),
        };
        let key = format!(r#"{{"schema":{KEY_SCHEMA},"payload":{{"id":{id}}}}}"#).into_bytes();
        let (before, aft) = match op {
            "d" => (after(id, i), "null".to_owned()),
            _ => ("null".to_owned(), after(id, i)),
        };
        let value = format!(
            r#"{{"schema":{schema},"payload":{{"before":{before},"after":{aft},"source":{{"version":"3.6.3.Final","connector":"postgresql","name":"bench","ts_ms":{now_ms},"snapshot":"false","db":"bench","schema":"public","table":"orders","txId":{tx},"lsn":{lsn}}},"op":"{op}","ts_ms":{now_ms}}}}}"#,
            tx = 1000 + i / 10,
            lsn = 100_000 + i * 64,
        );
        out.push((key.clone(), Some(value.into_bytes())));
        outputs += 1;
        if op == "d" {
            out.push((key, None));
        }
    }
    (out, outputs)
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn metric_sum(port: u16, name: &str) -> u64 {
    http_get(port, "/metrics")
        .map(|(_, m)| {
            m.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .unwrap_or(0)
}

/// A source topic loaded with the workload.
struct Loaded {
    prefix: String,
    /// Workload changes (`DECANT_BENCH_RECORDS`, default 200k; deletes add a tombstone each).
    changes: u64,
    records: Vec<Owned>,
    /// How many output records they make.
    outputs: u64,
}

/// Loads the workload into a fresh source topic.
fn preload(bootstrap: &str, label: &str) -> Loaded {
    let n: u64 = std::env::var("DECANT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let prefix = random_name("bench");
    let topic = format!("{prefix}.public.orders");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (records, outputs) = workload(n, now_ms);
    let bytes: usize = records
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let t = Instant::now();
    for chunk in records.chunks(20_000) {
        let refs: Vec<KeyValue<'_>> = chunk
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        produce(bootstrap, &topic, &refs);
    }
    eprintln!(
        "{label}: loaded {} source records ({:.1} MB) in {:.1} s",
        records.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Loaded {
        prefix,
        changes: n,
        records,
        outputs,
    }
}

#[test]
#[ignore = "throughput harness: run explicitly (see the module docs)"]
fn end_to_end_throughput() {
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let Loaded {
        prefix,
        records,
        outputs,
        ..
    } = preload(&bootstrap, "throughput");

    let work = std::env::temp_dir().join(random_name("decant-bench"));
    let out_prefix = random_name("out");
    let (config, port) = write_decant_config(
        &work,
        &bootstrap,
        &prefix,
        &out_prefix,
        "[log]\nlevel = \"warn\"\n",
    );
    let decant = DecantProcess::start(&config, &work.join("decant.log"), &[]);
    let pid = decant.pid();
    let total = records.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut t0, mut cpu0) = (None, 0.0);
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out:\n{}",
            decant.log_tail(40)
        );
        let read = metric_sum(port, "decant_input_records_total");
        if t0.is_none() && read > 0 {
            t0 = Some((Instant::now(), read));
            cpu0 = proc_cpu_seconds(pid);
        }
        if read >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last transaction is committed within commit_interval_ms.
    let (start, read_at_start) = t0.expect("started");
    let wall = start.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(pid) - cpu0;
    let hwm = proc_status_kb(pid, "VmHWM:");
    let rss = proc_status_kb(pid, "VmRSS:");
    let counted = total - read_at_start;
    let topics = topics_with_prefix(&bootstrap, &format!("{out_prefix}."));
    let out = consume(
        &bootstrap,
        &topics,
        outputs as usize,
        Duration::from_secs(3),
    );
    assert_eq!(
        out.len() as u64,
        outputs,
        "every change reached the output once"
    );
    eprintln!(
        "throughput: {counted} source records in {wall:.2} s = {:.0} changes/s end to end \
         (read → decoded → produced → committed); decant CPU {cpu:.2} s = {:.0} % of one core, \
         {:.0} changes per CPU-second; peak RSS {:.1} MB (now {:.1} MB); {} output records",
        counted as f64 / wall,
        100.0 * cpu / wall,
        counted as f64 / cpu.max(1e-9),
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        out.len()
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&work);
}

/// Ids alive after the workload (creates minus deletes), for the Iceberg harness's row count.
fn live_ids(n: u64) -> usize {
    let mut live = std::collections::HashSet::new();
    let mut next_id = 1u64;
    for i in 0..n {
        match i % 20 {
            0..=15 => {
                live.insert(next_id);
                next_id += 1;
            }
            16..=18 => {
                live.insert(1 + (i * 31) % next_id);
            }
            _ => {
                live.remove(&(1 + (i * 17) % next_id));
            }
        }
    }
    live.len()
}

/// The Iceberg sink under the same load: changes/s into Iceberg at a 10 s commit interval,
/// from the first record read until the snapshot holding the last offset is committed, with
/// decant's CPU share and peak RSS. The table is read back with chdb and its rows counted.
///
/// ```text
/// nice cargo build --release -p decant
/// DECANT_BIN=target/release/decant DECANT_BENCH_RECORDS=500000 \
///   cargo test -p decant-tests --test run_throughput lake -- --ignored --nocapture
/// ```
#[test]
#[ignore = "throughput harness: run explicitly (see the module docs)"]
fn lake_throughput() {
    let bed = decant_tests::bed::Bed::load();
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let Loaded {
        prefix,
        changes,
        records,
        ..
    } = preload(&bootstrap, "lake throughput");
    let topic = format!("{prefix}.public.orders");
    let work = std::env::temp_dir().join(random_name("decant-lake-bench"));
    let catalog = decant_tests::lake::Catalog::sqlite(&work);
    let lake = catalog
        .config("[decode]\ntombstones = \"delete\"\n\n[log]\nlevel = \"warn\"\n")
        .replace(
            "commit_interval_ms = 1000\n",
            "commit_interval_ms = 10000\n",
        );
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, "unused", &lake);
    let decant = DecantProcess::start(
        &config,
        &work.join("decant.log"),
        &[("DECANT_OUTPUT__TYPE", "iceberg")],
    );
    let pid = decant.pid();
    let total = records.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut t0, mut cpu0) = (None, 0.0);
    let mut peak_rss = 0;
    let committed_to = |bed: &decant_tests::bed::Bed| -> i64 {
        if !work.join("lake/catalog.db").exists() {
            return 0;
        }
        decant_tests::lake::lake_tables(bed, &catalog)
            .iter()
            .filter_map(|t| t.main_snapshots().last().cloned())
            .filter_map(|s| {
                let o: serde_json::Value =
                    serde_json::from_str(s["summary"]["decant.offsets"].as_str()?).ok()?;
                // Records consumed: next offsets summed over the topic's partitions.
                Some(
                    o[&topic]
                        .as_object()?
                        .values()
                        .filter_map(|v| v.as_i64())
                        .sum::<i64>(),
                )
            })
            .max()
            .unwrap_or(0)
    };
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out:\n{}",
            decant.log_tail(40)
        );
        let read = metric_sum(port, "decant_input_records_total");
        if t0.is_none() && read > 0 {
            t0 = Some((Instant::now(), read));
            cpu0 = proc_cpu_seconds(pid);
        }
        peak_rss = peak_rss.max(proc_status_kb(pid, "VmRSS:"));
        if read as i64 >= total && committed_to(&bed) >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (start, read_at_start) = t0.expect("started");
    let wall = start.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(pid) - cpu0;
    let hwm = proc_status_kb(pid, "VmHWM:");
    let counted = total as u64 - read_at_start;
    let tables = decant_tests::lake::lake_tables(&bed, &catalog);
    let orders = tables
        .iter()
        .find(|t| t.name == "public.orders")
        .expect("orders table");
    let rows = decant_tests::lake::chdb_rows(&bed, orders).len();
    assert_eq!(rows, live_ids(changes), "live rows in the Iceberg table");
    let snapshots = orders.main_snapshots().len();
    eprintln!(
        "lake throughput: {counted} source records in {wall:.2} s = {:.0} changes/s into Iceberg \
         (read → decoded → reduced → Parquet + equality deletes → committed, 10 s commits, \
         {snapshots} snapshots); decant CPU {cpu:.2} s = {:.0} % of one core, {:.0} changes per \
         CPU-second; peak RSS {:.1} MB (sampled {:.1} MB); {rows} live rows read back by chdb",
        counted as f64 / wall,
        100.0 * cpu / wall,
        counted as f64 / cpu.max(1e-9),
        hwm as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&work);
}
