//! The variables templates and conditions see: `payload` (the event's JSON), `event` (`id`,
//! `source`, `received_at`, `headers`), `trigger` (`id`, `name`) and `now` (RFC 3339).

use std::collections::BTreeMap;

use hookline_schemas::{EventMetadata, Trigger};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;

/// The `event` variable.
#[derive(Serialize)]
struct EventVariable<'a> {
    id: &'a str,
    source: &'a str,
    received_at: &'a str,
    headers: &'a BTreeMap<String, String>,
}

/// Parses an event's value into the `payload` variable.
pub fn payload(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The `event` variable of an event, built once and shared by its triggers.
pub fn event(metadata: &EventMetadata) -> Value {
    Value::from(Serde(EventVariable {
        id: &metadata.event_id,
        source: metadata.source.as_str(),
        received_at: &metadata.received_at,
        headers: &metadata.headers,
    }))
}

/// Everything one trigger sees for one event.
pub fn for_trigger(payload: &Value, event: &Value, trigger: &Trigger, now: &str) -> Value {
    context! {
        payload => payload.clone(),
        event => event.clone(),
        trigger => context! { id => trigger.id.as_str(), name => trigger.name.as_str() },
        now => now,
    }
}
