//! The processor's errors. Every one stops the stage: the record being processed stays
//! uncommitted and is read again after a restart, so nothing acknowledged is lost. Problems with
//! one event or one rule are not errors here: they go to the dead letter topic.

use rdkafka::error::KafkaError;

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kafka clients could not be set up.
    #[error(transparent)]
    Runtime(#[from] hookline_runtime::Error),
    /// The resources could not be loaded, so there is nothing to work with.
    #[error(transparent)]
    Resources(#[from] hookline_runtime::resources::StoreStopped),
    /// The consumer could not subscribe.
    #[error("could not subscribe to {topic}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A transaction could not be started, committed or aborted (exactly-once mode), or the
    /// producer was fenced by a newer instance with the same `transactional.id`.
    #[error("Kafka transaction failed")]
    Transaction(#[source] KafkaError),
    /// Exactly-once mode was asked for on the embedded broker, which cannot do it.
    #[error(
        "exactly-once mode needs a real Kafka cluster: the embedded broker keeps no offsets \
         committed in transactions and does not hide aborted records"
    )]
    ExactlyOnceUnsupported,
    /// The consumer has no group metadata to commit offsets in a transaction with.
    #[error("the consumer is not in a consumer group")]
    NotInGroup,
    /// A job or dead letter was not acknowledged by the broker.
    #[error("a record for {topic} was not acknowledged")]
    Produce {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
}
