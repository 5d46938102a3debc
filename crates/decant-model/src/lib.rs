//! decant's shared vocabulary. Every other crate depends on this one and on nothing sideways.
//!
//! - [`record`]: what arrives — a Kafka record as bytes plus its coordinates ([`KafkaRecord`]).
//! - [`schema`]: what a decoded table looks like — [`TableId`], [`ColumnType`] (decant's logical
//!   types), [`TableSchema`] and its Arrow mapping.
//! - [`change`]: what a record means — [`ChangeKind`] (upsert, delete, truncate, control kinds) and
//!   the [`SourcePosition`] it came from in the source database.
//! - [`sink`]: the [`Sink`] trait — what the one loop asks of every output (write a change,
//!   commit with the offsets, abort, resume) — and the [`Disposition`] of every error.
//! - [`encode`]: the [`RecordEncoder`] seam — how the compacted-topic sink turns a change into
//!   key and value bytes ([`JsonEncoder`]: the rendered JSON as is; Avro lives in
//!   `decant-registry`), and [`Encoded::Refused`] for a destination that must stop.
//! - [`properties`]: property maps handed on to client libraries (numbers and booleans read as
//!   text).
//! - [`template_vars`] and [`error_chain`]: small helpers every sink crate needs the same way.
//! - [`RetryClass`]: how every crate's errors tell the pipeline whether to retry, rewind or stop.

pub mod change;
pub mod encode;
pub mod properties;
pub mod record;
pub mod schema;
pub mod sink;

pub use change::{ChangeKind, ControlEvent, SourceOp, SourcePosition};
pub use encode::{Encoded, JsonEncoder, RecordEncoder};
pub use record::{Header, KafkaRecord, RecordCoordinates};
pub use schema::{Column, ColumnType, TableId, TableSchema, TimeUnit};
pub use sink::{Disposition, Sink, SinkError};

/// What the caller should do about an error. Each crate's error enum maps every variant to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The same operation may succeed if tried again (timeouts, broker unavailable).
    Retriable,
    /// The record itself is bad; retrying cannot help. The bad-record policy decides.
    BadRecord,
    /// Processing must stop: configuration or invariant violations.
    Fatal,
}

/// The `{name}` variables of an output-name template (`{schema}.{table}`), in order.
pub fn template_vars(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// `error: cause: cause …`, for logs and messages that print the whole chain on purpose.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
