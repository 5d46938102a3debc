//! The seam between the loop and an output: what `decant-pipeline` asks of every sink.
//!
//! The loop owns everything that is the same for every output — consuming, decoding, routing,
//! TOAST state, filters, bad-record policies, metrics — and a [`Sink`] owns what differs: where a
//! change goes and how a batch of changes becomes durable together with the source offsets that
//! produced it. A sink never decides durability on its own: it is told when to commit and what
//! the offsets are, and it answers with what committed.
//!
//! A batch's life: [`Sink::write`] for every change (and [`Sink::dead_letter`] for bad records the
//! sink can keep in its atomic step), then [`Sink::prepare`] → the loop stages its own state →
//! [`Sink::commit`] (offsets inside the sink's atomic step) → the loop applies its state for
//! what [`Committed`] says landed. Or [`Sink::abort`], after which the loop re-reads.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;

use crate::{ColumnType, Header, TableId};

/// A source partition: topic and partition number.
pub type TopicPartition = (String, i32);

/// Next offset to read, per source partition.
pub type Offsets = BTreeMap<TopicPartition, i64>;

/// What the loop does after an error. Every crate's errors map to one (Kafka's through
/// `decant_kafka::classify`, Iceberg's through its retry class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (broker unavailable, timeout, full local queue): retry the same call.
    Retriable,
    /// The open batch cannot be completed: abort it, rewind the source to the last committed
    /// offsets, and process the records again.
    AbortAndRewind,
    /// Configuration, authorization, fencing or an invariant: stop the process.
    Fatal,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Retriable => "retriable",
            Disposition::AbortAndRewind => "abort_and_rewind",
            Disposition::Fatal => "fatal",
        }
    }
}

/// A sink's error: what went wrong (the sink crate's own error, boxed) and what it means.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SinkError {
    pub what: String,
    pub disposition: Disposition,
    /// The outside service a [`Disposition::Retriable`] error waits for (`schema_registry`):
    /// the loop then retries the same call with backoff, reporting the wait in
    /// `decant_waiting{dependency}` and `/ready`, instead of aborting the batch.
    pub dependency: Option<&'static str>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SinkError {
    pub fn new(
        what: impl Into<String>,
        disposition: Disposition,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SinkError {
            what: what.into(),
            disposition,
            dependency: None,
            source: Some(Box::new(source)),
        }
    }

    /// A retriable error because `dependency` (`schema_registry`) cannot be reached: the loop
    /// waits for it and calls again.
    pub fn waiting_on(
        dependency: &'static str,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SinkError {
            dependency: Some(dependency),
            ..SinkError::new(what, Disposition::Retriable, source)
        }
    }

    /// A fatal error without a cause (an invariant or configuration problem).
    pub fn fatal(what: impl Into<String>) -> Self {
        SinkError {
            what: what.into(),
            disposition: Disposition::Fatal,
            dependency: None,
            source: None,
        }
    }
}

/// Where the loop reads from, and where the offsets that say how far it got are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The consumer group decides the partitions and keeps the offsets; the sink commits them
    /// into the group inside its atomic step ([`Sink::offsets_in_commit`]) or the loop commits
    /// them after the sink's commit.
    Group,
    /// The sink keeps the offsets itself (an Iceberg table's snapshots): the loop assigns every
    /// partition of the source at the smallest offset any destination still needs, and skips
    /// what a destination already holds ([`Sink::holds`]).
    Own(Offsets),
}

/// What a change does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Upsert,
    Delete,
    /// A delete written because the source table was truncated.
    Truncate,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Upsert => "upsert",
            ChangeOp::Delete => "delete",
            ChangeOp::Truncate => "truncate",
        }
    }
}

/// The output shape of a source table: value columns (output names and decoded types, metadata
/// columns included) and the key columns' output names. Built once per table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputShape {
    pub columns: Vec<(String, ColumnType)>,
    pub key: Vec<String>,
    /// The key columns' decoded types, in key order (a key column may be left out of the
    /// value: `exclude`, `columns`).
    pub key_types: Vec<ColumnType>,
    /// Per output column: its column in the decoded batch ([`TypedRow::columns`]), or `None`
    /// for a metadata column (its value is in [`TypedRow::meta`]).
    pub sources: Vec<Option<usize>>,
}

impl OutputShape {
    /// The position of output column `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }
}

/// An upsert's row as decoded columns, for sinks that store typed columns
/// ([`Sink::wants_typed_rows`]): no JSON text in between.
#[derive(Debug, Clone, Copy)]
pub struct TypedRow<'a> {
    /// Identifies `columns` among the batches of one loop run (the same batch, the same id).
    pub batch_id: u64,
    /// The decoded batch (the decoder's Arrow types, see `ColumnType::arrow_type`).
    pub columns: &'a RecordBatch,
    pub row: usize,
    /// TOAST-unchanged cells filled from the state: (output column, canonical JSON text).
    pub fills: &'a [(usize, String)],
    /// TOAST-unchanged cells without a previous value (left out, as the JSON value leaves
    /// them out): output columns.
    pub missing: &'a [usize],
    /// The metadata columns' values as canonical JSON text, in output order.
    pub meta: &'a [String],
}

/// Where a change goes: its source table and the output the router chose for it.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub table: &'a TableId,
    /// `schema.table`: the label of metrics, logs and state keys.
    pub label: &'a str,
    /// The output topic the router rendered (`output.topic_template`, `tables.*.topic`); sinks
    /// that name their outputs otherwise ignore it.
    pub topic: &'a str,
}

/// Where a change came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Source database position (PostgreSQL LSN), when known.
    pub lsn: Option<i64>,
    /// When the source database made the change (ms since the epoch), when known.
    pub ts_ms: Option<i64>,
}

/// One change as the sink receives it: the key and value rendered as JSON objects by the loop
/// (projection, renames, TOAST fills and metadata columns applied).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub dest: Destination<'a>,
    pub shape: &'a Arc<OutputShape>,
    pub op: ChangeOp,
    /// The key's JSON object.
    pub key: &'a str,
    /// The row's JSON object; `None` for deletes, and for upserts to a sink that
    /// [wants typed rows](Sink::wants_typed_rows).
    pub value: Option<&'a str>,
    /// The row as decoded columns, for upserts to a sink that wants typed rows.
    pub typed: Option<TypedRow<'a>>,
    /// Output columns (indices into `shape.columns`) whose value is a JSON document that is
    /// itself JSON `null`. The row's JSON embeds documents as JSON, so it shows such a value as
    /// `null`, like SQL NULL; a format that stores documents as text writes the text `null`
    /// for these. Empty for typed rows, which carry the document's text.
    pub null_documents: &'a [usize],
    pub origin: Origin<'a>,
    /// The loop's id of the open batch (`<process>:<sequence>`), for provenance.
    pub batch: &'a str,
}

impl Change<'_> {
    /// Whether output column `name` holds a JSON `null` document (see
    /// [`Change::null_documents`]), not SQL NULL.
    pub fn is_null_document(&self, name: &str) -> bool {
        self.null_documents
            .iter()
            .any(|&i| self.shape.columns.get(i).is_some_and(|(n, _)| n == name))
    }
}

/// A source record that goes to the dead-letter topic instead of the output.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The original record's headers, then where it came from and why it is here.
    pub headers: &'a [Header<'a>],
}

/// How big the open batch is, for [`Sink::commit_due`].
#[derive(Debug, Clone, Copy)]
pub struct BatchStats {
    pub age: Duration,
    /// Source records consumed into the batch.
    pub records: u64,
}

/// The loop's view of the source consumer group, for sinks that commit group offsets.
pub trait SourceGroup {
    /// The group's committed next offsets of `partitions` (`None`: nothing committed).
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, SinkError>;
    /// The concrete consumer, for a sink of the same client library (a Kafka transaction needs
    /// the consumer's group metadata).
    fn as_any(&self) -> &dyn Any;
}

/// What the loop hands to [`Sink::prepare`] and [`Sink::commit`].
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// Unique id of this commit (stored by sinks that keep their own progress).
    pub id: &'a str,
    /// Next offsets of the partitions this batch consumed from.
    pub batch_offsets: &'a Offsets,
    /// Next offsets of every partition the loop reads (for sinks that keep their own progress).
    pub all_offsets: &'a Offsets,
}

/// What a commit made durable. Changes of a source table whose destination is stopped
/// ([`Sink::is_stopped`] after the commit) did not land: the loop discards their state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Output records that became visible, by (output label, op): counted in
    /// `decant_output_records_total`.
    pub written: BTreeMap<(String, &'static str), u64>,
}

/// An output of `decant run`. The loop is generic over it (static dispatch in the hot path).
pub trait Sink {
    /// A short name for logs and metrics (`kafka`, `iceberg`).
    fn name(&self) -> &'static str;

    /// Whether upserts come as [`TypedRow`]s (decoded Arrow columns) instead of JSON text.
    fn wants_typed_rows(&self) -> bool {
        false
    }

    /// Called once before the first record: where the loop resumes.
    fn resume(&mut self) -> Result<Resume, SinkError>;

    /// Whether the sink commits the batch's offsets into the source group inside its own atomic
    /// step (a Kafka transaction). When `false` and [`Resume::Group`], the loop commits them to
    /// the group after [`Sink::commit`] returned.
    fn offsets_in_commit(&self) -> bool;

    /// A destination is used for the first time by this process (create or check it).
    fn open_destination(&mut self, dest: Destination<'_>) -> Result<(), SinkError>;

    /// Whether the destination of `dest` already holds the source record at `offset` (a
    /// restart re-reads from the smallest offset any destination needs). Only [`Resume::Own`]
    /// sinks hold anything the loop has not committed.
    fn holds(&self, _dest: Destination<'_>, _partition: &TopicPartition, _offset: i64) -> bool {
        false
    }

    /// Whether the destination is stopped (an incompatible change): its changes are counted
    /// and skipped until a restart.
    fn is_stopped(&self, _dest: Destination<'_>) -> bool {
        false
    }

    /// The stopped destinations' labels and why each stopped (`decant_stopped_tables`,
    /// `/health`); empty in the usual case.
    fn stopped_destinations(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    /// A batch opens (the first record after a commit).
    fn begin(&mut self) -> Result<(), SinkError>;

    /// One change into the open batch.
    fn write(&mut self, change: &Change<'_>) -> Result<(), SinkError>;

    /// Writes a dead letter inside the sink's atomic step when the sink can (a Kafka
    /// transaction). `Ok(false)`: the loop writes it itself and waits for it before the commit.
    fn dead_letter(&mut self, _letter: &DeadLetter<'_>) -> Result<bool, SinkError> {
        Ok(false)
    }

    /// Whether the open batch should commit now.
    fn commit_due(&self, batch: &BatchStats) -> bool;

    /// Everything that can fail before the point of no return (tables created or evolved, data
    /// delivered); after this the loop stages its state, then calls [`Sink::commit`].
    fn prepare(&mut self, commit: &Commit<'_>) -> Result<(), SinkError>;

    /// Makes the batch durable together with the offsets.
    fn commit(
        &mut self,
        commit: &Commit<'_>,
        group: &dyn SourceGroup,
    ) -> Result<Committed, SinkError>;

    /// Drops the open batch (nothing of it may become visible).
    fn abort(&mut self);

    /// A handle that aborts the open batch from inside a rebalance callback (partitions are
    /// being revoked while the loop is inside `poll`); it answers whether anything was open.
    /// `None`: nothing to do there.
    fn revocation_handle(&self) -> Option<Arc<dyn Fn() -> bool + Send + Sync>> {
        None
    }

    /// The loop has nothing open: a chance to record progress for destinations without changes
    /// (`offsets`: every partition's next offset, all committed).
    fn idle(&mut self, _offsets: &Offsets) -> Result<(), SinkError> {
        Ok(())
    }

    /// A commit staged before a crash or a lost answer, for [`Resume::Own`] sinks: which of the
    /// source tables `staged` landed with commit `id`.
    fn landed(
        &mut self,
        _id: &str,
        staged: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, SinkError> {
        Ok(staged.clone())
    }
}
