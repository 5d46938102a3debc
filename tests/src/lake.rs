//! Reading the Iceberg sink's tables back, independently of decant's writer: the catalog
//! pointer from the SQLite catalog (`lake_tables.py`), the rows through chdb (embedded
//! ClickHouse, `chdb_read.py`), the schema and snapshot log from the metadata JSON itself.
//! Rows become the same canonical changes `assert_pg_state` compares with PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};

use std::time::{Duration, Instant};

use crate::bed::{Bed, DecantProcess, bed_dir, run_ok};
use crate::{PgMode, Run, assert_pg_state};

/// One table as the catalog points at it.
#[derive(Debug, Clone)]
pub struct LakeTable {
    /// `namespace.table`.
    pub name: String,
    pub metadata_path: PathBuf,
    pub metadata: Json,
}

impl LakeTable {
    pub fn current_schema(&self) -> &Json {
        let id = &self.metadata["current-schema-id"];
        self.metadata["schemas"]
            .as_array()
            .and_then(|s| s.iter().find(|x| &x["schema-id"] == id))
            .expect("current schema in metadata")
    }

    /// Key column names (identifier fields), in id order.
    pub fn key(&self) -> Vec<String> {
        let s = self.current_schema();
        let ids: Vec<&Json> = s["identifier-field-ids"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| {
                s["fields"]
                    .as_array()?
                    .iter()
                    .find(|f| &&f["id"] == id)
                    .and_then(|f| f["name"].as_str().map(str::to_owned))
            })
            .collect()
    }

    /// Column name → Iceberg type (JSON as in the metadata: "long", {"type":"list",…}).
    pub fn types(&self) -> BTreeMap<String, Json> {
        self.current_schema()["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["name"].as_str().unwrap_or_default().to_owned(),
                    f["type"].clone(),
                )
            })
            .collect()
    }

    /// Snapshots of the main branch, oldest first (by walking parents from the current one).
    pub fn main_snapshots(&self) -> Vec<Json> {
        let all: BTreeMap<i64, &Json> = self.metadata["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["snapshot-id"].as_i64().map(|id| (id, s)))
            .collect();
        let mut out = Vec::new();
        let mut cur = self.metadata["current-snapshot-id"].as_i64();
        while let Some(id) = cur {
            let Some(s) = all.get(&id) else { break };
            out.push((*s).clone());
            cur = s["parent-snapshot-id"].as_i64();
        }
        out.reverse();
        out
    }
}

/// The catalog a test's decant writes to.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// A SQLite file or a `postgres://` URL (for a REST catalog: its server's SQLite file).
    pub location: String,
    /// The catalog name (tables of other names in the same database are not ours).
    pub name: String,
    /// The warehouse directory.
    pub warehouse: PathBuf,
    /// Set for a REST catalog: what decant is pointed at instead of the database.
    pub rest: Option<RestEndpoint>,
}

/// The test bed's REST catalog server (`rest_catalog.py`: pyiceberg's SQL catalog served over
/// the REST protocol), with a path prefix and OAuth2 client credentials that every request of
/// decant's must honour. The server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RestEndpoint {
    pub uri: String,
    pub credential: String,
    _server: std::sync::Arc<ServerProcess>,
}

#[derive(Debug)]
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Catalog {
    /// SQLite in `work/lake/catalog.db`, the embedded default.
    pub fn sqlite(work: &Path) -> Catalog {
        Catalog {
            location: work.join("lake/catalog.db").display().to_string(),
            name: "decant".into(),
            warehouse: work.join("lake/warehouse"),
            rest: None,
        }
    }

    /// The bed's PostgreSQL, under a catalog name of its own.
    pub fn postgres(bed: &Bed, work: &Path) -> Catalog {
        Catalog {
            location: bed.pg_url(),
            name: crate::bed::random_name("cat"),
            warehouse: work.join("lake/warehouse"),
            rest: None,
        }
    }

    /// A REST catalog server of its own, keeping its catalog in `work/lake/rest.db`.
    pub fn rest(bed: &Bed, work: &Path) -> Catalog {
        use std::io::BufRead;
        let db = work.join("lake/rest.db");
        let warehouse = work.join("lake/warehouse");
        std::fs::create_dir_all(&warehouse).expect("warehouse dir");
        let credential = "decant:s3cret".to_owned();
        let mut child = Command::new(bed.get("DECANT_PY"))
            .arg(bed_dir().join("rest_catalog.py"))
            .arg("--catalog-db")
            .arg(&db)
            .arg("--warehouse")
            .arg(&warehouse)
            .args(["--prefix", "lake", "--credential", &credential])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(work.join("rest-catalog.log")).expect("log"))
            .spawn()
            .expect("start rest_catalog.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("rest_catalog.py starts");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("rest_catalog.py printed {line:?}"))
            .to_owned();
        Catalog {
            location: db.display().to_string(),
            // pyiceberg's SqlCatalog keeps the server's tables under its own catalog name.
            name: "rest".into(),
            warehouse,
            rest: Some(RestEndpoint {
                uri: format!("http://127.0.0.1:{port}"),
                credential,
                _server: std::sync::Arc::new(ServerProcess(child)),
            }),
        }
    }

    /// A reader of the same catalog (pipeline `reader`, which never writes).
    pub fn lake(&self) -> decant_iceberg::Lake {
        let rest = self.rest.as_ref();
        decant_iceberg::Lake::open(decant_iceberg::LakeConfig {
            catalog_uri: self.uri(),
            catalog_name: self.name.clone(),
            warehouse: match rest {
                Some(_) => String::new(),
                None => self.warehouse.display().to_string(),
            },
            pipeline: "reader".into(),
            target_file_size_bytes: 1 << 20,
            table_properties: Default::default(),
            storage_properties: Default::default(),
            catalog_properties: rest
                .map(|r| [("credential".to_owned(), r.credential.clone())].into())
                .unwrap_or_default(),
        })
        .expect("open the lake")
    }

    pub fn uri(&self) -> String {
        if let Some(rest) = &self.rest {
            rest.uri.clone()
        } else if self.location.starts_with("postgres") {
            self.location.clone()
        } else {
            format!("sqlite:{}", self.location)
        }
    }

    /// The `[iceberg]` section of a test configuration (Kafka settings come from the bed).
    pub fn config(&self, extra: &str) -> String {
        if let Some(rest) = &self.rest {
            return format!(
                "[iceberg]\ncatalog_uri = \"{}\"\ncatalog_name = \"{}\"\nwarehouse = \"\"\ncatalog_properties = {{ credential = \"{}\" }}\ncommit_interval_ms = 1000\n{extra}\n",
                rest.uri, self.name, rest.credential,
            );
        }
        format!(
            "[iceberg]\ncatalog_uri = \"{}\"\ncatalog_name = \"{}\"\nwarehouse = \"{}\"\ncommit_interval_ms = 1000\n{extra}\n",
            self.uri(),
            self.name,
            self.warehouse.display(),
        )
    }

    fn exists(&self) -> bool {
        self.location.starts_with("postgres") || Path::new(&self.location).exists()
    }
}

/// Every table of `catalog`, as its database points at it.
pub fn lake_tables(bed: &Bed, catalog: &Catalog) -> Vec<LakeTable> {
    let out = run_ok(
        Command::new(bed.get("DECANT_PY"))
            .arg(bed_dir().join("lake_tables.py"))
            .arg(&catalog.location)
            .args(["--catalog", &catalog.name]),
        "lake_tables.py",
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let j: Json = serde_json::from_str(l).expect("lake_tables line");
            let loc = j["metadata"].as_str().expect("metadata").to_owned();
            let path = PathBuf::from(loc.strip_prefix("file://").unwrap_or(&loc));
            let text = std::fs::read_to_string(&path).expect("metadata file");
            LakeTable {
                name: format!(
                    "{}.{}",
                    j["namespace"].as_str().unwrap_or_default(),
                    j["table"].as_str().unwrap_or_default()
                ),
                metadata_path: path,
                metadata: serde_json::from_str(&text).expect("metadata JSON"),
            }
        })
        .collect()
}

/// The table's rows through chdb, canonicalised by their Iceberg types.
pub fn chdb_rows(bed: &Bed, t: &LakeTable) -> Vec<serde_json::Map<String, Json>> {
    let types = t.types();
    let binary: Vec<&str> = types
        .iter()
        .filter(|(_, ty)| ty.as_str() == Some("binary"))
        .map(|(n, _)| n.as_str())
        .collect();
    let out = run_ok(
        Command::new(bed.get("DECANT_PY"))
            .env("TZ", "UTC")
            .arg(bed_dir().join("chdb_read.py"))
            .arg(&t.metadata_path)
            .arg(format!("--base64={}", binary.join(","))),
        "chdb_read.py",
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let row: serde_json::Map<String, Json> = serde_json::from_str(l).expect("chdb row");
            row.into_iter()
                .map(|(k, v)| {
                    let v = match types.get(&k) {
                        Some(ty) => canonical(v, ty),
                        None => v,
                    };
                    (k, v)
                })
                .collect()
        })
        .collect()
}

/// ClickHouse's text of an Iceberg value → decant's canonical JSON.
fn canonical(v: Json, ty: &Json) -> Json {
    if v.is_null() {
        return v;
    }
    match ty {
        // ClickHouse prints non-finite floats as inf/-inf/nan.
        Json::String(t) if t == "float" || t == "double" => match v.as_str() {
            Some("inf") => Json::String("Infinity".into()),
            Some("-inf") => Json::String("-Infinity".into()),
            Some("nan" | "-nan") => Json::String("NaN".into()),
            _ => v,
        },
        // ClickHouse reads Iceberg `time` as whole seconds since midnight.
        Json::String(t) if t == "time" => match v.as_i64() {
            Some(secs) => Json::String(format!(
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )),
            None => v,
        },
        Json::String(t) if t == "timestamp" || t == "timestamptz" => match v.as_str() {
            Some(s) => Json::String(ch_timestamp(s, t == "timestamptz")),
            None => v,
        },
        Json::Object(o) if o.get("type").and_then(Json::as_str) == Some("list") => match v {
            Json::Array(items) => {
                let elem = o.get("element").cloned().unwrap_or(Json::Null);
                Json::Array(items.into_iter().map(|x| canonical(x, &elem)).collect())
            }
            other => other,
        },
        _ => v,
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` → `YYYY-MM-DDTHH:MM:SS[.ffffff][Z]`.
fn ch_timestamp(s: &str, zoned: bool) -> String {
    let mut out = s.replacen(' ', "T", 1);
    if let Some((body, frac)) = out.clone().rsplit_once('.')
        && frac.bytes().all(|b| b == b'0')
    {
        out = body.to_owned();
    }
    if zoned {
        out.push('Z');
    }
    out
}

/// Canonical upsert changes of every row of `tables`, keyed by their identifier fields, as a
/// [`Run`] for `assert_pg_state` (table = `namespace.table`).
/// A table read back: `namespace.table`, its key columns, its rows.
pub type TableRows = (String, Vec<String>, Vec<serde_json::Map<String, Json>>);

pub fn as_run(tables: &[TableRows]) -> Run {
    let mut changes = Vec::new();
    for (name, key, rows) in tables {
        for row in rows {
            let k: serde_json::Map<String, Json> = key
                .iter()
                .map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Json::Null)))
                .collect();
            changes.push(
                json!({"op": "upsert", "table": name, "key": k, "row": row, "unchanged": []}),
            );
        }
    }
    Run {
        changes,
        errors: Vec::new(),
    }
}

/// Iceberg has no JSON type: JSON documents (and geometry, structs) are stored as their text.
/// For `string` columns whose PostgreSQL values are JSON values (not strings), parse that text
/// back before comparing.
pub fn parse_json_text(run: &mut Run, expected: &[Json], tables: &[LakeTable]) {
    let mut json_cols: std::collections::HashSet<(String, String)> = Default::default();
    let types: BTreeMap<&str, BTreeMap<String, Json>> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.types()))
        .collect();
    for e in expected {
        let table = e["table"].as_str().unwrap_or_default();
        for (col, v) in e["row"].as_object().into_iter().flatten() {
            let stored_as_text = types
                .get(table)
                .and_then(|t| t.get(col))
                .is_some_and(|ty| ty.as_str() == Some("string"));
            if stored_as_text && !v.is_null() && !v.is_string() {
                json_cols.insert((table.to_owned(), col.clone()));
            }
        }
    }
    for c in &mut run.changes {
        let table = c["table"].as_str().unwrap_or_default().to_owned();
        if let Some(row) = c["row"].as_object_mut() {
            for (col, v) in row.iter_mut() {
                if json_cols.contains(&(table.clone(), col.clone()))
                    && let Some(text) = v.as_str()
                    && let Ok(parsed) = serde_json::from_str::<Json>(text)
                {
                    *v = parsed;
                }
            }
        }
    }
}

/// Rows of a table through iceberg-rust's own scan, rendered canonically.
pub fn iceberg_rust_rows(
    lake: &decant_iceberg::Lake,
    table: &decant_iceberg::LakeTable,
) -> Vec<serde_json::Map<String, Json>> {
    let mut out = Vec::new();
    for batch in table.scan(lake).expect("iceberg-rust scan") {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut m = serde_json::Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let mut text = String::new();
                decant_decode::render::push_value(batch.column(i), field, row, &mut text);
                m.insert(
                    field.name().clone(),
                    serde_json::from_str(&text).expect("rendered value is JSON"),
                );
            }
            out.push(m);
        }
    }
    out
}

/// Waits until the marker table holds its row and the catalog stops moving (two reads 3 s
/// apart agree); returns the tables.
pub fn lake_settled(bed: &Bed, catalog: &Catalog, decant: &mut DecantProcess) -> Vec<LakeTable> {
    let start = Instant::now();
    let mut last: Vec<String> = Vec::new();
    loop {
        let tables = if catalog.exists() {
            lake_tables(bed, catalog)
        } else {
            Vec::new()
        };
        let marker = tables
            .iter()
            .find(|t| t.name.ends_with(".marker"))
            .is_some_and(|t| !chdb_rows(bed, t).is_empty());
        let now: Vec<String> = tables
            .iter()
            .map(|t| t.metadata_path.display().to_string())
            .collect();
        if marker && now == last {
            return tables;
        }
        last = now;
        assert!(
            decant.is_running(),
            "decant exited; log:\n{}",
            decant.log_tail(60)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the lake did not settle (marker {marker}); decant log:\n{}",
            decant.log_tail(60)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// The offsets (`topic/partition` → next) in the table's newest snapshot.
pub fn newest_offsets(t: &LakeTable) -> BTreeMap<String, i64> {
    let Some(s) = t.main_snapshots().pop() else {
        return BTreeMap::new();
    };
    let offsets: Json = s["summary"]["decant.offsets"]
        .as_str()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (topic, parts) in offsets.as_object().into_iter().flatten() {
        for (p, o) in parts.as_object().into_iter().flatten() {
            out.insert(format!("{topic}/{p}"), o.as_i64().unwrap_or(-1));
        }
    }
    out
}

/// Each table's snapshots (main branch) carry offsets that never go backwards and a commit id
/// each, never repeated: every offset range was committed once. Returns the snapshot count.
pub fn assert_snapshot_log(tables: &[LakeTable]) -> usize {
    let mut count = 0;
    for t in tables {
        let mut seen_commits = std::collections::HashSet::new();
        let mut prev: std::collections::BTreeMap<String, i64> = Default::default();
        let mut prev_epoch = 0i64;
        for s in t.main_snapshots() {
            let summary = &s["summary"];
            let commit = summary["decant.commit-id"].as_str().unwrap_or_else(|| {
                panic!(
                    "{}: snapshot {} has no decant.commit-id: {summary}",
                    t.name, s["snapshot-id"]
                )
            });
            assert!(
                seen_commits.insert(commit.to_owned()),
                "{}: commit {commit} twice",
                t.name
            );
            let epoch: i64 = summary["decant.writer-epoch"]
                .as_str()
                .and_then(|e| e.parse().ok())
                .expect("writer epoch");
            assert!(
                epoch >= prev_epoch,
                "{}: writer epoch went back from {prev_epoch} to {epoch}",
                t.name
            );
            prev_epoch = epoch;
            let offsets: Json =
                serde_json::from_str(summary["decant.offsets"].as_str().expect("offsets"))
                    .expect("offsets JSON");
            for (topic, parts) in offsets.as_object().into_iter().flatten() {
                for (p, o) in parts.as_object().into_iter().flatten() {
                    let key = format!("{topic}/{p}");
                    let o = o.as_i64().expect("offset");
                    let before = prev.get(&key).copied().unwrap_or(0);
                    assert!(
                        o >= before,
                        "{}: offset of {key} went back from {before} to {o}",
                        t.name
                    );
                    prev.insert(key, o);
                }
            }
            for k in [
                "total-records",
                "total-data-files",
                "total-delete-files",
                "total-equality-deletes",
            ] {
                assert!(
                    summary[k].is_string(),
                    "{}: summary lacks {k}: {summary}",
                    t.name
                );
            }
            count += 1;
        }
    }
    count
}

/// What chdb can show of PostgreSQL's values: ClickHouse reads Iceberg `time` as whole
/// seconds, shows the extreme timestamps (decant's ±infinity) wrapped into its own range, and has no
/// null arrays (a null list reads as `[]`).
fn as_chdb_sees(expected: &[Json], tables: &[LakeTable]) -> Vec<Json> {
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
                    let ty_json = types.get(table.as_str()).and_then(|t| t.get(col));
                    if v.is_null() && ty_json.is_some_and(|t| t["type"] == "list") {
                        *v = Json::Array(Vec::new());
                        continue;
                    }
                    match (ty_json.and_then(Json::as_str), v.as_str()) {
                        (Some("time"), Some(text)) => {
                            *v = Json::String(text.split('.').next().unwrap_or(text).to_owned());
                        }
                        (Some("timestamp"), Some("infinity")) => {
                            *v = Json::String("9999-12-31T23:59:59.775807".into());
                        }
                        (Some("timestamptz"), Some("infinity")) => {
                            *v = Json::String("9999-12-31T23:59:59.775807Z".into());
                        }
                        (Some("timestamp"), Some("-infinity")) => {
                            *v = Json::String("0000-01-01T00:00:00.224192".into());
                        }
                        (Some("timestamptz"), Some("-infinity")) => {
                            *v = Json::String("0000-01-01T00:00:00.224192Z".into());
                        }
                        _ => {}
                    }
                }
            }
            e
        })
        .collect()
}

/// Compares every table (both readers) with PostgreSQL.
pub fn assert_lake_equals_pg(
    label: &str,
    bed: &Bed,
    tables: &[LakeTable],
    expected: &[Json],
    lake: Option<&decant_iceberg::Lake>,
) {
    let by_chdb: Vec<_> = tables
        .iter()
        .map(|t| (t.name.clone(), t.key(), chdb_rows(bed, t)))
        .collect();
    let mut run = as_run(&by_chdb);
    parse_json_text(&mut run, expected, tables);
    let chdb_expected = as_chdb_sees(expected, tables);
    assert_pg_state(
        &format!("{label} (chdb)"),
        &run,
        &chdb_expected,
        PgMode::Exact,
    );
    if let Some(lake) = lake {
        let by_rust: Vec<_> = tables
            .iter()
            .map(|t| {
                let (ns, name) = t.name.rsplit_once('.').expect("ns.table");
                let table = lake.load(ns, name).expect("load").expect("table exists");
                (t.name.clone(), t.key(), iceberg_rust_rows(lake, &table))
            })
            .collect();
        let mut run = as_run(&by_rust);
        parse_json_text(&mut run, expected, tables);
        assert_pg_state(
            &format!("{label} (iceberg-rust scan)"),
            &run,
            expected,
            PgMode::Exact,
        );
    }
}
