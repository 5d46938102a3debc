//! The `source` block plan must read exactly what the general path reads, and refuse exactly
//! what it refuses. One decoder decodes a generated run of change events (so it learns,
//! refines and switches plans as the blocks vary); for every event a fresh decoder (general
//! path only) decodes the same bytes. Outcomes, positions, tables and rows must be identical.

mod common;

use common::{Layout, object, outcome};
use decant_decode::{Decoder, DecoderConfig};
use proptest::prelude::*;

const COLUMNS: &[(&str, &str)] = &[("id", "int64"), ("name", "string")];

fn decoder() -> Decoder {
    Decoder::new(
        DecoderConfig::default()
            .declare("public.t", &["id"], COLUMNS)
            .declare("public.u", &["id"], COLUMNS)
            .declare("inv.t", &["id"], COLUMNS),
    )
    .expect("config")
}

/// The members a `source` block may have, with values of every kind the plan meets.
fn member_value(name: &'static str) -> BoxedStrategy<String> {
    let numbers = prop_oneof![
        4 => (0i64..2_000_000_000_000_000).prop_map(|v| v.to_string()),
        2 => (0i64..100).prop_map(|v| v.to_string()),
        1 => Just("-5".to_owned()),
        1 => Just("01".to_owned()),
        1 => Just("1.5".to_owned()),
        1 => Just("1e3".to_owned()),
        1 => Just("12345678901234567".to_owned()),
        1 => Just("9223372036854775807".to_owned()),
        1 => Just("99999999999999999999".to_owned()),
        1 => Just("null".to_owned()),
        1 => Just("\"7\"".to_owned()),
        1 => Just("-".to_owned()),
    ];
    let names = |pool: &'static [&'static str]| {
        prop_oneof![
            12 => proptest::sample::select(pool).prop_map(|s| format!("\"{s}\"")),
            1 => Just("\"a\\\"b\"".to_owned()),
            1 => Just("\"\\u0074\"".to_owned()),
            1 => Just("null".to_owned()),
            1 => Just("\"unterminated".to_owned()),
        ]
    };
    let anything = prop_oneof![
        4 => Just("null".to_owned()),
        2 => "[a-z0-9:-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        2 => (0i64..1000).prop_map(|v| v.to_string()),
        1 => Just("[\"24\",\"25\"]".to_owned()),
        1 => Just("\"[\\\"24\\\",\\\"25\\\"]\"".to_owned()),
        1 => Just("{\"a\":[1,{\"b\":null}]}".to_owned()),
        1 => Just("tru".to_owned()),
    ];
    match name {
        "ts_ms" | "lsn" | "txId" | "pos" | "row" => numbers.boxed(),
        "db" => names(&["test", "inventory"]).boxed(),
        "schema" => names(&["public"]).boxed(),
        "table" => names(&["t", "t", "t", "u"]).boxed(),
        "file" => names(&["mysql-bin.000003", "mysql-bin.000004"]).boxed(),
        "snapshot" => prop_oneof![
            8 => Just("\"false\"".to_owned()),
            1 => Just("\"true\"".to_owned()),
            1 => Just("\"last\"".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just("null".to_owned()),
        ]
        .boxed(),
        "scn" => prop_oneof![
            (0u64..u64::MAX).prop_map(|v| format!("\"{v}\"")),
            (0u64..1000).prop_map(|v| v.to_string()),
            Just("null".to_owned()),
        ]
        .boxed(),
        _ => anything.boxed(),
    }
}

/// A connector's member list (PostgreSQL-like, MySQL-like, Oracle-like).
fn shape() -> impl Strategy<Value = Vec<&'static str>> {
    let names = |list: &'static str| list.split(' ').collect::<Vec<_>>();
    prop_oneof![
        Just(names(
            "version connector name ts_ms snapshot db sequence ts_us schema table txId lsn xmin"
        )),
        Just(names(
            "version connector name ts_ms snapshot db table server_id gtid file pos row thread query"
        )),
        Just(names("version ts_ms db schema table scn commit_scn")),
    ]
}

/// How one block departs from its connector's list.
fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        20 => Just(Layout::InOrder),
        1 => (0usize..12).prop_map(Layout::Swapped),
        1 => (0usize..12).prop_map(Layout::Dropped),
        1 => (0usize..12).prop_map(Layout::Duplicated),
        1 => Just(Layout::Extra),
        1 => Just(Layout::Spaces),
        1 => Just(Layout::NotAnObject),
    ]
}

/// A run of events from one connector: each member keeps its value from event to event with
/// the given odds, else takes a new one.
fn run() -> impl Strategy<Value = Vec<String>> {
    shape().prop_flat_map(|names| {
        let first: Vec<_> = names.iter().map(|&n| member_value(n)).collect();
        let changes: Vec<_> = names
            .iter()
            .map(|&n| proptest::collection::vec((0u8..4, member_value(n)), 12))
            .collect();
        let layouts = proptest::collection::vec(layout(), 12);
        let ops = proptest::collection::vec(proptest::sample::select(&["c", "u", "d", "t"][..]), 12);
        (Just(names), first, changes, layouts, ops).prop_map(
            |(names, first, changes, layouts, ops)| {
                let mut values = first;
                (0..12)
                    .map(|i| {
                        for (m, value) in values.iter_mut().enumerate() {
                            let (odds, next) = &changes[m][i];
                            // Numbers mostly change; other members mostly stay.
                            let stays = match names[m] {
                                "ts_ms" | "lsn" | "txId" | "pos" | "ts_us" | "sequence" => *odds == 0,
                                _ => *odds != 0,
                            };
                            if !stays {
                                *value = next.clone();
                            }
                        }
                        let members: Vec<(&str, String)> =
                            names.iter().copied().zip(values.iter().cloned()).collect();
                        let source = object(&members, &layouts[i]);
                        let op = ops[i];
                        let (before, after) = match op {
                            "d" => (format!("{{\"id\":{i},\"name\":\"x\"}}"), "null".to_owned()),
                            "t" => ("null".to_owned(), "null".to_owned()),
                            _ => ("null".to_owned(), format!("{{\"id\":{i},\"name\":\"x\"}}")),
                        };
                        format!(
                            r#"{{"before":{before},"after":{after},"source":{source},"op":"{op}","ts_ms":3}}"#
                        )
                    })
                    .collect()
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn source_plan_and_general_path_agree(events in run()) {
        let mut planned = decoder();
        for msg in &events {
            let got = outcome(&mut planned, msg);
            let want = outcome(&mut decoder(), msg);
            prop_assert_eq!(got, want, "event: {}", msg);
        }
    }
}

/// A long run whose blocks differ only in their numbers and in ignored members that keep
/// changing (the plan is refined, then reads them): positions and tables as the general path.
#[test]
fn long_run_with_changing_ignored_members() {
    let mut planned = decoder();
    for i in 0..50u64 {
        let msg = format!(
            r#"{{"before":null,"after":{{"id":{i},"name":"x"}},"source":{{"version":"3.6.3.Final","connector":"mysql","ts_ms":{},"snapshot":"false","db":"inv","table":"t","gtid":"uuid:{i}","file":"mysql-bin.000003","pos":{},"row":0,"thread":{}}},"op":"c","ts_ms":3}}"#,
            1_700_000_000_000u64 + i,
            4 + 1000 * i,
            i % 3
        );
        assert_eq!(outcome(&mut planned, &msg), outcome(&mut decoder(), &msg));
    }
}
