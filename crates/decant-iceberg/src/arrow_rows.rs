//! Rendered rows (canonical JSON objects, as `decant decode` prints them and the Kafka sink
//! writes them) → an Arrow batch of a destination table's schema.
//!
//! The Iceberg sink renders rows exactly like the Kafka sink (projection, renames, TOAST fills,
//! metadata columns all apply the same way) and converts at commit time, column by column,
//! driven by the destination's Arrow types. A value that does not fit its column is an error
//! naming the column, never a silent null. It reads every form `decant_decode::render` writes:
//! a `long` column takes a MySQL `TIME` span's text as well as a number (that column type
//! renders as text and is stored as µs).

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, new_null_array};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decant_decode::temporal;
use serde_json::{Map, Value};

/// Parses one rendered row for [`batch_from_rows`]. A value of a text column that is not a
/// JSON string (a JSON document, geometry, struct) is kept as the exact text it was rendered as:
/// parsing it into a `Value` would round every number beyond f64 inside it
/// (`{"n":12345678901234567890.5}` must not become `{"n":1.2345678901234567e19}`). The
/// `documents` columns hold JSON documents, stored as their text whatever it is: a document
/// that is a JSON string keeps its quotes.
pub fn parse_row(
    schema: &SchemaRef,
    json: &str,
    documents: &[&str],
) -> Result<Map<String, Value>, String> {
    let raw: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut row = Map::with_capacity(raw.len());
    for (name, value) in raw {
        let text = value.get();
        let is_text_column = schema
            .field_with_name(&name)
            .is_ok_and(|f| f.data_type() == &DataType::Utf8);
        // Kept as text: any document, and any other non-string, non-null JSON.
        let verbatim =
            documents.contains(&name.as_str()) || (!text.starts_with('"') && text != "null");
        let value = if is_text_column && verbatim {
            Value::String(text.to_owned())
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        };
        row.insert(name, value);
    }
    Ok(row)
}

/// Builds a batch of `schema` from rendered rows; absent columns are null.
pub fn batch_from_rows(
    schema: &SchemaRef,
    rows: &[Map<String, Value>],
) -> Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values: Vec<Option<&Value>> = rows
            .iter()
            .map(|r| r.get(field.name()).filter(|v| !v.is_null()))
            .collect();
        if !field.is_nullable()
            && let Some(i) = values.iter().position(Option::is_none)
        {
            return Err(format!(
                "column {}: null or missing in row {i}, but it is a key column",
                field.name()
            ));
        }
        let array = column(field, &values).map_err(|e| format!("column {}: {e}", field.name()))?;
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

pub(crate) fn column(field: &Field, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    let n = values.len();
    Ok(match field.data_type() {
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values {
                b.append_option(
                    v.map(|v| v.as_bool().ok_or_else(|| bad("a boolean", v)))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Int32 => {
            let mut b = Int32Builder::with_capacity(n);
            for v in values {
                b.append_option(
                    v.map(|v| {
                        v.as_i64()
                            .and_then(|i| i32::try_from(i).ok())
                            .ok_or_else(|| bad("a 32-bit integer", v))
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values {
                b.append_option(v.map(long).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Float32 => {
            let mut b = Float32Builder::with_capacity(n);
            for v in values {
                b.append_option(v.map(|v| float(v).map(|f| f as f32)).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for v in values {
                b.append_option(v.map(float).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(p, s) => {
            let mut b = Decimal128Builder::with_capacity(n);
            for v in values {
                b.append_option(v.map(|v| decimal(v, *s)).transpose()?);
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(Value::String(s)) => b.append_value(s),
                    // JSON documents, geometry, structs: their compact JSON text.
                    Some(other) => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            for v in values {
                b.append_option(v.map(base64_bytes).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::LargeBinary => {
            let mut b = LargeBinaryBuilder::with_capacity(n, n * 16);
            for v in values {
                b.append_option(v.map(base64_bytes).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(n);
            for v in values {
                b.append_option(
                    v.map(|v| {
                        let s = v.as_str().ok_or_else(|| bad("a date", v))?;
                        match s {
                            "infinity" => Ok(i32::MAX),
                            "-infinity" => Ok(i32::MIN),
                            _ => parse_date(s.as_bytes())
                                .and_then(|d| i32::try_from(d).ok())
                                .ok_or_else(|| bad("a date YYYY-MM-DD", v)),
                        }
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let mut b = Time64MicrosecondBuilder::with_capacity(n);
            for v in values {
                b.append_option(
                    v.map(|v| {
                        v.as_str()
                            .and_then(|s| parse_time_us(s.as_bytes()))
                            .ok_or_else(|| bad("a time HH:MM:SS[.ffffff]", v))
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for v in values {
                b.append_option(v.map(|v| timestamp(v, tz.is_some())).transpose()?);
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone()))
        }
        DataType::List(elem) => {
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut children: Vec<Option<&Value>> = Vec::new();
            let mut valid = Vec::with_capacity(n);
            for v in values {
                match v {
                    None => valid.push(false),
                    Some(Value::Array(items)) => {
                        valid.push(true);
                        children.extend(items.iter().map(|x| Some(x).filter(|x| !x.is_null())));
                    }
                    Some(other) => return Err(bad("an array", other)),
                }
                offsets
                    .push(i32::try_from(children.len()).map_err(|_| "list too large".to_owned())?);
            }
            let child = if children.is_empty() {
                new_null_array(elem.data_type(), 0)
            } else {
                column(elem, &children).map_err(|e| format!("element: {e}"))?
            };
            Arc::new(
                ListArray::try_new(
                    elem.clone(),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::from(valid)),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("unsupported destination type {other}")),
    })
}

/// A `long` column's value: a JSON integer, or a MySQL `TIME` span as rendered
/// (`"-838:59:59.999999"`), stored as its exact count of microseconds.
fn long(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => temporal::parse_clock(s, temporal::MICROS_PER_SECOND)
            .ok_or_else(|| bad("a 64-bit integer or a time span [-]HH:MM:SS[.ffffff]", v)),
        _ => v.as_i64().ok_or_else(|| bad("a 64-bit integer", v)),
    }
}

fn base64_bytes(v: &Value) -> Result<Vec<u8>, String> {
    v.as_str()
        .and_then(|text| STANDARD.decode(text).ok())
        .ok_or_else(|| bad("base64 bytes", v))
}

fn bad(expected: &str, found: &Value) -> String {
    let mut text = found.to_string();
    if text.len() > 80 {
        let mut cut = 80;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!("expected {expected}, found {text}")
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad("a number", v)),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(bad("a number", v)),
        },
        _ => Err(bad("a number", v)),
    }
}

/// An exact decimal text (`"-12.30"`) as the unscaled integer at `scale`.
fn decimal(v: &Value, scale: i8) -> Result<i128, String> {
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Number(_) => {
            return decimal_text(&v.to_string(), scale).ok_or_else(|| bad("a decimal", v));
        }
        _ => return Err(bad("a decimal", v)),
    };
    decimal_text(text, scale).ok_or_else(|| {
        bad(
            &format!("a decimal with at most {scale} fraction digits"),
            v,
        )
    })
}

fn decimal_text(text: &str, scale: i8) -> Option<i128> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale {
        return None;
    }
    let mut acc: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        acc = acc.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for _ in frac.len()..scale {
        acc = acc.checked_mul(10)?;
    }
    Some(if neg { -acc } else { acc })
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// `[-]YYYY-MM-DD` → days since 1970-01-01 (proleptic Gregorian).
fn parse_date(s: &[u8]) -> Option<i64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let dash = s.iter().position(|&b| b == b'-')?;
    if s.len() != dash + 6 || s[dash + 3] != b'-' {
        return None;
    }
    let mut y = digits(&s[..dash])?;
    if neg {
        y = -y;
    }
    let m = digits(&s[dash + 1..dash + 3])?;
    let d = digits(&s[dash + 4..])?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `HH:MM:SS[.f{1,9}]` → microseconds (digits beyond µs must be zero: never rounded).
fn parse_time_us(s: &[u8]) -> Option<i64> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let h = digits(&s[0..2])?;
    let m = digits(&s[3..5])?;
    let sec = digits(&s[6..8])?;
    if h > 24 || m > 59 || sec > 60 || (h == 24 && (m, sec) != (0, 0)) {
        return None;
    }
    let mut us = 0;
    if s.len() > 8 {
        if s[8] != b'.' || s.len() == 9 || s.len() > 18 {
            return None;
        }
        let frac = &s[9..];
        for (i, d) in frac.iter().enumerate() {
            if !d.is_ascii_digit() {
                return None;
            }
            if i < 6 {
                us = us * 10 + i64::from(d - b'0');
            } else if *d != b'0' {
                return None;
            }
        }
        for _ in frac.len().min(6)..6 {
            us *= 10;
        }
    }
    let us = ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
    // A time of day ends at 24:00:00 (PostgreSQL's end of day); a leap second can't pass it.
    (us <= 86_400_000_000).then_some(us)
}

fn timestamp(v: &Value, zoned: bool) -> Result<i64, String> {
    let s = v.as_str().ok_or_else(|| bad("a timestamp", v))?;
    match s {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let body = if zoned {
        s.strip_suffix('Z')
            .ok_or_else(|| bad("a UTC timestamp ending in Z", v))?
    } else {
        s
    };
    let (date, time) = body.split_once('T').ok_or_else(|| bad("a timestamp", v))?;
    let days = parse_date(date.as_bytes()).ok_or_else(|| bad("a timestamp", v))?;
    let us = parse_time_us(time.as_bytes()).ok_or_else(|| bad("a timestamp", v))?;
    days.checked_mul(86_400_000_000)
        .and_then(|d| d.checked_add(us))
        .ok_or_else(|| bad("a timestamp in range", v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, TimestampMicrosecondType};
    use arrow_schema::Schema;

    /// Numbers beyond f64 inside a JSON document, geometry or struct column reach the batch
    /// exactly as rendered; strings and nulls stay what they are; typed columns still parse.
    #[test]
    fn json_documents_keep_their_exact_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("doc", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let row = parse_row(
            &schema,
            r#"{"id":9007199254740993,"doc":{"n":12345678901234567890.5,"i":18446744073709551616,"a":[1.0000000000000000001]},"name":"plain"}"#,
            &[],
        )
        .expect("parses");
        let nulls = parse_row(&schema, r#"{"id":1,"doc":null,"name":null}"#, &[]).expect("parses");
        let batch = batch_from_rows(&schema, &[row, nulls]).expect("batch");
        let doc = batch.column(1).as_string::<i32>();
        assert_eq!(
            doc.value(0),
            r#"{"n":12345678901234567890.5,"i":18446744073709551616,"a":[1.0000000000000000001]}"#
        );
        assert!(doc.is_null(1));
        let name = batch.column(2).as_string::<i32>();
        assert_eq!(name.value(0), "plain");
        assert!(name.is_null(1));
        assert_eq!(
            batch
                .column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            9_007_199_254_740_993
        );
        assert!(parse_row(&schema, "{not json", &[]).is_err());
    }

    /// A document column (a jsonb key) keeps a document that is a JSON string with its quotes,
    /// as the sink stores it; a text column's string is its contents.
    #[test]
    fn a_string_document_keeps_its_quotes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("doc", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let json = r#"{"doc":"a JSON string","name":"plain"}"#;
        let row = parse_row(&schema, json, &["doc"]).expect("parses");
        assert_eq!(row["doc"], Value::String(r#""a JSON string""#.into()));
        assert_eq!(row["name"], Value::String("plain".into()));
        let row = parse_row(&schema, json, &[]).expect("parses");
        assert_eq!(row["doc"], Value::String("a JSON string".into()));
    }

    fn rows(json: &[&str]) -> Vec<Map<String, Value>> {
        json.iter()
            .map(|j| serde_json::from_str(j).expect("json"))
            .collect()
    }

    #[test]
    fn canonical_values_become_typed_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("doc", DataType::Utf8, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("raw", DataType::LargeBinary, true),
        ]));
        let b = batch_from_rows(
            &schema,
            &rows(&[
                r#"{"id":1,"amount":"-12.30","at":"1969-12-31T23:59:59.999999Z","doc":{"a":[1,2]},"tags":["x",null],"day":"2024-02-29","t":"23:59:59.5","raw":"AAE="}"#,
                r#"{"id":2,"at":"infinity","tags":null}"#,
            ]),
        )
        .expect("batch");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(1).as_primitive::<Decimal128Type>().value(0), -1230);
        assert!(b.column(1).is_null(1));
        assert_eq!(
            b.column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            -1
        );
        assert_eq!(
            b.column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .value(1),
            i64::MAX
        );
        assert_eq!(b.column(3).as_string::<i32>().value(0), r#"{"a":[1,2]}"#);
        assert_eq!(b.column(4).as_list::<i32>().value(0).len(), 2);
        assert!(b.column(4).is_null(1));
        assert_eq!(
            b.column(5)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            19782
        );
        assert_eq!(
            b.column(6)
                .as_primitive::<arrow_array::types::Time64MicrosecondType>()
                .value(0),
            86_399_500_000
        );
        assert_eq!(b.column(7).as_binary::<i64>().value(0), &[0u8, 1]);
    }

    /// A MySQL `TIME` span's value rendered the way the Kafka sink writes it, as a JSON row.
    fn rendered_span(us: i64) -> Map<String, Value> {
        let ty = decant_model::ColumnType::SignedTime(decant_model::TimeUnit::Micros);
        let field = ty.arrow_field("t", true);
        let array: ArrayRef = Arc::new(arrow_array::DurationMicrosecondArray::from(vec![us]));
        let mut text = String::new();
        decant_decode::render::push_value(&array, &field, 0, &mut text);
        let mut row = Map::new();
        row.insert("t".into(), serde_json::from_str(&text).expect("json"));
        row
    }

    /// The Iceberg column of a MySQL `TIME` span: `long` µs, read back as Arrow Int64.
    fn long_of(rows: &[Map<String, Value>]) -> Result<Vec<Option<i64>>, String> {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, true)]));
        let b = batch_from_rows(&schema, rows)?;
        let col = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
        Ok((0..col.len())
            .map(|i| col.is_valid(i).then(|| col.value(i)))
            .collect())
    }

    #[test]
    fn mysql_time_text_becomes_its_exact_microseconds() {
        let max = (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999;
        let values = [
            -1,
            -1_000_000,
            -5_400_500_000,
            -max,
            max,
            0,
            i64::MIN,
            i64::MAX,
        ];
        let rows: Vec<_> = values.iter().map(|v| rendered_span(*v)).collect();
        assert_eq!(rows[3]["t"], "-838:59:59.999999");
        let got = long_of(&rows).expect("batch");
        assert_eq!(got, values.map(Some));
        // Numbers still go in as numbers; anything else is refused.
        assert_eq!(long_of(&self::rows(&[r#"{"t":-7}"#])), Ok(vec![Some(-7)]));
        for bad in [
            r#"{"t":"12:00"}"#,
            r#"{"t":"00:00:00.0000001"}"#,
            r#"{"t":1.5}"#,
        ] {
            let e = long_of(&self::rows(&[bad])).expect_err(bad);
            assert!(e.starts_with("column t: expected a 64-bit integer"), "{e}");
        }
    }

    proptest::proptest! {
        /// Every MySQL TIME(6) value: decant's rendering → this parser → the same µs.
        #[test]
        fn mysql_time_range_round_trips(
            us in -((838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999i64)
                ..=(838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999i64
        ) {
            proptest::prop_assert_eq!(long_of(&[rendered_span(us)]), Ok(vec![Some(us)]));
        }
    }

    #[test]
    fn times_of_day_end_at_midnight() {
        assert_eq!(parse_time_us(b"24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time_us(b"24:00:01"), None);
        assert_eq!(parse_time_us(b"24:59:59"), None);
        assert_eq!(parse_time_us(b"23:59:59.999999"), Some(86_399_999_999));
    }

    #[test]
    fn misfits_are_errors_naming_the_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Decimal128(10, 2), true),
        ]));
        let e =
            batch_from_rows(&schema, &rows(&[r#"{"id":1,"amount":"1.234"}"#])).expect_err("scale");
        assert!(e.starts_with("column amount: expected a decimal"), "{e}");
        let e = batch_from_rows(&schema, &rows(&[r#"{"amount":"1.2"}"#])).expect_err("key");
        assert!(e.contains("column id"), "{e}");
        assert!(parse_time_us(b"10:00:00.1234567").is_none());
        assert_eq!(parse_time_us(b"10:00:00.123456000"), Some(36_000_123_456));
        assert_eq!(parse_date(b"1970-01-01"), Some(0));
        assert_eq!(parse_date(b"0001-01-01"), Some(-719_162));
        assert_eq!(decimal_text("0.5", 3), Some(500));
    }
}
