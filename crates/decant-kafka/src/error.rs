//! Kafka errors and the one place that decides what each of them means for the pipeline.

use decant_model::RetryClass;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use decant_model::Disposition;

/// Sorts every rdkafka error into retriable / abort-and-rewind / fatal. Transaction errors carry
/// librdkafka's own verdict (`is_fatal`, `txn_requires_abort`, `is_retriable`), which wins;
/// everything else is judged by its error code.
pub fn classify(err: &KafkaError) -> Disposition {
    match err {
        KafkaError::Transaction(e) => {
            if e.is_fatal() {
                Disposition::Fatal
            } else if e.txn_requires_abort() {
                Disposition::AbortAndRewind
            } else if e.is_retriable() {
                Disposition::Retriable
            } else {
                classify_code(e.code())
            }
        }
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_)
        | KafkaError::Nul(_)
        | KafkaError::Canceled
        | KafkaError::MessageConsumptionFatal(_) => Disposition::Fatal,
        KafkaError::NoMessageReceived | KafkaError::PartitionEOF(_) => Disposition::Retriable,
        KafkaError::AdminOpCreation(_) => Disposition::Fatal,
        KafkaError::Seek(_) | KafkaError::PauseResume(_) => Disposition::AbortAndRewind,
        other => match other.rdkafka_error_code() {
            Some(code) => classify_code(code),
            None => Disposition::Fatal,
        },
    }
}

fn classify_code(code: RDKafkaErrorCode) -> Disposition {
    use RDKafkaErrorCode as C;
    match code {
        // Transient: the same call can succeed later.
        C::QueueFull
        | C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::RequestTimedOut
        | C::NetworkException
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ConcurrentTransactions
        | C::Retry
        | C::InProgress
        | C::PreviousInProgress
        | C::ThrottlingQuotaExceeded
        | C::KafkaStorageError
        | C::FetchSessionIdNotFound
        | C::InvalidFetchSessionEpoch
        | C::UnknownLeaderEpoch
        | C::FencedLeaderEpoch
        | C::OffsetNotAvailable
        | C::UnstableOffsetCommit
        | C::Resolve
        | C::Interrupted => Disposition::Retriable,
        // This incarnation lost its identity (another instance took the transactional id or the
        // group moved on) or the configuration/permissions are wrong: stop.
        C::Fatal
        | C::Fenced
        | C::ProducerFenced
        | C::TransactionCoordinatorFenced
        | C::InvalidProducerEpoch
        | C::FencedInstanceId
        | C::InvalidTransactionTimeout
        | C::TransactionalIdAuthorizationFailed
        | C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::Authentication
        | C::SaslAuthenticationFailed
        | C::UnsupportedSASLMechanism
        | C::IllegalSASLState
        | C::SSL
        | C::UnsupportedVersion
        | C::UnsupportedFeature
        | C::NotImplemented
        | C::InvalidConfig
        | C::InvalidArgument
        | C::NotConfigured
        | C::InvalidGroupId
        | C::InvalidTopic
        | C::InvalidReplicationFactor
        | C::InvalidPartitions
        | C::PolicyViolation
        | C::MessageSizeTooLarge
        | C::InvalidRequiredAcks
        | C::UnknownTopic
        | C::UnknownTopicOrPartition
        | C::UnknownPartition
        | C::CriticalSystemResource
        | C::FileSystem => Disposition::Fatal,
        // Delivery failed, the group generation moved, the producer state went bad: whatever
        // the open transaction holds cannot commit; replay it.
        _ => Disposition::AbortAndRewind,
    }
}

/// Errors of decant's Kafka edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A librdkafka call failed.
    #[error("kafka: {op}")]
    Kafka {
        op: &'static str,
        #[source]
        source: KafkaError,
    },
    /// An existing output topic is not compacted: upsert records would be deleted by retention.
    #[error(
        "output topic {topic} exists with cleanup.policy={policy}; upsert output needs cleanup.policy=compact (alter the topic or route the table to another one)"
    )]
    NotCompacted { topic: String, policy: String },
    /// An output topic is missing and creating topics is turned off, or creating it failed.
    #[error("topic {topic}: {message}")]
    Topic { topic: String, message: String },
    /// The cluster refused the connection: authentication (SASL, token) or TLS failed.
    #[error("the Kafka cluster refused the {role}'s connection: {reason}")]
    Refused { role: &'static str, reason: String },
    /// No broker answered in time (wrong address, firewall, or a listener of another protocol).
    #[error(
        "no Kafka broker of {bootstrap} answered the {role} within {timeout_ms} ms (last error: {last})"
    )]
    Unreachable {
        role: &'static str,
        bootstrap: String,
        timeout_ms: u64,
        last: String,
    },
}

impl Error {
    /// Wraps a librdkafka error; a rejected secret property value is replaced by
    /// [`crate::config::REDACTED`] (rdkafka's message would show it).
    pub fn kafka(op: &'static str, source: KafkaError) -> Self {
        Error::Kafka {
            op,
            source: crate::config::redact(source),
        }
    }

    /// What the caller should do; see [`classify`].
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Kafka { source, .. } => classify(source),
            Error::NotCompacted { .. }
            | Error::Topic { .. }
            | Error::Refused { .. }
            | Error::Unreachable { .. } => Disposition::Fatal,
        }
    }

    pub fn retry_class(&self) -> RetryClass {
        match self.disposition() {
            Disposition::Retriable | Disposition::AbortAndRewind => RetryClass::Retriable,
            Disposition::Fatal => RetryClass::Fatal,
        }
    }
}

impl From<Error> for decant_model::SinkError {
    fn from(e: Error) -> Self {
        let disposition = e.disposition();
        decant_model::SinkError::new("kafka", disposition, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_the_three_classes() {
        assert_eq!(
            classify(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)),
            Disposition::Retriable
        );
        assert_eq!(
            classify(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            Disposition::AbortAndRewind
        );
        assert_eq!(
            classify(&KafkaError::Global(RDKafkaErrorCode::ProducerFenced)),
            Disposition::Fatal
        );
        assert_eq!(
            classify(&KafkaError::ConsumerCommit(
                RDKafkaErrorCode::IllegalGeneration
            )),
            Disposition::AbortAndRewind
        );
        assert_eq!(
            classify(&KafkaError::ClientCreation("bad".into())),
            Disposition::Fatal
        );
    }

    #[test]
    fn errors_map_to_retry_classes() {
        let e = Error::NotCompacted {
            topic: "t".into(),
            policy: "delete".into(),
        };
        assert_eq!(e.retry_class(), RetryClass::Fatal);
        assert!(e.to_string().contains("cleanup.policy=compact"));
        let e = Error::kafka(
            "commit",
            KafkaError::Flush(RDKafkaErrorCode::RequestTimedOut),
        );
        assert_eq!(e.retry_class(), RetryClass::Retriable);
    }
}
