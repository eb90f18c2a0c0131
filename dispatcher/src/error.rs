//! The dispatcher's errors. Each stops the stage with the job unfinished, so its offset is not
//! committed and it is delivered after a restart. A failed delivery is not an error here: it is
//! recorded, retried or dead-lettered.

use rdkafka::error::KafkaError;

/// Why the dispatcher stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kafka clients could not be set up.
    #[error(transparent)]
    Runtime(#[from] hookline_runtime::Error),
    /// The resources could not be loaded, so there is nothing to work with.
    #[error(transparent)]
    Resources(#[from] hookline_runtime::resources::StoreStopped),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client")]
    HttpClient(#[source] rustls::Error),
    /// The consumer could not subscribe.
    #[error("could not subscribe to {topic}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// An attempt record or dead letter was not acknowledged.
    #[error("a record for {topic} was not acknowledged")]
    Produce {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A line's delivery task panicked or was aborted.
    #[error("the delivery of an ordered destination's job failed: {0}")]
    Task(String),
}
