//! The Iceberg sink on S3-compatible storage: the warehouse is `s3://…` on a real S3 API server
//! (moto's, from PyPI, path-style access like MinIO), the catalog SQLite. PostgreSQL → Debezium
//! → broker → `decant run` → Parquet, manifests and metadata in the bucket (nothing on the local
//! disk), read back with iceberg-rust's scan over S3 and compared with PostgreSQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use decant_tests::bed::{
    Bed, DecantProcess, LiveSource, free_port, http_get, random_name, wait_for, write_decant_config,
};
use decant_tests::lake::{LakeTable, as_run, iceberg_rust_rows, parse_json_text};
use decant_tests::{PgMode, assert_pg_state};

struct S3Server(Child);

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(bed: &Bed, code: &str) -> String {
    let out = Command::new(bed.get("DECANT_PY"))
        .args(["-c", code])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn boto(endpoint: &str) -> String {
    format!(
        "import boto3; s3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')"
    )
}

/// Every table of the lake, read with iceberg-rust (its metadata as JSON for the helpers).
fn read_all(
    lake: &decant_iceberg::Lake,
) -> Vec<(LakeTable, Vec<serde_json::Map<String, serde_json::Value>>)> {
    let mut out = Vec::new();
    for (ns, name) in lake.all_pipeline_tables().expect("tables") {
        let t = lake.load(&ns, &name).expect("load").expect("exists");
        let view = LakeTable {
            name: format!("{ns}.{name}"),
            metadata_path: PathBuf::from(t.metadata_location().unwrap_or_default()),
            metadata: serde_json::to_value(t.table().metadata()).expect("metadata JSON"),
        };
        let rows = iceberg_rust_rows(lake, &t);
        out.push((view, rows));
    }
    out
}

#[test]
fn debezium_to_iceberg_on_s3_equals_postgres() {
    let started = Instant::now();
    let bed = Bed::load();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let _server = S3Server(
        Command::new(bed.get("DECANT_PY"))
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's S3 server"),
    );
    wait_for(Duration::from_secs(60), "the S3 server", || {
        http_get(port, "/").map(|_| ())
    });
    eprintln!(
        "lake_s3: S3 server up after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let bucket = random_name("lake").replace('_', "-");
    python(
        &bed,
        &format!("{}; s3.create_bucket(Bucket='{bucket}')", boto(&endpoint)),
    );

    let LiveSource {
        broker,
        schema,
        prefix,
        dbz,
        ..
    } = LiveSource::start();

    eprintln!(
        "lake_s3: Debezium snapshot done after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let work = std::env::temp_dir().join(random_name("decant-lake-s3"));
    let storage: HashMap<String, String> = [
        ("s3.endpoint", endpoint.as_str()),
        ("s3.access-key-id", "test"),
        ("s3.secret-access-key", "test"),
        ("s3.region", "us-east-1"),
        ("s3.path-style-access", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let db = work.join("catalog.db");
    let warehouse = format!("s3://{bucket}/warehouse");
    let storage_toml: String = storage
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect();
    let (config, mport) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &format!(
            "[iceberg]\ncatalog_uri = \"sqlite:{}\"\nwarehouse = \"{warehouse}\"\ncommit_interval_ms = 1000\n[iceberg.storage]\n{storage_toml}",
            db.display()
        ),
    );
    let mut decant = DecantProcess::start(
        &config,
        &work.join("decant.log"),
        &[("DECANT_OUTPUT__TYPE", "iceberg")],
    );
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(mport, "/ready").filter(|(s, _)| *s == 200)
    });
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);

    // Read through iceberg-rust over S3 until the marker is in and two reads agree.
    let group = {
        let text = std::fs::read_to_string(&config).expect("config");
        text.lines()
            .find_map(|l| {
                l.strip_prefix("group_id = \"")?
                    .strip_suffix('"')
                    .map(str::to_owned)
            })
            .expect("group id")
    };
    let lake = decant_iceberg::Lake::open(decant_iceberg::LakeConfig {
        catalog_uri: format!("sqlite:{}", db.display()),
        catalog_name: "decant".into(),
        warehouse: warehouse.clone(),
        pipeline: group,
        target_file_size_bytes: 1 << 20,
        table_properties: HashMap::new(),
        storage_properties: storage,
        catalog_properties: Default::default(),
    })
    .expect("open the lake over S3");
    eprintln!(
        "lake_s3: workload applied after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Wait on metadata only (one small read per table) until the marker's snapshot is in and
    // two looks agree, then scan everything once: reads through the S3 server are slow.
    let start = Instant::now();
    let mut last = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            decant.is_running(),
            "decant exited:\n{}",
            decant.log_tail(40)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "did not settle:\n{}",
            decant.log_tail(40)
        );
        if !db.exists() {
            continue;
        }
        let mut now = Vec::new();
        let mut marker = false;
        for (ns, name) in lake.all_pipeline_tables().expect("tables") {
            let t = lake.load(&ns, &name).expect("load").expect("exists");
            marker |= name == "marker" && t.table().metadata().current_snapshot().is_some();
            now.push(t.metadata_location().unwrap_or_default().to_owned());
        }
        now.sort();
        if marker && now == last {
            break;
        }
        last = now;
    }
    eprintln!(
        "lake_s3: settled after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let scan_started = Instant::now();
    let tables = read_all(&lake);
    eprintln!(
        "lake_s3: read every table over S3 in {:.1} s",
        scan_started.elapsed().as_secs_f64()
    );
    let views: Vec<LakeTable> = tables.iter().map(|(t, _)| t.clone()).collect();
    let rows: Vec<_> = tables
        .iter()
        .map(|(t, r)| (t.name.clone(), t.key(), r.clone()))
        .collect();
    let mut run = as_run(&rows);
    parse_json_text(&mut run, &expected, &views);
    assert_pg_state("decant run (iceberg on S3)", &run, &expected, PgMode::Exact);
    assert!(
        views
            .iter()
            .all(|t| t.metadata_path.display().to_string().starts_with("s3://"))
    );
    let objects: usize = python(
        &bed,
        &format!(
            "{}; print(sum(1 for p in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}') for _ in p.get('Contents', [])))",
            boto(&endpoint)
        ),
    )
    .trim()
    .parse()
    .expect("object count");
    assert!(
        objects > views.len() * 3,
        "data, manifests and metadata are in the bucket ({objects} objects)"
    );
    assert!(!work.join("warehouse").exists() && !PathBuf::from("warehouse").exists());
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    dbz.stop();
    eprintln!(
        "lake_s3: {} tables, {objects} objects in s3://{bucket}, {:.1} s",
        views.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}
