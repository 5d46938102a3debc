//! decant's pipeline: Debezium topics in, compacted upsert topics out, exactly once.
//!
//! - [`lake`]: the Iceberg sink's loop ([`lake::run`]): rows reduced per key per batch, one
//!   snapshot per table per batch with the offsets in it, progress read back from the tables.
//! - `arrow_rows`: rendered rows → Arrow batches of a destination table's schema.
//! - [`run`]: the consume → decode → render → produce → commit loop ([`run::run`]); the only
//!   place that decides durability (transaction cadence, abort-and-rewind, revocation,
//!   quarantine of partitions under a `fail` policy, shutdown).
//! - [`config`]: the typed configuration sections ([`PipelineConfig`]) and the semantic checks
//!   `decant validate` reports all at once.
//! - [`route`]: source table → output topic, projection/rename/op filter, policies
//!   ([`route::Router`], [`route::Plan`]).
//! - [`render`]: key and value JSON of one decoded row, TOAST fill, metadata columns.
//! - [`state`]: the redb state store (last TOAST-able values per key, key index) and its
//!   stage → commit → apply protocol that keeps it consistent with Kafka.
//! - [`metrics`]: every exported metric, declared in one place ([`Metrics`]).
//! - [`observe`]: `/metrics`, `/health`, `/ready` and the [`Health`] flags behind them.
//! - [`error`]: [`PipelineError`] and its retry class.

pub(crate) mod arrow_rows;
pub mod config;
pub mod error;
pub mod lake;
pub mod metrics;
pub mod observe;
pub mod render;
pub mod route;
pub mod run;
pub mod state;

pub use config::PipelineConfig;
pub use error::PipelineError;
pub use metrics::Metrics;
pub use observe::Health;
pub use run::{Runtime, Summary, run};
