//! Reading an event from its Kafka record: metadata from the headers, deriving what a direct
//! producer left out, so every event has an id and a receive time.

use std::collections::{BTreeMap, BTreeSet};

use hookline_schemas::event::{
    HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_INBOUND_PREFIX, HEADER_RECEIVED_AT,
    HEADER_REPLAY_SKIP, HEADER_SOURCE,
};
use hookline_schemas::{EventMetadata, ResourceId, SCHEMA_VERSION};
use rdkafka::Message;
use rdkafka::message::Headers;
use time::OffsetDateTime;

/// Namespace of event ids derived from a record's position.
const DERIVED_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b1f_3c52_8a0e_4f8e_9d0a_61c2_e7a4_5b10);

/// Why an event's metadata cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// No `hookline-source` header.
    #[error("the record has no hookline-source header")]
    MissingSource,
    /// The `hookline-source` header is not a valid id.
    #[error("the hookline-source header is not a valid source id: {0}")]
    InvalidSource(String),
}

/// Reads the metadata of the event in `message` (borrowed from a consumer, or owned in tests).
pub fn metadata<M: Message>(message: &M) -> Result<EventMetadata, MetadataError> {
    let mut event_id = None;
    let mut source = None;
    let mut received_at = None;
    let mut content_type = None;
    let mut headers = BTreeMap::new();
    if let Some(record_headers) = message.headers() {
        for header in record_headers.iter() {
            let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else {
                continue;
            };
            match header.key {
                HEADER_EVENT_ID => event_id = Some(value.to_owned()),
                HEADER_SOURCE => source = Some(value),
                HEADER_RECEIVED_AT => received_at = Some(value.to_owned()),
                HEADER_CONTENT_TYPE => content_type = Some(value.to_owned()),
                key => {
                    if let Some(name) = key.strip_prefix(HEADER_INBOUND_PREFIX) {
                        headers.insert(name.to_ascii_lowercase(), value.to_owned());
                    }
                }
            }
        }
    }
    let source = source.ok_or(MetadataError::MissingSource)?;
    let source = ResourceId::parse(source)
        .map_err(|error| MetadataError::InvalidSource(error.to_string()))?;
    Ok(EventMetadata {
        schema_version: SCHEMA_VERSION,
        event_id: event_id.unwrap_or_else(|| derived_id(message)),
        source,
        received_at: received_at.unwrap_or_else(|| record_time(message)),
        content_type: content_type.unwrap_or_else(|| "application/json".to_owned()),
        headers,
    })
}

/// The delivery ids a replay of the event must not send again (`hookline-replay-skip`): those
/// that had already succeeded. Empty for an original event, or a replay of every delivery.
pub fn replay_skip<M: Message>(message: &M) -> BTreeSet<String> {
    message
        .headers()
        .into_iter()
        .flat_map(|headers| headers.iter())
        .filter(|header| header.key == HEADER_REPLAY_SKIP)
        .filter_map(|header| header.value.and_then(|v| std::str::from_utf8(v).ok()))
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stable id for an event that came without one: the same record always gets the same id.
fn derived_id<M: Message>(message: &M) -> String {
    let name = format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    uuid::Uuid::new_v5(&DERIVED_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// The record's timestamp, or now when it has none.
fn record_time<M: Message>(message: &M) -> String {
    let at = message
        .timestamp()
        .to_millis()
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    hookline_runtime::time::rfc3339(at)
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    use super::*;

    fn message(headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "hookline.events".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        )
    }

    #[test]
    fn a_replay_names_the_deliveries_not_to_repeat() {
        let replay = message(&[
            (HEADER_SOURCE, "app"),
            (HEADER_REPLAY_SKIP, "msg_a, msg_b,,msg_c"),
        ]);
        assert_eq!(
            replay_skip(&replay),
            BTreeSet::from(["msg_a".into(), "msg_b".into(), "msg_c".into()])
        );
        assert!(replay_skip(&message(&[(HEADER_SOURCE, "app")])).is_empty());
        let metadata = metadata(&replay).unwrap();
        assert_eq!(metadata.source.as_str(), "app");
        assert!(metadata.headers.is_empty(), "not an inbound header");
    }
}
