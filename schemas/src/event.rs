//! The event on `hookline.events`.
//!
//! The record value is the producer's raw JSON bytes, untouched. Metadata travels in Kafka record
//! headers, so a producer writing straight to Kafka needs no envelope: it sets at least
//! [`HEADER_SOURCE`], and the processor derives what is missing.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// `hookline-event-id`: the event's id, a UUIDv7 when ingest assigns it.
pub const HEADER_EVENT_ID: &str = "hookline-event-id";
/// `hookline-source`: the id of the source the event belongs to. Required.
pub const HEADER_SOURCE: &str = "hookline-source";
/// `hookline-received-at`: when the event was received, RFC 3339 in UTC.
pub const HEADER_RECEIVED_AT: &str = "hookline-received-at";
/// `content-type`: the media type of the value, `application/json` by default.
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// `hookline-schema-version`: the version of this header contract.
pub const HEADER_SCHEMA_VERSION: &str = "hookline-schema-version";
/// `hookline-client`: the address ingest received the event from, for the operator's timeline.
/// Absent on events written straight to Kafka.
pub const HEADER_CLIENT: &str = "hookline-client";
/// `hookline-replayed-at`: when the control API wrote this event back to the topic (RFC 3339);
/// absent on the original. The processor ignores it; the event keeps its id.
pub const HEADER_REPLAYED_AT: &str = "hookline-replayed-at";
/// `hookline-replayed-by`: who replayed this event (the control API's token, by the first eight
/// hex digits of its SHA-256); absent on the original.
pub const HEADER_REPLAYED_BY: &str = "hookline-replayed-by";
/// `hookline-replay-skip`: on a replayed event, the delivery ids (comma-separated) that were
/// already delivered: the processor does not produce them again, so a replay never repeats a
/// success. Absent when the replay asked for every delivery.
pub const HEADER_REPLAY_SKIP: &str = "hookline-replay-skip";
/// Prefix of the inbound HTTP headers a source keeps: `hookline-h-<lower-case name>`.
pub const HEADER_INBOUND_PREFIX: &str = "hookline-h-";

/// The metadata of one event, as carried in its record headers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The event id (`hookline-event-id`). Derived from topic, partition and offset when a direct
    /// producer leaves it out, so every event has a stable id.
    pub event_id: String,
    /// The source id (`hookline-source`).
    pub source: ResourceId,
    /// When ingest received the event (`hookline-received-at`), RFC 3339.
    pub received_at: String,
    /// The media type of the value (`content-type`).
    pub content_type: String,
    /// Inbound HTTP headers the source keeps, by lower-case name (`hookline-h-<name>`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
