//! Sans-I/O Debezium decoding: Kafka record bytes in, Arrow-columnar changes out. No tokio, no
//! rdkafka, no iceberg: this crate is pure computation, fuzzed and benchmarked on captured bytes.
//!
//! - [`decoder`]: [`Decoder`] — envelope recognition (JSON with/without embedded schema,
//!   registry-framed Avro / Protobuf / JSON_SR typed by its registered schema), op dispatch,
//!   keys, control records, schema versions.
//! - [`wire`]: [`Wire`] — how a column is encoded (Connect type + Debezium semantic name), parsed
//!   from Connect JSON schemas, Avro writer schemas and declared types; maps to `ColumnType`.
//!   [`wire::SourceKind`] (told by the envelope's `source` schema name) reads MySQL / MariaDB
//!   `TIME` as the signed span it is.
//! - [`convert`]: one JSON value → one column builder, per wire type; TOAST placeholder detection.
//! - [`avro`]: the same for Avro datums, plus Avro envelope and `source` handling.
//! - [`protobuf`]: Confluent-framed Protobuf (Kafka Connect's `ProtobufConverter`): message
//!   indexes, `.proto` schemas compiled with their well-known imports bundled, descriptors →
//!   wire types, message values → column builders. Avro and Protobuf events share one op logic
//!   in `decoder`.
//! - [`dynamodb`]: DynamoDB typed documents (Confluent CDC envelope and DynamoDB Streams records).
//! - [`json_schema`]: Confluent JSON_SR schemas → the Connect schema they stand for (Kafka
//!   Connect's JSON Schema conventions), so JSON_SR documents decode like JSON-with-schema ones.
//! - [`mongo`]: MongoDB connector events (Extended-JSON document strings).
//! - [`json`]: the validating, allocation-free JSON scanner the hot loop runs on.
//! - `plan`: row plans — a table's JSON row image decoded in one pass when its members come in
//!   the order last seen (the general path in `decoder` learns them and takes over otherwise).
//! - `source`: the `source` block — position and table name, read the general way or by a plan
//!   learned from the blocks before (only the changing numbers are parsed).
//! - [`batch`]: column builders with row rollback, and [`ChangeBatch`] (RecordBatch + op + position).
//! - [`render`]: the canonical JSON rendering of decoded rows used by `decant decode` and tests.
//! - [`registry`]: the [`SchemaResolver`] seam for schema ids.
//! - [`decimal`], [`temporal`]: exact decimal and calendar arithmetic.

pub mod avro;
pub mod batch;
pub mod convert;
pub mod decimal;
pub mod decoder;
pub mod dynamodb;
pub mod error;
pub mod json;
pub mod json_schema;
pub mod mongo;
mod plan;
pub mod protobuf;
pub mod registry;
pub mod render;
mod source;
pub mod temporal;
pub mod wire;

pub use batch::{ChangeBatch, RowMeta};
pub use decoder::{ControlRecord, DeclaredTable, Decoder, DecoderConfig, Outcome, TombstonePolicy};
pub use error::{DecodeError, DecodeErrorKind};
pub use registry::{RegisteredSchema, ResolveError, SchemaFormat, SchemaResolver, StaticResolver};
pub use wire::{BinaryText, Wire, WireField};
