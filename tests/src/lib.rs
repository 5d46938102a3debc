//! Helpers shared by decant's integration tests.
//!
//! - corpus and fixture locations ([`corpus_dir`], [`fixtures_dir`]);
//! - feeding records to a [`Decoder`] and reading back the canonical JSON ([`decode_all`]);
//! - reducing a change stream to a final table state ([`final_state`]) and comparing values the
//!   way the sources wrote them ([`values_match`]);
//! - comparing decoded changes with PostgreSQL's own rendering ([`assert_pg_state`]);
//! - the live test bed: broker, PostgreSQL, Debezium, read_committed consumer ([`bed`]);
//! - a Kafka Connect worker with Debezium's connectors, driven through its REST API ([`connect`]);
//! - the bed's MariaDB: databases, MariaDB's own state, a live capture ([`mysql`]);
//! - the bed's Schema Registry and the registry fixtures ([`registry`]).

pub mod avro_json;
pub mod bed;
pub mod connect;
pub mod lake;
pub mod mysql;
pub mod registry;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;

use decant_decode::render::render_in_order;
use decant_decode::{Decoder, Outcome};
use decant_model::{Header, KafkaRecord};
use serde_json::Value as Json;

/// `../shared/corpus` beside the repository (override with `DECANT_CORPUS`).
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("DECANT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// Captured fixtures kept in the repository.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The lines of a corpus file that are JSON documents (license comment lines are skipped).
pub fn json_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .collect()
}

/// An owned input record.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Input {
    pub fn value(topic: &str, offset: i64, value: &[u8]) -> Self {
        Input {
            topic: topic.into(),
            offset,
            value: Some(value.to_vec()),
            ..Default::default()
        }
    }

    /// A kcat `-J` line (`key`/`payload` text, or `key_b64`/`payload_b64`).
    pub fn from_kcat(line: &str) -> Self {
        use base64::Engine as _;
        let v: Json = serde_json::from_str(line).unwrap_or(Json::Null);
        let bytes = |text: &str, b64: &str| -> Option<Vec<u8>> {
            if let Some(s) = v.get(b64).and_then(Json::as_str) {
                return base64::engine::general_purpose::STANDARD.decode(s).ok();
            }
            v.get(text)
                .and_then(Json::as_str)
                .map(|s| s.as_bytes().to_vec())
        };
        let headers = v
            .get("headers")
            .and_then(Json::as_array)
            .map(|h| {
                h.chunks(2)
                    .filter_map(|p| match p {
                        [k, val] => Some((
                            k.as_str().unwrap_or_default().to_owned(),
                            val.as_str().map(|s| s.as_bytes().to_vec()),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Input {
            topic: v["topic"].as_str().unwrap_or("unknown").to_owned(),
            partition: v["partition"].as_i64().unwrap_or(0) as i32,
            offset: v["offset"].as_i64().unwrap_or(0),
            headers,
            key: bytes("key", "key_b64"),
            value: bytes("payload", "payload_b64"),
        }
    }
}

/// What a decoder made of a sequence of records.
#[derive(Debug, Default)]
pub struct Run {
    /// Canonical JSON of every change and control record, in input order.
    pub changes: Vec<Json>,
    /// Errors, rendered, with the input index they happened at.
    pub errors: Vec<(usize, String)>,
}

impl Run {
    pub fn rows(&self) -> impl Iterator<Item = &Json> {
        self.changes
            .iter()
            .filter(|c| matches!(c["op"].as_str(), Some("upsert" | "delete")))
    }
}

/// Decodes every record, continuing past errors, and renders the result.
pub fn decode_all(decoder: &mut Decoder, inputs: &[Input]) -> Run {
    let mut run = Run::default();
    let mut controls = Vec::new();
    for (i, r) in inputs.iter().enumerate() {
        let headers: Vec<Header> = r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        let rec = KafkaRecord {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: None,
            headers: &headers,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
        };
        match decoder.decode(&rec) {
            Ok(Outcome::Control(c)) => controls.push(*c),
            Ok(Outcome::Row { .. }) => {}
            Err(e) => run.errors.push((i, e.to_string())),
        }
    }
    let batches = decoder.take_batches().expect("batches build");
    let mut text = String::new();
    render_in_order(&batches, &controls, &mut text);
    for line in text.lines() {
        run.changes
            .push(serde_json::from_str(line).expect("rendered output is JSON"));
    }
    run
}

/// Applies upserts (filling TOAST-unchanged columns from the previous row image) and deletes,
/// keyed by `key_of(change)`. Returns rows ordered by key text.
pub fn final_state(
    changes: &[Json],
    key_of: impl Fn(&Json) -> String,
) -> BTreeMap<String, serde_json::Map<String, Json>> {
    let mut state: BTreeMap<String, serde_json::Map<String, Json>> = BTreeMap::new();
    // Rows whose key changed: the old key's last image, under the new key (see `old_key`).
    let mut moved: BTreeMap<String, serde_json::Map<String, Json>> = BTreeMap::new();
    let other_key = |c: &Json, name: &str| {
        let mut other = c.clone();
        other["key"] = c[name].clone();
        key_of(&other)
    };
    for c in changes {
        let key = key_of(c);
        match c["op"].as_str() {
            Some("upsert") => {
                let mut row = c["row"].as_object().cloned().unwrap_or_default();
                let prev = state.get(&key).or_else(|| {
                    c.get("old_key")
                        .and_then(|_| moved.get(&other_key(c, "old_key")))
                });
                if let Some(prev) = prev {
                    for u in c["unchanged"].as_array().into_iter().flatten() {
                        if let Some(name) = u.as_str()
                            && let Some(v) = prev.get(name)
                        {
                            row.insert(name.to_owned(), v.clone());
                        }
                    }
                }
                state.insert(key, row);
            }
            Some("delete") => {
                if let Some(row) = state.remove(&key)
                    && c.get("new_key").is_some()
                {
                    moved.insert(key, row);
                }
            }
            Some("truncate") => state.clear(),
            _ => {}
        }
    }
    state
}

/// The change's `key` object as text (stable: the decoder renders key columns in key order).
pub fn key_text(c: &Json) -> String {
    c["key"].to_string()
}

/// Equality of an expected value (as the source project wrote it) and a decoded one: numbers
/// compare exactly, or as f32 when the expected one is the f32 reading; decimal strings compare
/// with numbers by value; objects and arrays recursively.
pub fn values_match(expected: &Json, got: &Json) -> bool {
    match (expected, got) {
        (Json::Number(a), Json::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a == b || (a as f32) == (b as f32)
        }
        (Json::Number(a), Json::String(b)) | (Json::String(b), Json::Number(a)) => {
            match (a.as_f64(), b.parse::<f64>()) {
                (Some(x), Ok(y)) => x == y || (x as f32) == (y as f32),
                _ => false,
            }
        }
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| values_match(v, w)))
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_match(x, y))
        }
        (a, b) => a == b,
    }
}

/// Projects `row` onto the columns of `expected` and compares.
pub fn row_matches(expected: &Json, row: &serde_json::Map<String, Json>) -> bool {
    expected.as_object().is_some_and(|e| {
        e.iter()
            .all(|(k, v)| row.get(k).is_some_and(|w| values_match(v, w)))
    })
}

/// How a connector configuration limits what can be compared exactly with PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgMode {
    Exact,
    /// `time.precision.mode=connect`: zone-less times and timestamps keep milliseconds only.
    MillisTimes,
}

/// Truncates the fraction of a `…HH:MM:SS.ffffff` text to milliseconds.
fn millis(s: &str) -> String {
    let (body, frac) = match s.rsplit_once('.') {
        Some((b, f)) if f.len() == 6 && f.bytes().all(|c| c.is_ascii_digit()) => (b, &f[..3]),
        _ => (s, "000"),
    };
    format!("{body}.{frac}")
}

fn is_local_time(s: &str) -> bool {
    let b = s.as_bytes();
    !s.ends_with('Z')
        && ((b.len() >= 8 && b.get(2) == Some(&b':') && b.get(5) == Some(&b':'))
            || (b.len() >= 19 && b.get(10) == Some(&b'T')))
}

/// Every value PostgreSQL reported matches the decoded one; nested objects compare on the
/// members PostgreSQL renders (a point's x/y; decant adds its WKB).
pub fn pg_value_matches(expected: &Json, got: &Json, mode: PgMode) -> bool {
    match (expected, got) {
        (Json::String(e), Json::String(g)) if mode == PgMode::MillisTimes && is_local_time(e) => {
            millis(e) == millis(g)
        }
        (Json::Object(e), Json::Object(g)) => e
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|w| pg_value_matches(v, w, mode))),
        (Json::Array(e), Json::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(x, y)| pg_value_matches(x, y, mode))
        }
        (e, g) => values_match(e, g),
    }
}

/// Reduces decoded changes to the final state per (table, key) — TOAST-unchanged columns filled
/// from the last image — and asserts it equals PostgreSQL's rows (`{"table","row"}` lines of
/// `tests/bed/pg_state.py`). Returns how many TOAST-unchanged values were filled.
pub fn assert_pg_state(label: &str, run: &Run, expected: &[Json], mode: PgMode) -> usize {
    assert_state_by(label, run, expected, |e, g| pg_value_matches(e, g, mode))
}

/// [`assert_pg_state`] for any source: `expected` holds the source's own `{"table","row"}` lines
/// (`pg_state.py`, `mysql_state.py`), `matches(expected_row, decoded_row)` compares one row.
pub fn assert_state_by(
    label: &str,
    run: &Run,
    expected: &[Json],
    matches: impl Fn(&Json, &Json) -> bool,
) -> usize {
    assert!(run.errors.is_empty(), "{label}: {:?}", run.errors);
    let mut state: BTreeMap<(String, String), serde_json::Map<String, Json>> = BTreeMap::new();
    // The last image of a key deleted by a primary-key change (its delete names the new key), for
    // the new key's upsert, which names the old key (`old_key`) and may lack TOASTed values.
    let mut moved: BTreeMap<(String, String), serde_json::Map<String, Json>> = BTreeMap::new();
    let mut unchanged_filled = 0;
    for c in &run.changes {
        let table = c["table"].as_str().unwrap_or_default().to_owned();
        let key = (table.clone(), c["key"].to_string());
        match c["op"].as_str() {
            Some("upsert") => {
                let mut row = c["row"].as_object().cloned().expect("row");
                let old = c.get("old_key").map(|k| (table.clone(), k.to_string()));
                for u in c["unchanged"].as_array().into_iter().flatten() {
                    unchanged_filled += 1;
                    let name = u.as_str().expect("name");
                    let prev = state
                        .get(&key)
                        .or_else(|| old.as_ref().and_then(|o| moved.get(o)))
                        .and_then(|r| r.get(name))
                        .cloned();
                    row.insert(
                        name.into(),
                        prev.unwrap_or_else(|| {
                            panic!("{label}: TOAST value of {name} never seen for {key:?}")
                        }),
                    );
                }
                state.insert(key, row);
            }
            Some("delete") => {
                if let Some(row) = state.remove(&key)
                    && c.get("new_key").is_some()
                {
                    moved.insert(key, row);
                }
            }
            _ => {}
        }
    }
    let mut want: BTreeMap<String, Vec<&Json>> = BTreeMap::new();
    for e in expected {
        want.entry(e["table"].as_str().expect("table").to_owned())
            .or_default()
            .push(&e["row"]);
    }
    let mut got: BTreeMap<String, Vec<&serde_json::Map<String, Json>>> = BTreeMap::new();
    for ((table, _), row) in &state {
        got.entry(table.clone()).or_default().push(row);
    }
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{label}: tables"
    );
    for (table, rows) in &want {
        let have = &got[table];
        assert_eq!(
            rows.len(),
            have.len(),
            "{label}: row count of {table}; source: {rows:?}; decoded: {have:?}; changes: {:?}",
            run.changes
                .iter()
                .filter(|c| c["table"] == table.as_str())
                .map(|c| format!("{}@{} {} {}", c["op"], c["offset"], c["key"], c["row"]))
                .collect::<Vec<_>>()
        );
        for e in rows {
            let found = have.iter().any(|g| {
                e.as_object().is_some_and(|o| o.len() == g.len())
                    && matches(e, &Json::Object((*g).clone()))
            });
            assert!(
                found,
                "{label}: {table}: no decoded row equals the source's {e}\ndecoded rows: {have:#?}"
            );
        }
    }
    unchanged_filled
}
