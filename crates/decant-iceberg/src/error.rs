//! Errors of the Iceberg edge, each with its [`RetryClass`].

use decant_model::RetryClass;

#[derive(Debug, thiserror::Error)]
pub enum IcebergError {
    #[error("{what}")]
    Iceberg {
        what: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("catalog database: {what}")]
    Sql {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what}")]
    Arrow {
        what: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A REST catalog request failed; `status` is `None` when no response came back.
    #[error("REST catalog: {what}: {}{message}", .status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Rest {
        what: String,
        status: Option<u16>,
        message: String,
    },
    #[error("starting the Iceberg I/O runtime")]
    Runtime(#[source] std::io::Error),
    /// Another decant process claimed the table with a newer writer epoch.
    #[error(
        "table {table}: fenced: another decant process of pipeline {pipeline} took over (its writer epoch {theirs} is newer than ours, {ours}); this process stops without committing"
    )]
    Fenced {
        table: String,
        pipeline: String,
        ours: i64,
        theirs: i64,
    },
    /// The decoded schema changed in a way an Iceberg table cannot follow.
    #[error("table {table}: incompatible schema change: {why}")]
    IncompatibleSchema { table: String, why: String },
    /// The table's committed state contradicts this writer (offsets moved backwards, a foreign
    /// writer of the same pipeline): committing could lose or duplicate changes.
    #[error("table {table}: {why}")]
    Inconsistent { table: String, why: String },
    #[error("table {table}: commit still conflicting after {attempts} attempts")]
    Conflict { table: String, attempts: u32 },
}

impl IcebergError {
    pub(crate) fn iceberg(what: impl Into<String>) -> impl FnOnce(iceberg::Error) -> Self {
        let what = what.into();
        move |source| IcebergError::Iceberg {
            what,
            source: Box::new(source),
        }
    }

    pub(crate) fn rest(what: &str, status: Option<u16>, message: String) -> Self {
        IcebergError::Rest {
            what: what.to_owned(),
            status,
            message,
        }
    }

    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let what = what.into();
        move |source| IcebergError::Sql { what, source }
    }

    pub fn retry_class(&self) -> RetryClass {
        match self {
            IcebergError::Iceberg { source, .. } => {
                if source.retryable()
                    || matches!(
                        source.kind(),
                        iceberg::ErrorKind::Unexpected | iceberg::ErrorKind::CatalogCommitConflicts
                    )
                {
                    RetryClass::Retriable
                } else {
                    RetryClass::Fatal
                }
            }
            IcebergError::Sql { .. } | IcebergError::Conflict { .. } => RetryClass::Retriable,
            // No answer, an unreadable answer, throttling or a server-side failure: the commit
            // state is unknown and the next attempt looks for it; other statuses are refusals.
            IcebergError::Rest { status, .. } => match status {
                None | Some(200..=299 | 408 | 429 | 500..) => RetryClass::Retriable,
                Some(_) => RetryClass::Fatal,
            },
            IcebergError::IncompatibleSchema { .. } => RetryClass::BadRecord,
            IcebergError::Arrow { .. }
            | IcebergError::Runtime(_)
            | IcebergError::Fenced { .. }
            | IcebergError::Inconsistent { .. } => RetryClass::Fatal,
        }
    }

    /// Stops only the table it names (the rest of the pipeline keeps flowing).
    pub fn is_table_scoped(&self) -> bool {
        matches!(self, IcebergError::IncompatibleSchema { .. })
    }
}
