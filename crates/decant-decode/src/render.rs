//! Canonical JSON rendering of decoded changes, read back from the Arrow batches (so it checks
//! the Arrow mapping too). Integers and floats as numbers (NaN/±Infinity as strings), decimals as
//! strings with their exact scale, dates `YYYY-MM-DD`, times `HH:MM:SS[.ffffff]` (MySQL `TIME`
//! spans signed with unbounded hours: `"-838:59:59"`, `"-00:00:00.000001"`), zone-less
//! timestamps `YYYY-MM-DDTHH:MM:SS[.ffffff]`, zoned ones in UTC ending in `Z`, ±infinity as
//! `"infinity"`/`"-infinity"`, UUIDs as text, JSON columns embedded, bytes as base64, lists as arrays.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, DurationNanosecondType,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampNanosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_buffer::i256;
use arrow_schema::{DataType, Field, TimeUnit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decant_model::schema::SEMANTIC_KEY;

use crate::batch::ChangeBatch;
use crate::decoder::ControlRecord;
use crate::temporal;

/// Appends `s` as a JSON string literal.
pub fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_float(f: f64, single: bool, out: &mut String) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if single {
        out.push_str(ryu::Buffer::new().format(f as f32));
    } else {
        out.push_str(ryu::Buffer::new().format(f));
    }
}

fn push_instant(v: i64, per_second: i128, zoned: bool, out: &mut String) {
    match v {
        temporal::INFINITY => out.push_str("\"infinity\""),
        temporal::NEG_INFINITY => out.push_str("\"-infinity\""),
        _ => {
            out.push('"');
            temporal::format_timestamp_nanos(v as i128 * (1_000_000_000 / per_second), out);
            if zoned {
                out.push('Z');
            }
            out.push('"');
        }
    }
}

/// Renders the value at `row` of `array` (described by `field`).
pub fn push_value(array: &ArrayRef, field: &Field, row: usize, out: &mut String) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    let semantic = field.metadata().get(SEMANTIC_KEY).map(String::as_str);
    match array.data_type() {
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => {
            out.push_str(itoa::Buffer::new().format(array.as_primitive::<Int8Type>().value(row)))
        }
        DataType::Int16 => {
            out.push_str(itoa::Buffer::new().format(array.as_primitive::<Int16Type>().value(row)))
        }
        DataType::Int32 => {
            out.push_str(itoa::Buffer::new().format(array.as_primitive::<Int32Type>().value(row)))
        }
        DataType::Int64 => {
            out.push_str(itoa::Buffer::new().format(array.as_primitive::<Int64Type>().value(row)))
        }
        DataType::Float32 => push_float(
            array.as_primitive::<Float32Type>().value(row) as f64,
            true,
            out,
        ),
        DataType::Float64 => push_float(array.as_primitive::<Float64Type>().value(row), false, out),
        DataType::Decimal128(_, s) => {
            out.push('"');
            let v = array.as_primitive::<Decimal128Type>().value(row);
            crate::decimal::format(i256::from_i128(v), *s as i32, out);
            out.push('"');
        }
        DataType::Decimal256(_, s) => {
            out.push('"');
            crate::decimal::format(
                array.as_primitive::<Decimal256Type>().value(row),
                *s as i32,
                out,
            );
            out.push('"');
        }
        DataType::Utf8 => {
            let s = array.as_string::<i32>().value(row);
            if semantic == Some("json") {
                out.push_str(s);
            } else {
                push_json_string(s, out);
            }
        }
        DataType::Binary => {
            out.push('"');
            out.push_str(&STANDARD.encode(array.as_binary::<i32>().value(row)));
            out.push('"');
        }
        // Not built by the decoder; Iceberg reads come back with 64-bit offsets.
        DataType::LargeBinary => {
            out.push('"');
            out.push_str(&STANDARD.encode(array.as_binary::<i64>().value(row)));
            out.push('"');
        }
        DataType::FixedSizeBinary(16) => {
            let bytes = array.as_fixed_size_binary().value(row);
            let mut b = [0u8; 16];
            b.copy_from_slice(bytes);
            out.push('"');
            out.push_str(&crate::convert::format_uuid(&b));
            out.push('"');
        }
        DataType::Date32 => {
            out.push('"');
            temporal::format_date(array.as_primitive::<Date32Type>().value(row) as i64, out);
            out.push('"');
        }
        DataType::Time64(unit) => {
            let (v, per_second) = match unit {
                TimeUnit::Nanosecond => (
                    array.as_primitive::<Time64NanosecondType>().value(row),
                    temporal::NANOS_PER_SECOND,
                ),
                _ => (
                    array.as_primitive::<Time64MicrosecondType>().value(row),
                    temporal::MICROS_PER_SECOND,
                ),
            };
            out.push('"');
            temporal::format_clock(v, per_second, out);
            if semantic == Some("zoned_time") {
                out.push('Z');
            }
            out.push('"');
        }
        DataType::Timestamp(unit, tz) => {
            let zoned = tz.is_some();
            match unit {
                TimeUnit::Nanosecond => push_instant(
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    1_000_000_000,
                    zoned,
                    out,
                ),
                _ => push_instant(
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    1_000_000,
                    zoned,
                    out,
                ),
            }
        }
        DataType::Duration(unit) => {
            let (v, per_second) = match unit {
                TimeUnit::Nanosecond => (
                    array.as_primitive::<DurationNanosecondType>().value(row),
                    temporal::NANOS_PER_SECOND,
                ),
                _ => (
                    array.as_primitive::<DurationMicrosecondType>().value(row),
                    temporal::MICROS_PER_SECOND,
                ),
            };
            if semantic == Some("signed_time") {
                // MySQL / MariaDB TIME, as MySQL writes it.
                out.push('"');
                temporal::format_clock(v, per_second, out);
                out.push('"');
            } else {
                out.push_str(itoa::Buffer::new().format(v));
            }
        }
        DataType::List(child) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                push_value(&values, child, i, out);
            }
            out.push(']');
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, (f, col)) in fields.iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(f.name(), out);
                out.push(':');
                push_value(col, f, row, out);
            }
            out.push('}');
        }
        other => {
            // Every type decant builds is handled above; this keeps rendering total.
            push_json_string(&format!("<unrenderable {other}>"), out);
        }
    }
}

fn push_position(meta: &decant_model::SourcePosition, out: &mut String) {
    out.push_str("{\"ts_ms\":");
    match meta.ts_ms {
        Some(t) => out.push_str(itoa::Buffer::new().format(t)),
        None => out.push_str("null"),
    }
    if meta.snapshot {
        out.push_str(",\"snapshot\":true");
    }
    let ints = [
        ("lsn", meta.lsn),
        ("txId", meta.tx_id),
        ("pos", meta.pos),
        ("row", meta.row),
    ];
    for (name, v) in ints {
        if let Some(v) = v {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            out.push_str(itoa::Buffer::new().format(v));
        }
    }
    for (name, v) in [("file", &meta.file), ("scn", &meta.scn)] {
        if let Some(v) = v {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            push_json_string(v, out);
        }
    }
    out.push('}');
}

/// One JSON line for row `row` of `batch` (no trailing newline).
pub fn render_row(batch: &ChangeBatch, row: usize, out: &mut String) {
    let meta = &batch.meta[row];
    let schema = &batch.schema;
    out.push_str("{\"topic\":");
    push_json_string(&meta.topic, out);
    out.push_str(",\"partition\":");
    out.push_str(itoa::Buffer::new().format(meta.partition));
    out.push_str(",\"offset\":");
    out.push_str(itoa::Buffer::new().format(meta.offset));
    out.push_str(",\"table\":");
    push_json_string(&schema.table.to_string(), out);
    out.push_str(",\"op\":\"");
    out.push_str(meta.kind.as_str());
    out.push_str("\",\"key\":");
    let fields = batch.rows.schema();
    // A keyless table's delete is identified by its whole before image.
    let all: Vec<usize>;
    let key_cols: &[usize] = if !schema.key.is_empty() {
        &schema.key
    } else if meta.kind == decant_model::ChangeKind::Delete {
        all = (0..schema.columns.len()).collect();
        &all
    } else {
        &[]
    };
    if key_cols.is_empty() {
        out.push_str("null");
    } else {
        out.push('{');
        for (i, &k) in key_cols.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&schema.columns[k].name, out);
            out.push(':');
            push_value(batch.rows.column(k), fields.field(k), row, out);
        }
        out.push('}');
    }
    out.push_str(",\"row\":");
    if meta.kind == decant_model::ChangeKind::Delete {
        out.push_str("null");
    } else {
        out.push('{');
        let unchanged = batch.unchanged(row);
        let mut first = true;
        for (i, col) in schema.columns.iter().enumerate() {
            if unchanged.contains(&(i as u16)) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(&col.name, out);
            out.push(':');
            push_value(batch.rows.column(i), fields.field(i), row, out);
        }
        out.push('}');
    }
    out.push_str(",\"unchanged\":[");
    for (i, &c) in batch.unchanged(row).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&schema.columns[c as usize].name, out);
    }
    out.push_str("],\"source\":");
    push_position(&meta.position, out);
    out.push('}');
}

/// One JSON line for a control record.
pub fn render_control(c: &ControlRecord, out: &mut String) {
    use decant_model::ControlEvent as E;
    out.push_str("{\"topic\":");
    push_json_string(&c.coords.topic, out);
    out.push_str(",\"partition\":");
    out.push_str(itoa::Buffer::new().format(c.coords.partition));
    out.push_str(",\"offset\":");
    out.push_str(itoa::Buffer::new().format(c.coords.offset));
    out.push_str(",\"table\":");
    match &c.table {
        Some(t) => push_json_string(&t.to_string(), out),
        None => out.push_str("null"),
    }
    out.push_str(",\"op\":\"");
    out.push_str(c.event.kind());
    out.push_str("\",\"key\":");
    match c
        .key
        .as_deref()
        .filter(|k| serde_json::from_str::<serde::de::IgnoredAny>(k).is_ok())
    {
        Some(k) => out.push_str(k),
        None => out.push_str("null"),
    }
    out.push_str(",\"row\":null,\"unchanged\":[]");
    match &c.event {
        E::Message {
            prefix,
            content_b64,
        } => {
            out.push_str(",\"message\":{\"prefix\":");
            push_json_string(prefix, out);
            out.push_str(",\"content\":");
            match content_b64 {
                Some(b) => push_json_string(b, out),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        E::TransactionBegin { id } => {
            out.push_str(",\"transaction\":{\"id\":");
            push_json_string(id, out);
            out.push('}');
        }
        E::TransactionEnd { id, event_count } => {
            out.push_str(",\"transaction\":{\"id\":");
            push_json_string(id, out);
            out.push_str(",\"event_count\":");
            match event_count {
                Some(n) => out.push_str(itoa::Buffer::new().format(*n)),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        E::SchemaChange { ddl: Some(ddl) } => {
            out.push_str(",\"ddl\":");
            push_json_string(ddl, out);
        }
        _ => {}
    }
    out.push_str(",\"source\":");
    push_position(&c.position, out);
    out.push('}');
}

/// Renders batches and control records merged back into input order, one line each.
pub fn render_in_order(batches: &[ChangeBatch], controls: &[ControlRecord], out: &mut String) {
    enum Item {
        Row(usize, usize),
        Control(usize),
    }
    let mut items: Vec<(u64, Item)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for (r, m) in batch.meta.iter().enumerate() {
            items.push((m.seq, Item::Row(b, r)));
        }
    }
    for (i, c) in controls.iter().enumerate() {
        items.push((c.seq, Item::Control(i)));
    }
    items.sort_by_key(|i| i.0);
    for (_, item) in items {
        match item {
            Item::Row(b, r) => render_row(&batches[b], r, out),
            Item::Control(i) => render_control(&controls[i], out),
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{DurationMicrosecondArray, DurationNanosecondArray, Time64MicrosecondArray};
    use decant_model::{ColumnType, TimeUnit as Unit};

    use super::*;

    fn rendered(array: ArrayRef, ty: &ColumnType) -> Vec<String> {
        let field = ty.arrow_field("t", true);
        (0..array.len())
            .map(|row| {
                let mut out = String::new();
                push_value(&array, &field, row, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn mysql_time_renders_as_mysql_writes_it() {
        let max = (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999;
        let spans = Arc::new(DurationMicrosecondArray::from(vec![
            -1,
            -1_000_000,
            -5_400_500_000,
            -max,
            max,
            90_000_000_000,
            0,
        ]));
        assert_eq!(
            rendered(spans, &ColumnType::SignedTime(Unit::Micros)),
            [
                "\"-00:00:00.000001\"",
                "\"-00:00:01\"",
                "\"-01:30:00.500000\"",
                "\"-838:59:59.999999\"",
                "\"838:59:59.999999\"",
                "\"25:00:00\"",
                "\"00:00:00\"",
            ]
        );
        let nanos = Arc::new(DurationNanosecondArray::from(vec![-1, -1_000]));
        assert_eq!(
            rendered(nanos, &ColumnType::SignedTime(Unit::Nanos)),
            ["\"-00:00:00.000000001\"", "\"-00:00:00.000001\""]
        );
    }

    #[test]
    fn durations_stay_numbers_and_foreign_times_never_wrap() {
        let d = Arc::new(DurationMicrosecondArray::from(vec![-1, 5]));
        assert_eq!(
            rendered(d, &ColumnType::Duration(Unit::Micros)),
            ["-1", "5"]
        );
        // The decoder never builds these, but an Arrow batch from elsewhere may hold them.
        let t = Arc::new(Time64MicrosecondArray::from(vec![-1, i64::MAX]));
        assert_eq!(
            rendered(t, &ColumnType::Time(Unit::Micros)),
            ["\"-00:00:00.000001\"", "\"2562047788:00:54.775807\""]
        );
    }
}
