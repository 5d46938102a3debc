//! `[iceberg]`: the Iceberg sink's section of the configuration file, and its checks.

use std::collections::BTreeMap;

use decant_model::template_vars;
use serde::Deserialize;

/// `[iceberg]`: the Iceberg sink. Each source table becomes an Iceberg v2 table keyed by its
/// primary key; every batch is one snapshot whose summary carries the consumed offsets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergSinkConfig {
    /// SQL catalog database: `sqlite:<path>` (created if missing) or `postgres://…`; or a REST
    /// catalog's base URI `http(s)://host[:port][/path]` (without `/v1`).
    #[serde(default = "default_catalog_uri")]
    pub catalog_uri: String,
    /// Catalog name inside that database (for a REST catalog only a label).
    #[serde(default = "default_catalog_name")]
    pub catalog_name: String,
    /// SQL catalog: the warehouse root, a local directory (created if missing) or
    /// `s3://bucket/prefix`. REST catalog: the `warehouse` sent to the server (a path, a
    /// warehouse or catalog name, as the server defines it); empty sends none.
    #[serde(default = "default_warehouse")]
    pub warehouse: String,
    /// REST catalog settings, named as Iceberg's REST clients name them: `token`, `credential`
    /// (`client_id:client_secret`, OAuth2 client credentials), `oauth2-server-uri`, `scope`,
    /// `prefix`, `header.<name>`.
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
    pub catalog_properties: BTreeMap<String, String>,
    /// Namespace template; variables `{schema}`, `{table}`, `{prefix}` (= output.prefix).
    #[serde(default = "default_ns_template")]
    pub namespace: String,
    /// Table name template; same variables.
    #[serde(default = "default_table_template")]
    pub table: String,
    /// Pipeline id stored on the tables and in every snapshot; defaults to `kafka.group_id`.
    /// Two processes with the same id fence each other (the newer one wins).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Commit at least this often (while changes are pending).
    #[serde(default = "default_iceberg_interval_ms")]
    pub commit_interval_ms: u64,
    /// … or when this many changes are pending (memory bound).
    #[serde(default = "default_iceberg_max_rows")]
    pub commit_max_rows: u64,
    /// … or when the batch holds this many bytes: its decoded rows, TOAST fills and per-key
    /// bookkeeping (memory bound; the loop bounds its own share with `state.batch_max_mib`).
    #[serde(default = "default_iceberg_max_bytes")]
    pub commit_max_bytes: u64,
    /// A table without changes still gets a snapshot that only moves its offsets, at most this
    /// often: otherwise a quiet table pins the restart position of every partition at its
    /// last change, and a restart re-reads everything since.
    #[serde(default = "default_idle_commit_interval_ms")]
    pub idle_commit_interval_ms: u64,
    /// Roll Parquet data files at this size.
    #[serde(default = "default_target_file_size")]
    pub target_file_size_bytes: u64,
    /// Extra properties of tables decant creates.
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
    pub table_properties: BTreeMap<String, String>,
    /// Storage properties for an `s3://` warehouse: `s3.endpoint`, `s3.access-key-id`,
    /// `s3.secret-access-key`, `s3.region`, `s3.path-style-access` (`true` for MinIO-style).
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
    pub storage: BTreeMap<String, String>,
}

impl Default for IcebergSinkConfig {
    fn default() -> Self {
        IcebergSinkConfig {
            catalog_uri: default_catalog_uri(),
            catalog_name: default_catalog_name(),
            warehouse: default_warehouse(),
            namespace: default_ns_template(),
            table: default_table_template(),
            pipeline: None,
            commit_interval_ms: default_iceberg_interval_ms(),
            commit_max_rows: default_iceberg_max_rows(),
            commit_max_bytes: default_iceberg_max_bytes(),
            idle_commit_interval_ms: default_idle_commit_interval_ms(),
            target_file_size_bytes: default_target_file_size(),
            table_properties: BTreeMap::new(),
            catalog_properties: BTreeMap::new(),
            storage: BTreeMap::new(),
        }
    }
}

fn default_catalog_uri() -> String {
    "sqlite:decant-lake/catalog.db".into()
}
fn default_idle_commit_interval_ms() -> u64 {
    600_000
}
fn default_catalog_name() -> String {
    "decant".into()
}
fn default_warehouse() -> String {
    "decant-lake/warehouse".into()
}
fn default_ns_template() -> String {
    "{schema}".into()
}
fn default_table_template() -> String {
    "{table}".into()
}
fn default_iceberg_interval_ms() -> u64 {
    10_000
}
fn default_iceberg_max_rows() -> u64 {
    500_000
}
fn default_iceberg_max_bytes() -> u64 {
    64 << 20
}
fn default_target_file_size() -> u64 {
    512 << 20
}

impl IcebergSinkConfig {
    /// Every problem of the section, each as `iceberg.<key>: what is wrong`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let i = self;
        for (path, t) in [
            ("iceberg.namespace", &i.namespace),
            ("iceberg.table", &i.table),
        ] {
            if t.trim().is_empty() {
                out.push(format!("{path}: empty"));
            }
            for var in template_vars(t) {
                if !["prefix", "schema", "table"].contains(&var.as_str()) {
                    out.push(format!(
                        "{path}: unknown variable {{{var}}} (known: {{prefix}}, {{schema}}, {{table}})"
                    ));
                }
            }
        }
        let rest = i.catalog_uri.starts_with("http://") || i.catalog_uri.starts_with("https://");
        if !(rest || i.catalog_uri.starts_with("sqlite:") || i.catalog_uri.starts_with("postgres"))
        {
            out.push(format!(
                "iceberg.catalog_uri: {:?}: expected sqlite:<path> or postgres://… (SQL catalog) or http(s)://… (REST catalog)",
                i.catalog_uri
            ));
        }
        if !rest && !i.catalog_properties.is_empty() {
            out.push(
                "iceberg.catalog_properties: only a REST catalog (catalog_uri = \"http(s)://…\") takes them".into(),
            );
        }
        if rest && i.catalog_uri.trim_end_matches('/').ends_with("/v1") {
            out.push(format!(
                "iceberg.catalog_uri: {:?}: give the base URI without /v1 (decant adds it)",
                i.catalog_uri
            ));
        }
        if i.commit_interval_ms == 0
            || i.commit_max_rows == 0
            || i.commit_max_bytes == 0
            || i.idle_commit_interval_ms == 0
        {
            out.push("iceberg.commit_interval_ms / commit_max_rows / commit_max_bytes / idle_commit_interval_ms: must be positive".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_uris_are_checked() {
        let problems = |uri: &str, props: &[(&str, &str)]| {
            let cfg = IcebergSinkConfig {
                catalog_uri: uri.into(),
                catalog_properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..IcebergSinkConfig::default()
            };
            cfg.problems()
        };
        assert!(problems("sqlite:lake/c.db", &[]).is_empty());
        assert!(problems("https://polaris:8181/api/catalog", &[("credential", "a:b")]).is_empty());
        let p = problems("thrift://hms:9083", &[]);
        assert!(p.iter().any(|x| x.contains("REST catalog")), "{p:?}");
        let p = problems("postgres://db/cat", &[("token", "t")]);
        assert!(
            p.iter()
                .any(|x| x.starts_with("iceberg.catalog_properties")),
            "{p:?}"
        );
        let p = problems("http://lakekeeper:8181/catalog/v1", &[]);
        assert!(p.iter().any(|x| x.contains("without /v1")), "{p:?}");
    }
}
