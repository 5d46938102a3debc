//! Real Debezium 3.6.3 captures from PostgreSQL (made by `tests/bed/run_capture.sh`, kept under
//! `tests/fixtures/pg/<config>/`): every capture decodes to exactly PostgreSQL's final state
//! (`expected-state.jsonl`, rendered by PostgreSQL itself through `tests/bed/pg_state.py`).
//! Covers the type zoo, REPLICA IDENTITY DEFAULT and FULL, TOAST-unchanged columns, composite
//! keys, primary-key changes and deletes, under four connector configurations.

use std::fs;

use decant_decode::{Decoder, DecoderConfig};
use decant_tests::{Input, PgMode as Mode, assert_pg_state, decode_all, fixtures_dir};
use serde_json::Value as Json;

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

fn check(config: &str, decoder_config: DecoderConfig, mode: Mode) {
    let (inputs, expected) = load(config);
    let mut dec = Decoder::new(decoder_config).expect("config");
    let run = decode_all(&mut dec, &inputs);
    let filled = assert_pg_state(config, &run, &expected, mode);
    assert!(
        filled > 0,
        "{config}: the workload must exercise TOAST-unchanged columns"
    );
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
    *cfg = std::mem::take(cfg).declare(table, &[], cols);
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
        &[
            ("id", "int64"),
            ("small", "int32"),
            ("label", "string"),
            ("big", "string"),
        ],
    );
    declare(
        &mut cfg,
        "bed.marker",
        &[("id", "int32"), ("label", "string")],
    );
    check("schemas-off-decimal-string", cfg, Mode::Exact);
}
