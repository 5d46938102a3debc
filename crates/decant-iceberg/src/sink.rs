//! The Iceberg sink behind `decant_model::Sink`: each source table becomes a table keyed by its
//! primary key; a batch is reduced to the last state per key and becomes one snapshot per table
//! (equality deletes for every key the batch touched, plus the final rows), with the consumed
//! offsets and the batch's commit id in the snapshot. The tables are the source of truth for
//! progress ([`Resume::Own`]): a restart reads every partition from the smallest offset any
//! table still needs, and a table skips what it already holds ([`Sink::holds`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use decant_model::sink::{
    BatchStats, Change, ChangeOp, Commit, Committed, Destination, Offsets, OutputShape, Resume,
    SourceGroup, TopicPartition,
};
use decant_model::{
    ColumnType, Disposition, RetryClass, Sink, SinkError, TableId, error_chain as chain,
};
use serde_json::{Map, Value};

use crate::arrow_rows::{batch_from_rows, parse_row};
use crate::commit::{CommitOutcome, Progress, TableDelta};
use crate::config::IcebergSinkConfig;
use crate::error::IcebergError;
use crate::lake::{Lake, LakeConfig, LakeTable};
use crate::typed::{Decoded, StagedRow, batch_of};
use crate::types::TableLayout;

impl From<IcebergError> for SinkError {
    fn from(e: IcebergError) -> Self {
        // The loop cannot replay into tables (they keep their own progress): anything that is
        // not handled here stops the process, and a restart resumes from the tables.
        SinkError::new("iceberg", Disposition::Fatal, e)
    }
}

/// A destination table this process writes.
struct Dest {
    table: LakeTable,
    /// Next offset per source partition that the table already holds.
    progress: Offsets,
    /// When this process last committed to the table (or loaded it).
    last_commit: Instant,
}

/// The batch's changes for one destination.
struct Pending {
    ns: String,
    name: String,
    /// `None`: only deletes of an existing table (a truncate before any row of this run).
    shape: Option<Arc<OutputShape>>,
    /// Key JSON → the final upsert in `staged` (`None`: deleted).
    rows: AHashMap<String, Option<usize>>,
    /// Every upsert of the batch in decoding order; the final ones are `live`.
    staged: Vec<StagedRow>,
}

/// A source table's destination: namespace, name and `ns.name` label.
#[derive(Clone)]
struct Named {
    ns: String,
    name: String,
    label: String,
}

/// The Iceberg sink.
pub struct IcebergSink {
    cfg: IcebergSinkConfig,
    /// `output.prefix`, the `{prefix}` of the name templates.
    prefix: String,
    lake: Lake,
    /// Destination tables by `ns.name`.
    dests: HashMap<String, Dest>,
    /// Tables stopped by an incompatible schema change (why); their rows wait for a restart.
    stopped: HashMap<String, String>,
    pending: AHashMap<String, Pending>,
    /// Pending batches whose tables are open, between `prepare` and `commit`.
    ready: Vec<(String, Pending)>,
    /// Destination of each source table (by label).
    names: AHashMap<String, Named>,
    /// The decoded batches the open batch's upserts point into.
    decoded: Decoded,
    batch_bytes: u64,
    /// Each destination's (keys, upserts) in its last committed batch: the next batch's maps
    /// start that large instead of growing (copying and re-faulting) their way there.
    sizes: AHashMap<String, (usize, usize)>,
}

impl IcebergSink {
    /// Connects to the catalog. `pipeline` is the id stored on the tables (two processes with
    /// the same id fence each other); `prefix` fills `{prefix}` in the name templates.
    pub fn open(
        cfg: IcebergSinkConfig,
        pipeline: String,
        prefix: String,
    ) -> Result<Self, IcebergError> {
        let lake = Lake::open(LakeConfig {
            catalog_uri: cfg.catalog_uri.clone(),
            catalog_name: cfg.catalog_name.clone(),
            warehouse: cfg.warehouse.clone(),
            pipeline,
            target_file_size_bytes: cfg.target_file_size_bytes as usize,
            table_properties: cfg.table_properties.clone().into_iter().collect(),
            storage_properties: cfg.storage.clone().into_iter().collect(),
            catalog_properties: cfg.catalog_properties.clone().into_iter().collect(),
        })?;
        Ok(IcebergSink {
            cfg,
            prefix,
            lake,
            dests: HashMap::new(),
            stopped: HashMap::new(),
            pending: AHashMap::new(),
            ready: Vec::new(),
            names: AHashMap::new(),
            decoded: Decoded::new(),
            batch_bytes: 0,
            sizes: AHashMap::new(),
        })
    }

    /// Destination namespace and table of a source table.
    fn name_of(&self, table: &TableId) -> Named {
        let fill = |t: &str| {
            t.replace("{schema}", &table.namespace)
                .replace("{table}", &table.name)
                .replace("{prefix}", &self.prefix)
        };
        let mut ns = fill(&self.cfg.namespace);
        if ns.is_empty() {
            ns = "default".into();
        }
        let name = fill(&self.cfg.table);
        Named {
            label: format!("{ns}.{name}"),
            ns,
            name,
        }
    }

    /// [`IcebergSink::name_of`], remembered by source label.
    fn named(&mut self, table: &TableId, label: &str) -> &Named {
        if !self.names.contains_key(label) {
            let named = self.name_of(table);
            self.names.insert(label.to_owned(), named);
        }
        &self.names[label]
    }

    /// `ns.name` of a source table (read-only paths; borrowed when remembered, which every
    /// table that reached `write` is).
    fn dest_label(&self, table: &TableId, label: &str) -> Cow<'_, str> {
        match self.names.get(label) {
            Some(n) => Cow::Borrowed(n.label.as_str()),
            None => Cow::Owned(self.name_of(table).label),
        }
    }

    /// Opens (creates, evolves, claims) the destination; `false` when it is stopped.
    fn open_dest(&mut self, label: &str, p: &Pending) -> Result<bool, IcebergError> {
        if self.stopped.contains_key(label) {
            return Ok(false);
        }
        let layout = p
            .shape
            .as_ref()
            .map(|s| TableLayout::new(s.columns.clone(), s.key.clone()));
        let opened = match (self.dests.get_mut(label), &layout) {
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
                let progress = table.progress(&self.lake)?.offsets;
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
            Err(e) => Err(e),
        }
    }

    fn stop_table(&mut self, label: &str, e: &IcebergError) {
        let why = chain(e);
        tracing::error!(table = label, error = %why, "stopping this table until restart; the other tables keep flowing");
        self.stopped.insert(label.to_owned(), why);
    }

    /// One table's batch as the files' rows: the final row of every upserted key and the keys
    /// of pure deletes (`None`: the table has no destination). Returns the delta and its
    /// (upserts, deletes).
    fn delta_of(
        &self,
        label: &str,
        p: &Pending,
        commit_id: &str,
        offsets: &Offsets,
    ) -> Result<Option<(TableDelta, u64, u64)>, IcebergError> {
        let Some(dest) = self.dests.get(label) else {
            return Ok(None);
        };
        let schema = dest.table.arrow_schema()?;
        // Key columns holding JSON documents (a jsonb primary key): stored as their text, which
        // a key's JSON cannot tell from a text column's value.
        let documents: Vec<&str> = p.shape.as_ref().map_or_else(Vec::new, |s| {
            s.key
                .iter()
                .zip(&s.key_types)
                .filter(|(_, ty)| **ty == ColumnType::Json)
                .map(|(name, _)| name.as_str())
                .collect()
        });
        let parse = |json: &str| -> Result<Map<String, Value>, IcebergError> {
            parse_row(&schema, json, &documents).map_err(|why| IcebergError::Inconsistent {
                table: label.to_owned(),
                why: format!("re-reading a rendered key: {why}"),
            })
        };
        let incompatible = |why: String| IcebergError::IncompatibleSchema {
            table: label.to_owned(),
            why,
        };
        // Built a chunk at a time. Upserts are gathered from the decoded columns, and they are
        // also their own keys' equality deletes (the writer projects the key columns); only the
        // keys of pure deletes are parsed from their (small) JSON.
        const CHUNK: usize = 8192;
        let (mut upserts, mut deleted) = (Vec::new(), Vec::new());
        let mut del_rows = Vec::new();
        for key in p.rows.iter().filter_map(|(k, v)| v.is_none().then_some(k)) {
            del_rows.push(parse(key)?);
            if del_rows.len() >= CHUNK {
                deleted.push(batch_from_rows(&schema, &del_rows).map_err(incompatible)?);
                del_rows.clear();
            }
        }
        if !del_rows.is_empty() {
            deleted.push(batch_from_rows(&schema, &del_rows).map_err(incompatible)?);
        }
        // The final upserts in decoding order (see `batch_of`), no sort and no hash-order hops.
        let mut up_rows = Vec::with_capacity(CHUNK);
        for r in p.staged.iter().filter(|r| r.live) {
            up_rows.push(r);
            if up_rows.len() >= CHUNK {
                upserts.push(batch_of(&schema, &up_rows, &self.decoded).map_err(incompatible)?);
                up_rows.clear();
            }
        }
        if !up_rows.is_empty() {
            upserts.push(batch_of(&schema, &up_rows, &self.decoded).map_err(incompatible)?);
        }
        let ups = upserts.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        let mut deletes = upserts.clone();
        deletes.extend(deleted);
        let delta = TableDelta {
            upserts,
            deletes,
            commit_id: commit_id.to_owned(),
            offsets: offsets.clone(),
        };
        Ok(Some((delta, ups, p.rows.len() as u64 - ups)))
    }

    /// Commits one table's delta (from [`Self::delta_of`]).
    fn commit_table(
        &mut self,
        label: &str,
        delta: &TableDelta,
        (ups, dels): (u64, u64),
    ) -> Result<(), IcebergError> {
        let Some(dest) = self.dests.get_mut(label) else {
            return Ok(());
        };
        let (commit_id, offsets) = (&delta.commit_id, &delta.offsets);
        let outcome = dest.table.commit(&self.lake, delta)?;
        for (tp, o) in offsets {
            let e = dest.progress.entry(tp.clone()).or_insert(*o);
            *e = (*e).max(*o);
        }
        dest.last_commit = Instant::now();
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
            CommitOutcome::AlreadyCommitted => tracing::warn!(
                table = label,
                commit_id,
                "the batch was already committed (an earlier attempt landed)"
            ),
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
        offsets: &Offsets,
        committed: &HashSet<String>,
    ) -> Result<(), IcebergError> {
        let idle = Duration::from_millis(self.cfg.idle_commit_interval_ms);
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
                Err(e) if e.retry_class() != RetryClass::Fatal => {
                    tracing::warn!(table = label.as_str(), error = %chain(&e), "committing the offsets of a table without changes failed; retrying later");
                    dest.last_commit = Instant::now();
                    continue;
                }
                Err(e) => return Err(e),
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
}

impl Sink for IcebergSink {
    fn name(&self) -> &'static str {
        "iceberg"
    }

    /// Claims every table of this pipeline for this writer (an older process still running can
    /// no longer commit to any of them), then reads their progress: a partition starts at the
    /// smallest next offset over the tables, or at the beginning if a table has none for it.
    fn resume(&mut self) -> Result<Resume, SinkError> {
        for (ns, name) in self.lake.all_pipeline_tables()? {
            let table = self.lake.claim(&ns, &name)?;
            let progress = table.progress(&self.lake)?.offsets;
            self.dests.insert(
                format!("{ns}.{name}"),
                Dest {
                    table,
                    progress,
                    last_commit: Instant::now(),
                },
            );
        }
        let mut start: Offsets = BTreeMap::new();
        let mut first = true;
        for d in self.dests.values() {
            if first {
                start = d.progress.clone();
                first = false;
            } else {
                start.retain(|tp, o| match d.progress.get(tp) {
                    Some(held) => {
                        *o = (*o).min(*held);
                        true
                    }
                    None => false,
                });
            }
        }
        tracing::info!(
            pipeline = %self.lake.pipeline(),
            epoch = self.lake.epoch(),
            tables = self.dests.len(),
            "Iceberg sink ready"
        );
        Ok(Resume::Own(start))
    }

    fn offsets_in_commit(&self) -> bool {
        true
    }

    fn open_destination(&mut self, _dest: Destination<'_>) -> Result<(), SinkError> {
        // Tables are created (or evolved) at commit, from the batch's layout.
        Ok(())
    }

    fn holds(&self, dest: Destination<'_>, partition: &TopicPartition, offset: i64) -> bool {
        if self.dests.is_empty() {
            return false;
        }
        let label = self.dest_label(dest.table, dest.label);
        self.dests
            .get(label.as_ref())
            .and_then(|d| d.progress.get(partition))
            .is_some_and(|next| offset < *next)
    }

    fn is_stopped(&self, dest: Destination<'_>) -> bool {
        !self.stopped.is_empty()
            && self
                .stopped
                .contains_key(self.dest_label(dest.table, dest.label).as_ref())
    }

    fn stopped_destinations(&self) -> Vec<(&str, &str)> {
        self.stopped
            .iter()
            .map(|(label, why)| (label.as_str(), why.as_str()))
            .collect()
    }

    fn begin(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn wants_typed_rows(&self) -> bool {
        true
    }

    fn write(&mut self, c: &Change<'_>) -> Result<(), SinkError> {
        self.named(c.dest.table, c.dest.label);
        if let Some(r) = &c.typed
            && !self.decoded.contains_key(&r.batch_id)
        {
            // What the batch holds: every decoded batch an upsert points into, whole.
            self.batch_bytes += r.columns.get_array_memory_size() as u64;
            self.decoded.insert(r.batch_id, r.columns.clone());
        }
        // Names are cloned only when a destination first enters the batch, not per change.
        let named = &self.names[c.dest.label];
        if !self.pending.contains_key(&named.label) {
            let (keys, upserts) = self.sizes.get(&named.label).copied().unwrap_or_default();
            self.pending.insert(
                named.label.clone(),
                Pending {
                    ns: named.ns.clone(),
                    name: named.name.clone(),
                    shape: None,
                    rows: AHashMap::with_capacity(keys),
                    staged: Vec::with_capacity(upserts),
                },
            );
        }
        let Some(p) = self.pending.get_mut(&named.label) else {
            return Err(SinkError::fatal("a destination vanished from the batch"));
        };
        if c.op == ChangeOp::Upsert || c.op == ChangeOp::Delete {
            match &p.shape {
                Some(s) if Arc::ptr_eq(s, c.shape) => {}
                _ => p.shape = Some(c.shape.clone()),
            }
        }
        let slot = match (&c.typed, c.op) {
            (Some(r), ChangeOp::Upsert) => {
                let staged = StagedRow::new(r, c.shape).map_err(SinkError::fatal)?;
                self.batch_bytes += staged.held_bytes() as u64;
                p.staged.push(staged);
                Some(p.staged.len() - 1)
            }
            (None, ChangeOp::Upsert) => {
                return Err(SinkError::fatal(
                    "the Iceberg sink takes upserts as decoded columns",
                ));
            }
            _ => None,
        };
        match p.rows.get_mut(c.key) {
            Some(s) => {
                if let Some(earlier) = *s {
                    p.staged[earlier].live = false;
                }
                *s = slot;
            }
            None => {
                // The key's copy, its bucket and the table's control byte.
                self.batch_bytes +=
                    (c.key.len() + std::mem::size_of::<(String, Option<usize>)>() + 1) as u64;
                p.rows.insert(c.key.to_owned(), slot);
            }
        }
        Ok(())
    }

    fn commit_due(&self, batch: &BatchStats) -> bool {
        batch.age >= Duration::from_millis(self.cfg.commit_interval_ms)
            || batch.records >= self.cfg.commit_max_rows
            || self.batch_bytes >= self.cfg.commit_max_bytes
    }

    /// Every destination of the batch exists (and is ours) before anything commits.
    fn prepare(&mut self, _commit: &Commit<'_>) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.pending);
        for (label, p) in pending {
            if self.open_dest(&label, &p)? {
                self.ready.push((label, p));
            }
        }
        Ok(())
    }

    fn commit(
        &mut self,
        commit: &Commit<'_>,
        _group: &dyn SourceGroup,
    ) -> Result<Committed, SinkError> {
        // Every table's rows are gathered first, so the decoded batches they come from can be
        // released before the Parquet writers run: the batch is held once, never twice, at the
        // peak of the commit.
        let mut deltas = Vec::new();
        for (label, p) in std::mem::take(&mut self.ready) {
            self.sizes
                .insert(label.clone(), (p.rows.len(), p.staged.len()));
            match self.delta_of(&label, &p, commit.id, commit.all_offsets) {
                Ok(Some((delta, ups, dels))) => deltas.push((label, delta, (ups, dels))),
                Ok(None) => {}
                Err(e) if e.is_table_scoped() => self.stop_table(&label, &e),
                Err(e) => return Err(e.into()),
            }
        }
        self.decoded.clear();
        self.batch_bytes = 0;
        let mut written = BTreeMap::new();
        let mut committed_labels: HashSet<String> = HashSet::new();
        for (label, delta, (ups, dels)) in deltas {
            match self.commit_table(&label, &delta, (ups, dels)) {
                Ok(()) => {
                    if ups > 0 {
                        written.insert((label.clone(), "upsert"), ups);
                    }
                    if dels > 0 {
                        written.insert((label.clone(), "delete"), dels);
                    }
                    committed_labels.insert(label);
                }
                Err(e) if e.is_table_scoped() => self.stop_table(&label, &e),
                Err(e) => return Err(e.into()),
            }
        }
        self.advance_quiet_tables(commit.id, commit.all_offsets, &committed_labels)?;
        Ok(Committed { written })
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.ready.clear();
        self.decoded.clear();
        self.batch_bytes = 0;
    }

    fn idle(&mut self, offsets: &Offsets) -> Result<(), SinkError> {
        let id = uuid::Uuid::new_v4().to_string();
        Ok(self.advance_quiet_tables(&id, offsets, &HashSet::new())?)
    }

    /// Every table of the pipeline was claimed and loaded by `resume`.
    fn landed(
        &mut self,
        id: &str,
        staged: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, SinkError> {
        let holds: HashSet<&str> = self
            .dests
            .iter()
            .filter(|(_, d)| {
                Progress::contains_commit(d.table.table().metadata(), self.lake.pipeline(), id)
            })
            .map(|(label, _)| label.as_str())
            .collect();
        Ok(staged
            .iter()
            .filter(|source| {
                let table = TableId::parse(source);
                holds.contains(self.dest_label(&table, source).as_ref())
            })
            .cloned()
            .collect())
    }
}
