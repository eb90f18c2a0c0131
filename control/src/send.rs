//! What control writes besides resources: delivery jobs (test sends, replayed dead letters) to
//! the deliveries topic, so they take the real dispatcher's path, and stored events back to the
//! events topic, so they take the processor's. Each write is answered once Kafka acknowledged it.

use std::time::Duration;

use hookline_runtime::{Error, KafkaSettings, kafka};
use hookline_schemas::DeliveryJob;
use hookline_schemas::event::{
    HEADER_CLIENT, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_INBOUND_PREFIX, HEADER_RECEIVED_AT,
    HEADER_REPLAYED_AT, HEADER_SCHEMA_VERSION, HEADER_SOURCE,
};
use hookline_schemas::{EventMetadata, SCHEMA_VERSION};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// The producer and where it writes.
pub struct Sender {
    producer: FutureProducer,
    deliveries: String,
    events: String,
    timeout: Duration,
}

impl Sender {
    /// An idempotent producer for the topics of `settings`; a write not acknowledged within
    /// `timeout` fails.
    pub fn new(settings: &KafkaSettings, timeout: Duration) -> Result<Self, Error> {
        let producer = kafka::create_producer(&kafka::producer_config(settings, "control"))?;
        let topics = settings.topics();
        Ok(Self {
            producer,
            deliveries: topics.deliveries(),
            events: topics.events(),
            timeout,
        })
    }

    /// Writes `job` to the deliveries topic, keyed by its destination like the processor's jobs.
    pub async fn job(&self, job: &DeliveryJob) -> Result<(), Error> {
        let payload = serde_json::to_vec(job).unwrap_or_default();
        let record = FutureRecord::to(&self.deliveries)
            .key(job.destination_id.as_str())
            .payload(payload.as_slice());
        self.send(record, "write a delivery job").await
    }

    /// Writes an event back to the events topic with its original id, source, time and headers,
    /// keyed by its source like ingest's events.
    pub async fn event(
        &self,
        metadata: &EventMetadata,
        client: Option<&str>,
        payload: &[u8],
    ) -> Result<(), Error> {
        let headers = event_headers(metadata, client, &hookline_runtime::time::now_rfc3339());
        let record = FutureRecord::to(&self.events)
            .key(metadata.source.as_str())
            .payload(payload)
            .headers(headers);
        self.send(record, "write an event").await
    }

    async fn send(&self, record: FutureRecord<'_, str, [u8]>, what: &str) -> Result<(), Error> {
        self.producer
            .send(record, Timeout::After(self.timeout))
            .await
            .map(drop)
            .map_err(|(source, _)| Error::Kafka {
                context: what.to_owned(),
                source,
            })
    }
}

/// The record headers of a replayed event: what ingest wrote, and when it was replayed.
fn event_headers(metadata: &EventMetadata, client: Option<&str>, now: &str) -> OwnedHeaders {
    let version = SCHEMA_VERSION.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(7 + metadata.headers.len());
    for (key, value) in [
        (HEADER_EVENT_ID, Some(metadata.event_id.as_str())),
        (HEADER_SOURCE, Some(metadata.source.as_str())),
        (HEADER_RECEIVED_AT, Some(metadata.received_at.as_str())),
        (HEADER_CONTENT_TYPE, Some(metadata.content_type.as_str())),
        (HEADER_SCHEMA_VERSION, Some(version.as_str())),
        (HEADER_CLIENT, client),
        (HEADER_REPLAYED_AT, Some(now)),
    ] {
        if let Some(value) = value {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    for (name, value) in &metadata.headers {
        let key = format!("{HEADER_INBOUND_PREFIX}{name}");
        headers = headers.insert(Header {
            key: &key,
            value: Some(value.as_str()),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn a_replayed_event_keeps_its_id_source_time_and_headers() {
        let metadata = EventMetadata {
            schema_version: SCHEMA_VERSION,
            event_id: "evt-1".into(),
            source: hookline_schemas::ResourceId::parse("app").unwrap(),
            received_at: "2026-01-02T03:04:05Z".into(),
            content_type: "application/json".into(),
            headers: [("x-env".to_owned(), "prod".to_owned())].into(),
        };
        let headers = event_headers(&metadata, Some("127.0.0.1"), "2026-02-03T00:00:00Z");
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        for expected in [
            (HEADER_EVENT_ID, "evt-1"),
            (HEADER_SOURCE, "app"),
            (HEADER_RECEIVED_AT, "2026-01-02T03:04:05Z"),
            (HEADER_CLIENT, "127.0.0.1"),
            (HEADER_REPLAYED_AT, "2026-02-03T00:00:00Z"),
            ("hookline-h-x-env", "prod"),
        ] {
            assert!(
                pairs.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} missing from {pairs:?}"
            );
        }
    }
}
