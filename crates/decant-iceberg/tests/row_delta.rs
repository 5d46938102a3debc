//! The commit protocol against real catalogs and a local warehouse, read back with iceberg's
//! own scan (which applies equality deletes): upserts and deletes, one snapshot per batch, a
//! retried batch found already committed, progress in the summary, added columns, refused type
//! changes, and fencing of an older writer by a newer one. Once on the SQL catalog (SQLite),
//! once on a REST catalog: the test bed's `rest_catalog.py`, pyiceberg's SQL catalog served
//! over the REST protocol, so the requirement checks and metadata updates are pyiceberg's.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use decant_iceberg::{CommitOutcome, IcebergError, Lake, LakeConfig, TableDelta, TableLayout};
use decant_model::ColumnType;

fn sql_lake(dir: &Path) -> Lake {
    Lake::open(LakeConfig {
        catalog_uri: format!("sqlite:{}", dir.join("catalog.db").display()),
        catalog_name: "decant".into(),
        warehouse: dir.join("wh").display().to_string(),
        pipeline: "p1".into(),
        target_file_size_bytes: 1 << 20,
        table_properties: HashMap::new(),
        storage_properties: HashMap::new(),
        catalog_properties: HashMap::new(),
    })
    .expect("open lake")
}

/// The test bed's REST catalog server, stopped on drop.
struct RestServer {
    child: Child,
    uri: String,
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test bed's python (`DECANT_PY`, exported by `tests/run.sh`, or read from the bed's
/// `bed.env`): `bash tests/bed/setup.sh` provides it.
fn bed_python() -> PathBuf {
    if let Ok(py) = std::env::var("DECANT_PY") {
        return py.into();
    }
    let cache = std::env::var("DECANT_CACHE").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/decant"),
        PathBuf::from,
    );
    let env = std::fs::read_to_string(cache.join("bed.env")).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `bash tests/bed/setup.sh` first",
            cache.join("bed.env").display()
        )
    });
    env.lines()
        .find_map(|l| l.strip_prefix("DECANT_PY="))
        .map(|v| PathBuf::from(v.trim_matches(|c| c == '"' || c == '\'')))
        .expect("DECANT_PY in bed.env")
}

/// Starts the server with a path prefix and OAuth2 client credentials whose tokens expire after
/// 12 s, so the prefix from `/v1/config` and a current token must be honoured by every request
/// decant makes.
fn rest_server(dir: &Path) -> RestServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bed/rest_catalog.py");
    let mut child = Command::new(bed_python())
        .arg(script)
        .arg("--catalog-db")
        .arg(dir.join("rest.db"))
        .arg("--warehouse")
        .arg(dir.join("wh"))
        .args(["--prefix", "wh1", "--credential", "decant:s3cret"])
        .args(["--token-ttl", &TOKEN_TTL.as_secs().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rest_catalog.py");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("rest_catalog.py says ready");
    let port = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("rest_catalog.py printed {line:?}"));
    RestServer {
        child,
        uri: format!("http://127.0.0.1:{port}"),
    }
}

const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(12);

fn rest_lake(server: &RestServer) -> Lake {
    Lake::open(rest_config(server)).expect("open lake")
}

fn rest_config(server: &RestServer) -> LakeConfig {
    LakeConfig {
        catalog_uri: server.uri.clone(),
        catalog_name: "rest".into(),
        warehouse: String::new(),
        pipeline: "p1".into(),
        target_file_size_bytes: 1 << 20,
        table_properties: HashMap::new(),
        storage_properties: HashMap::new(),
        catalog_properties: HashMap::from([("credential".into(), "decant:s3cret".into())]),
    }
}

fn layout(extra: Option<(&str, ColumnType)>) -> TableLayout {
    let mut cols = vec![
        ("id".to_owned(), ColumnType::Int64),
        ("v".to_owned(), ColumnType::String),
    ];
    if let Some((n, t)) = extra {
        cols.push((n.to_owned(), t));
    }
    TableLayout::new(cols, vec!["id".into()])
}

/// A batch of the table's schema: ids and values (`None` value = null); extra columns null.
fn batch(schema: &arrow_schema::SchemaRef, rows: &[(i64, Option<&str>)]) -> RecordBatch {
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
    ];
    for f in schema.fields().iter().skip(2) {
        cols.push(arrow_array::new_null_array(f.data_type(), rows.len()));
    }
    RecordBatch::try_new(schema.clone(), cols).expect("batch")
}

fn delta(
    schema: &arrow_schema::SchemaRef,
    upserts: &[(i64, Option<&str>)],
    touched: &[i64],
    id: &str,
    offset: i64,
) -> TableDelta {
    let keys: Vec<(i64, Option<&str>)> = touched.iter().map(|k| (*k, None)).collect();
    TableDelta {
        upserts: vec![batch(schema, upserts)],
        deletes: vec![batch(schema, &keys)],
        commit_id: id.into(),
        offsets: BTreeMap::from([(("src.t".to_owned(), 0), offset)]),
    }
}

fn rows(lake: &Lake, ns: &str, name: &str) -> Vec<(i64, Option<String>)> {
    let t = lake.load(ns, name).expect("load").expect("exists");
    let mut out = Vec::new();
    for b in t.scan(lake).expect("scan") {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let vs = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                ids.value(i),
                (!arrow_array::Array::is_null(vs, i)).then(|| vs.value(i).to_owned()),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn sql_catalog_upserts_deletes_retries_evolution_and_fencing() {
    let dir = tempfile::tempdir().expect("tempdir");
    commit_protocol(|| sql_lake(dir.path()), None);
}

#[test]
fn rest_catalog_upserts_deletes_retries_evolution_and_fencing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = rest_server(dir.path());
    commit_protocol(|| rest_lake(&server), Some(TOKEN_TTL));
    // A wrong secret is refused with the server's message, not retried forever.
    let e = Lake::open(LakeConfig {
        catalog_properties: HashMap::from([("credential".into(), "decant:wrong".into())]),
        ..rest_config(&server)
    })
    .err()
    .expect("bad credentials");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
}

/// `open` gives a new writer (a newer epoch) of pipeline `p1` each time it is called. With
/// `outlive`, the first writer pauses that long before its retry, so its tokens expire.
fn commit_protocol(open: impl Fn() -> Lake, outlive: Option<std::time::Duration>) {
    let a = open();
    let mut t = a
        .open_for_write("shop", "items", &layout(None))
        .expect("create");
    let s = t.arrow_schema().expect("schema");

    // Batch 1: three inserts (every touched key also gets an equality delete).
    let d1 = delta(
        &s,
        &[(1, Some("a")), (2, Some("b")), (3, Some("c"))],
        &[1, 2, 3],
        "c1",
        10,
    );
    assert!(matches!(
        t.commit(&a, &d1).expect("commit 1"),
        CommitOutcome::Committed { .. }
    ));
    // Batch 2: delete 1, update 2, insert 4 — one snapshot.
    let d2 = delta(&s, &[(2, Some("b2")), (4, Some("d"))], &[1, 2, 4], "c2", 25);
    assert!(matches!(
        t.commit(&a, &d2).expect("commit 2"),
        CommitOutcome::Committed { .. }
    ));
    let want = vec![
        (2, Some("b2".to_owned())),
        (3, Some("c".to_owned())),
        (4, Some("d".to_owned())),
    ];
    assert_eq!(rows(&a, "shop", "items"), want);

    if let Some(pause) = outlive {
        std::thread::sleep(pause + std::time::Duration::from_secs(1));
    }
    // The same batch again (a retry after an unknown outcome) is recognised, not re-applied.
    assert_eq!(
        t.commit(&a, &d2).expect("retry"),
        CommitOutcome::AlreadyCommitted
    );
    assert_eq!(rows(&a, "shop", "items"), want);

    // Progress and summary totals.
    let reloaded = a.load("shop", "items").expect("load").expect("exists");
    let p = reloaded.progress(&a).expect("progress");
    assert_eq!(p.offsets.get(&("src.t".to_owned(), 0)), Some(&25));
    assert_eq!(p.commit_id.as_deref(), Some("c2"));
    let summary = &reloaded
        .table()
        .metadata()
        .current_snapshot()
        .expect("snapshot")
        .summary()
        .additional_properties;
    assert_eq!(summary["total-records"], "5");
    assert_eq!(summary["total-equality-deletes"], "6");
    assert_eq!(summary["total-data-files"], "2");
    assert_eq!(reloaded.table().metadata().snapshots().count(), 2);

    // A new nullable column is added; old rows read it as null.
    assert!(
        t.evolve(&a, &layout(Some(("w", ColumnType::Int64))))
            .expect("evolve")
    );
    let s2 = t.arrow_schema().expect("schema");
    assert_eq!(s2.fields().len(), 3);
    let d3 = delta(&s2, &[(5, None)], &[5], "c3", 30);
    t.commit(&a, &d3).expect("commit 3");
    assert_eq!(rows(&a, "shop", "items").len(), 4);
    // A changed type is refused with a clear message and touches nothing.
    let bad = TableLayout::new(
        vec![
            ("id".into(), ColumnType::Int64),
            ("v".into(), ColumnType::Int64),
        ],
        vec!["id".into()],
    );
    let e = t.evolve(&a, &bad).expect_err("type change");
    assert!(
        matches!(e, IcebergError::IncompatibleSchema { .. })
            && e.to_string().contains("column v changed type"),
        "{e}"
    );

    // Tables at any namespace depth belong to the pipeline (a restart must find them all).
    a.open_for_write("lake.shop", "nested", &layout(None))
        .expect("create nested");
    assert_eq!(
        a.all_pipeline_tables().expect("list"),
        vec![
            ("lake.shop".to_owned(), "nested".to_owned()),
            ("shop".to_owned(), "items".to_owned())
        ]
    );

    // A newer writer of the same pipeline claims the table: the older one is fenced.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let b = open();
    let mut tb = b.claim("shop", "items").expect("claim");
    let d4 = delta(&s2, &[(6, Some("zombie"))], &[6], "c4", 40);
    let e = t.commit(&a, &d4).expect_err("fenced");
    assert!(matches!(e, IcebergError::Fenced { .. }), "{e}");
    assert!(e.to_string().contains("fenced"), "{e}");
    let d5 = delta(&s2, &[(6, Some("new"))], &[6], "c5", 40);
    tb.commit(&b, &d5).expect("the new writer commits");
    let got = rows(&b, "shop", "items");
    assert!(
        got.contains(&(6, Some("new".to_owned())))
            && !got.iter().any(|r| r.1.as_deref() == Some("zombie"))
    );
}
