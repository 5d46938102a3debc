//! [`RegisteredEncoder`]: what every registry-backed output format shares — derive a table's
//! key and value schemas from its output shape, register them before the first record that
//! needs them, keep them per destination until the shape changes, and frame records
//! `0x00 + schema id (big-endian u32) + payload`. A [`WireFormat`] adds only what differs: the
//! schema language and the payload (Avro binary in [`crate::avro_output`], Protobuf in
//! [`crate::protobuf_output`]). A format that numbers its fields (Protobuf) reads the subjects'
//! latest schemas before deriving a new shape's ([`WireFormat::READS_PREVIOUS`]),
//! so numbers survive restarts and evolution.
//!
//! **Subjects.** [`SubjectNameStrategy`] names them the way Confluent's serializers do:
//! `<topic>-key` / `<topic>-value` (TopicNameStrategy, the default and what Tableflow reads),
//! the record's full name (RecordNameStrategy), or `<topic>-<full name>`
//! (TopicRecordNameStrategy). A format's record names come from the table alone
//! ([`WireFormat::record_names`]), so a truncate after a restart finds its key subject before
//! this process has seen the table's shape.
//!
//! **Failures.** A registry refusal (HTTP 409 incompatible, 422 invalid) is
//! [`Encoded::Refused`]: the sink stops that table only. A registry that cannot be reached is a
//! retriable [`SinkError`] naming the dependency ([`DEPENDENCY`]): the loop waits and calls
//! again, it never skips or dead-letters. Anything else (authentication refused, a derived
//! schema that does not parse) is fatal.

use std::collections::HashMap;
use std::sync::Arc;

use decant_model::encode::{Encoded, RecordEncoder};
use decant_model::sink::{Change, OutputShape, SinkError};
use decant_model::{ColumnType, Disposition, TableId};

use crate::client::RegistryClient;
use crate::error::RegistryError;
use crate::types::{Schema, Version};

/// The dependency label of registry waits (`decant_waiting{dependency}`).
pub const DEPENDENCY: &str = "schema_registry";

/// The registry calls the encoder makes; [`RegistryClient`] in production, a fake in tests.
pub trait Registrar: Send {
    /// Registers (or finds) `schema` under `subject`: its id.
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError>;
    /// The latest schema registered under `subject` and its id.
    fn latest(&self, subject: &str) -> Result<(u32, Schema), RegistryError>;
}

impl Registrar for RegistryClient {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        RegistryClient::register(self, subject, schema)
    }

    fn latest(&self, subject: &str) -> Result<(u32, Schema), RegistryError> {
        let s = self.version(subject, Version::Latest)?;
        Ok((s.id, s.schema.clone()))
    }
}

/// How key and value subjects are named (Confluent's `key.subject.name.strategy` /
/// `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key`, `<topic>-value`.
    #[default]
    TopicName,
    /// The record's full name (`inventory.products.Value`).
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject of the key (`key`) or value record `record_name` written to `topic`.
    pub fn subject(self, topic: &str, key: bool, record_name: &str) -> String {
        match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => record_name.to_owned(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{record_name}"),
        }
    }
}

/// One derived record schema: its text and the format's codec for it. It imports only what
/// Confluent calls known types (`confluent/type/decimal.proto`, `google/protobuf/*` …), which
/// registries resolve built in, so it is registered without `references`, as Confluent's
/// serializers register theirs.
pub struct DerivedSchema<C> {
    pub schema: Schema,
    pub codec: C,
}

/// The key and value schemas of one output shape.
pub struct Derived<C> {
    pub key: DerivedSchema<C>,
    pub value: DerivedSchema<C>,
}

/// The schemas registered last under a table's key and value subjects (`None`: the subject
/// has none), for formats whose derivation continues them ([`WireFormat::READS_PREVIOUS`]).
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub key: Option<Schema>,
    pub value: Option<Schema>,
}

/// What one output format adds to [`RegisteredEncoder`].
pub trait WireFormat: Send {
    /// The format's name (`avro`), for logs and [`RecordEncoder::format`].
    const NAME: &'static str;
    /// Whether [`WireFormat::derive`] needs the subjects' latest schemas: Protobuf keeps each
    /// field's number from them, so a new shape costs two registry reads before it registers.
    /// Formats that name fields (Avro) derive from the shape alone.
    const READS_PREVIOUS: bool = false;
    /// How to fill one registered schema from a change's canonical JSON object.
    type Codec: Send + Sync;

    /// The full names of the table's key and value records (for the subject strategies).
    fn record_names(&self, table: &TableId) -> (String, String);

    /// The key and value schemas of `shape`, continuing `previous` (empty unless
    /// [`WireFormat::READS_PREVIOUS`]); `Err` says why the table cannot be written in this
    /// format (for example two columns that become the same field name), which stops it.
    fn derive(
        &self,
        table: &TableId,
        shape: &OutputShape,
        previous: &Previous,
    ) -> Result<Derived<Self::Codec>, SinkOrRefusal>;

    /// A codec for the key schema found under `subject`, for a truncate's keys when this
    /// process has not seen the table's shape.
    fn registered_key(&self, subject: &str, schema: &Schema) -> Result<Self::Codec, SinkError>;

    /// The payload of the canonical JSON object `json` (after the 5-byte frame) into `out`;
    /// `Err` says which column is not what the schema says. `null_document` tells which
    /// columns showing `null` hold a JSON `null` document ([`Change::is_null_document`]): a
    /// document field writes the text `null` for those.
    fn encode_payload(
        &self,
        codec: &Self::Codec,
        json: &str,
        null_document: &dyn Fn(&str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), String>;
}

/// One record field of an output shape: its column name, type, and whether it may be null.
#[derive(Debug, Clone, Copy)]
pub struct ShapeField<'a> {
    pub name: &'a str,
    pub ty: &'a ColumnType,
    pub nullable: bool,
}

/// The value record's fields of `shape` (key columns non-null; every other column nullable,
/// since the shape does not carry the database's nullability and a TOAST value left out under
/// `emit_without_column` is null) and the key record's (all non-null), in column order; `Err`
/// when the shape's key columns and key types disagree.
pub fn shape_fields(
    shape: &OutputShape,
) -> Result<(Vec<ShapeField<'_>>, Vec<ShapeField<'_>>), String> {
    if shape.key_types.len() != shape.key.len() {
        return Err(format!(
            "{} key columns but {} key types",
            shape.key.len(),
            shape.key_types.len()
        ));
    }
    let value = shape
        .columns
        .iter()
        .map(|(name, ty)| ShapeField {
            name,
            ty,
            nullable: !shape.key.contains(name),
        })
        .collect();
    let key = shape
        .key
        .iter()
        .zip(&shape.key_types)
        .map(|(name, ty)| ShapeField {
            name,
            ty,
            nullable: false,
        })
        .collect();
    Ok((value, key))
}

/// Why [`WireFormat::derive`] failed: the table cannot take the shape (it stops), or a fault
/// of decant's own (fatal).
#[derive(Debug)]
pub enum SinkOrRefusal {
    Refused(String),
    Sink(SinkError),
}

/// A registered schema and the format's codec for it.
struct Registered<C> {
    id: u32,
    codec: C,
}

/// A registered schema, or why the registry refused it (the table stops), or a sink error.
type Registration<C> = Result<Result<Arc<Registered<C>>, String>, SinkError>;

/// One destination's schemas, for the shape they were derived from.
struct Dest<C> {
    shape: Arc<OutputShape>,
    key: Arc<Registered<C>>,
    value: Arc<Registered<C>>,
}

/// A registry-backed [`RecordEncoder`] of one [`WireFormat`] (see the module documentation).
pub struct RegisteredEncoder<F: WireFormat> {
    format: F,
    registry: Box<dyn Registrar>,
    subjects: SubjectNameStrategy,
    /// By source table label: the last shape and its registered schemas.
    dests: HashMap<String, Dest<F::Codec>>,
    /// Registered schemas by (subject, schema text): a shape seen again registers nothing.
    registered: HashMap<(String, String), Arc<Registered<F::Codec>>>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl<F: WireFormat + Default> RegisteredEncoder<F> {
    /// The encoder, subjects named by TopicNameStrategy.
    pub fn new(registry: Box<dyn Registrar>) -> Self {
        Self::with_format(F::default(), registry)
    }
}

impl<F: WireFormat> RegisteredEncoder<F> {
    pub fn with_format(format: F, registry: Box<dyn Registrar>) -> Self {
        RegisteredEncoder {
            format,
            registry,
            subjects: SubjectNameStrategy::default(),
            dests: HashMap::new(),
            registered: HashMap::new(),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Names subjects by `strategy` instead of TopicNameStrategy.
    pub fn with_subjects(mut self, strategy: SubjectNameStrategy) -> Self {
        self.subjects = strategy;
        self
    }

    fn subject(&self, change: &Change<'_>, key: bool) -> String {
        let (key_name, value_name) = self.format.record_names(change.dest.table);
        let name = if key { key_name } else { value_name };
        self.subjects.subject(change.dest.topic, key, &name)
    }

    /// Registers `derived` under `subject` (once per process).
    fn register(
        &mut self,
        subject: &str,
        derived: DerivedSchema<F::Codec>,
    ) -> Registration<F::Codec> {
        let cache_key = (subject.to_owned(), derived.schema.text.clone());
        if let Some(c) = self.registered.get(&cache_key) {
            return Ok(Ok(c.clone()));
        }
        let schema = derived.schema;
        let id = match self.registry.register(subject, &schema) {
            Ok(id) => id,
            Err(e) => return refusal(subject, e).map(Err),
        };
        tracing::info!(subject, id, format = F::NAME, "registered the schema");
        let registered = Arc::new(Registered {
            id,
            codec: derived.codec,
        });
        self.registered.insert(cache_key, registered.clone());
        Ok(Ok(registered))
    }

    /// The destination's schemas for its change's shape, registering new ones first.
    fn prepare(&mut self, change: &Change<'_>) -> Result<Result<(), String>, SinkError> {
        let label = change.dest.label;
        if let Some(d) = self.dests.get(label)
            && (Arc::ptr_eq(&d.shape, change.shape) || *d.shape == **change.shape)
        {
            return Ok(Ok(()));
        }
        let previous = if F::READS_PREVIOUS {
            Previous {
                key: self.latest_if_any(&self.subject(change, true))?,
                value: self.latest_if_any(&self.subject(change, false))?,
            }
        } else {
            Previous::default()
        };
        let derived = match self
            .format
            .derive(change.dest.table, change.shape, &previous)
        {
            Ok(d) => d,
            Err(SinkOrRefusal::Refused(why)) => return Ok(Err(why)),
            Err(SinkOrRefusal::Sink(e)) => return Err(e),
        };
        let key = match self.register(&self.subject(change, true), derived.key)? {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let value = match self.register(&self.subject(change, false), derived.value)? {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        self.dests.insert(
            label.to_owned(),
            Dest {
                shape: change.shape.clone(),
                key,
                value,
            },
        );
        Ok(Ok(()))
    }

    /// The latest schema registered under `subject`; `None` when the subject has none yet.
    fn latest_if_any(&self, subject: &str) -> Result<Option<Schema>, SinkError> {
        match self.registry.latest(subject) {
            Ok((_, schema)) => Ok(Some(schema)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(sink_error(subject, e)),
        }
    }

    /// The key schema of a destination whose shape this process has not seen (a truncate
    /// after a restart): the latest one registered under its key subject.
    fn registered_key(
        &mut self,
        change: &Change<'_>,
    ) -> Result<Arc<Registered<F::Codec>>, SinkError> {
        let subject = self.subject(change, true);
        let (id, schema) = self
            .registry
            .latest(&subject)
            .map_err(|e| sink_error(&subject, e))?;
        let codec = self.format.registered_key(&subject, &schema)?;
        Ok(Arc::new(Registered { id, codec }))
    }
}

/// A registry error while registering: a refusal (409 incompatible, 422 invalid) stops the
/// table (`Ok(why)`); everything else is a [`SinkError`].
fn refusal(subject: &str, e: RegistryError) -> Result<String, SinkError> {
    match e.status() {
        Some(409) => Ok(format!(
            "the schema registry refused the new schema of {subject} as incompatible with the registered versions ({e}); fix the subject's schema or compatibility level, then restart"
        )),
        Some(422) => Ok(format!(
            "the schema registry refused the schema of {subject} as invalid ({e})"
        )),
        _ => Err(sink_error(subject, e)),
    }
}

fn sink_error(subject: &str, e: RegistryError) -> SinkError {
    let what = format!("registering the schema of {subject}");
    if e.is_retriable() {
        SinkError::waiting_on(DEPENDENCY, what, e)
    } else {
        SinkError::new(what, Disposition::Fatal, e)
    }
}

/// `0x00 + id + payload` into `out`.
fn frame<F: WireFormat>(
    format: &F,
    registered: &Registered<F::Codec>,
    json: &str,
    null_document: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    out.push(0);
    out.extend_from_slice(&registered.id.to_be_bytes());
    format.encode_payload(&registered.codec, json, null_document, out)
}

impl<F: WireFormat> RecordEncoder for RegisteredEncoder<F> {
    fn format(&self) -> &'static str {
        F::NAME
    }

    fn encode<'a>(&'a mut self, change: &Change<'a>) -> Result<Encoded<'a>, SinkError> {
        let (key, value) = if change.shape.columns.is_empty() {
            // A truncate's delete carries no shape: the table's last one, else the registry's.
            match self.dests.get(change.dest.label) {
                Some(d) => (d.key.clone(), None),
                None => (self.registered_key(change)?, None),
            }
        } else {
            if let Err(why) = self.prepare(change)? {
                return Ok(Encoded::Refused(why));
            }
            let Some(d) = self.dests.get(change.dest.label) else {
                return Err(SinkError::fatal("schemas missing after registration"));
            };
            (d.key.clone(), Some(d.value.clone()))
        };
        let failed = |what: &str, why: String| {
            SinkError::new(
                format!("table {}: {} {what}", change.dest.label, F::NAME),
                Disposition::Fatal,
                EncodeError(why),
            )
        };
        frame(
            &self.format,
            &key,
            change.key,
            &|_| false,
            &mut self.key_buf,
        )
        .map_err(|why| failed("key", why))?;
        let value = match (change.value, value) {
            (Some(json), Some(registered)) => {
                let null_document = |name: &str| change.is_null_document(name);
                frame(
                    &self.format,
                    &registered,
                    json,
                    &null_document,
                    &mut self.value_buf,
                )
                .map_err(|why| failed("value", why))?;
                Some(self.value_buf.as_slice())
            }
            _ => None,
        };
        Ok(Encoded::Record {
            key: &self.key_buf,
            value,
        })
    }
}

/// Why a record could not be encoded, beyond what the registry says.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro_output::AvroEncoder;
    use decant_model::ColumnType;
    use decant_model::sink::ChangeOp;
    use fixtures::{FakeRegistry, Fixture, shape};

    /// A format's encoder on a (fake) registry.
    type MakeEncoder = fn(FakeRegistry) -> Box<dyn RecordEncoder>;

    /// Every format: a registry that cannot be reached is a wait naming the dependency (for
    /// Protobuf already while reading the subject's latest schema); 409 and 422 refuse the
    /// table with the subject and the reason; other refusals (authentication …) are fatal.
    #[test]
    fn refusals_stop_the_table_and_outages_wait_in_every_format() {
        let encoders: [(&str, MakeEncoder); 3] = [
            ("avro", |r| Box::new(AvroEncoder::new(Box::new(r)))),
            ("json_sr", |r| {
                Box::new(crate::JsonSrEncoder::new(Box::new(r)))
            }),
            ("protobuf", |r| {
                Box::new(crate::ProtobufEncoder::new(Box::new(r)))
            }),
        ];
        let fx = Fixture::new();
        let s = shape(vec![("id".into(), ColumnType::Int32)], &["id"]);
        let c = fx.change(&s, ChangeOp::Upsert, "{\"id\":1}", Some("{\"id\":1}"));
        for (format, make) in encoders {
            let reg = FakeRegistry::default();
            let mut enc = make(reg.clone());
            assert_eq!(enc.format(), format);
            reg.book().down = true;
            let e = enc.encode(&c).expect_err("registry down");
            assert_eq!(e.disposition, Disposition::Retriable, "{format}");
            assert_eq!(e.dependency, Some(DEPENDENCY), "{format}");
            reg.book().down = false;
            reg.book().refuse_next = Some(409);
            match enc.encode(&c).expect("answers") {
                Encoded::Refused(why) => {
                    assert!(why.contains("decant.bed.type-zoo-key"), "{format}: {why}");
                    assert!(why.contains("incompatible"), "{format}: {why}");
                }
                other => panic!("{format}: expected a refusal, got {other:?}"),
            }
            reg.book().refuse_next = Some(422);
            match enc.encode(&c).expect("answers") {
                Encoded::Refused(why) => assert!(why.contains("invalid"), "{format}: {why}"),
                other => panic!("{format}: expected a refusal, got {other:?}"),
            }
            reg.book().refuse_next = Some(401);
            assert_eq!(
                enc.encode(&c).expect_err("unauthorised").disposition,
                Disposition::Fatal,
                "{format}"
            );
            assert!(
                matches!(enc.encode(&c).expect("registers"), Encoded::Record { .. }),
                "{format}"
            );
        }
    }

    /// The encoder registers under the strategy's subjects, and a truncate after a restart
    /// finds its key schema under the same subject.
    #[test]
    fn the_encoder_registers_under_the_configured_subjects() {
        let fx = Fixture::new();
        let s = shape(vec![("id".into(), ColumnType::Int32)], &["id"]);
        for (strategy, key_subject, value_subject) in [
            (
                SubjectNameStrategy::RecordName,
                "bed.type_zoo.Key",
                "bed.type_zoo.Value",
            ),
            (
                SubjectNameStrategy::TopicRecordName,
                "decant.bed.type-zoo-bed.type_zoo.Key",
                "decant.bed.type-zoo-bed.type_zoo.Value",
            ),
        ] {
            let reg = FakeRegistry::default();
            let mut enc = AvroEncoder::new(Box::new(reg.clone())).with_subjects(strategy);
            let c = fx.change(&s, ChangeOp::Upsert, "{\"id\":1}", Some("{\"id\":1}"));
            assert!(matches!(enc.encode(&c), Ok(Encoded::Record { .. })));
            let subjects: Vec<String> = reg.book().registered.iter().map(|r| r.0.clone()).collect();
            assert_eq!(subjects, [key_subject, value_subject], "{strategy:?}");
            // A new process meets a truncate first: the key schema comes from the subject.
            let mut fresh = AvroEncoder::new(Box::new(reg.clone())).with_subjects(strategy);
            let empty = shape(Vec::new(), &[]);
            let t = fx.change(&empty, ChangeOp::Truncate, "{\"id\":1}", None);
            match fresh.encode(&t) {
                Ok(Encoded::Record { key, value: None }) => assert_eq!(key[0], 0),
                other => panic!("{strategy:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn subjects_follow_confluents_strategies() {
        let t = "decant.inventory.products";
        let name = "inventory.products.Value";
        assert_eq!(
            SubjectNameStrategy::TopicName.subject(t, true, "inventory.products.Key"),
            "decant.inventory.products-key"
        );
        assert_eq!(
            SubjectNameStrategy::TopicName.subject(t, false, name),
            "decant.inventory.products-value"
        );
        assert_eq!(
            SubjectNameStrategy::RecordName.subject(t, false, name),
            "inventory.products.Value"
        );
        assert_eq!(
            SubjectNameStrategy::TopicRecordName.subject(t, false, name),
            "decant.inventory.products-inventory.products.Value"
        );
    }
}
