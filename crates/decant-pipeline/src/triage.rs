//! Bad records: the policies (`skip`, `dead_letter`, `fail`), quarantine of a source partition,
//! and dead letters — the original record with where it came from and why, written inside the
//! sink's atomic step when the sink can, else by the loop's own producer before the commit.

use std::collections::HashMap;
use std::sync::Arc;

use decant_decode::{ChangeBatch, ControlRecord, DecodeError};
use decant_kafka::{KafkaConfig, SinkProducer};
use decant_model::sink::DeadLetter;
use decant_model::{Header, Sink, TableId};

use crate::config::BadRecordPolicy;
use crate::error::PipelineError;
use crate::flow::{Flow, TopicRoute};
use crate::metrics::Metrics;
use crate::route::Route;
use crate::source::{Record, Source};

/// A bad record's description for the dead-letter headers and logs.
pub(crate) struct Bad<'a> {
    pub(crate) class: &'a str,
    pub(crate) field: Option<&'a str>,
    pub(crate) message: String,
}

/// A record the decoder refused, counted: its table's label and bad-record policy (the
/// topic's last route, else the defaults) and its description.
pub(crate) struct Refused<'e> {
    pub(crate) label: String,
    pub(crate) policy: BadRecordPolicy,
    pub(crate) route: Option<Arc<Route>>,
    pub(crate) bad: Bad<'e>,
}

pub(crate) fn refused<'e>(
    metrics: &Metrics,
    topic_routes: &HashMap<String, TopicRoute>,
    defaults: BadRecordPolicy,
    topic: &str,
    e: &'e DecodeError,
) -> Refused<'e> {
    metrics.decode_errors.with_label_values(&[e.class()]).inc();
    let route = topic_routes.get(topic).map(|t| t.route.clone());
    let (label, policy) = match &route {
        Some(r) => (r.label.clone(), r.on_bad_record),
        None => ("unknown".to_owned(), defaults),
    };
    metrics
        .input_records
        .with_label_values(&[&label, "error"])
        .inc();
    Refused {
        label,
        policy,
        route,
        bad: Bad {
            class: e.class(),
            field: e.field(),
            message: e.to_string(),
        },
    }
}

/// Counts a control record (heartbeat, transaction marker, truncate, …) under its table.
pub(crate) fn count_control(metrics: &Metrics, c: &ControlRecord) {
    let label = c
        .table
        .as_ref()
        .map_or("unknown".to_owned(), TableId::to_string);
    metrics
        .input_records
        .with_label_values(&[&label, c.event.kind()])
        .inc();
}

/// (batch, row) of every decoded row, in input order (rows of different tables sit in
/// different batches).
pub(crate) fn input_order(batches: &[ChangeBatch]) -> Vec<(usize, usize)> {
    let mut items: Vec<(u64, u32, u32)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for (r, m) in batch.meta.iter().enumerate() {
            items.push((m.seq, b as u32, r as u32));
        }
    }
    items.sort_unstable_by_key(|i| i.0);
    items
        .into_iter()
        .map(|(_, b, r)| (b as usize, r as usize))
        .collect()
}

/// The loop's own dead-letter producer, for sinks that cannot keep dead letters in their
/// atomic step; created on first use.
pub(crate) struct DeadLetterQueue {
    kafka: Option<KafkaConfig>,
    transaction_timeout_ms: u64,
    producer: Option<SinkProducer>,
}

impl DeadLetterQueue {
    pub(crate) fn new(kafka: Option<KafkaConfig>, transaction_timeout_ms: u64) -> Self {
        DeadLetterQueue {
            kafka,
            transaction_timeout_ms,
            producer: None,
        }
    }

    fn send(&mut self, letter: &DeadLetter<'_>) -> Result<(), PipelineError> {
        if self.producer.is_none() {
            let Some(kafka) = &self.kafka else {
                return Err(PipelineError::Config(
                    "dead letters need a Kafka connection".into(),
                ));
            };
            self.producer = Some(SinkProducer::create(
                kafka,
                None,
                self.transaction_timeout_ms,
            )?);
        }
        if let Some(p) = &self.producer {
            p.send_headers(letter.topic, letter.key, letter.value, letter.headers)?;
        }
        Ok(())
    }

    /// Waits until every dead letter is acknowledged: the offsets about to be committed move
    /// past their source records, so they must not exist only in a queue.
    pub(crate) fn flush(&self) -> Result<(), PipelineError> {
        if let Some(p) = &self.producer {
            p.flush()?;
        }
        Ok(())
    }
}

fn push<'a>(headers: &mut Vec<Header<'a>>, key: &'static str, value: &'a str) {
    headers.push(Header {
        key,
        value: Some(value.as_bytes()),
    });
}

/// Cuts a message to at most 1000 bytes (on a character boundary) for a header.
fn header_message(msg: &str) -> &str {
    if msg.len() <= 1000 {
        return msg;
    }
    let mut cut = 1000;
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    &msg[..cut]
}

impl<S: Sink, Src: Source> Flow<'_, S, Src> {
    /// Applies a bad-record policy to source record `m`.
    pub(crate) fn bad_record(
        &mut self,
        policy: BadRecordPolicy,
        m: &Src::Msg,
        label: &str,
        route: Option<&Route>,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        match policy {
            BadRecordPolicy::Skip => {
                tracing::trace!(error = %bad.message, "skipped bad record");
                self.metrics
                    .skipped_records
                    .with_label_values(&[label, bad.class])
                    .inc();
                Ok(())
            }
            BadRecordPolicy::DeadLetter => self.dead_letter(Some(m), label, route, bad),
            BadRecordPolicy::Fail => {
                let at = (m.topic().to_owned(), m.partition());
                self.quarantine_at(at, m.offset(), label, &bad.message);
                Ok(())
            }
        }
    }

    /// Bad-record policy for decoded row `row`, found bad while rendering. Rows are handled in
    /// input order, so under `fail` nothing of its partition from here on reaches the sink.
    pub(crate) fn row_bad(
        &mut self,
        policy: BadRecordPolicy,
        route: &Route,
        batch: &ChangeBatch,
        row: usize,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        let meta = &batch.meta[row];
        match policy {
            BadRecordPolicy::Skip => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, bad.class])
                    .inc();
                Ok(())
            }
            BadRecordPolicy::DeadLetter => {
                let held = std::mem::take(&mut self.held);
                let idx = held.iter().rposition(|m| {
                    m.offset() == meta.offset
                        && m.partition() == meta.partition
                        && m.topic() == meta.topic.as_ref()
                });
                let res = self.dead_letter(idx.map(|i| &held[i]), &route.label, Some(route), bad);
                self.held = held;
                res
            }
            BadRecordPolicy::Fail => {
                let at = (meta.topic.to_string(), meta.partition);
                self.quarantine_at(at, meta.offset, &route.label, &bad.message);
                Ok(())
            }
        }
    }

    /// Stops source partition `at` at `offset`: nothing from there on is processed or
    /// committed until a restart (after the record or the configuration was fixed).
    pub(crate) fn quarantine_at(&mut self, at: (String, i32), offset: i64, label: &str, why: &str) {
        tracing::error!(
            topic = at.0,
            partition = at.1,
            offset,
            table = label,
            error = why,
            "bad record under policy fail: quarantining the source partition; other partitions keep flowing"
        );
        self.hold_partition(at, offset);
    }

    /// Quarantines a source partition at `offset`: nothing from there on is processed or
    /// committed until a rewind or restart reads it again.
    pub(crate) fn hold_partition(&mut self, at: (String, i32), offset: i64) {
        if let Some(b) = self.batch.as_mut() {
            b.hold_back(&at.0, at.1, offset);
        }
        if let Some(p) = self.position.get_mut(&at) {
            *p = (*p).min(offset);
        }
        self.source.pause(&at);
        self.quarantine.insert(at, offset);
        self.metrics
            .quarantined_partitions
            .set(self.quarantine.len() as i64);
    }

    pub(crate) fn is_quarantined(&self, topic: &str, partition: i32, offset: i64) -> bool {
        !self.quarantine.is_empty()
            && self
                .quarantine
                .iter()
                .any(|((t, p), q)| *p == partition && t == topic && offset >= *q)
    }

    /// Writes the original record (when available) to the dead-letter topic.
    pub(crate) fn dead_letter(
        &mut self,
        m: Option<&Src::Msg>,
        label: &str,
        route: Option<&Route>,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        let Some(dlq) = self.cfg.dead_letter.topic.as_deref() else {
            return Err(PipelineError::Config(
                "a dead_letter policy applies but dead_letter.topic is not set".into(),
            ));
        };
        let mut headers: Vec<Header<'_>> = m.map(Record::headers).unwrap_or_default();
        let (topic, partition, offset) =
            m.map_or(("", -1, -1), |m| (m.topic(), m.partition(), m.offset()));
        let (partition, offset) = (partition.to_string(), offset.to_string());
        let message = header_message(&bad.message);
        let h = &mut headers;
        push(h, "decant.source.topic", topic);
        push(h, "decant.source.partition", &partition);
        push(h, "decant.source.offset", &offset);
        push(h, "decant.txn", &self.batch_label);
        push(h, "decant.error.class", bad.class);
        if let Some(f) = bad.field {
            push(h, "decant.error.field", f);
        }
        if let Some(r) = route {
            push(h, "decant.table", &r.label);
        }
        if self.cfg.dead_letter.include_error_message {
            push(h, "decant.error.message", message);
        }
        let letter = DeadLetter {
            topic: dlq,
            key: m.and_then(Record::key),
            value: m.and_then(Record::value),
            headers: &headers,
        };
        if !self.sink.dead_letter(&letter)? {
            self.dead_letters.send(&letter)?;
        }
        self.metrics
            .dead_letter_records
            .with_label_values(&[label, bad.class])
            .inc();
        self.summary.dead_lettered += 1;
        tracing::debug!(table = label, class = bad.class, "dead-lettered");
        Ok(())
    }
}
