//! The one-pass row plan must decode exactly what the general path decodes, and refuse exactly
//! what it refuses. A decoder that has seen one well-formed image of the table (so it holds a
//! plan) and a fresh decoder (general path only) decode the same generated message; their
//! outcomes, rendered rows and unchanged-column lists must be identical.

mod common;

use common::{Layout, object, outcome};
use decant_decode::{Decoder, DecoderConfig};
use proptest::prelude::*;

/// Columns of every kind the plan parses itself, and some it hands to the general converter.
const COLUMNS: &[(&str, &str)] = &[
    ("id", "int64"),
    ("small", "int16"),
    ("qty", "int32"),
    ("ok", "boolean"),
    ("name", "string"),
    ("amount", "decimal_string(12,2)"),
    ("weight", "decimal(10,2)"),
    ("day", "date"),
    ("at", "micro_timestamp"),
    ("ratio", "double"),
    ("doc", "json"),
    ("mood", "enum"),
    ("clock", "micro_time"),
    ("span", "mysql_time"),
];

/// A value for the column, raw JSON: well-formed ones, edge cases, and ones that must fail.
fn value_for(column: usize) -> BoxedStrategy<String> {
    let common = prop_oneof![
        Just("null".to_owned()),
        Just("\"__debezium_unavailable_value\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("true".to_owned()),
        Just("0".to_owned()),
        Just("-0".to_owned()),
        Just("01".to_owned()),
        Just("1.5e3".to_owned()),
        Just("\"a\\\"b\\u00e9\"".to_owned()),
        Just("[1,2]".to_owned()),
        Just("{\"k\":1}".to_owned()),
        Just("-".to_owned()),
        Just("nul".to_owned()),
    ];
    let int_edges = prop_oneof![
        Just("9223372036854775808".to_owned()),
        Just("123456789012345678".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("32768".to_owned()),
        Just("-2147483649".to_owned()),
        // PostgreSQL's ±infinity timestamps, which become decant's own infinities.
        Just("9223372036825200000".to_owned()),
        Just("-9223372036832400000".to_owned()),
        any::<i64>().prop_map(|v| v.to_string()),
    ];
    let digits = "-?(0|[1-9][0-9]{0,9})(\\.[0-9]{1,3})?";
    let decimal_edges = prop_oneof![
        Just("\"1e2\"".to_owned()),
        Just("\"+5\"".to_owned()),
        Just("\".5\"".to_owned()),
        Just("\"1.230\"".to_owned()),
        Just("1.230".to_owned()),
        Just("1E2".to_owned()),
        Just("\"99999999999.99\"".to_owned()),
    ];
    let strings =
        "[a-zA-Z0-9 éü\"\\\\/\n\t-]{0,40}".prop_map(|s| serde_json::to_string(&s).expect("json"));
    // Mostly values the column takes, so that most rows decode; now and then anything.
    match COLUMNS[column].1 {
        "boolean" => prop_oneof![
            10 => Just("true".to_owned()),
            10 => Just("false".to_owned()),
            1 => common
        ]
        .boxed(),
        "string" | "enum" => prop_oneof![20 => strings, 1 => common].boxed(),
        "json" => prop_oneof![
            20 => Just("\"{\\\"a\\\":[1,2]}\"".to_owned()),
            1 => strings,
            1 => common
        ]
        .boxed(),
        "decimal_string(12,2)" => prop_oneof![
            20 => digits.prop_map(|t| format!("\"{t}\"")),
            2 => decimal_edges,
            1 => common
        ]
        .boxed(),
        "decimal(10,2)" | "double" => prop_oneof![
            20 => digits.prop_map(|t| t.to_owned()),
            2 => decimal_edges,
            1 => common
        ]
        .boxed(),
        // A time of day: the builder refuses what lies outside one day, on either path.
        "micro_time" => prop_oneof![
            20 => (0i64..=86_400_000_000).prop_map(|v| v.to_string()),
            2 => prop_oneof![
                Just("-1".to_owned()),
                Just("86400000000".to_owned()),
                Just("86400000001".to_owned()),
                Just("-3020399999999".to_owned()),
            ],
            1 => int_edges,
            1 => common
        ]
        .boxed(),
        // MySQL TIME: signed, beyond a day.
        "mysql_time" => prop_oneof![
            20 => (-3_020_399_999_999i64..=3_020_399_999_999).prop_map(|v| v.to_string()),
            1 => int_edges,
            1 => common
        ]
        .boxed(),
        "int16" => prop_oneof![
            20 => (-32768i64..32768).prop_map(|v| v.to_string()),
            1 => int_edges,
            1 => common
        ]
        .boxed(),
        _ => prop_oneof![
            20 => (-2147483648i64..2147483648).prop_map(|v| v.to_string()),
            1 => int_edges,
            1 => common
        ]
        .boxed(),
    }
}

fn good_row(id: i64) -> String {
    format!(
        r#"{{"id":{id},"small":1,"qty":2,"ok":true,"name":"n","amount":"1.00","weight":2.5,"day":19000,"at":1717000000000000,"ratio":0.5,"doc":"{{}}","mood":"happy","clock":43200000000,"span":-1}}"#
    )
}

fn message(after: &str) -> String {
    format!(
        r#"{{"before":null,"after":{after},"source":{{"schema":"public","table":"t","lsn":1,"ts_ms":2}},"op":"u","ts_ms":3}}"#
    )
}

/// A delete whose `before` is the whole old row: only its key columns are decoded.
fn deletion(before: &str) -> String {
    format!(
        r#"{{"before":{before},"after":null,"source":{{"schema":"public","table":"t","lsn":1,"ts_ms":2}},"op":"d","ts_ms":3}}"#
    )
}

fn decoder() -> Decoder {
    Decoder::new(DecoderConfig::default().declare("public.t", &["id"], COLUMNS)).expect("config")
}

/// In plan order, or perturbed.
fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        6 => Just(Layout::InOrder),
        1 => (0..COLUMNS.len() - 1).prop_map(Layout::Swapped),
        1 => (0..COLUMNS.len()).prop_map(Layout::Dropped),
        1 => (0..COLUMNS.len()).prop_map(Layout::Duplicated),
        1 => Just(Layout::Extra),
        1 => Just(Layout::Spaces),
        1 => Just(Layout::NotAnObject),
    ]
}

fn image(values: &[String], layout: &Layout) -> String {
    let members: Vec<(&str, String)> = COLUMNS
        .iter()
        .zip(values)
        .map(|((name, _), v)| (*name, v.clone()))
        .collect();
    object(&members, layout)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn plan_and_general_path_agree(
        values in (0..COLUMNS.len()).map(value_for).collect::<Vec<_>>(),
        layout in layout(),
        delete in proptest::bool::weighted(0.3),
    ) {
        let row = image(&values, &layout);
        let msg = if delete { deletion(&row) } else { message(&row) };
        let mut planned = decoder();
        // One clean image teaches the table's plan.
        let warm = outcome(&mut planned, &message(&good_row(1)));
        prop_assert!(!warm.starts_with("error"), "{}", warm);
        let mut general = decoder();
        prop_assert_eq!(outcome(&mut planned, &msg), outcome(&mut general, &msg));
        // After whatever happened, a clean image still decodes the same on both.
        let again = message(&good_row(2));
        prop_assert_eq!(outcome(&mut planned, &again), outcome(&mut general, &again));
    }
}

/// Images that never carry some column: the plan fills it with nulls, as the general path does.
#[test]
fn images_without_a_column() {
    for dropped in ["mood", "id"] {
        // The row without that member (and its comma).
        let narrow = |id: i64| {
            let row = good_row(id);
            let at = row.find(&format!("\"{dropped}\":")).expect("member");
            let end = row[at..].find([',', '}']).map(|e| at + e).expect("end");
            match (&row[at - 1..at], &row[end..=end]) {
                (",", _) => format!("{}{}", &row[..at - 1], &row[end..]),
                _ => format!("{}{}", &row[..at], &row[end + 1..]),
            }
        };
        let mut dec = decoder();
        for id in 0..3 {
            for msg in [message(&narrow(id)), deletion(&narrow(id))] {
                assert!(!msg.contains(&format!("\"{dropped}\"")), "{msg}");
                let mut fresh = decoder();
                assert_eq!(outcome(&mut dec, &msg), outcome(&mut fresh, &msg));
            }
        }
    }
}

/// Values the plan converts itself beyond parsing: PostgreSQL's infinite timestamps, TOAST
/// placeholders, escaped text.
#[test]
fn special_values_through_the_plan() {
    let rows = [
        good_row(3).replace("1717000000000000", "9223372036825200000"),
        good_row(4).replace("1717000000000000", "-9223372036832400000"),
        good_row(5).replace(r#""name":"n""#, r#""name":"__debezium_unavailable_value""#),
        good_row(6).replace(r#""name":"n""#, r#""name":"a\"b\u00e9""#),
    ];
    for row in rows {
        let mut dec = decoder();
        let mut fresh = decoder();
        outcome(&mut dec, &message(&good_row(1)));
        let msg = message(&row);
        let expected = outcome(&mut fresh, &msg);
        assert!(!expected.starts_with("error"), "{expected}");
        assert_eq!(outcome(&mut dec, &msg), expected);
    }
}

/// The plan is in use: a second identical image takes it and still produces the same row.
#[test]
fn a_learned_plan_decodes_like_the_first_time() {
    let mut dec = decoder();
    let first = outcome(&mut dec, &message(&good_row(5)));
    let second = outcome(&mut dec, &message(&good_row(5)));
    assert!(!first.starts_with("error"), "{first}");
    assert_eq!(first, second);
}

/// Two tables in turn: the row is first tried in the previous table (and rolled back), then
/// decoded into its own table by that table's plan. Each row must come out as a decoder that
/// sees only that row decodes it.
#[test]
fn plans_of_alternating_tables() {
    let cfg = DecoderConfig::default()
        .declare("public.t", &["id"], COLUMNS)
        .declare("public.u", &["k"], &[("k", "int64"), ("label", "string")]);
    let mut dec = Decoder::new(cfg.clone()).expect("config");
    let u = |k: i64| {
        format!(
            r#"{{"before":null,"after":{{"k":{k},"label":"x{k}"}},"source":{{"schema":"public","table":"u","lsn":1,"ts_ms":2}},"op":"c","ts_ms":3}}"#
        )
    };
    for i in 0..6 {
        for msg in [message(&good_row(i)), u(i)] {
            let mut fresh = Decoder::new(cfg.clone()).expect("config");
            assert_eq!(outcome(&mut dec, &msg), outcome(&mut fresh, &msg));
        }
    }
}
