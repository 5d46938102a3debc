//! The compacted-topic upsert sink: every change is one record keyed by the primary key (a
//! tombstone on delete) in the table's output topic, its bytes made by the configured
//! [`RecordEncoder`] (JSON text by default; Avro with registered schemas). A destination whose
//! encoder refuses a change (a schema the registry rejects as incompatible) is stopped: the open
//! batch is aborted and re-read, and the loop holds that table's records back until a restart. Exactly once, a batch is a Kafka
//! transaction that also carries the consumed offsets (`send_offsets_to_transaction`) and the
//! batch's dead letters; at least once, a batch ends with a producer flush and the loop commits
//! the offsets to the group afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use decant_model::sink::{
    BatchStats, Change, ChangeOp, Commit, Committed, DeadLetter, Destination, Resume, SourceGroup,
};
use decant_model::{Disposition, Encoded, JsonEncoder, RecordEncoder, Sink, SinkError};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::{Admin, TopicCheck, TopicSpec};
use crate::config::KafkaConfig;
use crate::consumer::SourceConsumer;
use crate::error::Error;
use crate::producer::SinkProducer;

/// What the upsert sink needs from `[output]` and `[delivery]`.
#[derive(Debug, Clone)]
pub struct UpsertConfig {
    /// A transaction per batch (exactly once); otherwise an idempotent producer and a flush.
    pub exactly_once: bool,
    pub transaction_timeout_ms: u64,
    /// Commit at least this often while a batch is open …
    pub commit_interval: Duration,
    /// … or after this many source records.
    pub commit_max_records: u64,
    /// Output topics are created with these when missing (`create_topics`).
    pub partitions: i32,
    pub replication_factor: i32,
    pub create_topics: bool,
    /// `decant.source.*`, `decant.op`, `decant.lsn`, `decant.txn` headers on every record.
    pub provenance_headers: bool,
}

/// The compacted-topic upsert sink.
pub struct UpsertTopics {
    cfg: UpsertConfig,
    producer: Arc<SinkProducer>,
    admin: Admin,
    transactional_id: String,
    request_timeout: Duration,
    /// A transaction (or at-least-once batch) is open; shared with the revocation handle.
    open: Arc<AtomicBool>,
    /// Records written in the open batch per output label: [upserts, deletes].
    written: HashMap<String, [u64; 2]>,
    /// Makes each change's key and value bytes.
    encoder: Box<dyn RecordEncoder>,
    /// Source tables (by label) stopped because the encoder refused their shape, and why.
    stopped: HashMap<String, String>,
}

impl UpsertTopics {
    pub fn create(kafka: &KafkaConfig, cfg: UpsertConfig) -> Result<Self, Error> {
        let transactional_id = kafka.transactional_id();
        let producer = Arc::new(SinkProducer::create(
            kafka,
            cfg.exactly_once.then_some(transactional_id.as_str()),
            cfg.transaction_timeout_ms,
        )?);
        Ok(UpsertTopics {
            admin: Admin::create(kafka)?,
            producer,
            transactional_id,
            request_timeout: kafka.request_timeout(),
            open: Arc::new(AtomicBool::new(false)),
            written: HashMap::new(),
            encoder: Box::new(JsonEncoder),
            stopped: HashMap::new(),
            cfg,
        })
    }

    /// Writes keys and values with `encoder` instead of the rendered JSON.
    pub fn with_encoder(mut self, encoder: Box<dyn RecordEncoder>) -> Self {
        self.encoder = encoder;
        self
    }

    fn count(&mut self, label: &str, op: ChangeOp) {
        let slot = usize::from(op != ChangeOp::Upsert);
        match self.written.get_mut(label) {
            Some(n) => n[slot] += 1,
            None => {
                let mut n = [0, 0];
                n[slot] = 1;
                self.written.insert(label.to_owned(), n);
            }
        }
    }
}

/// Retries a retriable Kafka call for up to `budget`.
pub fn retry<T>(
    what: &str,
    budget: Duration,
    mut f: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.disposition() == Disposition::Retriable && start.elapsed() < budget => {
                tracing::warn!(error = %e, "{what}: retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Provenance headers of an output record: where the source record is, which batch wrote it,
/// what it did (and the source LSN when known).
fn provenance(c: &Change<'_>) -> OwnedHeaders {
    let partition = c.origin.partition.to_string();
    let offset = c.origin.offset.to_string();
    let h = OwnedHeaders::new_with_capacity(6)
        .insert(KHeader {
            key: "decant.source.topic",
            value: Some(c.origin.topic),
        })
        .insert(KHeader {
            key: "decant.source.partition",
            value: Some(partition.as_str()),
        })
        .insert(KHeader {
            key: "decant.source.offset",
            value: Some(offset.as_str()),
        });
    if c.op == ChangeOp::Truncate {
        return h
            .insert(KHeader {
                key: "decant.op",
                value: Some("truncate"),
            })
            .insert(KHeader {
                key: "decant.txn",
                value: Some(c.batch),
            });
    }
    let mut h = h
        .insert(KHeader {
            key: "decant.txn",
            value: Some(c.batch),
        })
        .insert(KHeader {
            key: "decant.op",
            value: Some(c.op.as_str()),
        });
    if let Some(lsn) = c.origin.lsn {
        let lsn = lsn.to_string();
        h = h.insert(KHeader {
            key: "decant.lsn",
            value: Some(lsn.as_str()),
        });
    }
    h
}

impl Sink for UpsertTopics {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn resume(&mut self) -> Result<Resume, SinkError> {
        if self.cfg.exactly_once {
            let producer = self.producer.clone();
            retry("initialising transactions", self.request_timeout, || {
                producer.init_transactions()
            })?;
        }
        tracing::info!(
            mode = if self.cfg.exactly_once { "exactly_once" } else { "at_least_once" },
            format = self.encoder.format(),
            transactional_id = %self.transactional_id,
            "compacted-topic sink ready"
        );
        Ok(Resume::Group)
    }

    fn offsets_in_commit(&self) -> bool {
        self.cfg.exactly_once
    }

    fn open_destination(&mut self, dest: Destination<'_>) -> Result<(), SinkError> {
        let check = self.admin.ensure(
            &TopicSpec {
                name: dest.topic.to_owned(),
                partitions: self.cfg.partitions,
                replication_factor: self.cfg.replication_factor,
                compacted: true,
            },
            self.cfg.create_topics,
        )?;
        match check {
            TopicCheck::Created => {
                tracing::info!(
                    topic = dest.topic,
                    table = dest.label,
                    "created compacted output topic"
                )
            }
            TopicCheck::Existing => {}
            TopicCheck::Unverified(why) => tracing::warn!(
                topic = dest.topic,
                why,
                "output topic exists but its cleanup.policy could not be checked"
            ),
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), SinkError> {
        if self.cfg.exactly_once {
            self.producer.begin()?;
        }
        self.open.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn is_stopped(&self, dest: Destination<'_>) -> bool {
        !self.stopped.is_empty() && self.stopped.contains_key(dest.label)
    }

    fn stopped_destinations(&self) -> Vec<(&str, &str)> {
        self.stopped
            .iter()
            .map(|(label, why)| (label.as_str(), why.as_str()))
            .collect()
    }

    fn write(&mut self, c: &Change<'_>) -> Result<(), SinkError> {
        let (key, value) = match self.encoder.encode(c)? {
            Encoded::Record { key, value } => (key, value),
            Encoded::Refused(why) => {
                tracing::error!(
                    table = c.dest.label,
                    topic = c.dest.topic,
                    error = %why,
                    "stopping this table until restart; the other tables keep flowing"
                );
                self.stopped.insert(c.dest.label.to_owned(), why.clone());
                // The batch may hold earlier records of the table, written with its previous
                // schema, whose state the loop would now discard: abort it and re-read, so
                // the table's records wait, uncommitted, for a restart.
                return Err(SinkError {
                    what: format!("table {} stopped: {why}", c.dest.label),
                    disposition: Disposition::AbortAndRewind,
                    dependency: None,
                    source: None,
                });
            }
        };
        let headers =
            (self.cfg.provenance_headers || c.op == ChangeOp::Truncate).then(|| provenance(c));
        self.producer
            .send(c.dest.topic, Some(key), value, headers)?;
        self.count(c.dest.label, c.op);
        Ok(())
    }

    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> Result<bool, SinkError> {
        self.producer
            .send_headers(letter.topic, letter.key, letter.value, letter.headers)?;
        Ok(true)
    }

    fn commit_due(&self, batch: &BatchStats) -> bool {
        batch.age >= self.cfg.commit_interval || batch.records >= self.cfg.commit_max_records
    }

    fn prepare(&mut self, _commit: &Commit<'_>) -> Result<(), SinkError> {
        if !self.cfg.exactly_once {
            // At least once the offsets are committed after this: every record must be
            // acknowledged first.
            self.producer.flush()?;
        }
        Ok(())
    }

    fn commit(
        &mut self,
        commit: &Commit<'_>,
        group: &dyn SourceGroup,
    ) -> Result<Committed, SinkError> {
        if self.cfg.exactly_once {
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in commit.batch_offsets {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                    .map_err(|e| Error::kafka("building the offset list", e))?;
            }
            if tpl.count() > 0 {
                let consumer =
                    group
                        .as_any()
                        .downcast_ref::<SourceConsumer>()
                        .ok_or_else(|| {
                            SinkError::fatal(
                                "the upsert sink needs a Kafka consumer group as source",
                            )
                        })?;
                let meta = consumer
                    .group_metadata()
                    .ok_or_else(|| SinkError::fatal("the consumer has no group metadata"))?;
                self.producer.send_offsets(&tpl, &meta)?;
            }
            let producer = self.producer.clone();
            retry("committing the transaction", self.request_timeout, || {
                producer.commit()
            })?;
        }
        self.open.store(false, Ordering::SeqCst);
        let mut written = BTreeMap::new();
        for (label, [ups, dels]) in self.written.drain() {
            if ups > 0 {
                written.insert((label.clone(), "upsert"), ups);
            }
            if dels > 0 {
                written.insert((label, "delete"), dels);
            }
        }
        Ok(Committed { written })
    }

    fn abort(&mut self) {
        self.written.clear();
        if self.open.swap(false, Ordering::SeqCst) {
            if self.cfg.exactly_once {
                if let Err(e) = self.producer.abort() {
                    tracing::warn!(error = %e, "aborting the transaction");
                }
            } else {
                self.producer.purge();
            }
        }
    }

    fn revocation_handle(&self) -> Option<Arc<dyn Fn() -> bool + Send + Sync>> {
        let (open, producer, exactly_once) = (
            self.open.clone(),
            self.producer.clone(),
            self.cfg.exactly_once,
        );
        Some(Arc::new(move || {
            if !open.swap(false, Ordering::SeqCst) {
                return false;
            }
            if exactly_once {
                if let Err(e) = producer.abort() {
                    tracing::warn!(error = %e, "aborting the transaction on revocation");
                }
            } else {
                producer.purge();
            }
            true
        }))
    }
}
