//! Before anything else starts: can these properties reach the cluster and authenticate? A
//! wrong password, an untrusted broker certificate or a rejected token would otherwise only
//! show as librdkafka retrying in the background; here they become one [`Error::Refused`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use crate::config::{KafkaConfig, REDACTED, Role, is_secret_property};
use crate::error::Error;

/// What the check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// Brokers in the cluster metadata.
    pub brokers: usize,
}

/// Remembers the client's errors while the check waits for metadata.
#[derive(Default)]
struct Watch {
    refused: Mutex<Option<String>>,
    last: Mutex<Option<String>>,
}

/// Errors that retrying cannot fix: the cluster answered and said no.
fn is_refusal(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Authentication
            | C::SSL
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            | C::ClusterAuthorizationFailed
    )
}

impl ClientContext for Watch {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _msg: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let refusal = error.rdkafka_error_code().is_some_and(is_refusal);
        let slot = if refusal { &self.refused } else { &self.last };
        if let Ok(mut s) = slot.lock()
            && (s.is_none() || !refusal)
        {
            *s = Some(reason.to_owned());
        }
    }
}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Connects with the consumer's properties (and the producer's, where they differ in
/// security settings) and waits up to `request_timeout_ms` for cluster metadata. Fails at once
/// when the cluster refuses the connection (authentication, TLS, token).
pub fn reach(cfg: &KafkaConfig) -> Result<Reached, Error> {
    let mut roles = vec![Role::Consumer];
    let security = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| {
                ["security.", "sasl.", "ssl.", "https."]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    if security(&cfg.consumer) != security(&cfg.producer) {
        roles.push(Role::Producer);
    }
    let mut reached = Reached { brokers: 0 };
    for role in roles {
        reached = reach_as(cfg, role)?;
    }
    Ok(reached)
}

fn reach_as(cfg: &KafkaConfig, role: Role) -> Result<Reached, Error> {
    let mut c = cfg.for_role(role);
    c.set_log_level(RDKafkaLogLevel::Error);
    let scrub = secrets(&c);
    let clean = |s: String| {
        scrub
            .iter()
            .fold(s, |acc, secret| acc.replace(secret.as_str(), REDACTED))
    };
    let producer: BaseProducer<Watch> = c
        .create_with_context(Watch::default())
        .map_err(|e| Error::kafka("creating a client to check the connection", e))?;
    let timeout = cfg.request_timeout();
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    // The metadata request blocks; librdkafka's errors arrive as events on the main queue,
    // which this thread keeps draining meanwhile (a refusal ends the wait at once).
    std::thread::scope(|scope| {
        let meta = scope.spawn(|| {
            let mut last = None;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < timeout {
                match producer
                    .client()
                    .fetch_metadata(None, Duration::from_millis(1000))
                {
                    Ok(md) if !md.brokers().is_empty() => return Ok(md.brokers().len()),
                    Ok(_) => {}
                    Err(e) => last = Some(e.to_string()),
                }
            }
            Err(last)
        });
        loop {
            producer.poll(Duration::from_millis(100));
            let watch = producer.context();
            if let Some(reason) = watch.refused.lock().ok().and_then(|mut r| r.take()) {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::Refused {
                    role: role.as_str(),
                    reason: clean(reason),
                });
            }
            if meta.is_finished() {
                return match meta.join() {
                    Ok(Ok(brokers)) => Ok(Reached { brokers }),
                    Ok(Err(last_metadata_error)) => {
                        let last = watch
                            .last
                            .lock()
                            .ok()
                            .and_then(|mut l| l.take())
                            .or(last_metadata_error)
                            .unwrap_or_else(|| "no answer".into());
                        Err(Error::Unreachable {
                            role: role.as_str(),
                            bootstrap: cfg.bootstrap_servers.clone(),
                            timeout_ms: cfg.request_timeout_ms,
                            last: clean(last),
                        })
                    }
                    Err(_) => Err(Error::Unreachable {
                        role: role.as_str(),
                        bootstrap: cfg.bootstrap_servers.clone(),
                        timeout_ms: cfg.request_timeout_ms,
                        last: "the metadata request failed".into(),
                    }),
                };
            }
        }
    })
}

fn secrets(c: &ClientConfig) -> Vec<String> {
    c.config_map()
        .into_iter()
        .filter(|(k, v)| is_secret_property(k) && !v.is_empty())
        .map(|(_, v)| v.to_owned())
        .collect()
}
