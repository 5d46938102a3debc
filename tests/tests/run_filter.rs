//! The `where` row filter of `decant run`, live: hand-made Debezium records (schemaless, declared
//! table) go through the broker and the real binary. Non-matching rows never reach the upsert
//! topic, a row that stops matching is tombstoned, deletes always pass, and decimals compare
//! exactly.

use std::time::Duration;

use decant_tests::bed::{
    Broker, DecantProcess, KeyValue, consume, produce, random_name, topics_with_prefix,
    upsert_changes, write_decant_config,
};
use decant_tests::{final_state, key_text};
use serde_json::json;

fn change(op: &str, id: i64, status: &str, total: &str) -> String {
    let row = json!({"id": id, "status": status, "total": total});
    let (before, after) = if op == "d" {
        (row, json!(null))
    } else {
        (json!(null), row)
    };
    json!({"before": before, "after": after, "source": {"db": "shop", "schema": "public", "table": "orders"}, "op": op})
        .to_string()
}

#[test]
fn where_filter_keeps_exactly_the_matching_rows() {
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    let out = random_name("out");
    let topic = format!("{prefix}.public.orders");
    // The source topic exists before decant subscribes: a consumer never creates topics.
    produce(
        &bootstrap,
        &topic,
        &[(
            Some(br#"{"id":0}"#),
            Some(change("c", 0, "new", "1.00").as_bytes()),
        )],
    );
    let work = std::env::temp_dir().join(random_name("decant-filter"));
    let extra = r#"[decode.tables."public.orders"]
key = ["id"]
columns = [ { name = "id", type = "int64" }, { name = "status", type = "string" },
            { name = "total", type = "decimal_string(10,2)" } ]

[tables."public.orders"]
where = [{ column = "status", op = "ne", value = "cancelled" }, { column = "total", op = "gt", value = "100.1" }]
"#;
    let (config, _port) = write_decant_config(&work, &bootstrap, &prefix, &out, extra);
    let log = work.join("decant.log");
    let decant = DecantProcess::start(&config, &log, &[]);
    let records = [
        change("c", 1, "new", "100.10"), // not > 100.1 exactly: filtered
        change("c", 2, "new", "100.11"), // passes
        change("c", 3, "cancelled", "500.00"), // filtered
        change("c", 4, "new", "250.00"), // passes ...
        change("u", 4, "cancelled", "250.00"), // ... then stops matching: tombstoned
        change("c", 5, "new", "300.00"), // passes ...
        change("d", 5, "new", "300.00"), // ... then deleted: deletes always pass
        change("u", 2, "paid", "100.11"), // still matches: updated
    ];
    let keys: Vec<String> = [1, 2, 3, 4, 4, 5, 5, 2]
        .iter()
        .map(|id| format!(r#"{{"id":{id}}}"#))
        .collect();
    let batch: Vec<KeyValue<'_>> = keys
        .iter()
        .zip(&records)
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    produce(&bootstrap, &topic, &batch);
    let out_topic = format!("{out}.public.orders");
    // Upserts of 2 (twice), 4 and 5, the tombstone of 4 and the delete of 5: six records.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let output = loop {
        let t = topics_with_prefix(&bootstrap, &out_topic);
        let recs = if t.is_empty() {
            vec![]
        } else {
            consume(&bootstrap, &t, 0, Duration::from_secs(1))
        };
        if recs.len() >= 6 || std::time::Instant::now() > deadline {
            break recs;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let run = upsert_changes(&out, &output);
    let state = final_state(&run.changes, key_text);
    let rows: Vec<_> = state.values().cloned().collect();
    assert_eq!(
        rows,
        vec![
            json!({"id": 2, "status": "paid", "total": "100.11"})
                .as_object()
                .cloned()
                .expect("object")
        ],
        "only the matching row remains: {:?} (log: {})",
        run.changes,
        decant.log_tail(20)
    );
    assert!(
        !output
            .iter()
            .any(|r| r.key.as_deref() == Some(br#"{"id":1}"#.as_slice()) && r.value.is_some()),
        "100.10 is not greater than 100.1"
    );
    assert!(
        !output
            .iter()
            .any(|r| r.key.as_deref() == Some(br#"{"id":3}"#.as_slice())),
        "a cancelled row never seen matching is not written at all"
    );
    let status = decant.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean shutdown: {status}");
}
