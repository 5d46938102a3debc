//! How an output record's bytes are made from a change: the seam between the compacted-topic
//! sink (which produces records) and the formats its key and value can take (JSON text, Avro
//! with Schema Registry framing, …). The sink calls one [`RecordEncoder`] per change; an encoder
//! that needs a schema per destination registers it on the first change of a new
//! [`OutputShape`](crate::sink::OutputShape), before that change's bytes exist.
//!
//! Implementations live with what they need: [`JsonEncoder`] here (the canonical JSON the loop
//! renders, unchanged), the Avro encoder in `decant-registry` (it owns the registry client).

use crate::sink::{Change, SinkError};

/// A change's record, as bytes borrowed from the change (JSON) or from the encoder's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded<'a> {
    /// The record's key, and its value (`None`: a tombstone, for deletes and truncates).
    Record {
        key: &'a [u8],
        value: Option<&'a [u8]>,
    },
    /// The destination cannot take this change's shape (a schema registry refused the new
    /// schema as incompatible): nothing was encoded, and the destination must stop until a
    /// restart. The text says why, for the operator.
    Refused(String),
}

/// Turns changes into record bytes. `Send`: the sink may move between threads with the loop.
pub trait RecordEncoder: Send {
    /// The format's name, for logs (`json`, `avro`).
    fn format(&self) -> &'static str;

    /// The key and value bytes of `change`. Errors carry their disposition: a registry that
    /// cannot be reached is [`Disposition::Retriable`](crate::Disposition::Retriable) with a
    /// [`SinkError::dependency`] (the loop waits and calls again; nothing is skipped), an
    /// invariant or configuration problem is fatal.
    fn encode<'a>(&'a mut self, change: &Change<'a>) -> Result<Encoded<'a>, SinkError>;
}

/// Today's output: the key and value exactly as the loop rendered them (canonical JSON text).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEncoder;

impl RecordEncoder for JsonEncoder {
    fn format(&self) -> &'static str {
        "json"
    }

    fn encode<'a>(&'a mut self, change: &Change<'a>) -> Result<Encoded<'a>, SinkError> {
        Ok(Encoded::Record {
            key: change.key.as_bytes(),
            value: change.value.map(str::as_bytes),
        })
    }
}
