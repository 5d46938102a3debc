//! The bed's MariaDB from Rust: a database per test ([`MysqlDb`]: created, filled from
//! `tests/bed/sql/mysql_*.sql` through the `mariadb` client, dropped on drop), MariaDB's own final
//! state ([`Bed::mysql_state`], `tests/bed/mysql_state.py`), Debezium's MariaDB connector on the
//! Connect worker ([`MysqlCapture`]: snapshot done, binlog streaming), and the comparison rules
//! for MySQL values ([`mysql_value_matches`], [`assert_lake_equals_mysql`]).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::bed::{Bed, Broker, bed_dir, random_name, run_ok};
use crate::connect::{Connect, wait_snapshot_done};
use crate::lake::{LakeTable, as_run, chdb_rows, iceberg_rust_rows, parse_json_text};
use crate::{assert_state_by, values_match};

/// Where the bed's MariaDB listens and who the tests are (`DECANT_MYSQL_URL`,
/// `mysql://user:password@host:port`).
#[derive(Debug, Clone)]
pub struct MysqlServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Bed {
    pub fn mysql(&self) -> MysqlServer {
        let url = self.get("DECANT_MYSQL_URL");
        let rest = url
            .strip_prefix("mysql://")
            .unwrap_or_else(|| panic!("DECANT_MYSQL_URL is not mysql://…: {url}"));
        let (auth, addr) = rest.rsplit_once('@').expect("user:password@host:port");
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let addr = addr.trim_end_matches('/');
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "3306"));
        MysqlServer {
            host: host.into(),
            port: port.parse().expect("port"),
            user: user.into(),
            password: password.into(),
        }
    }

    /// MariaDB's own rendering of every table of `database` (see `tests/bed/mysql_state.py`).
    pub fn mysql_state(&self, database: &str) -> Vec<Json> {
        let out = run_ok(
            Command::new(self.get("DECANT_PY"))
                .arg(bed_dir().join("mysql_state.py"))
                .args([
                    "--url",
                    &self.get("DECANT_MYSQL_URL"),
                    "--database",
                    database,
                ]),
            "mysql_state.py",
        );
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("mysql_state line is JSON"))
            .collect()
    }

    /// The `mariadb` client as the bed's user (utf8mb4), on `database` when given.
    fn mariadb(&self, database: Option<&str>) -> Command {
        let m = self.mysql();
        let mut cmd = Command::new("mariadb");
        cmd.args(["--default-character-set=utf8mb4", "--batch"])
            .arg(format!("--host={}", m.host))
            .arg(format!("--port={}", m.port))
            .arg(format!("--user={}", m.user))
            .arg(format!("--password={}", m.password));
        if let Some(db) = database {
            cmd.arg(format!("--database={db}"));
        }
        cmd
    }
}

/// A MariaDB database holding `mysql_typezoo.sql`'s tables, dropped on drop.
pub struct MysqlDb {
    pub bed: Bed,
    pub name: String,
}

impl MysqlDb {
    pub fn create(bed: &Bed) -> MysqlDb {
        let db = MysqlDb {
            bed: bed.clone(),
            name: random_name("m"),
        };
        run_ok(
            bed.mariadb(None).arg("--execute").arg(format!(
                "create database `{}` character set utf8mb4 collate utf8mb4_bin",
                db.name
            )),
            "create database",
        );
        db.sql_files(&["mysql_typezoo.sql"]);
        db
    }

    /// Runs SQL statements in the database.
    pub fn sql(&self, sql: &str) {
        run_ok(
            self.bed.mariadb(Some(&self.name)).arg("--execute").arg(sql),
            "mariadb",
        );
    }

    /// Runs SQL files from `tests/bed/sql`, in order.
    pub fn sql_files(&self, files: &[&str]) {
        for f in files {
            let path = bed_dir().join("sql").join(f);
            let input =
                std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run_ok(
                self.bed.mariadb(Some(&self.name)).stdin(input),
                &format!("mariadb < {f}"),
            );
        }
    }
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        let _ = self
            .bed
            .mariadb(None)
            .arg("--execute")
            .arg(format!("drop database if exists `{}`", self.name))
            .output();
    }
}

/// Debezium's MariaDB connector for `database`, as a user would post it: snapshot then binlog,
/// topics `<prefix>.<database>.<table>`, schema history in `<prefix>-schema-history` (outside
/// the `<prefix>.*` pattern decant consumes). `bigint.unsigned.handling.mode=precise`: the
/// default (`long`) wraps BIGINT UNSIGNED above 2^63 into negative numbers.
pub fn mariadb_connector_config(bed: &Bed, database: &str, prefix: &str, bootstrap: &str) -> Json {
    let m = bed.mysql();
    // Unique among the server's replication clients (another test's connector included).
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
    let server_id = 10_000 + (std::process::id() % 100_000) * 16 + n;
    json!({
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "tasks.max": "1",
        "database.hostname": m.host,
        "database.port": m.port.to_string(),
        "database.user": bed.get("DECANT_MYSQL_CDC_USER"),
        "database.password": bed.get("DECANT_MYSQL_CDC_PASSWORD"),
        "database.server.id": server_id.to_string(),
        "database.include.list": database,
        "topic.prefix": prefix,
        "schema.history.internal.kafka.bootstrap.servers": bootstrap,
        "schema.history.internal.kafka.topic": format!("{prefix}-schema-history"),
        "include.schema.changes": "false",
        "snapshot.mode": "initial",
        "bigint.unsigned.handling.mode": "precise",
    })
}

/// A live MariaDB capture, the start of the MySQL end-to-end tests: a broker, a Connect worker,
/// a fresh database holding the snapshot workload, and Debezium's MariaDB connector streaming it
/// into `<prefix>.<database>.<table>` topics, its snapshot done. Fields drop in order: the
/// worker first (its task stops while the broker is still there), then the database, the broker.
pub struct MysqlCapture {
    pub connect: Connect,
    pub connector: String,
    pub db: MysqlDb,
    pub prefix: String,
    pub broker: Broker,
    pub bed: Bed,
}

impl MysqlCapture {
    pub fn start() -> MysqlCapture {
        let bed = Bed::load();
        let broker = Broker::start_retrying();
        let db = MysqlDb::create(&bed);
        db.sql_files(&["mysql_workload_snapshot.sql"]);
        let connect = Connect::start(&broker);
        let prefix = random_name("src");
        let connector = format!("mariadb-{}", db.name);
        let config = mariadb_connector_config(&bed, &db.name, &prefix, &broker.bootstrap());
        connect.create_connector(&connector, &config);
        connect.wait_running(&connector, Duration::from_secs(120));
        wait_snapshot_done(&connect, &connector, &prefix, Duration::from_secs(300));
        MysqlCapture {
            connect,
            connector,
            db,
            prefix,
            broker,
            bed,
        }
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64()
}

/// Equality of a value as `mysql_state.py` renders it and a decoded one, exact for integers
/// (BIGINT UNSIGNED's 18446744073709551615 is not 18446744073709551614, which f64 cannot tell
/// apart): integers compare exactly, also with a decimal string (Debezium's precise
/// Decimal(20,0) for BIGINT UNSIGNED); floats as in [`values_match`] (FLOAT as its f32 reading);
/// objects on the members MariaDB renders; everything else by equality.
pub fn mysql_value_matches(expected: &Json, got: &Json) -> bool {
    match (expected, got) {
        (Json::Number(a), Json::Number(b)) if is_integer(a) && is_integer(b) => a == b,
        (Json::Number(a), Json::String(b)) if is_integer(a) => a.to_string() == *b,
        (Json::Object(e), Json::Object(g)) => e
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|w| mysql_value_matches(v, w))),
        (Json::Array(e), Json::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(x, y)| mysql_value_matches(x, y))
        }
        (e, g) => values_match(e, g),
    }
}

/// MySQL's TIME text (`-838:59:59`, `-00:00:00.000001`, `25:00:00`) as signed microseconds.
pub fn mysql_time_micros(text: &str) -> Option<i64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (clock, frac) = body.split_once('.').unwrap_or((body, "0"));
    let mut parts = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").parse().ok()?;
    let total = ((h * 60 + m) * 60 + s) * 1_000_000 + micros;
    Some(if neg { -total } else { total })
}

/// What an Iceberg reader holds for MariaDB's values: a TIME (a signed span, not a time of day)
/// is the table's `long` of microseconds (decant's mapping); everything else reads back as
/// `mysql_state.py` renders it (chdb included: it shows DATE 1000-01-01 … 9999-12-31 and
/// DATETIME(6) at full range and precision).
fn lake_expected(expected: &[Json], tables: &[LakeTable]) -> Vec<Json> {
    let types: BTreeMap<&str, BTreeMap<String, Json>> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.types()))
        .collect();
    expected
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let table = e["table"].as_str().unwrap_or_default().to_owned();
            if let Some(row) = e["row"].as_object_mut() {
                for (col, v) in row.iter_mut() {
                    let ty = types
                        .get(table.as_str())
                        .and_then(|t| t.get(col))
                        .and_then(Json::as_str);
                    if ty == Some("long")
                        && let Some(us) = v.as_str().and_then(mysql_time_micros)
                    {
                        *v = json!(us);
                    }
                }
            }
            e
        })
        .collect()
}

/// Compares every table of the lake, through both readers (chdb, iceberg-rust's scan), with
/// MariaDB's own state, value by value ([`mysql_value_matches`]).
pub fn assert_lake_equals_mysql(
    label: &str,
    bed: &Bed,
    tables: &[LakeTable],
    expected: &[Json],
    lake: &decant_iceberg::Lake,
) {
    let by_chdb: Vec<_> = tables
        .iter()
        .map(|t| (t.name.clone(), t.key(), chdb_rows(bed, t)))
        .collect();
    let expected = lake_expected(expected, tables);
    let mut run = as_run(&by_chdb);
    parse_json_text(&mut run, &expected, tables);
    assert_state_by(
        &format!("{label} (chdb)"),
        &run,
        &expected,
        mysql_value_matches,
    );

    let by_rust: Vec<_> = tables
        .iter()
        .map(|t| {
            let (ns, name) = t.name.rsplit_once('.').expect("ns.table");
            let table = lake.load(ns, name).expect("load").expect("table exists");
            (t.name.clone(), t.key(), iceberg_rust_rows(lake, &table))
        })
        .collect();
    let mut run = as_run(&by_rust);
    parse_json_text(&mut run, &expected, tables);
    assert_state_by(
        &format!("{label} (iceberg-rust scan)"),
        &run,
        &expected,
        mysql_value_matches,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_time_text_to_micros() {
        assert_eq!(mysql_time_micros("-838:59:59"), Some(-3_020_399_000_000));
        assert_eq!(
            mysql_time_micros("838:59:59.999999"),
            Some(3_020_399_999_999)
        );
        assert_eq!(mysql_time_micros("-00:00:00.000001"), Some(-1));
        assert_eq!(mysql_time_micros("-01:30:00.500000"), Some(-5_400_500_000));
        assert_eq!(mysql_time_micros("25:00:00"), Some(90_000_000_000));
        assert_eq!(mysql_time_micros("2024-01-01"), None);
        assert_eq!(mysql_time_micros("hello"), None);
    }

    #[test]
    fn integers_compare_exactly() {
        let max: Json = serde_json::from_str("18446744073709551615").expect("u64");
        let below: Json = serde_json::from_str("18446744073709551614").expect("u64");
        assert!(mysql_value_matches(&max, &max));
        assert!(!mysql_value_matches(&max, &below));
        assert!(mysql_value_matches(&max, &json!("18446744073709551615")));
        assert!(!mysql_value_matches(&max, &json!("18446744073709551614")));
        // FLOAT 2.2 as MariaDB prints it, and its f32 reading widened to f64
        assert!(mysql_value_matches(&json!(2.2), &json!(2.200000047683716)));
    }
}
