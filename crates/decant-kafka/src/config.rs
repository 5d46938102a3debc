//! The `[kafka]` configuration section.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How to reach the cluster and who this instance is in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// librdkafka `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Consumer group id. Committed source offsets live under this group.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Transactional id of this instance (exactly-once mode). Must be stable across restarts of
    /// the same instance (it fences a previous incarnation) and unique among running instances.
    /// Default: `decant-<group_id>`.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Timeout of admin, metadata, offset and transaction-control requests, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// librdkafka `statistics.interval.ms`: how often consumer lag is refreshed; 0 turns the
    /// lag metric off.
    #[serde(default = "default_statistics_interval_ms")]
    pub statistics_interval_ms: u64,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`, `sasl.*`,
    /// `ssl.*`). Applied before the per-client maps below.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// Extra librdkafka properties for the consumer only.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the producer only.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

fn default_group() -> String {
    "decant".into()
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

fn default_statistics_interval_ms() -> u64 {
    5_000
}

impl KafkaConfig {
    /// A configuration with defaults, for tests and tools.
    pub fn new(bootstrap_servers: impl Into<String>, group_id: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            group_id: group_id.into(),
            transactional_id: None,
            request_timeout_ms: default_request_timeout_ms(),
            statistics_interval_ms: default_statistics_interval_ms(),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }

    pub fn transactional_id(&self) -> String {
        self.transactional_id
            .clone()
            .unwrap_or_else(|| format!("decant-{}", self.group_id))
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }

    /// Properties decant owns for correctness; users may not override them through the maps.
    pub const RESERVED: &'static [&'static str] = &[
        "enable.auto.commit",
        "enable.auto.offset.store",
        "isolation.level",
        "transactional.id",
        "enable.idempotence",
        "partitioner",
        "group.id",
        "bootstrap.servers",
    ];

    /// Every reserved property set in a pass-through map, as `section.key`.
    pub fn reserved_overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (section, map) in [
            ("client", &self.client),
            ("consumer", &self.consumer),
            ("producer", &self.producer),
        ] {
            for k in map.keys() {
                if Self::RESERVED.contains(&k.as_str()) {
                    out.push(format!("kafka.{section}.\"{k}\""));
                }
            }
        }
        out
    }

    pub(crate) fn base(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }
}
