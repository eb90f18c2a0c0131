//! The runtime's errors. Each variant says what failed; none is retried here: a stage that gets
//! one stops, and its supervisor (or the operator) restarts it, which loses nothing because offsets
//! are stored only after work is acknowledged.

use rdkafka::error::KafkaError;

/// Something the shared runtime could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client could not be created from the settings (a bad `--kafka-option`, say).
    #[error("invalid Kafka client settings")]
    ClientConfig(#[source] KafkaError),
    /// The cluster did not answer a metadata or admin request.
    #[error("Kafka did not answer: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("could not create topic {topic}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// A topic the stage needs does not exist and topic creation is off.
    #[error("topic {0} does not exist (start with --create-topics, or create it)")]
    MissingTopic(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A listener could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A server stopped with an I/O error.
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    /// Shutdown was asked for while the stage waited for Kafka to answer at start.
    #[error("stopped while waiting for Kafka to answer")]
    Interrupted,
}
