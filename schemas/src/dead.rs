//! The dead letter on `hookline.dead`: an event or job that cannot be processed or delivered, with
//! the reason and where it came from, so an operator can fix the cause and replay it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::delivery::DeliveryJob;
use crate::event::EventMetadata;

/// Why something was dead-lettered. Stable names: alerts and dashboards group by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// The event has no usable `hookline-source` header.
    MissingSource,
    /// The event's value is not valid JSON.
    InvalidJson,
    /// A condition or template failed when evaluated against the event.
    RenderFailed,
    /// The receiver answered with a status that is not worth retrying.
    Rejected,
    /// The receiver answered 410 Gone, which also disabled the destination.
    Gone,
    /// Every attempt the retry policy allows failed.
    Exhausted,
    /// The target address is refused by the SSRF guard.
    Blocked,
    /// The job could not be built or sent at all (for example an invalid URL or header).
    InvalidRequest,
    /// The destination was deleted or disabled before the job could be delivered.
    DestinationUnavailable,
    /// The job is larger than a Kafka record may be.
    TooLarge,
}

impl DeadReason {
    /// The stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingSource => "missing_source",
            Self::InvalidJson => "invalid_json",
            Self::RenderFailed => "render_failed",
            Self::Rejected => "rejected",
            Self::Gone => "gone",
            Self::Exhausted => "exhausted",
            Self::Blocked => "blocked",
            Self::InvalidRequest => "invalid_request",
            Self::DestinationUnavailable => "destination_unavailable",
            Self::TooLarge => "too_large",
        }
    }
}

/// Where the dead-lettered record was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePosition {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
}

/// What was dead-lettered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadPayload {
    /// An event the processor could not turn into jobs.
    Event {
        /// Its metadata, as far as it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<EventMetadata>,
        /// The raw value (lossy UTF-8 when it was not text).
        body: String,
    },
    /// A record that could not be read as what its topic holds (for example a job that is not
    /// valid JSON).
    Raw {
        /// The raw value (lossy UTF-8 when it was not text).
        body: String,
    },
    /// A job the dispatcher could not deliver.
    Job {
        /// The job as last attempted.
        job: DeliveryJob,
    },
}

/// A record on `hookline.dead`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Why it is here.
    pub reason: DeadReason,
    /// The error, in words.
    pub error: String,
    /// Where it was read from.
    pub position: SourcePosition,
    /// How many delivery attempts were made (0 for events).
    pub attempts: u32,
    /// When it was dead-lettered (RFC 3339).
    pub dead_at: String,
    /// The event or job itself.
    pub payload: DeadPayload,
}

/// What an operator did with a dead letter. A dead letter without a state record is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadState {
    /// Sent through the pipeline again (its job to the dispatcher, or its event to the
    /// processor). It reads as `delivered` once the replayed delivery succeeds.
    Replayed,
    /// Dropped on purpose: it stays listed, and is not replayed unless forced.
    Discarded,
}

/// A record on `hookline.dead-states`, keyed by the dead letter's id: the topic is compacted, so
/// the newest record per letter is its state, and every control instance reads the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterState {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The dead letter: `<partition>-<offset>` on the dead letter topic.
    pub dead_letter_id: String,
    /// What was done.
    pub state: DeadState,
    /// When (RFC 3339).
    pub at: String,
    /// By which API token: `token:` and the first eight hex digits of its SHA-256.
    pub by: String,
    /// For a replayed job, its delivery id: the replay's attempts carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// For a replayed event, its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}
