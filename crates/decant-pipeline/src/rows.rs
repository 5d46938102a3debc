//! One decoded row → one change for the sink: the key, the TOAST state (staged in the batch's
//! overlay), the `where` filter, the op filter, and the value with TOAST fills and metadata
//! columns. Also truncates, which become a delete of every key the state knows.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use decant_decode::{ChangeBatch, ControlRecord};
use decant_model::sink::{Change, ChangeOp, Origin, OutputShape, TypedRow};
use decant_model::{ChangeKind, Sink};

use crate::config::{BadRecordPolicy, ToastPolicy, TruncatePolicy};
use crate::error::PipelineError;
use crate::flow::{Flow, destination};
use crate::observe::now_ms;
use crate::render::{other_store_key, push_key, push_row, row_passes, typed_row};
use crate::route::{Plan, Route};
use crate::source::{Record, Source};
use crate::state::{
    Deleted, ToastEntry, deleted_of, entry_of, is_entry, previous_entry, row_key, stage_delete,
};
use crate::triage::Bad;

/// What an upsert hands to the sink: JSON text or decoded columns (deletes: nothing).
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    /// The row's JSON and its JSON `null` documents (output columns).
    Json(&'a str, &'a [usize]),
    Typed(TypedRow<'a>),
}

/// Where a row is going, as one value for the helpers below.
struct Target<'r> {
    route: &'r Arc<Route>,
    plan: &'r Plan,
}

impl<S: Sink, Src: Source> Flow<'_, S, Src> {
    /// Turns decoded row `row` into a change for the sink (or a policy).
    pub(crate) fn emit(&mut self, batch: &ChangeBatch, row: usize) -> Result<(), PipelineError> {
        let meta = &batch.meta[row];
        if self.is_quarantined(&meta.topic, meta.partition, meta.offset) {
            return Ok(());
        }
        let route = self.route(&batch.schema.table, &meta.topic)?;
        let dest = destination(&route);
        if self.stopped(&route, (&*meta.topic, meta.partition, meta.offset)) {
            return Ok(());
        }
        if self.own
            && self
                .sink
                .holds(dest, &(meta.topic.to_string(), meta.partition), meta.offset)
        {
            // Re-read after a restart: this destination committed the record already.
            return Ok(());
        }
        let plan = self.router.plan(&route, &batch.schema);
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        let res = self.emit_keyed(
            batch,
            row,
            &Target {
                route: &route,
                plan: &plan,
            },
            &mut key,
        );
        self.key_buf = key;
        res
    }

    fn emit_keyed(
        &mut self,
        batch: &ChangeBatch,
        row: usize,
        t: &Target<'_>,
        key: &mut String,
    ) -> Result<(), PipelineError> {
        let route = t.route;
        if !push_key(batch, row, t.plan, key) {
            let bad = Bad {
                class: "no_key",
                field: None,
                message: format!(
                    "table {} has no primary key: upsert output needs one (records of keyless tables cannot be compacted or upserted)",
                    route.label
                ),
            };
            return self.row_bad(route.on_bad_record, route, batch, row, &bad);
        }
        let store_key = row_key(&route.label, key);
        match batch.meta[row].kind {
            ChangeKind::Delete => {
                if route.keep_state {
                    let new_key = other_store_key(batch, row, t.plan, &route.label);
                    let Some(b) = self.batch.as_mut() else {
                        return Err(PipelineError::Config("a row outside an open batch".into()));
                    };
                    let mark = Deleted::at(&batch.meta[row].position);
                    stage_delete(&self.store, &mut b.overlay, store_key, new_key, mark)?;
                }
                if route.emit_delete {
                    self.write(t, ChangeOp::Delete, key, Payload::None, batch, row)
                } else {
                    self.skip_op(route);
                    Ok(())
                }
            }
            ChangeKind::Upsert => {
                if let Err(e) = &t.plan.filter {
                    let bad = Bad {
                        class: "filter",
                        field: None,
                        message: e.clone(),
                    };
                    return self.row_bad(route.on_bad_record, route, batch, row, &bad);
                }
                self.emit_upsert(batch, row, t, key, store_key)
            }
        }
    }

    fn emit_upsert(
        &mut self,
        batch: &ChangeBatch,
        row: usize,
        t: &Target<'_>,
        key: &str,
        store_key: Vec<u8>,
    ) -> Result<(), PipelineError> {
        let (route, plan) = (t.route, t.plan);
        let prev = if batch.unchanged(row).is_empty() || !route.keep_state {
            None
        } else {
            let old_key = other_store_key(batch, row, plan, &route.label);
            previous_entry(
                &self.store,
                self.batch.as_ref().map(|b| &b.overlay),
                &store_key,
                old_key.as_deref(),
            )?
        };
        let mut value = std::mem::take(&mut self.value_buf);
        value.clear();
        let res = if self.sink.wants_typed_rows() {
            let typed = typed_row(
                batch,
                row,
                plan,
                prev.as_ref(),
                &self.meta_columns,
                &mut value,
            );
            let payload = Payload::Typed(TypedRow {
                batch_id: self.decoded_id,
                columns: &batch.rows,
                row,
                fills: &typed.fills,
                missing: &typed.missing,
                meta: &typed.meta,
            });
            self.finish_upsert(batch, row, t, key, store_key, prev, typed.value, payload)
        } else {
            let rendered = push_row(
                batch,
                row,
                plan,
                prev.as_ref(),
                &self.meta_columns,
                &mut value,
            );
            let mut null_documents = std::mem::take(&mut self.null_documents_buf);
            null_documents_of(batch, row, plan, &mut null_documents);
            let res = self.finish_upsert(
                batch,
                row,
                t,
                key,
                store_key,
                prev,
                rendered,
                Payload::Json(&value, &null_documents),
            );
            self.null_documents_buf = null_documents;
            res
        };
        self.value_buf = value;
        res
    }

    /// TOAST policy, state, filters and the write of a rendered upsert.
    #[allow(clippy::too_many_arguments)]
    fn finish_upsert(
        &mut self,
        batch: &ChangeBatch,
        row: usize,
        t: &Target<'_>,
        key: &str,
        store_key: Vec<u8>,
        prev: Option<ToastEntry>,
        rendered: crate::render::ValueRender,
        payload: Payload<'_>,
    ) -> Result<(), PipelineError> {
        let (route, plan) = (t.route, t.plan);
        if rendered.fills > 0 {
            self.metrics
                .toast_fills
                .with_label_values(&[&route.label])
                .inc_by(u64::from(rendered.fills));
        }
        if !rendered.missing.is_empty() {
            if route.keep_state
                && let Some(delete) = self.resent_before_delete(batch, row, &store_key)?
            {
                // Nothing of it is written or staged: the key's delete, already applied, is
                // newer, and the connector sends that delete again after this change.
                let meta = &batch.meta[row];
                tracing::info!(
                    topic = %meta.topic,
                    partition = meta.partition,
                    offset = meta.offset,
                    table = %route.label,
                    key,
                    lsn = meta.position.lsn,
                    delete_lsn = delete.lsn,
                    "a change sent again by the connector, older than the key's delete: skipped (its TOAST-unchanged values were deleted with the key)"
                );
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, "resent_before_delete"])
                    .inc();
                return Ok(());
            }
            let (policy, name) = match route.on_toast_missing {
                ToastPolicy::EmitWithoutColumn => (None, "emit_without_column"),
                ToastPolicy::DeadLetter => (Some(BadRecordPolicy::DeadLetter), "dead_letter"),
                // The partition stops before this record: the row must not reach the sink.
                ToastPolicy::Fail => (Some(BadRecordPolicy::Fail), "fail"),
            };
            self.metrics
                .toast_misses
                .with_label_values(&[&route.label, name])
                .inc_by(rendered.missing.len() as u64);
            if let Some(policy) = policy {
                let bad = Bad {
                    class: "toast_missing",
                    field: Some(&rendered.missing[0]),
                    message: format!(
                        "TOAST-unchanged column(s) {} of key {key}: last value never seen",
                        rendered.missing.join(", ")
                    ),
                };
                return self.row_bad(policy, route, batch, row, &bad);
            }
        }
        // Whether the key was seen before, for the delete of a row that stops matching; looked
        // up before this row's entry is staged (only tables with a filter pay for it). Without
        // state it is unknown: such a row always becomes a delete.
        let filtered = matches!(&plan.filter, Ok(f) if !f.is_empty());
        let seen_before =
            filtered && (!route.keep_state || prev.is_some() || self.lookup(&store_key)?.is_some());
        // The state keeps the row even when the filter drops it: a later change of the key may
        // pass and need its TOAST values.
        if route.keep_state {
            self.batch_mut()?
                .overlay
                .insert(&store_key, Some(&rendered.entry));
        }
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
            // A key seen before may have been written while it matched: a delete keeps the
            // output equal to the rows that match now (redundant ones are no-ops for readers).
            if seen_before && route.emit_delete {
                return self.write(t, ChangeOp::Delete, key, Payload::None, batch, row);
            }
            Ok(())
        } else if route.emit_upsert {
            self.write(t, ChangeOp::Upsert, key, payload, batch, row)
        } else {
            self.skip_op(route);
            Ok(())
        }
    }

    /// A change `ops` leaves out (counted, README: `decant_skipped_records_total`).
    fn skip_op(&self, route: &Route) {
        self.metrics
            .skipped_records
            .with_label_values(&[&route.label, "op_filter"])
            .inc();
    }

    /// Whether the route's destination is stopped (counted as a skip). When the consumer
    /// group keeps the progress, skipping would commit the record's offset and lose it for
    /// the stopped table: its source partition is quarantined at the record instead, so a
    /// restart (after the destination is fixed) reads it again. A sink that keeps its own
    /// progress holds the table's position itself.
    fn stopped(&mut self, route: &Route, (topic, partition, offset): (&str, i32, i64)) -> bool {
        let stopped = self.sink.is_stopped(destination(route));
        if stopped {
            self.metrics
                .skipped_records
                .with_label_values(&[&route.label, "table_stopped"])
                .inc();
            if !self.own && !self.is_quarantined(topic, partition, offset) {
                tracing::error!(
                    topic,
                    partition,
                    offset,
                    table = %route.label,
                    "the table's output is stopped: quarantining the source partition at its record until a restart; other partitions keep flowing"
                );
                self.hold_partition((topic.to_owned(), partition), offset);
                self.report_stopped();
            }
        }
        stopped
    }

    fn batch_mut(&mut self) -> Result<&mut crate::flow::Batch, PipelineError> {
        self.batch
            .as_mut()
            .ok_or_else(|| PipelineError::Config("a row outside an open batch".into()))
    }

    /// The previous TOAST entry of a key: this batch's change, else the store.
    fn lookup(&self, store_key: &[u8]) -> Result<Option<ToastEntry>, PipelineError> {
        let overlay = self.batch.as_ref().map(|b| &b.overlay);
        Ok(entry_of(&self.store, overlay, store_key)?
            .as_deref()
            .map(ToastEntry::decode))
    }

    /// The delete that shows upsert `row` to be sent again (Debezium delivers at least once):
    /// its key was deleted at a later LSN than the row's. A key's changes come in LSN order,
    /// and a delete is followed by an insert with every value before any update of the key, so
    /// only a change sent again from before the delete can need values the delete took. (The
    /// new half of a primary-key change has its values on its own key once it was read: the
    /// old key's delete moves them there, or its own create filled them; so its own key's
    /// mark is the one to ask. An old key's mark would say nothing about a value never seen.)
    fn resent_before_delete(
        &self,
        batch: &ChangeBatch,
        row: usize,
        store_key: &[u8],
    ) -> Result<Option<Deleted>, PipelineError> {
        let Some(lsn) = batch.meta[row].position.lsn else {
            return Ok(None);
        };
        let overlay = self.batch.as_ref().map(|b| &b.overlay);
        Ok(deleted_of(&self.store, overlay, store_key)?.filter(|d| d.lsn > lsn))
    }

    /// Hands one change of decoded row `row` to the sink.
    fn write(
        &mut self,
        t: &Target<'_>,
        op: ChangeOp,
        key: &str,
        payload: Payload<'_>,
        batch: &ChangeBatch,
        row: usize,
    ) -> Result<(), PipelineError> {
        let meta = &batch.meta[row];
        let (value, typed, null_documents) = match payload {
            Payload::None => (None, None, &[][..]),
            Payload::Json(v, docs) => (Some(v), None, docs),
            Payload::Typed(r) => (None, Some(r), &[][..]),
        };
        // Moved out for the call (`write_waiting` needs the loop mutably), put back after.
        let batch_label = std::mem::take(&mut self.batch_label);
        let change = Change {
            dest: destination(t.route),
            shape: &t.plan.shape,
            op,
            key,
            value,
            typed,
            null_documents,
            origin: Origin {
                topic: &meta.topic,
                partition: meta.partition,
                offset: meta.offset,
                lsn: meta.position.lsn,
                ts_ms: meta.position.ts_ms,
            },
            batch: &batch_label,
        };
        let written = self.write_waiting(&change);
        self.batch_label = batch_label;
        written?;
        if let Some(ts) = meta.position.ts_ms {
            let lag_ms = now_ms() as i64 - ts;
            if lag_ms >= 0 {
                self.metrics.source_latency.observe(lag_ms as f64 / 1000.0);
            }
        }
        Ok(())
    }

    /// [`Sink::write`], waiting out a dependency the sink cannot reach (the schema registry
    /// an encoder registers with): the same call again with backoff, never a skip. On
    /// shutdown the error goes up and the batch is aborted, uncommitted.
    fn write_waiting(&mut self, change: &Change<'_>) -> Result<(), PipelineError> {
        let mut attempt = 0u32;
        let mut waited_for = None;
        loop {
            match self.sink.write(change) {
                Err(e) if !self.shutting_down() && e.dependency.is_some() => {
                    let dependency = e.dependency.unwrap_or_default();
                    if attempt.is_multiple_of(10) {
                        tracing::warn!(error = %crate::error::chain(&e), dependency, attempt, "output dependency unavailable; waiting and retrying (never skipped)");
                    }
                    self.wait_for(dependency, format!("{dependency}: {e}"), attempt);
                    waited_for = Some(dependency);
                    attempt += 1;
                }
                other => {
                    if let Some(dependency) = waited_for {
                        self.end_wait_for(dependency);
                    }
                    return Ok(other?);
                }
            }
        }
    }

    /// A Debezium truncate (everything decoded before it has been handed over): the table's
    /// policy; `tombstone_all` deletes every key the state knows for the table.
    pub(crate) fn truncate(
        &mut self,
        c: &ControlRecord,
        m: &Src::Msg,
    ) -> Result<(), PipelineError> {
        let Some(table) = &c.table else {
            // Never silently passed over: a truncate that names no table is a bad record.
            let bad = Bad {
                class: "truncate",
                field: None,
                message: "truncate of an unknown table".into(),
            };
            return self.bad_record(self.cfg.defaults.on_bad_record, m, "unknown", None, &bad);
        };
        let route = self.route(table, m.topic())?;
        match route.on_truncate {
            TruncatePolicy::Skip => {
                tracing::warn!(table = %route.label, "truncate skipped (on_truncate = skip)");
                self.metrics
                    .skipped_records
                    .with_label_values(&[&route.label, "truncate"])
                    .inc();
                Ok(())
            }
            TruncatePolicy::DeadLetter => {
                let bad = Bad {
                    class: "truncate",
                    field: None,
                    message: format!("truncate of {}", route.label),
                };
                self.dead_letter(Some(m), &route.label, Some(&route), &bad)
            }
            TruncatePolicy::Fail => {
                let at = (m.topic().to_owned(), m.partition());
                let why = format!("truncate of {} under on_truncate = fail", route.label);
                self.quarantine_at(at, m.offset(), &route.label, &why);
                Ok(())
            }
            TruncatePolicy::TombstoneAll => self.truncate_all(&route, m, Deleted::at(&c.position)),
        }
    }

    /// Deletes every known key of the table, each marked where the truncate was (`mark`): a
    /// TRUNCATE waits for every transaction that changed the table, so its LSN is past all of
    /// their changes, and a change re-sent from before it is told by the mark like one re-sent
    /// from before a delete.
    fn truncate_all(
        &mut self,
        route: &Arc<Route>,
        m: &Src::Msg,
        mark: Option<Deleted>,
    ) -> Result<(), PipelineError> {
        let dest = destination(route);
        if self.stopped(route, (m.topic(), m.partition(), m.offset())) {
            return Ok(());
        }
        let mut prefix = route.label.as_bytes().to_vec();
        prefix.push(0);
        let mut keys: BTreeSet<Vec<u8>> = self.store.keys_of(&route.label)?.into_iter().collect();
        let batch = self.batch_mut()?;
        for (k, v) in batch.overlay.iter() {
            if k.starts_with(&prefix) {
                if v.is_some_and(is_entry) {
                    keys.insert(k.to_vec());
                } else {
                    keys.remove(k);
                }
            }
        }
        let n = keys.len();
        // A truncate's deletes carry no columns: the sink keeps the table's last known shape.
        let shape = Arc::new(OutputShape {
            columns: Vec::new(),
            key: Vec::new(),
            key_types: Vec::new(),
            sources: Vec::new(),
        });
        for k in keys {
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let batch_label = std::mem::take(&mut self.batch_label);
            let written = self.write_waiting(&Change {
                dest,
                shape: &shape,
                op: ChangeOp::Truncate,
                key: &key,
                value: None,
                typed: None,
                null_documents: &[],
                origin: Origin {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    lsn: None,
                    ts_ms: None,
                },
                batch: &batch_label,
            });
            self.batch_label = batch_label;
            written?;
            let Some(b) = self.batch.as_mut() else {
                return Err(PipelineError::Config("a row outside an open batch".into()));
            };
            stage_delete(&self.store, &mut b.overlay, k, None, mark)?;
        }
        tracing::warn!(table = %route.label, deletes = n, "truncate: deleted every known key");
        Ok(())
    }
}

/// The output columns of decoded row `row` that hold a JSON document which is JSON `null`
/// (decoded as the text `null`; SQL NULL is a null cell), into `out`. A TOAST-unchanged cell
/// is filled from the state, and a JSON `null` is never stored out of line.
fn null_documents_of(batch: &ChangeBatch, row: usize, plan: &Plan, out: &mut Vec<usize>) {
    out.clear();
    if plan.documents.is_empty() {
        return;
    }
    let unchanged = batch.unchanged(row);
    for &(output, index) in &plan.documents {
        let column = batch.rows.column(index);
        let is_null_document = column.is_valid(row)
            && !unchanged.contains(&(index as u16))
            && column
                .as_string_opt::<i32>()
                .is_some_and(|text| text.value(row) == "null");
        if is_null_document {
            out.push(output);
        }
    }
}
