//! The pipeline's configuration sections. Every struct rejects unknown keys; every quantity
//! carries its unit in its name. The binary reads the file (with `${ENV}` interpolation and
//! `DECANT_…` overrides) and hands these over; [`PipelineConfig::problems`] lists every semantic
//! error at once for `decant validate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Everything `decant run` needs besides the Kafka connection and the decoder settings.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub source: SourceConfig,
    pub output: OutputConfig,
    pub delivery: DeliveryConfig,
    pub dead_letter: DeadLetterConfig,
    pub defaults: TablePolicy,
    /// Per-table settings by `schema.table` (PostgreSQL) / `db.table` (MySQL).
    pub tables: BTreeMap<String, TableConfig>,
    pub state: StateConfig,
    pub observability: ObservabilityConfig,
}

/// `[source]`: which Debezium topics to read. Exactly one of `topics` / `topic_pattern`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Topics to consume, by name. Several tables per topic and several topics are fine.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regex over topic names (librdkafka syntax, anchored at the start), e.g.
    /// `"demo\\.public\\..*"`. New matching topics are picked up on metadata refresh.
    #[serde(default)]
    pub topic_pattern: Option<String>,
}

/// `[output]`: where and how upsert records are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `kafka` (compacted upsert topics, the default) or `iceberg` (tables, see `[iceberg]`).
    #[serde(rename = "type", default)]
    pub sink: SinkKind,
    /// Record format of the compacted topics' keys and values: `json` (canonical JSON text, the
    /// default) or `avro` (schemas registered in `[schema_registry]`, Confluent framing).
    #[serde(default)]
    pub format: OutputFormat,
    /// How the registry subjects of a registry format are named: `topic_name` (`<topic>-key`,
    /// `<topic>-value`; the default, what Tableflow reads), `record_name` (the record's full
    /// name) or `topic_record_name` (`<topic>-<full name>`), as Confluent's serializers'
    /// `key/value.subject.name.strategy`.
    #[serde(default)]
    pub subject_name_strategy: SubjectNameStrategy,
    /// Output topic name template. Variables: `{prefix}`, `{schema}` (the table's namespace:
    /// PostgreSQL schema / MySQL database), `{table}`, `{topic}` (the source topic).
    #[serde(default = "default_template")]
    pub topic_template: String,
    /// Value of `{prefix}` in the template.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Partition count of output topics decant creates.
    #[serde(default = "one")]
    pub partitions: i32,
    /// Replication factor of output topics decant creates; -1 = the broker's default.
    #[serde(default = "minus_one")]
    pub replication_factor: i32,
    /// Create missing output topics (compacted). When false a missing topic is an error.
    #[serde(default = "yes")]
    pub create_topics: bool,
    /// Add `decant.source.*` / `decant.op` / `decant.lsn` headers naming the source record of
    /// every output record (provenance; lets readers verify exactly-once).
    #[serde(default = "yes")]
    pub provenance_headers: bool,
    /// Metadata columns appended to every value, from the fixed set `__op`, `__source_ts_ms`,
    /// `__db`, `__table`, `__lsn`, `__kafka_partition`, `__kafka_offset`.
    #[serde(default)]
    pub metadata_columns: Vec<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            sink: SinkKind::Kafka,
            format: OutputFormat::Json,
            subject_name_strategy: SubjectNameStrategy::TopicName,
            topic_template: default_template(),
            prefix: default_prefix(),
            partitions: 1,
            replication_factor: -1,
            create_topics: true,
            provenance_headers: true,
            metadata_columns: Vec::new(),
        }
    }
}

/// The metadata column names decant knows (see [`OutputConfig::metadata_columns`]).
pub const METADATA_COLUMNS: &[&str] = &[
    "__op",
    "__source_ts_ms",
    "__db",
    "__table",
    "__lsn",
    "__kafka_partition",
    "__kafka_offset",
];

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Transactional producer; consumer offsets committed inside each transaction. Readers with
    /// `isolation.level=read_committed` see every change exactly once.
    #[default]
    ExactlyOnce,
    /// Idempotent producer; offsets committed after the output is acknowledged. A crash
    /// replays (and re-emits) the changes since the last commit.
    AtLeastOnce,
}

/// `[delivery]`: guarantee and commit cadence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `exactly_once` (default) or `at_least_once`.
    #[serde(default)]
    pub mode: DeliveryMode,
    /// Commit (transaction or offsets) at the latest this long after its first record.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Commit once this many source records are in the open transaction.
    #[serde(default = "default_commit_max_records")]
    pub commit_max_records: u64,
    /// Decoded rows buffered before they are rendered and handed to the producer.
    #[serde(default = "default_flush_max_rows")]
    pub flush_max_rows: usize,
    /// Kafka `transaction.timeout.ms` (and the producer's delivery timeout).
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// Abort-and-rewind cycles in a row without a successful commit before decant gives up
    /// and exits non-zero (a supervisor restarts it).
    #[serde(default = "default_max_consecutive_rewinds")]
    pub max_consecutive_rewinds: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            mode: DeliveryMode::ExactlyOnce,
            commit_interval_ms: default_commit_interval_ms(),
            commit_max_records: default_commit_max_records(),
            flush_max_rows: default_flush_max_rows(),
            transaction_timeout_ms: default_transaction_timeout_ms(),
            max_consecutive_rewinds: default_max_consecutive_rewinds(),
        }
    }
}

/// `[dead_letter]`: where bad records go under the `dead_letter` policies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Dead-letter topic (created if missing, not compacted). Required when any policy is
    /// `dead_letter`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Partition count if decant creates it.
    #[serde(default = "one")]
    pub partitions: i32,
    /// Add the error text as header `decant.error.message` (bounded to 1000 bytes).
    #[serde(default = "yes")]
    pub include_error_message: bool,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            topic: None,
            partitions: 1,
            include_error_message: true,
        }
    }
}

/// What to do with a record that cannot be decoded (or has no key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecordPolicy {
    /// Stop the record's source partition at it (quarantine: nothing after it in that partition
    /// is processed or committed; other partitions and tables keep flowing); log at ERROR.
    Fail,
    /// Count it and move on.
    Skip,
    /// Write its original key, value and headers to the dead-letter topic, with error headers.
    DeadLetter,
}

/// What to do when a TOAST-unchanged column's last value was never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToastPolicy {
    /// Quarantine the source partition at the record (see [`BadRecordPolicy::Fail`]).
    Fail,
    /// Dead-letter the source record; the key keeps its previous output.
    DeadLetter,
    /// Write the row without that column (readers keep or null it, per their semantics).
    EmitWithoutColumn,
}

/// What a Debezium truncate (`op: t`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncatePolicy {
    /// Tombstone every key of the table that decant's state store knows (every key decant has
    /// written and not deleted).
    TombstoneAll,
    /// Dead-letter the truncate record and keep going.
    DeadLetter,
    /// Count it and keep going.
    Skip,
    /// Quarantine the source partition at it.
    Fail,
}

/// Ops that reach the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

/// `[defaults]`: policies of tables that have no `[tables."…"]` entry, and the base of those
/// that do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    /// `fail` | `skip` | `dead_letter`.
    #[serde(default = "default_bad_record")]
    pub on_bad_record: BadRecordPolicy,
    /// `fail` | `dead_letter` | `emit_without_column`.
    #[serde(default = "default_toast")]
    pub on_toast_missing: ToastPolicy,
    /// `tombstone_all` | `dead_letter` | `skip` | `fail`.
    #[serde(default = "default_truncate")]
    pub on_truncate: TruncatePolicy,
    /// Ops written to the output (`upsert`, `delete`); a filtered op is counted as skipped.
    #[serde(default = "all_ops")]
    pub ops: Vec<Op>,
    /// Whether decant keeps the table's state (per key, the last value of every TOAST-able
    /// column, the key index and the delete marks). `false` is for sources that never send
    /// Debezium's unavailable-value placeholder (MySQL, MariaDB, SQL Server, Db2): no state
    /// write per change. A placeholder then follows `on_toast_missing`, a row that stops
    /// matching `where` always becomes a delete, and `on_truncate` cannot be `tombstone_all`.
    #[serde(default = "default_keep_state")]
    pub keep_state: bool,
}

impl Default for TablePolicy {
    fn default() -> Self {
        TablePolicy {
            on_bad_record: default_bad_record(),
            on_toast_missing: default_toast(),
            on_truncate: default_truncate(),
            ops: all_ops(),
            keep_state: default_keep_state(),
        }
    }
}

/// `[tables."schema.table"]`: routing and shaping of one table. Unset fields fall back to
/// `[defaults]` and `[output]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Output topic for this table (overrides the template).
    #[serde(default)]
    pub topic: Option<String>,
    /// Projection: only these source columns, in the table's column order (key columns are
    /// always in the key).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Columns left out of the value.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Output names by source column name (applies to key and value).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub ops: Option<Vec<Op>>,
    /// Row filter (TOML key `where`): a list of conditions that must all hold (AND) for an
    /// upsert to be written, e.g.
    /// `where = [{ column = "status", op = "ne", value = "deleted" }, { column = "total", op = "gt", value = "100" }]`.
    ///
    /// - `column` is a source column name (before `rename`; it need not be in the projection).
    /// - `op`: `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `in` (`value` is an array), `is_null`,
    ///   `is_not_null` (no `value`). `value` is a string, an integer or a boolean; write
    ///   non-integer numbers as strings (`"100.10"`).
    /// - Comparison is on the row's canonical JSON value (as written to the output): numeric
    ///   columns (integers, floats, decimals) compare numerically, decimals exactly
    ///   (`"100.10"` equals `"100.1"`); boolean columns by equality only (`eq`, `ne`, `in`);
    ///   every other column compares its text lexicographically (byte order), so timestamps,
    ///   dates and times compare as their canonical ISO text, which orders correctly when the
    ///   value is written in the same canonical form.
    /// - A null value fails every comparison (`ne` and `in` included, as in SQL); test it with
    ///   `is_null` / `is_not_null`. A float NaN or infinity only passes `ne`.
    /// - Only upserts are filtered (on the after image, after TOAST-unchanged columns are filled
    ///   from the state store). Deletes always pass: a delete carries only the key, and a
    ///   tombstone for a key that was filtered out is harmless in a compacted topic. An upsert
    ///   that fails the filter for a key seen before becomes a tombstone, so a row that stops
    ///   matching leaves the topic (the topic holds exactly the rows that match now).
    /// - A TOAST-unchanged column whose previous value is unknown (or not kept because the
    ///   column is outside the projection) cannot be evaluated: that condition passes.
    /// - A column the table does not have, an ordering op on a boolean column or a non-numeric
    ///   value for a numeric column is a table error found at run time: each upsert of the
    ///   table is then a bad record (class `filter`) under `on_bad_record`; rows are never
    ///   silently dropped because of it.
    ///
    /// Filtered rows are counted in `decant_filtered_records_total{table}`.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
    #[serde(default)]
    pub on_bad_record: Option<BadRecordPolicy>,
    #[serde(default)]
    pub on_toast_missing: Option<ToastPolicy>,
    #[serde(default)]
    pub on_truncate: Option<TruncatePolicy>,
    /// Overrides `defaults.keep_state` for this table.
    #[serde(default)]
    pub keep_state: Option<bool>,
}

/// Comparison of one [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CondOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `value` is an array; passes when the column equals one of its elements.
    In,
    IsNull,
    IsNotNull,
}

/// One condition of [`TableConfig::filter`] (the `where` list).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Source column name.
    pub column: String,
    /// `eq` | `ne` | `lt` | `le` | `gt` | `ge` | `in` | `is_null` | `is_not_null`.
    pub op: CondOp,
    /// A string, integer or boolean; an array of them for `in`; absent for `is_null` /
    /// `is_not_null`.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

impl Condition {
    /// The literal(s) as text (integers in decimal, booleans as `true`/`false`), or what is
    /// wrong with them.
    pub fn literals(&self) -> Result<Vec<String>, String> {
        fn scalar(v: &serde_json::Value) -> Result<String, String> {
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                serde_json::Value::Number(n) => Err(format!(
                    "{n} is not an integer: write non-integer numbers as strings (\"{n}\")"
                )),
                other => Err(format!("{other} is not a string, integer or boolean")),
            }
        }
        match (self.op, &self.value) {
            (CondOp::IsNull | CondOp::IsNotNull, None) => Ok(Vec::new()),
            (CondOp::IsNull | CondOp::IsNotNull, Some(_)) => {
                Err("is_null / is_not_null take no value".into())
            }
            (CondOp::In, Some(serde_json::Value::Array(items))) => {
                if items.is_empty() {
                    return Err("in: empty array (nothing would be written)".into());
                }
                items.iter().map(scalar).collect()
            }
            (CondOp::In, _) => Err("in: value must be an array".into()),
            (_, None) => Err("value missing".into()),
            (_, Some(serde_json::Value::Array(_))) => {
                Err("value is an array (only `in` takes one)".into())
            }
            (_, Some(v)) => Ok(vec![scalar(v)?]),
        }
    }
}

/// Where `decant run` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    #[default]
    Kafka,
    Iceberg,
}

/// How the compacted topics' keys and values are written (`output.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Canonical JSON text.
    #[default]
    Json,
    /// Avro binary framed `0x00 + schema id`, key and value schemas registered under
    /// `<topic>-key` / `<topic>-value` (TopicNameStrategy).
    Avro,
    /// UTF-8 JSON framed `0x00 + schema id`, JSON Schemas (Kafka Connect's conventions)
    /// registered like Avro's.
    JsonSr,
    /// Protobuf framed `0x00 + schema id + message indexes`, proto3 `Key` / `Value` schemas
    /// registered like Avro's, with stable field numbers.
    Protobuf,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 4] = [
        OutputFormat::Json,
        OutputFormat::Avro,
        OutputFormat::JsonSr,
        OutputFormat::Protobuf,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Avro => "avro",
            OutputFormat::JsonSr => "json_sr",
            OutputFormat::Protobuf => "protobuf",
        }
    }

    /// Whether this build can write the format.
    pub fn supported(self) -> bool {
        matches!(
            self,
            OutputFormat::Json | OutputFormat::Avro | OutputFormat::JsonSr | OutputFormat::Protobuf
        )
    }

    /// Whether the format registers its schemas in `[schema_registry]`.
    pub fn uses_registry(self) -> bool {
        self != OutputFormat::Json
    }
}

/// `output.subject_name_strategy` (see [`OutputConfig::subject_name_strategy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNameStrategy {
    #[default]
    TopicName,
    RecordName,
    TopicRecordName,
}

/// `[state]`: the local state store (TOAST values and the key index).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the store (`state.redb`). Keep it on a persistent volume: after a restart
    /// decant fills TOAST-unchanged columns from it.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// The store's page cache in MiB (a share of decant's memory; see
    /// [`crate::state::DEFAULT_CACHE_MIB`]).
    #[serde(default = "default_state_cache_mib")]
    pub cache_mib: u64,
    /// How long (source time, after the newest delete of its table) a deleted key stays
    /// marked, so that a change the connector sends again from before the delete is known for
    /// one (see [`crate::state::Deleted`]).
    #[serde(default = "default_deleted_retention_secs")]
    pub deleted_retention_secs: u64,
    /// The open batch's changes to the store are held in memory until its commit; once they
    /// hold this many MiB the batch commits early, whatever the sink's own cadence (a batch of
    /// rows with large TOAST-able values would otherwise grow with the commit interval).
    #[serde(default = "default_state_batch_max_mib")]
    pub batch_max_mib: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
            cache_mib: default_state_cache_mib(),
            deleted_retention_secs: default_deleted_retention_secs(),
            batch_max_mib: default_state_batch_max_mib(),
        }
    }
}

fn default_state_batch_max_mib() -> u64 {
    16
}

fn default_deleted_retention_secs() -> u64 {
    crate::state::DEFAULT_DELETED_RETENTION_SECS
}

fn default_state_cache_mib() -> u64 {
    crate::state::DEFAULT_CACHE_MIB
}

/// `[observability]`: HTTP endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Address of the `/metrics`, `/health` and `/ready` endpoints; empty turns them off.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `/health` fails when the processing loop has not turned for this long.
    #[serde(default = "default_stall_ms")]
    pub stall_after_ms: u64,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            listen: default_listen(),
            stall_after_ms: default_stall_ms(),
        }
    }
}

fn default_template() -> String {
    "{prefix}.{schema}.{table}".into()
}
fn default_prefix() -> String {
    "decant".into()
}
fn one() -> i32 {
    1
}
fn minus_one() -> i32 {
    -1
}
fn yes() -> bool {
    true
}
fn default_commit_interval_ms() -> u64 {
    1_000
}
fn default_commit_max_records() -> u64 {
    50_000
}
fn default_flush_max_rows() -> usize {
    4_096
}
fn default_transaction_timeout_ms() -> u64 {
    60_000
}
fn default_max_consecutive_rewinds() -> u32 {
    10
}
fn default_bad_record() -> BadRecordPolicy {
    BadRecordPolicy::Fail
}
fn default_toast() -> ToastPolicy {
    ToastPolicy::Fail
}
fn default_truncate() -> TruncatePolicy {
    TruncatePolicy::TombstoneAll
}
fn default_keep_state() -> bool {
    true
}
fn all_ops() -> Vec<Op> {
    vec![Op::Upsert, Op::Delete]
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("decant-state")
}
fn default_listen() -> String {
    "127.0.0.1:9898".into()
}
fn default_stall_ms() -> u64 {
    120_000
}

impl PipelineConfig {
    /// Every semantic problem, each as `path: what is wrong`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.source;
        match (s.topics.is_empty(), &s.topic_pattern) {
            (true, None) => out.push("source: set topics or topic_pattern".into()),
            (false, Some(_)) => {
                out.push("source: topics and topic_pattern are exclusive; set one".into())
            }
            _ => {}
        }
        if s.topics.iter().any(|t| t.trim().is_empty()) {
            out.push("source.topics: empty topic name".into());
        }
        let o = &self.output;
        for var in template_vars(&o.topic_template) {
            if !["prefix", "schema", "table", "topic"].contains(&var.as_str()) {
                out.push(format!(
                    "output.topic_template: unknown variable {{{var}}} (known: {{prefix}}, {{schema}}, {{table}}, {{topic}})"
                ));
            }
        }
        if !o.format.supported() {
            // Listed from the formats themselves, so adding one needs no edit here.
            let supported: Vec<String> = OutputFormat::ALL
                .iter()
                .filter(|f| f.supported())
                .map(|f| format!("{:?}", f.as_str()))
                .collect();
            out.push(format!(
                "output.format: {:?} is not yet supported (supported: {})",
                o.format.as_str(),
                supported.join(", ")
            ));
        }
        if o.format == OutputFormat::Json
            && o.subject_name_strategy != SubjectNameStrategy::TopicName
        {
            out.push(
                "output.subject_name_strategy: names registry subjects, but output.format = \"json\" registers none (set a registry format or remove it)".into(),
            );
        }
        if o.partitions < 1 {
            out.push("output.partitions: must be at least 1".into());
        }
        if o.replication_factor == 0 || o.replication_factor < -1 {
            out.push("output.replication_factor: -1 (broker default) or at least 1".into());
        }
        for m in &o.metadata_columns {
            if !METADATA_COLUMNS.contains(&m.as_str()) {
                out.push(format!(
                    "output.metadata_columns: unknown column {m:?} (known: {})",
                    METADATA_COLUMNS.join(", ")
                ));
            }
        }
        let d = &self.delivery;
        if d.commit_interval_ms == 0 {
            out.push("delivery.commit_interval_ms: must be positive".into());
        }
        if d.commit_max_records == 0 {
            out.push("delivery.commit_max_records: must be positive".into());
        }
        if self.state.cache_mib == 0 || self.state.cache_mib > 1 << 20 {
            out.push("state.cache_mib: between 1 and 1048576 (MiB)".into());
        }
        if self.state.batch_max_mib == 0 || self.state.batch_max_mib > 1 << 20 {
            out.push("state.batch_max_mib: between 1 and 1048576 (MiB)".into());
        }
        if d.flush_max_rows == 0 {
            out.push("delivery.flush_max_rows: must be positive".into());
        }
        if d.transaction_timeout_ms < 1_000 || d.transaction_timeout_ms <= d.commit_interval_ms {
            out.push(format!(
                "delivery.transaction_timeout_ms: {} must be at least 1000 and above commit_interval_ms ({})",
                d.transaction_timeout_ms, d.commit_interval_ms
            ));
        }
        let mut needs_dlq = Vec::new();
        let check_policy = |path: &str, p: &TablePolicyView, needs: &mut Vec<String>| {
            if p.bad == BadRecordPolicy::DeadLetter {
                needs.push(format!("{path}.on_bad_record"));
            }
            if p.toast == ToastPolicy::DeadLetter {
                needs.push(format!("{path}.on_toast_missing"));
            }
            if p.truncate == TruncatePolicy::DeadLetter {
                needs.push(format!("{path}.on_truncate"));
            }
        };
        check_policy("defaults", &self.defaults.view(), &mut needs_dlq);
        state_conflict("defaults", &self.defaults.view(), &mut out);
        if self.defaults.ops.is_empty() {
            out.push("defaults.ops: empty (nothing would be written)".into());
        }
        for (name, t) in &self.tables {
            let path = format!("tables.\"{name}\"");
            if !name.contains('.') {
                out.push(format!("{path}: expected schema.table"));
            }
            if let Some(topic) = &t.topic
                && topic.trim().is_empty()
            {
                out.push(format!("{path}.topic: empty"));
            }
            if t.columns.as_ref().is_some_and(Vec::is_empty) {
                out.push(format!("{path}.columns: empty projection"));
            }
            if t.ops.as_ref().is_some_and(Vec::is_empty) {
                out.push(format!("{path}.ops: empty (nothing would be written)"));
            }
            let mut targets: Vec<&String> = t.rename.values().collect();
            targets.sort();
            targets.dedup();
            if targets.len() != t.rename.len() {
                out.push(format!(
                    "{path}.rename: two columns renamed to the same name"
                ));
            }
            for target in t.rename.values() {
                if METADATA_COLUMNS.contains(&target.as_str()) || target.is_empty() {
                    out.push(format!(
                        "{path}.rename: {target:?} is not a usable column name"
                    ));
                }
            }
            for (i, c) in t.filter.iter().enumerate() {
                if c.column.trim().is_empty() {
                    out.push(format!("{path}.where[{i}].column: empty"));
                }
                if let Err(e) = c.literals() {
                    out.push(format!("{path}.where[{i}].value: {e}"));
                }
            }
            check_policy(&path, &self.policy_view(t), &mut needs_dlq);
            // A table that sets neither inherits the defaults' conflict, reported once there.
            if t.keep_state.is_some() || t.on_truncate.is_some() {
                state_conflict(&path, &self.policy_view(t), &mut out);
            }
        }
        if self.dead_letter.topic.is_none() && !needs_dlq.is_empty() {
            out.push(format!(
                "dead_letter.topic: required by {}",
                needs_dlq.join(", ")
            ));
        }
        if let Some(t) = &self.dead_letter.topic
            && t.trim().is_empty()
        {
            out.push("dead_letter.topic: empty".into());
        }
        if self.dead_letter.partitions < 1 {
            out.push("dead_letter.partitions: must be at least 1".into());
        }
        if !self.observability.listen.is_empty()
            && self
                .observability
                .listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            out.push(format!(
                "observability.listen: {:?} is not ip:port",
                self.observability.listen
            ));
        }
        if self.state.dir.as_os_str().is_empty() {
            out.push("state.dir: empty".into());
        }
        out
    }

    fn policy_view(&self, t: &TableConfig) -> TablePolicyView {
        TablePolicyView {
            bad: t.on_bad_record.unwrap_or(self.defaults.on_bad_record),
            toast: t.on_toast_missing.unwrap_or(self.defaults.on_toast_missing),
            truncate: t.on_truncate.unwrap_or(self.defaults.on_truncate),
            keep_state: t.keep_state.unwrap_or(self.defaults.keep_state),
        }
    }
}

/// `keep_state = false` with `on_truncate = tombstone_all`: a truncate could delete nothing.
fn state_conflict(path: &str, p: &TablePolicyView, out: &mut Vec<String>) {
    if !p.keep_state && p.truncate == TruncatePolicy::TombstoneAll {
        out.push(format!(
            "{path}: keep_state = false needs on_truncate = skip, fail or dead_letter (tombstone_all deletes the keys the state knows, and none are kept)"
        ));
    }
}

struct TablePolicyView {
    bad: BadRecordPolicy,
    toast: ToastPolicy,
    truncate: TruncatePolicy,
    keep_state: bool,
}

impl TablePolicy {
    fn view(&self) -> TablePolicyView {
        TablePolicyView {
            bad: self.on_bad_record,
            toast: self.on_toast_missing,
            truncate: self.on_truncate,
            keep_state: self.keep_state,
        }
    }
}

pub use decant_model::template_vars;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut cfg = PipelineConfig::default();
        cfg.output.topic_template = "{prefix}.{nope}".into();
        cfg.output.metadata_columns = vec!["__wat".into()];
        cfg.defaults.on_bad_record = BadRecordPolicy::DeadLetter;
        cfg.delivery.commit_interval_ms = 0;
        cfg.state.batch_max_mib = 0;
        let p = cfg.problems();
        assert!(p.iter().any(|x| x.starts_with("source:")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("{nope}")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("__wat")), "{p:?}");
        assert!(
            p.iter().any(|x| x.starts_with("dead_letter.topic")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.starts_with("delivery.commit_interval_ms")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.starts_with("state.batch_max_mib")),
            "{p:?}"
        );
    }

    /// Without state a truncate cannot delete the table's keys: `tombstone_all` is refused
    /// wherever it meets `keep_state = false`, once for a table that inherits both.
    #[test]
    fn keep_state_off_needs_another_truncate_policy() {
        let mut cfg = PipelineConfig::default();
        cfg.source.topics = vec!["a".into()];
        cfg.defaults.keep_state = false;
        let inherits = TableConfig::default();
        cfg.tables.insert("s.inherits".into(), inherits);
        let own: TableConfig = toml::from_str("on_truncate = \"tombstone_all\"").expect("parses");
        cfg.tables.insert("s.own".into(), own);
        let ok: TableConfig = toml::from_str("on_truncate = \"skip\"").expect("parses");
        cfg.tables.insert("s.ok".into(), ok);
        let p = cfg.problems();
        let conflicts: Vec<&String> = p.iter().filter(|x| x.contains("keep_state")).collect();
        assert_eq!(conflicts.len(), 2, "{p:?}");
        assert!(conflicts[0].starts_with("defaults:"), "{p:?}");
        assert!(conflicts[1].starts_with("tables.\"s.own\":"), "{p:?}");

        cfg.defaults.on_truncate = TruncatePolicy::Skip;
        cfg.tables.remove("s.own");
        let kept: TableConfig =
            toml::from_str("keep_state = true\non_truncate = \"tombstone_all\"").expect("parses");
        cfg.tables.insert("s.kept".into(), kept);
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }

    #[test]
    fn defaults_are_valid_once_a_source_is_set() {
        let mut cfg = PipelineConfig::default();
        cfg.source.topics = vec!["a".into()];
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }

    #[test]
    fn where_parses_and_is_validated() {
        let t: TableConfig = toml::from_str(
            r#"where = [{ column = "status", op = "ne", value = "deleted" }, { column = "total", op = "gt", value = "100" }, { column = "kind", op = "in", value = ["a", 1, true] }, { column = "note", op = "is_null" }]"#,
        )
        .expect("parses");
        assert_eq!(t.filter.len(), 4);
        assert_eq!(t.filter[1].op, CondOp::Gt);
        assert_eq!(
            t.filter[2].literals(),
            Ok(vec!["a".into(), "1".into(), "true".into()])
        );
        let unknown = toml::from_str::<TableConfig>(
            r#"where = [{ column = "a", op = "like", value = "x" }]"#,
        );
        assert!(unknown.is_err_and(|e| e.to_string().contains("like")));
        assert!(
            toml::from_str::<TableConfig>(r#"where = [{ column = "a", op = "eq", valu = "x" }]"#)
                .is_err()
        );

        let mut cfg = PipelineConfig::default();
        cfg.source.topics = vec!["a".into()];
        let bad: TableConfig = toml::from_str(
            r#"where = [{ column = "", op = "eq", value = "x" }, { column = "a", op = "in", value = "x" }, { column = "a", op = "eq", value = ["x"] }, { column = "a", op = "eq" }, { column = "a", op = "is_null", value = 1 }, { column = "a", op = "gt", value = 1.5 }, { column = "a", op = "in", value = [] }]"#,
        )
        .expect("parses");
        cfg.tables.insert("s.t".into(), bad);
        let p = cfg.problems();
        assert_eq!(p.len(), 7, "{p:?}");
        assert!(p[0].contains("where[0].column: empty"), "{p:?}");
        assert!(
            p.iter()
                .any(|x| x.contains("where[1].value: in: value must be an array")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("where[5].value: 1.5 is not an integer")),
            "{p:?}"
        );

        cfg.tables.insert("s.t".into(), t);
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    }
}
