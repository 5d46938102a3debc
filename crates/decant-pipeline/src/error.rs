//! Pipeline errors. Per-record problems never become errors here: they are policies
//! (`fail` / `skip` / `dead_letter`). What reaches [`PipelineError`] stops or rewinds the loop.

use decant_model::RetryClass;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("kafka")]
    Kafka(#[from] decant_kafka::Error),
    #[error("state store")]
    State(#[source] redb::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The decoder failed outside a record (building Arrow batches): a decoder bug.
    #[error("building decoded batches")]
    Batches(#[source] decant_decode::DecodeErrorKind),
    #[error("iceberg")]
    Iceberg(#[source] decant_iceberg::IcebergError),
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
            PipelineError::Iceberg(e) => e.retry_class(),
            _ => RetryClass::Fatal,
        }
    }

    /// What the loop does about it; only Kafka errors can be anything but fatal.
    pub fn disposition(&self) -> decant_kafka::Disposition {
        match self {
            PipelineError::Kafka(e) => e.disposition(),
            _ => decant_kafka::Disposition::Fatal,
        }
    }
}

/// `error: cause: cause …`, for logs that print the chain on purpose.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
