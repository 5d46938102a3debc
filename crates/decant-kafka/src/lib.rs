//! decant's Kafka edge, over librdkafka (rdkafka). Nothing here decides durability: the pipeline
//! crate does; this crate only builds correctly configured clients and names what errors mean.
//!
//! - [`config`]: [`KafkaConfig`] — the `[kafka]` section (bootstrap, group, transactional id,
//!   pass-through librdkafka properties, which of them are secrets) and its offline check
//!   ([`ConfigProblem`]).
//! - [`consumer`]: [`SourceConsumer`] — a group consumer (topic list or regex) that reports
//!   rebalances and per-partition lag to a [`SourceHooks`] implementation; read_committed, no auto
//!   commit, no auto offset store.
//! - [`producer`]: [`SinkProducer`] — transactional (exactly-once) or idempotent (at-least-once)
//!   producer with Java-compatible key partitioning (`murmur2_random`).
//! - [`upsert`]: [`UpsertTopics`] — the compacted-topic upsert sink behind `decant_model::Sink`
//!   (one Kafka transaction per batch with the consumed offsets in it); record bytes come from a
//!   `decant_model::RecordEncoder` (JSON by default; `with_encoder` for Avro), and a table whose
//!   encoder refuses its schema is stopped.
//! - [`admin`]: [`Admin`] — creates missing output topics (`cleanup.policy=compact`) and refuses an
//!   existing output topic that is not compacted.
//! - [`reach`]: [`reach()`] — the start-up check that the cluster answers and accepts these
//!   credentials (a refusal is one clear [`Error::Refused`], not endless retries).
//! - [`build`]: [`BuildInfo`] — librdkafka's version and `builtin.features` (`decant version`).
//! - [`error`]: [`Error`] and [`classify`], the one function that sorts every Kafka error into
//!   [`Disposition::Retriable`], [`Disposition::AbortAndRewind`] or [`Disposition::Fatal`].

pub mod admin;
pub mod build;
pub mod config;
pub mod consumer;
pub mod error;
pub mod producer;
mod quiet;
pub mod reach;
pub mod upsert;

pub use admin::{Admin, TopicCheck, TopicSpec};
pub use build::BuildInfo;
pub use config::{ConfigProblem, KafkaConfig, is_secret_property};
pub use consumer::{PartitionLag, SourceConsumer, SourceContext, SourceHooks, Subscription};
pub use error::{Disposition, Error, classify};
pub use producer::{Delivery, SinkProducer};
pub use reach::{Reached, reach};
pub use upsert::{UpsertConfig, UpsertTopics};

/// Re-exported so the pipeline can name offsets, partition lists and messages without depending
/// on rdkafka's module layout.
pub use rdkafka;
