//! [`ProtobufEncoder`]: `output.format = "protobuf"` for the compacted-topic sink. Each table's
//! key and value get a proto3 file (one message each, `Key` / `Value`) derived from its output
//! shape, registered (`schemaType: PROTOBUF`) under `<topic>-key` / `<topic>-value` before the
//! first record that needs them; records are `0x00 + id (big-endian u32) + message indexes +
//! message`, the indexes the single byte `00` (`[0]`, the file's only message). Deletes stay
//! tombstones with a Protobuf key.
//!
//! Map of the module: [`declare`] maps a column type to a field declaration; [`number`] gives
//! the declarations their field numbers from the subject's latest schema ([`read_previous`]);
//! [`render`] writes the `.proto` text; [`codec`] compiles it once per schema (protox, the
//! same compiler and bundled imports as decant's Protobuf decoder) into the descriptors every
//! record's [`DynamicMessage`] is built from ([`message_of`], [`convert`]).
//!
//! **Types** follow what Kafka Connect's `ProtobufConverter` writes and what Confluent's
//! logical type conversion (Confluent Cloud Flink, Tableflow) reads, so both give typed columns:
//!
//! | decant type | Protobuf | Connect reads | Flink / Tableflow reads |
//! |---|---|---|---|
//! | Boolean, Int32, Int64, Float32, Float64 | `bool`, `int32`, `int64`, `float`, `double` | same | BOOLEAN, INT, BIGINT, FLOAT, DOUBLE |
//! | Int8, Int16 | `int32` + `connect.type` `int8` / `int16` | INT8, INT16 | TINYINT, SMALLINT |
//! | Decimal(p,s), 1 ≤ p ≤ 38 | `confluent.type.Decimal` + `precision`, `scale` | Decimal | DECIMAL(p,s) |
//! | Decimal beyond that, DecimalText, String, Xml, Enum, Uuid, ZonedTime | `string` (exact text) | STRING | STRING |
//! | Binary | `bytes` | BYTES | BYTES |
//! | Date | `google.type.Date` | Date | DATE |
//! | Time µs / ns | `google.type.TimeOfDay` (+ `flink.precision` 6 for µs) | Time | TIME |
//! | Timestamp µs / ns (no zone) | `google.protobuf.Timestamp` + `flink.type` `timestamp` (+ `flink.precision` 6) | Timestamp | TIMESTAMP(6 / 9) |
//! | TimestampTz µs / ns | `google.protobuf.Timestamp` (+ `flink.precision` 6) | Timestamp | TIMESTAMP_LTZ(6 / 9) |
//! | Duration µs / ns, MySQL TIME (SignedTime) | `int64` (a count of the column's unit) | INT64 | BIGINT |
//! | Json, Geometry, Point, List, Struct | `string` (the canonical JSON text, byte for byte) | STRING | STRING |
//!
//! The parameters are `(confluent.field_meta)` params (Connect copies them into the Connect
//! schema's parameters). What a type alone does not say is a `decant.type` param, as in the
//! Avro output (`json`, `uuid`, `duration_micros`, `signed_time_nanos` …); the readers ignore
//! it. Zone-less timestamps are a `Timestamp` holding the wall-clock reading as if it were UTC
//! (what Debezium's and Connect's own zone-less timestamps hold) marked `flink.type:
//! timestamp`, the marker Confluent's Flink conversion reads as TIMESTAMP instead of
//! TIMESTAMP_LTZ. Nanosecond columns are exact (`Timestamp` and `TimeOfDay` carry `nanos`).
//! PostgreSQL's ±infinity timestamps become the ends of `Timestamp`'s valid range,
//! 9999-12-31T23:59:59.999999Z and 0001-01-01T00:00:00Z, which every Protobuf runtime accepts
//! (an exact µs value, so decant's own decoder reads it too). Dates outside the years 1–9999
//! have no `google.type.Date` (year 0 means "no year") and fail the record.
//!
//! **Nulls.** Key columns are plain fields. Every other value field can be null: scalars are
//! proto3 `optional` (presence, so a NULL is not read as 0 or ""), message-typed fields are
//! nullable already. `optional` rather than wrapper types (`google.protobuf.Int64Value`,
//! Connect's `wrapper.for.nullables`): Confluent's Flink conversion writes and reads `optional`
//! as NULLABLE, and Connect's converter (7.0+) reads `optional` as an optional field without any
//! setting, while it reads wrappers as a struct `{value}` unless its reader is configured with
//! `wrapper.for.nullables`.
//!
//! **Field numbers** never change meaning. A new shape's numbers come from the latest schema
//! registered under the subject (read before deriving, so a restart with a changed shape
//! continues it): a column keeps its field's number when its declaration (type, `optional`,
//! params) is unchanged; a new column takes one above every number the subject's schema uses
//! or reserves; a column whose declaration changed takes a new number and its old one becomes
//! `reserved`. A dropped column's field stays declared (never written, so null): its number is
//! never reused, and a column that comes back with the same type gets its number back. Fields
//! are written in number order, so reordered columns derive the same text (no new version).
//!
//! **Imports, not references.** `confluent/type/decimal.proto`, `confluent/meta.proto`,
//! `google/type/*.proto` and `google/protobuf/*.proto` are what Confluent calls known types:
//! its serializer (`skip.known.types`, default true in 7.0.16, seen in the wheel's
//! `KafkaProtobufSerializerConfig`) registers schemas importing them without references, as
//! Connect's converter does, and every Confluent reader, the Schema Registry and Apicurio
//! resolve them built in. decant registers the same way (no `references`), so its schemas get
//! the ids a Confluent serializer's would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decant_decode::{convert, protobuf, temporal};
use decant_model::sink::{OutputShape, SinkError};
use decant_model::{ColumnType, Disposition, TableId, TimeUnit};
use prost_reflect::prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::value::RawValue;

use crate::avro_output::{
    Members, avro_name, avro_namespace, decimal_at_scale, float_text, json_string, semantic_tag,
};
use crate::registered::{
    Derived, DerivedSchema, Previous, RegisteredEncoder, ShapeField, SinkOrRefusal, WireFormat,
    shape_fields,
};
use crate::types::{Schema, SchemaType};

const DECIMAL: &str = "confluent.type.Decimal";
const TIMESTAMP: &str = "google.protobuf.Timestamp";
const DATE: &str = "google.type.Date";
const TIME_OF_DAY: &str = "google.type.TimeOfDay";
/// The import each message type needs.
const IMPORTS: [(&str, &str); 4] = [
    (DECIMAL, "confluent/type/decimal.proto"),
    (TIMESTAMP, "google/protobuf/timestamp.proto"),
    (DATE, "google/type/date.proto"),
    (TIME_OF_DAY, "google/type/timeofday.proto"),
];
/// The param naming what a type alone does not say (see the module documentation).
const DECANT_TYPE: &str = "decant.type";
/// Field numbers the Protobuf implementation keeps for itself.
const IMPLEMENTATION_RESERVED: std::ops::RangeInclusive<u32> = 19_000..=19_999;
/// `Timestamp`'s valid range: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (seconds).
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// One field of a message as the `.proto` text declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldDecl {
    name: String,
    number: u32,
    /// A scalar type name, or a message type's full name (written with a leading dot).
    ty: String,
    optional: bool,
    /// `(confluent.field_meta)` params, written in key order.
    params: BTreeMap<String, String>,
}

impl FieldDecl {
    /// Whether `other` declares the same field (all but the number).
    fn same_as(&self, other: &FieldDecl) -> bool {
        self.name == other.name
            && self.ty == other.ty
            && self.optional == other.optional
            && self.params == other.params
    }
}

/// A message's fields and reserved numbers, as derived or as read back from the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MessageDecl {
    fields: Vec<FieldDecl>,
    reserved: BTreeSet<u32>,
}

/// The field declaration of a column of type `ty` (its number still 0).
fn declare(name: String, ty: &ColumnType, nullable: bool) -> FieldDecl {
    let mut params = BTreeMap::new();
    let mut param = |k: &str, v: &str| {
        params.insert(k.to_owned(), v.to_owned());
    };
    let (ty_name, message) = match ty {
        ColumnType::Boolean => ("bool", false),
        ColumnType::Int8 => {
            param("connect.type", "int8");
            ("int32", false)
        }
        ColumnType::Int16 => {
            param("connect.type", "int16");
            ("int32", false)
        }
        ColumnType::Int32 => ("int32", false),
        ColumnType::Int64 | ColumnType::Duration(_) | ColumnType::SignedTime(_) => ("int64", false),
        ColumnType::Float32 => ("float", false),
        ColumnType::Float64 => ("double", false),
        ColumnType::Decimal { precision, scale } if decimal_fits(*precision, *scale) => {
            param("precision", &precision.to_string());
            param("scale", &scale.to_string());
            (DECIMAL, true)
        }
        ColumnType::Binary => ("bytes", false),
        ColumnType::Date => (DATE, true),
        ColumnType::Time(unit) => {
            if *unit == TimeUnit::Micros {
                param("flink.precision", "6");
            }
            (TIME_OF_DAY, true)
        }
        ColumnType::Timestamp(unit) | ColumnType::TimestampTz(unit) => {
            if *unit == TimeUnit::Micros {
                param("flink.precision", "6");
            }
            if matches!(ty, ColumnType::Timestamp(_)) {
                param("flink.type", "timestamp");
            }
            (TIMESTAMP, true)
        }
        ColumnType::Decimal { .. }
        | ColumnType::DecimalText
        | ColumnType::String
        | ColumnType::Xml
        | ColumnType::Enum
        | ColumnType::Uuid
        | ColumnType::ZonedTime
        | ColumnType::Json
        | ColumnType::Geometry
        | ColumnType::Point
        | ColumnType::List(_)
        | ColumnType::Struct(_) => ("string", false),
    };
    if let Some(tag) = decant_tag(ty) {
        param(DECANT_TYPE, tag);
    }
    FieldDecl {
        name,
        number: 0,
        ty: ty_name.to_owned(),
        // Message-typed fields have presence already; `optional` on them says nothing more.
        optional: nullable && !message,
        params,
    }
}

/// Decimals `confluent.type.Decimal` is written for: what Iceberg and Flink hold (as in Avro).
fn decimal_fits(precision: u8, scale: i8) -> bool {
    (1..=38).contains(&precision) && scale >= 0 && scale as u8 <= precision
}

/// The `decant.type` of a column: Avro's semantic tags, less the temporal ones Protobuf's
/// types keep exactly, plus `uuid` (Avro has a logical type for it, Protobuf none).
fn decant_tag(ty: &ColumnType) -> Option<&'static str> {
    match ty {
        ColumnType::Uuid => Some("uuid"),
        ColumnType::Time(_) | ColumnType::Timestamp(_) | ColumnType::TimestampTz(_) => None,
        ColumnType::Decimal { precision, scale } if decimal_fits(*precision, *scale) => None,
        ColumnType::Decimal { .. } => Some("decimal"),
        other => semantic_tag(other),
    }
}

/// Gives `wanted` (declarations in shape order) their numbers, continuing `previous` (see the
/// module documentation): the message's fields in number order and its reserved numbers.
fn number(wanted: Vec<FieldDecl>, previous: Option<&MessageDecl>) -> MessageDecl {
    let empty = MessageDecl::default();
    let previous = previous.unwrap_or(&empty);
    let mut reserved = previous.reserved.clone();
    let mut used: BTreeSet<u32> = previous.fields.iter().map(|f| f.number).collect();
    let mut fields = Vec::with_capacity(wanted.len().max(previous.fields.len()));
    let mut fresh = Vec::new();
    for mut w in wanted {
        match previous.fields.iter().find(|p| p.name == w.name) {
            Some(p) if p.same_as(&w) => {
                w.number = p.number;
                fields.push(w);
            }
            // A changed declaration: the old number must not carry the new meaning.
            Some(p) => {
                reserved.insert(p.number);
                fresh.push(w);
            }
            None => fresh.push(w),
        }
    }
    // Dropped columns stay declared, so their numbers keep their meaning.
    for p in &previous.fields {
        if !fields.iter().any(|f| f.name == p.name) && !reserved.contains(&p.number) {
            fields.push(p.clone());
        }
    }
    used.extend(reserved.iter().copied());
    let mut next = used.iter().next_back().map_or(1, |max| max + 1);
    for mut w in fresh {
        if IMPLEMENTATION_RESERVED.contains(&next) {
            next = IMPLEMENTATION_RESERVED.end() + 1;
        }
        w.number = next;
        next += 1;
        fields.push(w);
    }
    fields.sort_by_key(|f| f.number);
    MessageDecl { fields, reserved }
}

/// The `.proto` text of one message `name` in `package`.
fn render(package: &str, name: &str, message: &MessageDecl) -> String {
    let mut imports = BTreeSet::new();
    for f in &message.fields {
        if !f.params.is_empty() {
            imports.insert("confluent/meta.proto");
        }
        if let Some((_, file)) = IMPORTS.iter().find(|(t, _)| *t == f.ty) {
            imports.insert(*file);
        }
    }
    let mut out = format!("syntax = \"proto3\";\npackage {package};\n\n");
    for i in &imports {
        let _ = writeln!(out, "import \"{i}\";");
    }
    if !imports.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "message {name} {{");
    for f in &message.fields {
        out.push_str("  ");
        if f.optional {
            out.push_str("optional ");
        }
        // Message types fully qualified: a package named like `x.google` must not capture them.
        if IMPORTS.iter().any(|(t, _)| *t == f.ty) {
            out.push('.');
        }
        let _ = write!(out, "{} {} = {}", f.ty, f.name, f.number);
        if !f.params.is_empty() {
            out.push_str(" [(confluent.field_meta) = { params: [");
            for (i, (k, v)) in f.params.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep} {{ key: {k:?}, value: {v:?} }}");
            }
            out.push_str(" ] }]");
        }
        out.push_str(";\n");
    }
    if !message.reserved.is_empty() {
        let numbers: Vec<String> = message.reserved.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "  reserved {};", numbers.join(", "));
    }
    out.push_str("}\n");
    out
}

/// The message `name` of a registered schema's text as declarations; `None` when it does not
/// compile or has no such message (the subject then numbers from scratch).
fn read_previous(text: &str, name: &str) -> Option<MessageDecl> {
    let file = protobuf::compile_file(text, HashMap::new()).ok()?;
    let message = file.messages().find(|m| m.name() == name)?;
    let meta = file
        .parent_pool()
        .get_extension_by_name(protobuf::FIELD_META);
    let fields = message
        .fields()
        .map(|f| FieldDecl {
            name: f.name().to_owned(),
            number: f.number(),
            ty: type_name(&f.kind()),
            optional: f.field_descriptor_proto().proto3_optional(),
            params: protobuf::field_params(&f, meta.as_ref())
                .into_iter()
                .collect(),
        })
        .collect();
    let mut reserved = BTreeSet::new();
    for r in &message.descriptor_proto().reserved_range {
        // End-exclusive. decant reserves single numbers; a wide range (`reserved 5 to max`,
        // written by someone else) keeps its ends only: new numbers go above the largest
        // anyway, and the set stays small.
        let (start, end) = (
            u32::try_from(r.start()).unwrap_or(0),
            u32::try_from(r.end()).unwrap_or(0),
        );
        if end.saturating_sub(start) > 1_000 {
            reserved.extend([start, end - 1]);
        } else {
            reserved.extend(start..end);
        }
    }
    Some(MessageDecl { fields, reserved })
}

/// The `.proto` spelling of a field's type (message types by full name).
fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Message(m) => return m.full_name().to_owned(),
        Kind::Enum(e) => return e.full_name().to_owned(),
    }
    .to_owned()
}

/// How one field's canonical JSON becomes a Protobuf value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Bool,
    Int32,
    Int64,
    Float,
    Double,
    /// Exact decimal at this scale, as `confluent.type.Decimal`.
    Decimal(i32),
    /// A JSON string's contents (or any other JSON value's text).
    Text,
    /// The JSON value's own text (documents, geometry, lists, structs).
    JsonText,
    Uuid,
    /// Base64 text → bytes.
    Bytes,
    Date,
    TimeOfDay,
    /// An instant (`…Z`) or a wall-clock reading (no zone), exact to the nanosecond.
    Timestamp,
    /// A signed clock reading (`-838:59:59.000000`) → a count of 1/per_second seconds.
    SignedTime(u64),
}

/// What a compiled field holds, from its type and params: the same for derived schemas and
/// for a key schema read back from the registry. `None` for types decant does not write.
fn enc_of(field: &FieldDescriptor, params: &HashMap<String, String>) -> Option<Enc> {
    let tag = params.get(DECANT_TYPE).map(String::as_str);
    Some(match field.kind() {
        Kind::Bool => Enc::Bool,
        Kind::Int32 => Enc::Int32,
        Kind::Int64 => match tag {
            Some("signed_time_micros") => Enc::SignedTime(temporal::MICROS_PER_SECOND),
            Some("signed_time_nanos") => Enc::SignedTime(temporal::NANOS_PER_SECOND),
            _ => Enc::Int64,
        },
        Kind::Float => Enc::Float,
        Kind::Double => Enc::Double,
        Kind::String => match tag {
            Some("json" | "geometry" | "point" | "list" | "struct") => Enc::JsonText,
            Some("uuid") => Enc::Uuid,
            _ => Enc::Text,
        },
        Kind::Bytes => Enc::Bytes,
        Kind::Message(m) => match m.full_name() {
            DECIMAL => Enc::Decimal(params.get("scale")?.parse().ok()?),
            DATE => Enc::Date,
            TIME_OF_DAY => Enc::TimeOfDay,
            TIMESTAMP => Enc::Timestamp,
            _ => return None,
        },
        _ => return None,
    })
}

/// One field of a compiled message: where its value is in the JSON object, its conversion.
#[derive(Debug, Clone)]
struct CodecField {
    json_name: String,
    field: FieldDescriptor,
    enc: Enc,
    nullable: bool,
}

/// A registered message schema, compiled, and how to fill it.
pub struct Codec {
    descriptor: MessageDescriptor,
    fields: Vec<CodecField>,
}

/// Compiles `text` and maps message `name`'s fields: `columns` (JSON name, Protobuf name,
/// nullable) when derived, every field (not nullable) when read back for a key.
fn codec(
    text: &str,
    name: &str,
    columns: Option<&[(String, String, bool)]>,
) -> Result<Codec, String> {
    let file = protobuf::compile_file(text, HashMap::new())?;
    let descriptor = file
        .messages()
        .find(|m| m.name() == name)
        .ok_or_else(|| format!("no message {name}"))?;
    let meta = file
        .parent_pool()
        .get_extension_by_name(protobuf::FIELD_META);
    let enc = |field: &FieldDescriptor| {
        enc_of(field, &protobuf::field_params(field, meta.as_ref()))
            .ok_or_else(|| format!("field {} has a type decant does not write", field.name()))
    };
    let fields = match columns {
        Some(columns) => columns
            .iter()
            .map(|(json_name, proto_name, nullable)| {
                let field = descriptor
                    .get_field_by_name(proto_name)
                    .ok_or_else(|| format!("no field {proto_name}"))?;
                Ok(CodecField {
                    json_name: json_name.clone(),
                    enc: enc(&field)?,
                    field,
                    nullable: *nullable,
                })
            })
            .collect::<Result<_, String>>()?,
        None => descriptor
            .fields()
            .map(|field| {
                Ok(CodecField {
                    json_name: field.name().to_owned(),
                    enc: enc(&field)?,
                    field,
                    nullable: false,
                })
            })
            .collect::<Result<_, String>>()?,
    };
    Ok(Codec { descriptor, fields })
}

/// Protobuf as a [`WireFormat`]: proto3 files with one message `Key` / `Value` in the
/// table's package, payloads as message indexes `[0]` and the message.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtobufFormat;

/// The Protobuf [`decant_model::RecordEncoder`] (see the module documentation).
pub type ProtobufEncoder = RegisteredEncoder<ProtobufFormat>;

/// A codec's columns: JSON name, Protobuf field name, nullable.
type Columns = Vec<(String, String, bool)>;

/// One message's derivation: its `.proto` text and the codec's columns.
fn derive_message(
    package: &str,
    name: &str,
    columns: &[ShapeField<'_>],
    previous: Option<&Schema>,
) -> Result<(String, Columns), String> {
    let mut wanted = Vec::with_capacity(columns.len());
    let mut mapped = Vec::with_capacity(columns.len());
    let mut seen = std::collections::HashSet::new();
    for c in columns {
        let proto_name = avro_name(c.name);
        if !seen.insert(proto_name.clone()) {
            return Err(format!(
                "two output columns become the Protobuf field name {proto_name:?} (rename one with tables.\"…\".rename)"
            ));
        }
        wanted.push(declare(proto_name.clone(), c.ty, c.nullable));
        mapped.push((c.name.to_owned(), proto_name, c.nullable));
    }
    let previous = previous.and_then(|s| read_previous(&s.text, name));
    let message = number(wanted, previous.as_ref());
    Ok((render(package, name, &message), mapped))
}

impl WireFormat for ProtobufFormat {
    const NAME: &'static str = "protobuf";
    const READS_PREVIOUS: bool = true;
    type Codec = Codec;

    fn record_names(&self, table: &TableId) -> (String, String) {
        let package = avro_namespace(table);
        (format!("{package}.Key"), format!("{package}.Value"))
    }

    fn derive(
        &self,
        table: &TableId,
        shape: &OutputShape,
        previous: &Previous,
    ) -> Result<Derived<Codec>, SinkOrRefusal> {
        let (value_columns, key_columns) = shape_fields(shape).map_err(SinkOrRefusal::Refused)?;
        let package = avro_namespace(table);
        let one = |name: &str, columns: &[ShapeField<'_>], previous: Option<&Schema>| {
            let (text, mapped) = derive_message(&package, name, columns, previous)
                .map_err(SinkOrRefusal::Refused)?;
            // A text that does not compile is a shape Protobuf cannot take (two names with the
            // same JSON name, say): the table stops, the others go on.
            let codec = codec(&text, name, Some(&mapped)).map_err(|e| {
                SinkOrRefusal::Refused(format!(
                    "table {table}: the derived Protobuf schema of {name} does not compile: {e}"
                ))
            })?;
            Ok::<_, SinkOrRefusal>(DerivedSchema {
                schema: Schema::new(SchemaType::Protobuf, text),
                codec,
            })
        };
        Ok(Derived {
            key: one("Key", &key_columns, previous.key.as_ref())?,
            value: one("Value", &value_columns, previous.value.as_ref())?,
        })
    }

    fn registered_key(&self, subject: &str, schema: &Schema) -> Result<Codec, SinkError> {
        let file = protobuf::compile_file(&schema.text, HashMap::new()).map_err(|e| {
            SinkError::new(
                format!("the Protobuf schema registered under {subject} does not compile"),
                Disposition::Fatal,
                crate::registered::EncodeError(e),
            )
        })?;
        let name = file
            .messages()
            .next()
            .map(|m| m.name().to_owned())
            .ok_or_else(|| {
                SinkError::fatal(format!(
                    "the schema registered under {subject} has no message"
                ))
            })?;
        codec(&schema.text, &name, None)
            .map_err(|e| SinkError::fatal(format!("the schema registered under {subject}: {e}")))
    }

    fn encode_payload(
        &self,
        codec: &Codec,
        json: &str,
        null_document: &dyn Fn(&str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        // Message indexes `[0]`: the file's first (only) message, as the single byte 0.
        out.push(0);
        message_of(codec, json, null_document)?
            .encode(out)
            .map_err(|e| format!("Protobuf encoding: {e}"))
    }
}

/// The message of the JSON object `json`.
fn message_of(
    codec: &Codec,
    json: &str,
    null_document: &dyn Fn(&str) -> bool,
) -> Result<DynamicMessage, String> {
    let members = Members::parse(json)?;
    let mut next = 0;
    let mut message = DynamicMessage::new(codec.descriptor.clone());
    for f in &codec.fields {
        // A key read back from the registry knows only the Protobuf names: match them too.
        let raw = members
            .get_or_schema_name(&f.json_name, &f.json_name, &mut next)
            .map_or("null", RawValue::get);
        // A JSON `null` document is not SQL NULL: its text, `null`, is the string written.
        let sql_null = raw == "null" && !(f.enc == Enc::JsonText && null_document(&f.json_name));
        if sql_null {
            if !f.nullable {
                return Err(format!(
                    "column {}: null in a non-null (key) field",
                    f.json_name
                ));
            }
            // Absent: null for `optional` and message-typed fields.
            continue;
        }
        let value = convert(f.enc, &f.field, raw).ok_or_else(|| {
            format!(
                "column {}: {} is not a {:?} value",
                f.json_name,
                convert::excerpt(raw),
                f.enc
            )
        })?;
        message.set_field(&f.field, value);
    }
    Ok(message)
}

/// A message of `field`'s message type with `members` set.
fn sub_message(field: &FieldDescriptor, members: &[(&str, Value)]) -> Option<Value> {
    let Kind::Message(descriptor) = field.kind() else {
        return None;
    };
    let mut m = DynamicMessage::new(descriptor);
    for (name, v) in members {
        m.try_set_field_by_name(name, v.clone()).ok()?;
    }
    Some(Value::Message(m))
}

/// One non-null canonical JSON value as the Protobuf value of `enc`; `None` when it is not one.
fn convert(enc: Enc, field: &FieldDescriptor, raw: &str) -> Option<Value> {
    Some(match enc {
        Enc::Bool => Value::Bool(match raw {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        Enc::Int32 => Value::I32(raw.parse().ok()?),
        Enc::Int64 => Value::I64(raw.parse().ok()?),
        // The shortest text that round-trips an f32 parses back to the same f32.
        Enc::Float => Value::F32(match json_string(raw).as_deref() {
            Some("NaN") => f32::NAN,
            Some("Infinity") => f32::INFINITY,
            Some("-Infinity") => f32::NEG_INFINITY,
            Some(_) => return None,
            None => raw.parse().ok()?,
        }),
        Enc::Double => Value::F64(float_text(raw)?),
        Enc::Decimal(scale) => {
            // Connect writes each value's precision and scale too, and its reader takes the
            // scale from the value: without it a reader would see 1230 for 12.30.
            let (bytes, digits) = decimal_at_scale(raw, scale)?;
            sub_message(
                field,
                &[
                    ("value", Value::Bytes(bytes.into())),
                    ("precision", Value::U32(digits)),
                    ("scale", Value::I32(scale)),
                ],
            )?
        }
        Enc::Text => Value::String(json_string(raw).unwrap_or_else(|| raw.to_owned())),
        Enc::JsonText => Value::String(raw.to_owned()),
        Enc::Uuid => {
            let text = json_string(raw)?;
            convert::parse_uuid(&text)?;
            Value::String(text)
        }
        Enc::Bytes => Value::Bytes(STANDARD.decode(json_string(raw)?).ok()?.into()),
        Enc::Date => {
            let days = temporal::parse_date(&json_string(raw)?)?;
            let (year, month, day) = temporal::civil_from_days(days);
            if !(1..=9999).contains(&year) {
                return None;
            }
            sub_message(
                field,
                &[
                    ("year", Value::I32(year as i32)),
                    ("month", Value::I32(month as i32)),
                    ("day", Value::I32(day as i32)),
                ],
            )?
        }
        Enc::TimeOfDay => {
            let nanos = temporal::parse_time(&json_string(raw)?)?;
            let seconds = nanos.div_euclid(1_000_000_000);
            sub_message(
                field,
                &[
                    ("hours", Value::I32(i32::try_from(seconds / 3600).ok()?)),
                    ("minutes", Value::I32((seconds / 60 % 60) as i32)),
                    ("seconds", Value::I32((seconds % 60) as i32)),
                    ("nanos", Value::I32(nanos.rem_euclid(1_000_000_000) as i32)),
                ],
            )?
        }
        Enc::Timestamp => {
            let text = json_string(raw)?;
            let (seconds, nanos) = match text.as_str() {
                "infinity" => (MAX_SECONDS, 999_999_000),
                "-infinity" => (MIN_SECONDS, 0),
                _ => {
                    let nanos = temporal::parse_offset_datetime(&text)
                        .or_else(|| temporal::parse_local_datetime(&text))?;
                    (
                        i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?,
                        nanos.rem_euclid(1_000_000_000) as i32,
                    )
                }
            };
            sub_message(
                field,
                &[
                    ("seconds", Value::I64(seconds)),
                    ("nanos", Value::I32(nanos)),
                ],
            )?
        }
        Enc::SignedTime(per_second) => {
            Value::I64(temporal::parse_clock(&json_string(raw)?, per_second)?)
        }
    })
}

#[cfg(test)]
mod tests;
