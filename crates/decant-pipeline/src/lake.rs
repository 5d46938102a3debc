//! The Iceberg loop: consume → decode → render → reduce per key → commit one snapshot per
//! table per batch, with the consumed offsets in that snapshot. The tables are the source of
//! truth for progress: on start every source partition is read from the smallest offset any
//! table of the pipeline still needs, and a record a table already holds is skipped for that
//! table. Kafka group offsets are committed afterwards, for lag dashboards only.
//!
//! A batch: rows are rendered exactly like the Kafka sink's values (projection, renames, TOAST
//! fills, `where`, metadata columns) and reduced to the last state per key; at commit each table
//! gets equality deletes for every key the batch touched plus the final rows. Every table of the
//! batch is created/evolved/claimed first, then the TOAST state changes are staged with the
//! batch's commit id, then each table commits; state changes are applied only for tables whose
//! snapshot holds that commit id (checked again after a crash).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use decant_decode::{ChangeBatch, ControlRecord, Decoder, DecoderConfig, Outcome};
use decant_iceberg::{
    CommitOutcome, IcebergError, Lake, LakeConfig, LakeTable, TableDelta, TableLayout,
};
use decant_kafka::consumer::{self, SourceConsumer};
use decant_kafka::rdkafka::consumer::{CommitMode, Consumer};
use decant_kafka::rdkafka::message::{BorrowedMessage, Message};
use decant_kafka::rdkafka::{Offset, TopicPartitionList};
use decant_kafka::{Disposition, KafkaConfig, PartitionLag, SinkProducer, SourceHooks, classify};
use decant_model::{ChangeKind, ColumnType, ControlEvent, KafkaRecord, TableId};
use serde_json::{Map, Value};

use crate::arrow_rows::{batch_from_rows, parse_row};
use crate::config::{BadRecordPolicy, PipelineConfig, ToastPolicy, TruncatePolicy};
use crate::error::{PipelineError, chain};
use crate::metrics::Metrics;
use crate::render::{MetaColumn, other_store_key, push_key, push_row, row_passes};
use crate::route::{Plan, Route, Router};
use crate::run::{
    Bad, Refused, Runtime, Summary, count_control, dead_letter_headers, input_order, kafka_headers,
    refused,
};
use crate::state::{Overlay, StateStore, ToastEntry, previous_entry, row_key, stage_delete};

/// Pseudo topic under which a staged batch's commit id is kept in the state store.
const COMMIT_TAG: &str = "decant.iceberg-commit/";
/// How often new topics / partitions of the source are looked for.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Lag callbacks only: partitions are assigned by decant, not by the group.
struct LagHooks {
    metrics: Arc<Metrics>,
}

impl SourceHooks for LagHooks {
    fn revoking(&self, _partitions: &[(String, i32)]) {}
    fn assigned(&self, _partitions: &[(String, i32)]) {}
    fn lag(&self, lags: Vec<PartitionLag>) {
        for l in lags {
            if l.lag >= 0 {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&l.topic, &l.partition.to_string()])
                    .set(l.lag);
            }
        }
    }
}

/// A destination table this process writes.
struct Dest {
    table: LakeTable,
    /// Next offset per source partition that the table already holds.
    progress: BTreeMap<(String, i32), i64>,
    /// When this process last committed to the table (or loaded it).
    last_commit: Instant,
}

/// The batch's changes for one destination.
struct Pending {
    ns: String,
    name: String,
    /// `None`: only deletes of an existing table (a truncate before any row of this run).
    layout: Option<TableLayout>,
    /// Key JSON → final value JSON (`None`: deleted).
    rows: HashMap<String, Option<String>>,
}

struct Worker<'c> {
    cfg: &'c PipelineConfig,
    consumer: &'c SourceConsumer,
    lake: Lake,
    store: StateStore,
    router: Router,
    decoder: Decoder,
    metrics: Arc<Metrics>,
    meta_columns: Vec<MetaColumn>,
    dead_letters: Option<SinkProducer>,
    /// Destination tables by `ns.name`.
    dests: HashMap<String, Dest>,
    /// Tables stopped by an incompatible schema change (why); their rows wait for a restart.
    stopped: HashMap<String, String>,
    pending: HashMap<String, Pending>,
    overlay: Overlay,
    /// Next offset to read per assigned partition.
    position: BTreeMap<(String, i32), i64>,
    batch_started: Option<Instant>,
    batch_rows: u64,
    batch_bytes: u64,
    held: Vec<BorrowedMessage<'c>>,
    quarantine: HashMap<(String, i32), i64>,
    topic_routes: HashMap<String, Arc<Route>>,
    key_buf: String,
    value_buf: String,
    filter_buf: String,
    summary: Summary,
    last_discovery: Instant,
    last_quiet_check: Instant,
}

/// Runs the Iceberg sink until `rt.shutdown` is set (returns after a last commit) or a fatal
/// error (a fenced writer stops with [`PipelineError::Iceberg`]).
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
    let ic = &cfg.iceberg;
    let pipeline = ic
        .pipeline
        .clone()
        .unwrap_or_else(|| kafka.group_id.clone());
    let lake = Lake::open(LakeConfig {
        catalog_uri: ic.catalog_uri.clone(),
        catalog_name: ic.catalog_name.clone(),
        warehouse: ic.warehouse.clone(),
        pipeline: pipeline.clone(),
        target_file_size_bytes: ic.target_file_size_bytes as usize,
        table_properties: ic.table_properties.clone().into_iter().collect(),
        storage_properties: ic.storage.clone().into_iter().collect(),
        catalog_properties: ic.catalog_properties.clone().into_iter().collect(),
    })
    .map_err(lake_err)?;
    let dead_letters = match &cfg.dead_letter.topic {
        Some(_) => Some(SinkProducer::create(
            kafka,
            None,
            cfg.delivery.transaction_timeout_ms,
        )?),
        None => None,
    };
    let consumer = consumer::create(
        kafka,
        Arc::new(LagHooks {
            metrics: rt.metrics.clone(),
        }),
    )?;
    let mut w = Worker {
        cfg,
        consumer: &consumer,
        lake,
        store,
        router: Router::new(cfg),
        decoder,
        metrics: rt.metrics.clone(),
        meta_columns: cfg
            .output
            .metadata_columns
            .iter()
            .filter_map(|m| MetaColumn::parse(m))
            .collect(),
        dead_letters,
        dests: HashMap::new(),
        stopped: HashMap::new(),
        pending: HashMap::new(),
        overlay: Overlay::new(),
        position: BTreeMap::new(),
        batch_started: None,
        batch_rows: 0,
        batch_bytes: 0,
        held: Vec::new(),
        quarantine: HashMap::new(),
        topic_routes: HashMap::new(),
        key_buf: String::new(),
        value_buf: String::new(),
        filter_buf: String::new(),
        summary: Summary::default(),
        last_discovery: Instant::now(),
        last_quiet_check: Instant::now(),
    };
    w.load_progress()?;
    w.resolve_pending()?;
    w.discover()?;
    tracing::info!(
        pipeline = %pipeline,
        epoch = w.lake.epoch(),
        tables = w.dests.len(),
        partitions = w.position.len(),
        "decant run (iceberg) started"
    );
    rt.health.set_ready(true);
    let result = w.run_loop(rt);
    rt.health.set_ready(false);
    if result.is_err() {
        rt.health.set_failed();
    }
    let summary = w.summary.clone();
    drop(w);
    result.map(|()| summary)
}

fn lake_err(e: IcebergError) -> PipelineError {
    PipelineError::Iceberg(e)
}

impl<'c> Worker<'c> {
    /// Claims every table of this pipeline for this writer (an older process still running
    /// can no longer commit to any of them), then reads their progress.
    fn load_progress(&mut self) -> Result<(), PipelineError> {
        for (ns, name) in self.lake.all_pipeline_tables().map_err(lake_err)? {
            let table = self.lake.claim(&ns, &name).map_err(lake_err)?;
            let progress = table.progress(&self.lake).map_err(lake_err)?.offsets;
            self.dests.insert(
                format!("{ns}.{name}"),
                Dest {
                    table,
                    progress,
                    last_commit: Instant::now(),
                },
            );
        }
        Ok(())
    }

    /// A batch staged before a crash: apply its state changes for the tables that hold its
    /// commit, drop them for the others.
    fn resolve_pending(&mut self) -> Result<(), PipelineError> {
        let staged = self.store.pending_offsets()?;
        let Some(commit_id) = staged
            .iter()
            .find_map(|(t, _, _)| t.strip_prefix(COMMIT_TAG).map(str::to_owned))
        else {
            if self.store.has_pending()? {
                self.store.discard_pending()?;
            }
            return Ok(());
        };
        // Every table of the pipeline was claimed and loaded by `load_progress`.
        let committed: HashSet<String> = self
            .dests
            .iter()
            .filter(|(_, d)| {
                decant_iceberg::Progress::contains_commit(
                    d.table.table().metadata(),
                    self.lake.pipeline(),
                    &commit_id,
                )
            })
            .map(|(label, _)| label.clone())
            .collect();
        let keys = self.store.pending_keys()?;
        self.resolve_staged(keys.iter().map(Vec::as_slice), |dest| {
            committed.contains(dest)
        })?;
        tracing::info!(
            commit_id,
            tables = committed.len(),
            "resolved the state of a batch staged before a restart"
        );
        Ok(())
    }

    /// Applies the staged state changes of the source tables whose destination `committed`
    /// accepts (`ns.name`) and drops the others. State keys are `source label \0 key`.
    fn resolve_staged<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        committed: impl Fn(&str) -> bool,
    ) -> Result<(), PipelineError> {
        let label_of = |k: &[u8]| k.iter().position(|&b| b == 0).unwrap_or(k.len());
        let mut apply: HashMap<Vec<u8>, bool> = HashMap::new();
        for k in keys {
            let label = &k[..label_of(k)];
            if !apply.contains_key(label) {
                let source = TableId::parse(&String::from_utf8_lossy(label));
                let (ns, name) = self.destination(&source);
                apply.insert(label.to_vec(), committed(&format!("{ns}.{name}")));
            }
        }
        self.store
            .resolve_pending_where(|k| apply.get(&k[..label_of(k)]).copied().unwrap_or(false))
    }

    /// Destination namespace and table of a source table.
    fn destination(&self, table: &TableId) -> (String, String) {
        let fill = |t: &str| {
            t.replace("{schema}", &table.namespace)
                .replace("{table}", &table.name)
                .replace("{prefix}", &self.cfg.output.prefix)
        };
        let mut ns = fill(&self.cfg.iceberg.namespace);
        if ns.is_empty() {
            ns = "default".into();
        }
        (ns, fill(&self.cfg.iceberg.table))
    }

    /// Assigns every partition of the source topics not assigned yet, at the smallest offset
    /// any table of the pipeline still needs.
    fn discover(&mut self) -> Result<(), PipelineError> {
        self.last_discovery = Instant::now();
        let md = self
            .consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| decant_kafka::Error::kafka("listing topics", e))?;
        let pattern = match &self.cfg.source.topic_pattern {
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
        for t in md.topics() {
            let wanted = match &pattern {
                Some(re) => re.is_match(t.name()),
                None => self.cfg.source.topics.iter().any(|n| n == t.name()),
            };
            if !wanted || t.name().starts_with("__") {
                continue;
            }
            for p in t.partitions() {
                let tp = (t.name().to_owned(), p.id());
                if self.position.contains_key(&tp) {
                    continue;
                }
                let start = self.start_offset(&tp);
                let offset = match start {
                    Some(o) => Offset::Offset(o),
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(&tp.0, tp.1, offset)
                    .map_err(|e| decant_kafka::Error::kafka("assigning", e))?;
                self.position.insert(tp, start.unwrap_or(0));
            }
        }
        if tpl.count() > 0 {
            tracing::info!(partitions = tpl.count(), "assigning source partitions");
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| decant_kafka::Error::kafka("assigning", e))?;
            self.metrics
                .assigned_partitions
                .set(self.position.len() as i64);
        }
        Ok(())
    }

    /// The smallest next offset of `tp` over the pipeline's tables (`None`: from the start).
    fn start_offset(&self, tp: &(String, i32)) -> Option<i64> {
        let all = self.dests.values().map(|d| &d.progress);
        let mut min: Option<i64> = None;
        let mut any = false;
        for progress in all {
            any = true;
            let o = progress.get(tp)?;
            min = Some(min.map_or(*o, |m| m.min(*o)));
        }
        if any { min } else { None }
    }

    fn run_loop(&mut self, rt: &Runtime) -> Result<(), PipelineError> {
        let ic = &self.cfg.iceberg;
        let interval = Duration::from_millis(ic.commit_interval_ms);
        loop {
            rt.health.turn();
            if rt.shutdown.load(Ordering::SeqCst) {
                break;
            }
            if self.last_discovery.elapsed() >= DISCOVERY_INTERVAL {
                self.discover()?;
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => match classify(&e) {
                    Disposition::Retriable => tracing::debug!(error = %e, "consume: transient"),
                    _ => return Err(decant_kafka::Error::kafka("consuming", e).into()),
                },
                Some(Ok(m)) => self.process(m)?,
            }
            let due = self.batch_started.is_some_and(|s| {
                s.elapsed() >= interval
                    || self.batch_rows >= ic.commit_max_rows
                    || self.batch_bytes >= ic.commit_max_bytes
            });
            if due {
                self.commit()?;
            } else if self.batch_started.is_none()
                && self.last_quiet_check.elapsed() >= Duration::from_secs(1)
            {
                // Nothing consumed since the last commit: the position is all committed, and
                // quiet tables can catch up without waiting for the next batch.
                self.last_quiet_check = Instant::now();
                let offsets = self.position.clone();
                let id = uuid::Uuid::new_v4().to_string();
                self.flush_dead_letters()?;
                self.advance_quiet_tables(&id, &offsets, &HashSet::new())?;
            }
        }
        tracing::info!("shutting down: committing the open batch");
        if self.batch_started.is_some() {
            self.commit()?;
        }
        tracing::info!(
            records_in = self.summary.records_in,
            records_out = self.summary.records_out,
            commits = self.summary.commits,
            "stopped"
        );
        Ok(())
    }

    fn process(&mut self, m: BorrowedMessage<'c>) -> Result<(), PipelineError> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let tp = (topic.to_owned(), partition);
        if self.quarantine.get(&tp).is_some_and(|q| offset >= *q) {
            return Ok(());
        }
        self.position.insert(tp, offset + 1);
        self.batch_started.get_or_insert_with(Instant::now);
        self.summary.records_in += 1;
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
                self.metrics
                    .input_records
                    .with_label_values(&[&table.to_string(), kind.as_str()])
                    .inc();
                drop(headers);
                self.held.push(m);
                self.batch_rows += 1;
                if self.decoder.pending_rows() >= self.cfg.delivery.flush_max_rows {
                    self.drain_decoder()?;
                }
            }
            Ok(Outcome::Control(c)) => {
                count_control(&self.metrics, &c);
                if c.event == ControlEvent::Truncate {
                    drop(headers);
                    self.drain_decoder()?;
                    self.truncate(&c, &m)?;
                }
            }
            Err(e) => {
                let Refused {
                    label, policy, bad, ..
                } = refused(
                    &self.metrics,
                    &self.topic_routes,
                    self.cfg.defaults.on_bad_record,
                    topic,
                    &e,
                );
                drop(headers);
                self.bad_record(policy, &m, &label, &bad)?;
            }
        }
        Ok(())
    }

    /// Applies a bad-record policy to source message `m`.
    fn bad_record(
        &mut self,
        policy: BadRecordPolicy,
        m: &BorrowedMessage<'_>,
        label: &str,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        match policy {
            BadRecordPolicy::Skip => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[label, bad.class])
                    .inc();
            }
            BadRecordPolicy::DeadLetter => self.dead_letter(Some(m), label, bad)?,
            BadRecordPolicy::Fail => {
                self.quarantine_at(m.topic(), m.partition(), m.offset(), label, &bad.message)
            }
        }
        Ok(())
    }

    /// Stops a source partition at `offset` until restart; the batch commits up to it.
    fn quarantine_at(&mut self, topic: &str, partition: i32, offset: i64, label: &str, why: &str) {
        tracing::error!(
            topic,
            partition,
            offset,
            table = label,
            error = why,
            "bad record under policy fail: quarantining the source partition; other partitions keep flowing"
        );
        let tp = (topic.to_owned(), partition);
        self.position.insert(tp.clone(), offset);
        self.quarantine.insert(tp, offset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, "pausing the quarantined partition");
        }
        self.metrics
            .quarantined_partitions
            .set(self.quarantine.len() as i64);
    }

    fn dead_letter(
        &mut self,
        m: Option<&BorrowedMessage<'_>>,
        label: &str,
        bad: &Bad<'_>,
    ) -> Result<(), PipelineError> {
        let (Some(dlq), Some(producer)) =
            (self.cfg.dead_letter.topic.as_deref(), &self.dead_letters)
        else {
            return Err(PipelineError::Config(
                "a dead_letter policy applies but dead_letter.topic is not set".into(),
            ));
        };
        let h = dead_letter_headers(
            m,
            Some(label),
            bad,
            self.cfg.dead_letter.include_error_message,
            "iceberg",
        );
        producer.send(
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
        Ok(())
    }

    fn route(&mut self, table: &TableId, topic: &str) -> Arc<Route> {
        if let Some(r) = self.topic_routes.get(topic)
            && r.table == *table
        {
            return r.clone();
        }
        let (route, _) = self.router.route(table, topic);
        self.topic_routes.insert(topic.to_owned(), route.clone());
        route
    }

    /// Renders every decoded row (input order) into the batch.
    fn drain_decoder(&mut self) -> Result<(), PipelineError> {
        let batches = self
            .decoder
            .take_batches()
            .map_err(PipelineError::Batches)?;
        for (b, r) in input_order(&batches) {
            self.add_row(&batches[b], r)?;
        }
        self.held.clear();
        Ok(())
    }

    /// A row found bad while rendering: skip, dead-letter its source record, or stop.
    fn row_bad(
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
                let m = idx.and_then(|i| held.get(i));
                let res = self.dead_letter(m, &route.label, bad);
                self.held = held;
                res
            }
            BadRecordPolicy::Fail => {
                // Rows are added in input order: nothing of this partition from here on is
                // in the batch, and nothing after it will be.
                let (topic, partition, offset) =
                    (meta.topic.to_string(), meta.partition, meta.offset);
                self.quarantine_at(&topic, partition, offset, &route.label, &bad.message);
                Ok(())
            }
        }
    }

    fn add_row(&mut self, batch: &ChangeBatch, row: usize) -> Result<(), PipelineError> {
        let meta = &batch.meta[row];
        let route = self.route(&batch.schema.table, &meta.topic);
        let (ns, name) = self.destination(&batch.schema.table);
        let dest_label = format!("{ns}.{name}");
        let tp = (meta.topic.to_string(), meta.partition);
        if self.quarantine.get(&tp).is_some_and(|q| meta.offset >= *q) {
            return Ok(());
        }
        if self.stopped.contains_key(&dest_label) {
            self.metrics
                .skipped_records
                .with_label_values(&[&route.label, "table_stopped"])
                .inc();
            return Ok(());
        }
        let held_by_table = self
            .dests
            .get(&dest_label)
            .and_then(|d| d.progress.get(&tp).copied());
        if held_by_table.is_some_and(|next| meta.offset < next) {
            // Re-read after a restart: this table committed the record already.
            return Ok(());
        }
        let plan = self.router.plan(&route, &batch.schema);
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        if !push_key(batch, row, &plan, &mut key) {
            self.key_buf = key;
            let bad = Bad {
                class: "no_key",
                field: None,
                message: format!(
                    "table {} has no primary key: Iceberg upserts need one",
                    route.label
                ),
            };
            return self.row_bad(route.on_bad_record, &route, batch, row, &bad);
        }
        let store_key = row_key(&route.label, &key);
        let res = match meta.kind {
            ChangeKind::Delete => {
                let new_key = other_store_key(batch, row, &plan, &route.label);
                stage_delete(&self.store, &mut self.overlay, store_key, new_key)?;
                if route.emit_delete {
                    self.put(&ns, &name, &plan, batch, &key, None);
                } else {
                    self.metrics
                        .skipped_records
                        .with_label_values(&[&route.label, "op_filter"])
                        .inc();
                }
                Ok(())
            }
            ChangeKind::Upsert => {
                self.add_upsert(batch, row, &route, &plan, &ns, &name, &key, store_key)
            }
        };
        self.key_buf = key;
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn add_upsert(
        &mut self,
        batch: &ChangeBatch,
        row: usize,
        route: &Arc<Route>,
        plan: &Plan,
        ns: &str,
        name: &str,
        key: &str,
        store_key: Vec<u8>,
    ) -> Result<(), PipelineError> {
        if let Err(e) = &plan.filter {
            let bad = Bad {
                class: "filter",
                field: None,
                message: e.clone(),
            };
            return self.row_bad(route.on_bad_record, route, batch, row, &bad);
        }
        let prev = if batch.unchanged(row).is_empty() {
            None
        } else {
            let old_key = other_store_key(batch, row, plan, &route.label);
            previous_entry(
                &self.store,
                Some(&self.overlay),
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
                .inc_by(u64::from(rendered.fills));
        }
        if !rendered.missing.is_empty() {
            let bad = Bad {
                class: "toast_missing",
                field: Some(&rendered.missing[0]),
                message: format!(
                    "TOAST-unchanged column(s) {} of key {key}: last value never seen",
                    rendered.missing.join(", ")
                ),
            };
            let policy = match route.on_toast_missing {
                ToastPolicy::EmitWithoutColumn => None,
                ToastPolicy::DeadLetter => Some(BadRecordPolicy::DeadLetter),
                // The partition stops before this record: the row must not reach the batch.
                ToastPolicy::Fail => Some(BadRecordPolicy::Fail),
            };
            if let Some(policy) = policy {
                let r = self.row_bad(policy, route, batch, row, &bad);
                self.value_buf = value;
                return r;
            }
        }
        let filtered = matches!(&plan.filter, Ok(f) if !f.is_empty());
        let seen_before = filtered && (prev.is_some() || self.lookup(&store_key)?.is_some());
        self.overlay.insert(store_key, Some(rendered.entry));
        let passes = match &plan.filter {
            Ok(f) if !f.is_empty() => {
                let mut scratch = std::mem::take(&mut self.filter_buf);
                let ok = row_passes(batch, row, f, prev.as_ref(), &mut scratch);
                self.filter_buf = scratch;
                ok
            }
            _ => true,
        };
        if !passes {
            self.metrics
                .filtered_records
                .with_label_values(&[&route.label])
                .inc();
            if seen_before && route.emit_delete {
                self.put(ns, name, plan, batch, key, None);
            }
        } else if route.emit_upsert {
            let v = value.clone();
            self.put(ns, name, plan, batch, key, Some(v));
        } else {
            self.metrics
                .skipped_records
                .with_label_values(&[&route.label, "op_filter"])
                .inc();
        }
        self.value_buf = value;
        Ok(())
    }

    fn lookup(&self, store_key: &[u8]) -> Result<Option<ToastEntry>, PipelineError> {
        if let Some(v) = self.overlay.get(store_key) {
            return Ok(v.as_deref().map(ToastEntry::decode));
        }
        Ok(self
            .store
            .get(store_key)?
            .as_deref()
            .map(ToastEntry::decode))
    }

    /// Records the latest state of `key` in the batch.
    fn put(
        &mut self,
        ns: &str,
        name: &str,
        plan: &Plan,
        batch: &ChangeBatch,
        key: &str,
        value: Option<String>,
    ) {
        let label = format!("{ns}.{name}");
        let layout = layout_of(plan, batch, &self.meta_columns);
        let p = self.pending.entry(label).or_insert_with(|| Pending {
            ns: ns.to_owned(),
            name: name.to_owned(),
            layout: None,
            rows: HashMap::new(),
        });
        if p.layout.as_ref() != Some(&layout) {
            p.layout = Some(layout);
        }
        // What the batch holds: a replaced value is still counted (an over-estimate is safe).
        self.batch_bytes += (key.len() + value.as_ref().map_or(0, String::len)) as u64;
        p.rows.insert(key.to_owned(), value);
    }

    /// Truncate: every key the state knows for the table (and the batch's) becomes a delete.
    fn truncate(
        &mut self,
        c: &ControlRecord,
        m: &BorrowedMessage<'_>,
    ) -> Result<(), PipelineError> {
        let Some(table) = &c.table else {
            // As in the topics sink: a truncate that names no table is a bad record, never
            // silently passed over.
            let bad = Bad {
                class: "truncate",
                field: None,
                message: "truncate of an unknown table".into(),
            };
            return self.bad_record(self.cfg.defaults.on_bad_record, m, "unknown", &bad);
        };
        let route = self.route(table, m.topic());
        match route.on_truncate {
            TruncatePolicy::Skip => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, "truncate"])
                    .inc();
                return Ok(());
            }
            TruncatePolicy::DeadLetter => {
                let bad = Bad {
                    class: "truncate",
                    field: None,
                    message: format!("truncate of {}", route.label),
                };
                return self.dead_letter(Some(m), &route.label.clone(), &bad);
            }
            TruncatePolicy::Fail => {
                let why = format!("truncate of {} under on_truncate = fail", route.label);
                self.quarantine_at(
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    &route.label.clone(),
                    &why,
                );
                return Ok(());
            }
            TruncatePolicy::TombstoneAll => {}
        }
        let (ns, name) = self.destination(table);
        let prefix_len = route.label.len() + 1;
        let mut keys: HashSet<String> = HashSet::new();
        for k in self.store.keys_of(&route.label)? {
            if !matches!(self.overlay.get(&k), Some(None)) {
                keys.insert(String::from_utf8_lossy(&k[prefix_len..]).into_owned());
            }
        }
        for (k, v) in &self.overlay {
            if v.is_some()
                && k.starts_with(route.label.as_bytes())
                && k.get(route.label.len()) == Some(&0)
            {
                keys.insert(String::from_utf8_lossy(&k[prefix_len..]).into_owned());
            }
        }
        let label = format!("{ns}.{name}");
        if let Some(p) = self.pending.get(&label) {
            keys.extend(p.rows.keys().cloned());
        }
        if keys.is_empty() {
            return Ok(());
        }
        let p = self.pending.entry(label).or_insert_with(|| Pending {
            ns: ns.clone(),
            name: name.clone(),
            layout: None,
            rows: HashMap::new(),
        });
        for k in keys {
            self.overlay.insert(row_key(&route.label, &k), None);
            p.rows.insert(k, None);
        }
        Ok(())
    }

    /// Commits the batch: one snapshot per destination table.
    fn commit(&mut self) -> Result<(), PipelineError> {
        self.drain_decoder()?;
        self.flush_dead_letters()?;
        let started = Instant::now();
        let commit_id = uuid::Uuid::new_v4().to_string();
        let pending = std::mem::take(&mut self.pending);
        // Every destination of the batch exists (and is ours) before anything commits.
        let mut ready: Vec<(String, Pending)> = Vec::new();
        for (label, p) in pending {
            match self.open_dest(&label, &p) {
                Ok(true) => ready.push((label, p)),
                Ok(false) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.overlay.is_empty() {
            self.store
                .stage(&self.overlay, &[(format!("{COMMIT_TAG}{commit_id}"), 0, 0)])?;
        }
        let mut committed_labels: HashSet<String> = HashSet::new();
        let offsets = self.position.clone();
        for (label, p) in ready {
            match self.commit_table(&label, &p, &commit_id, &offsets) {
                Ok(()) => {
                    committed_labels.insert(label);
                }
                Err(PipelineError::Iceberg(e)) if e.is_table_scoped() => {
                    self.stop_table(&label, &e)
                }
                Err(e) => return Err(e),
            }
        }
        self.advance_quiet_tables(&commit_id, &offsets, &committed_labels)?;
        if !self.overlay.is_empty() {
            // A destination without changes in this batch has nothing to lose.
            self.resolve_staged(self.overlay.keys().map(Vec::as_slice), |dest| {
                committed_labels.contains(dest) || !self.stopped.contains_key(dest)
            })?;
            self.overlay.clear();
            self.metrics.state_keys.set(self.store.len()? as i64);
        }
        self.commit_group_offsets();
        self.metrics
            .transactions
            .with_label_values(&["committed"])
            .inc();
        self.summary.commits += 1;
        self.metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        self.batch_started = None;
        self.batch_rows = 0;
        self.batch_bytes = 0;
        Ok(())
    }

    /// Waits until every dead letter of the batch is acknowledged: the offsets about to be
    /// committed move past their source records, so they must not exist only in a queue.
    fn flush_dead_letters(&self) -> Result<(), PipelineError> {
        if let Some(p) = &self.dead_letters {
            p.flush()?;
        }
        Ok(())
    }

    /// Gives each table that had no changes for `idle_commit_interval_ms` but lags the consumed
    /// position a snapshot without files that moves its offsets: every record of those
    /// partitions below `offsets` that belongs to the table is already committed (a record of
    /// it would have been in a batch and committed there), so nothing is skipped; and a restart
    /// no longer re-reads from the quiet table's last change.
    fn advance_quiet_tables(
        &mut self,
        commit_id: &str,
        offsets: &BTreeMap<(String, i32), i64>,
        committed: &HashSet<String>,
    ) -> Result<(), PipelineError> {
        let idle = Duration::from_millis(self.cfg.iceberg.idle_commit_interval_ms);
        for (label, dest) in &mut self.dests {
            if committed.contains(label)
                || self.stopped.contains_key(label)
                || dest.last_commit.elapsed() < idle
            {
                continue;
            }
            let lags = offsets
                .iter()
                .any(|(tp, o)| dest.progress.get(tp).is_none_or(|held| held < o));
            if !lags {
                continue;
            }
            let delta = TableDelta {
                upserts: Vec::new(),
                deletes: Vec::new(),
                commit_id: commit_id.to_owned(),
                offsets: offsets.clone(),
            };
            match dest.table.commit(&self.lake, &delta) {
                Ok(_) => {}
                // Only progress bookkeeping failed: the table keeps its older offsets (a restart
                // re-reads a little more) and the next interval tries again.
                Err(e) if e.retry_class() != decant_model::RetryClass::Fatal => {
                    tracing::warn!(table = label.as_str(), error = %chain(&e), "committing the offsets of a table without changes failed; retrying later");
                    dest.last_commit = Instant::now();
                    continue;
                }
                Err(e) => return Err(lake_err(e)),
            }
            for (tp, o) in offsets {
                let e = dest.progress.entry(tp.clone()).or_insert(*o);
                *e = (*e).max(*o);
            }
            dest.last_commit = Instant::now();
            tracing::info!(
                table = label.as_str(),
                "committed the consumed offsets of a table without changes"
            );
        }
        Ok(())
    }

    /// Opens (creates, evolves, claims) the destination; `false` when it is stopped.
    fn open_dest(&mut self, label: &str, p: &Pending) -> Result<bool, PipelineError> {
        if self.stopped.contains_key(label) {
            return Ok(false);
        }
        let opened = match (self.dests.get_mut(label), &p.layout) {
            (Some(d), Some(layout)) => d.table.evolve(&self.lake, layout).map(|_| None),
            (Some(_), None) => Ok(None),
            (None, Some(layout)) => self.lake.open_for_write(&p.ns, &p.name, layout).map(Some),
            (None, None) => {
                tracing::warn!(
                    table = label,
                    "deletes for a table that does not exist: nothing to delete"
                );
                return Ok(false);
            }
        };
        match opened {
            Ok(Some(table)) => {
                let progress = table.progress(&self.lake).map_err(lake_err)?.offsets;
                self.dests.insert(
                    label.to_owned(),
                    Dest {
                        table,
                        progress,
                        last_commit: Instant::now(),
                    },
                );
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(e) if e.is_table_scoped() => {
                self.stop_table(label, &e);
                Ok(false)
            }
            Err(e) => Err(lake_err(e)),
        }
    }

    fn stop_table(&mut self, label: &str, e: &IcebergError) {
        tracing::error!(table = label, error = %chain(e), "stopping this table until restart; the other tables keep flowing");
        self.stopped.insert(label.to_owned(), chain(e));
        self.metrics.stopped_tables.set(self.stopped.len() as i64);
    }

    fn commit_table(
        &mut self,
        label: &str,
        p: &Pending,
        commit_id: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), PipelineError> {
        let Some(dest) = self.dests.get_mut(label) else {
            return Ok(());
        };
        let schema = dest.table.arrow_schema().map_err(lake_err)?;
        let parse = |json: &str| -> Result<Map<String, Value>, PipelineError> {
            parse_row(&schema, json).map_err(|e| {
                PipelineError::Config(format!("table {label}: re-reading a rendered row: {e}"))
            })
        };
        let to_batch = |rows: &[Map<String, Value>]| {
            batch_from_rows(&schema, rows).map_err(|why| {
                PipelineError::Iceberg(IcebergError::IncompatibleSchema {
                    table: label.to_owned(),
                    why,
                })
            })
        };
        // Converted a chunk at a time: the parsed rows of one chunk are the only copy of the
        // batch besides its rendered text and its Arrow form.
        const CHUNK: usize = 8192;
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        let (mut up_rows, mut del_rows) = (Vec::new(), Vec::new());
        let mut ups = 0u64;
        for (key, value) in &p.rows {
            del_rows.push(parse(key)?);
            if let Some(v) = value {
                up_rows.push(parse(v)?);
                ups += 1;
            }
            if del_rows.len() >= CHUNK {
                deletes.push(to_batch(&del_rows)?);
                del_rows.clear();
            }
            if up_rows.len() >= CHUNK {
                upserts.push(to_batch(&up_rows)?);
                up_rows.clear();
            }
        }
        if !del_rows.is_empty() {
            deletes.push(to_batch(&del_rows)?);
        }
        if !up_rows.is_empty() {
            upserts.push(to_batch(&up_rows)?);
        }
        let delta = TableDelta {
            upserts,
            deletes,
            commit_id: commit_id.to_owned(),
            offsets: offsets.clone(),
        };
        let outcome = dest.table.commit(&self.lake, &delta).map_err(lake_err)?;
        for (tp, o) in offsets {
            let e = dest.progress.entry(tp.clone()).or_insert(*o);
            *e = (*e).max(*o);
        }
        dest.last_commit = Instant::now();
        let dels = p.rows.len() as u64 - ups;
        self.metrics
            .output_records
            .with_label_values(&[label, "upsert"])
            .inc_by(ups);
        self.metrics
            .output_records
            .with_label_values(&[label, "delete"])
            .inc_by(dels);
        self.summary.records_out += ups + dels;
        match outcome {
            CommitOutcome::Committed {
                snapshot_id,
                sequence,
            } => tracing::info!(
                table = label,
                snapshot_id,
                sequence,
                upserts = ups,
                deletes = dels,
                "committed Iceberg snapshot"
            ),
            CommitOutcome::AlreadyCommitted => {
                tracing::warn!(
                    table = label,
                    commit_id,
                    "the batch was already committed (an earlier attempt landed)"
                )
            }
        }
        Ok(())
    }

    /// Group offsets for lag dashboards (the tables hold the real progress).
    fn commit_group_offsets(&self) {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &self.position {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "committing group offsets (monitoring only)");
        }
    }
}

/// The destination layout of a plan: value columns (output names, decoded types), then the
/// metadata columns; key columns by output name.
fn layout_of(plan: &Plan, batch: &ChangeBatch, meta_columns: &[MetaColumn]) -> TableLayout {
    let cols = &batch.schema.columns;
    let mut columns: Vec<(String, ColumnType)> = plan
        .value
        .iter()
        .filter_map(|v| cols.get(v.index).map(|c| (v.name.clone(), c.ty.clone())))
        .collect();
    for m in meta_columns {
        columns.push((m.name().to_owned(), m.column_type()));
    }
    let key = plan
        .key
        .iter()
        .map(|(_, json_name)| {
            serde_json::from_str::<String>(json_name).unwrap_or_else(|_| json_name.clone())
        })
        .collect();
    TableLayout::new(columns, key)
}
