//! What a decoded record means, independent of the encoding it arrived in.

use std::sync::Arc;

/// The operation a decoded row carries. Debezium `c`, `r` and `u` are all upserts of the after
/// image; the difference survives in [`SourcePosition::snapshot`] and the metadata, not in the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Upsert,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Upsert => "upsert",
            ChangeKind::Delete => "delete",
        }
    }
}

/// The operation as the source connector named it, kept for metadata (decant's own
/// [`ChangeKind`] folds create, read and update into upserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceOp {
    Create,
    /// A snapshot read.
    Read,
    Update,
    Delete,
    /// A delete made from a null-value record under the `delete` tombstone policy.
    Tombstone,
}

impl SourceOp {
    /// Debezium's op code (`c`, `r`, `u`, `d`), or `tombstone`.
    pub fn code(self) -> &'static str {
        match self {
            SourceOp::Create => "c",
            SourceOp::Read => "r",
            SourceOp::Update => "u",
            SourceOp::Delete => "d",
            SourceOp::Tombstone => "tombstone",
        }
    }

    /// From Debezium's op code, in either case.
    pub fn from_code(code: &str) -> Option<SourceOp> {
        Some(match code {
            "c" | "C" => SourceOp::Create,
            "r" | "R" => SourceOp::Read,
            "u" | "U" => SourceOp::Update,
            "d" | "D" => SourceOp::Delete,
            _ => return None,
        })
    }
}

/// Where a change came from in the source database. Only what a sink needs to order, resume or
/// report is kept; the rest of Debezium's `source` block is skipped unparsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePosition {
    /// `source.ts_ms`: when the change happened in the database (snapshot: when it was read).
    pub ts_ms: Option<i64>,
    /// `source.snapshot` is anything but `false`.
    pub snapshot: bool,
    /// `source.db` (shared: it repeats for every row).
    pub db: Option<Arc<str>>,
    /// PostgreSQL `source.lsn`.
    pub lsn: Option<i64>,
    /// PostgreSQL `txId`.
    pub tx_id: Option<i64>,
    /// MySQL / MariaDB binlog file name (shared: it repeats for millions of rows).
    pub file: Option<Arc<str>>,
    /// MySQL / MariaDB binlog position.
    pub pos: Option<i64>,
    /// MySQL / MariaDB row index within the binlog event.
    pub row: Option<i64>,
    /// Oracle SCN, SQL Server change LSN: textual positions that can exceed 64 bits.
    pub scn: Option<Arc<str>>,
}

/// Records that are not rows of a table. They are reported, never turned into rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Debezium `op: t`: every row of the table is gone.
    Truncate,
    /// Debezium `op: m`: a logical decoding message (PostgreSQL `pg_logical_emit_message`).
    Message {
        prefix: String,
        /// Message content, base64 of the bytes.
        content_b64: Option<String>,
    },
    /// A `__debezium-heartbeat.*` record.
    Heartbeat,
    /// Transaction metadata BEGIN.
    TransactionBegin { id: String },
    /// Transaction metadata END with the event count.
    TransactionEnd {
        id: String,
        event_count: Option<i64>,
    },
    /// A schema-change (DDL) record.
    SchemaChange { ddl: Option<String> },
    /// A Kafka record with a null value, under the `skip` tombstone policy.
    Tombstone,
}

impl ControlEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            ControlEvent::Truncate => "truncate",
            ControlEvent::Message { .. } => "message",
            ControlEvent::Heartbeat => "heartbeat",
            ControlEvent::TransactionBegin { .. } => "transaction_begin",
            ControlEvent::TransactionEnd { .. } => "transaction_end",
            ControlEvent::SchemaChange { .. } => "schema_change",
            ControlEvent::Tombstone => "tombstone",
        }
    }
}
