//! The live test bed from Rust: the broker, PostgreSQL, Debezium's embedded engine and the
//! read_committed consumer, as set up by `tests/bed/setup.sh` (paths come from its `bed.env`).
//!
//! Every handle cleans up after itself on drop (broker stopped, runner stopped, replication slot
//! and schema dropped), so a failing test leaves no state for the next one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;

use crate::Input;

/// The repository's `tests/bed` directory.
pub fn bed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bed")
}

/// Paths and addresses of an installed bed.
#[derive(Debug, Clone)]
pub struct Bed {
    pub env: HashMap<String, String>,
}

impl Bed {
    /// Reads `${DECANT_CACHE:-~/.cache/decant}/bed.env`; panics with the command to run if the
    /// bed was never set up (the README's test command does it).
    pub fn load() -> Bed {
        let cache = std::env::var("DECANT_CACHE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/decant",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let path = Path::new(&cache).join("bed.env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "test bed not set up ({}: {e}); run `bash tests/bed/setup.sh` or `bash tests/run.sh`",
                path.display()
            )
        });
        let env = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export ").or(Some(l.trim())))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
            .collect();
        Bed { env }
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("bed.env has no {key}"))
    }

    pub fn pg_url(&self) -> String {
        self.get("DECANT_PG_URL")
    }

    /// Runs SQL through psql (ON_ERROR_STOP), with `-v name=value` variables.
    pub fn psql(&self, sql: &str, vars: &[(&str, &str)]) {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(self.pg_url());
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        run_ok(cmd.arg("-c").arg(sql), "psql");
    }

    /// Runs SQL files from `tests/bed/sql`.
    pub fn psql_files(&self, files: &[&str], vars: &[(&str, &str)]) {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(self.pg_url());
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        for f in files {
            cmd.arg("-f").arg(bed_dir().join("sql").join(f));
        }
        run_ok(&mut cmd, "psql");
    }

    /// PostgreSQL's own rendering of every table of `schema` (see `tests/bed/pg_state.py`).
    pub fn pg_state(&self, schema: &str) -> Vec<Json> {
        let out = run_ok(
            Command::new(self.get("DECANT_PY"))
                .arg(bed_dir().join("pg_state.py"))
                .args(["--url", &self.pg_url(), "--schema", schema]),
            "pg_state.py",
        );
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("pg_state line is JSON"))
            .collect()
    }
}

/// Runs a command to completion; panics with its output unless it exits 0. Returns stdout.
pub fn run_ok(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A name unique to this test process and call: `prefix_<pid>_<n>_<millis>`.
pub fn random_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{millis}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it returns `Some`, failing the test with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An Apache Kafka broker (KRaft, single node) started through `tests/bed/broker.sh`, its data
/// in its own directory (a restart keeps everything); stopped and removed on drop.
pub struct Broker {
    pub port: u16,
    pub dir: PathBuf,
    /// Started with `--secure`: SASL_SSL, mTLS and OAUTHBEARER listeners too ([`Broker::secure`]).
    pub secure: bool,
}

impl Broker {
    pub fn start() -> Broker {
        let broker = Broker::unstarted();
        run_ok(&mut broker.script("start"), "broker.sh start");
        broker
    }

    /// A free port and a fresh directory; dropping it stops whatever `broker.sh` started there.
    fn unstarted() -> Broker {
        Broker {
            port: free_port(),
            dir: std::env::temp_dir().join(random_name("decant-broker")),
            secure: false,
        }
    }

    fn script(&self, action: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(bed_dir().join("broker.sh"))
            .arg(action)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--port")
            .arg(self.port.to_string());
        if self.secure && action == "start" {
            cmd.arg("--secure");
        }
        cmd
    }

    /// The secure listeners' addresses, files and credentials (`DIR/secure.env`, see
    /// `tests/bed/broker.sh`); panics for a broker started without `--secure`.
    pub fn secure(&self) -> SecureEnv {
        let text = std::fs::read_to_string(self.dir.join("secure.env"))
            .unwrap_or_else(|e| panic!("{}: {e} (not a --secure broker?)", self.dir.display()));
        SecureEnv(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The codecs of the data batches stored in partition 0 of `topic`, read from the broker's
    /// own log segment files (record batch v2 headers: the low 3 bits of `attributes`; control
    /// batches such as transaction markers are skipped). Independent of any client.
    pub fn stored_codecs(&self, topic: &str) -> std::collections::BTreeSet<&'static str> {
        let dir = self.dir.join("data").join(format!("{topic}-0"));
        let mut out = std::collections::BTreeSet::new();
        let files = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for f in files.flatten() {
            if f.path().extension().is_none_or(|x| x != "log") {
                continue;
            }
            let bytes = std::fs::read(f.path()).expect("segment");
            let mut pos = 0;
            // baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32,
            // attributes i16 …
            while pos + 23 <= bytes.len() {
                let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4"));
                if len <= 0 {
                    break;
                }
                let attrs = u16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().expect("2"));
                if attrs & 0x20 == 0 {
                    out.insert(match attrs & 0x7 {
                        0 => "none",
                        1 => "gzip",
                        2 => "snappy",
                        3 => "lz4",
                        4 => "zstd",
                        _ => "unknown",
                    });
                }
                pos += 12 + len as usize;
            }
        }
        out
    }

    /// Stops and starts the same broker (same port, same data).
    pub fn restart(&self) {
        run_ok(&mut self.script("stop"), "broker.sh stop");
        run_ok(&mut self.script("start"), "broker.sh start");
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// What `broker.sh --secure` wrote to `DIR/secure.env`: `SASL_SSL`, `MTLS`, `OAUTH` (addresses),
/// `OIDC_TOKEN_URL`, `CA`, `OTHER_CA`, `CLIENT_CERT`, `CLIENT_KEY`, users and secrets.
#[derive(Debug, Clone)]
pub struct SecureEnv(pub HashMap<String, String>);

impl SecureEnv {
    pub fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("secure.env has no {key}"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.script("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL schema with the type-zoo tables; slot, publication and schema dropped on drop.
pub struct PgSchema {
    pub bed: Bed,
    pub name: String,
}

impl PgSchema {
    pub fn create(bed: &Bed) -> PgSchema {
        let name = random_name("s");
        bed.psql_files(&["typezoo.sql"], &[("schema", &name)]);
        PgSchema {
            bed: bed.clone(),
            name,
        }
    }

    pub fn slot(&self) -> String {
        format!("decant_{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let slot = self.slot();
        for _ in 0..20 {
            let gone = Command::new("psql")
                .args(["-X", "-q", "-At"])
                .arg(self.bed.pg_url())
                .arg("-c")
                .arg(format!(
                    "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '{slot}' and not active; \
                     select count(*) from pg_replication_slots where slot_name = '{slot}'"
                ))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().ends_with('0'))
                .unwrap_or(true);
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = Command::new("psql")
            .args(["-X", "-q"])
            .arg(self.bed.pg_url())
            .arg("-c")
            .arg(format!(
                "drop publication if exists {slot}; drop schema if exists \"{}\" cascade",
                self.name
            ))
            .output();
    }
}

/// A live capture, the starting point of every end-to-end test: a broker, a fresh PostgreSQL
/// schema holding the snapshot workload, and Debezium streaming it into
/// `<prefix>.<schema>.<table>` topics, its snapshot done.
pub struct LiveSource {
    pub bed: Bed,
    pub broker: Broker,
    pub schema: PgSchema,
    pub prefix: String,
    pub dbz: Debezium,
}

impl LiveSource {
    pub fn start() -> LiveSource {
        LiveSource::start_with(|_| Vec::new())
    }

    /// With connector properties that may name the schema (`extra` as in [`Debezium::start`]).
    pub fn start_with(extra: impl FnOnce(&PgSchema) -> Vec<(String, String)>) -> LiveSource {
        LiveSource::start_on(Broker::start_retrying(), extra)
    }

    /// On a broker the caller started (e.g. [`Broker::start_secure`]); Debezium produces to its
    /// plaintext listener.
    pub fn start_on(
        broker: Broker,
        extra: impl FnOnce(&PgSchema) -> Vec<(String, String)>,
    ) -> LiveSource {
        let bed = Bed::load();
        let schema = PgSchema::create(&bed);
        bed.psql_files(&["workload_snapshot.sql"], &[("schema", &schema.name)]);
        let prefix = random_name("src");
        let extra = extra(&schema);
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (&**k, &**v)).collect();
        let mut dbz = Debezium::start(&bed, &schema, &broker, &prefix, &extra);
        dbz.wait_snapshot(Duration::from_secs(300));
        LiveSource {
            bed,
            broker,
            schema,
            prefix,
            dbz,
        }
    }
}

/// Debezium's embedded engine feeding the broker (`tests/bed/java/DbzToKafka.java`).
pub struct Debezium {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub work: PathBuf,
}

impl Debezium {
    /// Starts capturing `schema` into topics `<prefix>.<schema>.<table>`. `extra` overrides
    /// connector properties (`decimal.handling.mode`, `time.precision.mode`, schemas …).
    pub fn start(
        bed: &Bed,
        schema: &PgSchema,
        broker: &Broker,
        prefix: &str,
        extra: &[(&str, &str)],
    ) -> Debezium {
        let work = std::env::temp_dir().join(random_name("decant-dbz"));
        std::fs::create_dir_all(&work).expect("work dir");
        let port = bed
            .pg_url()
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next().map(str::to_owned))
            .unwrap_or_else(|| "5432".into());
        let mut props: Vec<(String, String)> = [
            ("name", format!("decant-test-{}", schema.name)),
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector".into(),
            ),
            ("database.hostname", "127.0.0.1".into()),
            ("database.port", port),
            ("database.user", "postgres".into()),
            ("database.password", "postgres".into()),
            ("database.dbname", "postgres".into()),
            ("topic.prefix", prefix.into()),
            ("schema.include.list", schema.name.clone()),
            ("plugin.name", "pgoutput".into()),
            ("slot.name", schema.slot()),
            ("publication.name", schema.slot()),
            ("publication.autocreate.mode", "filtered".into()),
            ("snapshot.mode", "initial".into()),
            (
                "offset.storage",
                "org.apache.kafka.connect.storage.FileOffsetBackingStore".into(),
            ),
            (
                "offset.storage.file.filename",
                work.join("offsets.dat").display().to_string(),
            ),
            ("runner.bootstrap.servers", broker.bootstrap()),
            ("runner.partitions", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            props.retain(|(pk, _)| pk != k);
            props.push((k.to_string(), v.to_string()));
        }
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let props_path = work.join("dbz.properties");
        std::fs::write(&props_path, text).expect("write properties");
        let mut child = Command::new(bed.get("DECANT_DBZ_RUNNER"))
            .arg(&props_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(work.join("runner.err")).expect("stderr file"))
            .spawn()
            .expect("start DbzToKafka");
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stdout.take().map(|out| {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mut l) = sink.lock() {
                        l.push(line);
                    }
                }
            })
        });
        Debezium {
            child,
            stdin,
            lines,
            reader,
            work,
        }
    }

    fn saw(&self, prefix: &str) -> bool {
        self.lines
            .lock()
            .map(|l| l.iter().any(|x| x.starts_with(prefix)))
            .unwrap_or(false)
    }

    fn check_alive(&mut self) {
        if self.saw("RUNNER FAILED") || matches!(self.child.try_wait(), Ok(Some(_))) {
            let err = std::fs::read_to_string(self.work.join("runner.err")).unwrap_or_default();
            let tail: Vec<&str> = err.lines().rev().take(30).collect();
            panic!(
                "Debezium runner died: {:?}\n{}",
                self.lines.lock().map(|l| l.clone()),
                tail.join("\n")
            );
        }
    }

    /// Waits until the initial snapshot is flushed to the broker.
    pub fn wait_snapshot(&mut self, timeout: Duration) {
        wait_for(timeout, "the Debezium snapshot", || {
            self.check_alive();
            self.saw("RUNNER SNAPSHOT COMPLETE").then_some(())
        });
    }

    /// Stops the engine cleanly (flush, offset commit), waits for it, and returns how many
    /// records it produced.
    pub fn stop(mut self) -> usize {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "stop");
        }
        let status = self.child.wait().expect("runner exit");
        assert!(status.success(), "Debezium runner exited with {status}");
        // The reader thread ends at EOF: after it, every line the runner printed is here.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .find_map(|l| l.strip_prefix("RUNNER STOPPED "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("runner did not report a clean stop: {lines:?}"))
    }
}

impl Drop for Debezium {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_with(bootstrap, "read_committed")
}

fn consumer_with(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", random_name("decant-test-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// Topics whose names start with `prefix`.
pub fn topics_with_prefix(bootstrap: &str, prefix: &str) -> Vec<String> {
    let c = consumer(bootstrap);
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The sum of the end offsets (high watermarks) of every partition of `topics`: it grows with
/// every record written to them, committed or not.
pub fn end_offsets_total(bootstrap: &str, topics: &[String]) -> i64 {
    let c = consumer(bootstrap);
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .filter(|t| topics.iter().any(|n| n == t.name()))
        .flat_map(|t| t.partitions().iter().map(move |p| (t.name(), p.id())))
        .map(|(topic, partition)| {
            c.fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("end offset of {topic}[{partition}]: {e}"))
                .1
        })
        .sum()
}

/// Reads the committed records of `topics` (read_committed) from the beginning until at least
/// `at_least` arrived and the topics then stayed quiet for `quiet`, in (topic, partition, offset)
/// order. The stop condition is quiet time, not end offsets: a transactional producer's records
/// show up at read_committed only when its commit marker is written.
pub fn consume(bootstrap: &str, topics: &[String], at_least: usize, quiet: Duration) -> Vec<Input> {
    consume_from(consumer(bootstrap), topics, at_least, quiet)
}

/// Every data record of `topics`, also those of aborted and open transactions
/// (read_uncommitted), once at least `at_least` arrived and 2 s passed without more.
pub fn consume_uncommitted(bootstrap: &str, topics: &[String], at_least: usize) -> Vec<Input> {
    let c = consumer_with(bootstrap, "read_uncommitted");
    consume_from(c, topics, at_least, Duration::from_secs(2))
}

fn consume_from(
    c: BaseConsumer,
    topics: &[String],
    at_least: usize,
    quiet: Duration,
) -> Vec<Input> {
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("topic metadata");
        for t in md.topics() {
            for p in t.partitions() {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .expect("assign");
            }
        }
    }
    let mut out = Vec::new();
    if assignment.count() == 0 {
        return out;
    }
    c.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    while out.len() < at_least || last.elapsed() < quiet {
        assert!(
            Instant::now() < deadline,
            "timed out consuming {topics:?}: {} of at least {at_least} records",
            out.len()
        );
        let Some(msg) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg.expect("consume");
        last = Instant::now();
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_owned(), x.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Input {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            headers,
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    out
}

impl Bed {
    /// Rows of a local Iceberg table as of one metadata file, read by the independent reader
    /// (chdb, embedded ClickHouse, through `tests/bed/chdb_read.py`), sorted by all columns.
    pub fn iceberg_rows(&self, metadata_file: &Path) -> Vec<Json> {
        let out = run_ok(
            Command::new(self.get("DECANT_PY"))
                .arg(bed_dir().join("chdb_read.py"))
                .arg(metadata_file),
            "chdb_read.py",
        );
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("chdb_read line is JSON"))
            .collect()
    }
}

/// The `decant` binary built beside this test executable (`target/<profile>/decant`), or
/// `$DECANT_BIN`. `cargo test --workspace` builds it before any test runs.
pub fn decant_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DECANT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("decant");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p decant` (or `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// A running `decant run` child process; killed on drop.
pub struct DecantProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl DecantProcess {
    /// Starts `decant run --config <config>`, logging to `log` (appended).
    pub fn start(config: &Path, log: &Path, env: &[(&str, &str)]) -> DecantProcess {
        DecantProcess::start_bin(&decant_bin(), config, log, env)
    }

    /// [`DecantProcess::start`] with the given `decant` binary instead of [`decant_bin`].
    pub fn start_bin(bin: &Path, config: &Path, log: &Path, env: &[(&str, &str)]) -> DecantProcess {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("decant log file");
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start decant");
        DecantProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "decant did not exit within {timeout:?} after SIGTERM; log:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for DecantProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP GET to 127.0.0.1:`port` `path`; (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, None)
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (a JSON body when given); (status code, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = json_body.unwrap_or("");
    let content = match json_body {
        Some(b) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ),
        None => String::new(),
    };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n{content}\r\n{body}"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    Some((status, body))
}

/// A record to produce: key and value (`None` value = tombstone).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The headers of a consumed record, to produce it again.
fn headers_of(i: &Input) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    i.headers
        .iter()
        .fold(OwnedHeaders::new(), |headers, (k, v)| {
            headers.insert(Header {
                key: k,
                value: v.as_deref(),
            })
        })
}

/// Produces `inputs` (their key, value and headers; the topic mapped by `topic`) in order with
/// `compression.type = codec`, and waits for delivery.
pub fn produce_inputs(
    bootstrap: &str,
    inputs: &[Input],
    codec: &str,
    topic: impl Fn(&str) -> String,
) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "50")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in inputs {
        let name = topic(&i.topic);
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&name).headers(headers_of(i));
        r.key = i.key.as_deref();
        r.payload = i.value.as_deref();
        p.send(r).map_err(|(e, _)| e).expect("queue record");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces `inputs` again, each to its own topic and partition with its key, value and headers
/// (what a Debezium connector restarted before its offset flush does), and waits for delivery.
pub fn produce_again(bootstrap: &str, inputs: &[Input]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in inputs {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&i.topic)
            .partition(i.partition)
            .headers(headers_of(i));
        r.key = i.key.as_deref();
        r.payload = i.value.as_deref();
        p.send(r).map_err(|(e, _)| e).expect("queue record");
        // One at a time: the copies keep the originals' order.
        p.flush(Duration::from_secs(30)).expect("flush");
    }
}

/// Produces records to `topic` and waits for delivery.
pub fn produce(bootstrap: &str, topic: &str, records: &[KeyValue<'_>]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        r.key = *k;
        r.payload = *v;
        p.send(r).map_err(|(e, _)| e).expect("queue record");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// The value of header `name` of a consumed record, as text.
pub fn header<'a>(input: &'a Input, name: &str) -> Option<&'a str> {
    input
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Upsert-topic records (`<prefix>.<schema>.<table>`) as the change list `assert_pg_state`
/// reads: a value is an upsert of that row, a null value deletes the key.
pub fn upsert_changes(prefix: &str, records: &[Input]) -> crate::Run {
    let mut run = crate::Run::default();
    for r in records {
        let table = r
            .topic
            .strip_prefix(prefix)
            .and_then(|t| t.strip_prefix('.'))
            .unwrap_or(&r.topic)
            .to_owned();
        let key: Json = r
            .key
            .as_deref()
            .and_then(|k| serde_json::from_slice(k).ok())
            .unwrap_or(Json::Null);
        let change = match &r.value {
            Some(v) => serde_json::json!({
                "table": table, "op": "upsert", "key": key, "offset": r.offset,
                "row": serde_json::from_slice::<Json>(v).unwrap_or(Json::Null),
                "unchanged": [],
            }),
            None => serde_json::json!({
                "table": table, "op": "delete", "key": key, "offset": r.offset, "row": null,
            }),
        };
        run.changes.push(change);
    }
    run
}

/// A `decant run` configuration for the bed, written to `dir/decant.toml`: consumes every topic
/// matching `<source_prefix>\..*`, writes `<out_prefix>.<schema>.<table>`, state under
/// `dir/state`, endpoints on a free port (returned). `extra` is appended verbatim (more
/// sections).
pub fn write_decant_config(
    dir: &Path,
    bootstrap: &str,
    source_prefix: &str,
    out_prefix: &str,
    extra: &str,
) -> (PathBuf, u16) {
    std::fs::create_dir_all(dir).expect("config dir");
    let port = free_port();
    let group = random_name("decant-group");
    let text = format!(
        r#"[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
transactional_id = "{group}-tx"
statistics_interval_ms = 1000
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"topic.metadata.refresh.interval.ms" = "1000"

[source]
topic_pattern = '^{source_re}\..*'

[output]
prefix = "{out_prefix}"

[delivery]
commit_interval_ms = 500

[state]
dir = "{state}"

[observability]
listen = "127.0.0.1:{port}"

{extra}
"#,
        source_re = source_prefix.replace('.', "\\."),
        state = dir.join("state").display(),
    );
    let path = dir.join("decant.toml");
    std::fs::write(&path, text).expect("write decant.toml");
    (path, port)
}

impl Broker {
    /// [`Broker::start`], retried on a new port when `broker.sh` gives up during start-up (a port
    /// taken between `free_port` and the bind, or a broker slow to answer on a loaded machine);
    /// a stray broker of the failed attempt is killed.
    pub fn start_retrying() -> Broker {
        Broker::start_retrying_as(false)
    }

    /// [`Broker::start_retrying`] with `--secure` (TLS/SASL/mTLS/OAUTHBEARER listeners and the
    /// bed's token endpoint, see `tests/bed/broker.sh`).
    pub fn start_secure() -> Broker {
        Broker::start_retrying_as(true)
    }

    fn start_retrying_as(secure: bool) -> Broker {
        let mut last = String::new();
        for _ in 0..5 {
            let mut broker = Broker::unstarted();
            broker.secure = secure;
            let out = broker.script("start").output().expect("run broker.sh");
            if out.status.success() {
                return broker;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(500));
            kill_broker_process(&broker.dir);
            // Dropping it runs `broker.sh stop` and removes the directory.
        }
        panic!("broker.sh start failed 5 times: {last}");
    }
}

/// Kills the broker whose command line names `dir`'s `server.properties` (a stray broker).
fn kill_broker_process(dir: &Path) {
    let needle = dir.join("server.properties").display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Reads every output topic `<out_prefix>.*` (read_committed) until a topic ending in `.marker`
/// has a record and two reads 3 s apart agree; returns the records and their change list (as
/// [`upsert_changes`]). Fails early if `decant` exits.
pub fn read_output_settled(
    bootstrap: &str,
    out_prefix: &str,
    decant: &mut DecantProcess,
) -> (Vec<Input>, crate::Run) {
    let start = Instant::now();
    let mut last_len = usize::MAX;
    loop {
        let topics = topics_with_prefix(bootstrap, &format!("{out_prefix}."));
        let records = consume(bootstrap, &topics, 0, Duration::from_secs(2));
        let marker = records.iter().any(|r| r.topic.ends_with(".marker"));
        if marker && records.len() == last_len {
            let run = upsert_changes(out_prefix, &records);
            return (records, run);
        }
        last_len = records.len();
        assert!(
            decant.is_running(),
            "decant exited; log:\n{}",
            decant.log_tail(60)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "output did not settle ({} records, marker {marker}); decant log:\n{}",
            records.len(),
            decant.log_tail(60)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// No source record produced two output records (exactly once), by decant's provenance headers.
pub fn assert_no_duplicate_sources(records: &[Input]) {
    let mut seen = std::collections::HashSet::new();
    for r in records {
        let src = [
            "decant.source.topic",
            "decant.source.partition",
            "decant.source.offset",
        ]
        .map(|h| header(r, h).unwrap_or_default().to_owned());
        assert!(
            seen.insert(src.clone()),
            "source record {src:?} appears twice in the read_committed output ({}@{})",
            r.topic,
            r.offset
        );
    }
}

/// Records of the output topics `<out>.*` once the `marker` table's topic holds `markers`
/// records and two reads agree (decant still running; at most four minutes).
pub fn settle_markers(
    bootstrap: &str,
    out: &str,
    markers: usize,
    decant: &mut DecantProcess,
) -> Vec<Input> {
    let start = Instant::now();
    let mut last = usize::MAX;
    loop {
        let topics = topics_with_prefix(bootstrap, &format!("{out}."));
        let records = consume(bootstrap, &topics, 0, Duration::from_secs(2));
        let seen = records
            .iter()
            .filter(|r| r.topic.ends_with(".marker"))
            .count();
        if seen >= markers && records.len() == last {
            return records;
        }
        last = records.len();
        assert!(
            decant.is_running(),
            "decant exited:\n{}",
            decant.log_tail(60)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "output did not settle ({} records, {seen} markers):\n{}",
            records.len(),
            decant.log_tail(60)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}
