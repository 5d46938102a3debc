//! The `[kafka]` configuration section: typed settings, the pass-through librdkafka property
//! maps, which of those properties are secrets, and the offline check behind `decant validate`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseProducer;
use serde::Deserialize;

use crate::quiet::Quiet;

/// How to reach the cluster and who this instance is in it. `Debug` prints secret property
/// values as [`REDACTED`].
#[derive(Clone, Deserialize)]
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
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
    pub client: BTreeMap<String, String>,
    /// Extra librdkafka properties for the consumer only.
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the producer only.
    #[serde(default, deserialize_with = "decant_model::properties::deserialize")]
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

    pub(crate) fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    /// The properties of one client role: `client`, then the role's own map (`consumer` or
    /// `producer`; the admin client uses `client` only), then decant's defaults for what is
    /// still unset.
    pub(crate) fn for_role(&self, role: Role) -> ClientConfig {
        let mut c = self.base();
        self.apply_role(&mut c, role);
        c
    }

    /// Applies the role's own map over what is in `c` (decant's tuning defaults, which the user
    /// may override), then decant's defaults for what is still unset.
    pub(crate) fn apply_role(&self, c: &mut ClientConfig, role: Role) {
        for (k, v) in self.role_map(role) {
            c.set(k, v);
        }
        finish(c);
    }

    fn role_map(&self, role: Role) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        match role {
            Role::Consumer => &self.consumer,
            Role::Producer => &self.producer,
            Role::Admin => &EMPTY,
        }
    }

    /// Everything librdkafka can tell about these properties without connecting anywhere:
    /// properties or values this build does not support (`security.protocol=SASL_SSL` without
    /// OpenSSL, `compression.type=zstd` without libzstd, a misspelt name), files named by
    /// `ssl.*.location` and friends that do not exist, and what librdkafka refuses when it
    /// builds a client from them (unreadable keys or certificates, a SASL mechanism this build
    /// has no provider for, OIDC settings that do not fit together). The client is built
    /// without `bootstrap.servers` (and, for OIDC, without starting the token exchange), so
    /// nothing is contacted. Secret values never appear in a problem.
    pub fn check_offline(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        for (section, map) in [
            ("client", &self.client),
            ("consumer", &self.consumer),
            ("producer", &self.producer),
        ] {
            for (k, v) in map {
                let path = format!("kafka.{section}.\"{k}\"");
                if Self::RESERVED.contains(&k.as_str()) {
                    continue; // reported by the caller, with its own message
                }
                let mut one = ClientConfig::new();
                one.set(k, v).set_log_level(RDKafkaLogLevel::Emerg);
                if let Err(e) = one.create_native_config() {
                    out.push(ConfigProblem::Property {
                        path,
                        reason: redacted_reason(&e, k, v),
                    });
                    continue;
                }
                if FILE_PROPERTIES.contains(&k.as_str()) && v != "probe" && !Path::new(v).exists() {
                    out.push(ConfigProblem::MissingFile {
                        path,
                        file: v.clone(),
                    });
                }
            }
        }
        if !out.is_empty() {
            // Building clients would only repeat these.
            return out;
        }
        for role in [Role::Consumer, Role::Producer] {
            let mut c = self.for_role(role);
            c.remove("bootstrap.servers");
            let oidc = c
                .get("sasl.oauthbearer.method")
                .is_some_and(|m| m.eq_ignore_ascii_case("oidc"));
            if oidc {
                // SASL is set up when the client starts and would fetch a token at once; the
                // SSL context and the OIDC settings are still checked without it.
                let plain = match c.get("security.protocol").map(str::to_ascii_lowercase) {
                    Some(p) if p == "sasl_ssl" => Some("ssl"),
                    Some(p) if p == "sasl_plaintext" => Some("plaintext"),
                    _ => None,
                };
                if let Some(p) = plain {
                    c.set("security.protocol", p);
                }
            }
            c.set_log_level(RDKafkaLogLevel::Emerg);
            if let Err(e) = c.create_with_context::<_, BaseProducer<Quiet>>(Quiet) {
                out.push(ConfigProblem::Client {
                    role: role.as_str(),
                    reason: redact_error(&e, &c),
                });
            }
        }
        out.dedup_by(|a, b| a.to_string() == b.to_string());
        out
    }
}

/// A client role: which pass-through map applies on top of `kafka.client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Producer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Consumer => "consumer",
            Role::Producer => "producer",
            Role::Admin => "admin",
        }
    }
}

/// decant's defaults for properties the user left unset. The binary links OpenSSL statically,
/// whose compiled-in certificate directory is not the system's: `probe` makes librdkafka look
/// for the system's CA bundle in the usual places (Debian/Ubuntu, RHEL, Alpine, …), for broker
/// connections and for the OIDC token endpoint alike.
fn finish(c: &mut ClientConfig) {
    let unset = |c: &ClientConfig, keys: &[&str]| keys.iter().all(|k| c.get(k).is_none());
    if unset(c, &["ssl.ca.location", "ssl.ca.pem", "ssl_ca"]) {
        c.set("ssl.ca.location", "probe");
    }
    if unset(c, &["https.ca.location", "https.ca.pem"]) {
        c.set("https.ca.location", "probe");
    }
}

/// Properties whose value names a file that must exist.
const FILE_PROPERTIES: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.crl.location",
    "https.ca.location",
    "sasl.kerberos.keytab",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.jwt.template.file",
];

/// What stands in for a secret value wherever a value would be shown.
pub const REDACTED: &str = "[redacted]";

/// Whether a librdkafka (or Java client) property holds a secret: passwords, client secrets,
/// private keys, JAAS configurations, tokens. Such values are never logged or printed.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // Where a secret is, or how it is fetched, is not itself secret (`…token.endpoint.url`,
    // `ssl.key.location`, `…private.key.file`).
    if [
        ".url",
        ".uri",
        ".location",
        ".file",
        ".method",
        ".type",
        ".ms",
    ]
    .iter()
    .any(|s| k.ends_with(s))
    {
        return false;
    }
    [
        "password",
        "secret",
        "passphrase",
        "jaas",
        "token",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("key.pem")
        || k == "ssl_key"
        || k == "sasl.oauthbearer.config"
}

/// A `[kafka]` problem found without connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// librdkafka refuses the property or its value in this build.
    #[error("{path}: {reason}")]
    Property { path: String, reason: String },
    /// The property names a file that does not exist.
    #[error("{path}: no such file or directory: {file}")]
    MissingFile { path: String, file: String },
    /// librdkafka refuses to build a client from the properties together.
    #[error("kafka (the {role}'s properties): {reason}")]
    Client { role: &'static str, reason: String },
}

/// librdkafka's reason for refusing `key = value`, without the value when it is a secret.
fn redacted_reason(e: &KafkaError, key: &str, value: &str) -> String {
    let reason = match e {
        KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
        other => other.to_string(),
    };
    if is_secret_property(key) && !value.is_empty() {
        reason.replace(value, REDACTED)
    } else {
        reason
    }
}

/// An error's text with every secret value of `c` taken out.
fn redact_error(e: &KafkaError, c: &ClientConfig) -> String {
    let mut text = match e {
        KafkaError::ClientConfig(_, desc, key, _) => format!("{key}: {desc}"),
        KafkaError::ClientCreation(s) => s.clone(),
        other => other.to_string(),
    };
    for (k, v) in c.config_map() {
        if is_secret_property(k) && !v.is_empty() {
            text = text.replace(v, REDACTED);
        }
    }
    text
}

/// `KafkaError::ClientConfig` shows the offending value; a secret one is replaced.
pub(crate) fn redact(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(code, desc, key, value)
            if is_secret_property(&key) && !value.is_empty() =>
        {
            KafkaError::ClientConfig(code, desc.replace(&value, REDACTED), key, REDACTED.into())
        }
        other => other,
    }
}

struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let v = if is_secret_property(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k, v)
            }))
            .finish()
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_id", &self.group_id)
            .field("transactional_id", &self.transactional_id)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("statistics_interval_ms", &self.statistics_interval_ms)
            .field("client", &Redacted(&self.client))
            .field("consumer", &Redacted(&self.consumer))
            .field("producer", &Redacted(&self.producer))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(client: &[(&str, &str)]) -> KafkaConfig {
        let mut k = KafkaConfig::new("127.0.0.1:1", "g");
        for (key, v) in client {
            k.client.insert(key.to_string(), v.to_string());
        }
        k
    }

    #[test]
    fn secret_properties_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_secret_property(k), "{k}");
        }
        for k in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "compression.type",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.oauthbearer.client.id",
        ] {
            assert!(!is_secret_property(k), "{k}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let k = cfg(&[("sasl.username", "alice"), ("sasl.password", "hunter2-pw")]);
        let text = format!("{k:?}");
        assert!(text.contains("alice"), "{text}");
        assert!(!text.contains("hunter2-pw"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
    }

    #[test]
    fn this_build_takes_tls_sasl_oidc_and_every_codec() {
        let k = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw"),
            ("compression.type", "zstd"),
        ]);
        assert_eq!(k.check_offline(), vec![]);
        let mut k = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.client.id", "decant"),
            ("sasl.oauthbearer.client.secret", "s3cr3t-value"),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "https://127.0.0.1:9/token",
            ),
        ]);
        for codec in ["gzip", "snappy", "lz4", "zstd"] {
            k.producer.insert("compression.type".into(), codec.into());
            assert_eq!(k.check_offline(), vec![], "{codec}");
        }
    }

    #[test]
    fn offline_check_names_what_cannot_work() {
        let k = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", "/nonexistent/ca.pem"),
            ("compression.type", "brotli"),
            ("sasl.pasword", "x"),
        ]);
        let problems: Vec<String> = k.check_offline().iter().map(|p| p.to_string()).collect();
        let joined = problems.join("\n");
        for needle in [
            "/nonexistent/ca.pem",
            "compression.type",
            "\"sasl.pasword\"",
        ] {
            assert!(joined.contains(needle), "{needle} not in:\n{joined}");
        }
        // OIDC without its mandatory settings: found by building the client, nothing contacted.
        let k = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.client.secret", "s3cr3t-value"),
        ]);
        let joined: String = k.check_offline().iter().map(|p| p.to_string()).collect();
        assert!(joined.contains("token.endpoint.url"), "{joined}");
        assert!(!joined.contains("s3cr3t-value"), "{joined}");
        // Kerberos is not built in: found when the client is built.
        let k = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "GSSAPI"),
        ]);
        let joined: String = k.check_offline().iter().map(|p| p.to_string()).collect();
        assert!(joined.contains("GSSAPI"), "{joined}");
    }

    #[test]
    fn a_rejected_secret_value_is_not_shown() {
        let e = KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"pw-123\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "pw-123".into(),
        );
        let shown = redact(e).to_string();
        assert!(!shown.contains("pw-123"), "{shown}");
    }
}
