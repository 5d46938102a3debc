//! Real Debezium 3.6.3 captures from PostgreSQL (made by `tests/bed/run_capture.sh`, kept under
//! `tests/fixtures/pg/<config>/`): every capture decodes to exactly PostgreSQL's final state
//! (`expected-state.jsonl`, rendered by PostgreSQL itself through `tests/bed/pg_state.py`).
//! Covers the type zoo, REPLICA IDENTITY DEFAULT and FULL, TOAST-unchanged columns, composite
//! keys, primary-key changes and deletes, under four connector configurations.

use std::collections::BTreeMap;
use std::fs;

use decant_decode::{DeclaredTable, Decoder, DecoderConfig};
use decant_model::TableId;
use decant_tests::{Input, decode_all, fixtures_dir, values_match};
use serde_json::{Map, Value as Json};

/// How a connector configuration changes what can be compared exactly.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Exact,
    /// `time.precision.mode=connect`: zone-less times and timestamps keep milliseconds only.
    MillisTimes,
}

fn load(config: &str) -> (Vec<Input>, Vec<Json>) {
    let dir = fixtures_dir().join("pg").join(config);
    let messages = fs::read_to_string(dir.join("messages.jsonl")).expect("messages.jsonl");
    let expected = fs::read_to_string(dir.join("expected-state.jsonl")).expect("expected-state");
    (
        messages.lines().map(Input::from_kcat).collect(),
        expected
            .lines()
            .map(|l| serde_json::from_str(l).expect("expected line is JSON"))
            .collect(),
    )
}

/// Truncates `HH:MM:SS.ffffff` (inside a time or timestamp text without zone) to milliseconds.
fn millis(s: &str) -> String {
    let (body, frac) = match s.rsplit_once('.') {
        Some((b, f)) if f.len() == 6 && f.bytes().all(|c| c.is_ascii_digit()) => (b, &f[..3]),
        _ => (s, "000"),
    };
    format!("{body}.{frac}")
}

fn is_local_time(s: &str) -> bool {
    let b = s.as_bytes();
    !s.ends_with('Z') && b.len() >= 8 && b.get(2) == Some(&b':') && b.get(5) == Some(&b':')
        || (b.len() >= 19 && b.get(10) == Some(&b'T') && !s.ends_with('Z'))
}

/// Every value PostgreSQL reported must match the decoded one; nested objects compare on the
/// members PostgreSQL renders (a point's x/y; decant adds its WKB).
fn matches(expected: &Json, got: &Json, mode: Mode) -> bool {
    match (expected, got) {
        (Json::String(e), Json::String(g)) if mode == Mode::MillisTimes && is_local_time(e) => {
            millis(e) == millis(g)
        }
        (Json::Object(e), Json::Object(g)) => e
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|w| matches(v, w, mode))),
        (Json::Array(e), Json::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(x, y)| matches(x, y, mode))
        }
        (e, g) => values_match(e, g),
    }
}

fn check(config: &str, decoder_config: DecoderConfig, mode: Mode) {
    let (inputs, expected) = load(config);
    let mut dec = Decoder::new(decoder_config).expect("config");
    let run = decode_all(&mut dec, &inputs);
    assert!(run.errors.is_empty(), "{config}: {:?}", run.errors);
    // Reduce to final state per (table, key), filling TOAST-unchanged columns from the last image.
    let mut state: BTreeMap<(String, String), Map<String, Json>> = BTreeMap::new();
    let mut unchanged_seen = 0;
    for c in &run.changes {
        let table = c["table"].as_str().unwrap_or_default().to_owned();
        let key = (table, c["key"].to_string());
        match c["op"].as_str() {
            Some("upsert") => {
                let mut row = c["row"].as_object().cloned().expect("row");
                for u in c["unchanged"].as_array().into_iter().flatten() {
                    unchanged_seen += 1;
                    let name = u.as_str().expect("name");
                    let prev = state.get(&key).and_then(|r| r.get(name)).cloned();
                    row.insert(name.into(), prev.expect("TOAST value known from an earlier image"));
                }
                state.insert(key, row);
            }
            Some("delete") => {
                state.remove(&key);
            }
            _ => {}
        }
    }
    assert!(unchanged_seen > 0, "{config}: the workload must exercise TOAST-unchanged columns");
    let mut want: BTreeMap<String, Vec<&Json>> = BTreeMap::new();
    for e in &expected {
        want.entry(e["table"].as_str().expect("table").to_owned())
            .or_default()
            .push(&e["row"]);
    }
    let mut got: BTreeMap<String, Vec<&Map<String, Json>>> = BTreeMap::new();
    for ((table, _), row) in &state {
        got.entry(table.clone()).or_default().push(row);
    }
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{config}: tables"
    );
    for (table, rows) in &want {
        let have = &got[table];
        assert_eq!(rows.len(), have.len(), "{config}: row count of {table}");
        for e in rows {
            let found = have.iter().any(|g| {
                e.as_object().expect("row").len() == g.len()
                    && matches(e, &Json::Object((*g).clone()), mode)
            });
            assert!(
                found,
                "{config}: {table}: no decoded row equals PostgreSQL's {e}\ndecoded rows: {have:#?}"
            );
        }
    }
}

#[test]
fn precise_decimals_adaptive_time_with_schemas() {
    check("default", DecoderConfig::default(), Mode::Exact);
}

#[test]
fn double_decimals() {
    check("decimal-double", DecoderConfig::default(), Mode::Exact);
}

#[test]
fn connect_time_precision() {
    check("time-connect", DecoderConfig::default(), Mode::MillisTimes);
}

fn declare(cfg: &mut DecoderConfig, table: &str, cols: &[(&str, &str)]) {
    cfg.tables.insert(
        TableId::parse(table),
        DeclaredTable {
            columns: cols.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
            key: Vec::new(),
        },
    );
}

#[test]
fn string_decimals_without_schemas_use_declared_types() {
    let mut cfg = DecoderConfig::default();
    declare(
        &mut cfg,
        "bed.typezoo",
        &[
            ("id", "int32"),
            ("c_smallint", "int16"),
            ("c_int", "int32"),
            ("c_bigint", "int64"),
            ("c_num_12_2", "decimal_string(12,2)"),
            ("c_num_38_10", "decimal_string(38,10)"),
            ("c_num", "decimal_text"),
            ("c_money", "decimal_string(18,2)"),
            ("c_real", "float32"),
            ("c_double", "float64"),
            ("c_bool", "boolean"),
            ("c_char", "string"),
            ("c_varchar", "string"),
            ("c_text", "string"),
            ("c_date", "date"),
            ("c_time", "micro_time"),
            ("c_time3", "time"),
            ("c_timetz", "zoned_time"),
            ("c_ts", "micro_timestamp"),
            ("c_ts3", "timestamp"),
            ("c_tstz", "zoned_timestamp"),
            ("c_interval", "micro_duration"),
            ("c_uuid", "uuid"),
            ("c_json", "json"),
            ("c_jsonb", "json"),
            ("c_xml", "xml"),
            ("c_bytea", "bytes"),
            ("c_enum", "enum"),
            ("c_int_arr", "array<int32>"),
            ("c_text_arr", "array<string>"),
            ("c_inet", "string"),
            ("c_point", "point"),
            ("c_big", "string"),
        ],
    );
    declare(
        &mut cfg,
        "bed.typezoo_full",
        &[
            ("id", "int32"),
            ("c_num_12_2", "decimal_string(12,2)"),
            ("c_double", "float64"),
            ("c_ts", "micro_timestamp"),
            ("c_tstz", "zoned_timestamp"),
            ("c_interval", "micro_duration"),
            ("c_jsonb", "json"),
            ("c_bytea", "bytes"),
            ("c_text_arr", "array<string>"),
            ("c_enum", "enum"),
            ("c_note", "string"),
            ("c_big", "string"),
        ],
    );
    declare(
        &mut cfg,
        "bed.composite",
        &[
            ("k_int", "int32"),
            ("k_text", "string"),
            ("val", "string"),
            ("qty", "decimal_string(10,3)"),
        ],
    );
    declare(
        &mut cfg,
        "bed.toasty",
        &[("id", "int64"), ("small", "int32"), ("label", "string"), ("big", "string")],
    );
    declare(&mut cfg, "bed.marker", &[("id", "int32"), ("label", "string")]);
    check("schemas-off-decimal-string", cfg, Mode::Exact);
}
