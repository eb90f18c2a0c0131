//! `POST /api/v1/triggers/{id}/preview` and `POST /api/v1/triggers/preview`: what a saved or an
//! unsaved trigger would send for a sample event, rendered by the processor's own preview
//! function and never sent.
//!
//! The sample is the body's `event`, or a stored event named by `event_id` (its payload, headers
//! and source as ingest received them), to check a changed trigger against what really came in.
//!
//! A trigger that does not compile is refused (422, the problem names the field, line and
//! column); a condition or template that fails on the sample is an answer (200 with `error`),
//! since that is what the processor would do with such an event: dead-letter it.
//!
//! A read-only token may preview, so the requests are shown with their secrets masked as a
//! destination's view masks them: the credential in the URL and the values of credential headers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hookline_processor::preview::{self, PreviewError, PreviewRequest, SampleEvent};
use hookline_processor::template::Limits;
use hookline_processor::{CompileError, RenderError};
use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{Resource, ResourceId, ResourceKind, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::body;
use crate::error::{ApiError, store_failed};
use crate::mask;
use crate::path::Id;
use crate::state::{ApiState, BodyResult};
use crate::store::query;

/// The unsaved trigger's route.
pub const UNSAVED: &str = "/api/v1/triggers/preview";

/// The id an unsaved trigger gets when the body names none (and the last segment of [`UNSAVED`]).
pub const UNSAVED_ID: &str = "preview";

/// The saved trigger's route.
pub const SAVED: &str = "/api/v1/triggers/{id}/preview";

/// Whether `route`, a matched route template, is a preview.
pub fn is_preview(route: &str) -> bool {
    route == SAVED || route == UNSAVED
}

/// A sample event, as the body's `event` gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleInput {
    /// The event's JSON body.
    payload: Value,
    /// Inbound headers; the trigger sees them lower-cased as `event.headers`.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The source it arrives from; the trigger's first source when absent.
    #[serde(default)]
    source: Option<ResourceId>,
}

/// What the trigger would do with the sample.
#[derive(Debug, Serialize)]
struct Answer {
    /// Whether `when` and `if` hold for the sample.
    matched: bool,
    /// Why not, when not.
    reason: Option<String>,
    /// The requests it would send.
    requests: Vec<PreviewRequest>,
    /// Actions that would send nothing, and why.
    skipped: Vec<String>,
    /// The condition or template that failed on the sample: the processor would dead-letter the
    /// event.
    error: Option<Failure>,
}

/// A condition or template that failed, and where.
#[derive(Debug, Serialize)]
struct Failure {
    field: String,
    message: String,
    line: Option<usize>,
    column: Option<usize>,
}

/// Previews the saved trigger `id`, with the destinations as they are now.
pub async fn saved(
    State(state): State<ApiState>,
    Id(id): Id,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let mut object = body::object(&headers, body, state.max_body_bytes)?;
    let snapshot = state.store.snapshot();
    let not_found = || ApiError::NotFound {
        kind: ResourceKind::Trigger.as_str(),
        id: id.clone(),
    };
    let key = ResourceId::parse(id.as_str()).map_err(|_| not_found())?;
    let trigger = snapshot.triggers.get(&key).ok_or_else(not_found)?.clone();
    let sample = sample_from(&state, &mut object, &trigger).await?;
    refuse_unknown(&object, &trigger)?;
    answer(&trigger, &snapshot, &sample)
}

/// Previews the trigger in the body's `trigger`, with the destinations as they are now.
pub async fn unsaved(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let mut object = body::object(&headers, body, state.max_body_bytes)?;
    let trigger = match object.remove("trigger") {
        Some(Value::Object(mut trigger)) => {
            body::drop_read_only(&mut trigger, ResourceKind::Trigger)?;
            trigger
                .entry("id")
                .or_insert_with(|| UNSAVED_ID.to_owned().into());
            match body::resource(ResourceKind::Trigger, trigger)? {
                Resource::Trigger(trigger) => trigger,
                Resource::Source(_) | Resource::Destination(_) => {
                    return Err(ApiError::Internal("a trigger was read as another kind"));
                }
            }
        }
        Some(_) => return Err(invalid(UNSAVED_ID, "trigger", "must be a trigger object")),
        None => {
            return Err(invalid(
                UNSAVED_ID,
                "trigger",
                "missing: send the trigger to preview",
            ));
        }
    };
    let sample = sample_from(&state, &mut object, &trigger).await?;
    refuse_unknown(&object, &trigger)?;
    answer(&trigger, &state.store.snapshot(), &sample)
}

/// The sample: the stored event the body's `event_id` names, or the body's `event`.
async fn sample_from(
    state: &ApiState,
    object: &mut Map<String, Value>,
    trigger: &Trigger,
) -> Result<SampleEvent, ApiError> {
    match object.remove("event_id") {
        None => sample(object, trigger),
        Some(Value::String(_)) if object.contains_key("event") => Err(invalid(
            trigger.id.as_str(),
            "event_id",
            "send either `event` or `event_id`, not both",
        )),
        Some(Value::String(id)) => stored(state, id).await,
        Some(_) => Err(invalid(
            trigger.id.as_str(),
            "event_id",
            "must be the id of a stored event",
        )),
    }
}

/// A stored event as a sample: its payload, kept headers and source.
async fn stored(state: &ApiState, id: String) -> Result<SampleEvent, ApiError> {
    let lookup = id.clone();
    let found = state
        .history
        .logs
        .store
        .run(move |connection| query::event(connection, &lookup))
        .await
        .map_err(store_failed)?;
    let found = found.ok_or_else(|| state.history.missing_event(id))?;
    let metadata = found.json();
    let source = metadata["source"]
        .as_str()
        .and_then(|source| ResourceId::parse(source).ok())
        .ok_or(ApiError::Internal("a stored event has no source"))?;
    let headers = metadata["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    let body = state.history.logs.payload(&found).await.map_err(|error| {
        ApiError::PayloadGone(format!(
            "the event was larger than the store keeps and {error}; send its payload as the sample"
        ))
    })?;
    Ok(SampleEvent {
        source,
        headers,
        body,
    })
}

/// Reads the body's `event`; the source defaults to the trigger's first.
fn sample(object: &mut Map<String, Value>, trigger: &Trigger) -> Result<SampleEvent, ApiError> {
    let Some(event) = object.remove("event") else {
        return Err(invalid(
            trigger.id.as_str(),
            "event",
            "missing: send the sample event as {\"payload\": ...}, or a stored event's `event_id`",
        ));
    };
    let input: SampleInput = serde_path_to_error::deserialize(event).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." {
            "event".to_owned()
        } else {
            format!("event.{path}")
        };
        invalid(trigger.id.as_str(), field, error.inner().to_string())
    })?;
    let source = match input.source {
        Some(source) => source,
        None => trigger.when.sources.first().cloned().ok_or_else(|| {
            invalid(
                trigger.id.as_str(),
                "when.sources",
                "a trigger needs at least one source",
            )
        })?,
    };
    let body = serde_json::to_vec(&input.payload)
        .map_err(|_| ApiError::Internal("a JSON value did not serialize"))?;
    Ok(SampleEvent {
        source,
        headers: input.headers,
        body,
    })
}

/// Anything left in the body is a mistake worth naming (`evnet`, `payload` at the top).
fn refuse_unknown(object: &Map<String, Value>, trigger: &Trigger) -> Result<(), ApiError> {
    match object.keys().next() {
        None => Ok(()),
        Some(field) => Err(invalid(
            trigger.id.as_str(),
            field.clone(),
            "unknown field; the body takes `event` or `event_id` (and `trigger` for an unsaved one)",
        )),
    }
}

fn answer(
    trigger: &Trigger,
    resources: &ResourceSet,
    sample: &SampleEvent,
) -> Result<Response, ApiError> {
    let answer = match preview::preview(trigger, resources, sample, &Limits::default()) {
        Ok(preview) => Answer {
            matched: preview.matched,
            reason: preview.reason,
            requests: preview.requests.into_iter().map(masked).collect(),
            skipped: preview.skipped,
            error: None,
        },
        Err(PreviewError::Render(error)) => failed(error),
        Err(PreviewError::Compile(error)) => return Err(does_not_compile(trigger, error)),
        Err(PreviewError::InvalidJson(message)) => return Err(ApiError::InvalidJson(message)),
    };
    Ok(Json(answer).into_response())
}

/// `request` with its secrets masked. The URL is the destination's (whose password every other
/// view masks) or an action's rendered one; the headers are only the action's rendered ones (the
/// destination's own are added at delivery), which may carry a credential taken from the event.
fn masked(mut request: PreviewRequest) -> PreviewRequest {
    request.url = mask::mask_url(&request.url);
    for (name, value) in &mut request.headers {
        *value = mask::header_value(name, value);
    }
    request
}

/// The answer for a sample the trigger fails on. An error in an action means `when` and `if`
/// held; one in `when.event_type` or `if` means matching itself failed.
fn failed(error: RenderError) -> Answer {
    let in_action = error.field.starts_with("actions[");
    let reason = (!in_action).then(|| format!("{} could not be evaluated", error.field));
    Answer {
        matched: in_action,
        reason,
        requests: Vec::new(),
        skipped: Vec::new(),
        error: Some(Failure {
            field: error.field,
            message: error.reason,
            line: error.position.map(|(line, _)| line),
            column: error.position.map(|(_, column)| column),
        }),
    }
}

fn does_not_compile(trigger: &Trigger, error: CompileError) -> ApiError {
    ApiError::DoesNotCompile {
        resource: format!("trigger/{}", trigger.id),
        error,
    }
}

fn invalid(id: &str, field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(format!("trigger/{id}"), field, message)
}
