//! Writes resources to the compacted resources topic.

use std::time::Duration;

use hookline_schemas::{Resource, ResourceKey};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use time::OffsetDateTime;

use crate::{Error, KafkaSettings, kafka};

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The record header holding when a resource was first written (RFC 3339). It travels with
/// every later version of the resource, so it survives compaction of the older records.
pub const CREATED_AT_HEADER: &str = "hookline-created-at";

/// Where the broker stored a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// Puts and deletes resources; each call returns once the broker acknowledged the write.
pub struct ResourceWriter {
    producer: FutureProducer,
    topic: String,
}

impl ResourceWriter {
    /// A writer for the resources topic of `settings`, with its own producer (for a one-off
    /// command).
    pub fn new(settings: &KafkaSettings, role: &str) -> Result<Self, Error> {
        let mut config = kafka::producer_config(settings, role);
        config.set("linger.ms", "0");
        Ok(Self::with_producer(
            settings,
            kafka::create_producer(&config)?,
        ))
    }

    /// A writer for the resources topic of `settings` through a stage's `producer`: every
    /// producer has a thread that wakes up ten times a second, so a stage shares one.
    pub fn with_producer(settings: &KafkaSettings, producer: FutureProducer) -> Self {
        Self {
            producer,
            topic: settings.topics().resources(),
        }
    }

    /// Writes `resource` under its key.
    pub async fn put(&self, resource: &Resource) -> Result<(), Error> {
        self.put_created(resource, None).await.map(drop)
    }

    /// Writes `resource` under its key, recording when it was first written (`created_at`, see
    /// [`CREATED_AT_HEADER`]) if known, and returns where the record was stored.
    pub async fn put_created(
        &self,
        resource: &Resource,
        created_at: Option<OffsetDateTime>,
    ) -> Result<Written, Error> {
        let key = resource.key().to_string();
        // Serializing plain data structs cannot fail.
        let value = serde_json::to_vec(resource).unwrap_or_default();
        let mut record = FutureRecord::to(&self.topic)
            .key(key.as_str())
            .payload(value.as_slice());
        let created_at = created_at.map(crate::time::rfc3339);
        if let Some(created_at) = &created_at {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: CREATED_AT_HEADER,
                value: Some(created_at.as_str()),
            }));
        }
        self.send(record, &key).await
    }

    /// Writes a tombstone for `key`, so compaction forgets the resource.
    pub async fn delete(&self, key: &ResourceKey) -> Result<(), Error> {
        self.delete_at(key).await.map(drop)
    }

    /// Writes a tombstone for `key` and returns where it was stored.
    pub async fn delete_at(&self, key: &ResourceKey) -> Result<Written, Error> {
        let key = key.to_string();
        self.send(FutureRecord::to(&self.topic).key(key.as_str()), &key)
            .await
    }

    async fn send(&self, record: FutureRecord<'_, str, [u8]>, key: &str) -> Result<Written, Error> {
        self.producer
            .send(record, SEND_TIMEOUT)
            .await
            .map(|delivery| Written {
                partition: delivery.partition,
                offset: delivery.offset,
            })
            .map_err(|(source, _)| Error::Kafka {
                context: format!("write resource {key}"),
                source,
            })
    }
}
