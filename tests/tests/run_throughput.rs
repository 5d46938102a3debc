//! Throughput harnesses (not timed tests; `#[ignore]`d). `throughput_table` reports, on the
//! same source records, for each `decant` binary: the decode-only CPU per change (`decant decode
//! --discard` on a kcat `-J` dump of the records), and for each sink (compacted topics, Iceberg)
//! end-to-end changes/s and MB/s through the local broker, decant's CPU-seconds per change, its
//! ratio to the decode-only figure and decant's peak RSS, as one markdown table:
//!
//! ```text
//! nice cargo build --release -p decant
//! DECANT_BINS=/work/bin/decant-before,$PWD/target/release/decant DECANT_BENCH_RECORDS=300000 \
//!   cargo test -p decant-tests --test run_throughput throughput_table -- --ignored --nocapture
//! ```
//!
//! Environment: `DECANT_BINS` (comma-separated binaries; default `DECANT_BIN`, else the one
//! beside the test executable), `DECANT_BENCH_RECORDS` (changes, default 200k; a delete adds a
//! tombstone), `DECANT_BENCH_SINKS` (default `topics,iceberg`), `DECANT_BENCH_DECODE_REPS`
//! (decode-only runs per binary, best taken; default 3), `DECANT_BENCH_SINK_REPS` (runs of
//! each sink per binary, the binaries interleaved, the median per change reported and every
//! run's figure printed; default 1), `DECANT_BENCH_PERF` (a directory:
//! `perf record` attaches to every measured decant and writes `<binary>-<run>.data` there;
//! `DECANT_BENCH_PERF_ARGS`, default `-F 499 --call-graph dwarf,16384`; the numbers of such a
//! run include perf's perturbation). `end_to_end_throughput` and `lake_throughput` are the single
//! sink runs with `DECANT_BIN`. The harnesses hold one lock, so `--ignored` runs them one at a
//! time.
//!
//! The workload: one source topic pre-loaded with Debezium JSON-with-schema changes of an
//! 8-column `bench.public.orders` table (the shape a JsonConverter with schemas produces:
//! decimal, micro and zoned timestamps, JSON, text), 80 % creates, 15 % updates, 5 % deletes each
//! followed by its tombstone. Every run reads the same topic (its own consumer group). A sink run
//! starts `decant run` (exactly once, default cadence) and samples `/metrics` and `/proc/<pid>`
//! from the first record read to the last one (topics) or to the Iceberg snapshot holding the
//! last offset (Iceberg, 10 s commits), so start-up and the group join are not counted; the
//! output is read back (read_committed, counted; Iceberg: chdb, live rows counted). Per change
//! means per source record read in that window (tombstones included). The decode-only figure is
//! the CPU of `decant decode --discard`'s decode loop (from `/proc/<pid>/stat`, between the
//! moment its `rchar` reaches the dump's size, i.e. the input is read and parsed, and its
//! throughput line on stderr, printed after the loop), best of `DECANT_BENCH_DECODE_REPS`; the
//! loop's own stopwatch and the whole process's CPU (input parsing included) are printed beside
//! it. CPU comes in clock ticks (10 ms).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use decant_tests::bed::{
    Bed, Broker, DecantProcess, KeyValue, consume, decant_bin, http_get, produce, random_name,
    topics_with_prefix, write_decant_config,
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

/// The harnesses run one at a time: measurements must not share the machine with each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fields of `/proc/<who>/stat` after the command name (index 0 is field 3, `state`).
fn proc_stat(who: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// Two clock-tick fields of a `/proc/<pid>/stat`, summed, in seconds (USER_HZ = 100).
fn ticks_seconds(fields: &[u64], a: usize, b: usize) -> f64 {
    (fields.get(a).copied().unwrap_or(0) + fields.get(b).copied().unwrap_or(0)) as f64 / 100.0
}

/// utime + stime of `pid`.
fn proc_cpu_seconds(pid: u32) -> f64 {
    ticks_seconds(&proc_stat(&pid.to_string()), 11, 12)
}

/// cutime + cstime of this process: the CPU of its reaped children (getrusage RUSAGE_CHILDREN).
fn children_cpu_seconds() -> f64 {
    ticks_seconds(&proc_stat("self"), 13, 14)
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

/// `perf record` attached to a measured process when `DECANT_BENCH_PERF` names a directory.
struct Perf(Option<std::process::Child>);

impl Perf {
    fn args() -> Vec<String> {
        std::env::var("DECANT_BENCH_PERF_ARGS")
            .unwrap_or_else(|_| "-F 499 --call-graph dwarf,16384".to_owned())
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// `<dir>/<name>.data` (perf's own output in `<name>.log`), or `None` without
    /// `DECANT_BENCH_PERF`.
    fn output(name: &str) -> Option<(PathBuf, std::fs::File)> {
        let dir = PathBuf::from(std::env::var_os("DECANT_BENCH_PERF")?);
        std::fs::create_dir_all(&dir).expect("DECANT_BENCH_PERF directory");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("perf log");
        eprintln!(
            "perf record → {}",
            dir.join(format!("{name}.data")).display()
        );
        Some((dir.join(format!("{name}.data")), log))
    }

    /// Attaches to `pid`'s threads (at the start of the measured window, when decant's threads
    /// exist: perf does not follow threads started by threads it did not attach to).
    fn attach(pid: u32, name: &str) -> Perf {
        let Some((data, log)) = Perf::output(name) else {
            return Perf(None);
        };
        let child = Command::new("perf")
            .arg("record")
            .args(Perf::args())
            .arg("-o")
            .arg(data)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("perf log"))
            .stderr(log)
            .spawn()
            .expect("start perf record (DECANT_BENCH_PERF is set)");
        Perf(Some(child))
    }

    /// SIGINT (perf writes its file and exits), then reaps it.
    fn stop(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

/// A source topic loaded with the workload.
struct Loaded {
    prefix: String,
    /// Workload changes (`DECANT_BENCH_RECORDS`, default 200k; deletes add a tombstone each).
    changes: u64,
    records: Vec<Owned>,
    /// Key + value bytes of `records`.
    bytes: u64,
    /// How many output records they make.
    outputs: u64,
}

impl Loaded {
    fn topic(&self) -> String {
        format!("{}.public.orders", self.prefix)
    }
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
        bytes: bytes as u64,
        outputs,
    }
}

/// One measured sink run: source records read in the window, its wall time, decant's CPU in it,
/// decant's peak RSS (VmHWM at the end).
struct SinkRun {
    counted: u64,
    wall: f64,
    cpu: f64,
    hwm_kb: u64,
}

/// Fails the harness at once when decant, still expected to read, has exited or is past
/// `deadline`.
fn assert_still_running(decant: &mut DecantProcess, bin: &Path, deadline: Instant) {
    assert!(
        Instant::now() < deadline,
        "timed out:\n{}",
        decant.log_tail(40)
    );
    assert!(
        decant.is_running(),
        "decant ({}) exited before reading every source record:\n{}",
        bin.display(),
        decant.log_tail(40)
    );
}

/// `decant run` into compacted topics (exactly once, default cadence) until every source record
/// is read; every change must reach the output once.
fn topics_run(bin: &Path, bootstrap: &str, loaded: &Loaded, perf_name: &str) -> SinkRun {
    let Loaded {
        prefix,
        records,
        outputs,
        ..
    } = loaded;
    let outputs = *outputs;
    let work = std::env::temp_dir().join(random_name("decant-bench"));
    let out_prefix = random_name("out");
    let (config, port) = write_decant_config(
        &work,
        bootstrap,
        prefix,
        &out_prefix,
        "[log]\nlevel = \"warn\"\n",
    );
    let mut decant = DecantProcess::start_bin(bin, &config, &work.join("decant.log"), &[]);
    let pid = decant.pid();
    let mut perf = Perf(None);
    let total = records.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut t0, mut cpu0) = (None, 0.0);
    loop {
        assert_still_running(&mut decant, bin, deadline);
        let read = metric_sum(port, "decant_input_records_total");
        if t0.is_none() && read > 0 {
            t0 = Some((Instant::now(), read));
            cpu0 = proc_cpu_seconds(pid);
            perf = Perf::attach(pid, perf_name);
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
    perf.stop();
    let counted = total - read_at_start;
    let topics = topics_with_prefix(bootstrap, &format!("{out_prefix}."));
    let out = consume(bootstrap, &topics, outputs as usize, Duration::from_secs(3));
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
    SinkRun {
        counted,
        wall,
        cpu,
        hwm_kb: hwm,
    }
}

#[test]
#[ignore = "throughput harness: run explicitly (see the module docs)"]
fn end_to_end_throughput() {
    let _serial = serial();
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let loaded = preload(&bootstrap, "throughput");
    topics_run(&decant_bin(), &bootstrap, &loaded, "decant-topics");
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
fn lake_run(bin: &Path, bed: &Bed, bootstrap: &str, loaded: &Loaded, perf_name: &str) -> SinkRun {
    let Loaded {
        prefix,
        changes,
        records,
        ..
    } = loaded;
    let topic = loaded.topic();
    let work = std::env::temp_dir().join(random_name("decant-lake-bench"));
    let catalog = decant_tests::lake::Catalog::sqlite(&work);
    let lake = catalog
        .config("[decode]\ntombstones = \"delete\"\n\n[log]\nlevel = \"warn\"\n")
        .replace(
            "commit_interval_ms = 1000\n",
            "commit_interval_ms = 10000\n",
        );
    let (config, port) = write_decant_config(&work, bootstrap, prefix, "unused", &lake);
    let mut decant = DecantProcess::start_bin(
        bin,
        &config,
        &work.join("decant.log"),
        &[("DECANT_OUTPUT__TYPE", "iceberg")],
    );
    let pid = decant.pid();
    let mut perf = Perf(None);
    let total = records.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut t0, mut cpu0) = (None, 0.0);
    let mut peak_rss = 0;
    let committed_to = |bed: &Bed| -> i64 {
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
        assert_still_running(&mut decant, bin, deadline);
        let read = metric_sum(port, "decant_input_records_total");
        if t0.is_none() && read > 0 {
            t0 = Some((Instant::now(), read));
            cpu0 = proc_cpu_seconds(pid);
            perf = Perf::attach(pid, perf_name);
        }
        peak_rss = peak_rss.max(proc_status_kb(pid, "VmRSS:"));
        // The catalog (a Python process) is only asked once everything is read.
        if read as i64 >= total && committed_to(bed) >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (start, read_at_start) = t0.expect("started");
    let wall = start.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(pid) - cpu0;
    let hwm = proc_status_kb(pid, "VmHWM:");
    perf.stop();
    let counted = total as u64 - read_at_start;
    let tables = decant_tests::lake::lake_tables(bed, &catalog);
    let orders = tables
        .iter()
        .find(|t| t.name == "public.orders")
        .expect("orders table");
    let rows = decant_tests::lake::chdb_rows(bed, orders).len();
    assert_eq!(rows, live_ids(*changes), "live rows in the Iceberg table");
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
    SinkRun {
        counted,
        wall,
        cpu,
        hwm_kb: hwm,
    }
}

/// The Iceberg harness alone:
///
/// ```text
/// nice cargo build --release -p decant
/// DECANT_BIN=target/release/decant DECANT_BENCH_RECORDS=500000 \
///   cargo test -p decant-tests --test run_throughput lake -- --ignored --nocapture
/// ```
#[test]
#[ignore = "throughput harness: run explicitly (see the module docs)"]
fn lake_throughput() {
    let _serial = serial();
    let bed = Bed::load();
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let loaded = preload(&bootstrap, "lake throughput");
    lake_run(&decant_bin(), &bed, &bootstrap, &loaded, "decant-iceberg");
}

/// Writes the records as `kcat -C -J` lines (what `decant decode` reads): partition 0, offset =
/// position, key and payload as text (`null` payload = tombstone).
fn write_kcat_dump(path: &Path, topic: &str, records: &[Owned]) {
    let file = std::fs::File::create(path).expect("create the kcat dump");
    let mut w = std::io::BufWriter::new(file);
    for (i, (k, v)) in records.iter().enumerate() {
        let line = serde_json::json!({
            "topic": topic,
            "partition": 0,
            "offset": i,
            "key": std::str::from_utf8(k).expect("UTF-8 key"),
            "payload": v.as_deref().map(|v| std::str::from_utf8(v).expect("UTF-8 value")),
        });
        serde_json::to_writer(&mut w, &line).expect("write the kcat dump");
        w.write_all(b"\n").expect("write the kcat dump");
    }
    w.flush().expect("write the kcat dump");
}

/// `decant decode --discard` on the dump, best of `DECANT_BENCH_DECODE_REPS`.
struct DecodeRun {
    /// The decode loop's CPU (best run): decant's CPU from the moment it has read the whole
    /// dump (`rchar` in `/proc/<pid>/io`) to its throughput line on stderr (after the loop).
    loop_cpu: f64,
    /// The decode loop's time as decant reports it (best run).
    loop_s: f64,
    /// The whole process's CPU, reading and parsing the dump included (best run).
    process_cpu: f64,
    /// Its wall time in the run of `process_cpu`.
    process_wall: f64,
}

fn proc_rchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("rchar:")?.trim().parse().ok())
        .unwrap_or(0)
}

fn decode_run(bin: &Path, dump: &Path, records: usize, perf_name: &str) -> DecodeRun {
    use std::io::BufRead as _;
    let reps: usize = std::env::var("DECANT_BENCH_DECODE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dump_len = std::fs::metadata(dump).expect("the kcat dump").len();
    let mut best = DecodeRun {
        loop_cpu: f64::INFINITY,
        loop_s: f64::INFINITY,
        process_cpu: f64::INFINITY,
        process_wall: 0.0,
    };
    for rep in 0..reps {
        // The first run under perf when profiling (perf runs decant as its child; that run's
        // figures are printed, not used).
        let perf = if rep == 0 {
            Perf::output(perf_name)
        } else {
            None
        };
        let mut cmd = match &perf {
            Some((data, _)) => {
                let mut c = Command::new("perf");
                c.arg("record")
                    .args(Perf::args())
                    .arg("-o")
                    .arg(data)
                    .arg("--")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("decode")
            .arg("--discard")
            .arg(dump)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let cpu0 = children_cpu_seconds();
        let t = Instant::now();
        let mut child = cmd.spawn().expect("run decant decode");
        let pid = child.id();
        let pipe = child.stderr.take().expect("decode stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.starts_with("decoded ") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let (mut cpu_read, mut cpu_done) = (None, None);
        loop {
            match rx.try_recv() {
                Ok(()) => {
                    cpu_done = Some(proc_cpu_seconds(pid));
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if cpu_read.is_none() && perf.is_none() && proc_rchar(pid) >= dump_len {
                cpu_read = Some(proc_cpu_seconds(pid));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = child.wait().expect("wait for decant decode");
        let wall = t.elapsed().as_secs_f64();
        let cpu = children_cpu_seconds() - cpu0;
        let stderr = reader.join().expect("stderr reader");
        assert!(status.success(), "decant decode failed:\n{stderr}");
        // "decoded N messages (X MB) in S s: R msgs/s, M MB/s, E errors"
        let line = stderr
            .lines()
            .find(|l| l.starts_with("decoded "))
            .unwrap_or_else(|| panic!("no throughput line from decant decode:\n{stderr}"));
        let decoded: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("decoded count");
        assert_eq!(decoded, records, "{line}");
        assert!(line.ends_with(" 0 errors"), "{line}");
        let loop_s: f64 = line
            .split_once(" in ")
            .and_then(|(_, x)| x.split_whitespace().next()?.parse().ok())
            .expect("decode time");
        let loop_cpu = cpu_read.zip(cpu_done).map(|(a, b)| b - a);
        eprintln!(
            "decode-only ({}): {line}; decode loop CPU {}; process CPU {cpu:.2} s, wall {wall:.2} s{}",
            bin.display(),
            loop_cpu.map_or("n/a".to_owned(), |c| format!("{c:.2} s")),
            if perf.is_some() { " (under perf)" } else { "" }
        );
        if perf.is_some() {
            continue;
        }
        best.loop_cpu = best
            .loop_cpu
            .min(loop_cpu.expect("decode loop CPU sampled"));
        best.loop_s = best.loop_s.min(loop_s);
        if cpu < best.process_cpu {
            best.process_cpu = cpu;
            best.process_wall = wall;
        }
    }
    assert!(
        best.loop_cpu.is_finite(),
        "no decode run outside perf: set DECANT_BENCH_DECODE_REPS to 2 or more"
    );
    best
}

/// The binaries to compare: `DECANT_BINS` (comma-separated), else [`decant_bin`]; each labelled
/// by its file name (made unique).
fn bench_bins() -> Vec<(String, PathBuf)> {
    let bins: Vec<PathBuf> = match std::env::var("DECANT_BINS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => vec![decant_bin()],
    };
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for bin in bins {
        assert!(bin.exists(), "{}: no such binary", bin.display());
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "decant".to_owned());
        let mut label = name.clone();
        let mut n = 2;
        while out.iter().any(|(l, _)| *l == label) {
            label = format!("{name}#{n}");
            n += 1;
        }
        out.push((label, bin));
    }
    out
}

/// One row of the table.
struct Row {
    binary: String,
    run: &'static str,
    records: u64,
    wall: f64,
    cpu: f64,
    /// Decode-only µs per change of the same binary.
    decode_us: f64,
    bytes: f64,
    hwm_kb: Option<u64>,
}

fn markdown(rows: &[Row]) -> String {
    let mut t = String::from(
        "| binary | run | changes | wall s | changes/s | MB/s | CPU s | CPU % of a core | CPU µs/change | decode-only µs/change | CPU ÷ decode-only | peak RSS MiB |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let us = 1e6 * r.cpu / r.records as f64;
        t.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {:.1} | {} |\n",
            r.binary,
            r.run,
            r.records,
            r.wall,
            r.records as f64 / r.wall,
            r.bytes / 1e6 / r.wall,
            r.cpu,
            100.0 * r.cpu / r.wall,
            us,
            r.decode_us,
            us / r.decode_us,
            r.hwm_kb
                .map_or("–".to_owned(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
        ));
    }
    t
}

/// Decode-only and both sinks, for every binary of `DECANT_BINS`, on the same source topic and
/// its kcat dump; one markdown table (module docs).
#[test]
#[ignore = "throughput harness: run explicitly (see the module docs)"]
fn throughput_table() {
    let _serial = serial();
    let bins = bench_bins();
    let sinks: Vec<String> = std::env::var("DECANT_BENCH_SINKS")
        .unwrap_or_else(|_| "topics,iceberg".to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for s in &sinks {
        assert!(
            s == "topics" || s == "iceberg",
            "DECANT_BENCH_SINKS: unknown sink {s:?} (topics, iceberg)"
        );
    }
    let bed = sinks.iter().any(|s| s == "iceberg").then(Bed::load);
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let loaded = preload(&bootstrap, "throughput table");
    let total = loaded.records.len() as u64;
    let bytes_per_record = loaded.bytes as f64 / total as f64;
    let dump = std::env::temp_dir().join(format!("{}.jsonl", random_name("decant-bench-dump")));
    write_kcat_dump(&dump, &loaded.topic(), &loaded.records);
    let reps: usize = std::env::var("DECANT_BENCH_SINK_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut notes = Vec::new();
    let mut decode_rows = Vec::new();
    for (label, bin) in &bins {
        let d = decode_run(bin, &dump, loaded.records.len(), &format!("{label}-decode"));
        let decode_us = 1e6 * d.loop_cpu / total as f64;
        decode_rows.push(Row {
            binary: label.clone(),
            run: "decode --discard",
            records: total,
            wall: d.loop_s,
            cpu: d.loop_cpu,
            decode_us,
            bytes: loaded.bytes as f64,
            hwm_kb: None,
        });
        notes.push(format!(
            "{label}: decode-only = the decode loop's CPU (wall s: its own stopwatch), best of \
             the runs; the whole `decant decode --discard` process (reading and parsing the \
             {:.0} MB dump included) took {:.2} s CPU = {:.2} µs/change in {:.2} s wall",
            std::fs::metadata(&dump).map_or(0, |m| m.len()) as f64 / 1e6,
            d.process_cpu,
            1e6 * d.process_cpu / total as f64,
            d.process_wall,
        ));
    }
    // Sink runs, binaries interleaved within each repetition so that a slow spell of the
    // machine falls on every binary alike; each row is the run of median CPU per change.
    let mut runs: Vec<Vec<Vec<SinkRun>>> = bins
        .iter()
        .map(|_| sinks.iter().map(|_| Vec::new()).collect())
        .collect();
    for rep in 0..reps {
        for (b, (label, bin)) in bins.iter().enumerate() {
            for (k, sink) in sinks.iter().enumerate() {
                let perf_name = if reps > 1 {
                    format!("{label}-{sink}-{rep}")
                } else {
                    format!("{label}-{sink}")
                };
                let r = match sink.as_str() {
                    "topics" => topics_run(bin, &bootstrap, &loaded, &perf_name),
                    _ => lake_run(
                        bin,
                        bed.as_ref().expect("bed loaded"),
                        &bootstrap,
                        &loaded,
                        &perf_name,
                    ),
                };
                runs[b][k].push(r);
            }
        }
    }
    let mut rows = Vec::new();
    for (b, ((label, _), decode)) in bins.iter().zip(decode_rows).enumerate() {
        let decode_us = decode.decode_us;
        rows.push(decode);
        for (k, sink) in sinks.iter().enumerate() {
            let mut these = std::mem::take(&mut runs[b][k]);
            let per_change = |r: &SinkRun| r.cpu / r.counted as f64;
            these.sort_by(|x, y| per_change(x).total_cmp(&per_change(y)));
            let run = if sink == "topics" {
                "topics (exactly once)"
            } else {
                "Iceberg (10 s commits)"
            };
            if reps > 1 {
                notes.push(format!(
                    "{label}, {run}: CPU µs/change of the {reps} runs {:?}; the row is the median",
                    these
                        .iter()
                        .map(|r| (1e8 * per_change(r)).round() / 100.0)
                        .collect::<Vec<_>>()
                ));
            }
            let r = these.swap_remove(these.len() / 2);
            rows.push(Row {
                binary: label.clone(),
                run,
                records: r.counted,
                wall: r.wall,
                cpu: r.cpu,
                decode_us,
                bytes: bytes_per_record * r.counted as f64,
                hwm_kb: Some(r.hwm_kb),
            });
        }
    }
    let _ = std::fs::remove_file(&dump);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "\n{} changes ({} source records with tombstones, {:.1} MB key + value) on topic {}; \
         binaries: {}; load average at the end: {}\n\n{}",
        loaded.changes,
        total,
        loaded.bytes as f64 / 1e6,
        loaded.topic(),
        bins.iter()
            .map(|(l, b)| format!("{l} = {}", b.display()))
            .collect::<Vec<_>>()
            .join(", "),
        load.trim(),
        markdown(&rows),
    );
    for n in notes {
        eprintln!("- {n}");
    }
}
