//! Upsert rendering: key = JSON object of the key columns in key order, value = the flat
//! after-image as a JSON object in column order (projected and renamed by the [`Plan`]), plus
//! optional metadata columns. Values are rendered by `decant_decode::render::push_value`, the
//! same canonical JSON `decant decode` prints. TOAST-unchanged columns are filled from the
//! previous [`ToastEntry`] of the key.

use arrow_array::Array as _;
use decant_decode::ChangeBatch;
use decant_decode::render::{push_json_string, push_value};

use crate::route::{Plan, Predicate};
use crate::state::{ToastEntry, encode_pair};

/// The fixed metadata columns (see `output.metadata_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaColumn {
    /// Debezium's op code: `"c"`, `"r"` (snapshot read), `"u"`, or `"tombstone"` for a delete
    /// made from a null-value record (deletes themselves are tombstones, without a value).
    Op,
    /// `source.ts_ms`, or null.
    SourceTsMs,
    /// `source.db` (the database; falls back to the table's namespace when absent).
    Db,
    /// The table name.
    Table,
    /// PostgreSQL `source.lsn`, or null.
    Lsn,
    /// Source Kafka partition.
    KafkaPartition,
    /// Source Kafka offset.
    KafkaOffset,
}

impl MetaColumn {
    pub fn parse(name: &str) -> Option<MetaColumn> {
        Some(match name {
            "__op" => MetaColumn::Op,
            "__source_ts_ms" => MetaColumn::SourceTsMs,
            "__db" => MetaColumn::Db,
            "__table" => MetaColumn::Table,
            "__lsn" => MetaColumn::Lsn,
            "__kafka_partition" => MetaColumn::KafkaPartition,
            "__kafka_offset" => MetaColumn::KafkaOffset,
            _ => return None,
        })
    }

    /// The decant type of the column's values (its Iceberg column type follows from it).
    pub fn column_type(self) -> decant_model::ColumnType {
        use decant_model::ColumnType as C;
        match self {
            MetaColumn::Op | MetaColumn::Db | MetaColumn::Table => C::String,
            MetaColumn::SourceTsMs | MetaColumn::Lsn | MetaColumn::KafkaOffset => C::Int64,
            MetaColumn::KafkaPartition => C::Int32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MetaColumn::Op => "__op",
            MetaColumn::SourceTsMs => "__source_ts_ms",
            MetaColumn::Db => "__db",
            MetaColumn::Table => "__table",
            MetaColumn::Lsn => "__lsn",
            MetaColumn::KafkaPartition => "__kafka_partition",
            MetaColumn::KafkaOffset => "__kafka_offset",
        }
    }
}

/// Appends the key object of `row`; returns false (and appends nothing) for a keyless table.
pub fn push_key(batch: &ChangeBatch, row: usize, plan: &Plan, out: &mut String) -> bool {
    if plan.key.is_empty() {
        return false;
    }
    let fields = &batch.schema.arrow;
    out.push('{');
    for (i, (idx, name)) in plan.key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        push_value(batch.rows.column(*idx), fields.field(*idx), row, out);
    }
    out.push('}');
    true
}

/// The state-store key of the other key of a primary-key change (`RowMeta::key_change`), in
/// the same output form as the row's own key.
pub fn other_store_key(
    batch: &ChangeBatch,
    row: usize,
    plan: &Plan,
    label: &str,
) -> Option<Vec<u8>> {
    let other = batch.meta[row].key_change.as_deref()?;
    let mut key = String::new();
    push_key(other, 0, plan, &mut key).then(|| crate::state::row_key(label, &key))
}

/// What rendering a value found.
#[derive(Debug, Default)]
pub struct ValueRender {
    /// TOAST-unchanged columns filled from the previous entry.
    pub fills: u32,
    /// TOAST-unchanged columns with no previous value (left out of the value).
    pub missing: Vec<String>,
    /// The key's new [`ToastEntry`], encoded.
    pub entry: Vec<u8>,
}

/// Appends the value object of upsert `row`.
pub fn push_row(
    batch: &ChangeBatch,
    row: usize,
    plan: &Plan,
    prev: Option<&ToastEntry>,
    meta_columns: &[MetaColumn],
    out: &mut String,
) -> ValueRender {
    let mut res = ValueRender::default();
    res.entry.reserve(plan.entry_capacity);
    let fields = &batch.schema.arrow;
    let unchanged = batch.unchanged(row);
    let mut first = true;
    out.push('{');
    for col in &plan.value {
        let was_unchanged = !unchanged.is_empty() && unchanged.contains(&(col.index as u16));
        if was_unchanged {
            match prev.and_then(|p| p.get(&col.name)) {
                Some(text) => {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&col.json_name);
                    out.push(':');
                    out.push_str(text);
                    res.fills += 1;
                    encode_pair(&col.name, text, &mut res.entry);
                }
                None => res.missing.push(col.name.clone()),
            }
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&col.json_name);
        out.push(':');
        let start = out.len();
        let array = batch.rows.column(col.index);
        push_value(array, fields.field(col.index), row, out);
        if col.toastable && !array.is_null(row) {
            encode_pair(&col.name, &out[start..], &mut res.entry);
        }
    }
    for m in meta_columns {
        if !first {
            out.push(',');
        }
        first = false;
        push_json_string(m.name(), out);
        out.push(':');
        push_meta(*m, batch, row, out);
    }
    out.push('}');
    res
}

/// Appends metadata column `m` of `row` as JSON.
pub fn push_meta(m: MetaColumn, batch: &ChangeBatch, row: usize, out: &mut String) {
    let meta = &batch.meta[row];
    match m {
        MetaColumn::Op => push_json_string(meta.source_op.code(), out),
        MetaColumn::SourceTsMs => push_opt_int(meta.position.ts_ms, out),
        MetaColumn::Db => push_json_string(
            meta.position
                .db
                .as_deref()
                .unwrap_or(&batch.schema.table.namespace),
            out,
        ),
        MetaColumn::Table => push_json_string(&batch.schema.table.name, out),
        MetaColumn::Lsn => push_opt_int(meta.position.lsn, out),
        MetaColumn::KafkaPartition => out.push_str(itoa::Buffer::new().format(meta.partition)),
        MetaColumn::KafkaOffset => out.push_str(itoa::Buffer::new().format(meta.offset)),
    }
}

/// What a typed upsert carries besides its decoded columns.
#[derive(Debug, Default)]
pub struct TypedRender {
    /// Fill and miss counts and the new state entry, as [`push_row`] reports them.
    pub value: ValueRender,
    /// TOAST-unchanged cells filled from the previous entry: (output column, JSON text).
    pub fills: Vec<(usize, String)>,
    /// TOAST-unchanged cells without a previous value: output columns.
    pub missing: Vec<usize>,
    /// Metadata columns' JSON text, in output order.
    pub meta: Vec<String>,
}

/// [`push_row`] for a sink that takes decoded columns: only the state entry (the TOAST-able
/// columns' JSON), the fills and the metadata values are rendered. `scratch` is reusable.
pub fn typed_row(
    batch: &ChangeBatch,
    row: usize,
    plan: &Plan,
    prev: Option<&ToastEntry>,
    meta_columns: &[MetaColumn],
    scratch: &mut String,
) -> TypedRender {
    let mut res = TypedRender::default();
    res.value.entry.reserve(plan.entry_capacity);
    let fields = &batch.schema.arrow;
    let unchanged = batch.unchanged(row);
    for (i, col) in plan.value.iter().enumerate() {
        if !unchanged.is_empty() && unchanged.contains(&(col.index as u16)) {
            match prev.and_then(|p| p.get(&col.name)) {
                Some(text) => {
                    res.value.fills += 1;
                    encode_pair(&col.name, text, &mut res.value.entry);
                    res.fills.push((i, text.to_owned()));
                }
                None => {
                    res.value.missing.push(col.name.clone());
                    res.missing.push(i);
                }
            }
            continue;
        }
        let array = batch.rows.column(col.index);
        if col.toastable && !array.is_null(row) {
            scratch.clear();
            push_value(array, fields.field(col.index), row, scratch);
            encode_pair(&col.name, scratch, &mut res.value.entry);
        }
    }
    for m in meta_columns {
        let mut text = String::new();
        push_meta(*m, batch, row, &mut text);
        res.meta.push(text);
    }
    res
}

/// Whether upsert `row` passes every predicate, evaluated on the after image with
/// TOAST-unchanged columns taken from `prev`; a TOAST-unchanged column with no previous value
/// cannot be evaluated and its condition passes. `scratch` is a reusable buffer.
pub fn row_passes(
    batch: &ChangeBatch,
    row: usize,
    filter: &[Predicate],
    prev: Option<&ToastEntry>,
    scratch: &mut String,
) -> bool {
    let fields = &batch.schema.arrow;
    let unchanged = batch.unchanged(row);
    filter.iter().all(|p| {
        if !unchanged.is_empty() && unchanged.contains(&(p.index as u16)) {
            return prev
                .and_then(|e| e.get(&p.name))
                .is_none_or(|text| p.eval(text));
        }
        scratch.clear();
        push_value(
            batch.rows.column(p.index),
            fields.field(p.index),
            row,
            scratch,
        );
        p.eval(scratch)
    })
}

fn push_opt_int(v: Option<i64>, out: &mut String) {
    match v {
        Some(v) => out.push_str(itoa::Buffer::new().format(v)),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use decant_decode::{Decoder, DecoderConfig, Outcome};
    use decant_model::{KafkaRecord, TableId};

    use super::*;
    use crate::config::PipelineConfig;
    use crate::route::Router;
    use crate::state::ToastEntry;

    /// Topic, offset, key, value.
    type Captured = (String, i64, Option<Vec<u8>>, Option<Vec<u8>>);

    /// Real Debezium captures of the bed's workload (tests/fixtures/pg/default).
    fn fixture() -> Vec<Captured> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pg/default/messages.jsonl");
        let text = std::fs::read_to_string(path).expect("fixture");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let bytes = |k: &str| v[k].as_str().map(|s| s.as_bytes().to_vec());
                (
                    v["topic"].as_str().unwrap_or_default().to_owned(),
                    v["offset"].as_i64().unwrap_or(0),
                    bytes("key"),
                    bytes("payload"),
                )
            })
            .collect()
    }

    #[test]
    fn toast_unchanged_columns_are_filled_from_the_previous_entry() {
        let mut decoder = Decoder::new(DecoderConfig::default()).expect("decoder");
        for (topic, offset, key, value) in &fixture() {
            let rec = KafkaRecord {
                topic,
                partition: 0,
                offset: *offset,
                timestamp_ms: None,
                headers: &[],
                key: key.as_deref(),
                value: value.as_deref(),
            };
            let _: Outcome = decoder.decode(&rec).expect("fixture decodes");
        }
        let batches = decoder.take_batches().expect("batches");
        let mut rows: Vec<(u64, usize, usize)> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            for (r, m) in batch.meta.iter().enumerate() {
                rows.push((m.seq, b, r));
            }
        }
        rows.sort_unstable();
        let mut router = Router::new(&PipelineConfig::default());
        let mut store: HashMap<String, ToastEntry> = HashMap::new();
        let mut last: HashMap<String, serde_json::Value> = HashMap::new();
        let mut fills = 0;
        let mut ops = std::collections::BTreeSet::new();
        for (_, b, r) in rows {
            let batch = &batches[b];
            let (route, _) = router.route(&batch.schema.table, "t");
            let plan = router.plan(&route, &Arc::clone(&batch.schema));
            let mut key = String::new();
            assert!(push_key(batch, r, &plan, &mut key));
            let id = format!("{}{key}", route.label);
            if batch.meta[r].kind == decant_model::ChangeKind::Delete {
                store.remove(&id);
                last.remove(&id);
                continue;
            }
            let mut value = String::new();
            let res = push_row(
                batch,
                r,
                &plan,
                store.get(&id),
                &[MetaColumn::KafkaOffset, MetaColumn::Op, MetaColumn::Db],
                &mut value,
            );
            assert!(res.missing.is_empty(), "{id}: {:?}", res.missing);
            fills += res.fills;
            store.insert(id.clone(), ToastEntry::decode(&res.entry));
            let parsed: serde_json::Value = serde_json::from_str(&value).expect("value is JSON");
            ops.insert(parsed["__op"].as_str().unwrap_or_default().to_owned());
            assert_eq!(parsed["__db"], "postgres", "__db is source.db");
            last.insert(id, parsed);
        }
        assert!(fills > 0, "the workload has TOAST-unchanged updates");
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        assert_eq!(ops, ["c", "r", "u"], "__op keeps Debezium's op code");
        let toasty = TableId::new("bed", "toasty");
        let row = &last[&format!("{toasty}{{\"id\":1}}")];
        // `UPDATE toasty SET small = small + 1` left `big` unchanged; the later update replaced
        // it: the final value is the replacement, complete, and `small` moved on.
        assert_eq!(row["small"], 2);
        assert_eq!(row["label"], "one*");
        assert_eq!(row["big"].as_str().map(str::len), Some(3200));
        assert!(row["__kafka_offset"].is_number());
    }
}
