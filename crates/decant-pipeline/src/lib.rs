//! decant's pipeline: Debezium topics in, decoded changes out through a [`Sink`], exactly once.
//!
//! - [`flow`]: the one loop ([`run`]): consume → decode → route and render → sink → commit →
//!   apply staged state, generic over the sink (`decant_model::Sink`) and the source.
//! - `rows`: one decoded row → one change (key, TOAST state, `where` and op filters, value with
//!   TOAST fills and metadata columns); truncates; a sink write waiting on a dependency (the
//!   registry an encoder registers with) is retried, and a stopped destination's source
//!   partition is quarantined when the group keeps the offsets.
//! - `triage`: bad records — the `skip` / `dead_letter` / `fail` policies, quarantine of a
//!   source partition, dead letters.
//! - `durable`: the durability protocol — commit (stage state → sink commit with the offsets →
//!   apply), abort, rewind, revocation, and settling a commit whose outcome is unknown. The only
//!   place that decides durability.
//! - [`source`]: the input — a Kafka consumer group, or partitions the loop assigns itself at
//!   offsets the sink keeps.
//! - [`config`]: the typed configuration sections ([`PipelineConfig`]) and the semantic checks
//!   `decant validate` reports all at once.
//! - [`route`]: source table → output, projection/rename/op filter, policies
//!   ([`route::Router`], [`route::Plan`]).
//! - [`render`]: key and value JSON of one decoded row, TOAST fill, metadata columns.
//! - [`state`]: the redb state store (last TOAST-able values per key, key index) and its
//!   stage → commit → apply protocol that keeps it consistent with the sink; `overlay`: the
//!   open batch's changes to it, keys and entries in one arena.
//! - [`metrics`]: every exported metric, declared in one place ([`Metrics`]).
//! - [`observe`]: `/metrics`, `/health`, `/ready` and the [`Health`] flags behind them.
//! - [`error`]: [`PipelineError`] and its disposition.
//!
//! [`Sink`]: decant_model::Sink

pub mod config;
mod durable;
pub mod error;
pub mod flow;
pub mod metrics;
pub mod observe;
mod overlay;
pub mod render;
pub mod route;
mod rows;
pub mod source;
pub mod state;
mod triage;

#[cfg(test)]
mod tests;

pub use config::PipelineConfig;
pub use error::PipelineError;
pub use flow::{Runtime, Summary, run};
pub use metrics::Metrics;
pub use observe::Health;
