//! What control writes besides resources: delivery jobs (test sends, replayed dead letters) to
//! the deliveries topic, so they take the real dispatcher's path, and stored events back to the
//! events topic, so they take the processor's. Each write is answered once Kafka acknowledged it.

use std::collections::BTreeSet;
use std::time::Duration;

use hookline_runtime::order::{self, OrderKey};
use hookline_runtime::{Error, KafkaSettings};
use hookline_schemas::DeliveryJob;
use hookline_schemas::event::{
    HEADER_CLIENT, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_INBOUND_PREFIX, HEADER_RECEIVED_AT,
    HEADER_REPLAY_SKIP, HEADER_REPLAYED_AT, HEADER_REPLAYED_BY, HEADER_SCHEMA_VERSION,
    HEADER_SOURCE,
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
    /// Writes to the topics of `settings` through control's idempotent `producer`; a write not
    /// acknowledged within `timeout` fails.
    pub fn new(settings: &KafkaSettings, producer: FutureProducer, timeout: Duration) -> Self {
        let topics = settings.topics();
        Self {
            producer,
            deliveries: topics.deliveries(),
            events: topics.events(),
            timeout,
        }
    }

    /// Writes `job` to the deliveries topic, keyed by its destination and its event as the
    /// processor keys the jobs of an event keyed by its id (what it needed in order was
    /// delivered, or it would not be sent again).
    pub async fn job(&self, job: &DeliveryJob) -> Result<(), Error> {
        let payload = serde_json::to_vec(job).unwrap_or_default();
        let key = order::job_key(job.destination_id.as_str(), &job.event_id);
        let record = FutureRecord::to(&self.deliveries)
            .key(key.as_str())
            .payload(payload.as_slice());
        self.send(record, "write a delivery job").await
    }

    /// Writes an event back to the events topic with its original id, source, time and headers,
    /// keyed as ingest keys its source's events (`order`: the source's order key).
    pub async fn event(
        &self,
        event: &StoredEvent,
        order: &OrderKey,
        replay: &Replay<'_>,
    ) -> Result<(), Error> {
        let StoredEvent {
            metadata,
            client,
            payload,
        } = event;
        let headers = event_headers(metadata, client.as_deref(), replay);
        let parsed = order
            .reads_payload()
            .then(|| serde_json::from_slice(payload).ok())
            .flatten();
        let key = order.event_key(
            metadata.source.as_str(),
            &metadata.event_id,
            parsed.as_ref(),
        );
        let record = FutureRecord::to(&self.events)
            .key(key.as_ref())
            .payload(payload.as_slice())
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

/// A stored event, as a replay writes it back.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its metadata.
    pub metadata: EventMetadata,
    /// The address ingest received it from.
    pub client: Option<String>,
    /// Its body.
    pub payload: Vec<u8>,
}

/// Who replays an event, when, and what it must not send again.
#[derive(Debug, Clone)]
pub struct Replay<'a> {
    /// When (RFC 3339).
    pub at: &'a str,
    /// Who ([`crate::tokens::fingerprint`]).
    pub by: &'a str,
    /// Delivery ids that already succeeded (empty when every delivery is asked for).
    pub delivered: &'a BTreeSet<String>,
}

/// The record headers of a replayed event: what ingest wrote, when and by whom it was
/// replayed, and the deliveries not to repeat.
fn event_headers(
    metadata: &EventMetadata,
    client: Option<&str>,
    replay: &Replay<'_>,
) -> OwnedHeaders {
    let version = SCHEMA_VERSION.to_string();
    let delivered = replay
        .delivered
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    let delivered = (!delivered.is_empty()).then_some(delivered.as_str());
    let mut headers = OwnedHeaders::new_with_capacity(9 + metadata.headers.len());
    for (key, value) in [
        (HEADER_EVENT_ID, Some(metadata.event_id.as_str())),
        (HEADER_SOURCE, Some(metadata.source.as_str())),
        (HEADER_RECEIVED_AT, Some(metadata.received_at.as_str())),
        (HEADER_CONTENT_TYPE, Some(metadata.content_type.as_str())),
        (HEADER_SCHEMA_VERSION, Some(version.as_str())),
        (HEADER_CLIENT, client),
        (HEADER_REPLAYED_AT, Some(replay.at)),
        (HEADER_REPLAYED_BY, Some(replay.by)),
        (HEADER_REPLAY_SKIP, delivered),
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
    fn a_replayed_event_keeps_its_id_source_time_and_headers_and_says_who_and_what_not_to_repeat() {
        let metadata = EventMetadata {
            schema_version: SCHEMA_VERSION,
            event_id: "evt-1".into(),
            source: hookline_schemas::ResourceId::parse("app").unwrap(),
            received_at: "2026-01-02T03:04:05Z".into(),
            content_type: "application/json".into(),
            headers: [("x-env".to_owned(), "prod".to_owned())].into(),
        };
        let delivered = BTreeSet::from(["msg_1".to_owned(), "msg_2".to_owned()]);
        let replay = Replay {
            at: "2026-02-03T00:00:00Z",
            by: "token:0123abcd",
            delivered: &delivered,
        };
        let headers = event_headers(&metadata, Some("127.0.0.1"), &replay);
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
            (HEADER_REPLAYED_BY, "token:0123abcd"),
            (HEADER_REPLAY_SKIP, "msg_1,msg_2"),
            ("hookline-h-x-env", "prod"),
        ] {
            assert!(
                pairs.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} missing from {pairs:?}"
            );
        }
    }
}
