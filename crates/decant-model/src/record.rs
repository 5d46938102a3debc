//! The input unit: one Kafka record, borrowed, as any consumer (rdkafka, a file, a test) hands it over.

use std::fmt;

/// One Kafka header. Values may be null in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
}

/// A Kafka record as the decoder sees it. `value: None` is a tombstone.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Record timestamp in ms since the epoch, when the broker gave one.
    pub timestamp_ms: Option<i64>,
    pub headers: &'a [Header<'a>],
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl<'a> KafkaRecord<'a> {
    /// A record with only a value, as in tests and `decant decode --raw`.
    pub fn value_only(topic: &'a str, partition: i32, offset: i64, value: &'a [u8]) -> Self {
        KafkaRecord {
            topic,
            partition,
            offset,
            timestamp_ms: None,
            headers: &[],
            key: None,
            value: Some(value),
        }
    }

    pub fn coordinates(&self) -> RecordCoordinates {
        RecordCoordinates {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    pub fn header(&self, key: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
    }
}

/// Where a record sits in Kafka; carried by every per-record error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordCoordinates {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for RecordCoordinates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}
