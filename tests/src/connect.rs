//! A Kafka Connect worker with Debezium's connectors, the way users run Debezium: one worker in
//! distributed mode (`tests/bed/connect.sh`, jars from `tests/bed/setup.sh`'s `connect` step), its
//! connectors created through the REST API (`POST /connectors`), JSON converters with schemas on.
//!
//! [`Connect`] owns the worker (stopped and its directory removed on drop, like [`Broker`]);
//! [`Connect::create_connector`] posts a configuration, [`Connect::wait_running`] waits for the
//! connector and its task, [`wait_snapshot_done`] watches the topics for the record Debezium marks
//! as the snapshot's last (`source.snapshot = "last"`): the worker has no other snapshot signal
//! outside JMX.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::bed::{
    Bed, Broker, PgSchema, bed_dir, consume_uncommitted, end_offsets_total, free_port,
    http_request, random_name, run_ok, topics_with_prefix,
};

/// A Kafka Connect worker on 127.0.0.1 (REST on `port`), its state in topics of one broker.
pub struct Connect {
    pub port: u16,
    pub dir: PathBuf,
    pub bootstrap: String,
}

impl Connect {
    /// Starts a worker against `broker`, retried on a new port when `connect.sh` gives up (a port
    /// taken between `free_port` and the bind, or a worker slow to start on a loaded machine).
    pub fn start(broker: &Broker) -> Connect {
        let mut last = String::new();
        for _ in 0..3 {
            let connect = Connect {
                port: free_port(),
                dir: std::env::temp_dir().join(random_name("decant-connect")),
                bootstrap: broker.bootstrap(),
            };
            let out = connect.script("start").output().expect("run connect.sh");
            if out.status.success() {
                return connect;
            }
            last = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                connect.log_tail(40)
            );
            // Dropping it runs `connect.sh stop` and removes the directory.
        }
        panic!("connect.sh start failed 3 times: {last}");
    }

    fn script(&self, action: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(bed_dir().join("connect.sh"))
            .arg(action)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bootstrap")
            .arg(&self.bootstrap);
        cmd
    }

    /// Stops the worker (SIGTERM: tasks stop, offsets are flushed) and starts it again on the same
    /// port and topics: its connectors resume from their committed offsets.
    pub fn restart(&self) {
        run_ok(&mut self.script("stop"), "connect.sh stop");
        self.start_again();
    }

    /// Kills the worker with SIGKILL, a crash: source offsets since its last flush stay
    /// uncommitted, and no task writes a stopped status.
    pub fn kill(&self) {
        run_ok(&mut self.script("kill"), "connect.sh kill");
    }

    /// Starts the stopped or killed worker again on the same port and topics.
    pub fn start_again(&self) {
        run_ok(&mut self.script("start"), "connect.sh start");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last `n` lines of the worker's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("connect.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// One REST call; (status, parsed body or `null`).
    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let text = body.map(Json::to_string);
        let (status, body) = http_request(self.port, method, path, text.as_deref())
            .unwrap_or_else(|| panic!("Connect REST {method} {path}: no answer"));
        (status, serde_json::from_str(&body).unwrap_or(Json::Null))
    }

    /// `POST /connectors {"name", "config"}`, as users create a connector. Retries while the
    /// worker answers 409 (a rebalance in progress) or 5xx; panics on any other refusal (an
    /// invalid configuration is a 400 naming the property).
    pub fn create_connector(&self, name: &str, config: &Json) {
        let body = json!({ "name": name, "config": config });
        let start = Instant::now();
        loop {
            let (status, answer) = self.call("POST", "/connectors", Some(&body));
            if status == 201 {
                return;
            }
            assert!(
                (status == 409 || status >= 500) && start.elapsed() < Duration::from_secs(60),
                "POST /connectors {name}: {status} {answer}\nworker log:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `GET /connectors/<name>/status`.
    pub fn status(&self, name: &str) -> Json {
        self.call("GET", &format!("/connectors/{name}/status"), None)
            .1
    }

    /// Waits until the connector and all its tasks (at least one) are RUNNING; panics with the
    /// task's trace as soon as anything FAILED.
    pub fn wait_running(&self, name: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let status = self.status(name);
            self.assert_not_failed(name, &status);
            let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
            if status["connector"]["state"] == "RUNNING"
                && !tasks.is_empty()
                && tasks.iter().all(|t| t["state"] == "RUNNING")
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "connector {name} not RUNNING after {timeout:?}: {status}\nworker log:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn assert_not_failed(&self, name: &str, status: &Json) {
        let failed = std::iter::once(&status["connector"])
            .chain(status["tasks"].as_array().into_iter().flatten())
            .find(|s| s["state"] == "FAILED");
        if let Some(f) = failed {
            panic!(
                "connector {name} FAILED on {}: {}\nworker log:\n{}",
                f["worker_id"],
                f["trace"].as_str().unwrap_or_default(),
                self.log_tail(40)
            );
        }
    }

    /// Panics if the connector or a task failed (a check while waiting for its output).
    pub fn check_alive(&self, name: &str) {
        self.assert_not_failed(name, &self.status(name));
    }

    /// `DELETE /connectors/<name>`; waits until the worker no longer lists it (its task stopped,
    /// so a replication slot it held is free).
    pub fn delete(&self, name: &str) {
        let (status, answer) = self.call("DELETE", &format!("/connectors/{name}"), None);
        assert!(
            status == 204 || status == 404,
            "DELETE /connectors/{name}: {status} {answer}"
        );
        let start = Instant::now();
        while self
            .call("GET", "/connectors", None)
            .1
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == name))
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "connector {name} still listed 60 s after DELETE"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.script("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a record of the topics `<topic_prefix>.*` says it is the last of Debezium's
/// initial snapshot (`payload.source.snapshot == "last"`), checking `connector` on `connect`
/// meanwhile; returns how many records the topics then held. (An empty snapshot has no last
/// record: the capture must hold at least one row.)
pub fn wait_snapshot_done(
    connect: &Connect,
    connector: &str,
    topic_prefix: &str,
    timeout: Duration,
) -> usize {
    let start = Instant::now();
    loop {
        connect.check_alive(connector);
        let topics = topics_with_prefix(&connect.bootstrap, &format!("{topic_prefix}."));
        if !topics.is_empty() {
            let records = consume_uncommitted(&connect.bootstrap, &topics, 0);
            let last = records.iter().any(|r| {
                r.value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<Json>(v).ok())
                    .is_some_and(|v| v["payload"]["source"]["snapshot"] == "last")
            });
            if last {
                return records.len();
            }
        }
        assert!(
            start.elapsed() < timeout,
            "no last snapshot record on {topic_prefix}.* after {timeout:?}; status {}\nworker log:\n{}",
            connect.status(connector),
            connect.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A live capture through a Kafka Connect worker, the starting point of the crash tests: a broker,
/// a fresh PostgreSQL schema holding the snapshot workload, a worker, and Debezium's PostgreSQL
/// connector (created over REST) streaming it into `<prefix>.<schema>.<table>` topics, its
/// snapshot done. Dropping it deletes the connector (freeing the slot) before the schema goes.
pub struct ConnectSource {
    pub bed: Bed,
    pub broker: Broker,
    pub connect: Connect,
    pub connector: String,
    pub prefix: String,
    pub schema: PgSchema,
}

impl ConnectSource {
    pub fn start() -> ConnectSource {
        let bed = Bed::load();
        let broker = Broker::start_retrying();
        let schema = PgSchema::create(&bed);
        bed.psql_files(&["workload_snapshot.sql"], &[("schema", &schema.name)]);
        let connect = Connect::start(&broker);
        let prefix = random_name("src");
        let connector = format!("pg-{}", schema.name);
        connect.create_connector(&connector, &postgres_connector(&bed, &schema, &prefix));
        connect.wait_running(&connector, Duration::from_secs(120));
        wait_snapshot_done(&connect, &connector, &prefix, Duration::from_secs(300));
        ConnectSource {
            bed,
            broker,
            connect,
            connector,
            prefix,
            schema,
        }
    }

    /// Restarts the worker and waits until the connector runs again (it resumes from the source
    /// offsets the worker committed).
    pub fn restart_worker(&self) {
        self.connect.restart();
        self.connect
            .wait_running(&self.connector, Duration::from_secs(120));
    }

    /// Kills the worker (SIGKILL) and starts it again, then waits until the connector sends new
    /// records: it sends again everything after its last offset flush, as at-least-once delivery
    /// allows. For use under a running workload (the wait is for records, not for a status: the
    /// killed worker never wrote its task's end, so the status topic can still say RUNNING).
    pub fn crash_worker(&self) {
        self.connect.kill();
        let topics = topics_with_prefix(&self.broker.bootstrap(), &format!("{}.", self.prefix));
        let before = end_offsets_total(&self.broker.bootstrap(), &topics);
        self.connect.start_again();
        self.connect
            .wait_running(&self.connector, Duration::from_secs(120));
        let until = Instant::now() + Duration::from_secs(120);
        while end_offsets_total(&self.broker.bootstrap(), &topics) <= before {
            self.connect.check_alive(&self.connector);
            assert!(
                Instant::now() < until,
                "connector {} sent nothing within 120 s of the worker's restart; worker log:\n{}",
                self.connector,
                self.connect.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for ConnectSource {
    fn drop(&mut self) {
        self.connect.delete(&self.connector);
    }
}

/// Debezium's PostgreSQL connector for `schema` (pgoutput, a slot and publication of the schema's
/// own), topics `<prefix>.<schema>.<table>`.
pub fn postgres_connector(bed: &Bed, schema: &PgSchema, prefix: &str) -> Json {
    let port = bed
        .pg_url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next().map(str::to_owned))
        .unwrap_or_else(|| "5432".into());
    json!({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "database.hostname": "127.0.0.1",
        "database.port": port,
        "database.user": "postgres",
        "database.password": "postgres",
        "database.dbname": "postgres",
        "topic.prefix": prefix,
        "schema.include.list": schema.name,
        "plugin.name": "pgoutput",
        "slot.name": schema.slot(),
        "publication.name": schema.slot(),
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
    })
}
