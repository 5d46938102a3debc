//! `decant decode` on what users would feed it: the real source topics of a MariaDB capture
//! (Debezium's MariaDB connector on a Kafka Connect worker, JSON with schemas), dumped with
//! Debian's `kcat -C -J -e`, decoded by the `decant` binary, reduced to the last row per key —
//! equal to what `decant run` wrote to its upsert topics from the same topics, and to MariaDB's
//! own state.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use decant_tests::bed::{
    DecantProcess, decant_bin, http_get, random_name, read_output_settled, run_ok,
    topics_with_prefix, wait_for, write_decant_config,
};
use decant_tests::mysql::{MysqlCapture, mysql_value_matches};
use decant_tests::{Run, assert_state_by};
use serde_json::Value as Json;

/// The last row per (table, key): upserts replace, deletes remove.
fn reduce(run: &Run) -> BTreeMap<(String, String), Json> {
    let mut state = BTreeMap::new();
    for c in &run.changes {
        let key = (
            c["table"].as_str().unwrap_or_default().to_owned(),
            c["key"].to_string(),
        );
        match c["op"].as_str() {
            Some("upsert") => {
                assert_eq!(
                    c["unchanged"],
                    serde_json::json!([]),
                    "MySQL sends whole rows"
                );
                state.insert(key, c["row"].clone());
            }
            Some("delete") => {
                state.remove(&key);
            }
            _ => {}
        }
    }
    state
}

#[test]
fn kcat_dump_of_mariadb_topics_decodes_to_decant_runs_state() {
    let started = Instant::now();
    let cap = MysqlCapture::start();
    let bootstrap = cap.broker.bootstrap();
    let work = std::env::temp_dir().join(random_name("decant-kcat"));
    let out_prefix = random_name("out");
    let (config, port) = write_decant_config(&work, &bootstrap, &cap.prefix, &out_prefix, "");
    let mut decant = DecantProcess::start(&config, &work.join("decant.log"), &[]);
    wait_for(Duration::from_secs(60), "decant /ready", || {
        http_get(port, "/ready").filter(|(s, _)| *s == 200)
    });
    cap.db.sql_files(&["mysql_workload_stream.sql"]);
    cap.db.sql("insert into marker values (1, 'end')");
    let expected = cap.bed.mysql_state(&cap.db.name);
    let (_, run_output) = read_output_settled(&bootstrap, &out_prefix, &mut decant);
    cap.connect.check_alive(&cap.connector);

    // kcat: every source topic from the beginning to its end, as JSON envelopes (-J), one topic
    // at a time (-C reads one topic); the order across topics does not matter per table.
    let topics = topics_with_prefix(&bootstrap, &format!("{}.", cap.prefix));
    assert_eq!(topics.len(), 3, "one topic per table: {topics:?}");
    let mut dump = String::new();
    for topic in &topics {
        let out = run_ok(
            Command::new(cap.bed.get("DECANT_KCAT"))
                .args(["-C", "-J", "-e", "-q", "-o", "beginning", "-b", &bootstrap])
                .args(["-t", topic]),
            "kcat",
        );
        dump.push_str(&String::from_utf8(out).expect("kcat -J prints UTF-8"));
    }
    let dump_path = work.join("topics.jsonl");
    std::fs::write(&dump_path, &dump).expect("write the dump");
    let records = dump.lines().count();
    assert!(records > 20, "kcat dumped {records} records");

    let out = run_ok(
        Command::new(decant_bin()).arg("decode").arg(&dump_path),
        "decant decode",
    );
    let decoded = Run {
        changes: String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("decant decode prints JSON lines"))
            .collect(),
        errors: Vec::new(),
    };
    assert!(
        decoded.changes.iter().any(|c| c["op"] == "tombstone"),
        "Debezium's tombstones are in the dump and reported as such"
    );

    // The same final state as decant run's output, value for value, and as MariaDB's.
    let by_decode = reduce(&decoded);
    let by_run = reduce(&run_output);
    assert_eq!(
        by_decode.keys().collect::<Vec<_>>(),
        by_run.keys().collect::<Vec<_>>(),
        "the same (table, key)s"
    );
    for (key, row) in &by_decode {
        assert_eq!(row, &by_run[key], "{key:?}: decant decode vs decant run");
    }
    assert_state_by(
        "kcat → decant decode",
        &decoded,
        &expected,
        mysql_value_matches,
    );

    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "decant exit status {status}");
    cap.connect.delete(&cap.connector);
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "kcat_decode: {records} source records, {} changes, {:.1} s",
        decoded.changes.len(),
        started.elapsed().as_secs_f64()
    );
}
