//! Upserts as decoded Arrow columns → Arrow batches of a destination table's schema, without
//! JSON text in between. A column whose decoded type is stored as-is (integers, floats,
//! booleans, text, binary, dates, times, timestamps, decimals up to 38 digits) is gathered from
//! the decoded batches with `interleave` (and cast where only the representation differs: 8/16-
//! bit integers, the UTC zone's name, binary offsets). Any other column — stored as canonical
//! text, a duration count, a list — and any column with TOAST fills or metadata values goes
//! cell by cell through the canonical rendering and `arrow_rows`, exactly as rendered rows do.

use std::collections::HashMap;

use ahash::AHashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use decant_model::sink::{OutputShape, TypedRow};
use decant_model::{ColumnType, TimeUnit};
use serde_json::Value;

use crate::arrow_rows::column;

/// An upsert kept until its batch commits.
pub(crate) struct StagedRow {
    batch_id: u64,
    row: usize,
    shape: Arc<OutputShape>,
    fills: Vec<(usize, String)>,
    missing: Vec<usize>,
    meta: Vec<String>,
}

impl StagedRow {
    pub(crate) fn new(r: &TypedRow<'_>, shape: &Arc<OutputShape>) -> Self {
        StagedRow {
            batch_id: r.batch_id,
            row: r.row,
            shape: shape.clone(),
            fills: r.fills.to_vec(),
            missing: r.missing.to_vec(),
            meta: r.meta.to_vec(),
        }
    }
}

/// Whether a decoded column of type `ty` is stored with the same values (up to a lossless
/// cast) in Iceberg.
fn stored_as_is(ty: &ColumnType) -> bool {
    use ColumnType as C;
    match ty {
        C::Boolean
        | C::Int8
        | C::Int16
        | C::Int32
        | C::Int64
        | C::Float32
        | C::Float64
        | C::String
        | C::Enum
        | C::Xml
        | C::Binary
        | C::Date => true,
        C::Decimal { precision, scale } => *precision <= 38 && *scale >= 0,
        C::Time(u) | C::Timestamp(u) | C::TimestampTz(u) => *u == TimeUnit::Micros,
        _ => false,
    }
}

/// Where one output cell comes from.
enum Cell<'r> {
    Null,
    Decoded(&'r ArrayRef, &'r Field, usize),
    Text(&'r str),
}

/// The decoded batches of the open batch, by id.
pub(crate) type Decoded = HashMap<u64, RecordBatch>;

/// Builds `schema`'s batch from `rows`.
pub(crate) fn batch_of(
    schema: &SchemaRef,
    rows: &[&StagedRow],
    decoded: &Decoded,
) -> Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array =
            column_of(field, rows, decoded).map_err(|e| format!("column {}: {e}", field.name()))?;
        if !field.is_nullable() && array.null_count() > 0 {
            return Err(format!(
                "column {}: null in an upsert, but it is a key column",
                field.name()
            ));
        }
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// A chunk of final rows as one batch, gathered in decoding order: the sink's key map hands
/// them over in hash order, and reading each decoded batch in one run keeps the gather's
/// source lookups and memory reads local.
pub(crate) fn gather(
    schema: &SchemaRef,
    rows: &mut [&StagedRow],
    decoded: &Decoded,
) -> Result<RecordBatch, String> {
    rows.sort_unstable_by_key(|r| (r.batch_id, r.row));
    batch_of(schema, rows, decoded)
}

/// Output column `name`'s position in each row's shape (rows mostly share one shape).
struct Positions<'n> {
    name: &'n str,
    last: Option<(*const OutputShape, Option<usize>)>,
}

impl Positions<'_> {
    fn of(&mut self, shape: &Arc<OutputShape>) -> Option<usize> {
        let ptr = Arc::as_ptr(shape);
        match self.last {
            Some((p, pos)) if p == ptr => pos,
            _ => {
                let pos = shape.position(self.name);
                self.last = Some((ptr, pos));
                pos
            }
        }
    }
}

fn cell<'r>(
    r: &'r StagedRow,
    pos: Option<usize>,
    decoded: &'r Decoded,
) -> Result<Cell<'r>, String> {
    let Some(i) = pos else {
        return Ok(Cell::Null);
    };
    if r.missing.contains(&i) {
        return Ok(Cell::Null);
    }
    if let Some((_, text)) = r.fills.iter().find(|(c, _)| *c == i) {
        return Ok(Cell::Text(text));
    }
    match r.shape.sources.get(i).copied().flatten() {
        Some(col) => {
            let batch = decoded
                .get(&r.batch_id)
                .ok_or_else(|| format!("decoded batch {} is gone", r.batch_id))?;
            let schema = batch.schema_ref();
            Ok(Cell::Decoded(batch.column(col), schema.field(col), r.row))
        }
        None => {
            let meta_index = r.shape.sources[..i].iter().filter(|s| s.is_none()).count();
            r.meta
                .get(meta_index)
                .map(|t| Cell::Text(t))
                .ok_or_else(|| "metadata value missing".to_owned())
        }
    }
}

fn column_of(field: &Field, rows: &[&StagedRow], decoded: &Decoded) -> Result<ArrayRef, String> {
    let name = field.name();
    let mut arrays: Vec<&dyn Array> = Vec::new();
    // (decoded batch, column) → its index in `arrays`. Callers pass rows in decoding order, so
    // they come in runs of one batch: the last hit answers most rows without hashing.
    let mut slots: AHashMap<(u64, usize), usize> = AHashMap::new();
    let mut last: Option<((u64, usize), usize)> = None;
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
    let mut fast = true;
    let mut positions = Positions { name, last: None };
    for r in rows {
        let pos = positions.of(&r.shape);
        let direct = pos.is_some_and(|i| {
            stored_as_is(&r.shape.columns[i].1)
                && !r.missing.contains(&i)
                && !r.fills.iter().any(|(c, _)| *c == i)
        });
        match (direct, cell(r, pos, decoded)?) {
            (true, Cell::Decoded(array, _, row)) => {
                let col = pos.and_then(|i| r.shape.sources[i]).unwrap_or(0);
                let source = (r.batch_id, col);
                let slot = match last {
                    Some((s, slot)) if s == source => slot,
                    _ => *slots.entry(source).or_insert_with(|| {
                        arrays.push(array.as_ref());
                        arrays.len() - 1
                    }),
                };
                last = Some((source, slot));
                indices.push((slot, row));
            }
            _ => {
                fast = false;
                break;
            }
        }
    }
    if fast && !rows.is_empty() {
        let gathered =
            arrow_select::interleave::interleave(&arrays, &indices).map_err(|e| e.to_string())?;
        if gathered.data_type() == field.data_type() {
            return Ok(gathered);
        }
        return arrow_cast::cast(&gathered, field.data_type()).map_err(|e| e.to_string());
    }
    // Cell by cell through the canonical rendering.
    let is_text = field.data_type() == &DataType::Utf8;
    let mut scratch = String::new();
    let mut values: Vec<Option<Value>> = Vec::with_capacity(rows.len());
    for r in rows {
        let text = match cell(r, positions.of(&r.shape), decoded)? {
            Cell::Null => {
                values.push(None);
                continue;
            }
            Cell::Text(t) => t,
            Cell::Decoded(array, f, row) => {
                scratch.clear();
                decant_decode::render::push_value(array, f, row, &mut scratch);
                scratch.as_str()
            }
        };
        // As `arrow_rows::parse_row`: a text column's non-string JSON is kept as exact text.
        let value = if text == "null" {
            None
        } else if is_text && !text.starts_with('"') {
            Some(Value::String(text.to_owned()))
        } else {
            Some(serde_json::from_str(text).map_err(|e| e.to_string())?)
        };
        values.push(value);
    }
    let refs: Vec<Option<&Value>> = values.iter().map(Option::as_ref).collect();
    column(field, &refs)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use decant_decode::render::{push_json_string, push_value};
    use decant_decode::{Decoder, DecoderConfig};
    use decant_model::sink::OutputShape;
    use decant_model::{ChangeKind, KafkaRecord};

    use super::*;
    use crate::arrow_rows::{batch_from_rows, parse_row};
    use crate::types::TableLayout;

    /// Real Debezium captures of the bed's PostgreSQL workload, type zoo included.
    fn decoded_fixture() -> Vec<decant_decode::ChangeBatch> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pg/default/messages.jsonl");
        let text = std::fs::read_to_string(path).expect("fixture");
        let mut decoder = Decoder::new(DecoderConfig::default()).expect("decoder");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("json line");
            let bytes = |k: &str| v[k].as_str().map(|s| s.as_bytes().to_vec());
            let (key, value) = (bytes("key"), bytes("payload"));
            let rec = KafkaRecord {
                topic: v["topic"].as_str().unwrap_or_default(),
                partition: 0,
                offset: v["offset"].as_i64().unwrap_or(0),
                timestamp_ms: None,
                headers: &[],
                key: key.as_deref(),
                value: value.as_deref(),
            };
            decoder.decode(&rec).expect("the fixture decodes");
        }
        decoder.take_batches().expect("batches")
    }

    /// Gathering decoded columns gives exactly the batch the canonical rendering gives.
    #[test]
    fn gathered_columns_equal_the_canonical_path() {
        let mut checked = 0;
        for (id, batch) in decoded_fixture().into_iter().enumerate() {
            let schema = &batch.schema;
            let shape = Arc::new(OutputShape {
                columns: schema
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone()))
                    .collect(),
                key: schema
                    .key
                    .iter()
                    .map(|&i| schema.columns[i].name.clone())
                    .collect(),
                key_types: schema
                    .key
                    .iter()
                    .map(|&i| schema.columns[i].ty.clone())
                    .collect(),
                sources: (0..schema.columns.len()).map(Some).collect(),
            });
            if shape.key.is_empty() {
                continue;
            }
            let layout = TableLayout::new(shape.columns.clone(), shape.key.clone());
            let target: SchemaRef = Arc::new(
                iceberg::arrow::schema_to_arrow_schema(
                    &layout.fresh_schema("t").expect("iceberg schema"),
                )
                .expect("arrow schema"),
            );
            let upserts: Vec<usize> = (0..batch.len())
                .filter(|&r| {
                    batch.meta[r].kind == ChangeKind::Upsert && batch.unchanged(r).is_empty()
                })
                .collect();
            if upserts.is_empty() {
                continue;
            }
            let staged: Vec<StagedRow> = upserts
                .iter()
                .map(|&row| StagedRow {
                    batch_id: id as u64,
                    row,
                    shape: shape.clone(),
                    fills: Vec::new(),
                    missing: Vec::new(),
                    meta: Vec::new(),
                })
                .collect();
            let refs: Vec<&StagedRow> = staged.iter().collect();
            let decoded = Decoded::from([(id as u64, batch.rows.clone())]);
            let gathered = batch_of(&target, &refs, &decoded).expect("gathered");
            let rendered: Vec<_> = upserts
                .iter()
                .map(|&row| {
                    let mut json = String::from("{");
                    for (i, c) in schema.columns.iter().enumerate() {
                        if i > 0 {
                            json.push(',');
                        }
                        push_json_string(&c.name, &mut json);
                        json.push(':');
                        push_value(batch.rows.column(i), schema.arrow.field(i), row, &mut json);
                    }
                    json.push('}');
                    parse_row(&target, &json).expect("parses")
                })
                .collect();
            let canonical = batch_from_rows(&target, &rendered).expect("canonical");
            assert_eq!(gathered, canonical, "table {}", schema.table);
            checked += upserts.len();
        }
        assert!(checked > 10, "only {checked} rows checked");
    }
}
