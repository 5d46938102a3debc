//! Upserts as decoded Arrow columns → Arrow batches of a destination table's schema, without
//! JSON text in between. A column whose decoded type is stored as-is (integers, floats,
//! booleans, text, binary, dates, times, timestamps, decimals up to 38 digits) is gathered from
//! the decoded batches with `interleave` (and cast where only the representation differs: 8/16-
//! bit integers, the UTC zone's name, binary offsets), and so is a JSON document column: its
//! stored value is the document's text exactly as Debezium sent it, a document that is a JSON
//! string keeps its quotes and a `null` document is the text `null`, not SQL NULL. Any other
//! column — stored as canonical text, a duration count, a list — and any column with TOAST fills
//! or metadata values goes cell by cell through the canonical rendering and `arrow_rows`,
//! exactly as rendered rows do (a document column's cells still stored as their text).

use ahash::AHashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use decant_model::sink::{OutputShape, TypedRow};
use decant_model::{ColumnType, TimeUnit};
use serde_json::Value;

use crate::arrow_rows::column;

/// An upsert kept until its batch commits. 32 bytes: a batch holds one per change (hundreds of
/// thousands between Iceberg commits), and the cells that do not come from the decoded batch
/// (TOAST fills, missing cells, metadata values) are rare enough to live behind a box.
pub(crate) struct StagedRow {
    batch_id: u64,
    row: u32,
    /// Still its key's final upsert in the batch (a later change of the key clears it).
    pub(crate) live: bool,
    shape: Arc<OutputShape>,
    extra: Option<Box<Extra>>,
}

/// A staged row's cells that are not in the decoded batch.
struct Extra {
    fills: Vec<(usize, String)>,
    missing: Vec<usize>,
    meta: Vec<String>,
}

impl StagedRow {
    pub(crate) fn new(r: &TypedRow<'_>, shape: &Arc<OutputShape>) -> Result<Self, String> {
        let row = u32::try_from(r.row)
            .map_err(|_| format!("decoded batch {} has over 2^32 rows", r.batch_id))?;
        let extra =
            (!r.fills.is_empty() || !r.missing.is_empty() || !r.meta.is_empty()).then(|| {
                Box::new(Extra {
                    fills: r.fills.to_vec(),
                    missing: r.missing.to_vec(),
                    meta: r.meta.to_vec(),
                })
            });
        Ok(StagedRow {
            batch_id: r.batch_id,
            row,
            live: true,
            shape: shape.clone(),
            extra,
        })
    }

    /// Memory the row holds, its cells outside the decoded batch included (a TOAST fill is a
    /// copy of the stored value).
    pub(crate) fn held_bytes(&self) -> usize {
        std::mem::size_of::<StagedRow>()
            + self.extra.as_ref().map_or(0, |e| {
                std::mem::size_of::<Extra>()
                    + e.fills
                        .iter()
                        .map(|(_, v)| std::mem::size_of::<(usize, String)>() + v.len())
                        .sum::<usize>()
                    + e.missing.len() * std::mem::size_of::<usize>()
                    + e.meta
                        .iter()
                        .map(|m| std::mem::size_of::<String>() + m.len())
                        .sum::<usize>()
            })
    }

    fn row(&self) -> usize {
        self.row as usize
    }

    fn fills(&self) -> &[(usize, String)] {
        self.extra.as_ref().map_or(&[], |e| &e.fills)
    }

    fn missing(&self) -> &[usize] {
        self.extra.as_ref().map_or(&[], |e| &e.missing)
    }

    fn meta(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |e| &e.meta)
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

/// Whether decoded cell `row` of `array` (a column of type `ty`) is stored exactly as decoded:
/// its type is [`stored_as_is`], or it is a JSON document, decoded as its text, which is its
/// stored value (SQL NULL stays null; a document that is a JSON string or `null` keeps its text).
fn gathered_as_is(ty: &ColumnType, array: &dyn Array) -> bool {
    stored_as_is(ty) || (is_document(ty) && array.as_string_opt::<i32>().is_some())
}

/// Whether a column of type `ty` holds JSON documents, stored as their text verbatim. The
/// canonical rendering embeds a document as JSON, where a document that is a JSON string looks
/// like a text column's value and a `null` document like SQL NULL; a document column's cells
/// must not be read back the way a text column's are.
fn is_document(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Json)
}

/// Where one output cell comes from.
enum Cell<'r> {
    Null,
    Decoded(&'r ArrayRef, &'r Field, usize),
    Text(&'r str),
}

/// The decoded batches of the open batch, by id.
pub(crate) type Decoded = AHashMap<u64, RecordBatch>;

/// Builds `schema`'s batch from `rows`. The sink passes its staged rows in the order they were
/// written, i.e. decoding order: the gather reads each decoded batch in one run, which keeps its
/// source lookups and memory reads local.
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

/// The decoded batch of a staged row. Rows come in runs of one batch (decoding order), so the
/// last lookup answers most cells without hashing.
struct Batches<'d> {
    decoded: &'d Decoded,
    last: Option<(u64, &'d RecordBatch)>,
}

impl<'d> Batches<'d> {
    fn new(decoded: &'d Decoded) -> Self {
        Batches {
            decoded,
            last: None,
        }
    }

    fn of(&mut self, id: u64) -> Result<&'d RecordBatch, String> {
        if let Some((last, batch)) = self.last
            && last == id
        {
            return Ok(batch);
        }
        let batch = self
            .decoded
            .get(&id)
            .ok_or_else(|| format!("decoded batch {id} is gone"))?;
        self.last = Some((id, batch));
        Ok(batch)
    }
}

fn cell<'r>(
    r: &'r StagedRow,
    pos: Option<usize>,
    batches: &mut Batches<'r>,
) -> Result<Cell<'r>, String> {
    let Some(i) = pos else {
        return Ok(Cell::Null);
    };
    if r.missing().contains(&i) {
        return Ok(Cell::Null);
    }
    if let Some((_, text)) = r.fills().iter().find(|(c, _)| *c == i) {
        return Ok(Cell::Text(text));
    }
    match r.shape.sources.get(i).copied().flatten() {
        Some(col) => {
            let batch = batches.of(r.batch_id)?;
            let schema = batch.schema_ref();
            Ok(Cell::Decoded(batch.column(col), schema.field(col), r.row()))
        }
        None => {
            let meta_index = r.shape.sources[..i].iter().filter(|s| s.is_none()).count();
            r.meta()
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
    let mut batches = Batches::new(decoded);
    for r in rows {
        let pos = positions.of(&r.shape);
        // `cell` answers `Decoded` only for a cell that is neither missing nor filled from the
        // state, so only its type and value decide.
        match cell(r, pos, &mut batches)? {
            Cell::Decoded(array, _, row)
                if pos.is_some_and(|i| gathered_as_is(&r.shape.columns[i].1, array.as_ref())) =>
            {
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
        let pos = positions.of(&r.shape);
        let document = pos.is_some_and(|i| is_document(&r.shape.columns[i].1));
        let text = match cell(r, pos, &mut batches)? {
            Cell::Null => {
                values.push(None);
                continue;
            }
            Cell::Decoded(array, _, row) if array.is_null(row) => {
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
        // A document (decoded, or its TOAST fill from the state) is rendered as its own text.
        // Otherwise as `arrow_rows::parse_row`: a text column's non-string JSON is kept as exact
        // text.
        let value = if document {
            Some(Value::String(text.to_owned()))
        } else if text == "null" {
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

    /// Every column of decoded table `schema` as output, keyed as the source is.
    fn shape_of(schema: &decant_model::TableSchema) -> Arc<OutputShape> {
        Arc::new(OutputShape {
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
        })
    }

    /// The Arrow schema of the Iceberg table the sink creates for `shape`.
    fn target_of(shape: &OutputShape) -> SchemaRef {
        let layout = TableLayout::new(shape.columns.clone(), shape.key.clone());
        Arc::new(
            iceberg::arrow::schema_to_arrow_schema(
                &layout.fresh_schema("t").expect("iceberg schema"),
            )
            .expect("arrow schema"),
        )
    }

    /// The batch's memory bound (`commit_max_bytes`) sees a TOAST fill, a copy of the stored
    /// value that the decoded batch does not hold.
    #[test]
    fn a_staged_rows_fills_count_toward_the_batch_bytes() {
        let batches = decoded_fixture();
        let shape = shape_of(&batches[0].schema);
        let row = |extra| StagedRow {
            batch_id: 0,
            row: 0,
            live: true,
            shape: shape.clone(),
            extra,
        };
        let plain = row(None).held_bytes();
        assert_eq!(plain, std::mem::size_of::<StagedRow>());
        let filled = row(Some(Box::new(Extra {
            fills: vec![(1, "x".repeat(1 << 20))],
            missing: vec![2],
            meta: vec!["s.public.t".into()],
        })))
        .held_bytes();
        assert!(filled > plain + (1 << 20) + "s.public.t".len(), "{filled}");
    }

    /// Gathers every plain upsert of decoded `batch` (id `id`) into its Iceberg table's batch
    /// and checks it equals the canonical rendering's; returns the rows checked.
    fn gathered_equals_canonical(id: usize, batch: &decant_decode::ChangeBatch) -> usize {
        let schema = &batch.schema;
        let shape = shape_of(schema);
        if shape.key.is_empty() {
            return 0;
        }
        let target = target_of(&shape);
        let upserts: Vec<usize> = (0..batch.len())
            .filter(|&r| batch.meta[r].kind == ChangeKind::Upsert && batch.unchanged(r).is_empty())
            .collect();
        if upserts.is_empty() {
            return 0;
        }
        let staged: Vec<StagedRow> = upserts
            .iter()
            .map(|&row| StagedRow {
                batch_id: id as u64,
                row: row as u32,
                live: true,
                shape: shape.clone(),
                extra: None,
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
                parse_row(&target, &json, &[]).expect("parses")
            })
            .collect();
        let mut canonical = batch_from_rows(&target, &rendered).expect("canonical");
        // A JSON document's stored value is its decoded text, which the rendered row cannot
        // tell from a text column's value (a string document) or from SQL NULL (`null`).
        for (i, c) in schema.columns.iter().enumerate() {
            if is_document(&c.ty) {
                let rows: Vec<u32> = upserts.iter().map(|&r| r as u32).collect();
                let taken = arrow_select::take::take(
                    batch.rows.column(i),
                    &arrow_array::UInt32Array::from(rows),
                    None,
                )
                .expect("take");
                let at = target.index_of(&c.name).expect("column");
                let mut columns = canonical.columns().to_vec();
                columns[at] = taken;
                canonical = RecordBatch::try_new(target.clone(), columns).expect("batch");
            }
        }
        assert_eq!(gathered, canonical, "table {}", schema.table);
        upserts.len()
    }

    /// The `doc` column of `batch` (decoded rows of table `t`) as the Iceberg sink stores it,
    /// with the decoded row `filled` taking its document from the state instead.
    fn stored_docs(
        batch: &decant_decode::ChangeBatch,
        filled: Option<(usize, &str)>,
    ) -> Vec<Option<String>> {
        let shape = shape_of(&batch.schema);
        let target = target_of(&shape);
        let doc = shape.position("doc").expect("doc column");
        let staged: Vec<StagedRow> = (0..batch.len())
            .map(|row| StagedRow {
                batch_id: 0,
                row: row as u32,
                live: true,
                shape: shape.clone(),
                extra: filled.filter(|(r, _)| *r == row).map(|(_, text)| {
                    Box::new(Extra {
                        fills: vec![(doc, text.to_owned())],
                        missing: vec![],
                        meta: vec![],
                    })
                }),
            })
            .collect();
        let refs: Vec<&StagedRow> = staged.iter().collect();
        let decoded = Decoded::from([(0, batch.rows.clone())]);
        let stored = batch_of(&target, &refs, &decoded).expect("gathered");
        let docs = stored
            .column(target.index_of("doc").expect("doc"))
            .as_string::<i32>();
        (0..docs.len())
            .map(|i| docs.is_valid(i).then(|| docs.value(i).to_owned()))
            .collect()
    }

    /// Gathering decoded columns gives exactly the batch the canonical rendering gives.
    #[test]
    fn gathered_columns_equal_the_canonical_path() {
        let mut checked = 0;
        for (id, batch) in decoded_fixture().into_iter().enumerate() {
            checked += gathered_equals_canonical(id, &batch);
        }
        assert!(checked > 10, "only {checked} rows checked");
    }

    /// A JSON document is stored as the text Debezium sent, number digits, a string
    /// document's quotes and a `null` document included; SQL NULL stays null. Both ways: the
    /// gather from decoded columns, and cell by cell (a row's document filled from the state).
    #[test]
    fn json_documents_are_stored_as_sent() {
        let cols = r#"[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"doc"}]"#;
        let schema = format!(
            r#"{{"type":"struct","optional":false,"name":"s.public.t.Envelope","fields":[{{"type":"struct","optional":true,"name":"s.public.t.Value","field":"before","fields":{cols}}},{{"type":"struct","optional":true,"name":"s.public.t.Value","field":"after","fields":{cols}}},{{"type":"struct","optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source","fields":[{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}}]}},{{"type":"string","optional":false,"field":"op"}}]}}"#
        );
        let key_schema = r#"{"type":"struct","optional":false,"name":"s.public.t.Key","fields":[{"type":"int64","optional":false,"field":"id"}]}"#;
        // (as Debezium sends it, as stored)
        let docs = [
            (
                r#""{\"n\":12345678901234567890.5,\"tags\":[\"a\"]}""#,
                Some(r#"{"n":12345678901234567890.5,"tags":["a"]}"#),
            ),
            (r#""[1,2,3]""#, Some("[1,2,3]")),
            (r#""42""#, Some("42")),
            ("null", None),
            (r#""\"a JSON string\"""#, Some(r#""a JSON string""#)),
            (r#""null""#, Some("null")),
        ];
        let mut decoder = Decoder::new(DecoderConfig::default()).expect("decoder");
        for (id, (doc, _)) in docs.iter().enumerate() {
            let key = format!(r#"{{"schema":{key_schema},"payload":{{"id":{id}}}}}"#);
            let value = format!(
                r#"{{"schema":{schema},"payload":{{"before":null,"after":{{"id":{id},"doc":{doc}}},"source":{{"connector":"postgresql","db":"d","schema":"public","table":"t"}},"op":"c"}}}}"#
            );
            let rec = KafkaRecord {
                topic: "s.public.t",
                partition: 0,
                offset: id as i64,
                timestamp_ms: None,
                headers: &[],
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
            };
            decoder.decode(&rec).expect("decodes");
        }
        let batches = decoder.take_batches().expect("batches");
        assert_eq!(batches.len(), 1);
        let expected: Vec<Option<String>> =
            docs.iter().map(|(_, s)| s.map(str::to_owned)).collect();
        // Gathered from the decoded column.
        assert_eq!(stored_docs(&batches[0], None), expected);
        // Cell by cell: the first row's document comes from the state, a JSON string.
        let mut filled = expected.clone();
        filled[0] = Some(r#""filled""#.to_owned());
        assert_eq!(stored_docs(&batches[0], Some((0, r#""filled""#))), filled);
    }
}
