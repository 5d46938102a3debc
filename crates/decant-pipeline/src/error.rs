//! Pipeline errors. Per-record problems never become errors here: they are policies
//! (`fail` / `skip` / `dead_letter`). What reaches [`PipelineError`] stops or rewinds the loop.

use decant_model::{Disposition, RetryClass};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("kafka")]
    Kafka(#[from] decant_kafka::Error),
    #[error("state store")]
    State(#[source] redb::Error),
    /// The state store holds bytes this binary cannot read back (a damaged file).
    #[error("state store damaged: {0}")]
    StateDamaged(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The decoder failed outside a record (building Arrow batches): a decoder bug.
    #[error("building decoded batches")]
    Batches(#[source] decant_decode::DecodeErrorKind),
    /// The sink failed; its disposition says whether to retry, rewind or stop.
    #[error("sink")]
    Sink(#[from] decant_model::SinkError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("gave up after {count} abort-and-rewind cycles without a successful commit")]
    TooManyRewinds {
        count: u32,
        #[source]
        last: Box<PipelineError>,
    },
}

impl PipelineError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            PipelineError::Kafka(e) => e.retry_class(),
            PipelineError::Sink(e) => match e.disposition {
                Disposition::Fatal => RetryClass::Fatal,
                _ => RetryClass::Retriable,
            },
            _ => RetryClass::Fatal,
        }
    }

    /// What the loop does about it; only Kafka and sink errors can be anything but fatal.
    pub fn disposition(&self) -> Disposition {
        match self {
            PipelineError::Kafka(e) => e.disposition(),
            PipelineError::Sink(e) => e.disposition,
            _ => Disposition::Fatal,
        }
    }
}

pub use decant_model::error_chain as chain;
