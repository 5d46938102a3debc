//! `decant run` on Schema-Registry-framed Avro (a real AvroConverter capture of the bed's
//! PostgreSQL workload, `tests/fixtures/registry/avro`), with the schemas served by the bed's
//! registry (`[schema_registry]`). The registry is down when decant starts: decant waits and
//! says so (`decant_waiting`, `/ready`, `/health`), decodes nothing, skips and quarantines
//! nothing; once the registry is back, the output equals PostgreSQL's final state. The same
//! holds for an outage in the middle of a run, when decant meets schema ids it has not fetched
//! yet. JSON_SR records (typed by their registered JSON Schema) reach the same state; Protobuf
//! records reach the state their capture decodes to.

use std::time::{Duration, Instant};

use decant_decode::{Decoder, DecoderConfig};
use decant_tests::bed::{
    Broker, DecantProcess, consume, http_get, random_name, topics_with_prefix, upsert_changes,
    write_decant_config,
};
use decant_tests::registry::{
    framed_capture, load_messages, load_schemas, produce_capture as produce, registry_fixture_dir,
    static_resolver,
};
use decant_tests::workload::metric;
use decant_tests::{Input, PgMode, assert_pg_state, decode_all, final_state};
use serde_json::Value as Json;

/// The output's changes once its final state has at least `rows` rows (or after two minutes).
fn output_with_rows(bootstrap: &str, out: &str, rows: usize) -> decant_tests::Run {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let topics = topics_with_prefix(bootstrap, out);
        let records = if topics.is_empty() {
            Vec::new()
        } else {
            consume(bootstrap, &topics, 0, Duration::from_secs(2))
        };
        let run = upsert_changes(out, &records);
        if live_rows(&run) >= rows || Instant::now() > deadline {
            return run;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Live rows of every table in the output's changes.
fn live_rows(run: &decant_tests::Run) -> usize {
    decant_tests::final_state(&run.changes, |c| format!("{}\0{}", c["table"], c["key"])).len()
}

/// Decant says it waits for the registry (metric, `/ready`, `/health`) and treats nothing as a
/// bad record meanwhile.
fn assert_waits_for_the_registry(port: u16, decant: &DecantProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(port, "decant_waiting{dependency=\"schema_registry\"}") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "decant never said it waits for the registry; log:\n{}",
            decant.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ready = http_get(port, "/ready").unwrap_or_default();
    assert!(
        ready.0 == 503 && ready.1.contains("waiting"),
        "/ready says why: {ready:?}"
    );
    let health = http_get(port, "/health").unwrap_or_default();
    assert!(
        health.0 == 200 && health.1.contains("schema registry"),
        "/health stays alive and says why: {health:?}"
    );
    assert_eq!(metric(port, "decant_quarantined_partitions"), Some(0.0));
    assert!(
        metric(port, "decant_decode_errors_total").is_none(),
        "an outage is not a bad record"
    );
}

/// After the registry came back: equal to PostgreSQL, retried, nothing dead-lettered.
fn assert_caught_up(label: &str, port: u16, run: &decant_tests::Run, expected: &[Json]) {
    assert_pg_state(label, run, expected, PgMode::Exact);
    assert_eq!(
        metric(port, "decant_waiting{dependency=\"schema_registry\"}"),
        Some(0.0)
    );
    assert!(
        metric(
            port,
            "decant_dependency_retries_total{dependency=\"schema_registry\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(
        metric(port, "decant_dead_letter_records_total").is_none(),
        "nothing dead-lettered"
    );
    assert!(
        metric(port, "decant_skipped_records_total").is_none(),
        "nothing skipped"
    );
}

#[test]
fn avro_through_the_registry_waits_out_an_outage_and_equals_postgres() {
    let (registry, framed, expected) = framed_capture("avro");
    // The outage: the registry is down before decant has fetched a single schema.
    registry.stop();

    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    let out = random_name("out");
    produce(&bootstrap, &prefix, &framed);
    let work = std::env::temp_dir().join(random_name("decant-registry-run"));
    let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
    let log = work.join("decant.log");
    let decant = DecantProcess::start(&config, &log, &[]);

    assert_waits_for_the_registry(port, &decant);
    assert!(
        topics_with_prefix(&bootstrap, &out).is_empty()
            || consume(
                &bootstrap,
                &topics_with_prefix(&bootstrap, &out),
                0,
                Duration::from_secs(1)
            )
            .is_empty(),
        "nothing is written while the schemas are unknown"
    );

    // The registry comes back (same directory: same ids); decant catches up.
    registry.restart();
    let run = output_with_rows(&bootstrap, &out, expected.len());
    assert_caught_up("registry avro run", port, &run, &expected);
    let status = decant.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean shutdown: {status}");
}

#[test]
fn a_registry_outage_mid_run_stalls_new_schemas_and_loses_nothing() {
    let (registry, framed, expected) = framed_capture("avro");
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    let out = random_name("out");
    // Before the outage decant has fetched the schemas of two tables; the other tables' records
    // (and so their schema ids) arrive while the registry is down.
    let before = |i: &Input| i.topic.ends_with(".composite") || i.topic.ends_with(".toasty");
    let (early, late): (Vec<Input>, Vec<Input>) = framed.iter().cloned().partition(before);
    assert!(
        !early.is_empty() && !late.is_empty(),
        "both halves hold records"
    );
    let early_rows = expected
        .iter()
        .filter(|e| {
            let t = e["table"].as_str().unwrap_or_default();
            t.ends_with(".composite") || t.ends_with(".toasty")
        })
        .count();
    produce(&bootstrap, &prefix, &early);
    let work = std::env::temp_dir().join(random_name("decant-registry-midrun"));
    let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
    let log = work.join("decant.log");
    let decant = DecantProcess::start(&config, &log, &[]);
    let first = output_with_rows(&bootstrap, &out, early_rows);
    assert_eq!(
        live_rows(&first),
        early_rows,
        "the first tables are through before the outage"
    );

    registry.stop();
    produce(&bootstrap, &prefix, &late);
    assert_waits_for_the_registry(port, &decant);

    registry.restart();
    let run = output_with_rows(&bootstrap, &out, expected.len());
    assert_caught_up("registry outage mid-run", port, &run, &expected);
    let status = decant.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean shutdown: {status}");
}

#[test]
fn json_sr_typed_by_the_registry_equals_postgres() {
    let (registry, framed, expected) = framed_capture("json_sr");
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    let out = random_name("out");
    produce(&bootstrap, &prefix, &framed);
    let work = std::env::temp_dir().join(random_name("decant-registry-jsonsr"));
    let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
    let log = work.join("decant.log");
    let decant = DecantProcess::start(&config, &log, &[]);
    let run = output_with_rows(&bootstrap, &out, expected.len());
    assert_pg_state("registry json_sr run", &run, &expected, PgMode::Exact);
    assert!(
        metric(port, "decant_decode_errors_total").is_none(),
        "every JSON_SR record decodes: {}",
        decant.log_tail(20)
    );
    let status = decant.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean shutdown: {status}");
}

#[test]
fn protobuf_through_the_registry_equals_the_decoded_capture() {
    // What the Protobuf capture decodes to is pinned against PostgreSQL by `registry_decode`
    // (Connect's Protobuf converter drops some of Debezium's semantics); here `decant run`,
    // fetching the schemas from the bed's registry, must reach exactly that state.
    let dir = registry_fixture_dir("protobuf");
    let mut decoder = Decoder::new(DecoderConfig::default())
        .expect("config")
        .with_resolver(Box::new(static_resolver(&load_schemas(
            &dir.join("schemas.jsonl"),
        ))));
    let decoded = decode_all(&mut decoder, &load_messages(&dir.join("messages.jsonl")));
    let by_key = |c: &Json| format!("{}\0{}", c["table"], c["key"]);
    let want = final_state(&decoded.changes, by_key);
    assert!(
        want.len() >= 10,
        "the capture's final state: {}",
        want.len()
    );

    let (registry, framed, _) = framed_capture("protobuf");
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    let out = random_name("out");
    produce(&bootstrap, &prefix, &framed);
    let work = std::env::temp_dir().join(random_name("decant-registry-protobuf"));
    let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
    let decant = DecantProcess::start(&config, &work.join("decant.log"), &[]);
    let run = output_with_rows(&bootstrap, &out, want.len());
    let got = final_state(&run.changes, by_key);
    assert_eq!(
        got,
        want,
        "decant run's state equals the decoded capture's; log:\n{}",
        decant.log_tail(20)
    );
    assert!(
        metric(port, "decant_decode_errors_total").is_none(),
        "every Protobuf record decodes"
    );
    let status = decant.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean shutdown: {status}");
}
