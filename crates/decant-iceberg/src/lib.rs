//! decant's Iceberg edge: decoded tables become Iceberg v2 tables that are upserted with
//! equality deletes, one row-delta snapshot per batch, with the consumed Kafka offsets in the
//! same snapshot's summary.
//!
//! - [`types`]: decant's logical column types → Iceberg types and the Arrow schema the writers
//!   take ([`types::TableLayout`]).
//! - [`lake`]: the catalog connection ([`Lake`]): SQL catalog on SQLite or PostgreSQL, or a REST
//!   catalog; local or S3 storage; table creation, schema evolution (added nullable columns),
//!   writer epochs.
//! - [`catalog`]: the one catalog-specific step, publishing a change only if the table is still
//!   what it was built on ([`catalog::CatalogCommit`]: the SQL pointer swap, the REST commit
//!   endpoint with requirements).
//! - [`commit`]: Parquet data and equality-delete files, manifests, manifest list, snapshot and
//!   metadata written with iceberg's public types, then published through the catalog's
//!   conditional commit; progress (offsets, commit id, epoch) read
//!   back from the newest snapshot of the pipeline ([`commit::Progress`]).
//! - [`sink`]: [`IcebergSink`] — the sink behind `decant_model::Sink`: changes reduced per key,
//!   one snapshot per table per batch with the offsets in it, progress read back from the
//!   tables.
//! - [`config`]: [`IcebergSinkConfig`] — the `[iceberg]` section and its checks.
//! - `typed`: upserts as decoded Arrow columns → batches of a destination table's schema
//!   (gathered column by column; canonical text only where Iceberg stores text).
//! - `arrow_rows`: canonical JSON values → Arrow columns of a destination table's schema (keys,
//!   TOAST fills, metadata values and the columns stored as text).
//! - [`error`]: [`IcebergError`] and its retry class.
//!
//! The API is blocking: [`Lake`] owns a small tokio runtime, so the pipeline's loop stays
//! synchronous like its Kafka half.

mod arrow_rows;
pub mod catalog;
pub mod commit;
pub mod config;
pub mod error;
pub mod lake;
pub mod sink;
mod typed;
pub mod types;

pub use commit::{CommitOutcome, Progress, TableDelta};
pub use config::IcebergSinkConfig;
pub use error::IcebergError;
pub use lake::{Lake, LakeConfig, LakeTable};
pub use sink::IcebergSink;
pub use types::{TableLayout, iceberg_type};
