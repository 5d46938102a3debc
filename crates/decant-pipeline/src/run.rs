//! The loop: consume → decode → render → produce → commit. This is the only module that decides
//! when anything becomes durable.
//!
//! Exactly-once cadence: a transaction begins with the first record after a commit; decoded
//! rows are rendered and handed to the producer every `flush_max_rows` rows; the transaction
//! commits after `commit_interval_ms` or `commit_max_records` records. A commit is: render what
//! is left → stage the state-store changes with the offsets (durable) → send the offsets into
//! the transaction → commit it → apply the staged changes. Any Kafka error that leaves the
//! transaction unusable aborts it and rewinds every assigned partition to its committed offset
//! (the decoder's open batches and the state overlay are dropped with it); partition
//! revocation aborts the transaction from inside the rebalance callback.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use decant_decode::{ChangeBatch, ControlRecord, DecodeError, Decoder, DecoderConfig, Outcome};
use decant_kafka::consumer::{self, SourceConsumer};
use decant_kafka::rdkafka::consumer::{CommitMode, Consumer};
use decant_kafka::rdkafka::message::{
    BorrowedMessage, Header as KHeader, Headers, Message, OwnedHeaders,
};
use decant_kafka::rdkafka::{Offset, TopicPartitionList};
use decant_kafka::{
    Admin, Disposition, KafkaConfig, PartitionLag, SinkProducer, SourceHooks, Subscription,
    TopicSpec, classify,
};
use decant_model::{ChangeKind, ControlEvent, Header, KafkaRecord, TableId};

use crate::config::{BadRecordPolicy, DeliveryMode, PipelineConfig, ToastPolicy, TruncatePolicy};
use crate::error::{PipelineError, chain};
use crate::metrics::Metrics;
use crate::observe::{Health, now_ms};
use crate::render::{MetaColumn, other_store_key, push_key, push_row, row_passes};
use crate::route::{Route, Router};
use crate::state::{Overlay, StateStore, ToastEntry, previous_entry, row_key, stage_delete};

/// What the process shares with the loop.
pub struct Runtime {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Set by SIGTERM/SIGINT: finish the open transaction and return.
    pub shutdown: Arc<AtomicBool>,
}

/// Totals of one run, for the exit log.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub records_in: u64,
    pub records_out: u64,
    pub dead_lettered: u64,
    pub commits: u64,
    pub rewinds: u64,
}

/// Rebalance and lag callbacks; run inside `poll` on the loop's thread.
struct Hooks {
    producer: Arc<SinkProducer>,
    exactly_once: bool,
    /// A transaction (or at-least-once batch) is open.
    txn_open: AtomicBool,
    /// Partitions were revoked since the loop last looked.
    revoked: AtomicBool,
    assigned: Mutex<BTreeSet<(String, i32)>>,
    metrics: Arc<Metrics>,
}

impl SourceHooks for Hooks {
    fn revoking(&self, partitions: &[(String, i32)]) {
        if self.txn_open.swap(false, Ordering::SeqCst) && self.exactly_once {
            match self.producer.abort() {
                Ok(()) => self
                    .metrics
                    .transactions
                    .with_label_values(&["aborted"])
                    .inc(),
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "aborting the transaction on revocation")
                }
            }
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
        if let Ok(mut a) = self.assigned.lock() {
            a.extend(partitions.iter().cloned());
            self.metrics.assigned_partitions.set(a.len() as i64);
        }
        tracing::info!(partitions = ?partitions, "partitions assigned");
    }

    fn lag(&self, lags: Vec<PartitionLag>) {
        let Ok(a) = self.assigned.lock() else { return };
        for l in lags {
            if l.lag >= 0 && a.contains(&(l.topic.clone(), l.partition)) {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&l.topic, &l.partition.to_string()])
                    .set(l.lag);
            }
        }
    }
}

/// The open transaction.
struct Open {
    started: Instant,
    records: u64,
    /// Next offset to commit per source partition.
    offsets: Vec<(String, i32, i64)>,
    /// State-store changes made by this transaction.
    overlay: Overlay,
}

impl Open {
    fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        match self
            .offsets
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some(e) => e.2 = next,
            None => self.offsets.push((topic.to_owned(), partition, next)),
        }
    }

    fn hold_back(&mut self, topic: &str, partition: i32, offset: i64) {
        match self
            .offsets
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some(e) => e.2 = e.2.min(offset),
            None => self.offsets.push((topic.to_owned(), partition, offset)),
        }
    }
}

/// How a flush ended.
enum Flushed {
    Done,
    /// A row must be re-read as poison: abort and rewind.
    Rewind,
}

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
    topic_routes: &HashMap<String, Arc<Route>>,
    defaults: BadRecordPolicy,
    topic: &str,
    e: &'e DecodeError,
) -> Refused<'e> {
    metrics.decode_errors.with_label_values(&[e.class()]).inc();
    let route = topic_routes.get(topic).cloned();
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

struct Worker<'c> {
    cfg: &'c PipelineConfig,
    consumer: &'c SourceConsumer,
    producer: Arc<SinkProducer>,
    hooks: Arc<Hooks>,
    admin: Admin,
    store: StateStore,
    router: Router,
    decoder: Decoder,
    metrics: Arc<Metrics>,
    meta_columns: Vec<MetaColumn>,
    exactly_once: bool,
    request_timeout: Duration,
    open: Option<Open>,
    /// Messages whose rows are in the decoder's open batches (for dead-lettering at render).
    held: Vec<BorrowedMessage<'c>>,
    /// The route of the table last seen on each source topic (bad records get its policy).
    topic_routes: HashMap<String, Arc<Route>>,
    /// Quarantined source partitions and the offset they stopped at.
    quarantine: HashMap<(String, i32), i64>,
    /// Records to quarantine at when they come around again (found bad after decoding).
    poison: HashSet<(String, i32, i64)>,
    rewinds_in_a_row: u32,
    key_buf: String,
    value_buf: String,
    /// Scratch for rendering `where` predicate columns.
    filter_buf: String,
    summary: Summary,
    /// This process's id in `decant.txn` headers (`<pid>-<start ms>`).
    run_id: String,
    /// `decant.txn` of the open transaction: `<run_id>:<sequence>`.
    txn_label: String,
    txn_seq: u64,
}

/// Runs until `rt.shutdown` is set (returns Ok after committing) or a fatal error.
pub fn run(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    decoder: DecoderConfig,
    rt: &Runtime,
) -> Result<Summary, PipelineError> {
    let decoder =
        Decoder::new(decoder).map_err(|e| PipelineError::Config(format!("decode: {e}")))?;
    let store = StateStore::open(&cfg.state.dir)?;
    rt.metrics.state_keys.set(store.len()? as i64);
    let admin = Admin::create(kafka)?;
    if let Some(dlq) = &cfg.dead_letter.topic {
        admin.ensure(
            &TopicSpec {
                name: dlq.clone(),
                partitions: cfg.dead_letter.partitions,
                replication_factor: cfg.output.replication_factor,
                compacted: false,
            },
            cfg.output.create_topics,
        )?;
    }
    let mut router = Router::new(cfg);
    if !cfg.output.topic_template.contains("{topic}") {
        for table in router.configured_tables() {
            let (route, _) = router.route(&table, "");
            ensure_output(&admin, cfg, &route)?;
        }
    }
    let exactly_once = cfg.delivery.mode == DeliveryMode::ExactlyOnce;
    let txn_id = kafka.transactional_id();
    let producer = Arc::new(SinkProducer::create(
        kafka,
        exactly_once.then_some(txn_id.as_str()),
        cfg.delivery.transaction_timeout_ms,
    )?);
    if exactly_once {
        retry("initialising transactions", kafka.request_timeout(), || {
            producer.init_transactions()
        })?;
    }
    let hooks = Arc::new(Hooks {
        producer: producer.clone(),
        exactly_once,
        txn_open: AtomicBool::new(false),
        revoked: AtomicBool::new(false),
        assigned: Mutex::new(BTreeSet::new()),
        metrics: rt.metrics.clone(),
    });
    let consumer = consumer::create(kafka, hooks.clone())?;
    let meta_columns = cfg
        .output
        .metadata_columns
        .iter()
        .filter_map(|m| MetaColumn::parse(m))
        .collect();
    let mut w = Worker {
        cfg,
        consumer: &consumer,
        producer,
        hooks,
        admin,
        store,
        router,
        decoder,
        metrics: rt.metrics.clone(),
        meta_columns,
        exactly_once,
        request_timeout: kafka.request_timeout(),
        open: None,
        held: Vec::new(),
        topic_routes: HashMap::new(),
        quarantine: HashMap::new(),
        poison: HashSet::new(),
        rewinds_in_a_row: 0,
        key_buf: String::new(),
        value_buf: String::new(),
        filter_buf: String::new(),
        summary: Summary::default(),
        run_id: format!("{}-{}", std::process::id(), now_ms()),
        txn_label: String::new(),
        txn_seq: 0,
    };
    w.resolve_pending()?;
    let subscription = match &cfg.source.topic_pattern {
        Some(p) => Subscription::Pattern(p.clone()),
        None => Subscription::Topics(cfg.source.topics.clone()),
    };
    subscription.apply(&consumer)?;
    tracing::info!(
        mode = if exactly_once { "exactly_once" } else { "at_least_once" },
        transactional_id = %txn_id,
        group = %kafka.group_id,
        "decant run started"
    );
    rt.health.set_ready(true);
    let result = w.run_loop(rt);
    rt.health.set_ready(false);
    if result.is_err() {
        rt.health.set_failed();
    }
    let summary = w.summary.clone();
    drop(w);
    // Leaving the group revokes (nothing is open any more) and commits nothing on its own.
    consumer.unsubscribe();
    result.map(|()| summary)
}

fn ensure_output(admin: &Admin, cfg: &PipelineConfig, route: &Route) -> Result<(), PipelineError> {
    let check = admin.ensure(
        &TopicSpec {
            name: route.topic.clone(),
            partitions: cfg.output.partitions,
            replication_factor: cfg.output.replication_factor,
            compacted: true,
        },
        cfg.output.create_topics,
    )?;
    match check {
        decant_kafka::TopicCheck::Created => {
            tracing::info!(topic = %route.topic, table = %route.label, "created compacted output topic")
        }
        decant_kafka::TopicCheck::Existing => {}
        decant_kafka::TopicCheck::Unverified(why) => tracing::warn!(
            topic = %route.topic,
            why,
            "output topic exists but its cleanup.policy could not be checked"
        ),
    }
    Ok(())
}

/// Retries a retriable Kafka call for up to `budget`.
fn retry<T>(
    what: &str,
    budget: Duration,
    mut f: impl FnMut() -> Result<T, decant_kafka::Error>,
) -> Result<T, PipelineError> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.disposition() == Disposition::Retriable && start.elapsed() < budget => {
                tracing::warn!(error = %chain(&e), "{what}: retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Headers of a dead-lettered record: the original's, then where it came from and why.
pub(crate) fn dead_letter_headers(
    m: Option<&BorrowedMessage<'_>>,
    table: Option<&str>,
    bad: &Bad<'_>,
    include_error_message: bool,
    txn_label: &str,
) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(8);
    if let Some(m) = m
        && let Some(orig) = m.headers()
    {
        for x in orig.iter() {
            h = h.insert(KHeader {
                key: x.key,
                value: x.value,
            });
        }
    }
    let (topic, partition, offset) =
        m.map_or(("", -1, -1), |m| (m.topic(), m.partition(), m.offset()));
    h = with_provenance(h, topic, partition, offset, txn_label).insert(KHeader {
        key: "decant.error.class",
        value: Some(bad.class),
    });
    if let Some(f) = bad.field {
        h = h.insert(KHeader {
            key: "decant.error.field",
            value: Some(f),
        });
    }
    if let Some(label) = table {
        h = h.insert(KHeader {
            key: "decant.table",
            value: Some(label),
        });
    }
    if include_error_message {
        let mut msg = bad.message.as_str();
        if msg.len() > 1000 {
            let mut cut = 1000;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg = &msg[..cut];
        }
        h = h.insert(KHeader {
            key: "decant.error.message",
            value: Some(msg),
        });
    }
    h
}

pub(crate) fn kafka_headers<'m>(m: &'m BorrowedMessage<'_>) -> Vec<Header<'m>> {
    match m.headers() {
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

impl<'c> Worker<'c> {
    fn run_loop(&mut self, rt: &Runtime) -> Result<(), PipelineError> {
        let commit_interval = Duration::from_millis(self.cfg.delivery.commit_interval_ms);
        loop {
            rt.health.turn();
            if rt.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let polled = self.consumer.poll(Duration::from_millis(100));
            if self.hooks.revoked.swap(false, Ordering::SeqCst) {
                self.after_revoke();
            }
            let step = match polled {
                None => Ok(()),
                Some(Err(e)) => match classify(&e) {
                    Disposition::Retriable => {
                        tracing::debug!(error = %e, "consume: transient");
                        Ok(())
                    }
                    _ => Err(decant_kafka::Error::kafka("consuming", e).into()),
                },
                Some(Ok(m)) => self.process(m),
            };
            self.settle(step)?;
            let due = self.open.as_ref().is_some_and(|o| {
                o.started.elapsed() >= commit_interval
                    || o.records >= self.cfg.delivery.commit_max_records
            });
            if due {
                let step = self.commit();
                self.settle(step)?;
            }
        }
        tracing::info!("shutting down: committing the open transaction");
        if self.open.is_some()
            && let Err(e) = self.commit()
        {
            tracing::warn!(error = %chain(&e), "final commit failed; aborting");
            self.abort_open();
        }
        tracing::info!(
            records_in = self.summary.records_in,
            records_out = self.summary.records_out,
            commits = self.summary.commits,
            "stopped"
        );
        Ok(())
    }

    /// Turns a step's error into a rewind or a stop.
    fn settle(&mut self, step: Result<(), PipelineError>) -> Result<(), PipelineError> {
        let Err(e) = step else { return Ok(()) };
        match e.disposition() {
            Disposition::Fatal => {
                tracing::error!(error = %chain(&e), "fatal error; stopping");
                self.abort_open();
                Err(e)
            }
            d => {
                tracing::warn!(error = %chain(&e), disposition = d.as_str(), "aborting and rewinding");
                self.rewind("kafka_error", Some(e))
            }
        }
    }

    fn begin_if_needed(&mut self) -> Result<(), PipelineError> {
        if self.open.is_some() {
            return Ok(());
        }
        if self.exactly_once {
            self.producer.begin()?;
        }
        self.txn_seq += 1;
        self.txn_label = format!("{}:{}", self.run_id, self.txn_seq);
        self.hooks.txn_open.store(true, Ordering::SeqCst);
        self.open = Some(Open {
            started: Instant::now(),
            records: 0,
            offsets: Vec::new(),
            overlay: Overlay::new(),
        });
        Ok(())
    }

    fn open_mut(&mut self) -> &mut Open {
        self.open.get_or_insert_with(|| Open {
            started: Instant::now(),
            records: 0,
            offsets: Vec::new(),
            overlay: Overlay::new(),
        })
    }

    fn is_quarantined(&self, topic: &str, partition: i32, offset: i64) -> bool {
        !self.quarantine.is_empty()
            && self
                .quarantine
                .get(&(topic.to_owned(), partition))
                .is_some_and(|q| offset >= *q)
    }

    fn process(&mut self, m: BorrowedMessage<'c>) -> Result<(), PipelineError> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if self.is_quarantined(topic, partition, offset) {
            return Ok(());
        }
        self.begin_if_needed()?;
        {
            let open = self.open_mut();
            open.advance(topic, partition, offset + 1);
            open.records += 1;
        }
        self.summary.records_in += 1;
        if !self.poison.is_empty() && self.poison.remove(&(topic.to_owned(), partition, offset)) {
            let route = self.topic_routes.get(topic).cloned();
            let label = route
                .as_ref()
                .map_or("unknown", |r| r.label.as_str())
                .to_owned();
            self.quarantine_at(
                topic,
                partition,
                offset,
                &label,
                "a TOAST-unchanged value was never seen (on_toast_missing = fail)",
            );
            return Ok(());
        }
        let headers = kafka_headers(&m);
        let rec = KafkaRecord {
            topic,
            partition,
            offset,
            timestamp_ms: m.timestamp().to_millis(),
            headers: &headers,
            key: m.key(),
            value: m.payload(),
        };
        match self.decoder.decode(&rec) {
            Ok(Outcome::Row { table, kind }) => {
                let route = self.route_for_topic(&table, topic)?;
                self.metrics
                    .input_records
                    .with_label_values(&[&route.label, kind.as_str()])
                    .inc();
                drop(headers);
                self.held.push(m);
                if self.decoder.pending_rows() >= self.cfg.delivery.flush_max_rows
                    && let Flushed::Rewind = self.flush()?
                {
                    return self.rewind("poison", None);
                }
            }
            Ok(Outcome::Control(c)) => {
                count_control(&self.metrics, &c);
                if c.event == ControlEvent::Truncate {
                    drop(headers);
                    return self.truncate(&c, &m);
                }
            }
            Err(e) => {
                let Refused {
                    label,
                    policy,
                    route,
                    bad,
                } = refused(
                    &self.metrics,
                    &self.topic_routes,
                    self.cfg.defaults.on_bad_record,
                    topic,
                    &e,
                );
                drop(headers);
                self.bad_record(policy, &m, &label, route.as_deref(), &bad)?;
            }
        }
        Ok(())
    }

    /// The route of `table`, remembered as the last table of `topic`.
    fn route_for_topic(
        &mut self,
        table: &TableId,
        topic: &str,
    ) -> Result<Arc<Route>, PipelineError> {
        if let Some(r) = self.topic_routes.get(topic)
            && r.table == *table
        {
            return Ok(r.clone());
        }
        let route = self.route(table, topic)?;
        self.topic_routes.insert(topic.to_owned(), route.clone());
        Ok(route)
    }

    fn route(&mut self, table: &TableId, topic: &str) -> Result<Arc<Route>, PipelineError> {
        let (route, new) = self.router.route(table, topic);
        if new && let Err(e) = ensure_output(&self.admin, self.cfg, &route) {
            self.router.forget(table);
            return Err(e);
        }
        Ok(route)
    }

    /// Applies a bad-record policy to source message `m`.
    fn bad_record(
        &mut self,
        policy: BadRecordPolicy,
        m: &BorrowedMessage<'c>,
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
                self.quarantine_at(m.topic(), m.partition(), m.offset(), label, &bad.message);
                Ok(())
            }
        }
    }

    /// Stops source partition `topic/partition` at `offset`: nothing from there on is processed
    /// or committed until a restart (after the record or the configuration was fixed).
    fn quarantine_at(&mut self, topic: &str, partition: i32, offset: i64, label: &str, why: &str) {
        tracing::error!(
            topic,
            partition,
            offset,
            table = label,
            error = why,
            "bad record under policy fail: quarantining the source partition; other partitions keep flowing"
        );
        self.open_mut().hold_back(topic, partition, offset);
        self.quarantine
            .insert((topic.to_owned(), partition), offset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, "pausing the quarantined partition");
        }
        self.metrics
            .quarantined_partitions
            .set(self.quarantine.len() as i64);
    }

    /// Writes the original record (when available) to the dead-letter topic.
    fn dead_letter(
        &mut self,
        m: Option<&BorrowedMessage<'c>>,
        label: &str,
        route: Option<&Route>,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        let Some(dlq) = self.cfg.dead_letter.topic.as_deref() else {
            return Err(PipelineError::Config(
                "a dead_letter policy applies but dead_letter.topic is not set".into(),
            ));
        };
        let h = dead_letter_headers(
            m,
            route.map(|r| r.label.as_str()),
            bad,
            self.cfg.dead_letter.include_error_message,
            &self.txn_label,
        );
        self.producer.send(
            dlq,
            m.and_then(|m| m.key()),
            m.and_then(|m| m.payload()),
            Some(h),
        )?;
        self.metrics
            .dead_letter_records
            .with_label_values(&[label, bad.class])
            .inc();
        self.summary.dead_lettered += 1;
        tracing::debug!(table = label, class = bad.class, "dead-lettered");
        Ok(())
    }

    /// Renders every decoded row in input order and hands it to the producer.
    fn flush(&mut self) -> Result<Flushed, PipelineError> {
        let batches = self
            .decoder
            .take_batches()
            .map_err(PipelineError::Batches)?;
        for (b, r) in input_order(&batches) {
            if let Flushed::Rewind = self.emit(&batches[b], r)? {
                return Ok(Flushed::Rewind);
            }
        }
        self.held.clear();
        Ok(Flushed::Done)
    }

    /// Where the source message of a decoded row is in `held`.
    fn held_index(&self, topic: &str, partition: i32, offset: i64) -> Option<usize> {
        self.held
            .iter()
            .rposition(|m| m.offset() == offset && m.partition() == partition && m.topic() == topic)
    }

    /// Renders and produces one row.
    fn emit(&mut self, batch: &ChangeBatch, row: usize) -> Result<Flushed, PipelineError> {
        let meta = &batch.meta[row];
        if self.is_quarantined(&meta.topic, meta.partition, meta.offset) {
            return Ok(Flushed::Done);
        }
        let route = self.route(&batch.schema.table, &meta.topic)?;
        let plan = self.router.plan(&route, &batch.schema);
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        if !push_key(batch, row, &plan, &mut key) {
            self.key_buf = key;
            let bad = Bad {
                class: "no_key",
                field: None,
                message: format!(
                    "table {} has no primary key: upsert output needs one (records of keyless tables cannot be compacted)",
                    route.label
                ),
            };
            let m = self.held_index(&meta.topic, meta.partition, meta.offset);
            return self.row_bad_record(route.on_bad_record, m, &route, &bad, meta);
        }
        let store_key = row_key(&route.label, &key);
        let result = match meta.kind {
            ChangeKind::Delete => {
                let new_key = other_store_key(batch, row, &plan, &route.label);
                let mut overlay = std::mem::take(&mut self.open_mut().overlay);
                let staged = stage_delete(&self.store, &mut overlay, store_key, new_key);
                self.open_mut().overlay = overlay;
                staged?;
                if route.emit_delete {
                    self.send_output(&route, &key, None, batch, row)?;
                } else {
                    self.metrics
                        .skipped_records
                        .with_label_values(&[&route.label, "op_filter"])
                        .inc();
                }
                Ok(Flushed::Done)
            }
            ChangeKind::Upsert => {
                if let Err(e) = &plan.filter {
                    let bad = Bad {
                        class: "filter",
                        field: None,
                        message: e.clone(),
                    };
                    let m = self.held_index(&meta.topic, meta.partition, meta.offset);
                    self.key_buf = key;
                    return self.row_bad_record(route.on_bad_record, m, &route, &bad, meta);
                }
                self.emit_upsert(batch, row, &route, &plan, &key, store_key)
            }
        };
        self.key_buf = key;
        result
    }

    fn emit_upsert(
        &mut self,
        batch: &ChangeBatch,
        row: usize,
        route: &Arc<Route>,
        plan: &crate::route::Plan,
        key: &str,
        store_key: Vec<u8>,
    ) -> Result<Flushed, PipelineError> {
        let meta = &batch.meta[row];
        let prev = if batch.unchanged(row).is_empty() {
            None
        } else {
            let old_key = other_store_key(batch, row, plan, &route.label);
            previous_entry(
                &self.store,
                self.open.as_ref().map(|o| &o.overlay),
                &store_key,
                old_key.as_deref(),
            )?
        };
        let mut value = std::mem::take(&mut self.value_buf);
        value.clear();
        let rendered = push_row(
            batch,
            row,
            plan,
            prev.as_ref(),
            &self.meta_columns,
            &mut value,
        );
        if rendered.fills > 0 {
            self.metrics
                .toast_fills
                .with_label_values(&[&route.label])
                .inc_by(rendered.fills as u64);
        }
        if !rendered.missing.is_empty() {
            let policy = route.on_toast_missing;
            let policy_name = match policy {
                ToastPolicy::Fail => "fail",
                ToastPolicy::DeadLetter => "dead_letter",
                ToastPolicy::EmitWithoutColumn => "emit_without_column",
            };
            self.metrics
                .toast_misses
                .with_label_values(&[&route.label, policy_name])
                .inc_by(rendered.missing.len() as u64);
            match policy {
                ToastPolicy::EmitWithoutColumn => {}
                ToastPolicy::DeadLetter => {
                    self.value_buf = value;
                    let bad = Bad {
                        class: "toast_missing",
                        field: Some(&rendered.missing[0]),
                        message: format!(
                            "TOAST-unchanged column(s) {} of key {key}: last value never seen",
                            rendered.missing.join(", ")
                        ),
                    };
                    let m = self.held_index(&meta.topic, meta.partition, meta.offset);
                    return self.row_dead_letter(m, route, &bad);
                }
                ToastPolicy::Fail => {
                    self.value_buf = value;
                    self.poison
                        .insert((meta.topic.to_string(), meta.partition, meta.offset));
                    return Ok(Flushed::Rewind);
                }
            }
        }
        // Whether the key was seen before, for the tombstone of a row that stops matching;
        // looked up before this row's entry is staged (only tables with a filter pay for it).
        let filtered_table = matches!(&plan.filter, Ok(f) if !f.is_empty());
        let seen_before = filtered_table && (prev.is_some() || self.lookup(&store_key)?.is_some());
        // The state keeps the row even when the filter drops it: a later change of the key may
        // pass and need its TOAST values.
        self.open_mut()
            .overlay
            .insert(store_key, Some(rendered.entry));
        let passes = match &plan.filter {
            Ok(f) if !f.is_empty() => {
                let mut scratch = std::mem::take(&mut self.filter_buf);
                let ok = row_passes(batch, row, f, prev.as_ref(), &mut scratch);
                self.filter_buf = scratch;
                ok
            }
            _ => true,
        };
        let res = if !passes {
            self.metrics
                .filtered_records
                .with_label_values(&[&route.label])
                .inc();
            // A key seen before may have been written while it matched: a tombstone keeps the
            // topic equal to the rows that match now (redundant ones are no-ops for readers).
            if seen_before && route.emit_delete {
                self.send_output(route, key, None, batch, row)
            } else {
                Ok(())
            }
        } else if route.emit_upsert {
            self.send_output(route, key, Some(&value), batch, row)
        } else {
            self.metrics
                .skipped_records
                .with_label_values(&[&route.label, "op_filter"])
                .inc();
            Ok(())
        };
        self.value_buf = value;
        res.map(|()| Flushed::Done)
    }

    /// Bad-record policy for a row found bad at render time.
    fn row_bad_record(
        &mut self,
        policy: BadRecordPolicy,
        m: Option<usize>,
        route: &Arc<Route>,
        bad: &Bad<'_>,
        meta: &decant_decode::RowMeta,
    ) -> Result<Flushed, PipelineError> {
        match policy {
            BadRecordPolicy::Skip => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, bad.class])
                    .inc();
                Ok(Flushed::Done)
            }
            BadRecordPolicy::DeadLetter => self.row_dead_letter(m, route, bad),
            BadRecordPolicy::Fail => {
                self.poison
                    .insert((meta.topic.to_string(), meta.partition, meta.offset));
                Ok(Flushed::Rewind)
            }
        }
    }

    /// Dead-letters the held source message at `idx` of a row found bad at render time.
    fn row_dead_letter(
        &mut self,
        idx: Option<usize>,
        route: &Arc<Route>,
        bad: &Bad<'_>,
    ) -> Result<Flushed, PipelineError> {
        let held = std::mem::take(&mut self.held);
        let res = self.dead_letter(
            idx.map(|i| &held[i]),
            &route.label.clone(),
            Some(route),
            bad,
        );
        self.held = held;
        res.map(|()| Flushed::Done)
    }

    /// The previous TOAST entry of a key: this transaction's change, else the store.
    fn lookup(&self, store_key: &[u8]) -> Result<Option<ToastEntry>, PipelineError> {
        if let Some(open) = &self.open
            && let Some(v) = open.overlay.get(store_key)
        {
            return Ok(v.as_deref().map(ToastEntry::decode));
        }
        Ok(self
            .store
            .get(store_key)?
            .as_deref()
            .map(ToastEntry::decode))
    }

    fn send_output(
        &mut self,
        route: &Route,
        key: &str,
        value: Option<&str>,
        batch: &ChangeBatch,
        row: usize,
    ) -> Result<(), PipelineError> {
        let meta = &batch.meta[row];
        let op = if value.is_some() { "upsert" } else { "delete" };
        let headers = if self.cfg.output.provenance_headers {
            let mut h = with_provenance(
                OwnedHeaders::new_with_capacity(6),
                &meta.topic,
                meta.partition,
                meta.offset,
                &self.txn_label,
            )
            .insert(KHeader {
                key: "decant.op",
                value: Some(op),
            });
            if let Some(lsn) = meta.position.lsn {
                let lsn = lsn.to_string();
                h = h.insert(KHeader {
                    key: "decant.lsn",
                    value: Some(lsn.as_str()),
                });
            }
            Some(h)
        } else {
            None
        };
        self.producer.send(
            &route.topic,
            Some(key.as_bytes()),
            value.map(str::as_bytes),
            headers,
        )?;
        self.metrics
            .output_records
            .with_label_values(&[&route.label, op])
            .inc();
        if let Some(ts) = meta.position.ts_ms {
            let lag_ms = now_ms() as i64 - ts;
            if lag_ms >= 0 {
                self.metrics.source_latency.observe(lag_ms as f64 / 1000.0);
            }
        }
        self.summary.records_out += 1;
        Ok(())
    }

    /// A Debezium truncate: everything decoded before it is rendered first, then the policy.
    fn truncate(
        &mut self,
        c: &ControlRecord,
        m: &BorrowedMessage<'c>,
    ) -> Result<(), PipelineError> {
        if let Flushed::Rewind = self.flush()? {
            return self.rewind("poison", None);
        }
        let Some(table) = &c.table else {
            let bad = Bad {
                class: "truncate",
                field: None,
                message: "truncate of an unknown table".into(),
            };
            return self.bad_record(self.cfg.defaults.on_bad_record, m, "unknown", None, &bad);
        };
        let route = self.route(table, &c.coords.topic)?;
        match route.on_truncate {
            TruncatePolicy::Skip => {
                tracing::warn!(table = %route.label, "truncate skipped (on_truncate = skip)");
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, "truncate"])
                    .inc();
            }
            TruncatePolicy::DeadLetter => {
                let bad = Bad {
                    class: "truncate",
                    field: None,
                    message: format!("truncate of {}", route.label),
                };
                self.dead_letter(Some(m), &route.label.clone(), Some(&route), &bad)?;
            }
            TruncatePolicy::Fail => {
                self.quarantine_at(
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    &route.label.clone(),
                    "truncate under on_truncate = fail",
                );
            }
            TruncatePolicy::TombstoneAll => {
                let mut prefix = route.label.as_bytes().to_vec();
                prefix.push(0);
                let mut keys: BTreeSet<Vec<u8>> =
                    self.store.keys_of(&route.label)?.into_iter().collect();
                if let Some(open) = &self.open {
                    for (k, v) in &open.overlay {
                        if k.starts_with(&prefix) {
                            if v.is_some() {
                                keys.insert(k.clone());
                            } else {
                                keys.remove(k);
                            }
                        }
                    }
                }
                let n = keys.len();
                let partition = m.partition().to_string();
                let offset = m.offset().to_string();
                for k in keys {
                    let out_key = &k[prefix.len()..];
                    let h = OwnedHeaders::new_with_capacity(4)
                        .insert(KHeader {
                            key: "decant.source.topic",
                            value: Some(m.topic()),
                        })
                        .insert(KHeader {
                            key: "decant.source.partition",
                            value: Some(partition.as_str()),
                        })
                        .insert(KHeader {
                            key: "decant.source.offset",
                            value: Some(offset.as_str()),
                        })
                        .insert(KHeader {
                            key: "decant.op",
                            value: Some("truncate"),
                        })
                        .insert(KHeader {
                            key: "decant.txn",
                            value: Some(self.txn_label.as_str()),
                        });
                    self.producer
                        .send(&route.topic, Some(out_key), None, Some(h))?;
                    self.open_mut().overlay.insert(k, None);
                    self.metrics
                        .output_records
                        .with_label_values(&[&route.label, "delete"])
                        .inc();
                }
                tracing::warn!(table = %route.label, tombstones = n, "truncate: tombstoned every known key");
            }
        }
        Ok(())
    }

    /// Commits the open transaction (or, at least once, the offsets).
    fn commit(&mut self) -> Result<(), PipelineError> {
        if let Flushed::Rewind = self.flush()? {
            return self.rewind("poison", None);
        }
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &open.offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| decant_kafka::Error::kafka("building the offset list", e))?;
        }
        let started = Instant::now();
        if self.exactly_once {
            self.store.stage(&open.overlay, &open.offsets)?;
            if tpl.count() > 0 {
                let group = self.consumer.group_metadata().ok_or_else(|| {
                    PipelineError::Config("the consumer has no group metadata".into())
                })?;
                self.producer.send_offsets(&tpl, &group)?;
            }
            let producer = self.producer.clone();
            retry("committing the transaction", self.request_timeout, || {
                producer.commit()
            })?;
        } else {
            self.producer.flush()?;
            self.store.stage(&open.overlay, &open.offsets)?;
            if tpl.count() > 0 {
                self.consumer
                    .commit(&tpl, CommitMode::Sync)
                    .map_err(|e| decant_kafka::Error::kafka("committing offsets", e))?;
            }
        }
        self.hooks.txn_open.store(false, Ordering::SeqCst);
        self.metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .transactions
            .with_label_values(&["committed"])
            .inc();
        tracing::debug!(
            txn = %self.txn_label,
            records = open.records,
            partitions = open.offsets.len(),
            "transaction committed"
        );
        self.store.apply_pending()?;
        let written = open.overlay.len();
        self.open = None;
        self.summary.commits += 1;
        self.rewinds_in_a_row = 0;
        if written > 0 {
            self.metrics.state_keys.set(self.store.len()? as i64);
        }
        Ok(())
    }

    /// Aborts whatever is open without rewinding (shutdown and fatal paths).
    fn abort_open(&mut self) {
        if self.hooks.txn_open.swap(false, Ordering::SeqCst) {
            if self.exactly_once {
                match self.producer.abort() {
                    Ok(()) => self
                        .metrics
                        .transactions
                        .with_label_values(&["aborted"])
                        .inc(),
                    Err(e) => tracing::warn!(error = %chain(&e), "aborting the transaction"),
                }
            } else {
                self.producer.purge();
            }
        }
        let _ = self.decoder.take_batches();
        self.held.clear();
        self.open = None;
    }

    /// Drops decoded and uncommitted state after the rebalance callback aborted it.
    fn after_revoke(&mut self) {
        let _ = self.decoder.take_batches();
        self.held.clear();
        self.open = None;
        self.quarantine.clear();
        self.metrics.quarantined_partitions.set(0);
        self.metrics.rewinds.with_label_values(&["revoked"]).inc();
        self.summary.rewinds += 1;
    }

    /// Aborts the open transaction and re-reads every assigned partition from its committed
    /// offset.
    fn rewind(&mut self, reason: &str, cause: Option<PipelineError>) -> Result<(), PipelineError> {
        self.rewinds_in_a_row += 1;
        self.summary.rewinds += 1;
        self.metrics.rewinds.with_label_values(&[reason]).inc();
        if self.rewinds_in_a_row > self.cfg.delivery.max_consecutive_rewinds {
            let last = cause
                .unwrap_or_else(|| PipelineError::Config(format!("repeated rewinds ({reason})")));
            return Err(PipelineError::TooManyRewinds {
                count: self.rewinds_in_a_row - 1,
                last: Box::new(last),
            });
        }
        self.abort_open();
        // A commit whose answer was lost may have gone through: settle the staged state first.
        self.resolve_pending()?;
        for (t, p) in self.quarantine.keys() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(t, *p);
            let _ = self.consumer.resume(&tpl);
        }
        self.quarantine.clear();
        self.metrics.quarantined_partitions.set(0);
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| decant_kafka::Error::kafka("reading the assignment", e))?;
        let parts: Vec<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if parts.is_empty() {
            return Ok(());
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
        tracing::info!(
            reason,
            partitions = parts.len(),
            "rewound to the committed offsets"
        );
        Ok(())
    }

    /// Applies or discards state staged by a commit whose outcome is unknown, by comparing its
    /// offsets with the group's committed offsets.
    fn resolve_pending(&mut self) -> Result<(), PipelineError> {
        if !self.store.has_pending()? {
            return Ok(());
        }
        let pending = self.store.pending_offsets()?;
        if pending.is_empty() {
            return self.store.discard_pending();
        }
        let parts: Vec<(String, i32)> = pending.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let committed = consumer::committed(self.consumer, &parts, self.request_timeout)?;
        let committed: HashMap<(String, i32), Option<i64>> = committed.into_iter().collect();
        let went_through = pending.iter().all(|(t, p, o)| {
            committed
                .get(&(t.clone(), *p))
                .copied()
                .flatten()
                .is_some_and(|c| c >= *o)
        });
        if went_through {
            tracing::info!(
                partitions = pending.len(),
                "staged state of a committed transaction applied"
            );
            self.store.apply_pending()
        } else {
            tracing::info!(
                partitions = pending.len(),
                "staged state of an unfinished transaction discarded"
            );
            self.store.discard_pending()
        }
    }
}

/// Appends the headers every decant output and dead letter carries: where the source record is
/// (`decant.source.topic/partition/offset`) and which transaction wrote it (`decant.txn`).
fn with_provenance(
    h: OwnedHeaders,
    topic: &str,
    partition: i32,
    offset: i64,
    txn: &str,
) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    h.insert(KHeader {
        key: "decant.source.topic",
        value: Some(topic),
    })
    .insert(KHeader {
        key: "decant.source.partition",
        value: Some(partition.as_str()),
    })
    .insert(KHeader {
        key: "decant.source.offset",
        value: Some(offset.as_str()),
    })
    .insert(KHeader {
        key: "decant.txn",
        value: Some(txn),
    })
}
