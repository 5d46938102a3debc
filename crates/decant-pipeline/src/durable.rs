//! The durability protocol — the only place that decides when anything becomes durable.
//!
//! A commit: hand over what the decoder still holds → wait for the loop's own dead letters →
//! [`Sink::prepare`] (everything that can fail before the point of no return) → stage the
//! state-store changes durably, tagged with the batch's offsets and commit id →
//! [`Sink::commit`] (the sink's atomic step, offsets inside it) → at least once, commit the
//! offsets to the group → apply the staged changes (except those of destinations the sink
//! stopped). A commit whose outcome is unknown (a crash, a lost answer) is settled on the next
//! start or rewind: by the group's committed offsets when the group keeps the progress, by
//! asking the sink ([`Sink::landed`]) when the sink keeps it.
//!
//! Any error that leaves the batch unusable aborts it and rewinds every assigned partition to
//! its committed offset (the decoder's open batches and the state overlay are dropped with it);
//! partition revocation aborts the batch from inside the rebalance callback. A sink that keeps
//! its own progress is not rewound: its errors stop the process, and a restart resumes from it.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use decant_model::sink::{Commit, Destination};
use decant_model::{Disposition, Sink, TableId};

use crate::error::{PipelineError, chain};
use crate::flow::Flow;
use crate::source::{Source, committed_map};
use crate::state::{Overlay, label_of};

/// Pseudo topic under which a staged batch's commit id is kept in the state store.
const COMMIT_TAG: &str = "decant.commit/";
/// The same, as state stores written by decant before the one loop named it.
const LEGACY_COMMIT_TAG: &str = "decant.iceberg-commit/";

fn commit_id_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(COMMIT_TAG)
        .or_else(|| topic.strip_prefix(LEGACY_COMMIT_TAG))
}

impl<S: Sink, Src: Source> Flow<'_, S, Src> {
    /// Turns a step's error into a rewind or a stop.
    pub(crate) fn settle(&mut self, step: Result<(), PipelineError>) -> Result<(), PipelineError> {
        let Err(e) = step else { return Ok(()) };
        match e.disposition() {
            Disposition::Fatal => {
                tracing::error!(error = %chain(&e), "fatal error; stopping");
                self.abort_open();
                Err(e)
            }
            _ if self.own => {
                tracing::error!(error = %chain(&e), "error; stopping (a restart resumes from what the sink committed)");
                self.abort_open();
                Err(e)
            }
            d => {
                tracing::warn!(error = %chain(&e), disposition = d.as_str(), "aborting and rewinding");
                self.rewind("kafka_error", Some(e))
            }
        }
    }

    /// Commits the open batch.
    pub(crate) fn commit(&mut self) -> Result<(), PipelineError> {
        self.flush()?;
        if self.batch.is_none() {
            return Ok(());
        }
        self.dead_letters.flush()?;
        let Some(batch) = self.batch.as_ref() else {
            return Ok(());
        };
        let (records, partitions) = (batch.records, batch.offsets.len());
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().to_string();
        let batch_offsets = batch.offsets_map();
        let mut all_offsets = self.position.clone();
        all_offsets.extend(batch_offsets.iter().map(|(k, v)| (k.clone(), *v)));
        let commit = Commit {
            id: &id,
            batch_offsets: &batch_offsets,
            all_offsets: &all_offsets,
        };
        self.sink.prepare(&commit)?;
        // Staged (durably) at every commit, changes or none: this also makes the previous
        // commit's apply durable, so what can come back after a crash is only this commit's.
        let mut tags = batch.offsets.clone();
        tags.push((format!("{COMMIT_TAG}{id}"), 0, 0));
        self.store.stage(&batch.overlay, &tags)?;
        // The store holds the batch's state changes now and the overlay is not read again (a
        // commit that fails aborts the batch; it is never retried): released before the sink's
        // commit, the heaviest step in memory (an Iceberg commit gathers and writes every row).
        if let Some(b) = self.batch.as_mut() {
            self.overlay_hint = b.overlay.size();
            b.overlay = Overlay::default();
        }
        let committed = self.sink.commit(&commit, &self.source)?;
        if !self.own && !self.sink.offsets_in_commit() {
            self.source.commit_offsets(&batch_offsets, true)?;
        }
        if self.own {
            // For lag dashboards only: the sink holds the real progress.
            self.source.commit_offsets(&all_offsets, false)?;
        }
        self.position = all_offsets;
        self.apply_staged()?;
        self.metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .transactions
            .with_label_values(&["committed"])
            .inc();
        for ((label, op), n) in &committed.written {
            self.metrics
                .output_records
                .with_label_values(&[label.as_str(), op])
                .inc_by(*n);
            self.summary.records_out += n;
        }
        self.report_stopped();
        tracing::debug!(
            txn = %self.batch_label,
            records,
            partitions,
            "batch committed"
        );
        self.batch = None;
        self.summary.commits += 1;
        self.rewinds_in_a_row = 0;
        Ok(())
    }

    /// Says which destinations the sink stopped (`decant_stopped_tables`, `/health`).
    pub(crate) fn report_stopped(&self) {
        let stopped = self.sink.stopped_destinations();
        self.metrics.stopped_tables.set(stopped.len() as i64);
        self.health.set_stopped(
            stopped
                .iter()
                .map(|(label, why)| format!("{label}: {why}"))
                .collect(),
        );
    }

    /// Applies the staged state of a commit that landed; a source table whose destination the
    /// sink stopped keeps its old state (its changes did not land).
    fn apply_staged(&mut self) -> Result<(), PipelineError> {
        if self.sink.stopped_destinations().is_empty() {
            self.store.apply_pending()?;
        } else {
            let mut apply: std::collections::HashMap<Vec<u8>, bool> = Default::default();
            for k in self.store.pending_keys()? {
                let label = label_of(&k);
                if !apply.contains_key(label) {
                    let text = String::from_utf8_lossy(label).into_owned();
                    let table = TableId::parse(&text);
                    let stopped = self.sink.is_stopped(Destination {
                        table: &table,
                        label: &text,
                        topic: "",
                    });
                    apply.insert(label.to_vec(), !stopped);
                }
            }
            self.store
                .resolve_pending_where(|k| apply.get(label_of(k)).copied().unwrap_or(false))?;
        }
        self.metrics.state_keys.set(self.store.len()? as i64);
        Ok(())
    }

    /// Aborts whatever is open without rewinding (shutdown and fatal paths).
    pub(crate) fn abort_open(&mut self) {
        if self.batch.is_some() {
            self.metrics
                .transactions
                .with_label_values(&["aborted"])
                .inc();
        }
        self.sink.abort();
        let _ = self.decoder.take_batches();
        self.held.clear();
        self.batch = None;
    }

    /// Drops decoded and uncommitted state after the rebalance callback aborted the batch.
    pub(crate) fn after_revoke(&mut self) {
        self.sink.abort();
        let _ = self.decoder.take_batches();
        self.held.clear();
        self.batch = None;
        self.quarantine.clear();
        self.metrics.quarantined_partitions.set(0);
        self.metrics.rewinds.with_label_values(&["revoked"]).inc();
        self.summary.rewinds += 1;
    }

    /// Aborts the open batch and re-reads every assigned partition from its committed offset.
    pub(crate) fn rewind(
        &mut self,
        reason: &str,
        cause: Option<PipelineError>,
    ) -> Result<(), PipelineError> {
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
        for tp in self.quarantine.keys().cloned().collect::<Vec<_>>() {
            self.source.resume_partition(&tp);
        }
        self.quarantine.clear();
        self.metrics.quarantined_partitions.set(0);
        let partitions = self.source.rewind()?;
        tracing::info!(reason, partitions, "rewound to the committed offsets");
        Ok(())
    }

    /// Applies or discards state staged by a commit whose outcome is unknown.
    pub(crate) fn resolve_pending(&mut self) -> Result<(), PipelineError> {
        if !self.store.has_pending()? {
            return Ok(());
        }
        let staged = self.store.pending_offsets()?;
        let id = staged
            .iter()
            .find_map(|(t, _, _)| commit_id_of(t).map(str::to_owned));
        let offsets: Vec<&(String, i32, i64)> = staged
            .iter()
            .filter(|(t, _, _)| commit_id_of(t).is_none())
            .collect();
        if self.own {
            let Some(id) = id else {
                return self.store.discard_pending();
            };
            let keys = self.store.pending_keys()?;
            let sources: BTreeSet<String> = keys
                .iter()
                .map(|k| String::from_utf8_lossy(label_of(k)).into_owned())
                .collect();
            let landed: HashSet<String> = self.sink.landed(&id, &sources)?.into_iter().collect();
            self.store.resolve_pending_where(|k| {
                landed.contains(String::from_utf8_lossy(label_of(k)).as_ref())
            })?;
            tracing::info!(
                commit_id = id,
                tables = landed.len(),
                "resolved the state of a batch staged before a restart"
            );
            return Ok(());
        }
        if offsets.is_empty() {
            return self.store.discard_pending();
        }
        let parts: Vec<(String, i32)> = offsets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let committed = committed_map(&self.source, &parts)?;
        let went_through = offsets.iter().all(|(t, p, o)| {
            committed
                .get(&(t.clone(), *p))
                .copied()
                .flatten()
                .is_some_and(|c| c >= *o)
        });
        if went_through {
            tracing::info!(
                partitions = offsets.len(),
                "staged state of a committed batch applied"
            );
            self.store.apply_pending()
        } else {
            tracing::info!(
                partitions = offsets.len(),
                "staged state of an unfinished batch discarded"
            );
            self.store.discard_pending()
        }
    }
}
