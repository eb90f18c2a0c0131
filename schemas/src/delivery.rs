//! The delivery job on `hookline.deliveries` (and on the retry topics): one rendered HTTP request
//! for one (event, trigger, action), keyed by destination id so a destination's jobs keep their
//! order within a partition.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// One rendered request, ready to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryJob {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Deterministic id: a hash of event id, trigger id and action index, so a re-run of the same
    /// event yields the same id. Sent as `webhook-id` so receivers can deduplicate.
    pub delivery_id: String,
    /// The event this job was rendered from.
    pub event_id: String,
    /// The source of that event.
    pub source_id: ResourceId,
    /// The trigger that fired.
    pub trigger_id: ResourceId,
    /// Index of the action within the trigger.
    pub action: u32,
    /// The destination to deliver to; also the record key.
    pub destination_id: ResourceId,
    /// The attempt this job is for, starting at 1.
    pub attempt: u32,
    /// HTTP method, upper case.
    pub method: String,
    /// Target URL.
    pub url: String,
    /// Request headers: the destination's static headers and the rendered header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The rendered body.
    pub body: String,
    /// When the event was received (RFC 3339), for end-to-end latency.
    pub received_at: String,
    /// Earliest time of the next attempt (RFC 3339); absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
}
