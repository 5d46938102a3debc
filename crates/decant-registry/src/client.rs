//! [`RegistryClient`]: the REST calls, with authentication, TLS, timeouts, bounded retries with
//! backoff, failover between URLs, and a schema-by-id cache that never expires (an id's schema
//! never changes).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig, TlsProvider};

use crate::config::{RegistryConfig, Secret};
use crate::error::RegistryError;
use crate::types::{
    Compatibility, CompatibilityResult, Schema, SubjectSchema, SubjectVersion, Version,
};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// What Confluent's own clients accept.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";
/// Error bodies are quoted in errors up to this many characters.
const MAX_QUOTED_BODY: usize = 300;

/// A blocking client of one registry (one or more URLs). Cheap to clone: clones share the
/// connection pool and the schema cache. `Send + Sync`.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    agent: ureq::Agent,
    /// Base URLs without credentials or a trailing slash.
    urls: Vec<String>,
    /// The whole `Authorization` header value.
    authorization: Option<Secret>,
    retry: Retry,
    /// Schemas by id, kept for the life of the client.
    by_id: Mutex<HashMap<u32, Arc<Schema>>>,
    /// A subject's version never changes either (a deleted one is gone, not changed).
    by_version: Mutex<HashMap<(String, i32), Arc<SubjectSchema>>>,
    /// The URL that answered last: the next request starts there.
    current: AtomicUsize,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    max_retries: u32,
    backoff: Duration,
    backoff_max: Duration,
}

impl Retry {
    /// The wait before retry number `n` (0-based): `backoff * 2^n`, capped, plus up to 20 %
    /// jitter; a server's `Retry-After` replaces the exponential part (still capped).
    fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .backoff
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX));
        let base = retry_after.unwrap_or(exp).min(self.backoff_max);
        let jitter = base.mul_f64(0.2 * unit_random());
        (base + jitter).min(self.backoff_max.max(base))
    }
}

/// A number in [0, 1) without a random-number crate: the std hasher's per-process random keys.
fn unit_random() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("urls", &self.inner.urls)
            .field(
                "authorization",
                &self.inner.authorization.as_ref().map(|_| "***"),
            )
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// Confluent's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct IdAnswer {
    id: u32,
}

#[derive(Deserialize)]
struct ConfigAnswer {
    #[serde(alias = "compatibility")]
    #[serde(rename = "compatibilityLevel")]
    level: Compatibility,
}

impl RegistryClient {
    /// Checks the configuration, reads the CA and client-certificate files; no request yet.
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        config.validate()?;
        let mut urls = Vec::new();
        let mut url_auth = None;
        for u in &config.url.0 {
            let (clean, auth) = split_userinfo(u);
            urls.push(clean.trim_end_matches('/').to_owned());
            if auth.is_some() {
                url_auth = auth;
            }
        }
        let authorization = match (&config.basic_auth, &config.bearer_token, url_auth) {
            (Some(b), _, _) => Some(basic(&b.username, b.password.expose())),
            (None, Some(t), _) => Some(Secret::new(format!("Bearer {}", t.expose()))),
            (None, None, Some((user, password))) => Some(basic(&user, &password)),
            (None, None, None) => None,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.request_timeout_ms)))
            .timeout_connect(Some(Duration::from_millis(config.connect_timeout_ms)))
            .user_agent(concat!("decant-registry/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(config)?)
            .build()
            .new_agent();
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                agent,
                urls,
                authorization,
                retry: Retry {
                    max_retries: config.max_retries,
                    backoff: Duration::from_millis(config.retry_backoff_ms),
                    backoff_max: Duration::from_millis(config.retry_backoff_max_ms),
                },
                by_id: Mutex::new(HashMap::new()),
                by_version: Mutex::new(HashMap::new()),
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// The base URLs, without credentials.
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    // ------------------------------------------------------------------ schemas

    /// `GET /schemas/ids/{id}`, answered from the cache after the first success.
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = lock(&self.inner.by_id).get(&id) {
            return Ok(s.clone());
        }
        let schema: Schema = self.json(Method::Get, &format!("/schemas/ids/{id}"), None)?;
        let schema = Arc::new(schema);
        lock(&self.inner.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// `GET /schemas/ids/{id}/versions`: every subject version that uses the schema.
    pub fn subject_versions_of_id(&self, id: u32) -> Result<Vec<SubjectVersion>, RegistryError> {
        self.json(Method::Get, &format!("/schemas/ids/{id}/versions"), None)
    }

    // ------------------------------------------------------------------ subjects

    /// `GET /subjects`.
    pub fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.json(Method::Get, "/subjects", None)
    }

    /// `GET /subjects/{subject}/versions`.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        self.json(
            Method::Get,
            &format!("/subjects/{}/versions", segment(subject)),
            None,
        )
    }

    /// `GET /subjects/{subject}/versions/{version}`; numbered versions are cached.
    pub fn version(
        &self,
        subject: &str,
        version: Version,
    ) -> Result<Arc<SubjectSchema>, RegistryError> {
        let key = match version {
            Version::Number(n) => Some((subject.to_owned(), n)),
            Version::Latest => None,
        };
        if let Some(k) = &key
            && let Some(s) = lock(&self.inner.by_version).get(k)
        {
            return Ok(s.clone());
        }
        let s: SubjectSchema = self.json(
            Method::Get,
            &format!("/subjects/{}/versions/{}", segment(subject), version.path()),
            None,
        )?;
        let s = Arc::new(s);
        lock(&self.inner.by_version).insert((s.subject.clone(), s.version), s.clone());
        Ok(s)
    }

    /// `POST /subjects/{subject}/versions`: registers (or finds) the schema, returns its id.
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let a: IdAnswer = self.json(
            Method::Post,
            &format!("/subjects/{}/versions", segment(subject)),
            Some(to_json(schema)?),
        )?;
        lock(&self.inner.by_id)
            .entry(a.id)
            .or_insert_with(|| Arc::new(schema.clone()));
        Ok(a.id)
    }

    /// `POST /subjects/{subject}`: the version and id under which this exact schema is
    /// registered in the subject (404 when it is not).
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Result<SubjectSchema, RegistryError> {
        self.json(
            Method::Post,
            &format!("/subjects/{}", segment(subject)),
            Some(to_json(schema)?),
        )
    }

    /// `DELETE /subjects/{subject}` (soft delete; `permanent` deletes a soft-deleted subject
    /// for good): the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let q = if permanent { "?permanent=true" } else { "" };
        self.json(
            Method::Delete,
            &format!("/subjects/{}{q}", segment(subject)),
            None,
        )
    }

    // ------------------------------------------------------------------ compatibility

    /// `POST /compatibility/subjects/{subject}/versions/{version}?verbose=true`: whether
    /// `schema` could be registered after that version under the subject's compatibility level.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Version,
        schema: &Schema,
    ) -> Result<CompatibilityResult, RegistryError> {
        self.json(
            Method::Post,
            &format!(
                "/compatibility/subjects/{}/versions/{}?verbose=true",
                segment(subject),
                version.path()
            ),
            Some(to_json(schema)?),
        )
    }

    /// `GET /config` (global) or `GET /config/{subject}`.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility, RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".to_owned(),
        };
        let a: ConfigAnswer = self.json(Method::Get, &path, None)?;
        Ok(a.level)
    }

    /// `PUT /config` or `PUT /config/{subject}`.
    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".to_owned(),
        };
        let body = serde_json::json!({ "compatibility": level }).to_string();
        let _: serde_json::Value = self.json(Method::Put, &path, Some(body))?;
        Ok(())
    }

    // ------------------------------------------------------------------ transport

    fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, RegistryError> {
        let (url, text) = self.call(method, path, body)?;
        serde_json::from_str(&text).map_err(|e| RegistryError::Protocol {
            url,
            message: format!("{e} in {}", quote(&text)),
        })
    }

    /// One logical request: attempts on the URLs in turn until one succeeds, a failure is not
    /// retriable, or `max_retries` retries are spent. Returns the URL that answered and the body.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(String, String), RegistryError> {
        let inner = &self.inner;
        let n = inner.urls.len().max(1);
        let start = inner.current.load(Ordering::Relaxed);
        let mut attempt: u32 = 0;
        loop {
            let which = (start + attempt as usize) % n;
            let url = format!("{}{path}", inner.urls.get(which).map_or("", String::as_str));
            let (err, retry_after) = match self.once(method, &url, body.as_deref()) {
                Ok(text) => {
                    inner.current.store(which, Ordering::Relaxed);
                    return Ok((url, text));
                }
                Err(e) => e,
            };
            if !err.is_retriable() || attempt >= inner.retry.max_retries {
                if attempt > 0 {
                    tracing::warn!(error = %err, attempts = attempt + 1, "schema registry request failed");
                }
                return Err(err);
            }
            let delay = inner.retry.delay(attempt, retry_after);
            tracing::debug!(error = %err, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, "retrying schema registry request");
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn once(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<String, (RegistryError, Option<Duration>)> {
        let agent = &self.inner.agent;
        let auth = self.inner.authorization.as_ref().map(Secret::expose);
        macro_rules! prepare {
            ($rb:expr) => {{
                let rb = $rb.header("Accept", ACCEPT);
                match auth {
                    Some(a) => rb.header("Authorization", a),
                    None => rb,
                }
            }};
        }
        let sent = match method {
            Method::Get => prepare!(agent.get(url)).call(),
            Method::Delete => prepare!(agent.delete(url)).call(),
            Method::Post => prepare!(agent.post(url))
                .header("Content-Type", CONTENT_TYPE)
                .send(body.unwrap_or("")),
            Method::Put => prepare!(agent.put(url))
                .header("Content-Type", CONTENT_TYPE)
                .send(body.unwrap_or("")),
        };
        let mut resp = sent.map_err(|e| (transport(url, e), None))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| (transport(url, e), None))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error_code, b.message.unwrap_or_default()),
            Err(_) => (None, quote(&text)),
        };
        Err((
            RegistryError::Http {
                url: url.to_owned(),
                status,
                code,
                message,
            },
            retry_after,
        ))
    }
}

/// The CA to trust (instead of Mozilla's roots), the client certificate, aws-lc-rs as rustls's
/// crypto provider (what decant-iceberg already builds; no process-wide default is assumed).
fn tls_config(config: &RegistryConfig) -> Result<TlsConfig, RegistryError> {
    let mut tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        );
    if let Some(path) = &config.ca_file {
        let pem = read(path, "ca_file")?;
        let certs = pem_items(&pem, path, "ca_file")?
            .into_iter()
            .filter_map(|i| match i {
                PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect::<Vec<_>>();
        if certs.is_empty() {
            return Err(RegistryError::Config(format!(
                "ca_file {}: no PEM certificate in it",
                path.display()
            )));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let (Some(cert_path), Some(key_path)) = (&config.client_cert_file, &config.client_key_file) {
        let pem = read(cert_path, "client_cert_file")?;
        let chain = pem_items(&pem, cert_path, "client_cert_file")?
            .into_iter()
            .filter_map(|i| match i {
                PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect::<Vec<_>>();
        let pem = read(key_path, "client_key_file")?;
        let key = pem_items(&pem, key_path, "client_key_file")?
            .into_iter()
            .find_map(|i| match i {
                PemItem::PrivateKey(k) => Some(k),
                _ => None,
            });
        let Some(key) = key else {
            return Err(RegistryError::Config(format!(
                "client_key_file {}: no PEM private key in it",
                key_path.display()
            )));
        };
        if chain.is_empty() {
            return Err(RegistryError::Config(format!(
                "client_cert_file {}: no PEM certificate in it",
                cert_path.display()
            )));
        }
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(tls.build())
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path)
        .map_err(|e| RegistryError::Config(format!("{what} {}: {e}", path.display())))
}

fn pem_items(
    pem: &[u8],
    path: &std::path::Path,
    what: &str,
) -> Result<Vec<PemItem<'static>>, RegistryError> {
    ureq::tls::parse_pem(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistryError::Config(format!("{what} {}: {e}", path.display())))
}

fn basic(user: &str, password: &str) -> Secret {
    Secret::new(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

fn to_json(schema: &Schema) -> Result<String, RegistryError> {
    serde_json::to_string(schema).map_err(|e| RegistryError::Config(format!("schema: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // a panic elsewhere cannot leave these maps half-updated: take them as they are
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sorts a ureq failure: connection-level trouble is retriable; TLS (certificates, handshake)
/// and malformed requests are not.
fn transport(url: &str, e: ureq::Error) -> RegistryError {
    let tls_io = |io: &std::io::Error| {
        io.get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    };
    let retriable = match &e {
        ureq::Error::Io(io) => !tls_io(io),
        ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => true,
        _ => false,
    };
    RegistryError::Transport {
        url: url.to_owned(),
        message: e.to_string(),
        retriable,
    }
}

/// A body quoted in an error: one line, at most [`MAX_QUOTED_BODY`] characters.
fn quote(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED_BODY)
        .collect();
    if text.chars().count() > MAX_QUOTED_BODY {
        format!("{one_line:?}…")
    } else {
        format!("{one_line:?}")
    }
}

/// A subject as one URL path segment (subjects may hold `/`, `:`, spaces …).
fn segment(s: &str) -> String {
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `scheme://user:password@host/…` → (`scheme://host/…`, Some((user, password))).
fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (
                format!("{scheme}://{host}{tail}"),
                Some((percent_decode(user), percent_decode(password))),
            )
        }
        None => (url.to_owned(), None),
    }
}

/// A URL fit for messages: without credentials.
pub(crate) fn redact_url(url: &str) -> String {
    split_userinfo(url).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_off_and_decoded() {
        let (u, auth) = split_userinfo("https://KEY:s%40cret@sr.example:443/base");
        assert_eq!(u, "https://sr.example:443/base");
        assert_eq!(auth, Some(("KEY".to_owned(), "s@cret".to_owned())));
        assert_eq!(split_userinfo("http://h:1/p@x").0, "http://h:1/p@x");
        assert_eq!(redact_url("http://a:b@h"), "http://h");
    }

    #[test]
    fn subjects_are_one_segment() {
        assert_eq!(segment("a.b-c_d~"), "a.b-c_d~");
        assert_eq!(segment(":.ctx:t/x y"), "%3A.ctx%3At%2Fx%20y");
    }

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let r = Retry {
            max_retries: 5,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d0 = r.delay(0, None);
            assert!(
                d0 >= Duration::from_millis(100) && d0 <= Duration::from_millis(120),
                "{d0:?}"
            );
            let d2 = r.delay(2, None);
            assert!(
                d2 >= Duration::from_millis(400) && d2 <= Duration::from_millis(480),
                "{d2:?}"
            );
            assert!(r.delay(10, None) <= Duration::from_millis(1000));
            assert!(r.delay(40, None) <= Duration::from_millis(1000));
            let ra = r.delay(0, Some(Duration::from_secs(60)));
            assert_eq!(ra, Duration::from_millis(1000));
        }
    }

    #[test]
    fn quotes_are_short_single_lines() {
        let q = quote(&"x\n".repeat(400));
        assert!(!q.contains('\n'));
        assert!(q.chars().count() < MAX_QUOTED_BODY + 10);
    }
}
