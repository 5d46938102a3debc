//! The loop's input: a [`Source`] of Kafka records, either a consumer group (the group assigns
//! partitions and keeps the offsets) or partitions the loop assigns itself at offsets a sink
//! keeps ([`Resume::Own`]). [`KafkaSource`] is the real one over librdkafka; tests use an
//! in-memory one.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use decant_kafka::consumer::{self, SourceConsumer};
use decant_kafka::rdkafka::consumer::{CommitMode, Consumer};
use decant_kafka::rdkafka::message::{BorrowedMessage, Headers, Message};
use decant_kafka::rdkafka::{Offset, TopicPartitionList};
use decant_kafka::{Disposition, PartitionLag, SourceHooks, Subscription, classify};
use decant_model::sink::{Offsets, Resume, SourceGroup, TopicPartition};
use decant_model::{Header, SinkError};

use crate::config::SourceConfig;
use crate::error::{PipelineError, chain};
use crate::metrics::Metrics;

/// How often new topics / partitions are looked for when the loop assigns partitions itself.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// One consumed record, borrowed from wherever the source keeps it.
pub trait Record {
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn timestamp_ms(&self) -> Option<i64>;
    fn key(&self) -> Option<&[u8]>;
    fn value(&self) -> Option<&[u8]>;
    fn headers(&self) -> Vec<Header<'_>>;
}

/// What the loop needs from its input.
pub trait Source: SourceGroup {
    type Msg: Record;

    /// Subscribes ([`Resume::Group`]) or assigns every source partition at the sink's offsets
    /// ([`Resume::Own`]); returns the partitions it assigned and where they start.
    fn start(&mut self, resume: &Resume) -> Result<Vec<(TopicPartition, i64)>, PipelineError>;
    /// Periodic work between polls (partition discovery); newly assigned partitions.
    fn maintain(&mut self) -> Result<Vec<(TopicPartition, i64)>, PipelineError>;
    /// The next record; transient consumer errors are `None`.
    fn poll(&mut self, timeout: Duration) -> Option<Result<Self::Msg, PipelineError>>;
    /// Partitions were revoked since the loop last asked (group mode).
    fn take_revoked(&self) -> bool;
    fn pause(&mut self, partition: &TopicPartition);
    fn resume_partition(&mut self, partition: &TopicPartition);
    /// Re-reads every assigned partition from the group's committed offset.
    fn rewind(&mut self) -> Result<usize, PipelineError>;
    /// Commits next offsets to the group: `sync` when they are the real progress (at least
    /// once), asynchronously when only dashboards read them.
    fn commit_offsets(&self, offsets: &Offsets, sync: bool) -> Result<(), PipelineError>;
}

impl Record for BorrowedMessage<'_> {
    fn topic(&self) -> &str {
        Message::topic(self)
    }
    fn partition(&self) -> i32 {
        Message::partition(self)
    }
    fn offset(&self) -> i64 {
        Message::offset(self)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp().to_millis()
    }
    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }
    fn value(&self) -> Option<&[u8]> {
        self.payload()
    }
    fn headers(&self) -> Vec<Header<'_>> {
        match Message::headers(self) {
            None => Vec::new(),
            Some(h) => h
                .iter()
                .map(|x| Header {
                    key: x.key,
                    value: x.value,
                })
                .collect(),
        }
    }
}

/// Rebalance and lag callbacks; run inside `poll` on the loop's thread.
pub(crate) struct Hooks {
    /// Aborts the sink's open batch when partitions are revoked (group mode).
    pub(crate) revoke: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Partitions were revoked since the loop last looked.
    revoked: AtomicBool,
    /// Assigned partitions (group mode; the loop's own assignment otherwise).
    assigned: Mutex<BTreeSet<TopicPartition>>,
    /// Partitions are assigned by the loop, not by the group.
    own: bool,
    metrics: Arc<Metrics>,
}

impl Hooks {
    pub(crate) fn new(
        revoke: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
        own: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Hooks {
            revoke,
            revoked: AtomicBool::new(false),
            assigned: Mutex::new(BTreeSet::new()),
            own,
            metrics,
        }
    }
}

impl SourceHooks for Hooks {
    fn revoking(&self, partitions: &[(String, i32)]) {
        if self.own {
            return;
        }
        if let Some(abort) = &self.revoke
            && abort()
        {
            self.metrics
                .transactions
                .with_label_values(&["aborted"])
                .inc();
        }
        self.revoked.store(true, Ordering::SeqCst);
        if let Ok(mut a) = self.assigned.lock() {
            for (t, p) in partitions {
                a.remove(&(t.clone(), *p));
                let _ = self
                    .metrics
                    .consumer_lag
                    .remove_label_values(&[t, &p.to_string()]);
            }
            self.metrics.assigned_partitions.set(a.len() as i64);
        }
        tracing::info!(partitions = partitions.len(), "partitions revoked");
    }

    fn assigned(&self, partitions: &[(String, i32)]) {
        if self.own {
            return;
        }
        if let Ok(mut a) = self.assigned.lock() {
            a.extend(partitions.iter().cloned());
            self.metrics.assigned_partitions.set(a.len() as i64);
        }
        tracing::info!(partitions = ?partitions, "partitions assigned");
    }

    fn lag(&self, lags: Vec<PartitionLag>) {
        let Ok(a) = self.assigned.lock() else { return };
        for l in lags {
            if l.lag >= 0 && (self.own || a.contains(&(l.topic.clone(), l.partition))) {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&l.topic, &l.partition.to_string()])
                    .set(l.lag);
            }
        }
    }
}

/// The source over a librdkafka consumer.
pub(crate) struct KafkaSource<'c> {
    consumer: &'c SourceConsumer,
    hooks: Arc<Hooks>,
    cfg: SourceConfig,
    request_timeout: Duration,
    /// `Some` when the loop assigns partitions itself: the sink's start offsets.
    own_start: Option<Offsets>,
    /// Partitions assigned by the loop (own mode).
    own_assigned: BTreeSet<TopicPartition>,
    last_discovery: Instant,
}

impl<'c> KafkaSource<'c> {
    pub(crate) fn new(
        consumer: &'c SourceConsumer,
        hooks: Arc<Hooks>,
        cfg: SourceConfig,
        request_timeout: Duration,
    ) -> Self {
        KafkaSource {
            consumer,
            hooks,
            cfg,
            request_timeout,
            own_start: None,
            own_assigned: BTreeSet::new(),
            last_discovery: Instant::now(),
        }
    }

    fn tpl(partition: &TopicPartition) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&partition.0, partition.1);
        tpl
    }

    /// Assigns every partition of the source topics not assigned yet, at the sink's offset
    /// (from the beginning when the sink has none for it).
    fn discover(&mut self) -> Result<Vec<(TopicPartition, i64)>, PipelineError> {
        self.last_discovery = Instant::now();
        let Some(start) = &self.own_start else {
            return Ok(Vec::new());
        };
        let md = self
            .consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| decant_kafka::Error::kafka("listing topics", e))?;
        let pattern = match &self.cfg.topic_pattern {
            Some(p) => Some(
                regex::Regex::new(&if p.starts_with('^') {
                    p.clone()
                } else {
                    format!("^{p}")
                })
                .map_err(|e| PipelineError::Config(format!("source.topic_pattern: {e}")))?,
            ),
            None => None,
        };
        let mut tpl = TopicPartitionList::new();
        let mut added = Vec::new();
        for t in md.topics() {
            let wanted = match &pattern {
                Some(re) => re.is_match(t.name()),
                None => self.cfg.topics.iter().any(|n| n == t.name()),
            };
            if !wanted || t.name().starts_with("__") {
                continue;
            }
            for p in t.partitions() {
                let tp = (t.name().to_owned(), p.id());
                if self.own_assigned.contains(&tp) {
                    continue;
                }
                let at = start.get(&tp).copied();
                let offset = at.map_or(Offset::Beginning, Offset::Offset);
                tpl.add_partition_offset(&tp.0, tp.1, offset)
                    .map_err(|e| decant_kafka::Error::kafka("assigning", e))?;
                added.push((tp.clone(), at.unwrap_or(0)));
                self.own_assigned.insert(tp);
            }
        }
        if tpl.count() > 0 {
            tracing::info!(partitions = tpl.count(), "assigning source partitions");
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| decant_kafka::Error::kafka("assigning", e))?;
            self.hooks
                .metrics
                .assigned_partitions
                .set(self.own_assigned.len() as i64);
        }
        Ok(added)
    }
}

impl SourceGroup for KafkaSource<'_> {
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, SinkError> {
        Ok(consumer::committed(
            self.consumer,
            partitions,
            self.request_timeout,
        )?)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self.consumer
    }
}

impl<'c> Source for KafkaSource<'c> {
    type Msg = BorrowedMessage<'c>;

    fn start(&mut self, resume: &Resume) -> Result<Vec<(TopicPartition, i64)>, PipelineError> {
        match resume {
            Resume::Group => {
                let subscription = match &self.cfg.topic_pattern {
                    Some(p) => Subscription::Pattern(p.clone()),
                    None => Subscription::Topics(self.cfg.topics.clone()),
                };
                subscription.apply(self.consumer)?;
                Ok(Vec::new())
            }
            Resume::Own(start) => {
                self.own_start = Some(start.clone());
                self.discover()
            }
        }
    }

    fn maintain(&mut self) -> Result<Vec<(TopicPartition, i64)>, PipelineError> {
        if self.own_start.is_some() && self.last_discovery.elapsed() >= DISCOVERY_INTERVAL {
            return self.discover();
        }
        Ok(Vec::new())
    }

    fn poll(&mut self, timeout: Duration) -> Option<Result<Self::Msg, PipelineError>> {
        let consumer: &'c SourceConsumer = self.consumer;
        match consumer.poll(timeout)? {
            Ok(m) => Some(Ok(m)),
            Err(e) => match classify(&e) {
                Disposition::Retriable => {
                    tracing::debug!(error = %e, "consume: transient");
                    None
                }
                _ => Some(Err(decant_kafka::Error::kafka("consuming", e).into())),
            },
        }
    }

    fn take_revoked(&self) -> bool {
        self.hooks.revoked.swap(false, Ordering::SeqCst)
    }

    fn pause(&mut self, partition: &TopicPartition) {
        if let Err(e) = self.consumer.pause(&Self::tpl(partition)) {
            tracing::warn!(error = %e, "pausing a quarantined partition");
        }
    }

    fn resume_partition(&mut self, partition: &TopicPartition) {
        let _ = self.consumer.resume(&Self::tpl(partition));
    }

    fn rewind(&mut self) -> Result<usize, PipelineError> {
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| decant_kafka::Error::kafka("reading the assignment", e))?;
        let parts: Vec<TopicPartition> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if parts.is_empty() {
            return Ok(0);
        }
        let committed = consumer::committed(self.consumer, &parts, self.request_timeout)?;
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &committed {
            let offset = o.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(t, *p, offset)
                .map_err(|e| decant_kafka::Error::kafka("building the seek list", e))?;
        }
        let res = self
            .consumer
            .seek_partitions(tpl, self.request_timeout)
            .map_err(|e| decant_kafka::Error::kafka("seeking", e))?;
        for e in res.elements() {
            if let Err(err) = e.error() {
                return Err(decant_kafka::Error::kafka("seeking a partition", err).into());
            }
        }
        Ok(parts.len())
    }

    fn commit_offsets(&self, offsets: &Offsets, sync: bool) -> Result<(), PipelineError> {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| decant_kafka::Error::kafka("building the offset list", e))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        if sync {
            self.consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| decant_kafka::Error::kafka("committing offsets", e))?;
        } else if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %chain(&e), "committing group offsets (monitoring only)");
        }
        Ok(())
    }
}

/// The group's committed offsets of `partitions` as a map.
pub(crate) fn committed_map(
    group: &dyn SourceGroup,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, Option<i64>>, PipelineError> {
    Ok(group.committed(partitions)?.into_iter().collect())
}
