//! Two `decant run` processes of the same pipeline (Iceberg sink): the newer one claims every
//! table at start, so the older one can no longer commit — its next commit attempt finds the
//! newer writer epoch and it stops with a clear message. The snapshot log never interleaves the
//! two writers (epochs never go back), and the final tables equal PostgreSQL.
//!
//! Twice: on the SQL catalog in PostgreSQL (the other lake tests use SQLite), where the
//! compare-and-swap of the metadata pointer sees the newer writer's claim; and on a REST catalog
//! (the bed's `rest_catalog.py`: pyiceberg's catalog over the REST protocol, with a path prefix
//! and OAuth2 client credentials), where the claim is an empty snapshot because REST commit
//! requirements cannot name a table property. There the tables are also read back through
//! iceberg-rust's scan over the REST catalog.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use decant_tests::bed::{
    Bed, DecantProcess, LiveSource, free_port, random_name, wait_for, write_decant_config,
};
use decant_tests::lake::{Catalog, assert_lake_equals_pg, assert_snapshot_log, lake_settled};
use decant_tests::workload::committed;

#[test]
fn a_newer_writer_fences_the_older_one() {
    fencing("sql", Catalog::postgres);
}

#[test]
fn a_newer_writer_fences_the_older_one_on_a_rest_catalog() {
    fencing("rest", Catalog::rest);
}

fn fencing(label: &str, catalog_for: impl Fn(&Bed, &Path) -> Catalog) {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();

    let work = std::env::temp_dir().join(random_name("decant-fence"));
    let catalog = catalog_for(&bed, &work);
    let (config, port_a) = write_decant_config(
        &work,
        &broker.bootstrap(),
        &prefix,
        "unused",
        &catalog.config(""),
    );
    let env_a = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let mut a = DecantProcess::start(&config, &work.join("a.log"), &env_a);
    wait_for(Duration::from_secs(90), "writer A commits", || {
        (committed(port_a) > 0).then_some(())
    });

    // Changes keep coming while the second writer starts.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, bed, name) = (stop.clone(), bed.clone(), schema.name.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                bed.psql(
                    &format!(
                        "UPDATE \"{name}\".composite SET qty = qty + 1, val = 'f{i}' WHERE k_int % 3 = {m}",
                        m = i % 3
                    ),
                    &[],
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let port_b = free_port();
    let listen_b = format!("127.0.0.1:{port_b}");
    let state_b = work.join("state-b").display().to_string();
    let env_b = [
        ("DECANT_OUTPUT__TYPE", "iceberg"),
        ("DECANT_OBSERVABILITY__LISTEN", listen_b.as_str()),
        ("DECANT_STATE__DIR", state_b.as_str()),
    ];
    let mut b = DecantProcess::start(&config, &work.join("b.log"), &env_b);

    // A stops on its own: fenced, with a clear message, without committing again.
    let deadline = Instant::now() + Duration::from_secs(120);
    while a.is_running() {
        assert!(
            Instant::now() < deadline,
            "writer A was not fenced; its log:\n{}",
            a.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log_a = std::fs::read_to_string(work.join("a.log")).unwrap_or_default();
    assert!(
        log_a.contains("fenced: another decant process of pipeline"),
        "A's log names the fencing:\n{}",
        a.log_tail(20)
    );
    wait_for(Duration::from_secs(90), "writer B commits", || {
        (committed(port_b) > 0).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("workload");
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);
    let tables = lake_settled(&bed, &catalog, &mut b);
    let reader = catalog.rest.is_some().then(|| catalog.lake());
    assert_lake_equals_pg(
        &format!("after fencing ({label} catalog)"),
        &bed,
        &tables,
        &expected,
        reader.as_ref(),
    );
    let snapshots = assert_snapshot_log(&tables);
    if catalog.rest.is_some() {
        // B's claims moved the main branch of every table A had written.
        let claims = tables
            .iter()
            .flat_map(|t| t.main_snapshots())
            .filter(|s| {
                s["summary"]["decant.commit-id"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("claim-"))
            })
            .count();
        assert!(claims > 0, "no claim snapshots on the REST catalog");
    }
    let status = b.terminate(Duration::from_secs(60));
    assert!(status.success(), "B exit status {status}");
    dbz.stop();
    eprintln!(
        "lake_fencing ({label}): {snapshots} snapshots, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}
