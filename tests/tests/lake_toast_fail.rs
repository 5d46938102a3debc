//! `on_toast_missing = "fail"` with the Iceberg sink, live: a TOAST-unchanged update of a row
//! decant never saw (its snapshot read was filtered out of the Debezium snapshot) quarantines
//! that source partition at the update. The update's row must not reach the table, nor anything
//! after it on that partition, while the other tables keep flowing to Iceberg.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, LiveSource, http_get, random_name, wait_for, write_decant_config,
};
use decant_tests::lake::{Catalog, chdb_rows, lake_settled};
use decant_tests::workload::metric;

#[test]
fn a_toast_miss_under_fail_quarantines_its_partition_and_writes_nothing_of_it() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start_with(|schema| {
        let toasty = format!("{}.toasty", schema.name);
        vec![
            (
                format!("snapshot.select.statement.overrides.{toasty}"),
                format!("SELECT * FROM \"{}\".toasty WHERE id > 1000", schema.name),
            ),
            ("snapshot.select.statement.overrides".into(), toasty),
        ]
    });
    let toasty = format!("{}.toasty", schema.name);

    let work = std::env::temp_dir().join(random_name("decant-toastfail"));
    let catalog = Catalog::sqlite(&work);
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &format!(
            "{}\n[defaults]\non_toast_missing = \"fail\"\n",
            catalog.config("")
        ),
    );
    let env = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &env);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });
    let s = &schema.name;
    bed.psql(
        &format!(
            "INSERT INTO \"{s}\".toasty VALUES (10, 10, 'ten', \"{s}\".big_text('toasty-10', 100));\n\
             UPDATE \"{s}\".toasty SET small = small + 1 WHERE id = 1;\n\
             INSERT INTO \"{s}\".toasty VALUES (11, 11, 'eleven', 'after the miss');\n\
             UPDATE \"{s}\".composite SET val = 'still flowing' WHERE k_int = 1;\n\
             INSERT INTO \"{s}\".marker VALUES (1, 'end');"
        ),
        &[],
    );
    let tables = lake_settled(&bed, &catalog, &mut decant);

    let t = tables
        .iter()
        .find(|t| t.name == toasty)
        .expect("the toasty table was created from its row before the miss");
    let ids: Vec<i64> = chdb_rows(&bed, t)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(
        ids,
        vec![10],
        "only the row before the TOAST miss reaches the table"
    );
    let composite = tables
        .iter()
        .find(|t| t.name == format!("{s}.composite"))
        .expect("composite table");
    assert!(
        chdb_rows(&bed, composite)
            .iter()
            .any(|r| r["val"] == "still flowing"),
        "the other tables keep flowing"
    );
    assert_eq!(metric(port, "decant_quarantined_partitions"), Some(1.0));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("quarantining the source partition")
            && text.contains("TOAST-unchanged column(s) big"),
        "{}",
        decant.log_tail(30)
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    dbz.stop();
    eprintln!("lake_toast_fail: {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&work);
}
