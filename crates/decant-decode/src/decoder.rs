//! The decoder: Kafka record in, rows appended to per-table batches (or a control event) out.
//!
//! Flow for a JSON value: recognise the `{"schema","payload"}` framing (the schema is compared
//! byte-for-byte with the last one seen, so an unchanged embedded schema costs one `memcmp`),
//! split the payload into raw member slices in one lazy pass, then parse only what the op needs:
//! `after` for upserts, the key (Kafka key or `before`'s key columns) for deletes, and the
//! position fields of `source`. Everything else is skipped unparsed. A JSON_SR value is that
//! payload alone: its registered JSON Schema, translated to Connect's ([`crate::json_schema`])
//! and classified once per schema id, stands in for the embedded schema.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::json::{KeyOrder, Kind as JsonType, Value as LazyValue};
use ahash::AHashMap;
use apache_avro::types::Value as AvroValue;
use decant_model::{
    ChangeKind, ControlEvent, KafkaRecord, RecordCoordinates, SourceOp, SourcePosition, TableId,
    TableSchema,
};
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value as ProtoValue};
use serde_json::Value as Json;

use crate::avro::{self, AvroEnvelope};
use crate::batch::{ChangeBatch, RowMeta, TableBatchBuilder};
use crate::convert::{Appended, ConvCtx, FieldError, Placeholder, append_json, excerpt};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::json_schema;
use crate::plan::RowPlan;
use crate::protobuf;
use crate::registry::{SchemaFormat, SchemaResolver};
use crate::source::{SourceRead, SourceReader, TableRef};
use crate::wire::{self, BinaryText, SourceKind, Wire, WireField};

/// What to do with a Kafka record whose value is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstonePolicy {
    /// Report it as a `tombstone` control event (Debezium already sent the delete before it).
    #[default]
    Skip,
    /// Treat it as a delete of the record key (log-compaction semantics).
    Delete,
}

/// A table whose schema is given in configuration, for schemaless JSON.
#[derive(Debug, Clone, Default)]
pub struct DeclaredTable {
    /// Column name and declared type (see [`Wire::from_declared`]), in order.
    pub columns: Vec<(String, String)>,
    /// Key column names; used when records carry no Kafka key.
    pub key: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub tombstones: TombstonePolicy,
    /// Declared schemas by table (`schema.table` / `db.table`).
    pub tables: HashMap<TableId, DeclaredTable>,
    /// Best-effort types for schemaless tables nobody declared. Off by default: a guessed
    /// MicroTimestamp is just a number.
    pub infer_schemaless: bool,
    /// Debezium's `unavailable.value.placeholder`.
    pub unavailable_placeholder: String,
    /// Debezium's `binary.handling.mode`, to recognise string-encoded binary columns whose schema
    /// says which source type they had (`column.propagate.source.type`).
    pub binary_handling_mode: Option<BinaryText>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            tombstones: TombstonePolicy::Skip,
            tables: HashMap::new(),
            infer_schemaless: false,
            unavailable_placeholder: "__debezium_unavailable_value".into(),
            binary_handling_mode: None,
        }
    }
}

impl DecoderConfig {
    /// Declares a table's schema for schemaless JSON: `(column, type)` pairs in order (types as
    /// accepted by [`Wire::from_declared`]) and the key columns.
    pub fn declare(mut self, table: &str, key: &[&str], columns: &[(&str, &str)]) -> Self {
        self.tables.insert(
            TableId::parse(table),
            DeclaredTable {
                columns: columns
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect(),
                key: key.iter().map(|k| k.to_string()).collect(),
            },
        );
        self
    }
}

/// A record that is not a row.
#[derive(Debug, Clone)]
pub struct ControlRecord {
    pub seq: u64,
    pub coords: RecordCoordinates,
    pub table: Option<TableId>,
    pub event: ControlEvent,
    pub position: SourcePosition,
    /// The Kafka key as JSON text, when there was one.
    pub key: Option<String>,
}

/// What one record became.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A row appended to the batch of `table`.
    Row {
        table: Arc<TableId>,
        kind: ChangeKind,
    },
    Control(Box<ControlRecord>),
}

/// How a value schema classified its records.
#[derive(Debug)]
enum ValueShape {
    Data { row: Arc<[WireField]> },
    Heartbeat,
    Transaction,
    SchemaChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Schema,
    Declared,
    Inferred,
}

struct TableState {
    id: Arc<TableId>,
    fields: Arc<[WireField]>,
    origin: Origin,
    builder: TableBatchBuilder,
    index: AHashMap<String, usize>,
    /// Which columns the current row has filled; reused.
    filled: Vec<bool>,
    /// Member names of the last row image, in order, with their columns.
    image_order: KeyOrder<Option<usize>>,
    /// The member sequence of the last whole JSON image, for one-pass decoding of the next.
    plan: RowPlan,
}

impl TableState {
    fn new(id: TableId, fields: Arc<[WireField]>, origin: Origin, key: Vec<usize>) -> Self {
        let columns = fields.iter().map(WireField::column).collect();
        let schema = Arc::new(TableSchema::new(id.clone(), columns, key));
        let index = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        TableState {
            filled: vec![false; fields.len()],
            id: Arc::new(id),
            fields,
            origin,
            builder: TableBatchBuilder::new(schema),
            index,
            image_order: KeyOrder::names_only(),
            plan: RowPlan::default(),
        }
    }

    fn schema(&self) -> &Arc<TableSchema> {
        &self.builder.schema
    }
}

/// The column named `name`: `hint` first (columns usually come in schema order), then the index.
fn column_of(
    fields: &[WireField],
    index: &AHashMap<String, usize>,
    name: &str,
    hint: usize,
) -> Option<usize> {
    match fields.get(hint) {
        Some(f) if f.name == name => Some(hint),
        _ => index.get(name).copied(),
    }
}

/// Which members of an image to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageMode {
    All,
    /// Only key columns; the rest are left null (delete keys from `before` or the Kafka key).
    KeyOnly,
}

/// A row image in either encoding.
enum Image<'a, 'v> {
    Json(&'v LazyValue<'a>),
    /// An object being consumed in place by the enclosing scan.
    Pull(&'v mut crate::json::Members<'a>),
    Avro(&'v AvroValue),
    Proto(&'v DynamicMessage),
}

/// A registry-framed Kafka key, decoded.
enum FramedKey {
    Avro(AvroValue),
    Protobuf(DynamicMessage),
}

impl FramedKey {
    fn image(&self) -> Image<'static, '_> {
        match self {
            FramedKey::Avro(v) => Image::Avro(v),
            FramedKey::Protobuf(m) => Image::Proto(m),
        }
    }

    /// The key's member names: the table's key columns.
    fn names(&self) -> Option<Vec<String>> {
        match self {
            FramedKey::Avro(v) => match avro::unwrap_union(v) {
                AvroValue::Record(members) => {
                    Some(members.iter().map(|(k, _)| k.clone()).collect())
                }
                _ => None,
            },
            FramedKey::Protobuf(m) => Some(
                m.descriptor()
                    .fields()
                    .map(|f| f.name().to_owned())
                    .collect(),
            ),
        }
    }
}

/// A change event from a registry-framed value (Avro or Protobuf), decoded into what the shared
/// op logic ([`Decoder::decode_framed_event`]) needs, whatever the encoding.
struct FramedEvent<'v> {
    /// The encoding's name, for errors.
    format: &'static str,
    op: Option<&'v str>,
    position: SourcePosition,
    table: Option<TableId>,
    /// The row image's columns (`None`: the schema is no Debezium envelope).
    row: Option<Arc<[WireField]>>,
    /// What a record without `op` is (heartbeat, schema change), told by its schema.
    control: Option<ControlEvent>,
    before: Option<Image<'static, 'v>>,
    after: Option<Image<'static, 'v>>,
    key: Option<&'v FramedKey>,
}

/// Failure inside a row image: either a field error (with path) or a column the schema lacks.
enum ImageError {
    Field(FieldError),
    Unknown(String),
    Other(DecodeErrorKind),
}

pub struct Decoder {
    config: DecoderConfig,
    declared: HashMap<TableId, (Arc<[WireField]>, Vec<String>)>,
    placeholder: Placeholder,
    /// The last embedded value schema, raw, for the byte-compare fast path.
    last_schema: Option<(Box<[u8]>, Arc<ValueShape>)>,
    /// Every embedded value schema seen, by hash of its raw bytes.
    schemas: FingerprintMap<Arc<ValueShape>>,
    key_schemas: FingerprintMap<Arc<[WireField]>>,
    hasher: ahash::RandomState,
    tables: Vec<TableState>,
    table_index: AHashMap<TableId, usize>,
    last_table: usize,
    /// Which table a topic's records belonged to last (for tombstones).
    topic_tables: AHashMap<String, usize>,
    /// The last (topic, table) noted in `topic_tables`.
    last_noted: Option<(String, usize)>,
    topics: AHashMap<String, Arc<str>>,
    last_topic: Option<Arc<str>>,
    resolver: Option<Box<dyn SchemaResolver>>,
    avro_cache: AHashMap<u32, Arc<avro::Registered>>,
    /// JSON_SR value schemas by id, classified once; `None` for an open schema (the documents
    /// are read schemaless).
    json_sr_shapes: AHashMap<u32, Option<Arc<ValueShape>>>,
    /// JSON_SR key schemas by id: their fields name the key columns (see `key_names`).
    json_sr_key_names: AHashMap<u32, Arc<[String]>>,
    /// Protobuf schemas compiled, by id (the format of every id is in `avro_cache`).
    protobuf_cache: AHashMap<u32, Arc<protobuf::Compiled>>,
    scratch: Vec<u8>,
    /// Member names of the last change-event payload, in order: the next record's are
    /// recognised by one compare each (see [`crate::json::KeyOrder`]).
    envelope_order: KeyOrder<EnvelopeField>,
    /// `source` blocks: the general reader and the plans learned from it.
    source: SourceReader,
    /// Names of the last `before` image: it is only validated on the way to `after`, and by
    /// names recognised in one compare that costs a fraction of a general skip.
    before_order: KeyOrder<()>,
    seq: u64,
    ready: Vec<ChangeBatch>,
}

type KResult<T> = Result<T, DecodeErrorKind>;

/// Parsed schemas by hash of their raw bytes; the raw bytes settle hash collisions.
type FingerprintMap<T> = AHashMap<u64, Vec<(Box<[u8]>, T)>>;

fn syntax(part: &'static str, e: impl std::fmt::Display) -> DecodeErrorKind {
    DecodeErrorKind::Syntax {
        part,
        message: e.to_string(),
    }
}

fn field_err(prefix: &str, e: FieldError) -> DecodeErrorKind {
    DecodeErrorKind::Field {
        path: format!("{prefix}{}", e.path),
        expected: e.expected,
        found: e.found,
    }
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Result<Self, DecodeErrorKind> {
        let mut declared = HashMap::new();
        for (id, t) in &config.tables {
            let fields = t
                .columns
                .iter()
                .map(|(name, ty)| {
                    Wire::from_declared(ty)
                        .map(|wire| WireField {
                            name: name.clone(),
                            wire,
                            optional: true,
                        })
                        .map_err(|e| {
                            DecodeErrorKind::Schema(format!("table {id}, column {name}: {e}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            for k in &t.key {
                if !t.columns.iter().any(|(n, _)| n == k) {
                    return Err(DecodeErrorKind::Schema(format!(
                        "table {id}: key column {k} is not a declared column"
                    )));
                }
            }
            declared.insert(id.clone(), (Arc::from(fields), t.key.clone()));
        }
        Ok(Decoder {
            placeholder: Placeholder::new(&config.unavailable_placeholder),
            config,
            declared,
            last_schema: None,
            schemas: AHashMap::new(),
            key_schemas: AHashMap::new(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            tables: Vec::new(),
            table_index: AHashMap::new(),
            last_table: usize::MAX,
            topic_tables: AHashMap::new(),
            last_noted: None,
            topics: AHashMap::new(),
            last_topic: None,
            resolver: None,
            avro_cache: AHashMap::new(),
            json_sr_shapes: AHashMap::new(),
            json_sr_key_names: AHashMap::new(),
            protobuf_cache: AHashMap::new(),
            scratch: Vec::new(),
            envelope_order: KeyOrder::default(),
            source: SourceReader::default(),
            before_order: KeyOrder::names_only(),
            seq: 0,
            ready: Vec::new(),
        })
    }

    /// Schema-registry-framed records (magic byte 0 + schema id) resolve their schema here.
    pub fn with_resolver(mut self, resolver: Box<dyn SchemaResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Rows decoded but not yet taken (open batches and those closed by schema changes).
    pub fn pending_rows(&self) -> usize {
        self.tables.iter().map(|t| t.builder.rows()).sum::<usize>()
            + self.ready.iter().map(ChangeBatch::len).sum::<usize>()
    }

    /// Finishes every open batch (and those closed by schema changes) and hands them over.
    pub fn take_batches(&mut self) -> Result<Vec<ChangeBatch>, DecodeErrorKind> {
        let mut out = std::mem::take(&mut self.ready);
        for t in &mut self.tables {
            if t.builder.rows() > 0 {
                out.push(
                    t.builder
                        .finish()
                        .map_err(|e| DecodeErrorKind::Internal(e.to_string()))?,
                );
            }
        }
        Ok(out)
    }

    /// Decodes one record. On error nothing of the record remains in any batch.
    pub fn decode(&mut self, rec: &KafkaRecord) -> Result<Outcome, DecodeError> {
        self.seq += 1;
        self.decode_inner(rec).map_err(|kind| DecodeError {
            coords: rec.coordinates(),
            kind,
        })
    }

    fn decode_inner(&mut self, rec: &KafkaRecord) -> KResult<Outcome> {
        let Some(value) = rec.value.filter(|v| !v.is_empty()) else {
            return self.tombstone(rec);
        };
        if value[0] == 0 && value.len() >= 5 {
            return self.decode_framed(rec, value);
        }
        self.decode_json(rec, value)
    }

    fn note_topic(&mut self, topic: &str, t: usize) {
        // Records of one topic come in runs: the last one noted needs no lookup.
        if self
            .last_noted
            .as_ref()
            .is_some_and(|(n, nt)| *nt == t && n == topic)
        {
            return;
        }
        if self.topic_tables.get(topic) != Some(&t) {
            self.topic_tables.insert(topic.to_owned(), t);
        }
        self.last_noted = Some((topic.to_owned(), t));
    }

    fn topic(&mut self, topic: &str) -> Arc<str> {
        if let Some(last) = &self.last_topic
            && &**last == topic
        {
            return last.clone();
        }
        let t = self.intern_topic(topic);
        self.last_topic = Some(t.clone());
        t
    }

    fn intern_topic(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.get(topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.insert(topic.to_owned(), t.clone());
        t
    }

    fn control(
        &mut self,
        rec: &KafkaRecord,
        table: Option<TableId>,
        event: ControlEvent,
        position: SourcePosition,
    ) -> Outcome {
        Outcome::Control(Box::new(ControlRecord {
            seq: self.seq,
            coords: rec.coordinates(),
            table,
            event,
            position,
            key: rec
                .key
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
        }))
    }

    fn tombstone(&mut self, rec: &KafkaRecord) -> KResult<Outcome> {
        let table = self.topic_tables.get(rec.topic).copied();
        if self.config.tombstones == TombstonePolicy::Skip {
            let id = table.map(|t| self.tables[t].id.clone());
            return Ok(self.control(
                rec,
                id.map(|a| (*a).clone()),
                ControlEvent::Tombstone,
                SourcePosition::default(),
            ));
        }
        let (Some(t), Some(key)) = (table, rec.key) else {
            return Err(DecodeErrorKind::Envelope(
                "tombstone (null value) to apply as a delete, but the topic's table or the record key is unknown".into(),
            ));
        };
        let meta = self.row_meta(
            rec,
            t,
            ChangeKind::Delete,
            SourceOp::Tombstone,
            SourcePosition::default(),
        );
        if let Some(framed) = self.framed_key(Some(key))? {
            self.append_row(t, meta, |dec, t| {
                dec.fill_image(t, framed.image(), ImageMode::KeyOnly, "key")
            })?;
        } else {
            let key_text =
                std::str::from_utf8(unframed(key)).map_err(|e| syntax("key (not UTF-8)", e))?;
            let key_payload = self.key_payload(key_text)?;
            self.append_row(t, meta, |dec, t| {
                dec.fill_image(t, Image::Json(&key_payload), ImageMode::KeyOnly, "key")
            })?;
        }
        Ok(Outcome::Row {
            table: self.tables[t].id.clone(),
            kind: ChangeKind::Delete,
        })
    }

    /// The metadata of a row of table `t` decoded from `rec`.
    fn row_meta(
        &mut self,
        rec: &KafkaRecord,
        t: usize,
        kind: ChangeKind,
        source_op: SourceOp,
        position: SourcePosition,
    ) -> RowMeta {
        RowMeta {
            seq: self.seq,
            kind,
            source_op,
            topic: self.topic(rec.topic),
            partition: rec.partition,
            offset: rec.offset,
            position,
            key_change: self.key_change(rec, t, kind),
        }
    }

    /// The other key of a primary-key change, from the header Debezium puts on its two halves
    /// (`__debezium.newkey` on the old key's delete, `__debezium.oldkey` on the new key's
    /// create), decoded like a record key into a one-row batch of table `t`. The header holds
    /// the key struct as the worker's header converter wrote it: `SimpleHeaderConverter` (the
    /// default) writes JSON-like text, `JsonConverter` a `{"schema","payload"}` envelope. A header
    /// that does not decode as the table's key gives `None`: the row itself is still right, and
    /// the pipeline then treats the key as new (a TOAST value it needs is then reported by
    /// `on_toast_missing`, never invented).
    fn key_change(
        &mut self,
        rec: &KafkaRecord,
        t: usize,
        kind: ChangeKind,
    ) -> Option<Arc<ChangeBatch>> {
        if rec.headers.is_empty() {
            return None;
        }
        let name = match kind {
            ChangeKind::Upsert => "__debezium.oldkey",
            ChangeKind::Delete => "__debezium.newkey",
        };
        let text = std::str::from_utf8(unframed(rec.header(name)?)).ok()?;
        if self.tables[t].schema().key.is_empty() {
            return None;
        }
        let payload = self.key_payload(text).ok()?;
        if payload.kind() != JsonType::Object {
            return None;
        }
        // The key row is built in a builder of its own, swapped in for the fill so that the
        // image machinery (plan, converters, placeholder) is the one every row goes through.
        let mut one = TableBatchBuilder::new(self.tables[t].schema().clone());
        std::mem::swap(&mut self.tables[t].builder, &mut one);
        let filled = self.fill_image(t, Image::Json(&payload), ImageMode::KeyOnly, "key");
        std::mem::swap(&mut self.tables[t].builder, &mut one);
        filled.ok()?;
        // The other half of the change: the old key is deleted, the new one created.
        let (kind, source_op) = match kind {
            ChangeKind::Upsert => (ChangeKind::Delete, SourceOp::Delete),
            ChangeKind::Delete => (ChangeKind::Upsert, SourceOp::Create),
        };
        let meta = RowMeta {
            seq: self.seq,
            kind,
            source_op,
            topic: self.topic(rec.topic),
            partition: rec.partition,
            offset: rec.offset,
            position: SourcePosition::default(),
            key_change: None,
        };
        one.commit_row(meta);
        let batch = one.finish().ok()?;
        // A key with a column missing or null names no row.
        let complete = batch
            .schema
            .key
            .iter()
            .all(|&k| batch.rows.column(k).null_count() == 0);
        complete.then(|| Arc::new(batch))
    }

    // ---------------------------------------------------------------- JSON

    fn decode_json(&mut self, rec: &KafkaRecord, bytes: &[u8]) -> KResult<Outcome> {
        const PREFIX: &[u8] = b"{\"schema\":";
        const PAYLOAD: &[u8] = b",\"payload\":";
        // Fast path: the same embedded schema as last time costs one memcmp, and only the
        // payload needs UTF-8 validation (the schema bytes were validated when first parsed).
        if let Some((raw, shape)) = &self.last_schema {
            let end = PREFIX.len() + raw.len();
            if bytes.starts_with(PREFIX)
                && bytes.len() > end + PAYLOAD.len()
                && bytes[PREFIX.len()..end] == raw[..]
                && bytes[end..].starts_with(PAYLOAD)
            {
                let payload = utf8(&bytes[end + PAYLOAD.len()..])?.trim_end();
                if let Some(payload) = payload.strip_suffix('}') {
                    let shape = shape.clone();
                    return self.decode_payload(rec, payload.trim(), Some(shape));
                }
            }
        }
        let text = utf8(bytes)?;
        // Bare envelopes (no schema framing) go straight to the payload pass.
        let first_key = text
            .trim_start()
            .strip_prefix('{')
            .map(str::trim_start)
            .unwrap_or("");
        if !(first_key.starts_with("\"schema\"") || first_key.starts_with("\"payload\"")) {
            return self.decode_payload(rec, text, None);
        }
        let mut schema_raw: Option<&str> = None;
        let mut payload: Option<&str> = None;
        let mut is_envelope_root = false;
        for entry in crate::json::members(text).map_err(|e| syntax("JSON value", e))? {
            let (k, v) = entry.map_err(|e| syntax("JSON value", e))?;
            match &*k {
                "schema" => schema_raw = Some(v.raw()),
                "payload" => payload = Some(v.raw()),
                _ => is_envelope_root = true,
            }
        }
        let shape = match schema_raw {
            Some(s) if s != "null" => Some(self.value_shape(s)?),
            _ => None,
        };
        match payload {
            Some(p) if !is_envelope_root || schema_raw.is_some() => {
                if p == "null" {
                    return self.tombstone(rec);
                }
                self.decode_payload(rec, p, shape)
            }
            _ => self.decode_payload(rec, text, None),
        }
    }

    fn value_shape(&mut self, raw: &str) -> KResult<Arc<ValueShape>> {
        let h = self.hasher.hash_one(raw.as_bytes());
        if let Some(found) = self
            .schemas
            .get(&h)
            .and_then(|v| v.iter().find(|(r, _)| &r[..] == raw.as_bytes()))
        {
            let shape = found.1.clone();
            self.last_schema = Some((found.0.clone(), shape.clone()));
            return Ok(shape);
        }
        let node: Json = serde_json::from_str(raw).map_err(|e| syntax("schema", e))?;
        let shape = Arc::new(self.classify_value_schema(&node)?);
        let raw: Box<[u8]> = raw.as_bytes().into();
        self.schemas
            .entry(h)
            .or_default()
            .push((raw.clone(), shape.clone()));
        self.last_schema = Some((raw, shape.clone()));
        Ok(shape)
    }

    fn binary_param(&self) -> Option<&'static str> {
        self.config.binary_handling_mode.map(|m| match m {
            BinaryText::Base64 => "base64",
            BinaryText::Base64UrlSafe => "base64-url-safe",
            BinaryText::Hex => "hex",
        })
    }

    fn classify_value_schema(&self, node: &Json) -> KResult<ValueShape> {
        let name = node.get("name").and_then(Json::as_str).unwrap_or("");
        if name.ends_with(".Heartbeat") {
            return Ok(ValueShape::Heartbeat);
        }
        if name.ends_with("TransactionMetadataValue") {
            return Ok(ValueShape::Transaction);
        }
        if name.ends_with("SchemaChangeValue") {
            return Ok(ValueShape::SchemaChange);
        }
        let fields = node.get("fields").and_then(Json::as_array);
        let image = fields.and_then(|fs| {
            fs.iter().find(|f| {
                matches!(
                    f.get("field").and_then(Json::as_str),
                    Some("after" | "before")
                ) && f.get("type").and_then(Json::as_str) == Some("struct")
            })
        });
        match image {
            Some(img) => {
                let mut img = img.clone();
                self.inject_binary_mode(&mut img);
                let row = wire::connect_fields(&img).map_err(DecodeErrorKind::Schema)?;
                // The connector (named by the `source` schema) decides what some types mean.
                let source = fields.and_then(|fs| {
                    fs.iter()
                        .find(|f| f.get("field").and_then(Json::as_str) == Some("source"))
                });
                let kind =
                    SourceKind::of_source_schema(source.and_then(|s| s.get("name")?.as_str()));
                Ok(ValueShape::Data {
                    row: kind.row_fields(row).into(),
                })
            }
            None => {
                let has = |n: &str| {
                    fields.is_some_and(|fs| {
                        fs.iter()
                            .any(|f| f.get("field").and_then(Json::as_str) == Some(n))
                    })
                };
                if has("op") {
                    // A truncate/message-only envelope without row images.
                    Ok(ValueShape::Data {
                        row: Arc::from(Vec::new()),
                    })
                } else if has("ddl") || has("tableChanges") || has("historyRecord") {
                    Ok(ValueShape::SchemaChange)
                } else if has("status") && has("id") {
                    Ok(ValueShape::Transaction)
                } else if has("ts_ms") && fields.is_some_and(|f| f.len() == 1) {
                    Ok(ValueShape::Heartbeat)
                } else {
                    Err(DecodeErrorKind::Envelope(format!(
                        "value schema {name:?} is not a Debezium envelope, heartbeat, transaction or schema-change record"
                    )))
                }
            }
        }
    }

    /// Passes `binary.handling.mode` to the schema parser through the field parameters.
    fn inject_binary_mode(&self, node: &mut Json) {
        let Some(mode) = self.binary_param() else {
            return;
        };
        if let Some(params) = node.get_mut("parameters").and_then(Json::as_object_mut) {
            params.insert("decant.binary.mode".into(), Json::String(mode.into()));
        }
        if let Some(fields) = node.get_mut("fields").and_then(Json::as_array_mut) {
            fields.iter_mut().for_each(|f| self.inject_binary_mode(f));
        }
        if let Some(items) = node.get_mut("items") {
            self.inject_binary_mode(items);
        }
    }

    fn decode_payload(
        &mut self,
        rec: &KafkaRecord,
        payload: &str,
        shape: Option<Arc<ValueShape>>,
    ) -> KResult<Outcome> {
        if !payload.trim_start().starts_with('{') {
            return Err(DecodeErrorKind::Envelope(format!(
                "expected a JSON object as the change event, found {}",
                excerpt(payload)
            )));
        }
        let mut m = Members::default();
        // A row speculatively decoded into the last table while scanning (see `scan_payload`).
        let mut spec: Option<usize> = None;
        let result = self
            .scan_payload(payload, shape.as_deref(), &mut m, &mut spec)
            .and_then(|()| self.finish_payload(rec, payload, shape, &mut m, &mut spec));
        if let Some(t) = spec {
            self.tables[t].builder.rollback_row();
        }
        result
    }

    /// One pass over the payload's members. `after` is decoded straight into the table the
    /// previous record went to, because `source` (which names the table) comes after it; if the
    /// guess turns out wrong the row is rolled back and decoded again.
    fn scan_payload<'p>(
        &mut self,
        payload: &'p str,
        shape: Option<&ValueShape>,
        m: &mut Members<'p>,
        spec: &mut Option<usize>,
    ) -> KResult<()> {
        let mut iter = crate::json::members(payload).map_err(|e| syntax("payload", e))?;
        let mut index = 0;
        while let Some(entry) =
            iter.next_key_in_order(&mut self.envelope_order, index, EnvelopeField::of)
        {
            let (field, start) = entry.map_err(|e| syntax("payload", e))?;
            index += 1;
            m.count += 1;
            match field {
                EnvelopeField::After => {
                    let mut consumed = None;
                    if spec.is_none()
                        && let Some(t) = self.speculation_target(shape)
                        && let Some(mut nested) = iter.nested_object(start)
                    {
                        let filled =
                            self.fill_image(t, Image::Pull(&mut nested), ImageMode::All, "after");
                        match filled.ok().and_then(|()| iter.resume_after(start, &nested)) {
                            Some(v) => {
                                *spec = Some(t);
                                consumed = Some(v);
                            }
                            None => self.tables[t].builder.rollback_row(),
                        }
                    }
                    m.after = Some(match consumed {
                        Some(v) => v,
                        None => iter
                            .skip_value_at(start)
                            .map_err(|e| syntax("payload", e))?,
                    });
                }
                EnvelopeField::Source => {
                    if let Some((end, read)) = self.source.read_planned(payload, start) {
                        m.parsed_source = Some(read);
                        m.source = Some(iter.read_through(start, end));
                        continue;
                    }
                    let mut parsed = None;
                    if let Some(mut nested) = iter.nested_object(start)
                        && let Ok(p) = self.source.read(&mut nested)
                        && let Some(v) = iter.resume_after(start, &nested)
                    {
                        self.source.learn(v.raw(), &p);
                        parsed = Some(p);
                        m.source = Some(v);
                    }
                    match parsed {
                        Some(p) => m.parsed_source = Some(p),
                        None => {
                            m.source = Some(
                                iter.skip_value_at(start)
                                    .map_err(|e| syntax("payload", e))?,
                            )
                        }
                    }
                }
                EnvelopeField::Before => {
                    let mut skipped = None;
                    if let Some(mut nested) = iter.nested_object(start)
                        && nested.skip_in_order(&mut self.before_order, |_| ()).is_ok()
                    {
                        skipped = iter.resume_after(start, &nested);
                    }
                    m.before = Some(match skipped {
                        Some(v) => v,
                        // Not an object, or malformed: the general skip says where and why.
                        None => iter
                            .skip_value_at(start)
                            .map_err(|e| syntax("payload", e))?,
                    });
                }
                other => {
                    let v = iter
                        .skip_value_at(start)
                        .map_err(|e| syntax("payload", e))?;
                    match other {
                        EnvelopeField::Op => m.op = Some(v),
                        EnvelopeField::Message => m.message = Some(v),
                        EnvelopeField::Status => m.status = Some(v),
                        EnvelopeField::Id => m.id = Some(v),
                        EnvelopeField::EventCount => m.event_count = Some(v),
                        EnvelopeField::Ddl => m.ddl = Some(v),
                        EnvelopeField::History => m.history = true,
                        EnvelopeField::TsMs => m.ts_seen = true,
                        EnvelopeField::Dynamo => m.dynamo = true,
                        EnvelopeField::Before
                        | EnvelopeField::After
                        | EnvelopeField::Source
                        | EnvelopeField::Other => {}
                    }
                }
            }
        }
        if !iter.ends_document() {
            return Err(syntax(
                "payload",
                "unexpected characters after the change event object",
            ));
        }
        Ok(())
    }

    fn speculation_target(&self, shape: Option<&ValueShape>) -> Option<usize> {
        let t = self.tables.get(self.last_table)?;
        let fits = match shape {
            Some(ValueShape::Data { row }) => Arc::ptr_eq(row, &t.fields),
            Some(_) => false,
            None => true,
        };
        fits.then_some(self.last_table)
    }

    fn finish_payload<'p>(
        &mut self,
        rec: &KafkaRecord,
        payload: &'p str,
        shape: Option<Arc<ValueShape>>,
        m: &mut Members<'p>,
        spec: &mut Option<usize>,
    ) -> KResult<Outcome> {
        let (position, table_ref) = match (m.parsed_source.take(), &m.source) {
            (Some(p), _) => p,
            (None, Some(s)) => self.parse_source(s)?,
            (None, None) => (SourcePosition::default(), None),
        };
        let table_id = || match &table_ref {
            Some(r) => TableId::new(r.0.as_ref(), r.1.as_ref()),
            None => table_from_topic(rec.topic),
        };
        match shape.as_deref() {
            Some(ValueShape::Heartbeat) => {
                return Ok(self.control(rec, None, ControlEvent::Heartbeat, position));
            }
            Some(ValueShape::Transaction) => {
                return self.transaction(rec, m.status, m.id, m.event_count);
            }
            Some(ValueShape::SchemaChange) => {
                let ddl = m.ddl.and_then(|d| d.as_str().map(Cow::into_owned));
                let table = table_ref.as_ref().map(|_| table_id());
                return Ok(self.control(rec, table, ControlEvent::SchemaChange { ddl }, position));
            }
            _ => {}
        }
        let Some(op) = m.op else {
            if m.dynamo {
                return crate::dynamodb::decode_streams_record(self, rec, payload);
            }
            if m.status.is_some() && m.id.is_some() {
                return self.transaction(rec, m.status, m.id, m.event_count);
            }
            if m.ddl.is_some() || m.history {
                let ddl = m.ddl.and_then(|d| d.as_str().map(Cow::into_owned));
                let table = table_ref.as_ref().map(|_| table_id());
                return Ok(self.control(rec, table, ControlEvent::SchemaChange { ddl }, position));
            }
            if m.ts_seen && m.count == 1 {
                return Ok(self.control(rec, None, ControlEvent::Heartbeat, position));
            }
            return Err(DecodeErrorKind::Envelope(
                "not a Debezium change event: no \"op\" member (and not a heartbeat, transaction or schema-change record)".into(),
            ));
        };
        let op_text = op.as_str().ok_or_else(|| {
            DecodeErrorKind::Envelope(format!(
                "\"op\" must be a string, found {}",
                excerpt(op.raw())
            ))
        })?;
        let op_text: &str = &op_text;
        let kind = match op_text {
            "c" | "r" | "u" | "C" | "R" | "U" => ChangeKind::Upsert,
            "d" | "D" => ChangeKind::Delete,
            _ => {
                if let Some(t) = spec.take() {
                    self.tables[t].builder.rollback_row();
                }
                return self.non_row_op(rec, op_text, m.message.as_ref(), table_id(), position);
            }
        };
        // The speculative row is ours when the record is an upsert of that very table.
        if let Some(t) = *spec {
            let same = kind == ChangeKind::Upsert
                && table_ref.as_ref().is_some_and(|r| {
                    self.tables[t].id.namespace == r.0 && self.tables[t].id.name == r.1
                });
            if same {
                *spec = None;
                self.note_topic(rec.topic, t);
                let op = SourceOp::from_code(op_text).unwrap_or(SourceOp::Update);
                let meta = self.row_meta(rec, t, kind, op, position);
                self.tables[t].builder.commit_row(meta);
                return Ok(Outcome::Row {
                    table: self.tables[t].id.clone(),
                    kind,
                });
            }
            *spec = None;
            self.tables[t].builder.rollback_row();
        }
        let table_id = table_id();
        // MongoDB: images are strings of Extended JSON.
        let mongo = crate::mongo::is_document_string(m.after.as_ref().or(m.before.as_ref()))
            || m.source
                .and_then(|s| s.get("connector"))
                .and_then(|c| c.as_str())
                .is_some_and(|c| c == "mongodb");
        if mongo {
            return crate::mongo::decode_event(
                self, rec, op_text, m.before, m.after, table_id, position,
            );
        }
        // Confluent's DynamoDB CDC envelope: images are {"document": "<typed JSON>"}.
        if crate::dynamodb::is_document_image(m.after.as_ref().or(m.before.as_ref())) {
            return crate::dynamodb::decode_document_envelope(
                self, rec, op_text, m.before, m.after, table_id, position,
            );
        }
        let fields = match shape.as_deref() {
            Some(ValueShape::Data { row }) if !row.is_empty() => {
                Some((row.clone(), Origin::Schema))
            }
            _ => None,
        };
        let sample = match kind {
            ChangeKind::Upsert => m.after.as_ref(),
            ChangeKind::Delete => m.before.as_ref(),
        };
        let t = self.table_for(rec, &table_id, fields, sample.map(Image::Json))?;
        let meta = self.row_meta(
            rec,
            t,
            kind,
            SourceOp::from_code(op_text).unwrap_or(SourceOp::Update),
            position,
        );
        match kind {
            ChangeKind::Upsert => {
                let Some(after) = m.after.filter(|a| a.raw() != "null") else {
                    return Err(DecodeErrorKind::Envelope(format!(
                        "op {op_text:?} without an \"after\" image"
                    )));
                };
                self.append_with_evolution(t, meta, |dec, t| {
                    dec.fill_image(t, Image::Json(&after), ImageMode::All, "after")
                })?;
            }
            ChangeKind::Delete => {
                let key_payload = match rec.key.map(unframed).map(std::str::from_utf8) {
                    Some(Ok(k)) => Some(self.key_payload(k)?),
                    Some(Err(e)) => return Err(syntax("key (not UTF-8)", e)),
                    None => None,
                };
                let before = m.before.filter(|b| b.raw() != "null");
                let has_key = !self.tables[t].schema().key.is_empty();
                match (key_payload, before) {
                    (Some(k), _) if k.kind() == JsonType::Object => {
                        self.append_row(t, meta, |dec, t| {
                            dec.fill_image(t, Image::Json(&k), ImageMode::KeyOnly, "key")
                        })?;
                    }
                    (_, Some(b)) => {
                        let mode = if has_key {
                            ImageMode::KeyOnly
                        } else {
                            ImageMode::All
                        };
                        self.append_row(t, meta, |dec, t| {
                            dec.fill_image(t, Image::Json(&b), mode, "before")
                        })?;
                    }
                    _ => {
                        return Err(DecodeErrorKind::Envelope(
                            "delete without a \"before\" image and without a record key: nothing identifies the deleted row (PostgreSQL: REPLICA IDENTITY NOTHING?)".into(),
                        ));
                    }
                }
            }
        }
        Ok(Outcome::Row {
            table: self.tables[t].id.clone(),
            kind,
        })
    }

    /// Truncate and logical-message records, and unknown op codes.
    fn non_row_op(
        &mut self,
        rec: &KafkaRecord,
        op: &str,
        message: Option<&LazyValue>,
        table: TableId,
        position: SourcePosition,
    ) -> KResult<Outcome> {
        match op {
            "t" | "T" => Ok(self.control(rec, Some(table), ControlEvent::Truncate, position)),
            "m" | "M" => {
                let text = |k: &str| {
                    message
                        .and_then(|m| m.get(k))
                        .and_then(|v| v.as_str().map(Cow::into_owned))
                };
                let event = ControlEvent::Message {
                    prefix: text("prefix").unwrap_or_default(),
                    content_b64: text("content"),
                };
                let table = Some(table).filter(|t| !t.name.is_empty());
                Ok(self.control(rec, table, event, position))
            }
            other => Err(DecodeErrorKind::Envelope(format!(
                "unknown \"op\" value {other:?} (expected c, r, u, d, t or m)"
            ))),
        }
    }

    fn transaction(
        &mut self,
        rec: &KafkaRecord,
        status: Option<LazyValue>,
        id: Option<LazyValue>,
        event_count: Option<LazyValue>,
    ) -> KResult<Outcome> {
        let id = id
            .and_then(|v| v.as_str().map(Cow::into_owned))
            .unwrap_or_default();
        let status = status.as_ref().and_then(|s| s.as_str());
        let event = match status.as_deref() {
            Some("BEGIN") => ControlEvent::TransactionBegin { id },
            Some("END") => ControlEvent::TransactionEnd {
                id,
                event_count: event_count.and_then(|v| v.as_i64()),
            },
            other => {
                return Err(DecodeErrorKind::Envelope(format!(
                    "transaction record with status {other:?} (expected BEGIN or END)"
                )));
            }
        };
        Ok(self.control(rec, None, event, SourcePosition::default()))
    }

    /// The Kafka key's payload: `{"schema","payload"}`-framed or bare.
    fn key_payload<'k>(&mut self, key: &'k str) -> KResult<LazyValue<'k>> {
        let root = crate::json::parse(key).map_err(|e| syntax("key", e))?;
        if root.kind() == JsonType::Object {
            let mut schema = None;
            let mut payload = None;
            let mut others = false;
            for entry in root.members().into_iter().flatten() {
                let (k, v) = entry.map_err(|e| syntax("key", e))?;
                match &*k {
                    "schema" => schema = Some(v),
                    "payload" => payload = Some(v),
                    _ => others = true,
                }
            }
            if let (Some(s), Some(p), false) = (schema, payload, others) {
                // Remember the key schema so its fields name the key columns.
                let raw = s.raw();
                let h = self.hasher.hash_one(raw.as_bytes());
                if !self
                    .key_schemas
                    .get(&h)
                    .is_some_and(|v| v.iter().any(|(r, _)| &r[..] == raw.as_bytes()))
                {
                    let node: Json =
                        serde_json::from_str(raw).map_err(|e| syntax("key schema", e))?;
                    let fields = wire::connect_fields(&node).map_err(DecodeErrorKind::Schema)?;
                    self.key_schemas
                        .entry(h)
                        .or_default()
                        .push((raw.as_bytes().into(), fields.into()));
                }
                return Ok(p);
            }
        }
        Ok(root)
    }

    /// Parses `source`: the position, plus the table it names. Other members are skipped.
    fn parse_source<'p>(
        &mut self,
        s: &LazyValue<'p>,
    ) -> KResult<(SourcePosition, Option<TableRef<'p>>)> {
        match s.members() {
            Some(mut iter) => self.source.read(&mut iter).map_err(|e| syntax("source", e)),
            None if s.is_null() => Ok((SourcePosition::default(), None)),
            None => Err(DecodeErrorKind::Envelope(format!(
                "\"source\" must be an object, found {}",
                excerpt(s.raw())
            ))),
        }
    }

    /// Finds or creates the state of `id`, making sure its schema matches `fields` (a new schema
    /// version closes the open batch first).
    fn table_for(
        &mut self,
        rec: &KafkaRecord,
        id: &TableId,
        fields: Option<(Arc<[WireField]>, Origin)>,
        sample: Option<Image>,
    ) -> KResult<usize> {
        let idx = if self.last_table < self.tables.len() && *self.tables[self.last_table].id == *id
        {
            Some(self.last_table)
        } else {
            self.table_index.get(id).copied()
        };
        if let Some(i) = idx {
            let t = &self.tables[i];
            let same = match &fields {
                Some((f, _)) => Arc::ptr_eq(f, &t.fields) || (**f == *t.fields),
                // Schemaless records use whatever the table has (learned, declared or inferred).
                None => true,
            };
            if same {
                self.last_table = i;
                self.note_topic(rec.topic, i);
                return Ok(i);
            }
        }
        let (fields, origin) = match fields {
            Some(f) => f,
            None => match self.declared.get(id) {
                Some((f, _)) => (f.clone(), Origin::Declared),
                None if self.config.infer_schemaless => {
                    (Arc::from(infer_fields(sample)), Origin::Inferred)
                }
                None => {
                    return Err(DecodeErrorKind::NoSchema {
                        table: id.to_string(),
                    });
                }
            },
        };
        let key_names: Vec<String> = match self.declared.get(id) {
            Some((_, k)) if !k.is_empty() => k.clone(),
            _ => self.key_names(rec),
        };
        let key = key_names
            .iter()
            .filter_map(|k| fields.iter().position(|f| &f.name == k))
            .collect();
        let state = TableState::new(id.clone(), fields, origin, key);
        let i = match idx {
            Some(i) => {
                let mut old = std::mem::replace(&mut self.tables[i], state);
                if old.builder.rows() > 0 {
                    self.ready.push(
                        old.builder
                            .finish()
                            .map_err(|e| DecodeErrorKind::Internal(e.to_string()))?,
                    );
                }
                i
            }
            None => {
                self.tables.push(state);
                self.table_index.insert(id.clone(), self.tables.len() - 1);
                self.tables.len() - 1
            }
        };
        self.last_table = i;
        self.topic_tables.insert(rec.topic.to_owned(), i);
        self.last_noted = None;
        Ok(i)
    }

    /// Key column names from the record's Kafka key: a JSON_SR key's registered schema, else the
    /// members of its (payload) object.
    fn key_names(&self, rec: &KafkaRecord) -> Vec<String> {
        if let Some([0, a, b, c, d, ..]) = rec.key
            && let Some(names) = self
                .json_sr_key_names
                .get(&u32::from_be_bytes([*a, *b, *c, *d]))
        {
            return names.to_vec();
        }
        let Some(text) = rec
            .key
            .map(unframed)
            .and_then(|k| std::str::from_utf8(k).ok())
        else {
            return Vec::new();
        };
        let Ok(Json::Object(obj)) = serde_json::from_str::<Json>(text) else {
            return Vec::new();
        };
        let payload = match (obj.get("schema"), obj.get("payload")) {
            (Some(_), Some(Json::Object(p))) if obj.len() == 2 => p,
            _ => &obj,
        };
        payload.keys().cloned().collect()
    }

    /// Appends one row via `fill`; rolls everything back on error.
    fn append_row(
        &mut self,
        t: usize,
        meta: RowMeta,
        fill: impl FnOnce(&mut Self, usize) -> Result<(), ImageError>,
    ) -> KResult<()> {
        match fill(self, t) {
            Ok(()) => {
                self.tables[t].builder.commit_row(meta);
                Ok(())
            }
            Err(e) => {
                self.tables[t].builder.rollback_row();
                Err(match e {
                    ImageError::Field(f) => field_err("", f),
                    ImageError::Unknown(name) => DecodeErrorKind::Schema(format!(
                        "column {name:?} is not in the {} schema of table {}",
                        match self.tables[t].origin {
                            Origin::Schema => "embedded",
                            Origin::Declared => "declared",
                            Origin::Inferred => "inferred",
                        },
                        self.tables[t].id
                    )),
                    ImageError::Other(k) => k,
                })
            }
        }
    }

    /// Like [`Self::append_row`], but an inferred schema grows by the unknown column and the row
    /// is decoded again.
    fn append_with_evolution(
        &mut self,
        t: usize,
        meta: RowMeta,
        fill: impl Fn(&mut Self, usize) -> Result<(), ImageError>,
    ) -> KResult<()> {
        for _ in 0..64 {
            match fill(self, t) {
                Ok(()) => {
                    self.tables[t].builder.commit_row(meta);
                    return Ok(());
                }
                Err(ImageError::Unknown(name)) if self.tables[t].origin == Origin::Inferred => {
                    self.tables[t].builder.rollback_row();
                    let mut fields: Vec<WireField> = self.tables[t].fields.to_vec();
                    fields.push(WireField {
                        name,
                        wire: Wire::Json,
                        optional: true,
                    });
                    self.evolve(t, fields)?;
                }
                Err(e) => {
                    return self.append_row(t, meta, |_, _| Err(e));
                }
            }
        }
        Err(DecodeErrorKind::Schema(
            "too many new columns in one row".into(),
        ))
    }

    fn evolve(&mut self, t: usize, fields: Vec<WireField>) -> KResult<()> {
        let key = self.tables[t].schema().key.clone();
        let state = TableState::new(
            (*self.tables[t].id).clone(),
            fields.into(),
            Origin::Inferred,
            key,
        );
        let mut old = std::mem::replace(&mut self.tables[t], state);
        if old.builder.rows() > 0 {
            self.ready.push(
                old.builder
                    .finish()
                    .map_err(|e| DecodeErrorKind::Internal(e.to_string()))?,
            );
        }
        Ok(())
    }

    /// Fills every column of the current row from an image (others null).
    fn fill_image(
        &mut self,
        t: usize,
        mut image: Image,
        mode: ImageMode,
        prefix: &str,
    ) -> Result<(), ImageError> {
        let Decoder {
            tables,
            placeholder,
            scratch,
            ..
        } = self;
        let TableState {
            fields,
            index,
            filled,
            builder,
            image_order,
            plan,
            ..
        } = &mut tables[t];
        let schema_version: &Arc<[WireField]> = fields;
        let (fields, index): (&[WireField], _) = (fields, &*index);
        filled.iter_mut().for_each(|f| *f = false);
        let mut ctx = ConvCtx {
            placeholder,
            scratch,
        };
        // A JSON image in the order of the last whole one: the one-pass plan (key-only images,
        // such as a delete's `before`, use it too, but never teach it).
        let json = matches!(image, Image::Json(_) | Image::Pull(_));
        let whole_json = json && matches!(mode, ImageMode::All);
        // Key columns, when only they are kept.
        let key_only = match mode {
            ImageMode::KeyOnly if !builder.schema.key.is_empty() => Some(builder.schema.clone()),
            _ => None,
        };
        let mut plan_missed = false;
        if json && plan.fits(schema_version) {
            let unstarted = match &image {
                Image::Json(v) => Some((v.raw(), 1)),
                Image::Pull(iter) => iter.unstarted(),
                Image::Avro(_) | Image::Proto(_) => None,
            };
            if let Some((text, from)) = unstarted {
                let key = key_only.as_ref().map(|s| &s.key[..]);
                match (plan.fill(text, from, fields, key, builder, &mut ctx), image) {
                    (Some(end), Image::Json(v)) if end == v.raw().len() => return Ok(()),
                    (Some(end), Image::Pull(iter)) => {
                        iter.consumed_to(end);
                        return Ok(());
                    }
                    (_, other) => image = other,
                }
                builder.rollback_row();
                plan_missed = whole_json;
            }
        }
        let mut members = 0usize;
        // Columns usually come in schema order: try the one after the last first.
        let hint = std::cell::Cell::new(0usize);
        let column = |name: &str| column_of(fields, index, name, hint.get());
        let mut one = |col: Option<usize>, name: &str, val: Member| -> Result<(), ImageError> {
            members += 1;
            let Some(col) = col else {
                if key_only.is_some() {
                    return Ok(());
                }
                return Err(ImageError::Unknown(name.to_owned()));
            };
            hint.set(col + 1);
            if let Some(schema) = &key_only
                && !schema.key.contains(&col)
            {
                return Ok(());
            }
            if std::mem::replace(&mut filled[col], true) {
                return Err(ImageError::Other(DecodeErrorKind::Envelope(format!(
                    "{prefix}.{name} appears twice"
                ))));
            }
            let wire = &fields[col].wire;
            let b = &mut builder.columns[col];
            let r = match val {
                Member::Json(v) => append_json(b, wire, v, &mut ctx),
                Member::Avro(v) => avro::append_avro(b, wire, v, &mut ctx),
                Member::Proto(field, v) => protobuf::append_proto(b, wire, field, v, &mut ctx),
            };
            match r {
                Ok(Appended::Value) => Ok(()),
                Ok(Appended::Unchanged) => {
                    builder.mark_unchanged(col);
                    Ok(())
                }
                Err(mut e) => {
                    e.path = format!("{prefix}.{name}{}", e.path);
                    Err(ImageError::Field(e))
                }
            }
        };
        match image {
            Image::Json(v) => {
                let mut iter = v.members().ok_or_else(|| {
                    ImageError::Field(FieldError {
                        path: prefix.to_owned(),
                        expected: "an object (row image)".into(),
                        found: excerpt(v.raw()),
                    })
                })?;
                iter.for_each_member_in_order(image_order, column, |col, k, val| {
                    one(col, k, Member::Json(&val))
                })
                .map_err(scan_error)?;
            }
            Image::Pull(iter) => {
                iter.for_each_member_in_order(image_order, column, |col, k, val| {
                    one(col, k, Member::Json(&val))
                })
                .map_err(scan_error)?;
            }
            Image::Proto(m) => {
                // Every field, in declaration order: proto3 scalars that were not written are
                // their default values, fields with presence that were not written are null.
                for field in m.descriptor().fields() {
                    let value = protobuf::field_value(m, &field);
                    one(
                        column(field.name()),
                        field.name(),
                        Member::Proto(&field, value.as_deref()),
                    )?;
                }
            }
            Image::Avro(v) => match avro::unwrap_union(v) {
                AvroValue::Record(members) => {
                    for (k, val) in members {
                        one(column(k), k, Member::Avro(val))?;
                    }
                }
                other => {
                    return Err(ImageError::Field(FieldError {
                        path: prefix.to_owned(),
                        expected: "an Avro record (row image)".into(),
                        found: format!("{other:?}"),
                    }));
                }
            },
        }
        for (col, filled) in filled.iter().enumerate() {
            if !filled {
                builder.columns[col].push_null();
            }
        }
        if whole_json
            && (plan_missed || !plan.fits(schema_version))
            && let Some(names) = image_order.remembered_names(members)
        {
            plan.learn(schema_version, names);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- registry framing

    fn decode_framed(&mut self, rec: &KafkaRecord, value: &[u8]) -> KResult<Outcome> {
        let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        let registered = self.registered(id)?;
        match registered.format {
            SchemaFormat::Avro => {
                let envelope = avro::decode_envelope(&registered, &value[5..], id)?;
                let key = self.framed_key(rec.key)?;
                self.decode_avro(rec, &registered, envelope, key)
            }
            SchemaFormat::Json => self.decode_json_sr(rec, id, &registered, &value[5..]),
            SchemaFormat::Protobuf => self.decode_protobuf(rec, id, &value[5..]),
        }
    }

    /// A JSON_SR document: the change event itself, typed by its registered schema translated to
    /// Connect's (see [`crate::json_schema`]), then read like a JSON-with-schema payload.
    fn decode_json_sr(
        &mut self,
        rec: &KafkaRecord,
        id: u32,
        registered: &avro::Registered,
        document: &[u8],
    ) -> KResult<Outcome> {
        // As on the Avro path, the key's schema is resolved up front: its fields name the key
        // columns when the record's table is first seen.
        if let Some([0, a, b, c, d, ..]) = rec.key {
            self.note_json_sr_key(u32::from_be_bytes([*a, *b, *c, *d]))?;
        }
        let shape = match self.json_sr_shapes.get(&id) {
            Some(shape) => shape.clone(),
            None => {
                let shape = match &registered.json_schema {
                    Some(json_schema::Translated::Connect(node)) => {
                        Some(Arc::new(self.classify_value_schema(node)?))
                    }
                    _ => None,
                };
                self.json_sr_shapes.insert(id, shape.clone());
                shape
            }
        };
        let Some(shape) = shape else {
            return self.decode_json(rec, document);
        };
        let payload = utf8(document)?.trim();
        if payload == "null" {
            return self.tombstone(rec);
        }
        self.decode_payload(rec, payload, Some(shape))
    }

    /// Remembers the key column names of a JSON_SR key schema (a struct's fields, in order).
    fn note_json_sr_key(&mut self, id: u32) -> KResult<()> {
        if self.json_sr_key_names.contains_key(&id) {
            return Ok(());
        }
        let registered = self.registered(id)?;
        if let Some(json_schema::Translated::Connect(node)) = &registered.json_schema
            && let Some(names) = json_schema::struct_field_names(node)
        {
            self.json_sr_key_names.insert(id, names.into());
        }
        Ok(())
    }

    fn registered(&mut self, id: u32) -> KResult<Arc<avro::Registered>> {
        if let Some(r) = self.avro_cache.get(&id) {
            return Ok(r.clone());
        }
        let resolver = self
            .resolver
            .as_ref()
            .ok_or_else(|| DecodeErrorKind::Registry {
                id,
                message: "record is schema-registry framed but no schema resolver is configured"
                    .into(),
                retriable: false,
            })?;
        let schema = resolver
            .resolve(id)
            .map_err(|e| DecodeErrorKind::Registry {
                id,
                message: e.message,
                retriable: e.retriable,
            })?;
        if schema.format == SchemaFormat::Protobuf {
            let references = resolver
                .references(id)
                .map_err(|e| DecodeErrorKind::Registry {
                    id,
                    message: format!("references: {}", e.message),
                    retriable: e.retriable,
                })?;
            let compiled = protobuf::Compiled::compile(&schema, references, id)?;
            self.protobuf_cache.insert(id, Arc::new(compiled));
        }
        let reg = Arc::new(avro::Registered::parse(schema, id, self.binary_param())?);
        self.avro_cache.insert(id, reg.clone());
        Ok(reg)
    }

    /// A registry-framed key (magic 0 + id) decoded by its schema; `None` for an unframed key or
    /// a JSON_SR one (read as JSON text).
    fn framed_key(&mut self, key: Option<&[u8]>) -> KResult<Option<FramedKey>> {
        let Some(k) = key.filter(|k| k.len() >= 5 && k[0] == 0) else {
            return Ok(None);
        };
        let id = u32::from_be_bytes([k[1], k[2], k[3], k[4]]);
        let registered = self.registered(id)?;
        Ok(match registered.format {
            SchemaFormat::Avro => Some(FramedKey::Avro(avro::decode_datum(
                &registered,
                &k[5..],
                id,
            )?)),
            SchemaFormat::Protobuf => {
                let compiled = self.protobuf_schema(id)?;
                let (_, message) = protobuf::decode_message(&compiled, &k[5..], id)?;
                Some(FramedKey::Protobuf(message))
            }
            SchemaFormat::Json => None,
        })
    }

    fn protobuf_schema(&mut self, id: u32) -> KResult<Arc<protobuf::Compiled>> {
        self.registered(id)?;
        self.protobuf_cache
            .get(&id)
            .cloned()
            .ok_or_else(|| DecodeErrorKind::Registry {
                id,
                message: "not a Protobuf schema".into(),
                retriable: false,
            })
    }

    fn decode_protobuf(&mut self, rec: &KafkaRecord, id: u32, payload: &[u8]) -> KResult<Outcome> {
        let compiled = self.protobuf_schema(id)?;
        let (schema, message) = protobuf::decode_message(&compiled, payload, id)?;
        let env = protobuf::envelope(&schema, message);
        let key = self.framed_key(rec.key)?;
        let (position, table) = protobuf::source_position(env.source.as_ref());
        self.decode_framed_event(
            rec,
            FramedEvent {
                format: "Protobuf",
                op: env.op.as_deref(),
                position,
                table,
                row: schema.row(id)?,
                control: schema.control.clone(),
                before: env.before.as_ref().map(Image::Proto),
                after: env.after.as_ref().map(Image::Proto),
                key: key.as_ref(),
            },
        )
    }

    fn decode_avro(
        &mut self,
        rec: &KafkaRecord,
        registered: &avro::Registered,
        env: AvroEnvelope,
        key: Option<FramedKey>,
    ) -> KResult<Outcome> {
        let (position, table) = avro::source_position(env.source.as_ref());
        self.decode_framed_event(
            rec,
            FramedEvent {
                format: "Avro",
                op: env.op.as_deref(),
                position,
                table,
                row: registered.row.clone(),
                control: registered.control.clone(),
                before: env.before.as_ref().map(Image::Avro),
                after: env.after.as_ref().map(Image::Avro),
                key: key.as_ref(),
            },
        )
    }

    /// The op logic of registry-framed change events, whatever their encoding: c/r/u upsert
    /// `after`, d deletes by the key (else `before`), t/m are control records, a record without
    /// op is what its schema says (heartbeat, schema change).
    fn decode_framed_event(&mut self, rec: &KafkaRecord, ev: FramedEvent) -> KResult<Outcome> {
        let FramedEvent {
            format,
            op,
            position,
            table,
            row,
            control,
            before,
            after,
            key,
        } = ev;
        let table_id = table.unwrap_or_else(|| table_from_topic(rec.topic));
        let kind = match op {
            Some("c" | "r" | "u") => ChangeKind::Upsert,
            Some("d") => ChangeKind::Delete,
            Some("t") => {
                return Ok(self.control(rec, Some(table_id), ControlEvent::Truncate, position));
            }
            Some("m") => {
                return Ok(self.control(
                    rec,
                    Some(table_id),
                    ControlEvent::Message {
                        prefix: String::new(),
                        content_b64: None,
                    },
                    position,
                ));
            }
            Some(other) => {
                return Err(DecodeErrorKind::Envelope(format!(
                    "unknown \"op\" value {other:?}"
                )));
            }
            None => match control {
                Some(event) => return Ok(self.control(rec, None, event, position)),
                None => {
                    return Err(DecodeErrorKind::Envelope(format!(
                        "{format} record without \"op\": not a Debezium change event"
                    )));
                }
            },
        };
        let fields = row.ok_or_else(|| {
            DecodeErrorKind::Envelope(format!("{format} envelope without row images"))
        })?;
        let t = self.table_for(rec, &table_id, Some((fields, Origin::Schema)), None)?;
        if self.tables[t].schema().key.is_empty()
            && let Some(names) = key.and_then(FramedKey::names)
        {
            self.set_key(t, &names);
        }
        let meta = self.row_meta(
            rec,
            t,
            kind,
            op.and_then(SourceOp::from_code).unwrap_or(SourceOp::Update),
            position,
        );
        match kind {
            ChangeKind::Upsert => {
                let after = after.ok_or_else(|| {
                    DecodeErrorKind::Envelope("upsert without an \"after\" image".into())
                })?;
                self.append_row(t, meta, |dec, t| {
                    dec.fill_image(t, after, ImageMode::All, "after")
                })?;
            }
            ChangeKind::Delete => {
                let has_key = !self.tables[t].schema().key.is_empty();
                match (key, before) {
                    (Some(k), _) => self.append_row(t, meta, |dec, t| {
                        dec.fill_image(t, k.image(), ImageMode::KeyOnly, "key")
                    })?,
                    (None, Some(b)) => {
                        let mode = if has_key {
                            ImageMode::KeyOnly
                        } else {
                            ImageMode::All
                        };
                        self.append_row(t, meta, |dec, t| dec.fill_image(t, b, mode, "before"))?
                    }
                    (None, None) => {
                        return Err(DecodeErrorKind::Envelope(
                            "delete without a \"before\" image and without a record key".into(),
                        ));
                    }
                }
            }
        }
        Ok(Outcome::Row {
            table: Arc::new(table_id),
            kind,
        })
    }

    fn set_key(&mut self, t: usize, names: &[String]) {
        let state = &self.tables[t];
        let key: Vec<usize> = names
            .iter()
            .filter_map(|k| state.fields.iter().position(|f| &f.name == k))
            .collect();
        if key.is_empty() || key == state.schema().key {
            return;
        }
        let schema = TableSchema::new((*state.id).clone(), state.schema().columns.clone(), key);
        self.tables[t].builder.schema = Arc::new(schema);
    }

    // ---------------------------------------------------------------- DynamoDB support

    /// Appends a row built from a schemaless document (DynamoDB item, MongoDB document):
    /// `row_json` is the document as plain JSON and `fields` the wire type of each of its fields.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_document_row(
        &mut self,
        rec: &KafkaRecord,
        table: TableId,
        (kind, op): (ChangeKind, SourceOp),
        position: SourcePosition,
        (row_json, fields): (&str, Vec<WireField>),
        key_names: &[String],
    ) -> KResult<Outcome> {
        self.append_document(
            rec,
            &table,
            (kind, op),
            position,
            (row_json, fields),
            key_names,
        )?;
        Ok(Outcome::Row {
            table: table.into(),
            kind,
        })
    }

    fn append_document(
        &mut self,
        rec: &KafkaRecord,
        id: &TableId,
        (kind, op): (ChangeKind, SourceOp),
        position: SourcePosition,
        (row_json, fields): (&str, Vec<WireField>),
        key_names: &[String],
    ) -> KResult<()> {
        let row = crate::json::parse(row_json).map_err(|e| syntax("DynamoDB image", e))?;
        let initial = if self.declared.contains_key(id) || self.table_index.contains_key(id) {
            None
        } else {
            Some((Arc::from(fields.clone()), Origin::Inferred))
        };
        let t = self.table_for(rec, id, initial, None)?;
        if self.tables[t].schema().key.is_empty() && !key_names.is_empty() {
            self.set_key(t, key_names);
        }
        let meta = self.row_meta(rec, t, kind, op, position);
        let mode = match kind {
            ChangeKind::Upsert => ImageMode::All,
            ChangeKind::Delete => ImageMode::KeyOnly,
        };
        let fill =
            |dec: &mut Self, t: usize| dec.fill_image(t, Image::Json(&row), mode, "document");
        if self.tables[t].origin != Origin::Inferred {
            return self.append_row(t, meta, fill);
        }
        // DynamoDB items are schemaless: a new attribute becomes a new typed column.
        for _ in 0..=fields.len() {
            match fill(self, t) {
                Ok(()) => {
                    self.tables[t].builder.commit_row(meta);
                    return Ok(());
                }
                Err(ImageError::Unknown(name)) => {
                    self.tables[t].builder.rollback_row();
                    let mut grown: Vec<WireField> = self.tables[t].fields.to_vec();
                    let wire = fields
                        .iter()
                        .find(|f| f.name == name)
                        .map(|f| f.wire.clone())
                        .unwrap_or(Wire::Json);
                    grown.push(WireField {
                        name,
                        wire,
                        optional: true,
                    });
                    self.evolve(t, grown)?;
                }
                Err(e) => return self.append_row(t, meta, |_, _| Err(e)),
            }
        }
        Err(DecodeErrorKind::Internal(
            "DynamoDB schema growth did not converge".into(),
        ))
    }
}

enum Member<'a, 'v> {
    Json(&'v LazyValue<'a>),
    Avro(&'v AvroValue),
    /// A Protobuf field and its value (`None`: null).
    Proto(&'v FieldDescriptor, Option<&'v ProtoValue>),
}

/// `prefix.schema.table` → `schema.table`; used when the record names no table itself.
fn table_from_topic(topic: &str) -> TableId {
    let mut parts = topic.rsplitn(3, '.');
    let name = parts.next().unwrap_or(topic);
    let ns = parts.next().unwrap_or("");
    TableId::new(ns, name)
}

/// Best-effort column types from one image: the explicit inference mode.
fn infer_fields(sample: Option<Image>) -> Vec<WireField> {
    let Some(Image::Json(v)) = sample else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, val) in v.members().into_iter().flatten().flatten() {
        let raw = val.raw();
        let wire = match val.kind() {
            JsonType::Bool => Wire::Bool,
            JsonType::Number if raw.contains(['.', 'e', 'E']) => Wire::Float64,
            JsonType::Number if raw.parse::<i64>().is_ok() => Wire::Int64,
            JsonType::Number => Wire::Decimal {
                precision: Some(38),
                scale: 0,
                text: false,
            },
            JsonType::String => Wire::String,
            _ => Wire::Json,
        };
        out.push(WireField {
            name: k.into_owned(),
            wire,
            optional: true,
        });
    }
    out
}

/// The members of `source` that the position and the table name are made of.
/// The members of a change-event payload the decoder looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvelopeField {
    Before,
    After,
    Source,
    Op,
    Message,
    Status,
    Id,
    EventCount,
    Ddl,
    History,
    TsMs,
    Dynamo,
    Other,
}

impl EnvelopeField {
    fn of(name: &str) -> Self {
        match name {
            "before" => EnvelopeField::Before,
            "after" => EnvelopeField::After,
            "source" => EnvelopeField::Source,
            "op" => EnvelopeField::Op,
            "message" => EnvelopeField::Message,
            "status" => EnvelopeField::Status,
            "id" => EnvelopeField::Id,
            "event_count" => EnvelopeField::EventCount,
            "ddl" => EnvelopeField::Ddl,
            "tableChanges" | "historyRecord" => EnvelopeField::History,
            "ts_ms" => EnvelopeField::TsMs,
            "eventName" | "dynamodb" => EnvelopeField::Dynamo,
            _ => EnvelopeField::Other,
        }
    }
}

/// The members of a change-event payload, as raw lazily-parsed values.
#[derive(Default)]
struct Members<'p> {
    before: Option<LazyValue<'p>>,
    after: Option<LazyValue<'p>>,
    source: Option<LazyValue<'p>>,
    op: Option<LazyValue<'p>>,
    message: Option<LazyValue<'p>>,
    status: Option<LazyValue<'p>>,
    id: Option<LazyValue<'p>>,
    event_count: Option<LazyValue<'p>>,
    ddl: Option<LazyValue<'p>>,
    /// `source` when it was parsed in place during the payload scan.
    parsed_source: Option<SourceRead<'p>>,
    history: bool,
    ts_seen: bool,
    dynamo: bool,
    count: usize,
}

fn utf8(bytes: &[u8]) -> KResult<&str> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| DecodeErrorKind::Syntax {
        part: "value",
        message: "not valid UTF-8".into(),
    })
}

/// A JSON key without its Confluent JSON_SR header (magic 0 + 4-byte id). JSON text never starts
/// with a NUL byte, so the header is unambiguous.
fn unframed(key: &[u8]) -> &[u8] {
    match key {
        [0, _, _, _, _, rest @ ..] => rest,
        other => other,
    }
}

fn scan_error(e: crate::json::ScanError<ImageError>) -> ImageError {
    match e {
        crate::json::ScanError::Json(e) => ImageError::Other(syntax("row image", e)),
        crate::json::ScanError::Inner(e) => e,
    }
}
