//! decant's configuration file (TOML, unknown keys rejected at every level): loading with
//! `${ENV}` / `${env:NAME}` / `${file:/path}` interpolation and `DECANT_<SECTION>__<KEY>`
//! overrides, per-section typing that collects every error, and the `[decode]` / `[log]`
//! sections owned by the binary. The pipeline's sections are typed in
//! `decant_pipeline::config`, the `[kafka]` section in `decant_kafka::config`.
//!
//! Secrets: the value of every secret-named key (`sasl.password`, `…secret…`, `…token…`,
//! `ssl.key.pem` …, see [`decant_kafka::is_secret_property`]) and everything read through
//! `${file:…}` are collected in [`FileConfig::secrets`]; every message this module returns has
//! them replaced by `[redacted]`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Result;
use decant_decode::{BinaryText, DeclaredTable, DecoderConfig, TombstonePolicy};
use decant_kafka::KafkaConfig;
use decant_model::TableId;
use decant_pipeline::PipelineConfig;
use decant_pipeline::config::{SinkKind, TableConfig};
use serde::Deserialize;

/// `[decode]` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeSection {
    /// What a null-value record means: `skip` (report it, default) or `delete` (delete by key).
    #[serde(default)]
    pub tombstones: Option<String>,
    /// Give schemaless tables that nobody declared best-effort types (off by default).
    #[serde(default)]
    pub infer_schemaless: bool,
    /// Debezium's `unavailable.value.placeholder`, if the connector changed it.
    #[serde(default)]
    pub unavailable_placeholder: Option<String>,
    /// Debezium's `binary.handling.mode` (`bytes`, `base64`, `base64-url-safe`, `hex`).
    #[serde(default)]
    pub binary_handling_mode: Option<String>,
    /// Declared schemas for schemaless JSON, by `schema.table` / `db.table`.
    #[serde(default)]
    pub tables: HashMap<String, TableSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// Key columns, for records that carry no Kafka key.
    #[serde(default)]
    pub key: Vec<String>,
    /// Columns in order: `{ name = "id", type = "int64" }`.
    pub columns: Vec<ColumnSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSection {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// The whole configuration file. `decant decode` reads only `[decode]`; `decant run` reads all.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// `[decode]`: decoder settings (both commands).
    pub decode: DecodeSection,
    /// `[kafka]`: connection, group and transactional id (required by `decant run`).
    pub kafka: Option<KafkaConfig>,
    /// `[log]`: log format and level.
    pub log: LogConfig,
    /// `[source]`, `[output]`, `[delivery]`, `[dead_letter]`, `[defaults]`, `[tables.*]`,
    /// `[state]`, `[observability]`.
    pub pipeline: PipelineConfig,
    /// `[iceberg]`: the Iceberg sink (`output.type = "iceberg"`).
    pub iceberg: decant_iceberg::IcebergSinkConfig,
    /// `[schema_registry]`: where the schemas of registry-framed records (Avro) come from.
    pub schema_registry: Option<decant_registry::RegistryConfig>,
    /// Dotted paths the file (or an override) sets, up to three levels (`iceberg`,
    /// `output.partitions`, `tables.s.t.topic`): what was chosen, as opposed to defaulted.
    pub present: BTreeSet<String>,
    /// Secret values (see the module comment), to be kept out of every message.
    pub secrets: Secrets,
}

/// Secret values; `Debug` shows how many, never what.
#[derive(Default)]
pub struct Secrets(pub Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

/// `[log]`: structured logs on stderr.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human) or `json` (one object per line).
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter (`info`, `decant_pipeline=debug,info` …); `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_log_format() -> String {
    "text".into()
}

fn default_log_level() -> String {
    "info".into()
}

/// Top-level sections, in the order the reference documents them.
pub const SECTIONS: &[&str] = &[
    "kafka",
    "source",
    "decode",
    "output",
    "delivery",
    "dead_letter",
    "defaults",
    "tables",
    "state",
    "observability",
    "iceberg",
    "schema_registry",
    "log",
];

/// Reads `path` for `decant decode` (only `[decode]` matters; the rest is checked too).
pub fn load(path: &Path) -> Result<FileConfig> {
    load_all(path, &env_vars()).map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))
}

/// The process environment as a map (for interpolation and overrides).
pub fn env_vars() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Reads, interpolates, overrides and types the whole file; every problem found is returned.
pub fn load_all(path: &Path, env: &BTreeMap<String, String>) -> Result<FileConfig, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    parse_all(&text, env).map_err(|errs| {
        errs.into_iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect()
    })
}

/// [`load_all`] on text.
pub fn parse_all(text: &str, env: &BTreeMap<String, String>) -> Result<FileConfig, Vec<String>> {
    let mut secrets = Vec::new();
    // A secret typed into the file itself must not come back in a syntax error either.
    let literal = toml::from_str::<toml::Value>(text).map(|v| {
        let mut s = Vec::new();
        collect_secrets(&v, "", &mut s);
        s
    });
    let result = parse_inner(text, env, &mut secrets);
    secrets.extend(literal.unwrap_or_default());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    match result {
        Ok(mut cfg) => {
            cfg.secrets = Secrets(secrets);
            Ok(cfg)
        }
        Err(errors) => Err(errors.iter().map(|e| scrub(e, &secrets)).collect()),
    }
}

fn parse_inner(
    text: &str,
    env: &BTreeMap<String, String>,
    secrets: &mut Vec<String>,
) -> Result<FileConfig, Vec<String>> {
    let mut errors = Vec::new();
    let mut root: toml::Value = toml::from_str(text).map_err(|e| {
        // toml's message quotes the offending line, which may hold a secret: line and column
        // and the reason only.
        let at = e
            .span()
            .map(|sp| {
                let line = text[..sp.start].matches('\n').count() + 1;
                format!(" at line {line}")
            })
            .unwrap_or_default();
        vec![format!("TOML syntax{at}: {}", e.message().trim())]
    })?;
    interpolate(&mut root, "", env, secrets, &mut errors);
    apply_overrides(&mut root, env, &mut errors);
    collect_secrets(&root, "", secrets);
    let Some(table) = root.as_table() else {
        return Err(vec!["expected a TOML table".into()]);
    };
    let mut present = BTreeSet::new();
    collect_paths(table, "", 0, &mut present);
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.push(format!(
                "unknown section [{key}] (known: {})",
                SECTIONS.join(", ")
            ));
        }
    }
    fn section<T: serde::de::DeserializeOwned + Default>(
        table: &toml::Table,
        name: &str,
        errors: &mut Vec<String>,
    ) -> T {
        match table.get(name) {
            None => T::default(),
            Some(v) => typed(&format!("[{name}]"), v).unwrap_or_else(|e| {
                errors.push(e);
                T::default()
            }),
        }
    }
    let kafka = match table.get("kafka") {
        None => None,
        Some(v) => match typed::<KafkaConfig>("[kafka]", v) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let mut tables = BTreeMap::new();
    if let Some(t) = table.get("tables") {
        match t.as_table() {
            Some(t) => {
                for (name, v) in t {
                    match typed::<TableConfig>(&format!("[tables.\"{name}\"]"), v) {
                        Ok(c) => {
                            tables.insert(name.clone(), c);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            None => errors.push("[tables]: expected a table of tables".into()),
        }
    }
    let cfg = FileConfig {
        decode: section(table, "decode", &mut errors),
        kafka,
        log: section(table, "log", &mut errors),
        pipeline: PipelineConfig {
            source: section(table, "source", &mut errors),
            output: section(table, "output", &mut errors),
            delivery: section(table, "delivery", &mut errors),
            dead_letter: section(table, "dead_letter", &mut errors),
            defaults: section(table, "defaults", &mut errors),
            tables,
            state: section(table, "state", &mut errors),
            observability: section(table, "observability", &mut errors),
        },
        iceberg: section(table, "iceberg", &mut errors),
        schema_registry: section(table, "schema_registry", &mut errors),
        present,
        secrets: Secrets::default(),
    };
    if let Err(e) = cfg.decode.decoder_config() {
        errors.push(format!("[decode]: {e}"));
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// Types one section. The section is written back to TOML text and parsed from there, so an
/// error can name the offending line (`commit_interval_ms = "soon"`), which typing a
/// `toml::Value` directly cannot.
fn typed<T: serde::de::DeserializeOwned>(label: &str, v: &toml::Value) -> Result<T, String> {
    let text = toml::to_string(v).map_err(|e| format!("{label}: {e}"))?;
    toml::from_str::<T>(&text).map_err(|e| {
        let line = e.span().map(|span| {
            let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let end = text[span.start..]
                .find('\n')
                .map_or(text.len(), |i| span.start + i);
            text[start..end].trim().to_owned()
        });
        match line.filter(|l| !l.is_empty()) {
            Some(l) => format!("{label} {l}: {}", e.message().trim()),
            None => format!("{label}: {}", e.message().trim()),
        }
    })
}

/// Dotted paths of `t`'s keys, three levels deep.
fn collect_paths(t: &toml::Table, prefix: &str, depth: usize, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if depth < 2
            && let Some(inner) = v.as_table()
        {
            collect_paths(inner, &path, depth + 1, out);
        }
        out.insert(path);
    }
}

/// Values of secret-named keys, anywhere in the tree.
fn collect_secrets(v: &toml::Value, key: &str, out: &mut Vec<String>) {
    match v {
        // A `${…}` reference names where the secret is; the value it expands to is collected
        // after interpolation.
        toml::Value::String(s)
            if !s.is_empty() && !s.contains("${") && decant_kafka::is_secret_property(key) =>
        {
            out.push(s.clone())
        }
        // A property map takes a number as its text (`decant_model::properties`), so an
        // all-digit password is a secret too.
        toml::Value::Integer(n) if decant_kafka::is_secret_property(key) => out.push(n.to_string()),
        toml::Value::Float(f) if decant_kafka::is_secret_property(key) => out.push(f.to_string()),
        toml::Value::Array(a) => a.iter().for_each(|x| collect_secrets(x, key, out)),
        toml::Value::Table(t) => t.iter().for_each(|(k, x)| collect_secrets(x, k, out)),
        _ => {}
    }
}

/// `msg` with every secret replaced by `[redacted]` (longest first, so a secret that contains
/// another is not half-replaced).
pub fn scrub(msg: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(msg.to_owned(), |acc, s| {
            acc.replace(s.as_str(), decant_kafka::config::REDACTED)
        })
}

/// Keys read only by the Kafka (topics) output; with `output.type = "iceberg"` setting them
/// is a mistake. (`[delivery]` is not listed: the Iceberg sink reads part of it, and a
/// commit cadence shared by both outputs is a reasonable thing to keep in one file.)
const TOPICS_ONLY: &[&str] = &[
    "output.format",
    "output.topic_template",
    "output.partitions",
    "output.replication_factor",
    "output.create_topics",
    "output.provenance_headers",
];

/// Settings the chosen output never reads.
fn ignored_by_output(cfg: &FileConfig) -> Vec<String> {
    let mut out = Vec::new();
    match cfg.pipeline.output.sink {
        SinkKind::Kafka => {
            if cfg.present.contains("iceberg") {
                out.push(
                    "[iceberg]: ignored: output.type is \"kafka\" (compacted topics); set output.type = \"iceberg\" to write Iceberg tables, or remove the section".into(),
                );
            }
        }
        SinkKind::Iceberg => {
            for key in TOPICS_ONLY {
                if cfg.present.contains(*key) {
                    out.push(format!(
                        "{key}: ignored with output.type = \"iceberg\" (only the topics output reads it; Iceberg tables are named by iceberg.namespace / iceberg.table)"
                    ));
                }
            }
            for name in cfg.pipeline.tables.keys() {
                if cfg.present.contains(&format!("tables.{name}.topic")) {
                    out.push(format!(
                        "tables.\"{name}\".topic: ignored with output.type = \"iceberg\" (use iceberg.namespace / iceberg.table templates)"
                    ));
                }
            }
        }
    }
    out
}

/// Everything `decant run` needs beyond parsing: the `[kafka]` section and the semantic checks.
/// Nothing is contacted; librdkafka is asked about the `[kafka]` properties offline.
pub fn check_for_run(cfg: &FileConfig) -> Vec<String> {
    check_for_run_inner(cfg)
        .iter()
        .map(|e| scrub(e, &cfg.secrets.0))
        .collect()
}

fn check_for_run_inner(cfg: &FileConfig) -> Vec<String> {
    let mut errors = Vec::new();
    match &cfg.kafka {
        None => errors.push("[kafka]: missing (bootstrap_servers is required)".into()),
        Some(k) => {
            if k.bootstrap_servers.trim().is_empty() {
                errors.push("kafka.bootstrap_servers: empty".into());
            }
            if k.group_id.trim().is_empty() {
                errors.push("kafka.group_id: empty".into());
            }
            for r in k.reserved_overrides() {
                errors.push(format!(
                    "{r}: decant sets this property itself for correctness"
                ));
            }
            errors.extend(k.check_offline().iter().map(ToString::to_string));
        }
    }
    errors.extend(ignored_by_output(cfg));
    if !["text", "json"].contains(&cfg.log.format.as_str()) {
        errors.push(format!(
            "log.format: expected text or json, found {:?}",
            cfg.log.format
        ));
    }
    errors.extend(cfg.pipeline.problems());
    match &cfg.schema_registry {
        Some(r) => errors.extend(r.problems()),
        None if cfg.pipeline.output.sink == SinkKind::Kafka
            && cfg.pipeline.output.format.uses_registry() =>
        {
            errors.push(format!(
                "output.format = {:?} needs [schema_registry]: the key and value schemas are registered there (url = …)",
                cfg.pipeline.output.format.as_str()
            ))
        }
        None => {}
    }
    if cfg.pipeline.output.sink == SinkKind::Iceberg {
        errors.extend(cfg.iceberg.problems());
    }
    if let Ok(d) = cfg.decode.decoder_config()
        && let Err(e) = decant_decode::Decoder::new(d)
    {
        errors.push(format!("[decode]: {e}"));
    }
    errors
}

/// Replaces `${NAME}`, `${NAME:-default}`, `${env:NAME}` and `${file:/path}` in every string
/// value; `$${` is a literal `${`. What files gave is added to `secrets`.
fn interpolate(
    v: &mut toml::Value,
    path: &str,
    env: &BTreeMap<String, String>,
    secrets: &mut Vec<String>,
    errors: &mut Vec<String>,
) {
    match v {
        toml::Value::String(s) if s.contains('$') => match expand_into(s, env, secrets) {
            Ok(x) => *s = x,
            Err(e) => errors.push(format!("{path}: {e}")),
        },
        toml::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                interpolate(x, &format!("{path}[{i}]"), env, secrets, errors);
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate(x, &p, env, secrets, errors);
            }
        }
        _ => {}
    }
}

/// The contents of a secret file (a mounted Kubernetes/Docker secret): one trailing newline is
/// not part of the value. The error names the file, never its contents.
fn read_secret_file(path: &str) -> Result<String, String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| format!("${{file:{path}}}: {e}"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Expands `${NAME}` / `${NAME:-default}` / `${env:NAME}` / `${file:/path}` in one string;
/// what files gave is added to `secrets`.
fn expand_into(
    s: &str,
    env: &BTreeMap<String, String>,
    secrets: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = inner.find('}') else {
            return Err(format!("unterminated ${{ in {s:?}"));
        };
        let expr = &inner[..end];
        if let Some(path) = expr.strip_prefix("file:") {
            let value = read_secret_file(path)?;
            out.push_str(&value);
            secrets.push(value);
            rest = &inner[end + 1..];
            continue;
        }
        let expr = expr.strip_prefix("env:").unwrap_or(expr);
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                ));
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Maps whose values decant hands on, as text, to librdkafka or Iceberg.
const PROPERTY_MAPS: &[[&str; 2]] = &[
    ["kafka", "client"],
    ["kafka", "consumer"],
    ["kafka", "producer"],
    ["iceberg", "catalog_properties"],
    ["iceberg", "table_properties"],
    ["iceberg", "storage"],
];

/// `DECANT_<SECTION>__<KEY>[__<KEY>…]=value` sets `section.key…` (names lower-cased). The value
/// is read as a TOML value when it parses as one (`5000`, `true`, `["a","b"]`), else as a string;
/// an entry of a [`PROPERTY_MAPS`] map is always the string as given, since reading it as TOML
/// first would turn a password `1e3` into `1000` or `0x1F` into `31`.
fn apply_overrides(
    root: &mut toml::Value,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<String>,
) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("DECANT_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) || !SECTIONS.contains(&path[0].as_str()) {
            errors.push(format!(
                "environment override {name}: expected DECANT_<SECTION>__<KEY> with a known section"
            ));
            continue;
        }
        let property =
            path.len() == 3 && PROPERTY_MAPS.contains(&[path[0].as_str(), path[1].as_str()]);
        let value = if property {
            toml::Value::String(raw.clone())
        } else {
            toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.clone()))
        };
        let mut cur = &mut *root;
        for (i, seg) in path.iter().enumerate() {
            let Some(t) = cur.as_table_mut() else {
                errors.push(format!(
                    "environment override {name}: {} is not a table",
                    path[..i].join(".")
                ));
                break;
            };
            if i == path.len() - 1 {
                t.insert(seg.clone(), value.clone());
                break;
            }
            cur = t
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
    }
}

impl DecodeSection {
    pub fn decoder_config(&self) -> Result<DecoderConfig> {
        let mut cfg = DecoderConfig {
            infer_schemaless: self.infer_schemaless,
            ..DecoderConfig::default()
        };
        cfg.tombstones = match self.tombstones.as_deref() {
            None | Some("skip") => TombstonePolicy::Skip,
            Some("delete") => TombstonePolicy::Delete,
            Some(other) => {
                anyhow::bail!("decode.tombstones: expected skip or delete, found {other:?}")
            }
        };
        if let Some(p) = &self.unavailable_placeholder {
            cfg.unavailable_placeholder = p.clone();
        }
        cfg.binary_handling_mode = match self.binary_handling_mode.as_deref() {
            None | Some("bytes") => None,
            Some("base64") => Some(BinaryText::Base64),
            Some("base64-url-safe") => Some(BinaryText::Base64UrlSafe),
            Some("hex") => Some(BinaryText::Hex),
            Some(other) => anyhow::bail!("decode.binary_handling_mode: unknown mode {other:?}"),
        };
        for (name, t) in &self.tables {
            cfg.tables.insert(
                TableId::parse(name),
                DeclaredTable {
                    columns: t
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.clone()))
                        .collect(),
                    key: t.key.clone(),
                },
            );
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const GOOD: &str = r#"
[kafka]
bootstrap_servers = "${BROKER:-localhost:9092}"
group_id = "g"
[source]
topics = ["a.b.c"]
[dead_letter]
topic = "dlq"
[defaults]
on_bad_record = "dead_letter"
[tables."public.orders"]
rename = { id = "order_id" }
"#;

    #[test]
    fn interpolation_defaults_and_overrides() {
        let cfg = parse_all(
            GOOD,
            &env(&[
                ("DECANT_DELIVERY__COMMIT_INTERVAL_MS", "250"),
                ("DECANT_KAFKA__GROUP_ID", "from-env"),
                ("DECANT_PG_URL", "ignored: no section separator"),
            ]),
        )
        .expect("valid");
        let k = cfg.kafka.as_ref().expect("kafka");
        assert_eq!(k.bootstrap_servers, "localhost:9092");
        assert_eq!(k.group_id, "from-env");
        assert_eq!(cfg.pipeline.delivery.commit_interval_ms, 250);
        assert!(check_for_run(&cfg).is_empty(), "{:?}", check_for_run(&cfg));
        let cfg = parse_all(GOOD, &env(&[("BROKER", "b:1")])).expect("valid");
        assert_eq!(cfg.kafka.expect("kafka").bootstrap_servers, "b:1");
        assert_eq!(
            expand_into("a$${b}$c", &env(&[]), &mut Vec::new()).expect("literal"),
            "a${b}$c"
        );
        assert_eq!(
            expand_into("${env:X}-${Y:-d}", &env(&[("X", "x")]), &mut Vec::new()).expect("env"),
            "x-d"
        );
    }

    #[test]
    fn client_properties_take_numbers_and_booleans_as_text() {
        let text = format!(
            "{GOOD}[kafka.consumer]\n\"fetch.max.bytes\" = 104857600\n\
             [iceberg.storage]\n\"s3.path-style-access\" = true\n"
        );
        // An override of a property is the text as given, never read as TOML first.
        let cfg = parse_all(
            &text,
            &env(&[
                ("DECANT_KAFKA__PRODUCER__LINGER.MS", "50"),
                ("DECANT_KAFKA__CLIENT__SASL.PASSWORD", "0x1F"),
                ("DECANT_ICEBERG__STORAGE__S3.SECRET-ACCESS-KEY", "1e3"),
            ]),
        )
        .expect("valid");
        let k = cfg.kafka.as_ref().expect("kafka");
        assert_eq!(k.producer["linger.ms"], "50");
        assert_eq!(k.client["sasl.password"], "0x1F");
        assert_eq!(k.consumer["fetch.max.bytes"], "104857600");
        assert_eq!(cfg.iceberg.storage["s3.path-style-access"], "true");
        assert_eq!(cfg.iceberg.storage["s3.secret-access-key"], "1e3");
        // A number typed into the file as a password is still a secret.
        let numeric = format!("{GOOD}[kafka.client]\n\"sasl.password\" = 73914822\n");
        let cfg = parse_all(&numeric, &env(&[])).expect("valid");
        assert!(
            cfg.secrets.0.iter().any(|s| s == "73914822"),
            "{:?}",
            cfg.secrets.0.len()
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = r#"
[kafka]
bootstrap_servers = "${MISSING_BROKER}"
bogus = 1
[source]
topics = ["t"]
[output]
topic_template = "{prefix}.{nope}"
[delivery]
commit_interval_ms = "soon"
[defaults]
on_bad_record = "explode"
[tables."s.t"]
colums = ["x"]
[nonsense]
"#;
        let errors = parse_all(text, &env(&[])).expect_err("invalid");
        let joined = errors.join("\n");
        for needle in [
            "MISSING_BROKER",
            "bogus",
            "commit_interval_ms",
            "explode",
            "colums",
            "[nonsense]",
        ] {
            assert!(joined.contains(needle), "{needle} not reported:\n{joined}");
        }
        let cfg = parse_all(
            "[source]\ntopics = [\"t\"]\n[output]\ntopic_template = \"{nope}\"\n[defaults]\non_bad_record = \"dead_letter\"\n",
            &env(&[]),
        )
        .expect("parses");
        let problems = check_for_run(&cfg).join("\n");
        for needle in ["[kafka]", "{nope}", "dead_letter.topic"] {
            assert!(
                problems.contains(needle),
                "{needle} not reported:\n{problems}"
            );
        }
    }

    #[test]
    fn reserved_librdkafka_properties_are_refused() {
        let text = "[kafka]\nbootstrap_servers = \"x:1\"\n[kafka.producer]\n\"transactional.id\" = \"t\"\n[source]\ntopics = [\"t\"]\n";
        let cfg = parse_all(text, &env(&[])).expect("parses");
        assert!(
            check_for_run(&cfg)
                .iter()
                .any(|p| p.contains("transactional.id"))
        );
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_show() {
        let dir = std::env::temp_dir().join(format!("decant-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("password");
        std::fs::write(&file, "from-a-file-pw\n").expect("write");
        let text = format!(
            "[kafka]\nbootstrap_servers = \"b:1\"\n[kafka.client]\n\"sasl.username\" = \"${{env:KAFKA_USER}}\"\n\"sasl.password\" = \"${{file:{}}}\"\n\"sasl.oauthbearer.client.secret\" = \"${{CLIENT_SECRET}}\"\n[source]\ntopics = [\"t\"]\n",
            file.display()
        );
        let e = env(&[
            ("KAFKA_USER", "alice"),
            ("CLIENT_SECRET", "env-secret-value"),
        ]);
        let cfg = parse_all(&text, &e).expect("valid");
        let k = cfg.kafka.as_ref().expect("kafka");
        assert_eq!(k.client["sasl.username"], "alice");
        assert_eq!(k.client["sasl.password"], "from-a-file-pw");
        let shown = format!("{cfg:?}");
        for secret in ["from-a-file-pw", "env-secret-value"] {
            assert!(!shown.contains(secret), "{secret} in Debug output");
        }
        // A problem that would quote a secret shows it redacted.
        let bad = text.replace("[source]", "bogus_key = \"${CLIENT_SECRET}\"\n[source]");
        let bad = bad.replace("\"sasl.password\"", "\"sasl.pasword\"");
        let errors = match parse_all(&bad, &e) {
            Ok(cfg) => check_for_run(&cfg),
            Err(errors) => errors,
        }
        .join("\n");
        assert!(errors.contains("bogus_key"), "{errors}");
        for secret in ["from-a-file-pw", "env-secret-value"] {
            assert!(!errors.contains(secret), "{secret} shown:\n{errors}");
        }
        let missing = text.replace(&file.display().to_string(), "/nonexistent/secret");
        let errors = parse_all(&missing, &e)
            .expect_err("missing file")
            .join("\n");
        assert!(errors.contains("/nonexistent/secret"), "{errors}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sections_the_output_ignores_are_reported() {
        let base = "[kafka]\nbootstrap_servers = \"b:1\"\n[source]\ntopics = [\"t\"]\n";
        let cfg = parse_all(
            &format!("{base}[iceberg]\ncatalog_uri = \"sqlite:x.db\"\n"),
            &env(&[]),
        )
        .expect("parses");
        let p = check_for_run(&cfg).join("\n");
        assert!(p.contains("[iceberg]: ignored"), "{p}");
        let cfg = parse_all(
            &format!(
                "{base}[output]\ntype = \"iceberg\"\npartitions = 3\n[iceberg]\ncatalog_uri = \"sqlite:x.db\"\nwarehouse = \"w\"\n[tables.\"s.t\"]\ntopic = \"x\"\n"
            ),
            &env(&[]),
        )
        .expect("parses");
        let p = check_for_run(&cfg).join("\n");
        assert!(p.contains("output.partitions: ignored"), "{p}");
        assert!(p.contains("tables.\"s.t\".topic: ignored"), "{p}");
        assert!(!p.contains("[iceberg]"), "{p}");
    }

    #[test]
    fn the_output_format_is_checked() {
        let base = "[kafka]\nbootstrap_servers = \"b:1\"\n[source]\ntopics = [\"t\"]\n";
        let check = |extra: &str| {
            let cfg = parse_all(&format!("{base}{extra}"), &env(&[])).expect("parses");
            check_for_run(&cfg).join("\n")
        };
        assert_eq!(check("[output]\nformat = \"json\"\n"), "");
        let p = check("[output]\nformat = \"avro\"\n");
        assert!(
            p.contains("output.format = \"avro\" needs [schema_registry]"),
            "{p}"
        );
        let p = check("[output]\nformat = \"avro\"\n[schema_registry]\nurl = \"http://sr:8081\"\n");
        assert_eq!(p, "");
        let p = check(
            "[output]\nformat = \"avro\"\nsubject_name_strategy = \"record_name\"\n[schema_registry]\nurl = \"http://sr:8081\"\n",
        );
        assert_eq!(p, "");
        let p = check("[output]\nsubject_name_strategy = \"topic_record_name\"\n");
        assert!(p.contains("output.format = \"json\" registers none"), "{p}");
        let p = check("[output]\nformat = \"avro\"\n[schema_registry]\nurl = \"ftp://sr\"\n");
        assert!(p.contains("not an http:// or https:// URL"), "{p}");
        let p = check("[output]\nformat = \"json_sr\"\n");
        assert!(
            p.contains("output.format = \"json_sr\" needs [schema_registry]"),
            "{p}"
        );
        assert!(!p.contains("not yet supported"), "{p}");
        let p =
            check("[output]\nformat = \"json_sr\"\n[schema_registry]\nurl = \"http://sr:8081\"\n");
        assert_eq!(p, "");
        let p = check("[output]\nformat = \"protobuf\"\n");
        assert!(
            p.contains("output.format = \"protobuf\" needs [schema_registry]"),
            "{p}"
        );
        assert!(!p.contains("not yet supported"), "{p}");
        let p = check(
            "[output]\nformat = \"protobuf\"\nsubject_name_strategy = \"topic_record_name\"\n[schema_registry]\nurl = \"http://sr:8081\"\n",
        );
        assert_eq!(p, "");
        let p = check(
            "[output]\ntype = \"iceberg\"\nformat = \"avro\"\n[iceberg]\ncatalog_uri = \"sqlite:x.db\"\nwarehouse = \"w\"\n",
        );
        assert!(p.contains("output.format: ignored"), "{p}");
        assert!(!p.contains("needs [schema_registry]"), "{p}");
    }

    #[test]
    fn unsupported_or_missing_kafka_settings_fail_validation() {
        let text = "[kafka]\nbootstrap_servers = \"b:1\"\n[kafka.client]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"/nonexistent/ca.pem\"\n[kafka.producer]\n\"compression.type\" = \"zstd\"\n\"no.such.property\" = \"1\"\n[source]\ntopics = [\"t\"]\n";
        let cfg = parse_all(text, &env(&[])).expect("parses");
        let p = check_for_run(&cfg).join("\n");
        assert!(p.contains("/nonexistent/ca.pem"), "{p}");
        assert!(p.contains("no.such.property"), "{p}");
        assert!(!p.contains("compression.type"), "zstd is built in:\n{p}");
    }

    #[test]
    fn the_compose_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/decant.toml");
        let cfg = load_all(&path, &env(&[])).expect("deploy/decant.toml parses");
        assert!(check_for_run(&cfg).is_empty(), "{:?}", check_for_run(&cfg));
    }
}
