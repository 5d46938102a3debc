//! Test fixtures every registry format's tests share: an in-memory [`FakeRegistry`] (records
//! registrations, refuses or fails on demand), output shapes and changes of one table.

use std::sync::{Arc, Mutex};

use decant_model::sink::{Change, ChangeOp, Destination, Origin, OutputShape};
use decant_model::{ColumnType, TableId};

use crate::error::RegistryError;
use crate::registered::Registrar;
use crate::types::Schema;

/// Registrations seen, and the answer the next one gets.
#[derive(Default)]
pub(crate) struct Book {
    /// (subject, schema text, id) in order.
    pub(crate) registered: Vec<(String, String, u32)>,
    /// Each registered schema (type, text, references) by its id.
    pub(crate) schemas: std::collections::HashMap<u32, Schema>,
    /// Refuse the next registration with this HTTP status (409 incompatible …).
    pub(crate) refuse_next: Option<u16>,
    /// The registry is unreachable while set.
    pub(crate) down: bool,
}

#[derive(Clone, Default)]
pub(crate) struct FakeRegistry(Arc<Mutex<Book>>);

impl FakeRegistry {
    pub(crate) fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registrar for FakeRegistry {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let mut b = self.book();
        if b.down {
            return Err(RegistryError::Transport {
                url: "http://sr".into(),
                message: "connection refused".into(),
                retriable: true,
            });
        }
        if let Some(status) = b.refuse_next.take() {
            return Err(RegistryError::Http {
                url: "http://sr".into(),
                status,
                code: Some(i64::from(status)),
                message: "Schema being registered is incompatible with an earlier schema".into(),
            });
        }
        if let Some((_, _, id)) = b
            .registered
            .iter()
            .find(|(s, t, _)| s == subject && *t == schema.text)
        {
            return Ok(*id);
        }
        let id = 100 + b.registered.len() as u32;
        b.registered
            .push((subject.to_owned(), schema.text.clone(), id));
        b.schemas.insert(id, schema.clone());
        Ok(id)
    }

    fn latest(&self, subject: &str) -> Result<(u32, Schema), RegistryError> {
        let b = self.book();
        b.registered
            .iter()
            .rev()
            .find(|(s, _, _)| s == subject)
            .map(|(_, _, id)| (*id, b.schemas[id].clone()))
            .ok_or_else(|| RegistryError::Http {
                url: "http://sr".into(),
                status: 404,
                code: Some(40401),
                message: "Subject not found".into(),
            })
    }
}

pub(crate) fn shape(columns: Vec<(String, ColumnType)>, key: &[&str]) -> Arc<OutputShape> {
    let sources = (0..columns.len()).map(Some).collect();
    let key_types = key
        .iter()
        .map(|k| {
            columns
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.clone())
                .expect("key columns are output columns in these tests")
        })
        .collect();
    Arc::new(OutputShape {
        columns,
        key: key.iter().map(|k| (*k).to_owned()).collect(),
        key_types,
        sources,
    })
}

pub(crate) struct Fixture {
    pub(crate) table: TableId,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Fixture {
            table: TableId::new("bed", "type-zoo"),
        }
    }

    pub(crate) fn change<'a>(
        &'a self,
        shape: &'a Arc<OutputShape>,
        op: ChangeOp,
        key: &'a str,
        value: Option<&'a str>,
    ) -> Change<'a> {
        Change {
            dest: Destination {
                table: &self.table,
                label: "bed.type-zoo",
                topic: "decant.bed.type-zoo",
            },
            shape,
            op,
            key,
            value,
            typed: None,
            null_documents: &[],
            origin: Origin {
                topic: "src",
                partition: 0,
                offset: 7,
                lsn: None,
                ts_ms: None,
            },
            batch: "1-2:3",
        }
    }

    /// An upsert of `documents_shape()` whose two document columns both show `null` in the
    /// row's JSON: `doc` holds a JSON `null` document, `other` SQL NULL.
    pub(crate) fn null_document_change<'a>(&'a self, shape: &'a Arc<OutputShape>) -> Change<'a> {
        let mut c = self.change(
            shape,
            ChangeOp::Upsert,
            "{\"id\":1}",
            Some("{\"id\":1,\"doc\":null,\"other\":null}"),
        );
        c.null_documents = &[1];
        c
    }
}

/// `id` (key) and two JSON document columns, `doc` and `other`.
pub(crate) fn documents_shape() -> Arc<OutputShape> {
    shape(
        vec![
            ("id".into(), ColumnType::Int32),
            ("doc".into(), ColumnType::Json),
            ("other".into(), ColumnType::Json),
        ],
        &["id"],
    )
}
