//! The decoder part of decant's configuration file (TOML, unknown keys rejected).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use decant_decode::{BinaryText, DeclaredTable, DecoderConfig, TombstonePolicy};
use decant_model::TableId;
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub decode: DecodeSection,
}

pub fn load(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
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
