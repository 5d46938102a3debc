//! [`RegistryError`]: what went wrong talking to the registry, and whether trying again can help.

use decant_model::RetryClass;

/// Confluent's error codes for "not found" (`error_code` in the JSON error body).
pub const SUBJECT_NOT_FOUND: i64 = 40401;
pub const VERSION_NOT_FOUND: i64 = 40402;
pub const SCHEMA_NOT_FOUND: i64 = 40403;

/// URLs in these errors never carry credentials (they are stripped when the client is built);
/// no variant holds a header or a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The configuration cannot work (bad URL, unreadable CA or key file, exclusive options).
    #[error("schema registry configuration: {0}")]
    Config(String),
    /// No HTTP answer: connection refused or reset, DNS, timeout. `retriable` is false for TLS
    /// failures (an unknown CA, a rejected client certificate), which retrying cannot fix.
    #[error("schema registry {url}: {message}")]
    Transport {
        url: String,
        message: String,
        retriable: bool,
    },
    /// The registry answered with an error status. `code` is Confluent's `error_code`
    /// (40401 subject, 40402 version, 40403 schema not found, 409 incompatible, 42201 invalid
    /// schema …) when the body carried one.
    #[error("schema registry {url}: HTTP {status}{}: {message}", code.map(|c| format!(" (error code {c})")).unwrap_or_default())]
    Http {
        url: String,
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// A 2xx answer that is not what the API promises (not JSON, fields missing).
    #[error("schema registry {url}: unexpected response: {message}")]
    Protocol { url: String, message: String },
}

impl RegistryError {
    /// Whether the same request may succeed later: connection failures and timeouts, HTTP 5xx,
    /// 408 and 429.
    pub fn is_retriable(&self) -> bool {
        match self {
            RegistryError::Transport { retriable, .. } => *retriable,
            RegistryError::Http { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            RegistryError::Config(_) | RegistryError::Protocol { .. } => false,
        }
    }

    /// The registry does not know the subject, version or schema id asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Http { status: 404, .. })
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How the pipeline treats this error: retriable ones are retried (the registry is down or
    /// overloaded); a 404 is a bad record (its schema id is unknown to the registry: other
    /// records may be fine); everything else (authentication, TLS, configuration, a registry
    /// that does not speak the API) stops processing.
    pub fn retry_class(&self) -> RetryClass {
        if self.is_retriable() {
            RetryClass::Retriable
        } else if self.is_not_found() {
            RetryClass::BadRecord
        } else {
            RetryClass::Fatal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: Option<i64>) -> RegistryError {
        RegistryError::Http {
            url: "http://r/schemas/ids/1".into(),
            status,
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn classes() {
        assert_eq!(http(503, None).retry_class(), RetryClass::Retriable);
        assert_eq!(http(500, Some(50001)).retry_class(), RetryClass::Retriable);
        assert_eq!(http(429, None).retry_class(), RetryClass::Retriable);
        assert_eq!(http(408, None).retry_class(), RetryClass::Retriable);
        assert_eq!(
            http(404, Some(SCHEMA_NOT_FOUND)).retry_class(),
            RetryClass::BadRecord
        );
        assert_eq!(http(401, None).retry_class(), RetryClass::Fatal);
        assert_eq!(http(409, Some(409)).retry_class(), RetryClass::Fatal);
        let refused = RegistryError::Transport {
            url: "u".into(),
            message: "connection refused".into(),
            retriable: true,
        };
        assert_eq!(refused.retry_class(), RetryClass::Retriable);
        let tls = RegistryError::Transport {
            url: "u".into(),
            message: "unknown CA".into(),
            retriable: false,
        };
        assert_eq!(tls.retry_class(), RetryClass::Fatal);
        assert_eq!(
            RegistryError::Config("x".into()).retry_class(),
            RetryClass::Fatal
        );
    }

    #[test]
    fn display() {
        assert_eq!(
            http(404, Some(40403)).to_string(),
            "schema registry http://r/schemas/ids/1: HTTP 404 (error code 40403): m"
        );
        assert_eq!(
            http(503, None).to_string(),
            "schema registry http://r/schemas/ids/1: HTTP 503: m"
        );
    }
}
