//! The loop against an in-memory source and an in-memory sink: no broker, no clock (batches
//! commit by record count, or when a test commits). Each test drives the loop turn by turn
//! and looks at what the sink made durable, what the source's group committed, the state
//! store and the metrics.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::AtomicBool;

use decant_decode::{ControlRecord, Decoder, DecoderConfig};
use decant_model::sink::{
    BatchStats, Change, ChangeOp, Commit, Committed, DeadLetter, Destination, Offsets, Resume,
    SourceGroup, TopicPartition,
};
use decant_model::{
    ControlEvent, Disposition, Header, RecordCoordinates, Sink, SinkError, SourcePosition,
};

use crate::config::{
    BadRecordPolicy, Op, PipelineConfig, TableConfig, ToastPolicy, TruncatePolicy,
};
use crate::error::PipelineError;
use crate::flow::{Flow, Runtime};
use crate::metrics::Metrics;
use crate::observe::Health;
use crate::source::{Record, Source};
use crate::triage::DeadLetterQueue;

const TOPIC: &str = "s.public.t";

/// An owned record.
#[derive(Debug, Clone)]
struct Rec {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl Record for Rec {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn timestamp_ms(&self) -> Option<i64> {
        None
    }
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
    fn headers(&self) -> Vec<Header<'_>> {
        vec![Header {
            key: "origin",
            value: Some(b"test"),
        }]
    }
}

/// Partitions of records; a position per partition; the group's committed offsets.
#[derive(Default)]
struct MemorySource {
    log: BTreeMap<TopicPartition, Vec<Rec>>,
    next: BTreeMap<TopicPartition, i64>,
    paused: HashSet<TopicPartition>,
    committed: RefCell<Offsets>,
}

impl MemorySource {
    fn push(&mut self, partition: i32, key: Option<String>, value: Option<String>) {
        let tp = (TOPIC.to_owned(), partition);
        let records = self.log.entry(tp).or_default();
        records.push(Rec {
            topic: TOPIC.into(),
            partition,
            offset: records.len() as i64,
            key: key.map(String::into_bytes),
            value: value.map(String::into_bytes),
        });
    }

    fn drained(&self) -> bool {
        self.log.iter().all(|(tp, recs)| {
            self.paused.contains(tp) || self.next.get(tp).copied().unwrap_or(0) >= recs.len() as i64
        })
    }

    /// The committed next offset of `partition` of [`TOPIC`].
    fn committed_at(&self, partition: i32) -> Option<i64> {
        self.committed
            .borrow()
            .get(&(TOPIC.to_owned(), partition))
            .copied()
    }
}

impl SourceGroup for MemorySource {
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, SinkError> {
        let c = self.committed.borrow();
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), c.get(tp).copied()))
            .collect())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Source for MemorySource {
    type Msg = Rec;

    fn start(&mut self, resume: &Resume) -> Result<Vec<(TopicPartition, i64)>, PipelineError> {
        let start = match resume {
            Resume::Group => self.committed.borrow().clone(),
            Resume::Own(start) => start.clone(),
        };
        let mut assigned = Vec::new();
        for tp in self.log.keys() {
            let at = start.get(tp).copied().unwrap_or(0);
            self.next.insert(tp.clone(), at);
            assigned.push((tp.clone(), at));
        }
        Ok(if matches!(resume, Resume::Own(_)) {
            assigned
        } else {
            Vec::new()
        })
    }

    fn maintain(&mut self) -> Result<Vec<(TopicPartition, i64)>, PipelineError> {
        Ok(Vec::new())
    }

    fn poll(&mut self, _timeout: Duration) -> Option<Result<Rec, PipelineError>> {
        for (tp, recs) in &self.log {
            if self.paused.contains(tp) {
                continue;
            }
            let next = self.next.entry(tp.clone()).or_insert(0);
            if let Some(r) = recs.get(*next as usize) {
                *next += 1;
                return Some(Ok(r.clone()));
            }
        }
        None
    }

    fn take_revoked(&self) -> bool {
        false
    }

    fn pause(&mut self, partition: &TopicPartition) {
        self.paused.insert(partition.clone());
    }

    fn resume_partition(&mut self, partition: &TopicPartition) {
        self.paused.remove(partition);
    }

    fn rewind(&mut self) -> Result<usize, PipelineError> {
        let committed = self.committed.borrow().clone();
        for (tp, next) in &mut self.next {
            *next = committed.get(tp).copied().unwrap_or(0);
        }
        Ok(self.next.len())
    }

    fn commit_offsets(&self, offsets: &Offsets, sync: bool) -> Result<(), PipelineError> {
        if sync {
            self.committed.borrow_mut().extend(offsets.clone());
        }
        Ok(())
    }
}

/// One change as the sink got it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    table: String,
    op: ChangeOp,
    key: String,
    value: Option<String>,
    offset: i64,
    /// The change's JSON `null` documents, by output column name.
    null_documents: Vec<String>,
}

/// Collects the open batch; a commit makes it durable.
struct MemorySink {
    resume: Resume,
    /// Commit after this many source records.
    commit_every: u64,
    open: Vec<Out>,
    durable: Vec<Out>,
    open_letters: Vec<BTreeMap<String, String>>,
    letters: Vec<BTreeMap<String, String>>,
    /// The next commit fails with this disposition.
    fail_next_commit: Option<Disposition>,
    /// Destinations stopped (by source label) and what a `holds` check answers below.
    stopped: BTreeSet<String>,
    holds_below: Offsets,
    aborts: u32,
    /// The next writes fail this many times because a dependency is unreachable.
    unreachable_writes: u32,
    /// `write` calls, failed ones included.
    write_calls: u32,
}

impl MemorySink {
    fn new(resume: Resume) -> Self {
        MemorySink {
            resume,
            commit_every: u64::MAX,
            open: Vec::new(),
            durable: Vec::new(),
            open_letters: Vec::new(),
            letters: Vec::new(),
            fail_next_commit: None,
            stopped: BTreeSet::new(),
            holds_below: Offsets::new(),
            aborts: 0,
            unreachable_writes: 0,
            write_calls: 0,
        }
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn resume(&mut self) -> Result<Resume, SinkError> {
        Ok(self.resume.clone())
    }
    fn offsets_in_commit(&self) -> bool {
        false
    }
    fn open_destination(&mut self, _dest: Destination<'_>) -> Result<(), SinkError> {
        Ok(())
    }
    fn holds(&self, _dest: Destination<'_>, partition: &TopicPartition, offset: i64) -> bool {
        self.holds_below
            .get(partition)
            .is_some_and(|next| offset < *next)
    }
    fn is_stopped(&self, dest: Destination<'_>) -> bool {
        self.stopped.contains(dest.label)
    }
    fn stopped_destinations(&self) -> Vec<(&str, &str)> {
        self.stopped
            .iter()
            .map(|label| (label.as_str(), "stopped by the test"))
            .collect()
    }
    fn begin(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn write(&mut self, c: &Change<'_>) -> Result<(), SinkError> {
        self.write_calls += 1;
        if self.unreachable_writes > 0 {
            self.unreachable_writes -= 1;
            return Err(SinkError::waiting_on(
                "schema_registry",
                "registering a schema",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ));
        }
        self.open.push(Out {
            table: c.dest.label.to_owned(),
            op: c.op,
            key: c.key.to_owned(),
            value: c.value.map(str::to_owned),
            offset: c.origin.offset,
            null_documents: c
                .null_documents
                .iter()
                .map(|&i| c.shape.columns[i].0.clone())
                .collect(),
        });
        Ok(())
    }
    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> Result<bool, SinkError> {
        let mut h: BTreeMap<String, String> = letter
            .headers
            .iter()
            .map(|x| {
                (
                    x.key.to_owned(),
                    String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        h.insert("@topic".into(), letter.topic.to_owned());
        self.open_letters.push(h);
        Ok(true)
    }
    fn commit_due(&self, batch: &BatchStats) -> bool {
        batch.records >= self.commit_every
    }
    fn prepare(&mut self, _commit: &Commit<'_>) -> Result<(), SinkError> {
        Ok(())
    }
    fn commit(
        &mut self,
        _commit: &Commit<'_>,
        _group: &dyn SourceGroup,
    ) -> Result<Committed, SinkError> {
        if let Some(d) = self.fail_next_commit.take() {
            return Err(SinkError {
                what: "injected commit failure".into(),
                disposition: d,
                dependency: None,
                source: None,
            });
        }
        let mut written = BTreeMap::new();
        for o in &self.open {
            let op = if o.op == ChangeOp::Upsert {
                "upsert"
            } else {
                "delete"
            };
            *written.entry((o.table.clone(), op)).or_insert(0) += 1;
        }
        self.durable.append(&mut self.open);
        self.letters.append(&mut self.open_letters);
        Ok(Committed { written })
    }
    fn abort(&mut self) {
        self.aborts += 1;
        self.open.clear();
        self.open_letters.clear();
    }
}

type TestFlow<'c> = Flow<'c, MemorySink, MemorySource>;

fn config(dir: &tempfile::TempDir) -> PipelineConfig {
    let mut cfg = PipelineConfig::default();
    cfg.source.topics = vec![TOPIC.into()];
    cfg.state.dir = dir.path().to_path_buf();
    cfg.dead_letter.topic = Some("dlq".into());
    cfg
}

fn open<'c>(
    cfg: &'c PipelineConfig,
    sink: MemorySink,
    source: MemorySource,
    metrics: Arc<Metrics>,
) -> TestFlow<'c> {
    let resume = sink.resume.clone();
    let rt = Runtime {
        metrics,
        health: Arc::new(Health::default()),
        shutdown: Arc::new(AtomicBool::new(false)),
    };
    Flow::open(
        cfg,
        Decoder::new(DecoderConfig::default()).expect("decoder"),
        sink,
        source,
        DeadLetterQueue::new(None, 60_000),
        resume,
        &rt,
    )
    .expect("the loop opens")
}

/// Opens the loop on `src` with a fresh sink that leaves the offsets to the group, turns it
/// until the source is drained and commits.
fn committed_run(cfg: &PipelineConfig, src: MemorySource) -> TestFlow<'_> {
    let mut w = open(
        cfg,
        MemorySink::new(Resume::Group),
        src,
        Arc::new(Metrics::new()),
    );
    drain(&mut w);
    w.commit().expect("commit");
    w
}

/// Turns the loop until the source has nothing left to give.
fn drain(w: &mut TestFlow<'_>) {
    for _ in 0..10_000 {
        if w.source.drained() {
            return;
        }
        w.turn().expect("a turn");
    }
    panic!("the source never drained");
}

/// A Debezium JSON-with-schema change of `public.t (id int4 primary key, note text)`, at LSN
/// `id`.
fn change(op: &str, id: i32, note: Option<&str>) -> (Option<String>, Option<String>) {
    change_at(op, id, note, i64::from(id))
}

/// [`change`] at LSN `lsn`.
fn change_at(op: &str, id: i32, note: Option<&str>, lsn: i64) -> (Option<String>, Option<String>) {
    let row = |n: Option<&str>| match n {
        Some(n) => format!(r#"{{"id":{id},"note":{}}}"#, serde_json::json!(n)),
        None => format!(r#"{{"id":{id},"note":null}}"#),
    };
    let (before, after) = match op {
        "d" => (row(note), "null".to_owned()),
        _ => ("null".to_owned(), row(note)),
    };
    let cols = r#"[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"note"}]"#;
    let source = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}"#;
    let value = format!(
        r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","fields":{cols},"optional":true,"name":"s.public.t.Value","field":"before"}},{{"type":"struct","fields":{cols},"optional":true,"name":"s.public.t.Value","field":"after"}},{source},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}}],"optional":false,"name":"s.public.t.Envelope"}},"payload":{{"before":{before},"after":{after},"source":{{"version":"3.6.1.Final","connector":"postgresql","name":"s","ts_ms":1,"db":"db","schema":"public","table":"t","lsn":{lsn}}},"op":"{op}","ts_ms":1}}}}"#
    );
    let key = format!(
        r#"{{"schema":{{"type":"struct","fields":[{{"type":"int32","optional":false,"field":"id"}}],"optional":false,"name":"s.public.t.Key"}},"payload":{{"id":{id}}}}}"#
    );
    (Some(key), Some(value))
}

/// A source of `(partition, op, id, note)` changes of `public.t`.
fn source_of(changes: &[(i32, &str, i32, Option<&str>)]) -> MemorySource {
    let mut src = MemorySource::default();
    for (partition, op, id, note) in changes {
        push(&mut src, *partition, op, *id, *note);
    }
    src
}

fn push(src: &mut MemorySource, partition: i32, op: &str, id: i32, note: Option<&str>) {
    let (k, v) = change(op, id, note);
    src.push(partition, k, v);
}

fn metric(metrics: &Metrics, line_start: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// An upsert of `public.t`'s key `id` with value `value`, as [`keys_and_values`] lists it.
fn upsert(id: i32, value: &str) -> (ChangeOp, String, Option<String>) {
    (
        ChangeOp::Upsert,
        format!(r#"{{"id":{id}}}"#),
        Some(value.to_owned()),
    )
}

/// A delete of `public.t`'s key `id`, as [`keys_and_values`] lists it.
fn deleted(id: i32) -> (ChangeOp, String, Option<String>) {
    (ChangeOp::Delete, format!(r#"{{"id":{id}}}"#), None)
}

fn keys_and_values(out: &[Out]) -> Vec<(ChangeOp, String, Option<String>)> {
    out.iter()
        .map(|o| (o.op, o.key.clone(), o.value.clone()))
        .collect()
}

#[test]
fn changes_become_durable_only_with_a_commit_and_their_offsets() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[
        (0, "c", 1, Some("a")),
        (0, "u", 1, Some("b")),
        (0, "c", 2, Some("c")),
        (0, "d", 2, Some("c")),
    ]);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
    drain(&mut w);
    w.flush().expect("flush");
    assert!(
        w.sink.durable.is_empty(),
        "nothing is durable before a commit"
    );
    assert!(w.source.committed.borrow().is_empty());
    w.commit().expect("commit");
    assert_eq!(
        keys_and_values(&w.sink.durable),
        vec![
            upsert(1, r#"{"id":1,"note":"a"}"#),
            upsert(1, r#"{"id":1,"note":"b"}"#),
            upsert(2, r#"{"id":2,"note":"c"}"#),
            deleted(2),
        ]
    );
    assert_eq!(w.source.committed_at(0), Some(4));
    assert_eq!(
        metric(
            &metrics,
            r#"decant_output_records_total{op="upsert",table="public.t"}"#
        ),
        3.0
    );
    // The state knows key 1 and no longer key 2.
    assert_eq!(w.store.keys_of("public.t").expect("keys").len(), 1);
}

/// The open batch's TOAST state is held in memory until its commit: once it holds
/// `state.batch_max_mib`, the batch commits although the sink's own cadence is not due.
#[test]
fn a_batch_whose_state_reaches_its_bound_commits_early() {
    let big = "x".repeat(300 << 10);
    let changes: Vec<_> = (1..=6).map(|id| (0, "c", id, Some(big.as_str()))).collect();
    let drained_with = |batch_max_mib: u64| {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = config(&dir);
        cfg.state.batch_max_mib = batch_max_mib;
        cfg.delivery.flush_max_rows = 1;
        let sink = MemorySink::new(Resume::Group);
        let mut w = open(&cfg, sink, source_of(&changes), Arc::new(Metrics::new()));
        drain(&mut w);
        (w.sink.durable.len(), w.source.committed_at(0))
    };
    // 300 KiB of state a change: the fourth takes the batch past 1 MiB, and it commits.
    assert_eq!(drained_with(1), (4, Some(4)));
    // Under the default bound the same changes wait for the sink's cadence.
    assert_eq!(
        drained_with(PipelineConfig::default().state.batch_max_mib),
        (0, None)
    );
}

/// A JSON document column: a JSON `null` document shows as `null` in the row's JSON, like SQL
/// NULL, and the change names it so that formats storing documents as text can write `null`.
#[test]
fn a_json_null_document_is_told_from_sql_null() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let mut src = MemorySource::default();
    for (id, doc) in [(1, Some("null")), (2, None), (3, Some(r#"{"a":null}"#))] {
        let (k, v) = change("c", id, doc);
        let v = v.map(|v| {
            v.replace(
                r#"{"type":"string","optional":true,"field":"note"}"#,
                r#"{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"note"}"#,
            )
        });
        src.push(0, k, v);
    }
    let w = committed_run(&cfg, src);
    let out: Vec<(Option<String>, Vec<String>)> = w
        .sink
        .durable
        .iter()
        .map(|o| (o.value.clone(), o.null_documents.clone()))
        .collect();
    assert_eq!(
        out,
        vec![
            (Some(r#"{"id":1,"note":null}"#.into()), vec!["note".into()]),
            (Some(r#"{"id":2,"note":null}"#.into()), vec![]),
            (Some(r#"{"id":3,"note":{"a":null}}"#.into()), vec![]),
        ]
    );
}

#[test]
fn toast_state_applies_after_a_commit_and_is_discarded_after_an_abort() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[
        (0, "c", 1, Some("long text")),
        (0, "u", 1, Some("__debezium_unavailable_value")),
    ]);
    let mut sink = MemorySink::new(Resume::Group);
    sink.fail_next_commit = Some(Disposition::AbortAndRewind);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, sink, src, metrics.clone());
    // The first record, then a commit that fails: abort and rewind.
    w.turn().expect("turn");
    let step = w.commit();
    assert!(step.is_err());
    w.settle(step).expect("a rewind, not a stop");
    assert_eq!(w.sink.aborts, 1);
    assert!(
        !w.store.has_pending().expect("pending"),
        "the staged state is settled"
    );
    assert!(
        w.store.keys_of("public.t").expect("keys").is_empty(),
        "an aborted batch leaves no state behind"
    );
    assert_eq!(
        metric(&metrics, r#"decant_rewinds_total{reason="kafka_error"}"#),
        1.0
    );
    // Re-read from the committed offset (none): both records, the TOAST value filled from the
    // first, and the state applied only now.
    drain(&mut w);
    w.commit().expect("commit");
    assert_eq!(
        keys_and_values(&w.sink.durable),
        vec![
            upsert(1, r#"{"id":1,"note":"long text"}"#),
            upsert(1, r#"{"id":1,"note":"long text"}"#),
        ]
    );
    assert_eq!(w.store.keys_of("public.t").expect("keys").len(), 1);
    assert_eq!(
        metric(&metrics, r#"decant_toast_fills_total{table="public.t"}"#),
        1.0
    );
}

#[test]
fn a_toast_miss_under_fail_quarantines_only_its_partition() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[
        (0, "c", 1, Some("x")),
        (0, "u", 2, Some("__debezium_unavailable_value")),
        (0, "c", 3, Some("after the miss")),
        (1, "c", 4, Some("other partition")),
    ]);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    let keys: Vec<String> = w.sink.durable.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec![r#"{"id":1}"#, r#"{"id":4}"#]);
    let committed = w.source.committed.borrow().clone();
    assert_eq!(
        committed.get(&(TOPIC.to_owned(), 0)),
        Some(&1),
        "held at the miss"
    );
    assert_eq!(committed.get(&(TOPIC.to_owned(), 1)), Some(&1));
    assert_eq!(metric(&metrics, "decant_quarantined_partitions"), 1.0);
}

#[test]
fn bad_records_follow_their_policy() {
    for policy in [
        BadRecordPolicy::Skip,
        BadRecordPolicy::DeadLetter,
        BadRecordPolicy::Fail,
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = config(&dir);
        cfg.defaults.on_bad_record = policy;
        let mut src = MemorySource::default();
        push(&mut src, 0, "c", 1, Some("x"));
        src.push(0, Some("{}".into()), Some("{not json".into()));
        push(&mut src, 0, "c", 2, Some("y"));
        let metrics = Arc::new(Metrics::new());
        let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
        drain(&mut w);
        w.commit().expect("commit");
        let keys: Vec<String> = w.sink.durable.iter().map(|o| o.key.clone()).collect();
        let committed = w.source.committed_at(0);
        match policy {
            BadRecordPolicy::Skip => {
                assert_eq!(keys, vec![r#"{"id":1}"#, r#"{"id":2}"#]);
                assert!(w.sink.letters.is_empty());
                assert_eq!(committed, Some(3));
            }
            BadRecordPolicy::DeadLetter => {
                assert_eq!(keys, vec![r#"{"id":1}"#, r#"{"id":2}"#]);
                assert_eq!(w.sink.letters.len(), 1);
                let h = &w.sink.letters[0];
                assert_eq!(h["@topic"], "dlq");
                assert_eq!(h["origin"], "test", "the original headers are kept");
                assert_eq!(h["decant.source.topic"], TOPIC);
                assert_eq!(h["decant.source.offset"], "1");
                assert!(h.contains_key("decant.error.class"));
                assert_eq!(committed, Some(3));
            }
            BadRecordPolicy::Fail => {
                assert_eq!(keys, vec![r#"{"id":1}"#]);
                assert_eq!(committed, Some(1), "the partition stops at the bad record");
                assert_eq!(metric(&metrics, "decant_quarantined_partitions"), 1.0);
            }
        }
    }
}

/// Regression: the Iceberg loop once ignored a truncate that named no table. The decoder names
/// the table of every truncate it decodes (from the topic when the envelope does not), so the
/// control record is handed to the loop directly.
#[test]
fn a_truncate_that_names_no_table_is_a_bad_record() {
    for own in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = config(&dir);
        cfg.defaults.on_bad_record = BadRecordPolicy::DeadLetter;
        let mut src = MemorySource::default();
        push(&mut src, 0, "c", 1, Some("a"));
        let resume = if own {
            Resume::Own(Offsets::new())
        } else {
            Resume::Group
        };
        let metrics = Arc::new(Metrics::new());
        let mut w = open(&cfg, MemorySink::new(resume), src, metrics.clone());
        drain(&mut w);
        let rec = w.source.log[&(TOPIC.to_owned(), 0)][0].clone();
        let control = ControlRecord {
            seq: 99,
            coords: RecordCoordinates {
                topic: TOPIC.into(),
                partition: 0,
                offset: 0,
            },
            table: None,
            event: ControlEvent::Truncate,
            position: SourcePosition::default(),
            key: None,
        };
        w.flush().expect("flush");
        w.truncate(&control, &rec).expect("a policy, not an error");
        w.commit().expect("commit");
        assert_eq!(w.sink.letters.len(), 1, "own={own}");
        assert_eq!(w.sink.letters[0]["decant.error.class"], "truncate");
        assert_eq!(
            metric(
                &metrics,
                r#"decant_dead_letter_records_total{reason="truncate",table="unknown"}"#
            ),
            1.0,
            "own={own}"
        );
    }
}

#[test]
fn a_truncate_deletes_every_known_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let mut src = source_of(&[
        (0, "c", 1, Some("a")),
        (0, "c", 2, Some("b")),
        (0, "d", 2, Some("b")),
        (0, "c", 3, Some("c")),
    ]);
    src.push(
        0,
        None,
        Some(
            r#"{"source":{"db":"db","schema":"public","table":"t","lsn":9},"op":"t","ts_ms":1}"#
                .into(),
        ),
    );
    let mut w = open(
        &cfg,
        MemorySink::new(Resume::Group),
        src,
        Arc::new(Metrics::new()),
    );
    // Key 1 is committed (in the store), key 3 only in the open batch.
    w.turn().expect("turn");
    w.commit().expect("commit");
    drain(&mut w);
    w.commit().expect("commit");
    let truncated: BTreeSet<String> = w
        .sink
        .durable
        .iter()
        .filter(|o| o.op == ChangeOp::Truncate)
        .map(|o| o.key.clone())
        .collect();
    assert_eq!(
        truncated,
        BTreeSet::from([r#"{"id":1}"#.to_owned(), r#"{"id":3}"#.to_owned()])
    );
    assert!(w.store.keys_of("public.t").expect("keys").is_empty());
}

/// Regression: the Iceberg loop once skipped deletes left out by `ops` without counting them.
#[test]
fn the_op_filter_counts_what_it_leaves_out_for_every_sink() {
    for own in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = config(&dir);
        cfg.tables.insert(
            "public.t".into(),
            TableConfig {
                ops: Some(vec![Op::Upsert]),
                ..TableConfig::default()
            },
        );
        let mut src = MemorySource::default();
        push(&mut src, 0, "c", 1, Some("a"));
        push(&mut src, 0, "d", 1, Some("a"));
        let resume = if own {
            Resume::Own(Offsets::new())
        } else {
            Resume::Group
        };
        let metrics = Arc::new(Metrics::new());
        let mut w = open(&cfg, MemorySink::new(resume), src, metrics.clone());
        drain(&mut w);
        w.commit().expect("commit");
        assert_eq!(w.sink.durable.len(), 1, "own={own}");
        assert_eq!(
            metric(
                &metrics,
                r#"decant_skipped_records_total{reason="op_filter",table="public.t"}"#
            ),
            1.0,
            "own={own}"
        );
    }
}

#[test]
fn a_sink_that_keeps_its_progress_gets_only_what_it_does_not_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let mut src = MemorySource::default();
    for id in 1..=4 {
        push(&mut src, 0, "c", id, Some("v"));
    }
    // The sink's smallest offset is 1 (the loop starts there); it already holds 0..=1.
    let mut sink = MemorySink::new(Resume::Own(Offsets::from([((TOPIC.to_owned(), 0), 1)])));
    sink.holds_below.insert((TOPIC.to_owned(), 0), 2);
    let mut w = open(&cfg, sink, src, Arc::new(Metrics::new()));
    drain(&mut w);
    w.commit().expect("commit");
    let offsets: Vec<i64> = w.sink.durable.iter().map(|o| o.offset).collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_eq!(w.position.get(&(TOPIC.to_owned(), 0)), Some(&4));
}

#[test]
fn a_stopped_destination_keeps_its_old_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[(0, "c", 1, Some("a"))]);
    let mut sink = MemorySink::new(Resume::Own(Offsets::new()));
    sink.stopped.insert("public.t".into());
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, sink, src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    assert!(w.sink.durable.is_empty());
    assert!(w.store.keys_of("public.t").expect("keys").is_empty());
    assert_eq!(
        metric(
            &metrics,
            r#"decant_skipped_records_total{reason="table_stopped",table="public.t"}"#
        ),
        1.0
    );
}

#[test]
fn a_stopped_destination_of_a_group_source_holds_its_partition_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[(0, "c", 1, Some("a")), (0, "c", 2, Some("b"))]);
    let mut sink = MemorySink::new(Resume::Group);
    sink.stopped.insert("public.t".into());
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, sink, src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    assert!(w.sink.durable.is_empty());
    // Skipping would commit offset 2 and lose both records for the table: the partition is
    // quarantined at the first one instead, and a restart reads it again.
    assert_eq!(w.source.committed_at(0), Some(0));
    assert_eq!(metric(&metrics, "decant_quarantined_partitions"), 1.0);
    assert_eq!(metric(&metrics, "decant_stopped_tables"), 1.0);
    // `/health` names the table and why, for the operator who must act.
    assert_eq!(w.health.stopped(), ["public.t: stopped by the test"]);
}

#[test]
fn a_write_waiting_on_a_dependency_is_retried_never_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let src = source_of(&[(0, "c", 1, Some("a"))]);
    let mut sink = MemorySink::new(Resume::Group);
    sink.unreachable_writes = 1;
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, sink, src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    assert_eq!(w.sink.write_calls, 2, "the same write, called again");
    assert_eq!(w.sink.durable.len(), 1);
    assert_eq!(w.sink.aborts, 0, "no abort and rewind");
    assert_eq!(
        metric(
            &metrics,
            r#"decant_dependency_retries_total{dependency="schema_registry"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, r#"decant_waiting{dependency="schema_registry"}"#),
        0.0
    );
}

#[test]
fn a_fatal_sink_error_stops_and_emit_without_column_leaves_the_column_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(&dir);
    cfg.defaults.on_toast_missing = ToastPolicy::EmitWithoutColumn;
    let src = source_of(&[(0, "u", 1, Some("__debezium_unavailable_value"))]);
    let mut sink = MemorySink::new(Resume::Group);
    sink.fail_next_commit = Some(Disposition::Fatal);
    let mut w = open(&cfg, sink, src, Arc::new(Metrics::new()));
    drain(&mut w);
    w.flush().expect("flush");
    assert_eq!(w.sink.open[0].value.as_deref(), Some(r#"{"id":1}"#));
    let step = w.commit();
    assert!(w.settle(step).is_err(), "a fatal error stops the loop");
    assert!(w.sink.durable.is_empty());
}

/// Debezium delivers at least once: a connector restarted after its last offset flush sends
/// again what followed it. A re-sent TOAST-unchanged update that comes after decant applied the
/// key's later delete (committed, so only the store remembers it) has lost its values to the
/// delete: it is skipped, counted, and the table keeps flowing. The re-sent delete follows, the
/// key comes back with every value. A delete older than the update proves nothing: that
/// update's miss still follows `on_toast_missing` (default `fail`).
#[test]
fn a_change_sent_again_from_before_its_keys_delete_is_skipped_not_a_toast_miss() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let unchanged = Some("__debezium_unavailable_value");
    let at = |src: &mut MemorySource, partition, op, id, note, lsn| {
        let (k, v) = change_at(op, id, note, lsn);
        src.push(partition, k, v);
    };
    let mut src = MemorySource::default();
    at(&mut src, 0, "c", 1, Some("long text"), 10);
    at(&mut src, 0, "u", 1, unchanged, 20);
    at(&mut src, 0, "d", 1, Some("long text"), 30);
    // Sent again after a connector restart.
    at(&mut src, 0, "u", 1, unchanged, 20);
    at(&mut src, 0, "d", 1, Some("long text"), 30);
    at(&mut src, 0, "c", 1, Some("back"), 40);
    at(&mut src, 0, "u", 1, unchanged, 50);
    // Another key: deleted at LSN 6, then an update at LSN 70 with nothing to fill from.
    at(&mut src, 1, "c", 3, Some("x"), 5);
    at(&mut src, 1, "d", 3, Some("x"), 6);
    at(&mut src, 1, "u", 3, unchanged, 70);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
    for _ in 0..3 {
        w.turn().expect("turn");
    }
    w.commit().expect("commit");
    drain(&mut w);
    w.commit().expect("commit");

    let of = |id: i32| -> Vec<(ChangeOp, Option<String>)> {
        let key = format!(r#"{{"id":{id}}}"#);
        w.sink
            .durable
            .iter()
            .filter(|o| o.key == key)
            .map(|o| (o.op, o.value.clone()))
            .collect()
    };
    let long = Some(r#"{"id":1,"note":"long text"}"#.to_owned());
    let back = Some(r#"{"id":1,"note":"back"}"#.to_owned());
    assert_eq!(
        of(1),
        vec![
            (ChangeOp::Upsert, long.clone()),
            (ChangeOp::Upsert, long),
            (ChangeOp::Delete, None),
            (ChangeOp::Delete, None),
            (ChangeOp::Upsert, back.clone()),
            (ChangeOp::Upsert, back),
        ]
    );
    assert_eq!(
        of(3),
        vec![
            (ChangeOp::Upsert, Some(r#"{"id":3,"note":"x"}"#.to_owned())),
            (ChangeOp::Delete, None),
        ]
    );
    assert_eq!(
        metric(
            &metrics,
            r#"decant_skipped_records_total{reason="resent_before_delete",table="public.t"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"decant_toast_misses_total{policy="fail",table="public.t"}"#
        ),
        1.0
    );
    let committed = w.source.committed.borrow().clone();
    assert_eq!(committed.get(&(TOPIC.to_owned(), 0)), Some(&7));
    assert_eq!(
        committed.get(&(TOPIC.to_owned(), 1)),
        Some(&2),
        "held at the miss"
    );
    assert_eq!(w.store.keys_of("public.t").expect("keys").len(), 1);
}

/// A truncate marks the keys it deletes like a delete does: a TOAST-unchanged update the
/// connector sends again from before the truncate is skipped, not a TOAST miss.
#[test]
fn a_change_sent_again_from_before_a_truncate_is_skipped_not_a_toast_miss() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    let unchanged = Some("__debezium_unavailable_value");
    let mut src = MemorySource::default();
    for (op, note, lsn) in [("c", Some("long text"), 10), ("u", unchanged, 20)] {
        let (k, v) = change_at(op, 1, note, lsn);
        src.push(0, k, v);
    }
    src.push(
        0,
        None,
        Some(
            r#"{"source":{"db":"db","schema":"public","table":"t","lsn":30,"ts_ms":5},"op":"t","ts_ms":5}"#
                .into(),
        ),
    );
    let (k, v) = change_at("u", 1, unchanged, 20);
    src.push(0, k, v);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    let ops: Vec<ChangeOp> = w.sink.durable.iter().map(|o| o.op).collect();
    assert_eq!(
        ops,
        vec![ChangeOp::Upsert, ChangeOp::Upsert, ChangeOp::Truncate]
    );
    assert_eq!(
        metric(
            &metrics,
            r#"decant_skipped_records_total{reason="resent_before_delete",table="public.t"}"#
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "decant_quarantined_partitions"), 0.0);
    assert_eq!(w.source.committed_at(0), Some(4));
    assert!(w.store.keys_of("public.t").expect("keys").is_empty());
}

/// `keep_state = false` (a source that never sends the unavailable-value placeholder): no
/// change reaches the state, what an earlier run kept for the table is dropped (turned on
/// again, it must not fill from values it stopped following), and a placeholder that comes
/// anyway follows `on_toast_missing`, like a miss.
#[test]
fn a_table_without_state_keeps_nothing_and_drops_what_was_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let kept = config(&dir);
    let mut w = open(
        &kept,
        MemorySink::new(Resume::Group),
        source_of(&[(0, "c", 1, Some("long text")), (0, "c", 9, Some("x"))]),
        Arc::new(Metrics::new()),
    );
    drain(&mut w);
    w.commit().expect("commit");
    assert_eq!(w.store.keys_of("public.t").expect("keys").len(), 2);
    drop(w);

    let mut cfg = config(&dir);
    cfg.defaults.keep_state = false;
    cfg.defaults.on_truncate = TruncatePolicy::Skip;
    cfg.defaults.on_toast_missing = ToastPolicy::EmitWithoutColumn;
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let metrics = Arc::new(Metrics::new());
    let mut w = open(
        &cfg,
        MemorySink::new(Resume::Group),
        source_of(&[
            (0, "c", 2, Some("two")),
            (0, "u", 1, Some("__debezium_unavailable_value")),
            (0, "d", 2, Some("two")),
        ]),
        metrics.clone(),
    );
    drain(&mut w);
    assert!(
        w.batch.as_ref().is_some_and(|b| b.overlay.is_empty()),
        "nothing is staged for the state"
    );
    w.commit().expect("commit");
    assert_eq!(
        keys_and_values(&w.sink.durable),
        vec![
            upsert(2, r#"{"id":2,"note":"two"}"#),
            upsert(1, r#"{"id":1}"#),
            deleted(2),
        ],
        "key 1's note was kept by the earlier run, and is not filled from it"
    );
    assert!(
        w.store.keys_of("public.t").expect("keys").is_empty(),
        "the earlier run's keys are dropped and none are added"
    );
    let misses = r#"decant_toast_misses_total{policy="emit_without_column",table="public.t"}"#;
    assert_eq!(metric(&metrics, misses), 1.0, "the placeholder is a miss");
}

/// Without state, whether an upsert's key was written before is unknown: one that fails
/// `where` always becomes a delete, so a row that stops matching still leaves the output.
#[test]
fn without_state_an_upsert_that_fails_the_filter_is_always_a_delete() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(&dir);
    cfg.tables.insert(
        "public.t".into(),
        TableConfig {
            filter: vec![crate::config::Condition {
                column: "note".into(),
                op: crate::config::CondOp::Ne,
                value: Some(serde_json::json!("hidden")),
            }],
            keep_state: Some(false),
            on_truncate: Some(TruncatePolicy::Fail),
            ..TableConfig::default()
        },
    );
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let src = source_of(&[(0, "c", 1, Some("shown")), (0, "u", 1, Some("hidden"))]);
    let w = committed_run(&cfg, src);
    assert_eq!(
        keys_and_values(&w.sink.durable),
        vec![upsert(1, r#"{"id":1,"note":"shown"}"#), deleted(1),]
    );
    assert_eq!(w.store.len().expect("len"), 0);
}

#[test]
fn input_records_are_counted_by_table_and_op_as_a_topic_switches_tables() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(&dir);
    // `public.u` on the same topic as `public.t`: the topic's remembered route changes table
    // with every record, and each count must land under its own table.
    let table_u = |v: String| {
        v.replace(r#""table":"t""#, r#""table":"u""#)
            .replace("s.public.t.", "s.public.u.")
    };
    let mut src = MemorySource::default();
    push(&mut src, 0, "c", 1, Some("a"));
    let (k, v) = change("c", 2, Some("b"));
    src.push(0, k, v.map(table_u));
    push(&mut src, 0, "d", 1, Some("a"));
    let (k, v) = change("d", 2, Some("b"));
    src.push(0, k, v.map(table_u));
    push(&mut src, 0, "u", 3, None);
    let metrics = Arc::new(Metrics::new());
    let mut w = open(&cfg, MemorySink::new(Resume::Group), src, metrics.clone());
    drain(&mut w);
    w.commit().expect("commit");
    for (table, op, n) in [
        ("public.t", "upsert", 2.0),
        ("public.t", "delete", 1.0),
        ("public.u", "upsert", 1.0),
        ("public.u", "delete", 1.0),
    ] {
        let series = format!(r#"decant_input_records_total{{op="{op}",table="{table}"}}"#);
        assert_eq!(metric(&metrics, &series), n, "{series}");
    }
}
