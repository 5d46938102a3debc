//! Confluent-framed Protobuf, as Kafka Connect's `ProtobufConverter` writes Debezium records.
//!
//! After the magic byte and the schema id comes the *message-index array* (which message of the
//! registered `.proto` file the payload is), then the message bytes. The registered text is
//! compiled with `protox` (pure Rust, no `protoc`) against the imports Connect's schemas use
//! without listing them as references (bundled here: `confluent/meta.proto`,
//! `confluent/type/decimal.proto`, `google/type/{date,timeofday}.proto`; `google/protobuf/*`
//! come with protox) and against the schema's own references. Each message of the file is mapped
//! once to [`WireField`]s, the same wire types the JSON and Avro paths use, and kept per schema id.
//!
//! Values go through `prost-reflect`'s [`DynamicMessage`] (one per record, like the Avro path's
//! `apache_avro::types::Value`): strings and bytes are copied out of the payload once, then
//! converted straight into the column builders by [`append_proto`].
//!
//! What Connect's Protobuf schemas carry, and what they lose (decoded as what is left):
//! - proto3 scalars have no null: an absent scalar is its default (0, "", false, empty bytes),
//!   so a NULL column of such a type arrives as that default. Messages, `optional` fields, oneof
//!   members and the `google.protobuf.*Value` wrappers keep null.
//! - Connect's schema names survive only as the well-known types Connect maps them to
//!   (`confluent.type.Decimal` with `precision`/`scale` in `(confluent.field_meta)`,
//!   `google.type.Date`, `google.type.TimeOfDay`, `google.protobuf.Timestamp`) and `connect.type`
//!   (int8/int16). Debezium's own semantic names (`io.debezium.time.MicroTimestamp`, `…Json` …)
//!   are gone unless a producer writes them as a `connect.name` parameter, which is honoured; a
//!   nested message named like a Debezium struct (`VariableScaleDecimal`, `Point`, `Geometry`,
//!   `Geography`) with exactly its fields is read as that struct.
//! - The `source` message is named `Source`, not `io.debezium.connector.mysql.Source`: MySQL's
//!   signed `TIME` (see [`crate::wire::SourceKind`]) is not told apart. It only matters with a
//!   `connect.name` parameter, since without one a time is a plain integer anyway.
//!
//! Other Protobuf constructs: enums are written as their value names, `uint64`/`fixed64` as
//! exact decimals of 20 digits, maps as JSON objects, repeated fields as lists, oneof members as
//! nullable columns; a recursive message type is refused when its schema is first used.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::AHashMap;
use arrow_buffer::i256;
use decant_model::{ControlEvent, SourcePosition, TableId};
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind, MapKey,
    MessageDescriptor, ReflectMessage, Value,
};
use protox::file::{File, FileResolver, GoogleFileResolver};
use serde_json::Value as Json;

use crate::batch::ColBuilder;
use crate::convert::{Appended, ConvCtx, FieldError};
use crate::decimal;
use crate::error::DecodeErrorKind;
use crate::registry::RegisteredSchema;
use crate::temporal;
use crate::wire::{ConnectChildren, Wire, WireField};

/// The deepest message-index path read (Connect writes `[0]`; nesting this deep is no schema).
const MAX_INDEX_DEPTH: usize = 32;
/// The deepest message nesting mapped to wire types: deeper means a recursive message type.
const MAX_NESTING: usize = 32;
/// The name the registered schema is compiled under (its imports use their own names).
const ROOT_FILE: &str = "registered-schema.proto";

/// Imports Connect's schemas use without registering them as references.
const BUNDLED: [(&str, &str); 4] = [
    (
        "confluent/meta.proto",
        include_str!("../proto/confluent/meta.proto"),
    ),
    (
        "confluent/type/decimal.proto",
        include_str!("../proto/confluent/type/decimal.proto"),
    ),
    (
        "google/type/date.proto",
        include_str!("../proto/google/type/date.proto"),
    ),
    (
        "google/type/timeofday.proto",
        include_str!("../proto/google/type/timeofday.proto"),
    ),
];

const DECIMAL: &str = "confluent.type.Decimal";
const TIMESTAMP: &str = "google.protobuf.Timestamp";
const DATE: &str = "google.type.Date";
const TIME_OF_DAY: &str = "google.type.TimeOfDay";
/// The field option Connect keeps its schema parameters in (`confluent/meta.proto`).
pub const FIELD_META: &str = "confluent.field_meta";

fn schema_err(id: u32, message: String) -> DecodeErrorKind {
    DecodeErrorKind::Registry {
        id,
        message,
        retriable: false,
    }
}

// ---------------------------------------------------------------- message indexes

/// Which message of the schema's file a payload is: indexes into the top-level messages, then
/// into that message's nested messages, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageIndexes {
    path: [i32; MAX_INDEX_DEPTH],
    len: usize,
}

impl MessageIndexes {
    pub fn as_slice(&self) -> &[i32] {
        &self.path[..self.len]
    }
}

/// Splits a framed payload (after magic byte and id) into its message indexes and the message
/// bytes. The array is a zigzag-varint count and that many zigzag-varint indexes; a count of 0
/// (the single byte `00`) means `[0]`, the first message.
pub fn split_message_indexes(payload: &[u8]) -> Result<(MessageIndexes, &[u8]), String> {
    let mut rest = payload;
    let count = read_zigzag_varint(&mut rest).ok_or("message indexes: truncated count")?;
    let mut indexes = MessageIndexes {
        path: [0; MAX_INDEX_DEPTH],
        len: 1,
    };
    if count == 0 {
        return Ok((indexes, rest));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_INDEX_DEPTH)
        .ok_or_else(|| {
            format!("message indexes: count {count} (expected 0 to {MAX_INDEX_DEPTH})")
        })?;
    for i in 0..count {
        let index = read_zigzag_varint(&mut rest)
            .ok_or_else(|| format!("message indexes: index {i} of {count} truncated"))?;
        if index < 0 {
            return Err(format!("message indexes: negative index {index}"));
        }
        indexes.path[i] = index;
    }
    indexes.len = count;
    Ok((indexes, rest))
}

/// Kafka's `ByteUtils.readVarint`: a zigzag-encoded 32-bit varint (at most 5 bytes).
fn read_zigzag_varint(bytes: &mut &[u8]) -> Option<i32> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        raw |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    None
}

// ---------------------------------------------------------------- compiling schemas

/// Opens the registered schema, its references and the bundled imports, in that order.
struct Imports {
    root: File,
    references: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for Imports {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == ROOT_FILE {
            return Ok(self.root.clone());
        }
        if let Some(text) = self.references.get(name) {
            return parse_with_implicit_imports(name, text);
        }
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name) {
            return File::from_source(name, text);
        }
        self.google.open_file(name)
    }
}

/// Parses a `.proto` text. Connect writes `(confluent.field_meta)` options while importing only
/// `confluent/type/decimal.proto` (or nothing): the import of `confluent/meta.proto` that defines
/// them is added here when the text uses a `confluent.` option without it.
fn parse_with_implicit_imports(name: &str, text: &str) -> Result<File, protox::Error> {
    const META: &str = "confluent/meta.proto";
    let file = File::from_source(name, text)?;
    if !text.contains("(confluent.")
        || file
            .file_descriptor_proto()
            .dependency
            .iter()
            .any(|d| d == META)
    {
        return Ok(file);
    }
    let mut descriptor = file.file_descriptor_proto().clone();
    descriptor.dependency.push(META.to_owned());
    Ok(File::from_file_descriptor_proto(descriptor))
}

/// Compiles a `.proto` text against `references` (import name → text), the bundled imports and
/// `google/protobuf/*`: its file (whose pool holds the imports). Also what decant's Protobuf
/// output compiles the schemas it derives with, so both read the same conventions.
pub fn compile_file(
    text: &str,
    references: HashMap<String, String>,
) -> Result<FileDescriptor, String> {
    let imports = Imports {
        root: parse_with_implicit_imports(ROOT_FILE, text).map_err(|e| e.to_string())?,
        references,
        google: GoogleFileResolver::new(),
    };
    let mut compiler = protox::Compiler::with_file_resolver(imports);
    compiler.open_file(ROOT_FILE).map_err(|e| e.to_string())?;
    compiler
        .descriptor_pool()
        .get_file_by_name(ROOT_FILE)
        .ok_or_else(|| "compiled schema without its file".to_owned())
}

/// A registered Protobuf schema, compiled, with every message of its file mapped.
pub struct Compiled {
    /// By message-index path (`[0]`, `[1, 0]` …).
    messages: AHashMap<Box<[i32]>, Arc<MessageSchema>>,
}

/// One message of a registered file, ready to decode.
pub struct MessageSchema {
    pub descriptor: MessageDescriptor,
    envelope: EnvelopeFields,
    /// The row image's columns when the message is a Debezium envelope; an error when its
    /// `before`/`after` message has a construct no column can hold (reported when used).
    row: Result<Option<Arc<[WireField]>>, String>,
    /// What records of this message are when they are not data (heartbeat, schema change).
    pub control: Option<ControlEvent>,
}

#[derive(Default)]
struct EnvelopeFields {
    op: Option<FieldDescriptor>,
    before: Option<FieldDescriptor>,
    after: Option<FieldDescriptor>,
    source: Option<FieldDescriptor>,
}

impl Compiled {
    /// Compiles `schema` (its `references` given as import name → text).
    pub fn compile(
        schema: &RegisteredSchema,
        references: Vec<(String, RegisteredSchema)>,
        id: u32,
    ) -> Result<Self, DecodeErrorKind> {
        let file = compile_file(
            &schema.text,
            references.into_iter().map(|(n, s)| (n, s.text)).collect(),
        )
        .map_err(|e| schema_err(id, format!("invalid Protobuf schema: {e}")))?;
        let meta = file.parent_pool().get_extension_by_name(FIELD_META);
        let mut messages = AHashMap::new();
        let mut path = Vec::new();
        for (i, message) in file.messages().enumerate() {
            path.push(i as i32);
            index_messages(&message, &mut path, meta.as_ref(), &mut messages);
            path.pop();
        }
        Ok(Compiled { messages })
    }

    /// The message a payload's indexes name.
    pub fn message(&self, indexes: &MessageIndexes) -> Option<&Arc<MessageSchema>> {
        self.messages.get(indexes.as_slice())
    }
}

/// Maps `message` and its nested messages by index path. Map entries are not counted: Confluent
/// numbers the messages declared in the schema text, where a map field declares none.
fn index_messages(
    message: &MessageDescriptor,
    path: &mut Vec<i32>,
    meta: Option<&ExtensionDescriptor>,
    out: &mut AHashMap<Box<[i32]>, Arc<MessageSchema>>,
) {
    out.insert(
        path.as_slice().into(),
        Arc::new(MessageSchema::new(message, meta)),
    );
    for (i, child) in message
        .child_messages()
        .filter(|m| !m.is_map_entry())
        .enumerate()
    {
        path.push(i as i32);
        index_messages(&child, path, meta, out);
        path.pop();
    }
}

impl MessageSchema {
    fn new(descriptor: &MessageDescriptor, meta: Option<&ExtensionDescriptor>) -> Self {
        let field = |name: &str| descriptor.get_field_by_name(name);
        let envelope = EnvelopeFields {
            op: field("op").filter(|f| f.kind() == Kind::String && !f.is_list()),
            before: field("before").filter(|f| matches!(f.kind(), Kind::Message(_))),
            after: field("after").filter(|f| matches!(f.kind(), Kind::Message(_))),
            source: field("source").filter(|f| matches!(f.kind(), Kind::Message(_))),
        };
        let image = envelope.after.as_ref().or(envelope.before.as_ref());
        let row = match image.map(FieldDescriptor::kind) {
            Some(Kind::Message(m)) => message_fields(&m, meta, 0)
                .map(|f| Some(Arc::from(f)))
                .map_err(|e| format!("row image {}: {e}", m.full_name())),
            _ => Ok(None),
        };
        // Connect names the message after the Connect schema's last name segment.
        let name = descriptor.name();
        let control = if name.ends_with("Heartbeat") {
            Some(ControlEvent::Heartbeat)
        } else if name.ends_with("SchemaChangeValue") {
            Some(ControlEvent::SchemaChange { ddl: None })
        } else {
            None
        };
        MessageSchema {
            descriptor: descriptor.clone(),
            envelope,
            row,
            control,
        }
    }

    /// The row image's columns, when this message is a Debezium envelope.
    pub fn row(&self, id: u32) -> Result<Option<Arc<[WireField]>>, DecodeErrorKind> {
        self.row.clone().map_err(|e| schema_err(id, e))
    }
}

// ---------------------------------------------------------------- descriptor → wire types

/// The `(confluent.field_meta)` parameters of a field (`meta`: the pool's
/// [`FIELD_META`] extension).
pub fn field_params(
    field: &FieldDescriptor,
    meta: Option<&ExtensionDescriptor>,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(meta) = meta else {
        return out;
    };
    let options = field.options();
    if !options.has_extension(meta) {
        return out;
    }
    if let Value::Message(m) = &*options.get_extension(meta)
        && let Some(params) = m.get_field_by_name("params")
        && let Value::Map(entries) = &*params
    {
        for (k, v) in entries {
            if let (MapKey::String(k), Value::String(v)) = (k, v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// The columns of a message's fields, in declaration order.
fn message_fields(
    message: &MessageDescriptor,
    meta: Option<&ExtensionDescriptor>,
    depth: usize,
) -> Result<Vec<WireField>, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "{}: messages nest deeper than {MAX_NESTING} (a recursive message type?)",
            message.full_name()
        ));
    }
    message
        .fields()
        .map(|f| {
            let (wire, optional) =
                field_wire(&f, meta, depth).map_err(|e| format!("{}: {e}", f.name()))?;
            Ok(WireField {
                name: f.name().to_owned(),
                wire,
                optional,
            })
        })
        .collect()
}

/// A field's wire type, and whether it can be null (only fields with presence can).
fn field_wire(
    field: &FieldDescriptor,
    meta: Option<&ExtensionDescriptor>,
    depth: usize,
) -> Result<(Wire, bool), String> {
    let params = field_params(field, meta);
    if field.is_map() {
        return Ok((Wire::Map, false));
    }
    let element = kind_wire(&field.kind(), &params, meta, depth)?;
    if field.is_list() {
        return Ok((Wire::Array(Box::new(element)), false));
    }
    Ok((element, field.supports_presence()))
}

/// The wire type of one value of `kind`, given the field's Connect parameters.
fn kind_wire(
    kind: &Kind,
    params: &HashMap<String, String>,
    meta: Option<&ExtensionDescriptor>,
    depth: usize,
) -> Result<Wire, String> {
    let param = |k: &str| -> Option<String> {
        match k {
            // Connect's Decimal parameters, under the names the Protobuf converter gives them.
            "connect.decimal.precision" => params.get("precision").cloned(),
            _ => params.get(k).cloned(),
        }
    };
    let connect_name = params.get("connect.name").map(String::as_str);
    let base = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => match params.get("connect.type") {
            Some(t) if t == "int8" => "int8",
            Some(t) if t == "int16" => "int16",
            _ => "int32",
        },
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => "int64",
        Kind::Uint64 | Kind::Fixed64 => {
            // Beyond i64: an exact decimal of 20 digits holds every value.
            return Ok(Wire::Decimal {
                precision: Some(20),
                scale: 0,
                text: false,
            });
        }
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Bool => "boolean",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Enum(_) => return Ok(Wire::Enum),
        Kind::Message(m) => return message_wire(m, params, meta, depth),
    };
    Wire::from_connect(base, connect_name, &param, ConnectChildren::None)
}

/// The wire type of a message-typed value: a well-known type, a Debezium struct, or a struct.
fn message_wire(
    message: &MessageDescriptor,
    params: &HashMap<String, String>,
    meta: Option<&ExtensionDescriptor>,
    depth: usize,
) -> Result<Wire, String> {
    let param = |k: &str| params.get(k).cloned();
    match message.full_name() {
        DECIMAL => match params.get("scale") {
            Some(_) => Wire::from_connect(
                "bytes",
                Some("org.apache.kafka.connect.data.Decimal"),
                &|k| match k {
                    "connect.decimal.precision" => param("precision"),
                    other => param(other),
                },
                ConnectChildren::None,
            ),
            // No scale in the schema: each value carries its own.
            None => Ok(Wire::VariableScaleDecimal),
        },
        TIMESTAMP => Ok(Wire::TimestampMicros),
        DATE => Ok(Wire::Date),
        TIME_OF_DAY => Ok(Wire::TimeMicros),
        "google.protobuf.BoolValue" => Ok(Wire::Bool),
        "google.protobuf.Int32Value" => Ok(Wire::Int32),
        "google.protobuf.Int64Value" | "google.protobuf.UInt32Value" => Ok(Wire::Int64),
        "google.protobuf.UInt64Value" => Ok(Wire::Decimal {
            precision: Some(20),
            scale: 0,
            text: false,
        }),
        "google.protobuf.FloatValue" => Ok(Wire::Float32),
        "google.protobuf.DoubleValue" => Ok(Wire::Float64),
        "google.protobuf.StringValue" => Ok(Wire::String),
        "google.protobuf.BytesValue" => Ok(Wire::Bytes),
        _ => {
            let fields = message_fields(message, meta, depth + 1)?;
            let name = params
                .get("connect.name")
                .cloned()
                .or_else(|| debezium_struct(message.name(), &fields));
            match name {
                Some(name) => Wire::from_connect(
                    "struct",
                    Some(&name),
                    &param,
                    ConnectChildren::Fields(fields),
                ),
                None => Ok(Wire::Struct(fields)),
            }
        }
    }
}

/// The Debezium struct a Connect-generated message stands for: Connect names the message after
/// the last segment of the Connect schema name, so the name and the exact fields tell it.
fn debezium_struct(name: &str, fields: &[WireField]) -> Option<String> {
    let shape: Vec<(&str, &Wire)> = fields.iter().map(|f| (f.name.as_str(), &f.wire)).collect();
    let full = match (name, shape.as_slice()) {
        ("VariableScaleDecimal", [("scale", Wire::Int32), ("value", Wire::Bytes)]) => {
            "io.debezium.data.VariableScaleDecimal"
        }
        (
            "Point",
            [
                ("x", Wire::Float64),
                ("y", Wire::Float64),
                ("wkb", Wire::Bytes),
                ("srid", Wire::Int32),
            ],
        ) => "io.debezium.data.geometry.Point",
        ("Geometry", [("wkb", Wire::Bytes), ("srid", Wire::Int32)]) => {
            "io.debezium.data.geometry.Geometry"
        }
        ("Geography", [("wkb", Wire::Bytes), ("srid", Wire::Int32)]) => {
            "io.debezium.data.geometry.Geography"
        }
        _ => return None,
    };
    Some(full.to_owned())
}

// ---------------------------------------------------------------- decoding

/// Decodes a framed payload (after magic byte and id): the message its indexes name.
pub fn decode_message(
    compiled: &Compiled,
    payload: &[u8],
    id: u32,
) -> Result<(Arc<MessageSchema>, DynamicMessage), DecodeErrorKind> {
    let (indexes, bytes) = split_message_indexes(payload)
        .map_err(|e| DecodeErrorKind::Protobuf(format!("schema id {id}: {e}")))?;
    let schema = compiled.message(&indexes).ok_or_else(|| {
        DecodeErrorKind::Protobuf(format!(
            "schema id {id}: message indexes {:?} name no message of the schema",
            indexes.as_slice()
        ))
    })?;
    let message = DynamicMessage::decode(schema.descriptor.clone(), bytes).map_err(|e| {
        DecodeErrorKind::Protobuf(format!(
            "schema id {id}: not a {} message: {e}",
            schema.descriptor.full_name()
        ))
    })?;
    Ok((schema.clone(), message))
}

/// The parts of a decoded Debezium envelope the decoder needs.
pub struct ProtoEnvelope {
    /// `None` when the message has no `op` or it is empty (proto3's absent string).
    pub op: Option<String>,
    pub before: Option<DynamicMessage>,
    pub after: Option<DynamicMessage>,
    pub source: Option<DynamicMessage>,
}

/// Takes the envelope members out of a decoded value message.
pub fn envelope(schema: &MessageSchema, mut message: DynamicMessage) -> ProtoEnvelope {
    let mut take = |field: &Option<FieldDescriptor>| match field {
        Some(f) if message.has_field(f) => message.take_field(f),
        _ => None,
    };
    let op = match take(&schema.envelope.op) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let mut message_of = |field: &Option<FieldDescriptor>| match take(field) {
        Some(Value::Message(m)) => Some(m),
        _ => None,
    };
    ProtoEnvelope {
        op,
        before: message_of(&schema.envelope.before),
        after: message_of(&schema.envelope.after),
        source: message_of(&schema.envelope.source),
    }
}

/// A field's value as a column sees it: `None` when the field has presence and is absent (null);
/// otherwise the value, proto3's default when it was not written.
pub fn field_value<'m>(
    message: &'m DynamicMessage,
    field: &FieldDescriptor,
) -> Option<std::borrow::Cow<'m, Value>> {
    if field.supports_presence() && !message.has_field(field) {
        return None;
    }
    Some(message.get_field(field))
}

/// Position and table from a `source` message. Absent scalars (proto3 defaults) are no
/// position: an LSN or transaction id of 0 is one the source never had.
pub fn source_position(source: Option<&DynamicMessage>) -> (SourcePosition, Option<TableId>) {
    let mut members = crate::avro::SourceMembers::default();
    let Some(source) = source else {
        return members.finish();
    };
    for field in source.descriptor().fields() {
        if !source.has_field(&field) {
            continue;
        }
        let value = source.get_field(&field);
        members.member(
            field.name(),
            || match &*value {
                Value::I32(i) => Some(i64::from(*i)),
                Value::I64(i) => Some(*i),
                Value::U32(i) => Some(i64::from(*i)),
                Value::U64(i) => i64::try_from(*i).ok(),
                _ => None,
            },
            || match &*value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            || match &*value {
                Value::Bool(b) => *b,
                Value::String(s) => s != "false",
                _ => false,
            },
        );
    }
    members.finish()
}

// ---------------------------------------------------------------- value → column

fn found(v: &Value) -> String {
    crate::convert::excerpt(&format!("{v:?}"))
}

fn want(expected: &str, v: &Value) -> FieldError {
    FieldError {
        path: String::new(),
        expected: expected.into(),
        found: found(v),
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::I32(i) | Value::EnumNumber(i) => Some(i64::from(*i)),
        Value::I64(i) => Some(*i),
        Value::U32(i) => Some(i64::from(*i)),
        Value::U64(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// A member of a message by name, `None` when absent with presence.
fn member<'m>(m: &'m DynamicMessage, name: &str) -> Option<std::borrow::Cow<'m, Value>> {
    let field = m.descriptor().get_field_by_name(name)?;
    field_value(m, &field)
}

fn member_i64(m: &DynamicMessage, name: &str) -> Option<i64> {
    member(m, name).and_then(|v| as_i64(&v))
}

/// Converts one Protobuf value of `wire` type and appends it to `b`; `None` is null.
///
/// `field` is the field the value belongs to (an element's: its repeated field): an enum value
/// is written as its name, which only the field's enum type knows.
pub fn append_proto(
    b: &mut ColBuilder,
    wire: &Wire,
    field: &FieldDescriptor,
    v: Option<&Value>,
    ctx: &mut ConvCtx,
) -> Result<Appended, FieldError> {
    let Some(v) = v else {
        b.push_null();
        return Ok(Appended::Value);
    };
    // A wrapper (`google.protobuf.*Value`) stands for its `value`.
    if let Value::Message(m) = v
        && m.descriptor().full_name().starts_with("google.protobuf.")
        && m.descriptor().full_name().ends_with("Value")
        && let Some(inner_field) = m.descriptor().get_field(1)
    {
        let inner = m.get_field(&inner_field);
        return append_proto(b, wire, &inner_field, Some(&inner), ctx);
    }
    if wire.carries_placeholder() && is_placeholder(v, ctx.placeholder.text()) {
        b.push_null();
        return Ok(Appended::Unchanged);
    }
    match wire {
        Wire::Bool => match v {
            Value::Bool(x) => b.push_bool(*x),
            _ => return Err(want("a boolean", v)),
        },
        Wire::Int8 | Wire::Int16 | Wire::Int32 | Wire::Int64 | Wire::Year | Wire::Date => {
            let days_or_int = match v {
                Value::Message(m) if m.descriptor().full_name() == DATE => date_days(m)?,
                other => as_i64(other).ok_or_else(|| want("an integer", v))?,
            };
            b.push_int(days_or_int)?
        }
        Wire::Float32 | Wire::Float64 => match v {
            Value::F32(f) => b.push_float(f64::from(*f)),
            Value::F64(f) => b.push_float(*f),
            _ => return Err(want("a float", v)),
        },
        Wire::String
        | Wire::Interval
        | Wire::Xml
        | Wire::Enum
        | Wire::EnumSet
        | Wire::Json
        | Wire::Map => match v {
            Value::String(s) => {
                if *wire == Wire::Json && serde_json::from_str::<serde::de::IgnoredAny>(s).is_err()
                {
                    return Err(FieldError::new("JSON document text", s));
                }
                b.push_bytes(s.as_bytes())
            }
            Value::EnumNumber(n) => match field.kind() {
                Kind::Enum(e) => match e.get_value(*n) {
                    Some(named) => b.push_bytes(named.name().as_bytes()),
                    None => return Err(want(&format!("a value of enum {}", e.full_name()), v)),
                },
                _ => return Err(want("a string", v)),
            },
            Value::Map(_) => b.push_bytes(json_of(v).to_string().as_bytes()),
            _ => return Err(want("a string", v)),
        },
        Wire::Bytes | Wire::Bits | Wire::BinaryText(_) => match v {
            Value::String(s) => crate::convert::append_json_text_bytes(b, wire, s)?,
            Value::Bytes(bytes) => b.push_bytes(bytes),
            _ => return Err(want("bytes", v)),
        },
        Wire::Decimal { scale, text, .. } => {
            let unscaled = match v {
                Value::String(s) if *text => {
                    let d =
                        decimal::parse_text(s).ok_or_else(|| FieldError::new("decimal text", s))?;
                    d.rescale(i32::from(*scale))
                        .ok_or_else(|| FieldError::new("a decimal at the column scale", s))?
                }
                Value::Message(m) if m.descriptor().full_name() == DECIMAL => {
                    decimal_at_scale(m, *scale)?
                }
                Value::U64(u) => i256::from_i128(i128::from(*u)),
                other => i256::from_i128(i128::from(
                    as_i64(other).ok_or_else(|| want("a confluent.type.Decimal", v))?,
                )),
            };
            b.push_decimal(unscaled)?
        }
        Wire::DecimalText => {
            let Value::String(s) = v else {
                return Err(want("decimal text", v));
            };
            if decimal::parse_text(s).is_none() {
                return Err(FieldError::new("decimal text", s));
            }
            b.push_bytes(s.as_bytes())
        }
        Wire::VariableScaleDecimal => {
            let Value::Message(m) = v else {
                return Err(want("a VariableScaleDecimal message", v));
            };
            let scale = member_i64(m, "scale").unwrap_or(0);
            let value = match member(m, "value").as_deref() {
                Some(Value::Bytes(b)) => b.clone(),
                _ => return Err(want("a VariableScaleDecimal message with bytes `value`", v)),
            };
            let scale = crate::convert::variable_scale(scale)
                .ok_or_else(|| want(crate::convert::VARIABLE_SCALE, v))?;
            let unscaled =
                decimal::from_twos_complement(&value).ok_or_else(|| want("a decimal", v))?;
            let mut s = String::new();
            decimal::format(unscaled, scale, &mut s);
            b.push_bytes(s.as_bytes())
        }
        Wire::TimeMillis | Wire::TimeMicros | Wire::TimeNanos => {
            let micros_or_count = match v {
                Value::Message(m) if m.descriptor().full_name() == TIME_OF_DAY => {
                    time_of_day_micros(m)?
                }
                other => {
                    let count = as_i64(other).ok_or_else(|| want("a time", v))?;
                    crate::convert::time_of_day(count, wire)
                        .ok_or_else(|| want(crate::convert::TIME_OF_DAY, v))?
                }
            };
            b.push_int(micros_or_count)?
        }
        Wire::SignedTimeMillis => {
            let ms = as_i64(v).ok_or_else(|| want("a time span", v))?;
            b.push_int(
                ms.checked_mul(1000)
                    .ok_or_else(|| want("a time span in ms within ±292,000 years", v))?,
            )?
        }
        Wire::SignedTimeMicros
        | Wire::SignedTimeNanos
        | Wire::TimestampNanos
        | Wire::MicroDuration
        | Wire::NanoDuration => b.push_int(as_i64(v).ok_or_else(|| want("an integer", v))?)?,
        Wire::TimestampMillis | Wire::TimestampMicros => {
            let micros = match v {
                Value::Message(m) if m.descriptor().full_name() == TIMESTAMP => {
                    timestamp_micros(m)?
                }
                other => {
                    let count = as_i64(other).ok_or_else(|| want("a timestamp", v))?;
                    match wire {
                        Wire::TimestampMillis => count.checked_mul(1000).ok_or_else(|| {
                            want("a timestamp in ms within ±292,000 years of 1970", v)
                        })?,
                        _ => count,
                    }
                }
            };
            // PostgreSQL's ±infinity sentinels, as in JSON and Avro.
            b.push_int(match micros {
                temporal::PG_INFINITY_MICROS => temporal::INFINITY,
                temporal::PG_NEG_INFINITY_MICROS => temporal::NEG_INFINITY,
                other => other,
            })?
        }
        Wire::ZonedTimestamp
        | Wire::IsoTimestamp
        | Wire::ZonedTime
        | Wire::IsoTime
        | Wire::IsoDate
        | Wire::Uuid => {
            let Value::String(s) = v else {
                return Err(want("a string", v));
            };
            // The text forms share the JSON converter's parsing.
            let quoted = serde_json::to_string(s).map_err(|_| want("text", v))?;
            let lazy = crate::json::parse(&quoted).map_err(|_| want("text", v))?;
            crate::convert::append_json(b, wire, &lazy, ctx)?;
        }
        Wire::Geometry | Wire::Point => {
            let Value::Message(m) = v else {
                return Err(want("a geometry message", v));
            };
            let names: &[(&str, Wire)] = if *wire == Wire::Point {
                &[
                    ("x", Wire::Float64),
                    ("y", Wire::Float64),
                    ("wkb", Wire::Bytes),
                    ("srid", Wire::Int32),
                ]
            } else {
                &[("wkb", Wire::Bytes), ("srid", Wire::Int32)]
            };
            for (child, (name, w)) in b.struct_children().iter_mut().zip(names) {
                append_member(child, w, m, name, ctx)?;
            }
            b.end_struct();
        }
        Wire::Array(elem) => {
            let Value::List(items) = v else {
                return Err(want("a repeated field", v));
            };
            for (i, item) in items.iter().enumerate() {
                append_proto(b.list_child(), elem, field, Some(item), ctx).map_err(|mut e| {
                    e.path = format!("[{i}]{}", e.path);
                    e
                })?;
            }
            b.end_list();
        }
        Wire::Struct(fields) => {
            let Value::Message(m) = v else {
                return Err(want("a message", v));
            };
            for (child, f) in b.struct_children().iter_mut().zip(fields) {
                append_member(child, &f.wire, m, &f.name, ctx)?;
            }
            b.end_struct();
        }
    }
    Ok(Appended::Value)
}

/// Appends member `name` of message `m` (null when the message has no such field).
fn append_member(
    b: &mut ColBuilder,
    wire: &Wire,
    m: &DynamicMessage,
    name: &str,
    ctx: &mut ConvCtx,
) -> Result<(), FieldError> {
    let appended = match m.descriptor().get_field_by_name(name) {
        Some(field) => append_proto(b, wire, &field, field_value(m, &field).as_deref(), ctx),
        None => {
            b.push_null();
            Ok(Appended::Value)
        }
    };
    appended.map(|_| ()).map_err(|mut e| {
        e.path = format!(".{name}{}", e.path);
        e
    })
}

/// Debezium's TOAST placeholder in a string, bytes or single-element repeated field.
fn is_placeholder(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        Value::Bytes(b) => b == text.as_bytes(),
        Value::List(items) => match items.as_slice() {
            [one] => is_placeholder(one, text),
            many => {
                many.len() == text.len()
                    && many
                        .iter()
                        .zip(text.bytes())
                        .all(|(i, c)| as_i64(i) == Some(i64::from(c)))
            }
        },
        _ => false,
    }
}

/// A `confluent.type.Decimal`'s unscaled value at the column's scale. The message's own
/// `scale` is proto3's 0 when not written; a written one that differs is rescaled exactly.
fn decimal_at_scale(m: &DynamicMessage, scale: i8) -> Result<i256, FieldError> {
    let v = Value::Message(m.clone());
    let bytes = match member(m, "value").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => return Err(want("a confluent.type.Decimal with bytes `value`", &v)),
    };
    let unscaled = decimal::from_twos_complement(&bytes)
        .ok_or_else(|| want("a decimal of at most 76 digits", &v))?;
    let own = member_i64(m, "scale").unwrap_or(0);
    if own == 0 || own == i64::from(scale) {
        return Ok(unscaled);
    }
    // Rendering writes |scale| digits: an absurd scale is refused, not written out.
    let own = crate::convert::variable_scale(own)
        .ok_or_else(|| want("a decimal scale within ±32767", &v))?;
    let mut text = String::new();
    decimal::format(unscaled, own, &mut text);
    decimal::parse_text(&text)
        .and_then(|d| d.rescale(i32::from(scale)))
        .ok_or_else(|| want("a decimal exact at the column scale", &v))
}

/// A `google.protobuf.Timestamp` in µs (sub-µs digits would be lost: refused).
fn timestamp_micros(m: &DynamicMessage) -> Result<i64, FieldError> {
    let seconds = member_i64(m, "seconds").unwrap_or(0);
    let nanos = member_i64(m, "nanos").unwrap_or(0);
    let v = || Value::Message(m.clone());
    if !(0..1_000_000_000).contains(&nanos) || nanos % 1000 != 0 {
        return Err(want(
            "a Timestamp with nanos in [0, 1e9) at µs precision",
            &v(),
        ));
    }
    seconds
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(nanos / 1000))
        .ok_or_else(|| want("a representable Timestamp", &v()))
}

/// A `google.type.Date` as days since 1970-01-01.
fn date_days(m: &DynamicMessage) -> Result<i64, FieldError> {
    let year = member_i64(m, "year").unwrap_or(0);
    let month = member_i64(m, "month").unwrap_or(0);
    let day = member_i64(m, "day").unwrap_or(0);
    // Year, month or day 0 mean "not given" in google.type.Date: no calendar date.
    if year == 0 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(want(
            "a full calendar date (year, month and day)",
            &Value::Message(m.clone()),
        ));
    }
    Ok(temporal::days_from_civil(year, month as u32, day as u32))
}

/// A `google.type.TimeOfDay` in µs since midnight.
fn time_of_day_micros(m: &DynamicMessage) -> Result<i64, FieldError> {
    let part = |n: &str| member_i64(m, n).unwrap_or(0);
    let (h, min, s, nanos) = (
        part("hours"),
        part("minutes"),
        part("seconds"),
        part("nanos"),
    );
    if !(0..=24).contains(&h)
        || !(0..60).contains(&min)
        || !(0..=60).contains(&s)
        || !(0..1_000_000_000).contains(&nanos)
    {
        return Err(want("a time of day", &Value::Message(m.clone())));
    }
    let micros = ((h * 60 + min) * 60 + s) * 1_000_000 + nanos / 1000;
    crate::convert::time_of_day(micros, &Wire::TimeMicros)
        .ok_or_else(|| want(crate::convert::TIME_OF_DAY, &Value::Message(m.clone())))
}

/// A value as plain JSON (map columns): messages as objects of their fields, bytes as base64.
fn json_of(v: &Value) -> Json {
    use base64::Engine as _;
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(i) => Json::from(*i),
        Value::I64(i) => Json::from(*i),
        Value::U32(i) => Json::from(*i),
        Value::U64(i) => Json::from(*i),
        Value::F32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::EnumNumber(n) => Json::from(*n),
        Value::Message(m) => Json::Object(
            m.fields()
                .map(|(f, v)| (f.name().to_owned(), json_of(v)))
                .collect(),
        ),
        Value::List(items) => Json::Array(items.iter().map(json_of).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(i) => i.to_string(),
                        MapKey::U64(i) => i.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    (key, json_of(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{SchemaFormat, StaticResolver};
    use crate::render::render_in_order;
    use crate::{Decoder, DecoderConfig, Outcome};
    use decant_model::KafkaRecord;
    use prost_reflect::prost::Message as _;

    fn proto(text: &str) -> RegisteredSchema {
        RegisteredSchema {
            format: SchemaFormat::Protobuf,
            text: text.into(),
        }
    }

    fn compile(text: &str) -> Result<Compiled, DecodeErrorKind> {
        Compiled::compile(&proto(text), Vec::new(), 7)
    }

    fn top(compiled: &Compiled, path: &[i32]) -> Arc<MessageSchema> {
        compiled
            .messages
            .get(path)
            .cloned()
            .unwrap_or_else(|| panic!("no message at {path:?}"))
    }

    #[test]
    fn message_indexes_single_zero_explicit_and_nested() {
        let (single, rest) = split_message_indexes(&[0x00, 0x08, 0x65]).expect("[0]");
        assert_eq!((single.as_slice(), rest), (&[0][..], &[0x08, 0x65][..]));
        // Some libraries write [0] as count 1, index 0.
        let (explicit, rest) = split_message_indexes(&[0x02, 0x00, 0x08]).expect("01 00");
        assert_eq!((explicit.as_slice(), rest), (&[0][..], &[0x08][..]));
        // [1, 0]: count 2 (zigzag 4), indexes 1 (zigzag 2) and 0.
        let (nested, rest) = split_message_indexes(&[0x04, 0x02, 0x00, 0xff]).expect("[1,0]");
        assert_eq!((nested.as_slice(), rest), (&[1, 0][..], &[0xff][..]));
        // A multi-byte varint: index 100 is zigzag 200 = c8 01.
        let (wide, _) = split_message_indexes(&[0x02, 0xc8, 0x01]).expect("[100]");
        assert_eq!(wide.as_slice(), &[100]);
    }

    #[test]
    fn malformed_message_indexes_are_errors() {
        for (bytes, says) in [
            (&[][..], "truncated count"),
            (&[0x80][..], "truncated count"),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..], "truncated count"),
            (&[0x04, 0x02][..], "index 1 of 2 truncated"),
            (&[0x01][..], "count -1"),
            (&[0x7e][..], "count 63"),
            (&[0x02, 0x01][..], "negative index -1"),
        ] {
            let err = split_message_indexes(bytes).expect_err("malformed");
            assert!(err.contains(says), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn bundled_imports_compile_to_their_wire_types() {
        let compiled = compile(
            r#"syntax = "proto3";
            package t;
            import "confluent/type/decimal.proto";
            import "confluent/meta.proto";
            import "google/protobuf/timestamp.proto";
            import "google/protobuf/wrappers.proto";
            import "google/type/date.proto";
            import "google/type/timeofday.proto";
            message Row {
              confluent.type.Decimal amount = 1 [(confluent.field_meta) = { params: [
                { key: "precision", value: "9" }, { key: "scale", value: "3" } ] }];
              google.protobuf.Timestamp at = 2;
              google.protobuf.Int64Value maybe = 3;
              google.type.Date day = 4;
              google.type.TimeOfDay clock = 5;
              int32 small = 6 [(confluent.field_meta) = { params: [ { key: "connect.type", value: "int16" } ] }];
              int64 micros = 7 [(confluent.field_meta) = { params: [ { key: "connect.name", value: "io.debezium.time.MicroTimestamp" } ] }];
              repeated string tags = 8;
              map<string, string> attrs = 9;
              optional string note = 10;
              confluent.type.Decimal any_scale = 11;
            }"#,
        )
        .expect("compiles with the bundled imports");
        let row = top(&compiled, &[0]);
        let fields = message_fields(
            &row.descriptor,
            row.descriptor
                .parent_pool()
                .get_extension_by_name(FIELD_META)
                .as_ref(),
            0,
        )
        .expect("fields");
        let got: Vec<(&str, &Wire, bool)> = fields
            .iter()
            .map(|f| (f.name.as_str(), &f.wire, f.optional))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "amount",
                    &Wire::Decimal {
                        precision: Some(9),
                        scale: 3,
                        text: false
                    },
                    true
                ),
                ("at", &Wire::TimestampMicros, true),
                ("maybe", &Wire::Int64, true),
                ("day", &Wire::Date, true),
                ("clock", &Wire::TimeMicros, true),
                ("small", &Wire::Int16, false),
                ("micros", &Wire::TimestampMicros, false),
                ("tags", &Wire::Array(Box::new(Wire::String)), false),
                ("attrs", &Wire::Map, false),
                ("note", &Wire::String, true),
                ("any_scale", &Wire::VariableScaleDecimal, true),
            ]
        );
    }

    #[test]
    fn connect_field_meta_without_its_import_compiles() {
        // What Connect registers: field_meta used, only decimal.proto imported.
        let compiled = compile(
            r#"syntax = "proto3";
            package t;
            import "confluent/type/decimal.proto";
            message Row {
              confluent.type.Decimal d = 1 [(confluent.field_meta) = { params: [ { value: "2", key: "scale" } ] }];
            }"#,
        )
        .expect("compiles");
        let row = top(&compiled, &[0]);
        let meta = row
            .descriptor
            .parent_pool()
            .get_extension_by_name(FIELD_META);
        let fields = message_fields(&row.descriptor, meta.as_ref(), 0).expect("fields");
        assert_eq!(
            fields[0].wire,
            Wire::Decimal {
                precision: None,
                scale: 2,
                text: false
            }
        );
    }

    #[test]
    fn unknown_imports_and_recursive_messages_are_schema_errors() {
        let err = compile(
            r#"syntax = "proto3"; import "other/thing.proto"; message A { other.Thing t = 1; }"#,
        )
        .err()
        .expect("unresolved import");
        assert!(err.to_string().contains("other/thing.proto"), "{err}");
        let compiled =
            compile(r#"syntax = "proto3"; message Node { Node next = 1; } message Envelope { Node after = 1; string op = 2; }"#)
                .expect("compiles");
        let err = top(&compiled, &[1]).row(7).expect_err("recursive");
        assert!(err.to_string().contains("nest deeper"), "{err}");
    }

    #[test]
    fn references_resolve_imports() {
        let resolver = StaticResolver::new()
            .with(
                3,
                SchemaFormat::Protobuf,
                r#"syntax = "proto3"; package t; import "shared/money.proto";
                message Envelope { Row after = 1; string op = 2; message Row { int32 id = 1; shared.Money price = 2; } }"#,
            )
            .with_reference(
                3,
                "shared/money.proto",
                SchemaFormat::Protobuf,
                r#"syntax = "proto3"; package shared; message Money { string currency = 1; int64 cents = 2; }"#,
            );
        let compiled = Compiled::compile(
            &crate::SchemaResolver::resolve(&resolver, 3).expect("schema"),
            crate::SchemaResolver::references(&resolver, 3).expect("references"),
            3,
        )
        .expect("compiles with its reference");
        let row = top(&compiled, &[0]).row(3).expect("row").expect("envelope");
        assert_eq!(row[1].name, "price");
        assert!(matches!(&row[1].wire, Wire::Struct(f) if f.len() == 2));
    }

    const ZOO: &str = r#"syntax = "proto3";
        package t;
        import "confluent/type/decimal.proto";
        message Key { int32 id = 1; }
        message Envelope {
          Value before = 1;
          Value after = 2;
          Source source = 3;
          string op = 5;
          message Value {
            int32 id = 1;
            confluent.type.Decimal amount = 2 [(confluent.field_meta) = { params: [
              { value: "10", key: "precision" }, { value: "2", key: "scale" } ] }];
            string label = 3;
            int64 count = 4;
            bool flag = 5;
            Kind kind = 6;
          }
          message Source { string schema = 1; string table = 2; int64 lsn = 3; }
          enum Kind { NONE = 0; BIG = 1; }
        }"#;

    /// A framed record of message `path` of `ZOO` (schema id 9), its fields set by `fill`.
    fn framed(path: &[i32], fill: impl FnOnce(&mut DynamicMessage)) -> Vec<u8> {
        let compiled = compile(ZOO).expect("zoo");
        let mut m = DynamicMessage::new(top(&compiled, path).descriptor.clone());
        fill(&mut m);
        let mut out = vec![0, 0, 0, 0, 9];
        out.push(2 * path.len() as u8);
        out.extend(path.iter().map(|i| 2 * *i as u8));
        out.extend(m.encode_to_vec());
        out
    }

    fn decode(key: Option<&[u8]>, value: &[u8]) -> String {
        let mut dec = Decoder::new(DecoderConfig::default())
            .expect("config")
            .with_resolver(Box::new(StaticResolver::new().with(
                9,
                SchemaFormat::Protobuf,
                ZOO,
            )));
        let rec = KafkaRecord {
            key,
            ..KafkaRecord::value_only("p.t.zoo", 0, 1, value)
        };
        match dec.decode(&rec) {
            Err(e) => format!("error: {e}"),
            Ok(Outcome::Control(c)) => format!("control {:?}", c.event),
            Ok(Outcome::Row { .. }) => {
                let mut out = String::new();
                render_in_order(&dec.take_batches().expect("batches"), &[], &mut out);
                out
            }
        }
    }

    fn set(m: &mut DynamicMessage, name: &str, v: Value) {
        m.set_field_by_name(name, v);
    }

    fn row(fill: impl FnOnce(&mut DynamicMessage)) -> Value {
        let compiled = compile(ZOO).expect("zoo");
        let mut m = DynamicMessage::new(top(&compiled, &[1, 0]).descriptor.clone());
        fill(&mut m);
        Value::Message(m)
    }

    fn source() -> Value {
        let compiled = compile(ZOO).expect("zoo");
        let mut s = DynamicMessage::new(top(&compiled, &[1, 1]).descriptor.clone());
        set(&mut s, "schema", Value::String("t".into()));
        set(&mut s, "table", Value::String("zoo".into()));
        set(&mut s, "lsn", Value::I64(42));
        Value::Message(s)
    }

    fn decimal(unscaled_be: &[u8]) -> Value {
        let compiled = compile(ZOO).expect("zoo");
        let desc = top(&compiled, &[1, 0]).descriptor.clone();
        let Kind::Message(d) = desc.get_field_by_name("amount").expect("amount").kind() else {
            panic!("amount is a message");
        };
        let mut m = DynamicMessage::new(d);
        set(&mut m, "value", Value::Bytes(unscaled_be.to_vec().into()));
        Value::Message(m)
    }

    #[test]
    fn decimals_and_missing_proto3_scalars() {
        let value = framed(&[1], |m| {
            set(m, "op", Value::String("c".into()));
            set(m, "source", source());
            set(
                m,
                "after",
                row(|r| {
                    set(r, "id", Value::I32(5));
                    // -12.34 at scale 2: unscaled -1234 = 0xfb2e.
                    set(r, "amount", decimal(&[0xfb, 0x2e]));
                    // label, count, flag, kind not written: proto3 defaults, not null.
                }),
            );
        });
        let key = framed(&[0], |k| set(k, "id", Value::I32(5)));
        let out = decode(Some(&key), &value);
        assert!(
            out.contains(r#""row":{"id":5,"amount":"-12.34","label":"","count":0,"flag":false,"kind":"NONE"}"#),
            "{out}"
        );
        assert!(out.contains(r#""key":{"id":5}"#), "{out}");
        assert!(out.contains(r#""table":"t.zoo""#), "{out}");
        // A message-typed field not written is null.
        let value = framed(&[1], |m| {
            set(m, "op", Value::String("r".into()));
            set(m, "after", row(|r| set(r, "id", Value::I32(6))));
        });
        let out = decode(None, &value);
        assert!(out.contains(r#""amount":null"#), "{out}");
    }

    #[test]
    fn deletes_take_the_protobuf_key() {
        let value = framed(&[1], |m| {
            set(m, "op", Value::String("d".into()));
            set(m, "source", source());
            set(m, "before", row(|r| set(r, "id", Value::I32(8))));
        });
        let key = framed(&[0], |k| set(k, "id", Value::I32(8)));
        let out = decode(Some(&key), &value);
        assert!(
            out.contains(r#""op":"delete""#) && out.contains(r#""key":{"id":8}"#),
            "{out}"
        );
    }

    #[test]
    fn undecodable_records_name_what_is_wrong() {
        // Indexes naming no message.
        let mut value = framed(&[1], |m| set(m, "op", Value::String("c".into())));
        value[6] = 2 * 7;
        let out = decode(None, &value);
        assert!(out.contains("message indexes [7] name no message"), "{out}");
        // Bytes that are not the message: field 2 (after) as a varint of a wrong wire type.
        let out = decode(None, &[0, 0, 0, 0, 9, 2, 2, 0x10, 0x01]);
        assert!(
            out.contains("Protobuf: schema id 9: not a t.Envelope message"),
            "{out}"
        );
        // A truncated length-delimited field.
        let out = decode(None, &[0, 0, 0, 0, 9, 2, 2, 0x2a, 0x05, b'c']);
        assert!(out.contains("not a t.Envelope message"), "{out}");
        // An enum number the enum does not have: the field's path is named.
        let value = framed(&[1], |m| {
            set(m, "op", Value::String("c".into()));
            set(m, "source", source());
            set(m, "after", row(|r| set(r, "kind", Value::EnumNumber(9))));
        });
        let out = decode(None, &value);
        assert!(
            out.contains("field after.kind: expected a value of enum t.Envelope.Kind"),
            "{out}"
        );
        // A decimal too wide for the column.
        let value = framed(&[1], |m| {
            set(m, "op", Value::String("c".into()));
            set(m, "source", source());
            set(m, "after", row(|r| set(r, "amount", decimal(&[0x7f; 40]))));
        });
        let out = decode(None, &value);
        assert!(out.contains("field after.amount"), "{out}");
    }

    #[test]
    fn decimals_written_at_another_scale_are_rescaled_exactly() {
        let at = |unscaled: &[u8], scale: i32| {
            let Value::Message(mut m) = decimal(unscaled) else {
                panic!("a message");
            };
            m.set_field_by_name("scale", Value::I32(scale));
            decimal_at_scale(&m, 2)
        };
        // 1.5 written at scale 1 is 150 at scale 2; 1.234 at scale 3 is not exact at scale 2.
        assert_eq!(at(&[0x0f], 1), Ok(i256::from_i128(150)));
        assert!(at(&[0x04, 0xd2], 3).is_err());
        assert!(
            at(&[0x01], 2_000_000_000).is_err(),
            "absurd scales are refused"
        );
    }

    proptest::proptest! {
        /// Whatever follows the framing header, decoding gives a row or an error, never a panic.
        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut value = vec![0, 0, 0, 0, 9];
            value.extend(&payload);
            let _ = decode(Some(&value), &value);
        }

        /// Valid framing with an arbitrary message body: the same.
        #[test]
        fn arbitrary_envelopes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut value = vec![0, 0, 0, 0, 9, 2, 2];
            value.extend(&body);
            let _ = decode(None, &value);
        }
    }

    #[test]
    fn well_known_values_convert() {
        let compiled = compile(
            r#"syntax = "proto3";
            import "google/protobuf/timestamp.proto";
            import "google/type/date.proto";
            import "google/type/timeofday.proto";
            message R { google.protobuf.Timestamp at = 1; google.type.Date day = 2; google.type.TimeOfDay clock = 3; }"#,
        )
        .expect("compiles");
        let desc = top(&compiled, &[0]).descriptor.clone();
        let sub = |name: &str, fields: &[(&str, Value)]| {
            let Kind::Message(d) = desc.get_field_by_name(name).expect("field").kind() else {
                panic!("{name} is a message");
            };
            let mut m = DynamicMessage::new(d);
            for (n, v) in fields {
                m.set_field_by_name(n, v.clone());
            }
            m
        };
        let at = sub(
            "at",
            &[
                ("seconds", Value::I64(1_709_210_096)),
                ("nanos", Value::I32(789_012_000)),
            ],
        );
        assert_eq!(timestamp_micros(&at), Ok(1_709_210_096_789_012));
        let odd = sub("at", &[("nanos", Value::I32(1))]);
        assert!(timestamp_micros(&odd).is_err(), "sub-µs digits are refused");
        let day = sub(
            "day",
            &[
                ("year", Value::I32(2024)),
                ("month", Value::I32(2)),
                ("day", Value::I32(29)),
            ],
        );
        assert_eq!(date_days(&day), Ok(19_782));
        assert!(date_days(&sub("day", &[("year", Value::I32(2024))])).is_err());
        let clock = sub(
            "clock",
            &[
                ("hours", Value::I32(13)),
                ("minutes", Value::I32(45)),
                ("seconds", Value::I32(30)),
                ("nanos", Value::I32(123_456_000)),
            ],
        );
        assert_eq!(time_of_day_micros(&clock), Ok(49_530_123_456));
    }
}
