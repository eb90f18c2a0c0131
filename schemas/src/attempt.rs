//! The attempt record on `hookline.attempts`: one per delivery attempt, the raw material of delivery
//! logs. Never carries secrets: signing headers are not recorded.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// What became of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The attempt failed and another one is scheduled.
    Retrying,
    /// The attempt failed and the job went to the dead letter topic.
    Dead,
    /// The target was refused by the SSRF guard; never retried.
    Blocked,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptRecord {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The delivery this attempt belongs to.
    pub delivery_id: String,
    /// The event the delivery was rendered from.
    pub event_id: String,
    /// The source of that event (absent in records of older dispatchers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<ResourceId>,
    /// The trigger that produced the delivery.
    pub trigger_id: ResourceId,
    /// The destination attempted.
    pub destination_id: ResourceId,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// When the request started (RFC 3339).
    pub started_at: String,
    /// When the answer (or the error) arrived (RFC 3339).
    pub finished_at: String,
    /// What became of it.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when the receiver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time from sending the request to the end of the answer, in seconds.
    pub latency_seconds: f64,
    /// The start of the receiver's answer, truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Why the attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
