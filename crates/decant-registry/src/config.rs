//! [`RegistryConfig`]: where the registry is and how to reach it, as a serde (TOML) section.
//!
//! ```toml
//! [schema_registry]
//! url = "https://psrc-xxxxx.us-east-2.aws.confluent.cloud"   # or a list: tried in order
//! basic_auth = { username = "SR_API_KEY", password = "SR_API_SECRET" }   # Confluent Cloud
//! # bearer_token = "eyJ…"                 # instead of basic_auth
//! # ca_file = "/etc/decant/registry-ca.pem"                        # trust only this CA (PEM)
//! # client_cert_file = "/etc/decant/client.pem"                    # mTLS (PEM chain)
//! # client_key_file = "/etc/decant/client.key"                     # mTLS (PEM key)
//! connect_timeout_ms = 10000
//! request_timeout_ms = 30000
//! max_retries = 5
//! retry_backoff_ms = 100
//! retry_backoff_max_ms = 5000
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::RegistryError;

/// A credential: never printed by `Debug` or `Display` (they show `***`), not serialisable.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// HTTP basic authentication: Confluent Cloud's API key and secret, or a registry's user.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// One or more base URLs of the same registry (a string, a comma-separated string, or a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls(pub Vec<String>);

impl<'de> Deserialize<'de> for Urls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let list = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => s.split(',').map(|u| u.trim().to_owned()).collect(),
            OneOrMany::Many(v) => v,
        };
        Ok(Urls(list.into_iter().filter(|u| !u.is_empty()).collect()))
    }
}

/// How to reach a Confluent-compatible Schema Registry. Every field but `url` has a default.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL(s), e.g. `http://127.0.0.1:8081` or Apicurio's `…/apis/ccompat/v7`. Several URLs
    /// name replicas of one registry: a request that fails retriably moves on to the next. A
    /// `user:password@` in a URL is taken as basic authentication (and removed from the URL).
    pub url: Urls,
    /// HTTP basic authentication (Confluent Cloud: API key as username, secret as password).
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer <token>` (an OAuth access token obtained elsewhere).
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// PEM file of the CA certificate(s) to trust instead of the built-in public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the registry (mutual TLS); needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Time to establish a connection (TCP and TLS), per attempt.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time for one whole request (connect, send, receive), per attempt.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Further attempts after a retriable failure (connection error, timeout, HTTP 5xx, 408,
    /// 429); 0 = try once.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Wait before the first retry; doubled per retry up to `retry_backoff_max_ms` (a
    /// `Retry-After` header is honoured up to that cap), with up to 20 % random jitter added.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_max_retries() -> u32 {
    5
}
fn default_retry_backoff_ms() -> u64 {
    100
}
fn default_retry_backoff_max_ms() -> u64 {
    5_000
}

impl RegistryConfig {
    /// A configuration for one URL with every default (no authentication, public CA roots).
    pub fn new(url: impl Into<String>) -> Self {
        RegistryConfig {
            url: Urls(vec![url.into()]),
            basic_auth: None,
            bearer_token: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_retries: default_max_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
            retry_backoff_max_ms: default_retry_backoff_max_ms(),
        }
    }

    /// Every problem of this configuration at once (empty when it is usable). Files are not
    /// read here: [`crate::RegistryClient::new`] reports unreadable ones.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.url.0.is_empty() {
            out.push("schema_registry.url: no URL".to_owned());
        }
        for u in &self.url.0 {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                out.push(format!(
                    "schema_registry.url: {:?} is not an http:// or https:// URL",
                    crate::client::redact_url(u)
                ));
            }
        }
        if self.basic_auth.is_some() && self.bearer_token.is_some() {
            out.push(
                "schema_registry: basic_auth and bearer_token are exclusive; set one".to_owned(),
            );
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            out.push(
                "schema_registry: client_cert_file and client_key_file go together (mutual TLS)"
                    .to_owned(),
            );
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            out.push("schema_registry: timeouts must be > 0 ms".to_owned());
        }
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            out.push("schema_registry: retry_backoff_max_ms < retry_backoff_ms".to_owned());
        }
        out
    }

    pub(crate) fn validate(&self) -> Result<(), RegistryError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Config(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        schema_registry: RegistryConfig,
    }

    #[test]
    fn toml_section_with_defaults() {
        let f: File = toml::from_str(
            r#"[schema_registry]
               url = "https://a.example:8081, https://b.example:8081"
               basic_auth = { username = "KEY", password = "s3cret" }
               ca_file = "/etc/ca.pem"
            "#,
        )
        .expect("parses");
        let c = f.schema_registry;
        assert_eq!(
            c.url.0,
            vec!["https://a.example:8081", "https://b.example:8081"]
        );
        assert_eq!(
            c.basic_auth.as_ref().map(|b| b.username.as_str()),
            Some("KEY")
        );
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.request_timeout_ms, 30_000);
        assert!(c.problems().is_empty());
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("Secret(***)"), "{debug}");
    }

    #[test]
    fn url_list_and_unknown_keys() {
        let f: File = toml::from_str(
            "[schema_registry]\nurl = [\"http://127.0.0.1:1\"]\nbearer_token = \"tok\"\n",
        )
        .expect("parses");
        assert_eq!(f.schema_registry.url.0, vec!["http://127.0.0.1:1"]);
        assert_eq!(
            f.schema_registry.bearer_token.as_ref().map(Secret::expose),
            Some("tok")
        );
        let bad = toml::from_str::<File>("[schema_registry]\nurl = \"http://x\"\nuser = \"a\"\n");
        assert!(bad.is_err());
    }

    #[test]
    fn every_problem_at_once() {
        let mut c = RegistryConfig::new("ftp://x");
        c.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: Secret::new("p"),
        });
        c.bearer_token = Some(Secret::new("t"));
        c.client_cert_file = Some("c.pem".into());
        c.retry_backoff_max_ms = 1;
        let p = c.problems();
        assert_eq!(p.len(), 4, "{p:?}");
    }
}
