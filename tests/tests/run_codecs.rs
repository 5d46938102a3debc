//! Source topics written with every Kafka codec decode in `decant run`, and the output codec is
//! `kafka.producer."compression.type"`: the captured Debezium fixture
//! (`tests/fixtures/pg/default`) is produced by an rdkafka producer with `compression.type` =
//! gzip, snappy, lz4 and zstd; decant writes its upsert topics with the same codec; the output,
//! read back, equals PostgreSQL's state, and the broker's log segment files show the codec on
//! both sides.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    Broker, DecantProcess, consume, http_get, produce_inputs, random_name, topics_with_prefix,
    upsert_changes, wait_for, write_decant_config,
};
use decant_tests::{Input, PgMode, assert_pg_state, fixtures_dir};
use serde_json::Value as Json;

#[test]
fn gzip_snappy_lz4_and_zstd_in_and_out() {
    let dir = fixtures_dir().join("pg").join("default");
    let inputs: Vec<Input> = std::fs::read_to_string(dir.join("messages.jsonl"))
        .expect("messages.jsonl")
        .lines()
        .map(Input::from_kcat)
        .collect();
    let expected: Vec<Json> = std::fs::read_to_string(dir.join("expected-state.jsonl"))
        .expect("expected-state.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let work = std::env::temp_dir().join(random_name("decant-codecs"));
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let src = random_name(&format!("src_{codec}"));
        let out = random_name(&format!("out_{codec}"));
        // decant.bed.<table> → <src>.bed.<table>
        produce_inputs(&bootstrap, &inputs, codec, |t| {
            format!("{src}{}", t.strip_prefix("decant").unwrap_or(t))
        });
        let (config, port) = write_decant_config(
            &work.join(codec),
            &bootstrap,
            &src,
            &out,
            &format!("[kafka.producer]\n\"compression.type\" = \"{codec}\"\n"),
        );
        let log = work.join(format!("{codec}.log"));
        let mut decant = DecantProcess::start(&config, &log, &[]);
        wait_for(Duration::from_secs(60), "decant /ready", || {
            http_get(port, "/ready").filter(|(s, _)| *s == 200)
        });
        // Read until the marker row is out and two reads 2 s apart agree.
        let start = Instant::now();
        let mut last_len = usize::MAX;
        let (records, run) = loop {
            let topics = topics_with_prefix(&bootstrap, &format!("{out}."));
            let records = consume(&bootstrap, &topics, 0, Duration::from_secs(2));
            if records.iter().any(|r| r.topic.ends_with(".marker")) && records.len() == last_len {
                let run = upsert_changes(&out, &records);
                break (records, run);
            }
            last_len = records.len();
            assert!(
                decant.is_running(),
                "decant exited:\n{}",
                decant.log_tail(40)
            );
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{codec}: no marker in the output; log:\n{}",
                decant.log_tail(40)
            );
            std::thread::sleep(Duration::from_secs(2));
        };
        assert_pg_state(codec, &run, &expected, PgMode::Exact);
        let status = decant.terminate(Duration::from_secs(60));
        assert!(status.success(), "{codec}: exit {status}");
        for topic in [
            format!("{src}.bed.typezoo"),
            records
                .iter()
                .find(|r| r.topic.ends_with(".typezoo"))
                .map(|r| r.topic.clone())
                .expect("typezoo output"),
        ] {
            // (librdkafka sends a batch uncompressed when compressing would grow it.)
            let stored = broker.stored_codecs(&topic);
            assert!(
                stored.contains(codec),
                "{topic}: batches stored as {stored:?}"
            );
        }
        eprintln!("run_codecs: {codec} ok");
    }
    let _ = std::fs::remove_dir_all(&work);
}
