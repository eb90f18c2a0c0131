//! Turning a Kafka record of one of the logged topics into the row the store keeps: the columns
//! queries filter on, the record's JSON, and what it says about when resources were last active.

use hookline_schemas::event::{HEADER_CLIENT, HEADER_REPLAYED_AT, HEADER_REPLAYED_BY};
use hookline_schemas::{
    AttemptOutcome, AttemptRecord, DeadLetter, DeadPayload, MatchRecord, RejectedRequest,
    SCHEMA_VERSION,
};
use rdkafka::Message;
use rdkafka::message::Headers;
use serde_json::{Value, json};

/// Which topic a row came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `hookline.events`: metadata and the raw value.
    Event,
    /// `hookline.rejected`: an inbound request ingest refused.
    Rejected,
    /// `hookline.matches`: the processor's match result.
    Match,
    /// `hookline.attempts`: one delivery attempt.
    Attempt,
    /// `hookline.dead`: a dead letter.
    Dead,
}

impl RecordKind {
    /// Every kind, in the order their metrics are listed.
    pub const ALL: [Self; 5] = [
        Self::Event,
        Self::Rejected,
        Self::Match,
        Self::Attempt,
        Self::Dead,
    ];

    /// The name in the database and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Rejected => "rejected",
            Self::Match => "match",
            Self::Attempt => "attempt",
            Self::Dead => "dead",
        }
    }
}

/// What a record says about a resource's last activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// An event arrived (source), a trigger fired (trigger), a job was made (destination).
    Triggered,
    /// A delivery succeeded.
    Delivered,
}

impl Activity {
    /// The name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Triggered => "triggered",
            Self::Delivered => "delivered",
        }
    }
}

/// One row of the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The topic it came from.
    pub kind: RecordKind,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its own time in Unix milliseconds (received, refused, matched, finished, dead-lettered).
    pub at_ms: i64,
    /// The source it belongs to, when known.
    pub source_id: Option<String>,
    /// The destination it belongs to, when known.
    pub destination_id: Option<String>,
    /// The trigger it belongs to, when known.
    pub trigger_id: Option<String>,
    /// The event it belongs to, when known.
    pub event_id: Option<String>,
    /// The delivery it belongs to, when known.
    pub delivery_id: Option<String>,
    /// The attempt outcome, dead letter reason, rejection code or match outcome.
    pub outcome: Option<String>,
    /// The record as JSON (for an event: its metadata and client address).
    pub doc: String,
    /// The event's raw value.
    pub payload: Option<Vec<u8>>,
    /// How long an attempt that sent a request took, in milliseconds (for the rollups'
    /// duration histogram; not stored as a column).
    pub duration_ms: Option<f64>,
    /// (`source`/`trigger`/`destination`, id, activity) this record shows.
    pub activity: Vec<(&'static str, String, Activity)>,
}

/// Why a record was not stored.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// The value is not what the topic holds.
    #[error("invalid {kind} record: {source}")]
    Invalid {
        /// The topic's kind.
        kind: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The event has no usable metadata (the processor dead-letters it; so is it shown).
    #[error("event without metadata: {0}")]
    Event(#[from] hookline_processor::event::MetadataError),
    /// Written by a newer Hookline.
    #[error("record of schema version {0}, newer than this process knows")]
    Newer(u32),
    /// A record without a value.
    #[error("record without a value")]
    Empty,
}

/// The row of `message`, read from a topic of `kind`.
pub fn parse<M: Message>(kind: RecordKind, message: &M) -> Result<Row, RowError> {
    let record_ms = message.timestamp().to_millis().unwrap_or_default();
    let mut row = Row {
        kind,
        partition: message.partition(),
        offset: message.offset(),
        at_ms: record_ms,
        source_id: None,
        destination_id: None,
        trigger_id: None,
        event_id: None,
        delivery_id: None,
        outcome: None,
        doc: String::new(),
        payload: None,
        duration_ms: None,
        activity: Vec::new(),
    };
    if kind == RecordKind::Event {
        // The processor's own reading, so an event without an id gets the id it got there.
        let metadata = hookline_processor::event::metadata(message)?;
        let header = |name: &str| {
            message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == name)
                    .and_then(|header| header.value)
                    .map(|value| Value::from(String::from_utf8_lossy(value).into_owned()))
            })
        };
        row.at_ms = millis(&metadata.received_at).unwrap_or(record_ms);
        row.source_id = Some(metadata.source.to_string());
        row.event_id = Some(metadata.event_id.clone());
        row.activity
            .push(("source", metadata.source.to_string(), Activity::Triggered));
        let mut doc = serde_json::to_value(&metadata).unwrap_or_default();
        doc["client"] = header(HEADER_CLIENT).unwrap_or_default();
        doc["replayed_at"] = header(HEADER_REPLAYED_AT).unwrap_or_default();
        doc["replayed_by"] = header(HEADER_REPLAYED_BY).unwrap_or_default();
        row.doc = doc.to_string();
        row.payload = Some(message.payload().unwrap_or_default().to_vec());
        return Ok(row);
    }
    let value = message.payload().ok_or(RowError::Empty)?;
    let invalid = |source| RowError::Invalid {
        kind: kind.as_str(),
        source,
    };
    match kind {
        RecordKind::Event => {}
        RecordKind::Rejected => {
            let rejected: RejectedRequest = serde_json::from_slice(value).map_err(invalid)?;
            newer(rejected.schema_version)?;
            row.at_ms = millis(&rejected.at).unwrap_or(record_ms);
            row.source_id = Some(rejected.source.clone());
            row.outcome = Some(rejected.code.clone());
        }
        RecordKind::Match => {
            let record: MatchRecord = serde_json::from_slice(value).map_err(invalid)?;
            newer(record.schema_version)?;
            row.at_ms = millis(&record.matched_at).unwrap_or(record_ms);
            row.source_id = Some(record.source.to_string());
            row.event_id = Some(record.event_id.clone());
            row.outcome = Some(json_name(&record.outcome));
            for trigger in &record.triggers {
                if !trigger.deliveries.is_empty() {
                    row.activity.push((
                        "trigger",
                        trigger.trigger_id.to_string(),
                        Activity::Triggered,
                    ));
                }
                for delivery in &trigger.deliveries {
                    row.activity.push((
                        "destination",
                        delivery.destination_id.to_string(),
                        Activity::Triggered,
                    ));
                }
            }
        }
        RecordKind::Attempt => {
            let attempt: AttemptRecord = serde_json::from_slice(value).map_err(invalid)?;
            newer(attempt.schema_version)?;
            row.at_ms = millis(&attempt.finished_at).unwrap_or(record_ms);
            row.source_id = attempt.source_id.as_ref().map(ToString::to_string);
            row.destination_id = Some(attempt.destination_id.to_string());
            row.trigger_id = Some(attempt.trigger_id.to_string());
            row.event_id = Some(attempt.event_id.clone());
            row.delivery_id = Some(attempt.delivery_id.clone());
            row.outcome = Some(json_name(&attempt.outcome));
            row.duration_ms = match attempt.outcome {
                // Refused before any request was sent: no duration to count.
                AttemptOutcome::Blocked => None,
                AttemptOutcome::Delivered | AttemptOutcome::Retrying | AttemptOutcome::Dead => {
                    Some(attempt.latency_seconds * 1000.0)
                }
            };
            if attempt.outcome == AttemptOutcome::Delivered {
                for (kind, id) in [
                    ("destination", row.destination_id.clone()),
                    ("trigger", row.trigger_id.clone()),
                    ("source", row.source_id.clone()),
                ] {
                    if let Some(id) = id {
                        row.activity.push((kind, id, Activity::Delivered));
                    }
                }
            }
        }
        RecordKind::Dead => {
            let dead: DeadLetter = serde_json::from_slice(value).map_err(invalid)?;
            newer(dead.schema_version)?;
            row.at_ms = millis(&dead.dead_at).unwrap_or(record_ms);
            row.outcome = Some(dead.reason.as_str().to_owned());
            match &dead.payload {
                DeadPayload::Job { job } => {
                    row.source_id = Some(job.source_id.to_string());
                    row.destination_id = Some(job.destination_id.to_string());
                    row.trigger_id = Some(job.trigger_id.to_string());
                    row.event_id = Some(job.event_id.clone());
                    row.delivery_id = Some(job.delivery_id.clone());
                }
                DeadPayload::Event {
                    metadata: Some(metadata),
                    ..
                } => {
                    row.source_id = Some(metadata.source.to_string());
                    row.event_id = Some(metadata.event_id.clone());
                }
                DeadPayload::Event { metadata: None, .. } | DeadPayload::Raw { .. } => {}
            }
        }
    }
    row.doc = String::from_utf8_lossy(value).into_owned();
    Ok(row)
}

/// Unix milliseconds of an RFC 3339 time.
pub fn millis(text: &str) -> Option<i64> {
    hookline_runtime::time::parse_rfc3339(text)
        .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
}

fn newer(version: u32) -> Result<(), RowError> {
    if version > SCHEMA_VERSION {
        Err(RowError::Newer(version))
    } else {
        Ok(())
    }
}

/// The serialized name of a unit enum variant (`delivered`, `no_trigger`, ...).
fn json_name<T: serde::Serialize>(value: &T) -> String {
    match json!(value) {
        Value::String(name) => name,
        other @ (Value::Null
        | Value::Bool(_)
        | Value::Number(_)
        | Value::Array(_)
        | Value::Object(_)) => other.to_string(),
    }
}
