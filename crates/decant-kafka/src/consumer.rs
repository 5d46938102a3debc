//! The source side: a group consumer over a topic list or a regex, reading only committed
//! records, never committing on its own. Rebalances and lag go to the pipeline through
//! [`SourceHooks`]; the pipeline decides what a revocation means for its open transaction.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::config::{KafkaConfig, Role};
use crate::error::Error;

/// What to consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Exactly these topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches this regex (librdkafka syntax, re-checked on
    /// metadata refresh, so new tables' topics are picked up).
    Pattern(String),
}

/// Consumer lag of one assigned partition, from librdkafka statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// High watermark minus the consumer's position (records); -1 when unknown.
    pub lag: i64,
}

/// Callbacks from inside `poll`: they run on the polling thread, before `poll` returns.
pub trait SourceHooks: Send + Sync {
    /// Partitions are about to be taken away. Whatever was read from them and not committed
    /// must be abandoned before this returns (the pipeline aborts its open transaction here).
    fn revoking(&self, partitions: &[(String, i32)]);
    /// Partitions were assigned; consumption starts at their committed offsets.
    fn assigned(&self, partitions: &[(String, i32)]);
    /// Fresh lag figures for the assigned partitions.
    fn lag(&self, _lags: Vec<PartitionLag>) {}
}

/// rdkafka context routing rebalances, statistics and client logs.
pub struct SourceContext {
    hooks: Arc<dyn SourceHooks>,
}

impl SourceContext {
    pub fn new(hooks: Arc<dyn SourceHooks>) -> Self {
        SourceContext { hooks }
    }
}

fn pairs(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let mut lags = Vec::new();
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                // -1 is librdkafka's UA (unassigned) pseudo-partition.
                if *id < 0 || p.fetch_state == "none" {
                    continue;
                }
                lags.push(PartitionLag {
                    topic: name.clone(),
                    partition: *id,
                    lag: p.consumer_lag,
                });
            }
        }
        self.hooks.lag(lags);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error("consumer", &error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.hooks.revoking(&pairs(tpl)),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // A fresh assignment starts unpaused: librdkafka keeps a partition's pause flag
            // across an eager rebalance, and the pipeline re-decides quarantines on re-reading.
            if let Err(e) = consumer.resume(tpl) {
                tracing::warn!(error = %e, "resuming newly assigned partitions");
            }
            self.hooks.assigned(&pairs(tpl));
        }
    }
}

/// librdkafka's error callback: a refused connection (authentication, TLS) needs an operator,
/// everything else is retried by librdkafka itself.
pub(crate) fn log_client_error(client: &str, error: &KafkaError, reason: &str) {
    use rdkafka::error::RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::Authentication | C::SSL | C::SaslAuthenticationFailed) => {
            tracing::error!(client, error = %error, reason, "the Kafka cluster refused the connection")
        }
        _ => tracing::warn!(client, error = %error, reason, "librdkafka error"),
    }
}

pub(crate) fn log_librdkafka(client: &str, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(client, fac, "{msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(client, fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::debug!(client, fac, "{msg}"),
        RDKafkaLogLevel::Debug => tracing::trace!(client, fac, "{msg}"),
    }
}

/// The source consumer.
pub type SourceConsumer = BaseConsumer<SourceContext>;

/// Builds the group consumer: read_committed, earliest, no auto commit, no auto offset store
/// (offsets are committed only by the pipeline, inside its transactions or after a flush).
pub fn create(cfg: &KafkaConfig, hooks: Arc<dyn SourceHooks>) -> Result<SourceConsumer, Error> {
    let mut c = cfg.base();
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MiB by default, a fixed share of decant's footprint
        // beside the batch it holds. 16 MiB is still a few hundred milliseconds of input at full
        // speed. When the queue is full librdkafka postpones the partition's next fetch by
        // fetch.queue.backoff.ms (1 s by default), which halved the harness's changes/s with
        // the smaller queue alone; 10 ms fetches again as soon as the loop has drained some.
        // Both can be raised under `[kafka.consumer]`.
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "statistics.interval.ms",
            cfg.statistics_interval_ms.to_string(),
        );
    cfg.apply_role(&mut c, Role::Consumer);
    c.set_log_level(RDKafkaLogLevel::Warning);
    c.create_with_context(SourceContext::new(hooks))
        .map_err(|e| Error::kafka("creating the consumer", e))
}

impl Subscription {
    /// Subscribes `consumer`.
    pub fn apply(&self, consumer: &SourceConsumer) -> Result<(), Error> {
        let res = match self {
            Subscription::Topics(t) => {
                let names: Vec<&str> = t.iter().map(String::as_str).collect();
                consumer.subscribe(&names)
            }
            Subscription::Pattern(p) => {
                let anchored = if p.starts_with('^') {
                    p.clone()
                } else {
                    format!("^{p}")
                };
                consumer.subscribe(&[anchored.as_str()])
            }
        };
        res.map_err(|e| Error::kafka("subscribing", e))
    }
}

/// A partition and the group's committed offset for it (`None`: nothing committed).
pub type CommittedOffset = ((String, i32), Option<i64>);

/// The group's committed offsets for `partitions`.
pub fn committed(
    consumer: &SourceConsumer,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<CommittedOffset>, Error> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let got = consumer
        .committed_offsets(tpl, timeout)
        .map_err(|e| Error::kafka("fetching committed offsets", e))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| {
            (
                (e.topic().to_owned(), e.partition()),
                e.offset().to_raw().filter(|o| *o >= 0),
            )
        })
        .collect())
}
