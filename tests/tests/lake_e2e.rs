//! `decant run` with the Iceberg sink, end to end on the live bed: PostgreSQL → Debezium →
//! broker → the real `decant` binary → Iceberg tables (SQLite catalog, local warehouse), read
//! back at the final snapshot by two independent readers — chdb (embedded ClickHouse) and
//! iceberg-rust's own scan — and compared with PostgreSQL's own state: the type zoo, TOAST-
//! unchanged updates, composite keys, primary-key changes, deletes. The snapshot log must carry
//! monotonic offsets and unique commit ids; tables without changes catch up with the consumed
//! offsets (so a restart does not re-read from a quiet table's last change); SIGTERM exits 0;
//! an idle restart commits nothing.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, LiveSource, http_get, random_name, wait_for, write_decant_config,
};
use decant_tests::lake::{
    Catalog, assert_lake_equals_pg, assert_snapshot_log, chdb_rows, lake_settled, lake_tables,
    newest_offsets,
};

#[test]
fn debezium_to_iceberg_equals_postgres() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();

    let work = std::env::temp_dir().join(random_name("decant-lake"));
    let catalog = Catalog::sqlite(&work);
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &catalog.config("idle_commit_interval_ms = 2000"),
    );
    let env = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &env);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    // Past the commit interval: the marker's batch changes no other table.
    std::thread::sleep(Duration::from_secs(3));
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);
    lake_settled(&bed, &catalog, &mut decant);
    // The marker's topic was read last: only its table changed then, and every other table
    // gets an offsets-only snapshot within the idle interval.
    let tables = wait_for(Duration::from_secs(60), "quiet tables catch up", || {
        let tables = lake_tables(&bed, &catalog);
        let first = newest_offsets(&tables[0]);
        tables
            .iter()
            .all(|t| newest_offsets(t) == first)
            .then_some(tables)
    });
    let quiet: Vec<&str> = tables
        .iter()
        .filter(|t| !t.name.ends_with(".marker"))
        .filter(|t| {
            let newest = t.main_snapshots().pop().unwrap_or_default();
            let added = |k: &str| newest["summary"][k].as_str().unwrap_or("0") != "0";
            !added("added-records") && !added("added-delete-files")
        })
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        quiet.len(),
        tables.len() - 1,
        "every table but the marker caught up by an offsets-only snapshot; these did: {quiet:?}"
    );

    let lake = catalog.lake();
    assert_lake_equals_pg(
        "decant run (iceberg)",
        &bed,
        &tables,
        &expected,
        Some(&lake),
    );
    // JSON documents hold every number exactly as PostgreSQL has it (a parse through f64 would
    // write 1.2345678901234567e19), read back as text by chdb.
    let typezoo = tables
        .iter()
        .find(|t| t.name == format!("{}.typezoo", schema.name))
        .expect("typezoo table");
    let rows = chdb_rows(&bed, typezoo);
    let doc = rows
        .iter()
        .find(|r| r["id"] == 1)
        .and_then(|r| r["c_jsonb"].as_str())
        .unwrap_or_else(|| panic!("typezoo row 1 with its c_jsonb text: {rows:?}"));
    assert!(
        doc.contains("12345678901234567890.5") && doc.contains("18446744073709551616"),
        "c_jsonb lost digits on its way to Iceberg: {doc}"
    );
    let doc_before = doc.to_owned();
    let snapshots = assert_snapshot_log(&tables);
    let deletes: u64 = tables
        .iter()
        .filter_map(|t| t.main_snapshots().last().cloned())
        .filter_map(|s| {
            s["summary"]["total-equality-deletes"]
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        deletes > 0,
        "updates and deletes were written as equality deletes"
    );
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(metrics.contains("decant_toast_fills_total"), "{metrics}");

    // Clean shutdown exits 0; an idle restart commits nothing new.
    let status = decant.terminate(Duration::from_secs(60));
    assert!(
        status.success(),
        "decant exit status {status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let before: Vec<String> = lake_tables(&bed, &catalog)
        .iter()
        .map(|t| t.metadata_path.display().to_string())
        .collect();
    let decant = DecantProcess::start(&config, &log, &env);
    wait_for(
        Duration::from_secs(60),
        "decant /ready after restart",
        || http_get(port, "/ready").filter(|(s, _)| *s == 200),
    );
    std::thread::sleep(Duration::from_secs(8));
    let tables_after = lake_tables(&bed, &catalog);
    let after: Vec<String> = tables_after
        .iter()
        .map(|t| t.metadata_path.display().to_string())
        .collect();
    // The restart claims each table (a properties-only metadata change), nothing else.
    for t in &tables_after {
        let before_t = tables
            .iter()
            .find(|x| x.name == t.name)
            .expect("same tables");
        assert_eq!(
            t.metadata["current-snapshot-id"], before_t.metadata["current-snapshot-id"],
            "{}: a restart after a clean stop committed a snapshot",
            t.name
        );
    }
    assert_eq!(before.len(), after.len());

    // A JSON document is stored as the text PostgreSQL holds: a document that is a JSON string
    // keeps its quotes and a `null` document is the text `null`, not SQL NULL (which a NULL
    // column stays). The canonical JSON row cannot tell these apart; the Iceberg sink can.
    bed.psql(
        &format!(
            "update \"{s}\".typezoo set c_jsonb = '\"a JSON string\"' where id = 1; \
             update \"{s}\".typezoo set c_jsonb = 'null' where id = 3; \
             update \"{s}\".typezoo set c_jsonb = null where id = 4",
            s = schema.name
        ),
        &[],
    );
    let docs = wait_for(
        Duration::from_secs(90),
        "the JSON documents' update",
        || {
            let typezoo = lake_tables(&bed, &catalog)
                .into_iter()
                .find(|t| t.name == format!("{}.typezoo", schema.name))?;
            let rows = chdb_rows(&bed, &typezoo);
            let doc = |id: i64| {
                rows.iter()
                    .find(|r| r["id"] == id)
                    .map(|r| r["c_jsonb"].clone())
            };
            let docs = (doc(1)?, doc(3)?, doc(4)?);
            // The three updates are one transaction, in order: id 4's is the last.
            (docs.0 != serde_json::json!(doc_before) && docs.2.is_null()).then_some(docs)
        },
    );
    assert_eq!(
        docs,
        (
            serde_json::json!("\"a JSON string\""),
            serde_json::json!("null"),
            serde_json::Value::Null
        ),
        "typezoo c_jsonb of ids 1, 3, 4 as chdb reads them"
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success());
    dbz.stop();
    eprintln!(
        "lake_e2e: {} tables, {snapshots} snapshots, {deletes} equality deletes, {:.1} s",
        tables.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}
