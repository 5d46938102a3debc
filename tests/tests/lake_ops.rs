//! `ops` with the Iceberg sink, live: a table configured to keep upserts only (an append-style
//! history) keeps the rows PostgreSQL deleted, and every delete left out is counted in
//! `decant_skipped_records_total{reason="op_filter"}`, as in the topics sink.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, LiveSource, http_get, random_name, wait_for, write_decant_config,
};
use decant_tests::lake::{Catalog, chdb_rows, lake_settled};

#[test]
fn deletes_left_out_by_ops_are_counted_and_the_rows_stay() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();
    let s = &schema.name;
    let work = std::env::temp_dir().join(random_name("decant-lake-ops"));
    let catalog = Catalog::sqlite(&work);
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &format!(
            "{}\n[tables.\"{s}.composite\"]\nops = [\"upsert\"]\n",
            catalog.config("")
        ),
    );
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &[("DECANT_OUTPUT__TYPE", "iceberg")]);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });
    bed.psql(
        &format!(
            "INSERT INTO \"{s}\".composite VALUES (70, 'x', 'kept', 1), (71, 'y', 'kept too', 2);\n\
             DELETE FROM \"{s}\".composite WHERE k_int IN (70, 71);\n\
             INSERT INTO \"{s}\".marker VALUES (1, 'end');"
        ),
        &[],
    );
    let tables = lake_settled(&bed, &catalog, &mut decant);
    let composite = tables
        .iter()
        .find(|t| t.name == format!("{s}.composite"))
        .expect("composite table");
    let rows = chdb_rows(&bed, composite);
    for k in [70, 71] {
        assert!(
            rows.iter().any(|r| r["k_int"] == k),
            "row {k} deleted in PostgreSQL stays in the upserts-only table: {rows:?}"
        );
    }
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    let skipped: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("decant_skipped_records_total")
                && l.contains("reason=\"op_filter\"")
                && l.contains(&format!("{s}.composite"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(skipped, 2.0, "the two deletes are counted:\n{metrics}");
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    dbz.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("lake_ops: {:.1} s", started.elapsed().as_secs_f64());
}
