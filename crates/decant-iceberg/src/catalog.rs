//! The catalog-specific step of every metadata change decant makes: publishing updates on top
//! of the metadata they were built on, and failing (not rebasing) when the table moved meanwhile.
//!
//! - [`SqlCommit`]: decant applies the updates and writes the next metadata file itself, then
//!   swaps the pointer with the conditional `UPDATE` the SQL catalog itself issues, against the
//!   location this writer built on (the catalog's own `update_table` would reload and re-apply,
//!   silently rebasing over another writer's commit).
//! - [`RestCommit`]: the REST catalog's commit endpoint with requirements; the server applies the
//!   updates and writes the metadata. iceberg 0.10.1's `RestCatalog::update_table` takes only a
//!   `TableCommit`, which cannot be built outside the crate, so the request is sent here with
//!   the REST client's own request and response types and the same authentication settings.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use iceberg::spec::{MAIN_BRANCH, TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableIdent, TableRequirement, TableUpdate};
use iceberg_catalog_rest::{CommitTableRequest, CommitTableResponse};
use sqlx::AnyPool;

use crate::error::IcebergError;

/// A published change: the table's new metadata location and metadata.
pub type Published = (String, TableMetadata);

/// Publishes `updates` on top of `base`. `Ok(None)` when the table is no longer what `base` was
/// built on (another writer committed): reload and rebuild.
pub trait CatalogCommit: Send + Sync {
    fn commit<'a>(
        &'a self,
        base: &'a Table,
        updates: Vec<TableUpdate>,
    ) -> BoxFuture<'a, Result<Option<Published>, IcebergError>>;

    /// Whether a commit built on `base` also fails after another writer changed only a table
    /// property. The SQL swap compares whole metadata files, so it does; the REST protocol has
    /// no requirement on properties, so there a writer's claim must move the main branch for
    /// older writers' commits to fail.
    fn sees_property_changes(&self) -> bool;
}

pub(crate) fn metadata_location(base: &Table, label: &str) -> Result<String, IcebergError> {
    base.metadata_location()
        .map(str::to_owned)
        .ok_or_else(|| IcebergError::Inconsistent {
            table: label.to_owned(),
            why: "the loaded table has no metadata location".into(),
        })
}

/// The SQL catalog (SQLite or PostgreSQL).
pub struct SqlCommit {
    pool: AnyPool,
    catalog: String,
    dollar_params: bool,
}

impl SqlCommit {
    pub fn new(pool: AnyPool, catalog: String, dollar_params: bool) -> Self {
        SqlCommit {
            pool,
            catalog,
            dollar_params,
        }
    }

    async fn swap(
        &self,
        ident: &TableIdent,
        expected: &str,
        next: &str,
    ) -> Result<bool, IcebergError> {
        let sql = if self.dollar_params {
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 \
             AND metadata_location = $6"
        } else {
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND metadata_location = ?"
        };
        let done = sqlx::query(sql)
            .bind(next)
            .bind(expected)
            .bind(self.catalog.as_str())
            .bind(ident.namespace().join("."))
            .bind(ident.name())
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(IcebergError::sql(format!(
                "swapping the metadata pointer of {ident}"
            )))?;
        Ok(done.rows_affected() == 1)
    }
}

impl CatalogCommit for SqlCommit {
    fn commit<'a>(
        &'a self,
        base: &'a Table,
        updates: Vec<TableUpdate>,
    ) -> BoxFuture<'a, Result<Option<Published>, IcebergError>> {
        Box::pin(async move {
            let ident = base.identifier();
            let current = metadata_location(base, &ident.to_string())?;
            let what = format!("table {ident}: building the next metadata");
            let mut builder: TableMetadataBuilder =
                base.metadata().clone().into_builder(Some(current.clone()));
            for u in updates {
                builder = u
                    .apply(builder)
                    .map_err(IcebergError::iceberg(what.clone()))?;
            }
            let metadata = builder
                .build()
                .map_err(IcebergError::iceberg(what.clone()))?
                .metadata;
            let next = MetadataLocation::from_str(&current)
                .map_err(IcebergError::iceberg(what))?
                .with_next_version()
                .with_new_metadata(&metadata);
            let next_str = next.to_string();
            metadata
                .write_to(base.file_io(), &next)
                .await
                .map_err(IcebergError::iceberg(format!(
                    "table {ident}: writing {next_str}"
                )))?;
            // Not swapped: the written file is an orphan nobody references.
            Ok(self
                .swap(ident, &current, &next_str)
                .await?
                .then_some((next_str, metadata)))
        })
    }

    fn sees_property_changes(&self) -> bool {
        true
    }
}

/// Settings of a REST catalog connection, as `iceberg-catalog-rest` names them.
#[derive(Debug, Clone)]
pub struct RestSettings {
    /// Base URI without `/v1`.
    pub uri: String,
    pub warehouse: Option<String>,
    /// `token`, `credential` (`client_id:secret`), `oauth2-server-uri`, `scope`, `audience`,
    /// `resource`, `prefix`, `header.<name>`.
    pub props: HashMap<String, String>,
}

impl RestSettings {
    fn token_endpoint(&self) -> String {
        self.props
            .get("oauth2-server-uri")
            .cloned()
            .unwrap_or_else(|| format!("{}/v1/oauth/tokens", self.uri))
    }
}

/// The REST catalog's commit endpoint.
pub struct RestCommit {
    http: reqwest::Client,
    settings: RestSettings,
    /// `/v1/{prefix}` as the server's `/v1/config` settles it.
    base: String,
    /// The bearer token (static, or fetched with the client credentials and refreshed on 401).
    token: Mutex<Option<String>>,
    /// The fetched token's lifetime (`expires_in`), when the server says.
    token_lifetime: Mutex<Option<Duration>>,
}

#[derive(serde::Deserialize, Default)]
struct ConfigResponse {
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    overrides: HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(serde::Deserialize)]
struct ErrorResponse {
    error: ErrorModel,
}

#[derive(serde::Deserialize)]
struct ErrorModel {
    message: String,
    #[serde(default)]
    r#type: String,
}

impl RestCommit {
    /// Connects: fetches a token if client credentials are configured, then the server's
    /// configuration. Returns the settings merged with the server's defaults and overrides (what
    /// the REST catalog client must be given too).
    pub async fn connect(
        settings: RestSettings,
    ) -> Result<(RestCommit, RestSettings), IcebergError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            // A redirected POST would arrive as a GET of the table, whose 200 reads like a
            // successful commit; and a redirect elsewhere would carry the client secret along.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IcebergError::rest("building the HTTP client", None, e.to_string()))?;
        let mut commit = RestCommit {
            http,
            base: String::new(),
            token: Mutex::new(settings.props.get("token").cloned()),
            token_lifetime: Mutex::new(None),
            settings,
        };
        if commit.current_token().is_none() && commit.settings.props.contains_key("credential") {
            commit.refresh_token().await?;
        }
        let mut url = format!("{}/v1/config", commit.settings.uri);
        if let Some(w) = &commit.settings.warehouse {
            url = format!("{url}?warehouse={}", encode(w));
        }
        let resp = commit
            .send(|http| http.get(&url), "reading the catalog configuration")
            .await?;
        let config: ConfigResponse = read_json(resp, "reading the catalog configuration").await?;
        let mut overrides = config.overrides;
        // Only the server's overrides may move the URI (as iceberg's REST client does).
        if let Some(uri) = overrides.remove("uri") {
            commit.settings.uri = uri.trim_end_matches('/').to_owned();
        }
        let mut props = config.defaults;
        props.remove("uri");
        props.extend(commit.settings.props.clone());
        props.extend(overrides);
        commit.settings.props = props;
        commit.base = match commit.settings.props.get("prefix") {
            Some(p) if !p.is_empty() => format!("{}/v1/{p}", commit.settings.uri),
            _ => format!("{}/v1", commit.settings.uri),
        };
        let merged = commit.settings.clone();
        Ok((commit, merged))
    }

    fn current_token(&self) -> Option<String> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    async fn refresh_token(&self) -> Result<(), IcebergError> {
        let Some(credential) = self.settings.props.get("credential") else {
            return Ok(());
        };
        let (id, secret) = credential
            .split_once(':')
            .map_or((None, credential.as_str()), |(i, s)| (Some(i), s));
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
        ];
        if let Some(id) = id {
            form.push(("client_id", id));
        }
        let scope = self.settings.props.get("scope").map_or("catalog", |s| s);
        form.push(("scope", scope));
        for extra in ["audience", "resource"] {
            if let Some(v) = self.settings.props.get(extra) {
                form.push((extra, v));
            }
        }
        let endpoint = self.settings.token_endpoint();
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = self
            .http
            .post(&endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| IcebergError::rest("fetching an OAuth2 token", None, e.to_string()))?;
        let token: TokenResponse = read_json(resp, "fetching an OAuth2 token").await?;
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.access_token);
        }
        if let Ok(mut l) = self.token_lifetime.lock() {
            *l = token.expires_in.map(Duration::from_secs);
        }
        Ok(())
    }

    /// How often a client holding a token fetched with the client credentials should get a new
    /// one: half its lifetime, at most every 15 minutes. `None` without client credentials.
    pub fn token_refresh_interval(&self) -> Option<Duration> {
        if !self.settings.props.contains_key("credential") {
            return None;
        }
        let lifetime = self.token_lifetime.lock().ok().and_then(|l| *l);
        let cap = Duration::from_secs(15 * 60);
        Some(lifetime.map_or(cap, |l| (l / 2).clamp(Duration::from_secs(5), cap)))
    }

    /// Sends a request with the catalog's headers and token; on 401 with client credentials,
    /// fetches a new token once and resends.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, IcebergError> {
        for attempt in 0..2 {
            let mut req = build(&self.http)
                .header("User-Agent", concat!("decant/", env!("CARGO_PKG_VERSION")));
            for (k, v) in &self.settings.props {
                if let Some(name) = k.strip_prefix("header.") {
                    req = req.header(name, v);
                }
            }
            if let Some(token) = self.current_token() {
                req = req.bearer_auth(token);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| IcebergError::rest(what, None, e.to_string()))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED
                && attempt == 0
                && self.settings.props.contains_key("credential")
            {
                self.refresh_token().await?;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn table_url(&self, ident: &TableIdent) -> String {
        format!(
            "{}/namespaces/{}/tables/{}",
            self.base,
            encode(&ident.namespace().to_url_string()),
            encode(ident.name())
        )
    }
}

/// TLS for every HTTP client in the process (this one and the REST catalog client's own):
/// rustls needs a process-wide crypto provider, and the build links only aws-lc-rs. A provider
/// installed earlier (by the embedding process) is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// What a decant commit requires of the table: the same table, with the main branch, schema
/// and column ids it was built on. Any other writer's data commit, claim or schema change
/// moves one of those.
fn requirements(base: &TableMetadata) -> Vec<TableRequirement> {
    vec![
        TableRequirement::UuidMatch { uuid: base.uuid() },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_owned(),
            snapshot_id: base.current_snapshot_id(),
        },
        TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: base.current_schema_id(),
        },
        TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id: base.last_column_id(),
        },
    ]
}

impl CatalogCommit for RestCommit {
    fn commit<'a>(
        &'a self,
        base: &'a Table,
        updates: Vec<TableUpdate>,
    ) -> BoxFuture<'a, Result<Option<Published>, IcebergError>> {
        Box::pin(async move {
            let ident = base.identifier();
            let what = format!("committing to {ident}");
            let request = CommitTableRequest {
                identifier: Some(ident.clone()),
                requirements: requirements(base.metadata()),
                updates,
            };
            let url = self.table_url(ident);
            let resp = self
                .send(|http| http.post(&url).json(&request), &what)
                .await?;
            if resp.status() == reqwest::StatusCode::CONFLICT {
                return Ok(None);
            }
            let done: CommitTableResponse = read_json(resp, &what).await?;
            Ok(Some((done.metadata_location, done.metadata)))
        })
    }

    fn sees_property_changes(&self) -> bool {
        false
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T, IcebergError> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| IcebergError::rest(what, Some(status.as_u16()), e.to_string()))?;
    if !status.is_success() {
        let message = match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) if e.error.r#type.is_empty() => e.error.message,
            Ok(e) => format!("{}: {}", e.error.r#type, e.error.message),
            Err(_) => String::from_utf8_lossy(&body).chars().take(500).collect(),
        };
        return Err(IcebergError::rest(what, Some(status.as_u16()), message));
    }
    serde_json::from_slice(&body).map_err(|e| {
        IcebergError::rest(
            what,
            Some(status.as_u16()),
            format!("unreadable response: {e}"),
        )
    })
}

/// Percent-encodes all but RFC 3986's unreserved characters: one path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_names_are_encoded_as_one_path_segment() {
        assert_eq!(encode("a\u{1f}b"), "a%1Fb");
        assert_eq!(encode("my table/1"), "my%20table%2F1");
        assert_eq!(encode("s3://b/w h"), "s3%3A%2F%2Fb%2Fw%20h");
    }

    #[tokio::test]
    async fn the_https_client_builds_with_the_process_crypto_provider() {
        // rustls picks its provider from crate features at run time; a wrong feature set
        // only shows here, not at compile time.
        let err = RestCommit::connect(RestSettings {
            uri: "https://127.0.0.1:9".into(),
            warehouse: None,
            props: HashMap::new(),
        })
        .await
        .err()
        .expect("nothing listens on port 9");
        assert!(
            matches!(err, IcebergError::Rest { status: None, .. }),
            "{err}"
        );
    }
}
