//! Writes resources to the compacted resources topic.

use std::time::Duration;

use hookline_schemas::{Resource, ResourceKey};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Error, KafkaSettings, kafka};

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts and deletes resources; each call returns once the broker acknowledged the write.
pub struct ResourceWriter {
    producer: FutureProducer,
    topic: String,
}

impl ResourceWriter {
    /// A writer for the resources topic of `settings`.
    pub fn new(settings: &KafkaSettings, role: &str) -> Result<Self, Error> {
        let mut config = kafka::producer_config(settings, role);
        config.set("linger.ms", "0");
        Ok(Self {
            producer: kafka::create_producer(&config)?,
            topic: settings.topics().resources(),
        })
    }

    /// Writes `resource` under its key.
    pub async fn put(&self, resource: &Resource) -> Result<(), Error> {
        let key = resource.key().to_string();
        // Serializing plain data structs cannot fail.
        let value = serde_json::to_vec(resource).unwrap_or_default();
        self.send(
            FutureRecord::to(&self.topic)
                .key(key.as_str())
                .payload(value.as_slice()),
            &key,
        )
        .await
    }

    /// Writes a tombstone for `key`, so compaction forgets the resource.
    pub async fn delete(&self, key: &ResourceKey) -> Result<(), Error> {
        let key = key.to_string();
        self.send(FutureRecord::to(&self.topic).key(key.as_str()), &key)
            .await
    }

    async fn send(&self, record: FutureRecord<'_, str, [u8]>, key: &str) -> Result<(), Error> {
        self.producer
            .send(record, SEND_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(source, _)| Error::Kafka {
                context: format!("write resource {key}"),
                source,
            })
    }
}
