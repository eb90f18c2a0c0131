//! What a replay would send, for `"dry_run": true`: each dead job as it would go back to the
//! dispatcher, and for each event what the processor would make of it now, through the same
//! evaluation the processor runs ([`hookline_processor::evaluate`]), with the current triggers
//! and destinations and the deliveries that already succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hookline_processor::CompiledTrigger;
use hookline_processor::context;
use hookline_processor::evaluate::{self, ActionResult, Outcome};
use hookline_processor::template::Limits;
use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{DeliveryJob, ResourceId};
use serde_json::{Value, json};

use crate::send::StoredEvent;

/// A dead job, as it would be sent.
pub fn job(job: &DeliveryJob) -> Value {
    json!({
        "event_id": job.event_id,
        "trigger_id": job.trigger_id,
        "action": job.action,
        "destination_id": job.destination_id,
        "delivery_id": job.delivery_id,
        "method": job.method,
        "url": crate::mask::mask_url(&job.url),
        "result": "send",
    })
}

/// Evaluates events against the resources as they are now, compiling each trigger once.
pub struct Planner {
    resources: Arc<ResourceSet>,
    compiled: BTreeMap<ResourceId, Option<Arc<CompiledTrigger>>>,
}

impl Planner {
    /// A planner over a snapshot of the resources.
    pub fn new(resources: Arc<ResourceSet>) -> Self {
        Self {
            resources,
            compiled: BTreeMap::new(),
        }
    }

    /// One entry per enabled trigger of the event's source that does not fire (and why), and
    /// per action of those that do: `send` (with the delivery id and URL), `already_delivered`,
    /// `destination_disabled`, `destination_missing` or `render_failed` (with the error).
    /// `id` is what the request named (the event id, or a dead letter's id).
    pub fn event(
        &mut self,
        id: &str,
        stored: &StoredEvent,
        delivered: &BTreeSet<String>,
    ) -> Vec<Value> {
        let metadata = &stored.metadata;
        let entry = |fields: Value| {
            let mut entry = json!({"id": id, "event_id": metadata.event_id});
            if let (Value::Object(entry), Value::Object(fields)) = (&mut entry, fields) {
                entry.extend(fields);
            }
            entry
        };
        let payload = match context::payload(&stored.payload) {
            Ok(payload) => payload,
            Err(error) => {
                return vec![entry(
                    json!({"result": "invalid_json", "error": error.to_string()}),
                )];
            }
        };
        let event = context::event(metadata);
        let now = hookline_runtime::time::now_rfc3339();
        let evaluated = evaluate::Event {
            metadata,
            payload: &payload,
            event: &event,
            now: &now,
            delivered,
        };
        let resources = Arc::clone(&self.resources);
        let triggers = resources
            .triggers
            .values()
            .filter(|trigger| trigger.enabled && trigger.when.sources.contains(&metadata.source));
        let mut entries = Vec::new();
        for trigger in triggers {
            let compiled = self.compiled.entry(trigger.id.clone()).or_insert_with(|| {
                CompiledTrigger::build(Arc::clone(trigger), &Limits::default())
                    .ok()
                    .map(Arc::new)
            });
            let Some(compiled) = compiled else {
                entries.push(entry(
                    json!({"trigger_id": trigger.id, "result": "does_not_compile"}),
                ));
                continue;
            };
            let destination = |id: &ResourceId| resources.destinations.get(id).map(AsRef::as_ref);
            let actions = match evaluate::trigger(compiled, destination, &evaluated) {
                Outcome::Fired(actions) => actions,
                Outcome::OtherSource => continue,
                Outcome::OtherEventType(_) => {
                    entries.push(entry(
                        json!({"trigger_id": trigger.id, "result": "no_match"}),
                    ));
                    continue;
                }
                Outcome::ConditionFalse => {
                    entries.push(entry(
                        json!({"trigger_id": trigger.id, "result": "condition_false"}),
                    ));
                    continue;
                }
                Outcome::Failed(error) => {
                    entries.push(entry(
                        json!({"trigger_id": trigger.id, "result": "render_failed",
                        "error": error.to_string()}),
                    ));
                    continue;
                }
            };
            for action in actions {
                let base = json!({"trigger_id": trigger.id, "action": action.index,
                    "destination_id": action.destination_id});
                let mut fields = match action.result {
                    ActionResult::Job(job) => json!({"delivery_id": job.delivery_id,
                        "method": job.method, "url": crate::mask::mask_url(&job.url),
                        "result": "send"}),
                    ActionResult::Skipped(why) => json!({"result": why.label()}),
                    ActionResult::Failed(error) => {
                        json!({"result": "render_failed", "error": error.to_string()})
                    }
                };
                if let (Value::Object(fields), Value::Object(base)) = (&mut fields, base) {
                    fields.extend(base);
                }
                entries.push(entry(fields));
            }
        }
        entries
    }
}
