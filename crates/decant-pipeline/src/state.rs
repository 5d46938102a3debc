//! The local state store (redb): per output key, the last value of every TOAST-able column
//! (and so an index of every live key, for truncates), and for a while after a key's delete,
//! where in the source that delete was (a [`Deleted`] mark).
//!
//! The marks are for Debezium's at-least-once delivery: a connector restarted (a Connect
//! rebalance, a broker outage) sends again what it sent after its last offset flush. A
//! re-sent update whose TOASTed column is unchanged may then come after decant applied the
//! key's later delete, when the key's values are gone; its mark tells decant that the update
//! is older than the delete (the re-sent delete follows it), not a value decant never saw.
//! Marks are dropped once they are the retention ([`StateStore::with_deleted_retention`]) older, in source time,
//! than the newest mark of their source table (an index by table and time, `DELETED`, finds
//! them): each table keeps its own clock, so a connector that lags (or was down) keeps its
//! marks for when it re-sends, whatever the other connectors' tables do meanwhile.
//!
//! It never disagrees with Kafka: a transaction's changes are first *staged* (durably, together
//! with the source offsets the transaction commits), then the Kafka transaction commits, then
//! the staged changes are *applied*. After a crash, [`StateStore::pending_offsets`] tells what
//! was staged; the pipeline compares it with the group's committed offsets and applies the
//! staged changes if that transaction committed, or discards them if it did not.

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use crate::error::PipelineError;

/// Output key (`table \0 key-json`) → encoded [`ToastEntry`].
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// Staged changes, serialised in chunks of about [`CHUNK_BYTES`] (see [`encode_staged`]): one
/// insert per chunk rather than one B-tree insert per change, which was a tenth of the loop's
/// CPU when every change was staged as its own row.
const PENDING_CHUNKS: TableDefinition<u32, &[u8]> = TableDefinition::new("pending_chunks");
/// Staged changes as decant wrote them before chunked staging, one row per key (`[1] + entry` for a put,
/// `[0]` for a delete). Read and cleared so that a store staged by an older binary still
/// resolves after an upgrade; never written.
const LEGACY_PENDING_ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending_rows");
/// The [`Deleted`] marks in [`ROWS`] by source table and the delete's source time: (table
/// label, ts_ms, store key).
const DELETED: TableDefinition<(&[u8], i64, &[u8]), ()> = TableDefinition::new("deleted");
/// Source offsets the staged transaction commits: (topic, partition) → next offset.
const PENDING_OFFSETS: TableDefinition<(&str, i32), i64> = TableDefinition::new("pending_offsets");

/// Target size of one staged chunk: large enough that redb's per-insert cost vanishes, small
/// enough that staging never holds a second copy of a whole batch in memory.
const CHUNK_BYTES: usize = 1 << 20;

fn store_err(e: impl Into<redb::Error>) -> PipelineError {
    PipelineError::State(e.into())
}

/// The source table label of a store key (`label \0 key`).
pub(crate) fn label_of(key: &[u8]) -> &[u8] {
    &key[..key.iter().position(|&b| b == 0).unwrap_or(key.len())]
}

/// The bounds of table `label`'s store keys: `label \0` (inclusive) to `label \1` (exclusive).
/// `label \0` is also the byte string right after `label`, which bounds the table's marks.
fn table_bounds(label: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let bound = |b: u8| {
        let mut k = Vec::with_capacity(label.len() + 1);
        k.extend_from_slice(label);
        k.push(b);
        k
    };
    (bound(0), bound(1))
}

/// The store key of an output key.
pub fn row_key(table: &str, key_json: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + 1 + key_json.len());
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k.extend_from_slice(key_json.as_bytes());
    k
}

pub use crate::overlay::Overlay;

/// How long, by default, a deleted key's [`Deleted`] mark is kept (source time): a re-sent
/// change reaches back to the connector's last offset flush (a minute by default in Kafka
/// Connect), and an hour leaves room for long flush intervals.
pub const DEFAULT_DELETED_RETENTION_SECS: u64 = 3600;

/// Where in the source a key was deleted, kept in place of its entry (see the module
/// documentation). Only for sources whose changes of one key come in increasing `lsn`
/// (PostgreSQL: a row's changes are serialised by its lock, and a delete's LSN is past every
/// earlier change of the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The delete's `source.lsn`.
    pub lsn: i64,
    /// The delete's `source.ts_ms`: when the mark may go.
    pub ts_ms: i64,
}

/// What starts a [`Deleted`] mark: a name length no column has (names are at most 63 bytes
/// in PostgreSQL, 64 in MySQL), so that an entry never reads as a mark, and a binary that
/// predates marks reads one as an entry with no values.
const DELETED_TAG: &[u8; 3] = b"\xff\xffD";

impl Deleted {
    /// The delete of a change at `position`, if its source orders a key's changes by LSN.
    pub fn at(position: &decant_model::SourcePosition) -> Option<Deleted> {
        Some(Deleted {
            lsn: position.lsn?,
            ts_ms: position.ts_ms?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DELETED_TAG.len() + 16);
        out.extend_from_slice(DELETED_TAG);
        out.extend_from_slice(&self.lsn.to_le_bytes());
        out.extend_from_slice(&self.ts_ms.to_le_bytes());
        out
    }

    /// The mark `stored` is, if it is one.
    pub fn decode(stored: &[u8]) -> Option<Deleted> {
        let rest = stored.strip_prefix(DELETED_TAG.as_slice())?;
        let (lsn, ts) = (rest.get(..8)?, rest.get(8..16)?);
        Some(Deleted {
            lsn: i64::from_le_bytes(lsn.try_into().ok()?),
            ts_ms: i64::from_le_bytes(ts.try_into().ok()?),
        })
    }
}

/// Whether a stored value is a live key's entry (not a [`Deleted`] mark).
pub fn is_entry(stored: &[u8]) -> bool {
    !stored.starts_with(DELETED_TAG)
}

/// What the open transaction (`overlay`), else the store, holds for `key`: an entry or a mark.
fn stored_of(
    store: &StateStore,
    overlay: Option<&Overlay>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, PipelineError> {
    match overlay.and_then(|o| o.get(key)) {
        Some(change) => Ok(change.map(<[u8]>::to_vec)),
        None => store.get(key),
    }
}

/// The last entry of `key` (none when the key is deleted): the open transaction's change
/// (`overlay`), else the store.
pub fn entry_of(
    store: &StateStore,
    overlay: Option<&Overlay>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, PipelineError> {
    Ok(stored_of(store, overlay, key)?.filter(|v| is_entry(v)))
}

/// The [`Deleted`] mark of `key`, if the key's last change was a marked delete.
pub fn deleted_of(
    store: &StateStore,
    overlay: Option<&Overlay>,
    key: &[u8],
) -> Result<Option<Deleted>, PipelineError> {
    Ok(stored_of(store, overlay, key)?.and_then(|v| Deleted::decode(&v)))
}

/// The entry an upsert of `key` fills its TOAST-unchanged columns from: the key's own, else,
/// when the upsert is the new half of a primary-key change, the old key's (`old_key`; the two
/// halves may come in either order when they sit in different source partitions).
pub fn previous_entry(
    store: &StateStore,
    overlay: Option<&Overlay>,
    key: &[u8],
    old_key: Option<&[u8]>,
) -> Result<Option<ToastEntry>, PipelineError> {
    let mut entry = entry_of(store, overlay, key)?;
    if entry.is_none()
        && let Some(old) = old_key
    {
        entry = entry_of(store, overlay, old)?;
    }
    Ok(entry.as_deref().map(ToastEntry::decode))
}

/// Stages the delete of `key`, marked where the source says it was (`deleted`), else removed.
/// When the delete is the old half of a primary-key change (`new_key`), the key's entry moves
/// to the new key in the same staged transaction, unless the new key already has one (its
/// create was read first, from another partition, and its own entry is newer) or was deleted
/// after this change.
pub fn stage_delete(
    store: &StateStore,
    overlay: &mut Overlay,
    key: Vec<u8>,
    new_key: Option<Vec<u8>>,
    deleted: Option<Deleted>,
) -> Result<(), PipelineError> {
    // The new key keeps what it has when that is newer: its own entry, or a mark of its
    // delete after this change (its halves came from another partition first).
    let new_key_is_newer = |stored: Option<Vec<u8>>| match stored {
        None => false,
        Some(v) => match (Deleted::decode(&v), deleted) {
            (Some(mark), Some(this)) => mark.lsn > this.lsn,
            (Some(_), None) => true,
            (None, _) => true,
        },
    };
    if let Some(new_key) = new_key
        && !new_key_is_newer(stored_of(store, Some(overlay), &new_key)?)
        && let Some(entry) = entry_of(store, Some(overlay), &key)?
    {
        overlay.insert(&new_key, Some(&entry));
    }
    match deleted {
        Some(mark) => overlay.insert(&key, Some(&mark.encode())),
        None => overlay.insert(&key, None),
    }
    Ok(())
}

/// redb's page cache in MiB unless `state.cache_mib` says otherwise. redb's own default (1 GiB)
/// lets the process grow with the store until it holds that much; the pages a batch touches
/// fit in far less, and the rest stays in the operating system's page cache. The throughput
/// harness measured 16 MiB no slower than 64 MiB into topics or Iceberg, with a peak RSS
/// 20–60 MiB lower.
pub const DEFAULT_CACHE_MIB: u64 = 16;

pub struct StateStore {
    db: Database,
    /// How much older (source time) than the newest [`Deleted`] mark a mark may get.
    deleted_retention_ms: i64,
}

impl StateStore {
    /// Opens (or creates) `dir/state.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Self, PipelineError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MIB << 20)
    }

    /// Opens (or creates) `dir/state.redb`, with at most `cache_bytes` of redb's page cache.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::Io {
            what: format!("creating state dir {}", dir.display()),
            source: e,
        })?;
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(dir.join("state.redb"))
            .map_err(store_err)?;
        let tx = db.begin_write().map_err(store_err)?;
        tx.open_table(ROWS).map_err(store_err)?;
        tx.open_table(PENDING_CHUNKS).map_err(store_err)?;
        tx.open_table(LEGACY_PENDING_ROWS).map_err(store_err)?;
        tx.open_table(PENDING_OFFSETS).map_err(store_err)?;
        tx.open_table(DELETED).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(StateStore {
            db,
            deleted_retention_ms: (DEFAULT_DELETED_RETENTION_SECS * 1000) as i64,
        })
    }

    /// Keeps [`Deleted`] marks for `secs` of source time after the newest one.
    pub fn with_deleted_retention(mut self, secs: u64) -> Self {
        self.deleted_retention_ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(ROWS).map_err(store_err)?;
        Ok(t.get(key).map_err(store_err)?.map(|v| v.value().to_vec()))
    }

    /// Every live key of `table` (not the deleted ones still marked).
    pub fn keys_of(&self, table: &str) -> Result<Vec<Vec<u8>>, PipelineError> {
        let (lo, hi) = table_bounds(table.as_bytes());
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(ROWS).map_err(store_err)?;
        let mut out = Vec::new();
        for item in t.range(lo.as_slice()..hi.as_slice()).map_err(store_err)? {
            let (k, v) = item.map_err(store_err)?;
            if is_entry(v.value()) {
                out.push(k.value().to_vec());
            }
        }
        Ok(out)
    }

    /// Drops everything kept for table `label` (entries, the key index, delete marks), durably;
    /// returns how many keys it held (live or marked). For a table whose state is no longer kept
    /// (`keep_state = false`): were it turned on again, stale values would fill TOAST-unchanged
    /// columns, where an empty state reports them as misses.
    pub fn forget_table(&self, label: &str) -> Result<u64, PipelineError> {
        let (lo, hi) = table_bounds(label.as_bytes());
        let tx = self.db.begin_write().map_err(store_err)?;
        let mut removed = 0;
        {
            let mut rows = tx.open_table(ROWS).map_err(store_err)?;
            rows.retain_in(lo.as_slice()..hi.as_slice(), |_, _| {
                removed += 1;
                false
            })
            .map_err(store_err)?;
            let mut marks = tx.open_table(DELETED).map_err(store_err)?;
            // `label \0` is the byte string right after `label`: the range holds its marks only.
            let first = (label.as_bytes(), i64::MIN, [].as_slice());
            marks
                .retain_in(first..(lo.as_slice(), i64::MIN, [].as_slice()), |_, _| {
                    false
                })
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)?;
        Ok(removed)
    }

    /// How many live keys the store holds.
    pub fn len(&self) -> Result<u64, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let rows = tx.open_table(ROWS).map_err(store_err)?.len();
        let marks = tx.open_table(DELETED).map_err(store_err)?.len();
        Ok(rows
            .map_err(store_err)?
            .saturating_sub(marks.map_err(store_err)?))
    }

    /// How many deleted keys are still marked.
    #[cfg(test)]
    pub fn deleted_len(&self) -> Result<u64, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(DELETED).map_err(store_err)?;
        t.len().map_err(store_err)
    }

    pub fn is_empty(&self) -> Result<bool, PipelineError> {
        Ok(self.len()? == 0)
    }

    /// Durably records `overlay` and the offsets its transaction commits, before that commit.
    /// The changes go in key order, so that applying them walks the B-tree once, left to right.
    pub fn stage(
        &self,
        overlay: &Overlay,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), PipelineError> {
        let mut changes: Vec<(&[u8], Option<&[u8]>)> = overlay.iter().collect();
        changes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut chunks = tx.open_table(PENDING_CHUNKS).map_err(store_err)?;
            chunks.retain(|_, _| false).map_err(store_err)?;
            let mut chunk = Vec::with_capacity(CHUNK_BYTES.min(64 << 10));
            let mut n: u32 = 0;
            for (key, entry) in changes {
                encode_staged(key, entry, &mut chunk);
                if chunk.len() >= CHUNK_BYTES {
                    chunks.insert(n, chunk.as_slice()).map_err(store_err)?;
                    chunk.clear();
                    n += 1;
                }
            }
            if !chunk.is_empty() {
                chunks.insert(n, chunk.as_slice()).map_err(store_err)?;
            }
            tx.open_table(LEGACY_PENDING_ROWS)
                .map_err(store_err)?
                .retain(|_, _| false)
                .map_err(store_err)?;
            let mut offs = tx.open_table(PENDING_OFFSETS).map_err(store_err)?;
            offs.retain(|_, _| false).map_err(store_err)?;
            for (t, p, o) in offsets {
                offs.insert((t.as_str(), *p), *o).map_err(store_err)?;
            }
        }
        tx.commit().map_err(store_err)
    }

    /// What a previous run staged and may or may not have committed to Kafka.
    pub fn pending_offsets(&self) -> Result<Vec<(String, i32, i64)>, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(PENDING_OFFSETS).map_err(store_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(store_err)? {
            let (k, v) = item.map_err(store_err)?;
            let (topic, partition) = k.value();
            out.push((topic.to_owned(), partition, v.value()));
        }
        Ok(out)
    }

    /// Store keys of the staged changes.
    pub fn pending_keys(&self) -> Result<Vec<Vec<u8>>, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let chunks = tx.open_table(PENDING_CHUNKS).map_err(store_err)?;
        let mut out = Vec::new();
        for item in chunks.iter().map_err(store_err)? {
            let (_, chunk) = item.map_err(store_err)?;
            for staged in StagedChanges(chunk.value()) {
                out.push(staged?.0.to_vec());
            }
        }
        let legacy = tx.open_table(LEGACY_PENDING_ROWS).map_err(store_err)?;
        for item in legacy.iter().map_err(store_err)? {
            out.push(item.map_err(store_err)?.0.value().to_vec());
        }
        Ok(out)
    }

    pub fn has_pending(&self) -> Result<bool, PipelineError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let chunks = tx.open_table(PENDING_CHUNKS).map_err(store_err)?;
        let legacy = tx.open_table(LEGACY_PENDING_ROWS).map_err(store_err)?;
        let offs = tx.open_table(PENDING_OFFSETS).map_err(store_err)?;
        Ok(!chunks.is_empty().map_err(store_err)?
            || !legacy.is_empty().map_err(store_err)?
            || !offs.is_empty().map_err(store_err)?)
    }

    /// Moves the staged changes into the store (their commit landed). Not synced on its own:
    /// if it is lost in a crash, the staged changes are still there, and they resolve the same
    /// way again (the offsets they were staged with are committed).
    pub fn apply_pending(&self) -> Result<(), PipelineError> {
        self.finish_pending_with(|_| true, Durability::None)
    }

    /// Drops the staged changes (their commit did not land). Synced: were the drop lost in a
    /// crash, the staged changes would come back after later commits had moved the group's
    /// offsets past theirs, and would then look committed.
    pub fn discard_pending(&self) -> Result<(), PipelineError> {
        self.finish_pending_with(|_| false, Durability::Immediate)
    }

    /// Applies the staged changes whose store key `keep` accepts and drops the rest (a batch
    /// that committed to some destinations and not to others). Synced, like a discard.
    pub fn resolve_pending_where(&self, keep: impl Fn(&[u8]) -> bool) -> Result<(), PipelineError> {
        self.finish_pending_with(|k| keep(k), Durability::Immediate)
    }

    fn finish_pending_with(
        &self,
        apply: impl Fn(&[u8]) -> bool,
        durability: Durability,
    ) -> Result<(), PipelineError> {
        let mut tx = self.db.begin_write().map_err(store_err)?;
        tx.set_durability(durability).map_err(store_err)?;
        {
            let mut rows = tx.open_table(ROWS).map_err(store_err)?;
            let mut marks = tx.open_table(DELETED).map_err(store_err)?;
            // Tables that got marks in this apply, and how many: only their clocks move.
            let mut marked: std::collections::HashMap<Vec<u8>, usize> = Default::default();
            let mut put = |key: &[u8], entry: Option<&[u8]>| -> Result<(), PipelineError> {
                if !apply(key) {
                    return Ok(());
                }
                // The index follows the marks that come and go.
                let old = match entry {
                    Some(entry) => rows.insert(key, entry),
                    None => rows.remove(key),
                }
                .map_err(store_err)?
                .and_then(|old| Deleted::decode(old.value()));
                let label = label_of(key);
                if let Some(old) = old {
                    marks.remove((label, old.ts_ms, key)).map_err(store_err)?;
                }
                if let Some(new) = entry.and_then(Deleted::decode) {
                    marks
                        .insert((label, new.ts_ms, key), ())
                        .map_err(store_err)?;
                    *marked.entry(label.to_vec()).or_default() += 1;
                }
                Ok(())
            };
            let mut chunks = tx.open_table(PENDING_CHUNKS).map_err(store_err)?;
            for item in chunks.iter().map_err(store_err)? {
                let (_, chunk) = item.map_err(store_err)?;
                for staged in StagedChanges(chunk.value()) {
                    let (key, entry) = staged?;
                    put(key, entry)?;
                }
            }
            chunks.retain(|_, _| false).map_err(store_err)?;
            let mut legacy = tx.open_table(LEGACY_PENDING_ROWS).map_err(store_err)?;
            for item in legacy.iter().map_err(store_err)? {
                let (k, v) = item.map_err(store_err)?;
                let v = v.value();
                put(k.value(), (v.first() == Some(&1)).then(|| &v[1..]))?;
            }
            legacy.retain(|_, _| false).map_err(store_err)?;
            let mut offs = tx.open_table(PENDING_OFFSETS).map_err(store_err)?;
            offs.retain(|_, _| false).map_err(store_err)?;
            for (label, added) in marked {
                self.expire_marks(&mut rows, &mut marks, &label, added)?;
            }
        }
        tx.commit().map_err(store_err)
    }

    /// Drops the [`Deleted`] marks of table `label` that are more than the retention older
    /// than its newest mark: at most [`EXPIRE_PER_COMMIT`] more than the `added` marks this
    /// apply gave it, so that expiry keeps up with any rate of deletes while a backlog (a
    /// retention shortened by a restart) goes in bounded steps.
    fn expire_marks(
        &self,
        rows: &mut redb::Table<&[u8], &[u8]>,
        marks: &mut redb::Table<(&[u8], i64, &[u8]), ()>,
        label: &[u8],
        added: usize,
    ) -> Result<(), PipelineError> {
        // `label \0` is the byte string right after `label`: the range holds its marks only.
        let (next_label, _) = table_bounds(label);
        let first = (label, i64::MIN, [].as_slice());
        let newest = marks
            .range(first..(next_label.as_slice(), i64::MIN, [].as_slice()))
            .map_err(store_err)?
            .next_back()
            .transpose()
            .map_err(store_err)?
            .map(|(k, _)| k.value().1);
        let Some(newest) = newest else {
            return Ok(());
        };
        let cutoff = newest.saturating_sub(self.deleted_retention_ms);
        let mut expired: Vec<(i64, Vec<u8>)> = Vec::new();
        for item in marks
            .range(first..(label, cutoff, [].as_slice()))
            .map_err(store_err)?
            .take(added.saturating_add(EXPIRE_PER_COMMIT))
        {
            let (k, _) = item.map_err(store_err)?;
            let (_, ts, key) = k.value();
            expired.push((ts, key.to_vec()));
        }
        for (ts, key) in expired {
            marks
                .remove((label, ts, key.as_slice()))
                .map_err(store_err)?;
            let still_marked = rows
                .get(key.as_slice())
                .map_err(store_err)?
                .is_some_and(|v| Deleted::decode(v.value()).is_some_and(|d| d.ts_ms == ts));
            if still_marked {
                rows.remove(key.as_slice()).map_err(store_err)?;
            }
        }
        Ok(())
    }
}

/// How many marks of a table one apply expires beyond those it added.
const EXPIRE_PER_COMMIT: usize = 10_000;

/// Appends one staged change to a chunk: `u32 key length, key, u8 kind` then, for a put
/// (kind 1), `u32 entry length, entry` (little endian). Kind 0 is a delete.
fn encode_staged(key: &[u8], entry: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    match entry {
        Some(entry) => {
            out.push(1);
            out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            out.extend_from_slice(entry);
        }
        None => out.push(0),
    }
}

/// The staged changes of one chunk, in the order [`encode_staged`] wrote them.
struct StagedChanges<'a>(&'a [u8]);

impl<'a> StagedChanges<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PipelineError> {
        if self.0.len() < n {
            return Err(PipelineError::StateDamaged(
                "a staged chunk ends inside a change".into(),
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn length(&mut self) -> Result<usize, PipelineError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn change(&mut self) -> Result<(&'a [u8], Option<&'a [u8]>), PipelineError> {
        let n = self.length()?;
        let key = self.take(n)?;
        let entry = match self.take(1)?[0] {
            0 => None,
            _ => {
                let n = self.length()?;
                Some(self.take(n)?)
            }
        };
        Ok((key, entry))
    }
}

impl<'a> Iterator for StagedChanges<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = self.change();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

/// The stored TOAST-able values of one key: (source column name, rendered JSON value).
/// Encoding: repeated `u16 name length, name, u32 value length, value` (little endian).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToastEntry {
    pub values: Vec<(String, String)>,
}

impl ToastEntry {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in &self.values {
            encode_pair(n, v, &mut out);
        }
        out
    }

    /// Decodes an entry; a corrupt entry decodes to what was readable before the damage.
    pub fn decode(bytes: &[u8]) -> ToastEntry {
        let mut values = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 2 {
            let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            rest = &rest[2..];
            if rest.len() < n + 4 {
                break;
            }
            let name = String::from_utf8_lossy(&rest[..n]).into_owned();
            rest = &rest[n..];
            let v = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < v {
                break;
            }
            values.push((name, String::from_utf8_lossy(&rest[..v]).into_owned()));
            rest = &rest[v..];
        }
        ToastEntry { values }
    }
}

/// Appends one encoded (name, value) pair.
pub fn encode_pair(name: &str, value: &str, out: &mut Vec<u8>) {
    let n = name.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&name.as_bytes()[..n]);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_survive_truncation() {
        let e = ToastEntry {
            values: vec![("big".into(), "\"x\"".into()), ("doc".into(), "{}".into())],
        };
        let bytes = e.encode();
        assert_eq!(ToastEntry::decode(&bytes), e);
        let cut = ToastEntry::decode(&bytes[..bytes.len() - 1]);
        assert_eq!(cut.values.len(), 1);
        assert_eq!(ToastEntry::decode(&[7]), ToastEntry::default());
    }

    /// A primary-key change, in both orders its halves can be read in (old and new key in
    /// different partitions), and committed between the halves.
    #[test]
    fn key_changes_carry_the_entry_to_the_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        let (old, new) = (
            row_key("s.t", "{\"id\":900}"),
            row_key("s.t", "{\"id\":901}"),
        );
        let entry = ToastEntry {
            values: vec![("big".into(), "\"x\"".into())],
        };
        let mut o = Overlay::default();
        o.insert(&old, Some(&entry.encode()));
        s.stage(&o, &[]).expect("stage");
        s.apply_pending().expect("apply");

        // Delete first: the entry moves, staged in the same overlay as the delete.
        let mut o = Overlay::default();
        stage_delete(&s, &mut o, old.clone(), Some(new.clone()), None).expect("delete");
        assert_eq!(o.get(&old), Some(None));
        assert_eq!(o.get(&new), Some(Some(entry.encode().as_slice())));
        assert_eq!(
            previous_entry(&s, Some(&o), &new, Some(&old)).expect("prev"),
            Some(entry.clone())
        );
        // Not applied yet: the store still has the old key only (a crash here loses nothing).
        assert_eq!(s.get(&new).expect("get"), None);
        s.stage(&o, &[]).expect("stage");
        s.apply_pending().expect("apply");
        assert_eq!(s.get(&old).expect("get"), None);
        assert_eq!(
            previous_entry(&s, None, &new, None).expect("prev"),
            Some(entry.clone())
        );

        // Create first (read from another partition): it fills from the old key, writes its own
        // entry, and the later delete must not overwrite that newer entry.
        let (old2, new2) = (row_key("s.t", "{\"id\":1}"), row_key("s.t", "{\"id\":2}"));
        let newer = ToastEntry {
            values: vec![("big".into(), "\"newer\"".into())],
        };
        let mut o = Overlay::default();
        o.insert(&old2, Some(&entry.encode()));
        assert_eq!(
            previous_entry(&s, Some(&o), &new2, Some(&old2)).expect("prev"),
            Some(entry.clone())
        );
        o.insert(&new2, Some(&newer.encode()));
        stage_delete(&s, &mut o, old2.clone(), Some(new2.clone()), None).expect("delete");
        assert_eq!(o.get(&new2), Some(Some(newer.encode().as_slice())));
        assert_eq!(o.get(&old2), Some(None));

        // A plain delete (no new key) moves nothing; an unknown old key fills nothing.
        let mut o = Overlay::default();
        stage_delete(&s, &mut o, new.clone(), None, None).expect("delete");
        assert_eq!(o.len(), 1);
        assert_eq!(
            previous_entry(&s, Some(&o), &row_key("s.t", "{\"id\":5}"), Some(&old)).expect("p"),
            None
        );
    }

    /// A marked delete: not a live key (truncates, `len`), its mark readable until a newer
    /// mark is the retention ahead of it in source time, and gone at once when the key comes
    /// back.
    /// `forget_table` drops one table's entries and marks, and nothing of a table whose name
    /// starts with the same bytes.
    #[test]
    fn forgetting_a_table_drops_its_entries_and_marks_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        let entry = ToastEntry {
            values: vec![("big".into(), "\"x\"".into())],
        }
        .encode();
        let t = |id: u32| row_key("s.t", &format!("{{\"id\":{id}}}"));
        let t2 = |id: u32| row_key("s.t2", &format!("{{\"id\":{id}}}"));
        let mut o = Overlay::default();
        for id in 1..=3 {
            o.insert(&t(id), Some(&entry));
            o.insert(&t2(id), Some(&entry));
        }
        s.stage(&o, &[]).expect("stage");
        s.apply_pending().expect("apply");
        let mark = Deleted { lsn: 9, ts_ms: 1 };
        let mut o = Overlay::default();
        stage_delete(&s, &mut o, t(1), None, Some(mark)).expect("delete");
        stage_delete(&s, &mut o, t2(1), None, Some(mark)).expect("delete");
        s.stage(&o, &[]).expect("stage");
        s.apply_pending().expect("apply");
        assert_eq!((s.len().expect("len"), s.deleted_len().expect("n")), (4, 2));

        assert_eq!(
            s.forget_table("s.t").expect("forget"),
            3,
            "two entries, one mark"
        );
        assert!(s.keys_of("s.t").expect("keys").is_empty());
        assert_eq!(deleted_of(&s, None, &t(1)).expect("mark"), None);
        assert_eq!(s.keys_of("s.t2").expect("keys"), vec![t2(2), t2(3)]);
        assert_eq!(deleted_of(&s, None, &t2(1)).expect("mark"), Some(mark));
        assert_eq!((s.len().expect("len"), s.deleted_len().expect("n")), (2, 1));
        assert_eq!(s.forget_table("s.t").expect("again"), 0);
    }

    #[test]
    fn deleted_keys_stay_marked_for_the_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path())
            .expect("open")
            .with_deleted_retention(60);
        let key = |id: u32| row_key("s.t", &format!("{{\"id\":{id}}}"));
        let entry = ToastEntry {
            values: vec![("big".into(), "\"x\"".into())],
        }
        .encode();
        let commit = |o: &Overlay| {
            s.stage(o, &[]).expect("stage");
            s.apply_pending().expect("apply");
        };
        let mut o = Overlay::default();
        for id in 1..=3 {
            o.insert(&key(id), Some(&entry));
        }
        commit(&o);

        // Key 1 deleted at LSN 100 (source time 1 000 ms), key 2 without a position (removed).
        // Another table's key deleted at the same time keeps its own clock.
        let mut o = Overlay::default();
        let mark = Deleted {
            lsn: 100,
            ts_ms: 1_000,
        };
        stage_delete(&s, &mut o, key(1), None, Some(mark)).expect("delete");
        let other = row_key("s.u", "{\"id\":1}");
        stage_delete(&s, &mut o, other.clone(), None, Some(mark)).expect("delete");
        stage_delete(&s, &mut o, key(2), None, None).expect("delete");
        assert_eq!(deleted_of(&s, Some(&o), &key(1)).expect("mark"), Some(mark));
        assert_eq!(entry_of(&s, Some(&o), &key(1)).expect("entry"), None);
        commit(&o);
        assert_eq!(deleted_of(&s, None, &key(1)).expect("mark"), Some(mark));
        assert_eq!(deleted_of(&s, None, &key(2)).expect("mark"), None);
        assert_eq!(previous_entry(&s, None, &key(1), None).expect("prev"), None);
        assert_eq!(s.keys_of("s.t").expect("keys"), vec![key(3)]);
        assert_eq!((s.len().expect("len"), s.deleted_len().expect("n")), (1, 2));
        // A binary from before the marks reads one as an entry with no values.
        assert_eq!(ToastEntry::decode(&mark.encode()), ToastEntry::default());

        // Key 3 deleted 60 s of source time later: key 1's mark is not older than that yet.
        let mut o = Overlay::default();
        let later = Deleted {
            lsn: 300,
            ts_ms: 61_000,
        };
        stage_delete(&s, &mut o, key(3), None, Some(later)).expect("delete");
        commit(&o);
        assert_eq!(s.deleted_len().expect("n"), 3);
        assert_eq!(deleted_of(&s, None, &key(1)).expect("mark"), Some(mark));

        // Key 3 comes back: its mark goes with its new entry. A delete 1 ms further on
        // expires key 1's mark.
        let mut o = Overlay::default();
        o.insert(&key(3), Some(&entry));
        stage_delete(
            &s,
            &mut o,
            key(4),
            None,
            Some(Deleted {
                lsn: 400,
                ts_ms: 61_001,
            }),
        )
        .expect("delete");
        commit(&o);
        assert_eq!(deleted_of(&s, None, &key(1)).expect("mark"), None);
        assert_eq!(
            s.get(&key(1)).expect("get"),
            None,
            "the expired mark is gone"
        );
        assert_eq!(deleted_of(&s, None, &key(3)).expect("mark"), None);
        assert_eq!(
            deleted_of(&s, None, &other).expect("mark"),
            Some(mark),
            "s.u's clock has not moved"
        );
        assert_eq!(s.keys_of("s.t").expect("keys"), vec![key(3)]);
        assert_eq!((s.len().expect("len"), s.deleted_len().expect("n")), (1, 2));

        // The old half of a primary-key change (LSN 450) does not move its values onto a new
        // key deleted after it (LSN 500; that partition was read first); onto one deleted
        // before it, it does.
        let mut o = Overlay::default();
        o.insert(&key(5), Some(&entry));
        o.insert(&key(7), Some(&entry));
        commit(&o);
        let mut o = Overlay::default();
        let at = |lsn| Some(Deleted { lsn, ts_ms: 61_001 });
        stage_delete(&s, &mut o, key(6), None, at(500)).expect("delete");
        stage_delete(&s, &mut o, key(5), Some(key(6)), at(450)).expect("delete");
        assert_eq!(deleted_of(&s, Some(&o), &key(6)).expect("mark"), at(500));
        stage_delete(&s, &mut o, key(8), None, at(400)).expect("delete");
        stage_delete(&s, &mut o, key(7), Some(key(8)), at(450)).expect("delete");
        assert_eq!(
            entry_of(&s, Some(&o), &key(8)).expect("entry"),
            Some(entry.clone())
        );
        commit(&o);
        assert_eq!(s.keys_of("s.t").expect("keys"), vec![key(3), key(8)]);
        drop(s);
        let s = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(
            deleted_of(&s, None, &key(4)).expect("mark"),
            Some(Deleted {
                lsn: 400,
                ts_ms: 61_001
            })
        );
    }

    #[test]
    fn staged_changes_apply_or_discard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        let k1 = row_key("s.t", "{\"id\":1}");
        let k2 = row_key("s.t", "{\"id\":2}");
        let mut o = Overlay::default();
        o.insert(&k1, Some(b"a"));
        o.insert(&k2, Some(b"b"));
        s.stage(&o, &[("src".into(), 0, 10)]).expect("stage");
        assert_eq!(s.pending_offsets().expect("p"), vec![("src".into(), 0, 10)]);
        s.apply_pending().expect("apply");
        assert!(!s.has_pending().expect("p"));
        assert_eq!(s.get(&k1).expect("get"), Some(b"a".to_vec()));
        let mut o = Overlay::default();
        o.insert(&k1, None);
        s.stage(&o, &[("src".into(), 0, 12)]).expect("stage");
        s.discard_pending().expect("discard");
        assert_eq!(s.get(&k1).expect("get"), Some(b"a".to_vec()));
        assert_eq!(s.keys_of("s.t").expect("keys").len(), 2);
        assert!(s.keys_of("s.u").expect("keys").is_empty());
        drop(s);
        let s = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(s.len().expect("len"), 2);
    }

    #[test]
    fn a_batch_larger_than_a_chunk_stages_and_applies_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        let big = vec![b'x'; CHUNK_BYTES / 2 + 1];
        let mut o = Overlay::default();
        for id in 0..5 {
            o.insert(&row_key("s.t", &format!("{{\"id\":{id}}}")), Some(&big));
        }
        o.insert(&row_key("s.t", "{\"id\":9}"), None);
        s.stage(&o, &[("src".into(), 0, 10)]).expect("stage");
        let mut staged = s.pending_keys().expect("keys");
        assert_eq!(staged.len(), 6);
        let sorted = {
            let mut k = staged.clone();
            k.sort();
            k
        };
        assert_eq!(staged, sorted, "staged in key order");
        staged.dedup();
        assert_eq!(staged.len(), 6);
        s.apply_pending().expect("apply");
        assert!(!s.has_pending().expect("pending"));
        assert_eq!(s.len().expect("len"), 5);
        assert_eq!(
            s.get(&row_key("s.t", "{\"id\":4}")).expect("get"),
            Some(big)
        );
    }

    #[test]
    fn changes_staged_by_the_per_row_layout_still_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateStore::open(dir.path()).expect("open");
        let (kept, gone) = (row_key("s.t", "{\"id\":1}"), row_key("s.u", "{\"id\":2}"));
        {
            let tx = s.db.begin_write().expect("tx");
            {
                let mut rows = tx.open_table(ROWS).expect("rows");
                rows.insert(gone.as_slice(), b"old".as_slice())
                    .expect("row");
                let mut legacy = tx.open_table(LEGACY_PENDING_ROWS).expect("legacy");
                legacy
                    .insert(kept.as_slice(), b"\x01new".as_slice())
                    .expect("put");
                legacy
                    .insert(gone.as_slice(), b"\x00".as_slice())
                    .expect("delete");
            }
            tx.commit().expect("commit");
        }
        assert!(s.has_pending().expect("pending"));
        assert_eq!(s.pending_keys().expect("keys").len(), 2);
        s.resolve_pending_where(|k| k.starts_with(b"s.t\0"))
            .expect("resolve");
        assert!(!s.has_pending().expect("pending"));
        assert_eq!(s.get(&kept).expect("get"), Some(b"new".to_vec()));
        assert_eq!(s.get(&gone).expect("get"), Some(b"old".to_vec()));
    }

    #[test]
    fn a_truncated_chunk_is_an_error_not_a_panic() {
        let mut chunk = Vec::new();
        encode_staged(b"k", Some(b"value"), &mut chunk);
        let boundary = chunk.len();
        encode_staged(b"gone", None, &mut chunk);
        let whole: Vec<_> = StagedChanges(&chunk)
            .collect::<Result<_, _>>()
            .expect("whole");
        assert_eq!(
            whole,
            vec![(&b"k"[..], Some(&b"value"[..])), (&b"gone"[..], None)]
        );
        for cut in (1..chunk.len()).filter(|&c| c != boundary) {
            let items: Vec<_> = StagedChanges(&chunk[..cut]).collect();
            assert!(
                items.last().is_some_and(|i| i.is_err()),
                "cut at {cut}: {items:?}"
            );
        }
    }
}
