//! `decant run` with `output.format = "avro"` on the live bed when the registry misbehaves
//! (PostgreSQL → Debezium → broker → decant → the bed's registry).
//!
//! - **Refusal:** the `<topic>-value` subject of one table is set to BACKWARD compatibility,
//!   and an `ALTER TABLE … ALTER COLUMN … TYPE integer` of a text column derives a value schema
//!   the registry refuses (HTTP 409). decant stops that table only — the other tables keep
//!   flowing, `/health` and `decant_stopped_tables` say which table and why, and the table's
//!   change is neither written, skipped nor dead-lettered. After the operator fixes the
//!   subject (compatibility NONE) and restarts decant, the held change is written with the new
//!   schema version and every table's live keys equal PostgreSQL's rows.
//! - **Outage:** the registry stops while a change needs a new schema; decant waits and says
//!   so, and writes the change exactly once when the registry is back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use decant_registry::{Compatibility, Version};
use decant_tests::Input;
use decant_tests::bed::{LiveSource, http_get, settle_markers, wait_for};
use decant_tests::registry::{Registry, RegistryOutputRun, start_writing};
use decant_tests::workload::metric;

/// The Avro record framed in `bytes` (`0x00 + id + datum`), read with the registry's schema.
fn read_avro(registry: &Registry, bytes: &[u8]) -> (u32, apache_avro::types::Value) {
    assert_eq!(bytes.first(), Some(&0), "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("schema id"));
    let schema = registry.client().schema_by_id(id).expect("schema by id");
    let schema = apache_avro::Schema::parse_str(&schema.text).expect("Avro schema");
    let mut rest = &bytes[5..];
    let value = apache_avro::from_avro_datum(&schema, &mut rest, None).expect("Avro datum");
    (id, value)
}

/// A record field's value, unions unwrapped.
fn field<'a>(record: &'a apache_avro::types::Value, name: &str) -> &'a apache_avro::types::Value {
    use apache_avro::types::Value;
    let Value::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    let v = &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name} in {record:?}"))
        .1;
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// The live keys (last record per key not a tombstone) of each output table, as raw key bytes.
fn live_keys(records: &[Input]) -> BTreeMap<String, BTreeSet<Vec<u8>>> {
    let mut last: BTreeMap<(String, Vec<u8>), bool> = BTreeMap::new();
    for r in records {
        if let Some(k) = &r.key {
            let table = r.topic.rsplit('.').next().expect("topic").to_owned();
            last.insert((table, k.clone()), r.value.is_some());
        }
    }
    let mut out: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for ((table, key), live) in last {
        if live {
            out.entry(table).or_default().insert(key);
        }
    }
    out
}

#[test]
fn an_incompatible_schema_stops_only_its_table_until_fixed_and_restarted() {
    let started = Instant::now();
    let RegistryOutputRun {
        source:
            LiveSource {
                bed,
                broker,
                schema,
                dbz,
                ..
            },
        registry,
        out,
        work,
        config,
        log,
        port,
        mut decant,
    } = RegistryOutputRun::start("avro", "");
    let client = registry.client();
    let bootstrap = broker.bootstrap();
    let s = &schema.name;
    bed.psql(
        &format!("insert into \"{s}\".marker values (1, 'one')"),
        &[],
    );
    settle_markers(&bootstrap, &out, 1, &mut decant);
    let composite_value = format!("{out}.{s}.composite-value");
    assert_eq!(
        client.versions(&composite_value).expect("versions").len(),
        1
    );

    // The operator's compatibility rule, then a change the rule refuses: a string column
    // becomes an integer (an int reader cannot read the string records already written).
    client
        .set_compatibility(Some(&composite_value), Compatibility::Backward)
        .expect("BACKWARD on the subject");
    bed.psql(
        &format!(
            "alter table \"{s}\".composite alter column val type integer using length(val); \
             insert into \"{s}\".composite values (5, 'e', 55, 5.5); \
             insert into \"{s}\".marker values (2, 'two')"
        ),
        &[],
    );
    let held = settle_markers(&bootstrap, &out, 2, &mut decant);
    wait_for(Duration::from_secs(60), "decant_stopped_tables = 1", || {
        metric(port, "decant_stopped_tables").filter(|v| *v == 1.0)
    });
    assert!(decant.is_running(), "{}", decant.log_tail(60));
    let (status, health) = http_get(port, "/health").expect("/health");
    assert_eq!(status, 200, "alive: the other tables flow: {health}");
    let stopped_line = health
        .lines()
        .find(|l| l.starts_with("stopped until restart:"))
        .unwrap_or_else(|| panic!("/health names the stopped table: {health}"));
    assert!(
        stopped_line.contains(&format!("{s}.composite")) && stopped_line.contains("incompatible"),
        "{stopped_line}"
    );
    // Nothing of the refused shape was written, skipped into a dead letter, or registered.
    let composite_topic = format!("{out}.{s}.composite");
    let composite_rows = |records: &[Input]| -> Vec<apache_avro::types::Value> {
        records
            .iter()
            .filter(|r| r.topic == composite_topic)
            .filter_map(|r| r.value.as_deref())
            .map(|v| read_avro(&registry, v).1)
            .collect()
    };
    assert!(
        composite_rows(&held)
            .iter()
            .all(|row| *field(row, "k_int") != apache_avro::types::Value::Int(5)),
        "the refused change was written"
    );
    assert_eq!(
        client.versions(&composite_value).expect("versions").len(),
        1
    );
    assert_eq!(
        metric(port, "decant_dead_letter_records_total").unwrap_or(0.0),
        0.0,
        "no dead letters"
    );

    // The fix, then a restart: the held change is written with the new schema version.
    client
        .set_compatibility(Some(&composite_value), Compatibility::None)
        .expect("NONE on the subject");
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    let mut decant = start_writing(&config, &log, "avro", port);
    bed.psql(
        &format!("insert into \"{s}\".marker values (3, 'three')"),
        &[],
    );
    let records = settle_markers(&bootstrap, &out, 3, &mut decant);
    let versions = client.versions(&composite_value).expect("versions");
    assert_eq!(versions.len(), 2, "the new schema after the fix");
    let v2 = client
        .version(&composite_value, Version::Number(versions[1]))
        .expect("v2");
    let new_row = records
        .iter()
        .filter(|r| r.topic == composite_topic)
        .filter_map(|r| r.value.as_deref())
        .map(|v| read_avro(&registry, v))
        .find(|(_, row)| *field(row, "k_int") == apache_avro::types::Value::Int(5))
        .expect("the held change, written after the restart");
    assert_eq!(new_row.0, v2.id, "written with the new version");
    assert_eq!(
        *field(&new_row.1, "val"),
        apache_avro::types::Value::Int(55)
    );
    assert_eq!(metric(port, "decant_stopped_tables"), Some(0.0));

    // Every table's live keys equal PostgreSQL's row count (the composite's two new keys too).
    let keys = live_keys(&records);
    let expected = bed.pg_state(&schema.name);
    let mut rows_per_table: BTreeMap<String, usize> = BTreeMap::new();
    for row in &expected {
        let table = row["table"].as_str().expect("pg_state table");
        let table = table.rsplit('.').next().expect("table name").to_owned();
        *rows_per_table.entry(table).or_default() += 1;
    }
    for (table, rows) in &rows_per_table {
        assert_eq!(
            keys.get(table).map(BTreeSet::len).unwrap_or(0),
            *rows,
            "{table}: live keys in the output"
        );
    }

    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    dbz.stop();
    registry.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("refusal test: {:.1} s", started.elapsed().as_secs_f64());
}

/// The registry stops while decant writes Avro: a change that needs a new schema (a column
/// added upstream) cannot be registered, so decant waits — `decant_waiting{dependency=
/// "schema_registry"}`, `/ready` 503, `/health` alive and saying why — and writes, skips and
/// dead-letters nothing of it. When the registry is back the new version is registered and
/// every change is written exactly once, with the new column.
#[test]
fn a_registry_outage_while_writing_waits_and_loses_nothing() {
    let RegistryOutputRun {
        source:
            LiveSource {
                bed,
                broker,
                schema,
                dbz,
                ..
            },
        registry,
        out,
        work,
        port,
        mut decant,
        ..
    } = RegistryOutputRun::start("avro", "request_timeout_ms = 2000\nmax_retries = 1\n");
    let client = registry.client();
    let bootstrap = broker.bootstrap();
    let s = &schema.name;
    bed.psql(
        &format!("insert into \"{s}\".marker values (1, 'one')"),
        &[],
    );
    let before = settle_markers(&bootstrap, &out, 1, &mut decant);

    registry.stop();
    bed.psql(
        &format!(
            "alter table \"{s}\".composite add column added_col integer; \
             insert into \"{s}\".composite values (6, 'f', 'six-f', 6.5, 66)"
        ),
        &[],
    );
    wait_for(
        Duration::from_secs(90),
        "decant waits for the registry",
        || metric(port, "decant_waiting{dependency=\"schema_registry\"}").filter(|v| *v == 1.0),
    );
    let ready = http_get(port, "/ready").unwrap_or_default();
    assert!(ready.0 == 503 && ready.1.contains("waiting"), "{ready:?}");
    let health = http_get(port, "/health").unwrap_or_default();
    assert!(
        health.0 == 200 && health.1.contains("waiting") && health.1.contains("schema"),
        "/health stays alive and says why: {health:?}"
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(decant.is_running(), "{}", decant.log_tail(60));
    assert_eq!(metric(port, "decant_stopped_tables"), Some(0.0));
    assert_eq!(metric(port, "decant_quarantined_partitions"), Some(0.0));
    assert_eq!(
        metric(port, "decant_dead_letter_records_total").unwrap_or(0.0),
        0.0
    );

    registry.restart();
    bed.psql(
        &format!("insert into \"{s}\".marker values (2, 'two')"),
        &[],
    );
    let records = settle_markers(&bootstrap, &out, 2, &mut decant);
    assert!(records.len() > before.len());
    assert_eq!(
        metric(port, "decant_waiting{dependency=\"schema_registry\"}"),
        Some(0.0)
    );
    let composite_value = format!("{out}.{s}.composite-value");
    let versions = client.versions(&composite_value).expect("versions");
    assert_eq!(
        versions.len(),
        2,
        "the added column's version, after the outage"
    );
    let v2 = client
        .version(&composite_value, Version::Number(versions[1]))
        .expect("v2");
    let composite_topic = format!("{out}.{s}.composite");
    let new_rows: Vec<(u32, apache_avro::types::Value)> = records
        .iter()
        .filter(|r| r.topic == composite_topic)
        .filter_map(|r| r.value.as_deref())
        .map(|v| read_avro(&registry, v))
        .filter(|(_, row)| *field(row, "k_int") == apache_avro::types::Value::Int(6))
        .collect();
    assert_eq!(new_rows.len(), 1, "written exactly once");
    assert_eq!(new_rows[0].0, v2.id);
    assert_eq!(
        *field(&new_rows[0].1, "added_col"),
        apache_avro::types::Value::Int(66)
    );
    decant_tests::bed::assert_no_duplicate_sources(&records);

    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    dbz.stop();
    registry.stop();
    let _ = std::fs::remove_dir_all(&work);
}
