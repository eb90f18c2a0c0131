//! An event's journey out of its stored records: the event and its payload, when it was replayed,
//! its match record, its deliveries with every attempt, and its dead letters.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dead_letter::dead_letter;
use crate::store::query::Stored;

/// The journey of event `id` out of its stored records.
pub fn journey(id: &str, records: &[Stored]) -> Value {
    let mut event = json!({ "event_id": id });
    let mut replays = Vec::new();
    let mut matched = Value::Null;
    let mut deliveries: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut dead_letters = Vec::new();
    for record in records {
        match record.kind.as_str() {
            "event" => {
                let doc = record.json();
                if !doc["replayed_at"].is_null() {
                    // A replay repeats the original; the journey shows the original, and when it
                    // was replayed. (Its match record and attempts are among the others.)
                    replays.push(json!({"at": doc["replayed_at"], "by": doc["replayed_by"]}));
                    if event.get("source").is_some() {
                        continue;
                    }
                }
                event = doc;
                let payload = record.payload.as_deref().unwrap_or_default();
                event["size_bytes"] = payload.len().into();
                event["payload"] = serde_json::from_slice(payload)
                    .unwrap_or_else(|_| json!({ "not_json": String::from_utf8_lossy(payload) }));
            }
            "match" => {
                // The newest: after a replay, what the triggers make of the event now.
                matched = record.json();
                for trigger in matched["triggers"].as_array().into_iter().flatten() {
                    for produced in trigger["deliveries"].as_array().into_iter().flatten() {
                        let Some(delivery_id) = produced["delivery_id"].as_str() else {
                            continue;
                        };
                        let delivery = delivery(&mut deliveries, delivery_id);
                        delivery.insert("trigger_id".into(), trigger["trigger_id"].clone());
                        delivery.insert("action".into(), produced["action"].clone());
                        delivery
                            .insert("destination_id".into(), produced["destination_id"].clone());
                    }
                }
            }
            "attempt" => {
                let attempt = record.json();
                let Some(delivery_id) = attempt["delivery_id"].as_str() else {
                    continue;
                };
                let delivery = delivery(&mut deliveries, delivery_id);
                for field in ["trigger_id", "destination_id"] {
                    delivery
                        .entry(field)
                        .or_insert_with(|| attempt[field].clone());
                }
                delivery.insert("status".into(), attempt["outcome"].clone());
                if let Some(Value::Array(attempts)) = delivery.get_mut("attempts") {
                    attempts.push(attempt);
                }
            }
            "dead" => dead_letters.push(dead_letter(record)),
            _ => {}
        }
    }
    if let Value::Object(object) = &mut event {
        object.insert("replays".into(), replays.into());
        object.insert("match".into(), matched);
        object.insert(
            "deliveries".into(),
            deliveries.into_values().map(Value::Object).collect(),
        );
        object.insert("dead_letters".into(), dead_letters.into());
    }
    event
}

fn delivery<'a>(
    deliveries: &'a mut BTreeMap<String, Map<String, Value>>,
    id: &str,
) -> &'a mut Map<String, Value> {
    deliveries.entry(id.to_owned()).or_insert_with(|| {
        let mut delivery = Map::new();
        delivery.insert("delivery_id".into(), id.into());
        // No attempt recorded yet: the job waits in the deliveries topic (or the dispatcher).
        delivery.insert("status".into(), "pending".into());
        delivery.insert("attempts".into(), Value::Array(Vec::new()));
        delivery
    })
}
