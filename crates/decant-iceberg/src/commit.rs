//! One batch → one snapshot: Parquet data files for the batch's final rows, equality-delete
//! files for every key the batch touched, and a row-delta snapshot carrying both plus the
//! pipeline's progress, published by one compare-and-swap of the catalog pointer.
//!
//! Why this works as an upsert: an equality delete applies only to data with a *smaller*
//! sequence number, so the batch's deletes remove every earlier row of its keys while its own
//! new rows (same sequence number) stay. The pipeline reduces a batch to one final state per
//! key first, so no position deletes are needed. Two batches are never merged into one
//! snapshot: their deletes would stop applying to each other's rows.
//!
//! iceberg 0.10.1 cannot commit delete files through its transaction API, so the manifests,
//! manifest list, snapshot and metadata are built here with its public types (see
//! `../shared/notes/iceberg-sink-design.md`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::TableUpdate;
use iceberg::arrow::arrow_schema_to_schema;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, MAIN_BRANCH, ManifestContentType, ManifestFile,
    ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot, SnapshotReference,
    SnapshotRetention, SnapshotSummaryCollector, Summary, TableMetadata,
};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::base_writer::equality_delete_writer::{
    EqualityDeleteFileWriterBuilder, EqualityDeleteWriterConfig,
};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::IcebergError;
use crate::lake::{Lake, LakeTable};

/// Snapshot summary keys decant writes (and reads back on start).
pub const SUMMARY_PIPELINE: &str = "decant.pipeline";
pub const SUMMARY_COMMIT_ID: &str = "decant.commit-id";
pub const SUMMARY_EPOCH: &str = "decant.writer-epoch";
/// JSON `{"topic": {"partition": next_offset}}`: every record of those partitions below the
/// offset that belongs to this table is in this snapshot or an earlier one.
pub const SUMMARY_OFFSETS: &str = "decant.offsets";

/// What the newest snapshot of this pipeline on a table says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Next offset per (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    pub commit_id: Option<String>,
    pub epoch: i64,
    pub snapshot_id: Option<i64>,
}

impl Progress {
    /// Walks the main branch back to the newest snapshot committed by `pipeline`.
    pub fn of(md: &TableMetadata, pipeline: &str) -> Result<Progress, String> {
        let mut cur = md.snapshot_for_ref(MAIN_BRANCH).cloned();
        while let Some(s) = cur {
            let props = &s.summary().additional_properties;
            if props.get(SUMMARY_PIPELINE).map(String::as_str) == Some(pipeline) {
                let offsets = match props.get(SUMMARY_OFFSETS) {
                    Some(json) => parse_offsets(json).map_err(|e| {
                        format!(
                            "snapshot {}: unreadable {SUMMARY_OFFSETS}: {e}",
                            s.snapshot_id()
                        )
                    })?,
                    None => BTreeMap::new(),
                };
                return Ok(Progress {
                    offsets,
                    commit_id: props.get(SUMMARY_COMMIT_ID).cloned(),
                    epoch: props
                        .get(SUMMARY_EPOCH)
                        .and_then(|e| e.parse().ok())
                        .unwrap_or(0),
                    snapshot_id: Some(s.snapshot_id()),
                });
            }
            cur = s
                .parent_snapshot_id()
                .and_then(|p| md.snapshot_by_id(p).cloned());
        }
        Ok(Progress::default())
    }

    /// Whether `commit_id` is this snapshot's or one of its pipeline ancestors'.
    pub fn contains_commit(md: &TableMetadata, pipeline: &str, commit_id: &str) -> bool {
        let mut cur = md.snapshot_for_ref(MAIN_BRANCH).cloned();
        while let Some(s) = cur {
            let props = &s.summary().additional_properties;
            if props.get(SUMMARY_PIPELINE).map(String::as_str) == Some(pipeline)
                && props.get(SUMMARY_COMMIT_ID).map(String::as_str) == Some(commit_id)
            {
                return true;
            }
            cur = s
                .parent_snapshot_id()
                .and_then(|p| md.snapshot_by_id(p).cloned());
        }
        false
    }
}

pub fn format_offsets(offsets: &BTreeMap<(String, i32), i64>) -> String {
    let mut by_topic: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().insert(p.to_string(), *o);
    }
    serde_json::to_string(&by_topic).unwrap_or_default()
}

pub fn parse_offsets(json: &str) -> Result<BTreeMap<(String, i32), i64>, String> {
    let by_topic: BTreeMap<String, BTreeMap<String, i64>> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (t, parts) in by_topic {
        for (p, o) in parts {
            let p: i32 = p.parse().map_err(|_| format!("partition {p:?}"))?;
            out.insert((t.clone(), p), o);
        }
    }
    Ok(out)
}

/// One batch for one table.
pub struct TableDelta {
    /// The final row of every key upserted by the batch (the table's Arrow schema), in chunks.
    pub upserts: Vec<RecordBatch>,
    /// Every key the batch touched (upserted or deleted); only key columns need values.
    pub deletes: Vec<RecordBatch>,
    /// Unique per batch; a retry after an unknown outcome finds it in the table.
    pub commit_id: String,
    /// Next offset per source partition after this batch (merged into the table's progress).
    pub offsets: BTreeMap<(String, i32), i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        snapshot_id: i64,
        sequence: i64,
    },
    /// The table already holds this commit (an earlier attempt landed without our knowing).
    AlreadyCommitted,
}

const ATTEMPTS: u32 = 10;

impl LakeTable {
    /// The Arrow schema batches for this table must have (with Iceberg field ids).
    pub fn arrow_schema(&self) -> Result<arrow_schema::SchemaRef, IcebergError> {
        iceberg::arrow::schema_to_arrow_schema(self.table.metadata().current_schema())
            .map(Arc::new)
            .map_err(IcebergError::iceberg(format!(
                "table {}: Arrow schema",
                self.label
            )))
    }

    pub fn progress(&self, lake: &Lake) -> Result<Progress, IcebergError> {
        Progress::of(self.table.metadata(), lake.pipeline()).map_err(|why| {
            IcebergError::Inconsistent {
                table: self.label.clone(),
                why,
            }
        })
    }

    /// Commits one batch as one snapshot (or finds it already committed).
    pub fn commit(
        &mut self,
        lake: &Lake,
        delta: &TableDelta,
    ) -> Result<CommitOutcome, IcebergError> {
        let files = lake.rt.block_on(self.write_files(lake, delta))?;
        let mut last_err = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)));
                self.reload(lake)?;
            }
            self.check_epoch(lake)?;
            let md = self.table.metadata();
            if Progress::contains_commit(md, lake.pipeline(), &delta.commit_id) {
                return Ok(CommitOutcome::AlreadyCommitted);
            }
            let progress = self.progress(lake)?;
            if progress.epoch > lake.epoch() {
                return Err(IcebergError::Fenced {
                    table: self.label.clone(),
                    pipeline: lake.pipeline().to_owned(),
                    ours: lake.epoch(),
                    theirs: progress.epoch,
                });
            }
            // A restarted writer re-reads partitions from the smallest offset any table
            // needs; a table that is further along keeps its own (larger) offset.
            let mut offsets = progress.offsets.clone();
            for (tp, next) in &delta.offsets {
                let e = offsets.entry(tp.clone()).or_insert(*next);
                *e = (*e).max(*next);
            }
            let built =
                lake.rt
                    .block_on(self.build_snapshot(lake, &files, &delta.commit_id, &offsets));
            let (snapshot, sequence) = match built {
                Ok(s) => s,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let snapshot_id = snapshot.snapshot_id();
            match self.publish(lake, on_main(snapshot)) {
                Ok(true) if self.table.metadata().current_snapshot_id() != Some(snapshot_id) => {
                    return Err(IcebergError::Inconsistent {
                        table: self.label.clone(),
                        why: format!(
                            "the catalog accepted snapshot {snapshot_id} but its main branch is at {:?}",
                            self.table.metadata().current_snapshot_id()
                        ),
                    });
                }
                Ok(true) => {
                    return Ok(CommitOutcome::Committed {
                        snapshot_id,
                        sequence,
                    });
                }
                Ok(false) => {
                    tracing::debug!(table = %self.label, attempt, "metadata pointer moved; rebuilding the commit");
                }
                // The swap may have landed before the error: the next attempt looks for it.
                Err(e) if e.retry_class() == decant_model::RetryClass::Retriable => {
                    tracing::warn!(table = %self.label, attempt, error = %e, "commit attempt failed");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or(IcebergError::Conflict {
            table: self.label.clone(),
            attempts: ATTEMPTS,
        }))
    }

    async fn write_files(
        &self,
        lake: &Lake,
        delta: &TableDelta,
    ) -> Result<Vec<DataFile>, IcebergError> {
        let md = self.table.metadata();
        let schema = md.current_schema().clone();
        let what = |w: &str| format!("table {}: writing {w}", self.label);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut files = Vec::new();
        if delta.upserts.iter().any(|b| b.num_rows() > 0) {
            let rolling = RollingFileWriterBuilder::new(
                ParquetWriterBuilder::new(props.clone(), schema.clone()),
                lake.cfg.target_file_size_bytes,
                self.table.file_io().clone(),
                DefaultLocationGenerator::new(md).map_err(IcebergError::iceberg(what("data")))?,
                DefaultFileNameGenerator::new(
                    format!("{}-data", delta.commit_id),
                    None,
                    DataFileFormat::Parquet,
                ),
            );
            let mut w = DataFileWriterBuilder::new(rolling)
                .build(None)
                .await
                .map_err(IcebergError::iceberg(what("data")))?;
            for b in &delta.upserts {
                w.write(b.clone())
                    .await
                    .map_err(IcebergError::iceberg(what("data")))?;
            }
            files.extend(
                w.close()
                    .await
                    .map_err(IcebergError::iceberg(what("data")))?,
            );
        }
        if delta.deletes.iter().any(|b| b.num_rows() > 0) {
            let key_ids: Vec<i32> = schema.identifier_field_ids().collect();
            let config = EqualityDeleteWriterConfig::new(key_ids, schema.clone())
                .map_err(IcebergError::iceberg(what("equality deletes")))?;
            let delete_schema = arrow_schema_to_schema(config.projected_arrow_schema_ref())
                .map_err(IcebergError::iceberg(what("equality deletes")))?;
            let rolling = RollingFileWriterBuilder::new(
                ParquetWriterBuilder::new(props, Arc::new(delete_schema)),
                lake.cfg.target_file_size_bytes,
                self.table.file_io().clone(),
                DefaultLocationGenerator::new(md)
                    .map_err(IcebergError::iceberg(what("equality deletes")))?,
                DefaultFileNameGenerator::new(
                    format!("{}-eq-deletes", delta.commit_id),
                    None,
                    DataFileFormat::Parquet,
                ),
            );
            let mut w = EqualityDeleteFileWriterBuilder::new(rolling, config)
                .build(None)
                .await
                .map_err(IcebergError::iceberg(what("equality deletes")))?;
            for b in &delta.deletes {
                w.write(b.clone())
                    .await
                    .map_err(IcebergError::iceberg(what("equality deletes")))?;
            }
            files.extend(
                w.close()
                    .await
                    .map_err(IcebergError::iceberg(what("equality deletes")))?,
            );
        }
        Ok(files)
    }

    /// Manifests, manifest list and the snapshot for `files` on top of the loaded metadata.
    pub(crate) async fn build_snapshot(
        &self,
        lake: &Lake,
        files: &[DataFile],
        commit_id: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(Snapshot, i64), IcebergError> {
        let md = self.table.metadata();
        let what = format!("table {}: building the snapshot", self.label);
        let err = || IcebergError::iceberg(what.clone());
        let file_io = self.table.file_io();
        let schema = md.current_schema().clone();
        let spec = md.default_partition_spec().clone();
        let snapshot_id = fresh_snapshot_id(md);
        let sequence = md.next_sequence_number();
        let parent = md.current_snapshot_id();
        let meta_dir = format!("{}/metadata", md.location());
        let token = uuid::Uuid::new_v4();

        let mut summary = SnapshotSummaryCollector::default();
        let mut new_manifests: Vec<ManifestFile> = Vec::new();
        let (data, deletes): (Vec<&DataFile>, Vec<&DataFile>) = files
            .iter()
            .partition(|f| f.content_type() == DataContentType::Data);
        for (n, (content, group)) in [
            (ManifestContentType::Data, &data),
            (ManifestContentType::Deletes, &deletes),
        ]
        .into_iter()
        .enumerate()
        {
            if group.is_empty() {
                continue;
            }
            let out = file_io
                .new_output(format!("{meta_dir}/{token}-m{n}.avro"))
                .map_err(err())?;
            let builder =
                ManifestWriterBuilder::new(out, Some(snapshot_id), schema.clone(), (*spec).clone());
            let mut writer = match content {
                ManifestContentType::Data => builder.build_v2_data(),
                ManifestContentType::Deletes => builder.build_v2_deletes(),
            };
            for f in group.iter() {
                summary.add_file(f, schema.clone(), spec.clone());
                writer.add_file((*f).clone(), sequence).map_err(err())?;
            }
            new_manifests.push(writer.write_manifest_file().await.map_err(err())?);
        }

        let list_path = format!("{meta_dir}/snap-{snapshot_id}-1-{token}.avro");
        let mut list = ManifestListWriter::v2(
            file_io
                .new_output(&list_path)
                .map_err(err())?
                .writer()
                .await
                .map_err(err())?,
            snapshot_id,
            parent,
            sequence,
        );
        if let Some(current) = md.current_snapshot() {
            let existing = self
                .table
                .manifest_list_reader(current)
                .load()
                .await
                .map_err(err())?;
            list.add_manifests(existing.consume_entries().into_iter())
                .map_err(err())?;
        }
        list.add_manifests(new_manifests.into_iter())
            .map_err(err())?;
        list.close().await.map_err(err())?;

        let mut props: HashMap<String, String> = summary.build();
        add_totals(&mut props, md.current_snapshot().map(|s| s.summary()));
        props.insert(SUMMARY_PIPELINE.into(), lake.pipeline().to_owned());
        props.insert(SUMMARY_COMMIT_ID.into(), commit_id.to_owned());
        props.insert(SUMMARY_EPOCH.into(), lake.epoch().to_string());
        props.insert(SUMMARY_OFFSETS.into(), format_offsets(offsets));
        let operation = if deletes.is_empty() {
            Operation::Append
        } else {
            Operation::Overwrite
        };
        // Snapshot timestamps must not go backwards by more than a minute; a later one never hurts.
        let last_ts = md.last_updated_ms();
        let now = chrono_now_ms().max(last_ts);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent)
            .with_sequence_number(sequence)
            .with_timestamp_ms(now)
            .with_manifest_list(list_path)
            .with_schema_id(md.current_schema_id())
            .with_summary(Summary {
                operation,
                additional_properties: props,
            })
            .build();
        Ok((snapshot, sequence))
    }
}

/// The updates that add `snapshot` and make it the head of the main branch.
pub(crate) fn on_main(snapshot: Snapshot) -> Vec<TableUpdate> {
    let snapshot_id = snapshot.snapshot_id();
    vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_owned(),
            reference: SnapshotReference::new(
                snapshot_id,
                SnapshotRetention::branch(None, None, None),
            ),
        },
    ]
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn fresh_snapshot_id(md: &TableMetadata) -> i64 {
    loop {
        let u = uuid::Uuid::new_v4();
        let (hi, lo) = u.as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && md.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// `total-*` = the parent's total + this snapshot's `added-*` (decant never removes files).
fn add_totals(props: &mut HashMap<String, String>, parent: Option<&Summary>) {
    const PAIRS: [(&str, &str); 6] = [
        ("total-data-files", "added-data-files"),
        ("total-delete-files", "added-delete-files"),
        ("total-records", "added-records"),
        ("total-files-size", "added-files-size"),
        ("total-position-deletes", "added-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes"),
    ];
    for (total, added) in PAIRS {
        let get = |m: &HashMap<String, String>, k: &str| -> u64 {
            m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        let before = parent.map_or(0, |s| get(&s.additional_properties, total));
        let now = before + get(props, added);
        props.insert(total.to_owned(), now.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_through_the_summary_json() {
        let mut o = BTreeMap::new();
        o.insert(("a.b".to_owned(), 0), 10);
        o.insert(("a.b".to_owned(), 2), 7);
        o.insert(("c".to_owned(), 1), 0);
        let json = format_offsets(&o);
        assert_eq!(json, r#"{"a.b":{"0":10,"2":7},"c":{"1":0}}"#);
        assert_eq!(parse_offsets(&json).expect("parse"), o);
        assert!(parse_offsets(r#"{"a":{"x":1}}"#).is_err());
    }

    #[test]
    fn totals_add_to_the_parent() {
        let parent = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-records".to_owned(), "10".to_owned()),
                ("total-data-files".to_owned(), "2".to_owned()),
            ]),
        };
        let mut p = HashMap::from([
            ("added-records".to_owned(), "5".to_owned()),
            ("added-equality-deletes".to_owned(), "3".to_owned()),
        ]);
        add_totals(&mut p, Some(&parent));
        assert_eq!(p["total-records"], "15");
        assert_eq!(p["total-data-files"], "2");
        assert_eq!(p["total-equality-deletes"], "3");
        assert_eq!(p["total-delete-files"], "0");
    }
}
