//! Evaluating a trigger against a sample event without sending anything: whether it fires, and if
//! so the requests it would send, or the error and where it is. The CLI's `hookline preview` and
//! the control API use it, so what they show is what the processor would do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{EventMetadata, ResourceId, SCHEMA_VERSION, Trigger};
use serde::Serialize;

use crate::context;
use crate::evaluate::{self, ActionResult, Outcome, Skip};
use crate::template::Limits;
use crate::trigger::{CompileError, CompiledTrigger, RenderError};

/// A sample event.
#[derive(Clone, Debug)]
pub struct SampleEvent {
    /// The source it arrives from.
    pub source: ResourceId,
    /// Inbound headers, by any case (the trigger sees them lower-cased, as the source keeps them).
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// What the trigger would do with the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// Whether it fires.
    pub matched: bool,
    /// Why it does not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The requests it would send, one per action whose destination exists and is enabled.
    pub requests: Vec<PreviewRequest>,
    /// Actions that would produce no request, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// One request the trigger would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewRequest {
    /// The action's index.
    pub action: usize,
    /// The destination.
    pub destination: String,
    /// HTTP method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Rendered headers (the destination's static headers are added at delivery).
    pub headers: BTreeMap<String, String>,
    /// Rendered body.
    pub body: String,
}

/// Why no preview could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    /// The trigger does not compile.
    #[error("the trigger does not compile: {0}")]
    Compile(#[from] CompileError),
    /// The sample is not JSON.
    #[error("the sample event is not valid JSON: {0}")]
    InvalidJson(String),
    /// A condition or template failed on the sample.
    #[error("{0}")]
    Render(#[from] RenderError),
}

/// Evaluates `trigger` against `sample`, with `resources` for its destinations.
pub fn preview(
    trigger: &Trigger,
    resources: &ResourceSet,
    sample: &SampleEvent,
    limits: &Limits,
) -> Result<Preview, PreviewError> {
    // What validation refuses (an unknown filter, a body that can never be JSON) is refused
    // here too, even where this sample would not reach it.
    if let Some(error) = CompiledTrigger::check(trigger, limits).into_iter().next() {
        return Err(error.into());
    }
    let compiled = CompiledTrigger::build(Arc::new(trigger.clone()), limits)?;
    let not_matched = |reason: String| Preview {
        matched: false,
        reason: Some(reason),
        requests: Vec::new(),
        skipped: Vec::new(),
    };
    let payload = context::payload(&sample.body)
        .map_err(|error| PreviewError::InvalidJson(error.to_string()))?;
    let metadata = EventMetadata {
        schema_version: SCHEMA_VERSION,
        event_id: "evt_preview".to_owned(),
        source: sample.source.clone(),
        received_at: hookline_runtime::time::now_rfc3339(),
        content_type: "application/json".to_owned(),
        headers: sample
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect(),
    };
    let event = context::event(&metadata);
    let outcome = evaluate::trigger(
        &compiled,
        |id| resources.destinations.get(id).map(AsRef::as_ref),
        &evaluate::Event {
            metadata: &metadata,
            payload: &payload,
            event: &event,
            now: &metadata.received_at,
            delivered: &BTreeSet::new(),
        },
    );
    let actions = match outcome {
        Outcome::Fired(actions) => actions,
        Outcome::OtherSource => {
            return Ok(not_matched(format!(
                "the trigger does not look at source {:?}",
                sample.source.as_str()
            )));
        }
        Outcome::OtherEventType(kind) => {
            return Ok(not_matched(format!(
                "event type {kind:?} is not in when.event_types"
            )));
        }
        Outcome::ConditionFalse => {
            return Ok(not_matched("the `if` condition is false".to_owned()));
        }
        Outcome::Failed(error) => return Err(error.into()),
    };
    let mut preview = Preview {
        matched: true,
        reason: None,
        requests: Vec::new(),
        skipped: Vec::new(),
    };
    for action in actions {
        let index = action.index;
        match action.result {
            ActionResult::Job(job) => preview.requests.push(PreviewRequest {
                action: index,
                destination: job.destination_id.to_string(),
                method: job.method,
                url: job.url,
                headers: job.headers,
                body: job.body,
            }),
            ActionResult::Skipped(why) => {
                let destination = &action.destination_id;
                preview.skipped.push(match why {
                    Skip::DestinationDisabled => {
                        format!("actions[{index}]: destination {destination} is disabled")
                    }
                    Skip::DestinationMissing => {
                        format!("actions[{index}]: destination {destination} does not exist")
                    }
                    Skip::AlreadyDelivered => {
                        format!("actions[{index}]: already delivered to {destination}")
                    }
                });
            }
            ActionResult::Failed(error) => return Err(error.into()),
        }
    }
    Ok(preview)
}

#[cfg(test)]
mod tests {
    use hookline_schemas::{Action, Destination, Resource, When};

    use super::*;

    fn id(text: &str) -> ResourceId {
        ResourceId::parse(text).unwrap()
    }

    fn setup() -> (Trigger, ResourceSet) {
        let trigger = Trigger {
            schema_version: 1,
            id: id("alerts"),
            name: "High alerts".into(),
            enabled: true,
            when: When {
                sources: vec![id("monitoring")],
                event_type: Some(r#"event.headers["x-kind"]"#.into()),
                event_types: vec!["alert".into()],
            },
            condition: Some(r#"payload.severity == "high""#.into()),
            actions: vec![Action {
                destination: id("pager"),
                body: r#"{"text": {{ payload.title }}}"#.into(),
                headers: BTreeMap::new(),
                url: None,
            }],
        };
        let mut resources = ResourceSet::default();
        resources.put(Resource::Destination(Destination::new(
            id("pager"),
            "https://pager.example.com/hook",
        )));
        (trigger, resources)
    }

    fn sample(kind: &str, body: &str) -> SampleEvent {
        SampleEvent {
            source: id("monitoring"),
            headers: BTreeMap::from([("X-Kind".to_owned(), kind.to_owned())]),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_matching_event_shows_the_rendered_request() {
        let (trigger, resources) = setup();
        let preview = preview(
            &trigger,
            &resources,
            &sample("alert", r#"{"severity": "high", "title": "CPU"}"#),
            &Limits::default(),
        )
        .unwrap();
        assert!(preview.matched);
        assert_eq!(preview.requests.len(), 1);
        assert_eq!(preview.requests[0].url, "https://pager.example.com/hook");
        assert_eq!(preview.requests[0].body, r#"{"text": "CPU"}"#);
    }

    #[test]
    fn says_why_an_event_does_not_match() {
        let (trigger, resources) = setup();
        let low = preview(
            &trigger,
            &resources,
            &sample("alert", r#"{"severity": "low"}"#),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(low.reason.as_deref(), Some("the `if` condition is false"));
        let other = preview(
            &trigger,
            &resources,
            &sample("ping", "{}"),
            &Limits::default(),
        )
        .unwrap();
        assert!(other.reason.unwrap().contains("\"ping\""));
    }

    #[test]
    fn render_errors_name_the_field_and_expression() {
        let (trigger, resources) = setup();
        let error = preview(
            &trigger,
            &resources,
            &sample("alert", r#"{"severity": "high"}"#),
            &Limits::default(),
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("actions[0].body") && text.contains("payload.title"),
            "{text}"
        );
    }
}
