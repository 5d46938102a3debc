//! Schema evolution into Iceberg on the live bed: a column added in PostgreSQL becomes a new
//! optional Iceberg column carrying the new values; a column whose type changes stops that
//! table with a clear message while the other tables keep flowing.

use std::time::{Duration, Instant};

use decant_tests::bed::{DecantProcess, LiveSource, random_name, wait_for, write_decant_config};
use decant_tests::lake::{Catalog, assert_lake_equals_pg, lake_settled};
use decant_tests::workload::metric;

#[test]
fn added_columns_flow_and_type_changes_stop_only_their_table() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();

    let work = std::env::temp_dir().join(random_name("decant-lake-schema"));
    let catalog = Catalog::sqlite(&work);
    let (config, port) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &catalog.config(""),
    );
    let env = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let mut decant = DecantProcess::start(&config, &work.join("decant.log"), &env);
    wait_for(Duration::from_secs(90), "the first commit", || {
        metric(port, "decant_transactions_total{outcome=\"committed\"}")
            .filter(|c| *c > 0.0)
            .map(|_| ())
    });
    let s = &schema.name;
    bed.psql(
        &format!(
            "ALTER TABLE \"{s}\".composite ADD COLUMN extra text;
             UPDATE \"{s}\".composite SET extra = 'e' || k_int, qty = qty + 1;"
        ),
        &[],
    );
    bed.psql(
        &format!(
            "ALTER TABLE \"{s}\".toasty ALTER COLUMN small TYPE text USING small::text;
             UPDATE \"{s}\".toasty SET small = small || 'x' WHERE id < 5;"
        ),
        &[],
    );
    bed.psql(
        &format!(
            "UPDATE \"{s}\".composite SET val = 'after' WHERE k_int % 2 = 0;
             INSERT INTO \"{s}\".marker VALUES (1, 'end');"
        ),
        &[],
    );
    let expected: Vec<serde_json::Value> = bed
        .pg_state(s)
        .into_iter()
        .filter(|e| e["table"] != format!("{s}.toasty").as_str())
        .collect();
    let tables: Vec<_> = lake_settled(&bed, &catalog, &mut decant)
        .into_iter()
        .filter(|t| !t.name.ends_with(".toasty"))
        .collect();
    let composite = tables
        .iter()
        .find(|t| t.name.ends_with(".composite"))
        .expect("composite");
    assert!(
        composite.types().contains_key("extra"),
        "the new column was added"
    );
    assert_lake_equals_pg("after schema changes", &bed, &tables, &expected, None);

    assert_eq!(metric(port, "decant_stopped_tables"), Some(1.0));
    let log = std::fs::read_to_string(work.join("decant.log")).unwrap_or_default();
    assert!(
        log.contains("incompatible schema change: column small changed type"),
        "the stopped table is named with its reason:\n{}",
        decant.log_tail(30)
    );
    assert!(decant.is_running(), "the other tables keep flowing");
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    dbz.stop();
    eprintln!("lake_schema: {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&work);
}
