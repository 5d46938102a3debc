//! The one loop: consume → decode → route and render → sink → commit → apply staged state,
//! generic over the [`Sink`] (static dispatch) and the [`Source`]. Per-row work is in
//! `rows`, bad records in `triage`, the durability protocol in `durable`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use decant_decode::{Decoder, Outcome};
use decant_kafka::KafkaConfig;
use decant_kafka::TopicSpec;
use decant_model::sink::{BatchStats, Destination, Offsets, Resume, TopicPartition};
use decant_model::{ChangeKind, ControlEvent, KafkaRecord, RetryClass, Sink, TableId};
use prometheus::IntCounter;

use crate::config::PipelineConfig;
use crate::error::PipelineError;
use crate::metrics::Metrics;
use crate::observe::{Health, now_ms};
use crate::render::MetaColumn;
use crate::route::{Route, Router, meta_columns};
use crate::source::{Hooks, KafkaSource, Record, Source};
use crate::state::{Overlay, StateStore};
use crate::triage::{DeadLetterQueue, Refused, count_control, refused};

/// The dependency label of the schema registry in `decant_waiting` and
/// `decant_dependency_retries_total`.
const REGISTRY: &str = "schema_registry";

/// What the process shares with the loop.
pub struct Runtime {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Set by SIGTERM/SIGINT: finish the open batch and return.
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

/// The open batch: everything consumed since the last commit.
pub(crate) struct Batch {
    pub(crate) started: Instant,
    pub(crate) records: u64,
    /// Next offset to commit per source partition this batch read from.
    pub(crate) offsets: Vec<(String, i32, i64)>,
    /// State-store changes made by this batch.
    pub(crate) overlay: Overlay,
}

impl Batch {
    /// The batch's next offset of a partition, entered at `first` when it is new.
    fn next_offset(&mut self, topic: &str, partition: i32, first: i64) -> &mut i64 {
        let i = match self
            .offsets
            .iter()
            .position(|(t, p, _)| *p == partition && t == topic)
        {
            Some(i) => i,
            None => {
                self.offsets.push((topic.to_owned(), partition, first));
                self.offsets.len() - 1
            }
        };
        &mut self.offsets[i].2
    }

    fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        *self.next_offset(topic, partition, next) = next;
    }

    pub(crate) fn hold_back(&mut self, topic: &str, partition: i32, offset: i64) {
        let next = self.next_offset(topic, partition, offset);
        *next = (*next).min(offset);
    }

    pub(crate) fn offsets_map(&self) -> Offsets {
        self.offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect()
    }
}

/// A topic's current route with its `decant_input_records_total` counters, looked up once per
/// route rather than by label for every record.
pub(crate) struct TopicRoute {
    pub(crate) route: Arc<Route>,
    upserts: IntCounter,
    deletes: IntCounter,
}

impl TopicRoute {
    fn count(&self, kind: ChangeKind) {
        match kind {
            ChangeKind::Upsert => self.upserts.inc(),
            ChangeKind::Delete => self.deletes.inc(),
        }
    }
}

/// The loop's state.
pub(crate) struct Flow<'c, S: Sink, Src: Source> {
    pub(crate) cfg: &'c PipelineConfig,
    pub(crate) sink: S,
    pub(crate) source: Src,
    /// The sink keeps its own progress ([`Resume::Own`]).
    pub(crate) own: bool,
    pub(crate) store: StateStore,
    pub(crate) router: Router,
    pub(crate) decoder: Decoder,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    shutdown: Arc<AtomicBool>,
    pub(crate) meta_columns: Vec<MetaColumn>,
    pub(crate) dead_letters: DeadLetterQueue,
    pub(crate) batch: Option<Batch>,
    /// Next offset per assigned partition as of the last commit (the open batch's offsets are
    /// merged in at commit); own mode records all of them in every commit.
    pub(crate) position: Offsets,
    /// Records whose rows are in the decoder's open batches (for dead-lettering at render).
    pub(crate) held: Vec<Src::Msg>,
    /// The route of the table last seen on each source topic (bad records get its policy).
    pub(crate) topic_routes: HashMap<String, TopicRoute>,
    /// Quarantined source partitions and the offset they stopped at.
    pub(crate) quarantine: HashMap<TopicPartition, i64>,
    pub(crate) rewinds_in_a_row: u32,
    pub(crate) key_buf: String,
    pub(crate) value_buf: String,
    /// Scratch for rendering `where` predicate columns.
    pub(crate) filter_buf: String,
    /// Reused for each JSON row's `Change::null_documents`.
    pub(crate) null_documents_buf: Vec<usize>,
    pub(crate) summary: Summary,
    /// Id of the decoded batch whose rows are being emitted ([`decant_model::sink::TypedRow`]).
    pub(crate) decoded_id: u64,
    /// Decoded batches handed over so far.
    decoded_count: u64,
    /// This process's id in `decant.txn` headers (`<pid>-<start ms>`).
    run_id: String,
    /// `decant.txn` of the open batch: `<run_id>:<sequence>`.
    pub(crate) batch_label: String,
    batch_seq: u64,
    /// (keys, arena bytes) of the last committed batch's overlay: the next batch's starts that large
    /// rather than growing (and rehashing) its way there.
    pub(crate) overlay_hint: (usize, usize),
    last_idle: Instant,
}

/// Runs `sink` until `rt.shutdown` is set (returns after committing the open batch) or a
/// fatal error.
pub fn run<S: Sink>(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    decoder: Decoder,
    mut sink: S,
    rt: &Runtime,
) -> Result<Summary, PipelineError> {
    if let Some(dlq) = &cfg.dead_letter.topic {
        decant_kafka::Admin::create(kafka)?.ensure(
            &TopicSpec {
                name: dlq.clone(),
                partitions: cfg.dead_letter.partitions,
                replication_factor: cfg.output.replication_factor,
                compacted: false,
            },
            cfg.output.create_topics,
        )?;
    }
    let resume = sink.resume()?;
    let hooks = Arc::new(Hooks::new(
        sink.revocation_handle(),
        matches!(resume, Resume::Own(_)),
        rt.metrics.clone(),
    ));
    let consumer = decant_kafka::consumer::create(kafka, hooks.clone())?;
    let source = KafkaSource::new(
        &consumer,
        hooks,
        cfg.source.clone(),
        kafka.request_timeout(),
    );
    let dead_letters =
        DeadLetterQueue::new(Some(kafka.clone()), cfg.delivery.transaction_timeout_ms);
    let result = run_with(cfg, decoder, sink, source, dead_letters, resume, rt);
    // Leaving the group revokes (nothing is open any more) and commits nothing on its own.
    decant_kafka::rdkafka::consumer::Consumer::unsubscribe(&consumer);
    result
}

/// The loop over any source; `run` wires the real one.
pub(crate) fn run_with<S: Sink, Src: Source>(
    cfg: &PipelineConfig,
    decoder: Decoder,
    sink: S,
    source: Src,
    dead_letters: DeadLetterQueue,
    resume: Resume,
    rt: &Runtime,
) -> Result<Summary, PipelineError> {
    let mut w = Flow::open(cfg, decoder, sink, source, dead_letters, resume, rt)?;
    tracing::info!(sink = w.sink.name(), "decant run started");
    rt.health.set_ready(true);
    let result = w.run_loop(rt);
    rt.health.set_ready(false);
    if result.is_err() {
        rt.health.set_failed();
    }
    result.map(|()| w.summary.clone())
}

impl<'c, S: Sink, Src: Source> Flow<'c, S, Src> {
    /// Settles what an earlier run left staged, opens the configured tables' destinations and
    /// starts the source.
    pub(crate) fn open(
        cfg: &'c PipelineConfig,
        decoder: Decoder,
        sink: S,
        source: Src,
        dead_letters: DeadLetterQueue,
        resume: Resume,
        rt: &Runtime,
    ) -> Result<Self, PipelineError> {
        let metrics = rt.metrics.clone();
        let store = StateStore::open_with_cache(&cfg.state.dir, cfg.state.cache_mib << 20)?
            .with_deleted_retention(cfg.state.deleted_retention_secs);
        metrics.state_keys.set(store.len()? as i64);
        let mut w = Flow {
            cfg,
            sink,
            source,
            own: matches!(resume, Resume::Own(_)),
            store,
            router: Router::new(cfg),
            decoder,
            metrics,
            health: rt.health.clone(),
            shutdown: rt.shutdown.clone(),
            meta_columns: meta_columns(cfg),
            dead_letters,
            batch: None,
            position: Offsets::new(),
            held: Vec::new(),
            topic_routes: HashMap::new(),
            quarantine: HashMap::new(),
            rewinds_in_a_row: 0,
            key_buf: String::new(),
            value_buf: String::new(),
            filter_buf: String::new(),
            null_documents_buf: Vec::new(),
            summary: Summary::default(),
            decoded_id: 0,
            decoded_count: 0,
            run_id: format!("{}-{}", std::process::id(), now_ms()),
            batch_label: String::new(),
            batch_seq: 0,
            overlay_hint: (0, 0),
            last_idle: Instant::now(),
        };
        w.resolve_pending()?;
        if !cfg.output.topic_template.contains("{topic}") {
            for table in w.router.configured_tables() {
                w.route(&table, "")?;
            }
        }
        let assigned = w.source.start(&resume)?;
        w.position.extend(assigned);
        Ok(w)
    }

    fn run_loop(&mut self, rt: &Runtime) -> Result<(), PipelineError> {
        loop {
            rt.health.turn();
            if rt.shutdown.load(Ordering::SeqCst) {
                break;
            }
            self.turn()?;
        }
        tracing::info!("shutting down: committing the open batch");
        if self.batch.is_some()
            && let Err(e) = self.commit()
        {
            tracing::warn!(error = %crate::error::chain(&e), "final commit failed; aborting");
            self.abort_open();
            return Err(e);
        }
        tracing::info!(
            records_in = self.summary.records_in,
            records_out = self.summary.records_out,
            commits = self.summary.commits,
            "stopped"
        );
        Ok(())
    }

    /// One turn of the loop: poll one record and process it, commit when due, let idle
    /// destinations record progress.
    pub(crate) fn turn(&mut self) -> Result<(), PipelineError> {
        let added = self.source.maintain()?;
        self.position.extend(added);
        let polled = self.source.poll(Duration::from_millis(100));
        if self.source.take_revoked() {
            self.after_revoke();
        }
        let step = match polled {
            None => Ok(()),
            Some(Err(e)) => Err(e),
            Some(Ok(m)) => self.process(m),
        };
        self.settle(step)?;
        let due = self.batch.as_ref().is_some_and(|b| {
            b.overlay.held_bytes() as u64 >= self.cfg.state.batch_max_mib << 20
                || self.sink.commit_due(&BatchStats {
                    age: b.started.elapsed(),
                    records: b.records,
                })
        });
        if due {
            let step = self.commit();
            self.settle(step)?;
        } else if self.batch.is_none()
            && self.own
            && self.last_idle.elapsed() >= Duration::from_secs(1)
        {
            // Nothing consumed since the last commit: the position is all committed, and
            // destinations without changes can record it.
            self.last_idle = Instant::now();
            self.dead_letters.flush()?;
            self.sink.idle(&self.position)?;
        }
        Ok(())
    }

    /// Opens a batch if none is open.
    fn begin_if_needed(&mut self) -> Result<(), PipelineError> {
        if self.batch.is_some() {
            return Ok(());
        }
        self.sink.begin()?;
        self.batch_seq += 1;
        self.batch_label = format!("{}:{}", self.run_id, self.batch_seq);
        self.batch = Some(Batch {
            started: Instant::now(),
            records: 0,
            offsets: Vec::new(),
            overlay: Overlay::with_capacity(self.overlay_hint),
        });
        Ok(())
    }

    fn process(&mut self, m: Src::Msg) -> Result<(), PipelineError> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if self.is_quarantined(topic, partition, offset) {
            return Ok(());
        }
        self.begin_if_needed()?;
        if let Some(b) = self.batch.as_mut() {
            b.advance(topic, partition, offset + 1);
            b.records += 1;
        }
        self.summary.records_in += 1;
        let headers = m.headers();
        let rec = KafkaRecord {
            topic,
            partition,
            offset,
            timestamp_ms: m.timestamp_ms(),
            headers: &headers,
            key: m.key(),
            value: m.value(),
        };
        let mut waited = 0u32;
        let decoded = loop {
            match self.decoder.decode(&rec) {
                // The registry is down or overloaded: never a bad record. Wait and decode the
                // same record again; on shutdown, leave it uncommitted for the next run.
                Err(e) if e.retry_class() == RetryClass::Retriable => {
                    if self.shutdown.load(Ordering::SeqCst) {
                        if let Some(b) = self.batch.as_mut() {
                            b.hold_back(topic, partition, offset);
                        }
                        self.end_wait();
                        return Ok(());
                    }
                    self.wait_for_dependency(&e, waited);
                    waited += 1;
                }
                other => break other,
            }
        };
        if waited > 0 {
            self.end_wait();
        }
        match decoded {
            Ok(Outcome::Row { table, kind }) => {
                self.count_input(&table, topic, kind)?;
                drop(headers);
                self.held.push(m);
                if self.decoder.pending_rows() >= self.cfg.delivery.flush_max_rows {
                    self.flush()?;
                }
            }
            Ok(Outcome::Control(c)) => {
                count_control(&self.metrics, &c);
                if c.event == ControlEvent::Truncate {
                    drop(headers);
                    self.flush()?;
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

    /// One wait for a dependency the decoder needs (the schema registry), with backoff; the
    /// loop stays alive and says why it does not move (`/health`, `/ready`,
    /// `decant_waiting`).
    fn wait_for_dependency(&mut self, e: &decant_decode::DecodeError, attempt: u32) {
        if attempt.is_multiple_of(10) {
            tracing::warn!(error = %e, attempt, "schema registry unavailable; waiting and retrying the record (never skipped)");
        }
        self.wait_for(REGISTRY, format!("the schema registry: {e}"), attempt);
    }

    /// One backoff pause while `dependency` cannot be reached (`why` for `/health`); returns
    /// early on shutdown.
    pub(crate) fn wait_for(&mut self, dependency: &str, why: String, attempt: u32) {
        self.health.set_waiting(Some(why));
        self.metrics.waiting.with_label_values(&[dependency]).set(1);
        self.metrics
            .dependency_retries
            .with_label_values(&[dependency])
            .inc();
        let pause = Duration::from_millis(500u64 << attempt.min(6)).min(Duration::from_secs(30));
        let until = Instant::now() + pause;
        while Instant::now() < until && !self.shutdown.load(Ordering::SeqCst) {
            self.health.turn();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether SIGTERM/SIGINT asked the loop to stop.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn end_wait(&mut self) {
        self.end_wait_for(REGISTRY);
    }

    /// `dependency` answers again.
    pub(crate) fn end_wait_for(&mut self, dependency: &str) {
        self.health.set_waiting(None);
        self.metrics.waiting.with_label_values(&[dependency]).set(0);
        tracing::info!(dependency, "reachable again");
    }

    /// Hands every decoded row to the sink, in input order.
    pub(crate) fn flush(&mut self) -> Result<(), PipelineError> {
        let batches = self
            .decoder
            .take_batches()
            .map_err(PipelineError::Batches)?;
        let base = self.decoded_count;
        self.decoded_count += batches.len() as u64;
        for (b, r) in crate::triage::input_order(&batches) {
            self.decoded_id = base + b as u64;
            self.emit(&batches[b], r)?;
        }
        self.held.clear();
        Ok(())
    }

    /// Counts a decoded row of `table` from `topic`. The route (and its counters) is remembered
    /// as the last table of `topic`, so a topic of one table looks it up once.
    fn count_input(
        &mut self,
        table: &TableId,
        topic: &str,
        kind: ChangeKind,
    ) -> Result<(), PipelineError> {
        if let Some(r) = self.topic_routes.get(topic)
            && r.route.table == *table
        {
            r.count(kind);
            return Ok(());
        }
        let route = self.route(table, topic)?;
        let counter = |kind: ChangeKind| {
            self.metrics
                .input_records
                .with_label_values(&[&route.label, kind.as_str()])
        };
        let remembered = TopicRoute {
            upserts: counter(ChangeKind::Upsert),
            deletes: counter(ChangeKind::Delete),
            route,
        };
        remembered.count(kind);
        self.topic_routes.insert(topic.to_owned(), remembered);
        Ok(())
    }

    /// The route of `table`; a table seen for the first time has its destination opened.
    pub(crate) fn route(
        &mut self,
        table: &TableId,
        topic: &str,
    ) -> Result<Arc<Route>, PipelineError> {
        let (route, new) = self.router.route(table, topic);
        if new && let Err(e) = self.open_route(&route) {
            self.router.forget(table);
            return Err(e);
        }
        Ok(route)
    }

    /// A new route: a table without state drops what an earlier run kept for it, and its
    /// destination is opened.
    fn open_route(&mut self, route: &Route) -> Result<(), PipelineError> {
        if !route.keep_state {
            let dropped = self.store.forget_table(&route.label)?;
            if dropped > 0 {
                tracing::info!(
                    table = %route.label,
                    keys = dropped,
                    "keep_state = false: dropped the state an earlier run kept for the table"
                );
            }
        }
        Ok(self.sink.open_destination(destination(route))?)
    }
}

/// The sink's view of a route.
pub(crate) fn destination(route: &Route) -> Destination<'_> {
    Destination {
        table: &route.table,
        label: &route.label,
        topic: &route.topic,
    }
}
