//! Output topics: created compacted when missing; an existing one must be compacted.

use std::time::Duration;

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::{KafkaConfig, Role};
use crate::error::Error;

/// A topic decant writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// Partition count when the topic is created.
    pub partitions: i32,
    /// Replication factor when created; -1 lets the broker decide.
    pub replication_factor: i32,
    /// Upsert output (true): `cleanup.policy=compact`, required of an existing topic too.
    /// Dead-letter output (false): created with the broker's default policy.
    pub compacted: bool,
}

/// What [`Admin::ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicCheck {
    Created,
    /// Existed, and its policy is right (or not checked, for non-compacted specs).
    Existing,
    /// Existed, but the broker would not describe its configuration; the policy is unverified.
    Unverified(String),
}

/// Routes the admin client's librdkafka logs and errors into decant's log.
pub struct AdminContext;

impl ClientContext for AdminContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::consumer::log_librdkafka("admin", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::consumer::log_client_error("admin", &error, reason);
    }
}

/// Admin client for output topics.
pub struct Admin {
    client: AdminClient<AdminContext>,
    timeout: Duration,
}

impl Admin {
    pub fn create(cfg: &KafkaConfig) -> Result<Self, Error> {
        // A metadata request for one topic would otherwise ask the broker to auto-create it
        // (with the broker's default policy, not compact).
        let client = cfg
            .for_role(Role::Admin)
            .set("allow.auto.create.topics", "false")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(AdminContext)
            .map_err(|e| Error::kafka("creating the admin client", e))?;
        Ok(Admin {
            client,
            timeout: cfg.request_timeout(),
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().request_timeout(Some(self.timeout))
    }

    /// Whether `topic` exists, from the cluster-wide metadata (a request naming the topic
    /// could auto-create it on brokers that allow that).
    pub fn exists(&self, topic: &str) -> Result<bool, Error> {
        let md = self
            .client
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| Error::kafka("fetching topic metadata", e))?;
        Ok(md
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    }

    /// The topic's `cleanup.policy`, or why it could not be read.
    pub fn cleanup_policy(&self, topic: &str) -> Result<Option<String>, String> {
        let res = block_on(
            self.client
                .describe_configs([&ResourceSpecifier::Topic(topic)], &self.options()),
        )
        .map_err(|e| e.to_string())?;
        let resource = res
            .into_iter()
            .next()
            .ok_or_else(|| "empty DescribeConfigs response".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(resource
            .get("cleanup.policy")
            .and_then(|entry| entry.value.clone()))
    }

    /// Makes sure `spec.name` exists with the right policy; creates it if `create` allows.
    pub fn ensure(&self, spec: &TopicSpec, create: bool) -> Result<TopicCheck, Error> {
        if !self.exists(&spec.name)? {
            if !create {
                return Err(Error::Topic {
                    topic: spec.name.clone(),
                    message: "does not exist and output.create_topics is false".into(),
                });
            }
            match self.create_topic(spec) {
                Ok(()) => {
                    self.wait_visible(&spec.name)?;
                    return Ok(TopicCheck::Created);
                }
                // Another instance created it first: check it like an existing one.
                Err(Error::Kafka { .. }) if self.exists(&spec.name)? => {}
                Err(e) => return Err(e),
            }
        }
        if !spec.compacted {
            return Ok(TopicCheck::Existing);
        }
        match self.cleanup_policy(&spec.name) {
            Ok(Some(policy)) if policy.split(',').any(|p| p.trim() == "compact") => {
                Ok(TopicCheck::Existing)
            }
            Ok(Some(policy)) => Err(Error::NotCompacted {
                topic: spec.name.clone(),
                policy,
            }),
            Ok(None) => Err(Error::NotCompacted {
                topic: spec.name.clone(),
                policy: "<unset: broker default>".into(),
            }),
            Err(why) => Ok(TopicCheck::Unverified(why)),
        }
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), Error> {
        let mut topic = NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor),
        );
        if spec.compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let res = block_on(self.client.create_topics([&topic], &self.options()))
            .map_err(|e| Error::kafka("creating a topic", e))?;
        for r in res {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::Topic {
                        topic: name,
                        message: format!("create failed: {code}"),
                    });
                }
            }
        }
        Ok(())
    }

    fn wait_visible(&self, topic: &str) -> Result<(), Error> {
        let start = std::time::Instant::now();
        while start.elapsed() < self.timeout {
            if self.exists(topic)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Topic {
            topic: topic.into(),
            message: "created but not visible in metadata".into(),
        })
    }
}
