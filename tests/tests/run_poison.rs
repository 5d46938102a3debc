//! Poison pills: malformed records injected into one Debezium topic land in the dead-letter
//! topic with their original key/value bytes and provenance/error headers, while every other
//! table keeps flowing to PostgreSQL's final state. A table under `on_bad_record = "fail"` is
//! quarantined at its bad record without stopping the others.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, KeyValue, LiveSource, consume, header, http_get, produce, random_name,
    topics_with_prefix, upsert_changes, wait_for, write_decant_config,
};
use decant_tests::{PgMode, Run, assert_pg_state};

#[test]
fn poison_pills_are_dead_lettered_and_other_tables_keep_flowing() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start();
    let bootstrap = broker.bootstrap();
    let out_prefix = random_name("out");
    let dlq = random_name("dlq");

    let work = std::env::temp_dir().join(random_name("decant-poison"));
    let extra = format!(
        "[dead_letter]\ntopic = \"{dlq}\"\n\n[defaults]\non_bad_record = \"dead_letter\"\n\n\
         [tables.\"{}.typezoo_full\"]\non_bad_record = \"fail\"\n\n\
         [log]\nformat = \"json\"\nlevel = \"info,decant_pipeline=debug\"\n",
        schema.name
    );
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out_prefix, &extra);
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, &[]);
    let composite_out = format!("{out_prefix}.{}.composite", schema.name);
    let full_out = format!("{out_prefix}.{}.typezoo_full", schema.name);
    // The snapshot is through: the topics' tables (and so their policies) are known.
    wait_for(
        Duration::from_secs(120),
        "snapshot rows in the output",
        || {
            let t = topics_with_prefix(&bootstrap, &full_out);
            (!t.is_empty() && consume(&bootstrap, &t, 0, Duration::from_millis(500)).len() >= 2)
                .then_some(())
        },
    );

    // A real composite record with a corrupted decimal, a truncated JSON document, a framed
    // record with an unknown schema id; and one bad record for the quarantined table.
    let composite_src = format!("{prefix}.{}.composite", schema.name);
    let full_src = format!("{prefix}.{}.typezoo_full", schema.name);
    let real = consume(
        &bootstrap,
        std::slice::from_ref(&composite_src),
        1,
        Duration::ZERO,
    );
    let real_value = String::from_utf8(real[0].value.clone().expect("value")).expect("utf8");
    let qty_at = real_value
        .rfind("\"qty\":")
        .expect("qty in the after image");
    let end = real_value[qty_at + 6..]
        .find([',', '}'])
        .map(|e| qty_at + 6 + e)
        .expect("end of qty");
    let bad_field = format!(
        "{}\"qty\":\"!!not base64!!\"{}",
        &real_value[..qty_at],
        &real_value[end..]
    );
    let key = real[0].key.clone().expect("key");
    let pills: Vec<KeyValue<'_>> = vec![
        (Some(key.as_slice()), Some(bad_field.as_bytes())),
        (
            Some(b"{\"k\":1}".as_slice()),
            Some(b"{\"payload\": {\"op\": \"c\", ".as_slice()),
        ),
        (None, Some(b"\x00\x00\x00\x00\x07\x02hello".as_slice())),
    ];
    produce(&bootstrap, &composite_src, &pills);
    produce(
        &bootstrap,
        &full_src,
        &[(None, Some(b"not json at all".as_slice()))],
    );

    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);

    let mut last_len = usize::MAX;
    let t0 = Instant::now();
    let records = loop {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            decant.is_running(),
            "decant exited:\n{}",
            decant.log_tail(60)
        );
        let topics = topics_with_prefix(&bootstrap, &format!("{out_prefix}."));
        let records = consume(&bootstrap, &topics, 0, Duration::from_secs(2));
        let marker = records.iter().any(|r| r.topic.ends_with(".marker"));
        if marker && records.len() == last_len {
            break records;
        }
        last_len = records.len();
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "no settle:\n{}",
            decant.log_tail(60)
        );
    };

    // A rebalance (a new topic joins the subscription) aborts the open transaction; the broker
    // hides what it wrote from read_committed readers, so `records` is what committed.
    let run = upsert_changes(&out_prefix, &records);

    // Every table but the quarantined one equals PostgreSQL.
    let quarantined = format!("{}.typezoo_full", schema.name);
    let others = Run {
        changes: run
            .changes
            .iter()
            .filter(|c| c["table"] != quarantined.as_str())
            .cloned()
            .collect(),
        errors: Vec::new(),
    };
    let expected_others: Vec<_> = expected
        .iter()
        .filter(|e| e["table"] != quarantined.as_str())
        .cloned()
        .collect();
    assert_pg_state(
        "tables next to the poison",
        &others,
        &expected_others,
        PgMode::Exact,
    );
    // The quarantined table stopped at its bad record: only its two snapshot rows came out.
    let full_records = records.iter().filter(|r| r.topic == full_out).count();
    assert_eq!(full_records, 2, "typezoo_full stops at its poison pill");

    // The dead-letter topic has the three composite pills, byte for byte, with headers.
    let dead = consume(
        &bootstrap,
        std::slice::from_ref(&dlq),
        3,
        Duration::from_secs(2),
    );
    assert_eq!(dead.len(), 3, "three dead letters");
    let src_records = consume(
        &bootstrap,
        std::slice::from_ref(&composite_src),
        0,
        Duration::from_secs(1),
    );
    for (d, (k, v)) in dead.iter().zip(&pills) {
        assert_eq!(d.key.as_deref(), *k);
        assert_eq!(d.value.as_deref(), *v);
        assert_eq!(
            header(d, "decant.source.topic"),
            Some(composite_src.as_str())
        );
        assert_eq!(header(d, "decant.source.partition"), Some("0"));
        let offset: i64 = header(d, "decant.source.offset")
            .and_then(|o| o.parse().ok())
            .expect("offset header");
        let original = src_records
            .iter()
            .find(|r| r.offset == offset)
            .expect("source record at that offset");
        assert_eq!(
            original.value.as_deref(),
            *v,
            "offset header points at the original"
        );
        assert!(header(d, "decant.error.class").is_some());
        assert!(header(d, "decant.error.message").is_some());
    }
    assert_eq!(header(&dead[0], "decant.error.class"), Some("field"));
    assert_eq!(header(&dead[0], "decant.error.field"), Some("after.qty"));
    assert_eq!(header(&dead[1], "decant.error.class"), Some("syntax"));
    assert_eq!(
        header(&dead[0], "decant.table"),
        Some(format!("{}.composite", schema.name).as_str())
    );
    let composite_rows = records.iter().filter(|r| r.topic == composite_out).count();
    assert!(composite_rows > 0);

    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("decant_quarantined_partitions 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("decant_dead_letter_records_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("decant_decode_errors_total{kind=\"field\"} 1"),
        "{metrics}"
    );
    assert_eq!(http_get(port, "/health").map(|x| x.0), Some(200));
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    dbz.stop();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("run_poison: {:.1} s", started.elapsed().as_secs_f64());
}
