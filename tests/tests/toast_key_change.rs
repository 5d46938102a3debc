//! A primary-key change of a row whose TOASTed column is unchanged (issue: the table stopped at
//! an ordinary UPDATE). PostgreSQL does not send the unchanged out-of-line value with the new
//! key's row, so Debezium's create event carries `__debezium_unavailable_value`; decant must take
//! the value from the old key (Debezium's `__debezium.oldkey` / `__debezium.newkey` headers name
//! the pair), under the default `on_toast_missing = "fail"`, into both sinks at once: the last
//! row of the new key carries the whole value, no TOAST miss is counted, nothing is quarantined.
//!
//! Then the key is deleted, and the update and delete Debezium sent for it are sent again, as
//! a connector restarted before its offset flush sends them (at-least-once delivery): the
//! re-sent TOAST-unchanged update comes after decant applied the key's delete. It is skipped
//! as older than that delete (`resent_before_delete`), not a TOAST miss; the table keeps
//! flowing and the key stays deleted in both sinks.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, LiveSource, consume, http_get, produce_again, random_name, topics_with_prefix,
    wait_for, write_decant_config,
};
use decant_tests::lake::{Catalog, chdb_rows, lake_settled};
use decant_tests::workload::metric;
use serde_json::Value as Json;

#[test]
fn key_change_keeps_the_toasted_value_in_both_sinks() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();
    let s = &schema.name;
    let work = std::env::temp_dir().join(random_name("decant-keychange"));

    let out_prefix = random_name("out");
    let (topics_config, topics_port) = write_decant_config(
        &work.join("topics"),
        &broker.bootstrap(),
        &prefix,
        &out_prefix,
        "",
    );
    let catalog = Catalog::sqlite(&work.join("lake"));
    let (lake_config, lake_port) = write_decant_config(
        &work.join("lake"),
        &broker.bootstrap(),
        &prefix,
        "unused",
        &catalog.config(""),
    );
    let mut topics = DecantProcess::start(&topics_config, &work.join("topics.log"), &[]);
    let mut lake = DecantProcess::start(
        &lake_config,
        &work.join("lake.log"),
        &[("DECANT_OUTPUT__TYPE", "iceberg")],
    );
    for port in [topics_port, lake_port] {
        wait_for(Duration::from_secs(60), "decant /ready", || {
            http_get(port, "/ready").filter(|(s, _)| *s == 200)
        });
    }
    // The statements: REPLICA IDENTITY DEFAULT, a 12.8 KB value stored out of line, a
    // key change with a following update (900 -> 901) and one without (910 -> 911); a composite
    // key would take the same path (the key is rendered the same way for both halves).
    bed.psql(
        &format!(
            "INSERT INTO \"{s}\".toasty VALUES (900, 1, 'nine', \"{s}\".big_text('k900', 400));\n\
             UPDATE \"{s}\".toasty SET id = 901 WHERE id = 900;\n\
             UPDATE \"{s}\".toasty SET small = 2 WHERE id = 901;\n\
             INSERT INTO \"{s}\".toasty VALUES (910, 1, 'ten', \"{s}\".big_text('k910', 400));\n\
             UPDATE \"{s}\".toasty SET id = 911 WHERE id = 910;\n\
             INSERT INTO \"{s}\".marker VALUES (1, 'end');"
        ),
        &[],
    );
    let expected: Vec<Json> = bed
        .pg_state(s)
        .into_iter()
        .filter(|r| r["table"] == format!("{s}.toasty"))
        .map(|r| r["row"].clone())
        .collect();
    let want = |id: i64| -> Json {
        expected
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("PostgreSQL has row {id}"))
            .clone()
    };
    for id in [901, 911] {
        assert_eq!(
            want(id)["big"].as_str().map(str::len),
            Some(12_800),
            "the workload's value"
        );
    }

    // Topics: the last value of each new key, read with read_committed.
    let toasty_topic = format!("{out_prefix}.{s}.toasty");
    let values = wait_for(
        Duration::from_secs(120),
        "the new keys' rows in the upsert topic",
        || {
            assert!(topics.is_running(), "{}", topics.log_tail(40));
            let names = topics_with_prefix(&broker.bootstrap(), &format!("{out_prefix}."));
            if !names.contains(&format!("{out_prefix}.{s}.marker")) {
                return None;
            }
            let records = consume(
                &broker.bootstrap(),
                std::slice::from_ref(&toasty_topic),
                1,
                Duration::from_secs(2),
            );
            let last = |id: i64| {
                records
                    .iter()
                    .rev()
                    .find(|r| r.key.as_deref() == Some(format!("{{\"id\":{id}}}").as_bytes()))
                    .and_then(|r| r.value.as_deref())
                    .and_then(|v| serde_json::from_slice::<Json>(v).ok())
            };
            Some((last(901)?, last(911)?))
        },
    );
    for (id, got) in [(901, &values.0), (911, &values.1)] {
        let want = want(id);
        assert_eq!(
            got["big"], want["big"],
            "topic: key {id} keeps its TOASTed value"
        );
        assert_eq!(got["small"], want["small"], "topic: key {id}");
    }

    // Iceberg: the rows of the new keys, read by chdb.
    let tables = lake_settled(&bed, &catalog, &mut lake);
    let table = tables
        .iter()
        .find(|t| t.name == format!("{s}.toasty"))
        .expect("the toasty table");
    let rows = chdb_rows(&bed, table);
    for id in [901, 911] {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("Iceberg has no row {id}: {rows:?}"));
        assert_eq!(
            row["big"],
            want(id)["big"],
            "Iceberg: key {id} keeps its TOASTed value"
        );
        assert_eq!(row["small"], want(id)["small"], "Iceberg: key {id}");
    }
    assert!(
        !rows.iter().any(|r| r["id"] == 900 || r["id"] == 910),
        "the old keys are deleted"
    );

    // At-least-once: key 901 is deleted, then its TOAST-unchanged update and its delete (and
    // tombstone) reach the source topic again, as a restarted connector re-sends them.
    let source_topic = format!("{prefix}.{s}.toasty");
    let of_901 = |records: Vec<decant_tests::Input>| -> Vec<decant_tests::Input> {
        records
            .into_iter()
            .filter(|r| {
                r.key.as_deref().is_some_and(|k| {
                    serde_json::from_slice::<Json>(k)
                        .is_ok_and(|k| k["payload"]["id"] == 901 || k["id"] == 901)
                })
            })
            .collect()
    };
    let before = of_901(consume(
        &broker.bootstrap(),
        std::slice::from_ref(&source_topic),
        1,
        Duration::from_secs(2),
    ));
    let op = |r: &decant_tests::Input| -> String {
        r.value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<Json>(v).ok())
            .and_then(|v| {
                let p = if v.get("payload").is_some() {
                    &v["payload"]
                } else {
                    &v
                };
                p["op"].as_str().map(str::to_owned)
            })
            .unwrap_or_else(|| "tombstone".into())
    };
    let update = before
        .iter()
        .rfind(|r| op(r) == "u")
        .cloned()
        .expect("Debezium's update of key 901");
    assert!(
        String::from_utf8_lossy(update.value.as_deref().unwrap_or_default())
            .contains("__debezium_unavailable_value"),
        "the update of 901 leaves its TOASTed value out"
    );
    bed.psql(
        &format!(
            "DELETE FROM \"{s}\".toasty WHERE id = 901;\n\
             INSERT INTO \"{s}\".marker VALUES (2, 'deleted');"
        ),
        &[],
    );
    let marker_topic = format!("{out_prefix}.{s}.marker");
    let markers_out = |n: usize| {
        consume(
            &broker.bootstrap(),
            std::slice::from_ref(&marker_topic),
            n,
            Duration::from_secs(1),
        )
        .len()
            >= n
    };
    let lake_markers = |n: usize| {
        let tables = decant_tests::lake::lake_tables(&bed, &catalog);
        tables
            .iter()
            .find(|t| t.name.ends_with(".marker"))
            .is_some_and(|t| chdb_rows(&bed, t).len() >= n)
    };
    // Both sinks have written marker row `n` (and so everything before it).
    let mut both_reach_marker = |n: usize, what: &str| {
        wait_for(Duration::from_secs(120), what, || {
            assert!(topics.is_running(), "{}", topics.log_tail(40));
            assert!(lake.is_running(), "{}", lake.log_tail(40));
            (markers_out(n) && lake_markers(n)).then_some(())
        })
    };
    both_reach_marker(2, "the delete of 901 in both sinks");
    let deleted: Vec<decant_tests::Input> = of_901(consume(
        &broker.bootstrap(),
        std::slice::from_ref(&source_topic),
        before.len() + 1,
        Duration::from_secs(2),
    ))
    .into_iter()
    .skip(before.len())
    .collect();
    assert_eq!(
        deleted.iter().map(op).collect::<Vec<_>>(),
        ["d", "tombstone"],
        "Debezium's delete of 901"
    );
    let mut resent = vec![update];
    resent.extend(deleted);
    produce_again(&broker.bootstrap(), &resent);
    // A change of the same table after the re-send must flow (a quarantine would hold it).
    bed.psql(
        &format!(
            "UPDATE \"{s}\".toasty SET small = 77 WHERE id = 911;\n\
             INSERT INTO \"{s}\".marker VALUES (3, 'after the re-send');"
        ),
        &[],
    );
    both_reach_marker(3, "the re-sent changes in both sinks");
    let records = consume(
        &broker.bootstrap(),
        std::slice::from_ref(&toasty_topic),
        1,
        Duration::from_secs(2),
    );
    let last_901 = records
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(b"{\"id\":901}".as_slice()))
        .expect("key 901 in the upsert topic");
    assert_eq!(last_901.value, None, "topic: 901 ends deleted (tombstone)");
    let last_911: Json = records
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(b"{\"id\":911}".as_slice()))
        .and_then(|r| serde_json::from_slice(r.value.as_deref()?).ok())
        .expect("key 911 in the upsert topic");
    assert_eq!(
        (&last_911["small"], &last_911["big"]),
        (&Json::from(77), &want(911)["big"]),
        "topic: the table kept flowing after the re-send"
    );
    let tables = lake_settled(&bed, &catalog, &mut lake);
    let table = tables
        .iter()
        .find(|t| t.name == format!("{s}.toasty"))
        .expect("the toasty table");
    let rows = chdb_rows(&bed, table);
    assert!(
        !rows.iter().any(|r| r["id"] == 901),
        "Iceberg: 901 stays deleted"
    );
    let row_911 = rows
        .iter()
        .find(|r| r["id"] == 911)
        .expect("Iceberg has row 911");
    assert_eq!(
        (&row_911["small"], &row_911["big"]),
        (&Json::from(77), &want(911)["big"]),
        "Iceberg: the table kept flowing after the re-send"
    );

    for (port, what) in [(topics_port, "topics"), (lake_port, "iceberg")] {
        assert_eq!(
            metric(
                port,
                &format!(
                    "decant_skipped_records_total{{reason=\"resent_before_delete\",table=\"{s}.toasty\"}}"
                )
            ),
            Some(1.0),
            "{what}: the re-sent update is skipped as older than the key's delete"
        );
        assert_eq!(
            metric(port, "decant_quarantined_partitions"),
            Some(0.0),
            "{what}: nothing quarantined"
        );
        let misses = http_get(port, "/metrics")
            .map(|(_, m)| {
                m.lines()
                    .filter(|l| l.starts_with("decant_toast_misses_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .unwrap_or(-1.0);
        assert_eq!(misses, 0.0, "{what}: no TOAST miss counted");
        assert!(
            metric(port, "decant_toast_fills_total").is_some_and(|v| v >= 2.0),
            "{what}: the new keys were filled from the old keys' values"
        );
    }
    for d in [topics, lake] {
        let status = d.terminate(Duration::from_secs(60));
        assert!(status.success(), "decant exit status {status}");
    }
    dbz.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("toast_key_change: {:.1} s", started.elapsed().as_secs_f64());
}
