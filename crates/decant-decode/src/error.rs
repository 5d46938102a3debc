//! Per-record decode errors: where (topic/partition/offset, field path), what was expected, what
//! was found. Small, no backtraces; the bad-record policy decides what happens next.

use decant_model::{RecordCoordinates, RetryClass};

#[derive(Debug, thiserror::Error)]
#[error("{coords}: {kind}")]
pub struct DecodeError {
    pub coords: RecordCoordinates,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub fn retry_class(&self) -> RetryClass {
        match &self.kind {
            DecodeErrorKind::Registry {
                retriable: true, ..
            } => RetryClass::Retriable,
            DecodeErrorKind::Internal(_) => RetryClass::Fatal,
            _ => RetryClass::BadRecord,
        }
    }

    /// A short stable label for metrics and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match &self.kind {
            DecodeErrorKind::Syntax { .. } => "syntax",
            DecodeErrorKind::Field { .. } => "field",
            DecodeErrorKind::Envelope(_) => "envelope",
            DecodeErrorKind::Schema(_) => "schema",
            DecodeErrorKind::NoSchema { .. } => "no_schema",
            DecodeErrorKind::Registry { .. } => "registry",
            DecodeErrorKind::Avro(_) => "avro",
            DecodeErrorKind::Protobuf(_) => "protobuf",
            DecodeErrorKind::Internal(_) => "internal",
        }
    }

    /// The field path, when the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match &self.kind {
            DecodeErrorKind::Field { path, .. } => Some(path),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("malformed {part}: {message}")]
    Syntax { part: &'static str, message: String },
    #[error("field {path}: expected {expected}, found {found}")]
    Field {
        path: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Envelope(String),
    #[error("schema: {0}")]
    Schema(String),
    #[error(
        "no schema for table {table}: the message has no embedded schema, none was learned or declared, and inference is off (declare the table or enable schemaless inference)"
    )]
    NoSchema { table: String },
    #[error("schema id {id}: {message}")]
    Registry {
        id: u32,
        message: String,
        retriable: bool,
    },
    #[error("Avro: {0}")]
    Avro(String),
    /// A Protobuf-framed record that does not decode: malformed message indexes, indexes naming
    /// no message, or bytes that are not the named message.
    #[error("Protobuf: {0}")]
    Protobuf(String),
    #[error("internal: {0}")]
    Internal(String),
}
