//! MySQL / MariaDB `TIME` is a signed span from `-838:59:59.000000` to `838:59:59.000000`, not a
//! time of day (issue #17). Records of those connectors (told by the envelope's `source` schema
//! name, or declared `mysql_time` for schemaless JSON) decode to Arrow Duration tagged
//! `decant.type=signed_time` and render as MySQL writes them; every other connector's `time`
//! stays a Time64 time of day, and a value outside one day is a field error.

use apache_avro::types::Value as Avro;
use arrow_schema::{DataType, TimeUnit};
use decant_decode::render::render_in_order;
use decant_decode::{Decoder, DecoderConfig, Outcome, SchemaFormat, StaticResolver};
use decant_model::KafkaRecord;
use decant_model::schema::SEMANTIC_KEY;
use serde_json::Value as Json;

const HOUR_US: i64 = 3_600_000_000;
/// MySQL's TIME(6) extremes: 838:59:59.999999 (what MySQL itself keeps as 838:59:59.000000
/// comes out the same way).
const MAX_US: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999;

/// (µs, MySQL's text) for MicroTime: the issue's table and its neighbours.
const MICRO_CASES: &[(i64, &str)] = &[
    (0, "00:00:00"),
    (-1, "-00:00:00.000001"),
    (-1_000_000, "-00:00:01"),
    (-(HOUR_US + 1_800_000_000 + 500_000), "-01:30:00.500000"),
    (-MAX_US, "-838:59:59.999999"),
    (MAX_US, "838:59:59.999999"),
    (-(MAX_US - 999_999), "-838:59:59"),
    (25 * HOUR_US, "25:00:00"),
    (43_200_000_000, "12:00:00"),
];

/// (ms, MySQL's text) for `io.debezium.time.Time` and Connect `Time` (TIME(0..3) in ms).
const MILLI_CASES: &[(i64, &str)] = &[
    (0, "00:00:00"),
    (-1, "-00:00:00.001000"),
    (-1_000, "-00:00:01"),
    (-5_400_500, "-01:30:00.500000"),
    (-3_020_399_999, "-838:59:59.999000"),
    (3_020_399_999, "838:59:59.999000"),
    (-3_020_399_000, "-838:59:59"),
];

/// A realistic Debezium 3.x MySQL `source` schema, renamed for MariaDB or anything else.
fn source_schema(name: &str) -> String {
    let fields = [
        r#"{"type":"string","optional":false,"field":"version"}"#,
        r#"{"type":"string","optional":false,"field":"connector"}"#,
        r#"{"type":"string","optional":false,"field":"name"}"#,
        r#"{"type":"int64","optional":false,"field":"ts_ms"}"#,
        r#"{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"}"#,
        r#"{"type":"string","optional":false,"field":"db"}"#,
        r#"{"type":"string","optional":true,"field":"sequence"}"#,
        r#"{"type":"int64","optional":true,"field":"ts_us"}"#,
        r#"{"type":"int64","optional":true,"field":"ts_ns"}"#,
        r#"{"type":"string","optional":true,"field":"table"}"#,
        r#"{"type":"int64","optional":false,"field":"server_id"}"#,
        r#"{"type":"string","optional":true,"field":"gtid"}"#,
        r#"{"type":"string","optional":false,"field":"file"}"#,
        r#"{"type":"int64","optional":false,"field":"pos"}"#,
        r#"{"type":"int32","optional":false,"field":"row"}"#,
        r#"{"type":"int64","optional":true,"field":"thread"}"#,
        r#"{"type":"string","optional":true,"field":"query"}"#,
    ];
    format!(
        r#"{{"type":"struct","fields":[{}],"optional":false,"name":"{name}","field":"source"}}"#,
        fields.join(",")
    )
}

/// The MySQL `source` block of a binlog event.
const MYSQL_SOURCE: &str = r#"{"version":"3.0.7.Final","connector":"mysql","name":"mysql","ts_ms":1717000000000,"snapshot":"false","db":"inventory","sequence":null,"ts_us":1717000000000000,"ts_ns":1717000000000000000,"table":"spans","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":1547,"row":0,"thread":12,"query":null}"#;
const PG_SOURCE: &str = r#"{"version":"3.0.7.Final","connector":"postgresql","name":"pg","ts_ms":1717000000000,"snapshot":"false","db":"shop","sequence":"[null,\"23\"]","ts_us":1717000000000000,"ts_ns":1717000000000000000,"schema":"inventory","table":"spans","txId":771,"lsn":23,"xmin":null}"#;

/// The Connect schema of column `t`: the three encodings of `TIME`.
fn time_field(encoding: &str) -> &'static str {
    match encoding {
        "micro" => {
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,"field":"t"}"#
        }
        "debezium_ms" => {
            r#"{"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1,"field":"t"}"#
        }
        "connect_ms" => {
            r#"{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"t"}"#
        }
        "nano" => {
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.NanoTime","version":1,"field":"t"}"#
        }
        other => panic!("no encoding {other}"),
    }
}

/// A change event with its embedded schema: `source` named `source_name`, column `t` encoded
/// as `encoding` and holding `t` (raw JSON).
fn event(source_name: &str, source: &str, encoding: &str, t: &str) -> String {
    let row = format!(
        r#"{{"type":"struct","fields":[{{"type":"int32","optional":false,"field":"id"}},{}],"optional":true,"name":"mysql.inventory.spans.Value","field":"FIELD"}}"#,
        time_field(encoding)
    );
    let schema = format!(
        r#"{{"type":"struct","fields":[{},{},{},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{{"type":"int64","optional":true,"field":"ts_us"}},{{"type":"int64","optional":true,"field":"ts_ns"}}],"optional":false,"name":"mysql.inventory.spans.Envelope","version":2}}"#,
        row.replace("FIELD", "before"),
        row.replace("FIELD", "after"),
        source_schema(source_name),
    );
    format!(
        r#"{{"schema":{schema},"payload":{{"before":null,"after":{{"id":1,"t":{t}}},"source":{source},"op":"c","ts_ms":1717000000001,"ts_us":1717000000001000,"ts_ns":1717000000001000000}}}}"#
    )
}

fn mysql_event(encoding: &str, t: i64) -> String {
    event(
        "io.debezium.connector.mysql.Source",
        MYSQL_SOURCE,
        encoding,
        &t.to_string(),
    )
}

fn pg_event(encoding: &str, t: i64) -> String {
    event(
        "io.debezium.connector.postgresql.Source",
        PG_SOURCE,
        encoding,
        &t.to_string(),
    )
}

/// Decodes `messages` in one decoder: per message the rendered row's `t`, or the error text;
/// plus the Arrow type and `decant.type` of column `t` in the last batch.
fn decode(
    dec: &mut Decoder,
    messages: &[Vec<u8>],
) -> (Vec<Result<Json, String>>, DataType, Option<String>) {
    let mut out = Vec::new();
    let mut last = None;
    for (i, m) in messages.iter().enumerate() {
        let rec = KafkaRecord::value_only("mysql.inventory.spans", 0, i as i64, m);
        match dec.decode(&rec) {
            Err(e) => out.push(Err(e.kind.to_string())),
            Ok(Outcome::Control(c)) => panic!("not a row: {c:?}"),
            Ok(Outcome::Row { .. }) => {
                let batches = dec.take_batches().expect("batches");
                let mut text = String::new();
                render_in_order(&batches, &[], &mut text);
                let line: Json = serde_json::from_str(text.trim()).expect("one JSON line");
                out.push(Ok(line["row"]["t"].clone()));
                let field = batches[0]
                    .rows
                    .schema()
                    .field_with_name("t")
                    .expect("t")
                    .clone();
                last = Some((
                    field.data_type().clone(),
                    field.metadata().get(SEMANTIC_KEY).cloned(),
                ));
            }
        }
    }
    let (ty, tag) = last.expect("at least one row");
    (out, ty, tag)
}

fn fresh() -> Decoder {
    Decoder::new(DecoderConfig::default()).expect("config")
}

fn expect_rendered(results: &[Result<Json, String>], cases: &[(i64, &str)], what: &str) {
    for (got, (v, want)) in results.iter().zip(cases) {
        assert_eq!(
            got.as_ref().map(|j| j.as_str()),
            Ok(Some(*want)),
            "{what}: {v}"
        );
    }
}

#[test]
fn mysql_micro_time_is_a_signed_span() {
    let messages: Vec<Vec<u8>> = MICRO_CASES
        .iter()
        .map(|(v, _)| mysql_event("micro", *v).into_bytes())
        .collect();
    let (results, ty, tag) = decode(&mut fresh(), &messages);
    expect_rendered(&results, MICRO_CASES, "MicroTime");
    assert_eq!(ty, DataType::Duration(TimeUnit::Microsecond));
    assert_eq!(tag.as_deref(), Some("signed_time"));
}

#[test]
fn mysql_millisecond_times_are_signed_spans() {
    for encoding in ["debezium_ms", "connect_ms"] {
        let messages: Vec<Vec<u8>> = MILLI_CASES
            .iter()
            .map(|(v, _)| mysql_event(encoding, *v).into_bytes())
            .collect();
        let (results, ty, tag) = decode(&mut fresh(), &messages);
        expect_rendered(&results, MILLI_CASES, encoding);
        assert_eq!(ty, DataType::Duration(TimeUnit::Microsecond), "{encoding}");
        assert_eq!(tag.as_deref(), Some("signed_time"), "{encoding}");
    }
}

#[test]
fn mariadb_source_means_the_same() {
    let m = event(
        "io.debezium.connector.mariadb.Source",
        &MYSQL_SOURCE.replace("\"mysql\"", "\"mariadb\""),
        "micro",
        "-1",
    );
    let (results, ty, _) = decode(&mut fresh(), &[m.into_bytes()]);
    assert_eq!(results[0], Ok(Json::from("-00:00:00.000001")));
    assert_eq!(ty, DataType::Duration(TimeUnit::Microsecond));
}

#[test]
fn mysql_nano_time_is_a_nanosecond_span() {
    let (results, ty, tag) = decode(
        &mut fresh(),
        &[
            mysql_event("nano", -1).into_bytes(),
            mysql_event("nano", -1_000).into_bytes(),
        ],
    );
    assert_eq!(results[0], Ok(Json::from("-00:00:00.000000001")));
    assert_eq!(results[1], Ok(Json::from("-00:00:00.000001")));
    assert_eq!(ty, DataType::Duration(TimeUnit::Nanosecond));
    assert_eq!(tag.as_deref(), Some("signed_time"));
}

#[test]
fn mysql_millis_beyond_i64_micros_are_field_errors() {
    let (results, _, _) = decode(
        &mut fresh(),
        &[
            mysql_event("connect_ms", i64::MAX / 1000 + 1).into_bytes(),
            mysql_event("connect_ms", 1).into_bytes(),
        ],
    );
    let e = results[0].as_ref().expect_err("overflow");
    assert!(
        e.starts_with("field after.t: expected a time span in ms"),
        "{e}"
    );
    assert!(e.contains("9223372036854776"), "{e}");
}

#[test]
fn postgresql_time_stays_a_time_of_day_and_refuses_what_is_not_one() {
    let ok: Vec<Vec<u8>> = [0, 43_200_000_000, 86_400_000_000]
        .iter()
        .map(|v| pg_event("micro", *v).into_bytes())
        .collect();
    let (results, ty, tag) = decode(&mut fresh(), &ok);
    assert_eq!(
        results,
        vec![
            Ok(Json::from("00:00:00")),
            Ok(Json::from("12:00:00")),
            Ok(Json::from("24:00:00"))
        ]
    );
    assert_eq!(ty, DataType::Time64(TimeUnit::Microsecond));
    assert_eq!(tag, None);
    // Out of one day: a field error naming the field, for every encoding, on the general path
    // and on the row plan (the decoder below has learned one from the good row first).
    for (encoding, bad, found) in [
        ("micro", -1, "a number -1"),
        ("micro", 86_400_000_001, "a number 86400000001"),
        ("micro", -MAX_US, "a number -3020399999999"),
        ("debezium_ms", -1, "a number -1"),
        ("connect_ms", 86_400_001, "a number 86400001"),
        ("nano", -1, "a number -1"),
        ("nano", 86_400_000_000_001, "a number 86400000000001"),
    ] {
        for warm in [false, true] {
            let mut dec = fresh();
            let mut messages = Vec::new();
            if warm {
                messages.push(pg_event(encoding, 1).into_bytes());
            }
            messages.push(pg_event(encoding, bad).into_bytes());
            let (results, _, _) = if warm {
                decode(&mut dec, &messages)
            } else {
                let rec = KafkaRecord::value_only("t", 0, 0, &messages[0]);
                let e = dec.decode(&rec).expect_err("out of range");
                (vec![Err(e.kind.to_string())], DataType::Null, None)
            };
            assert_eq!(
                results.last().cloned().expect("result"),
                Err(format!(
                    "field after.t: expected a time of day (00:00:00 to 24:00:00), found {found}"
                )),
                "{encoding} {bad} warm={warm}"
            );
        }
    }
}

#[test]
fn envelopes_without_a_mysql_source_keep_times_of_day() {
    // A bare envelope schema whose `source` names no connector: a time of day.
    let m = event("some.other.Source", PG_SOURCE, "micro", "3600000000");
    let (results, ty, _) = decode(&mut fresh(), &[m.into_bytes()]);
    assert_eq!(results[0], Ok(Json::from("01:00:00")));
    assert_eq!(ty, DataType::Time64(TimeUnit::Microsecond));
}

#[test]
fn schemaless_mysql_time_is_declared() {
    let cfg = DecoderConfig::default().declare(
        "inventory.spans",
        &["id"],
        &[
            ("id", "int32"),
            ("t", "mysql_time"),
            ("t3", "mysql_time_millis"),
        ],
    );
    let mut dec = Decoder::new(cfg).expect("config");
    let messages: Vec<Vec<u8>> = MICRO_CASES
        .iter()
        .zip(MILLI_CASES.iter().cycle())
        .map(|((us, _), (ms, _))| {
            format!(
                r#"{{"before":null,"after":{{"id":1,"t":{us},"t3":{ms}}},"source":{MYSQL_SOURCE},"op":"c","ts_ms":1}}"#
            )
            .into_bytes()
        })
        .collect();
    let (results, ty, tag) = decode(&mut dec, &messages);
    expect_rendered(&results, MICRO_CASES, "declared mysql_time");
    assert_eq!(ty, DataType::Duration(TimeUnit::Microsecond));
    assert_eq!(tag.as_deref(), Some("signed_time"));
    // The millisecond column, rendered in full.
    let mut dec = Decoder::new(DecoderConfig::default().declare(
        "inventory.spans",
        &["id"],
        &[("id", "int32"), ("t", "mysql_time_millis")],
    ))
    .expect("config");
    let messages: Vec<Vec<u8>> = MILLI_CASES
        .iter()
        .map(|(ms, _)| {
            format!(
                r#"{{"before":null,"after":{{"id":1,"t":{ms}}},"source":{MYSQL_SOURCE},"op":"c","ts_ms":1}}"#
            )
            .into_bytes()
        })
        .collect();
    let (results, _, _) = decode(&mut dec, &messages);
    expect_rendered(&results, MILLI_CASES, "declared mysql_time_millis");
}

/// The Avro writer schema of a MySQL envelope (as Confluent's AvroConverter writes it), with
/// the `source` record named by `source_namespace`.
fn avro_schema(source_namespace: &str) -> String {
    let value = r#"{"type":"record","name":"Value","namespace":"mysql.inventory.spans","fields":[
        {"name":"id","type":"int"},
        {"name":"t_micro","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTime"}],"default":null},
        {"name":"t_ms","type":["null",{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Time"}],"default":null},
        {"name":"t_connect","type":["null",{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Time","logicalType":"time-millis"}],"default":null},
        {"name":"t_logical","type":["null",{"type":"long","logicalType":"time-micros"}],"default":null}
    ],"connect.name":"mysql.inventory.spans.Value"}"#;
    format!(
        r#"{{"type":"record","name":"Envelope","namespace":"mysql.inventory.spans","fields":[
        {{"name":"before","type":["null",{value}],"default":null}},
        {{"name":"after","type":["null","Value"],"default":null}},
        {{"name":"source","type":{{"type":"record","name":"Source","namespace":"{source_namespace}","fields":[
            {{"name":"version","type":"string"}},{{"name":"connector","type":"string"}},{{"name":"name","type":"string"}},
            {{"name":"ts_ms","type":"long"}},{{"name":"db","type":"string"}},{{"name":"table","type":["null","string"],"default":null}},
            {{"name":"server_id","type":"long"}},{{"name":"file","type":"string"}},{{"name":"pos","type":"long"}},{{"name":"row","type":"int"}}
        ],"connect.name":"{source_namespace}.Source"}}}},
        {{"name":"op","type":"string"}},
        {{"name":"ts_ms","type":["null","long"],"default":null}}
    ],"connect.name":"mysql.inventory.spans.Envelope"}}"#
    )
}

/// One Confluent-framed Avro change event with the four time columns set.
fn avro_event(schema_text: &str, micro: i64, ms: i32) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema_text).expect("schema");
    let some = |v: Avro| Avro::Union(1, Box::new(v));
    let after = Avro::Record(vec![
        ("id".into(), Avro::Int(1)),
        ("t_micro".into(), some(Avro::Long(micro))),
        ("t_ms".into(), some(Avro::Int(ms))),
        ("t_connect".into(), some(Avro::TimeMillis(ms))),
        ("t_logical".into(), some(Avro::TimeMicros(micro))),
    ]);
    let source = Avro::Record(vec![
        ("version".into(), Avro::String("3.0.7.Final".into())),
        ("connector".into(), Avro::String("mysql".into())),
        ("name".into(), Avro::String("mysql".into())),
        ("ts_ms".into(), Avro::Long(1_717_000_000_000)),
        ("db".into(), Avro::String("inventory".into())),
        ("table".into(), some(Avro::String("spans".into()))),
        ("server_id".into(), Avro::Long(223_344)),
        ("file".into(), Avro::String("mysql-bin.000003".into())),
        ("pos".into(), Avro::Long(1547)),
        ("row".into(), Avro::Int(0)),
    ]);
    let envelope = Avro::Record(vec![
        ("before".into(), Avro::Union(0, Box::new(Avro::Null))),
        ("after".into(), some(after)),
        ("source".into(), source),
        ("op".into(), Avro::String("c".into())),
        ("ts_ms".into(), some(Avro::Long(1))),
    ]);
    let mut out = vec![0, 0, 0, 0, 7];
    out.extend(apache_avro::to_avro_datum(&schema, envelope).expect("datum"));
    out
}

fn avro_rows(source_namespace: &str, values: &[(i64, i32)]) -> Vec<Result<Json, String>> {
    let text = avro_schema(source_namespace);
    let mut dec = fresh().with_resolver(Box::new(StaticResolver::new().with(
        7,
        SchemaFormat::Avro,
        text.clone(),
    )));
    values
        .iter()
        .enumerate()
        .map(|(i, (micro, ms))| {
            let bytes = avro_event(&text, *micro, *ms);
            let rec = KafkaRecord::value_only("mysql.inventory.spans", 0, i as i64, &bytes);
            dec.decode(&rec).map_err(|e| e.kind.to_string())?;
            let batches = dec.take_batches().expect("batches");
            let mut line = String::new();
            render_in_order(&batches, &[], &mut line);
            let row: Json = serde_json::from_str(line.trim()).expect("json");
            Ok(row["row"].clone())
        })
        .collect()
}

#[test]
fn avro_mysql_times_are_signed_spans() {
    let rows = avro_rows(
        "io.debezium.connector.mysql",
        &[
            (-1, -1),
            (-MAX_US, -5_400_500),
            (MAX_US, 0),
            (25 * HOUR_US, -1_000),
        ],
    );
    let want = [
        ("-00:00:00.000001", "-00:00:00.001000"),
        ("-838:59:59.999999", "-01:30:00.500000"),
        ("838:59:59.999999", "00:00:00"),
        ("25:00:00", "-00:00:01"),
    ];
    for (row, (micro, ms)) in rows.iter().zip(want) {
        let row = row.as_ref().expect("decodes");
        assert_eq!(row["t_micro"], micro, "{row}");
        assert_eq!(row["t_logical"], micro, "{row}");
        assert_eq!(row["t_ms"], ms, "{row}");
        assert_eq!(row["t_connect"], ms, "{row}");
    }
}

#[test]
fn avro_postgresql_times_stay_times_of_day() {
    let rows = avro_rows(
        "io.debezium.connector.postgresql",
        &[(3_600_000_000, 1_000), (-1, 0), (0, -1)],
    );
    let first = rows[0].as_ref().expect("decodes");
    assert_eq!(first["t_micro"], "01:00:00");
    assert_eq!(first["t_connect"], "00:00:01");
    let e = rows[1].as_ref().expect_err("negative micros");
    assert!(
        e.starts_with("field after.t_micro: expected a time of day (00:00:00 to 24:00:00), found"),
        "{e}"
    );
    let e = rows[2].as_ref().expect_err("negative millis");
    assert!(
        e.starts_with("field after.t_ms: expected a time of day (00:00:00 to 24:00:00), found"),
        "{e}"
    );
}
