//! Replays: dead letters back through the dispatcher, stored events back through the processor.
//!
//! - `POST /api/v1/dead-letters/replay` takes `{"ids": [...]}` or a filter (`destination`,
//!   `source`, `reason`, `since`, `until`). A dead job goes back to the deliveries topic as a
//!   first attempt (attempt 1, no wait) with the same delivery id, so receivers can deduplicate,
//!   and to the destination's current URL and method (unless its trigger renders the URL);
//!   a dead event (a template failed, say) is replayed from the store, whole, to the events
//!   topic, once however many of its triggers failed.
//! - `POST /api/v1/events/replay` takes `{"ids": [...]}` or `{"source", "since", "until"}` and
//!   writes the stored events back to the events topic with their original id, source, time and
//!   headers: every trigger sees them again, and the deliveries get the same ids as before.
//!
//! A replayed event carries the ids of its deliveries that already succeeded, and the processor
//! does not produce them again: a replay re-runs only what did not deliver (and triggers added
//! since), unless `"all": true` asks for everything. It also says when and by which token it was
//! replayed, which the event's journey shows.
//!
//! Both answer with what was sent and what was skipped, and why; `"dry_run": true` lists exactly
//! what would be sent (each job, or each trigger action of each event, as the processor would
//! evaluate it now) and sends nothing. At most `--control-max-replay` records go per request,
//! oldest first; `truncated` says more matched.

mod plan;

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hookline_runtime::order::OrderKey;
use hookline_schemas::{
    DeadLetter, DeadLetterState, DeadPayload, DeadState, DeliveryJob, Destination, EventMetadata,
    SCHEMA_VERSION,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dead_letter::{dead_letter_id, parse_id};
use crate::error::{ApiError, store_failed};
use crate::send::{Replay, StoredEvent};
use crate::state::ApiState;
use crate::store::page::Window;
use crate::store::query::{self, Filter, Stored};
use crate::store::{RecordKind, StoreError};
use crate::tokens::Caller;

/// What to replay: ids, or a filter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Dead letter ids (`<partition>-<offset>`) or event ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Only dead letters of this destination.
    pub destination: Option<String>,
    /// Only records of this source.
    pub source: Option<String>,
    /// Only dead letters with this reason.
    pub reason: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    pub until: Option<String>,
    /// Replay every delivery of an event, the successful ones too.
    #[serde(default)]
    pub all: bool,
    /// List what would be sent, and send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Replay (or discard) dead letters that are not open: already replayed or discarded.
    #[serde(default)]
    pub force: bool,
}

/// What a replay did, or would do.
#[derive(Debug, Default)]
struct Outcome {
    dry_run: bool,
    jobs: usize,
    events: usize,
    /// Deliveries of the replayed events that had succeeded and are not sent again.
    already_delivered: usize,
    skipped: Vec<Value>,
    truncated: bool,
    /// With `dry_run`: what would be sent.
    plan: Vec<Value>,
}

impl Outcome {
    fn skip(&mut self, id: &str, reason: &str) {
        self.skipped.push(json!({ "id": id, "reason": reason }));
    }

    fn into_response(self) -> Response {
        let mut answer = json!({
            "dry_run": self.dry_run,
            "replayed_jobs": self.jobs,
            "replayed_events": self.events,
            "already_delivered": self.already_delivered,
            "skipped": self.skipped,
            "truncated": self.truncated,
        });
        if self.dry_run {
            answer["would_send"] = self.plan.into();
        }
        Json(answer).into_response()
    }
}

fn read(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<ReplayRequest, ApiError> {
    let object = crate::body::object(headers, body, limit)?;
    let request: ReplayRequest = serde_json::from_value(Value::Object(object))
        .map_err(|error| ApiError::InvalidJson(error.to_string()))?;
    let filtered = request.destination.is_some()
        || request.source.is_some()
        || request.reason.is_some()
        || request.since.is_some()
        || request.until.is_some();
    if request.ids.is_empty() != filtered {
        return Err(ApiError::InvalidJson(
            "send either ids or a filter (destination, source, reason, since, until), not both \
             and not neither"
                .into(),
        ));
    }
    Ok(request)
}

/// The records a filtered request selects, oldest first, at most `max`.
async fn select(
    state: &ApiState,
    filter: Filter,
    request: &ReplayRequest,
    max: usize,
) -> Result<(Vec<Stored>, bool), ApiError> {
    let mut window = Window::parse(
        Some(crate::list::MAX_LIMIT),
        None,
        request.since.as_deref(),
        request.until.as_deref(),
    )?;
    window.limit = max;
    let page = state
        .history
        .logs
        .store
        .run(move |connection| query::page(connection, &filter, &window))
        .await
        .map_err(store_failed)?;
    let truncated = page.next.is_some();
    let mut items = page.items;
    items.reverse();
    Ok((items, truncated))
}

/// `POST /api/v1/dead-letters/replay`.
pub async fn dead_letters(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = read(&headers, body, state.max_body_bytes)?;
    let mut outcome = Outcome {
        dry_run: request.dry_run,
        ..Outcome::default()
    };
    let letters = open_letters(&state, &request, &mut outcome).await?;
    // First decide, then send everything at once: Kafka acknowledges thousands of records in
    // the time one round trip per record would take.
    let snapshot = state.store.snapshot();
    let mut jobs = Vec::new();
    let mut job_letters = Vec::new();
    let mut events = Vec::new();
    let mut seen_events = BTreeSet::new();
    for record in &letters {
        let id = dead_letter_id(record);
        let Ok(letter) = serde_json::from_str::<DeadLetter>(&record.doc) else {
            outcome.skip(&id, "unreadable");
            continue;
        };
        match letter.payload {
            DeadPayload::Job { mut job } => {
                let destination = match snapshot.destinations.get(&job.destination_id) {
                    None => {
                        outcome.skip(&id, "destination_missing");
                        continue;
                    }
                    Some(destination) if !destination.enabled => {
                        outcome.skip(&id, "destination_disabled");
                        continue;
                    }
                    Some(destination) => destination,
                };
                let overridden = snapshot
                    .triggers
                    .get(&job.trigger_id)
                    .and_then(|trigger| trigger.actions.get(job.action as usize))
                    .is_some_and(|action| action.url.is_some());
                refresh(&mut job, destination, overridden);
                job_letters.push(id);
                jobs.push(job);
            }
            DeadPayload::Event {
                metadata: Some(metadata),
                ..
            } => {
                // One replay per event, however many of its triggers failed.
                if seen_events.insert(metadata.event_id.clone()) {
                    events.push((id, metadata.event_id));
                }
            }
            DeadPayload::Event { metadata: None, .. } | DeadPayload::Raw { .. } => {
                outcome.skip(&id, "not_replayable");
            }
        }
    }
    outcome.jobs = jobs.len();
    let by = caller.by;
    if request.dry_run {
        outcome.plan.extend(jobs.iter().map(plan::job));
    } else {
        // Taken before the jobs go: a letter reads as delivered once its delivery succeeds after
        // this, and the dispatcher may deliver before the state below is written.
        let sent_at = hookline_runtime::time::now_rfc3339();
        let sender = &state.history.sender;
        futures::future::try_join_all(jobs.iter().map(|job| sender.job(job)))
            .await
            .map_err(|error| ApiError::Unavailable(Some(error)))?;
        let states = job_letters
            .iter()
            .zip(&jobs)
            .map(|(id, job)| DeadLetterState {
                delivery_id: Some(job.delivery_id.clone()),
                at: sent_at.clone(),
                ..new_state(id, DeadState::Replayed, &by)
            });
        record_states(&state, states).await?;
    }
    let replayed_events = events.clone();
    replay_events(&state, events, &request, &by, &mut outcome).await?;
    if !request.dry_run {
        let states = replayed_events
            .iter()
            .map(|(id, event_id)| DeadLetterState {
                event_id: Some(event_id.clone()),
                ..new_state(id, DeadState::Replayed, &by)
            });
        record_states(&state, states).await?;
    }
    Ok(outcome.into_response())
}

/// `POST /api/v1/dead-letters/discard`: marks the selected open letters discarded (they stay
/// listed, and are not replayed unless forced); `dry_run` lists them and marks nothing.
pub async fn discard(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = read(&headers, body, state.max_body_bytes)?;
    let mut outcome = Outcome {
        dry_run: request.dry_run,
        ..Outcome::default()
    };
    let letters = open_letters(&state, &request, &mut outcome).await?;
    let ids: Vec<String> = letters.iter().map(dead_letter_id).collect();
    if !request.dry_run {
        let by = caller.by;
        record_states(
            &state,
            ids.iter()
                .map(|id| new_state(id, DeadState::Discarded, &by)),
        )
        .await?;
    }
    Ok(Json(json!({
        "dry_run": request.dry_run,
        "discarded": ids,
        "skipped": outcome.skipped,
        "truncated": outcome.truncated,
    }))
    .into_response())
}

/// The dead letters a request selects (by ids, or by filter, at most `--control-max-replay`),
/// without those already replayed or discarded unless `force` (they are reported as skipped).
async fn open_letters(
    state: &ApiState,
    request: &ReplayRequest,
    outcome: &mut Outcome,
) -> Result<Vec<Stored>, ApiError> {
    let states = &state.history.dead_states;
    if !states.is_ready() {
        return Err(ApiError::StoreNotReady);
    }
    let max = state.history.max_replay;
    let letters = if request.ids.is_empty() {
        let filter = Filter {
            kinds: vec![RecordKind::Dead],
            destination_id: request.destination.clone(),
            source_id: request.source.clone(),
            outcome: request.reason.clone(),
            ..Filter::default()
        };
        let (letters, truncated) = select(state, filter, request, max).await?;
        outcome.truncated = truncated;
        letters
    } else {
        let ids: Vec<String> = request.ids.iter().take(max).cloned().collect();
        outcome.truncated = request.ids.len() > max;
        let found = state
            .history
            .logs
            .store
            .run(move |connection| {
                ids.iter()
                    .map(|id| {
                        let record = match parse_id(id) {
                            Some((partition, position)) => {
                                query::dead_at(connection, partition, position)?
                            }
                            None => None,
                        };
                        Ok((id.clone(), record))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await
            .map_err(store_failed)?;
        let mut letters = Vec::new();
        for (id, record) in found {
            match record {
                Some(record) => letters.push(record),
                None => outcome.skip(&id, "not_found"),
            }
        }
        letters
    };
    if request.force {
        return Ok(letters);
    }
    Ok(letters
        .into_iter()
        .filter(|letter| {
            let id = dead_letter_id(letter);
            match states.get(&id).map(|known| known.state) {
                None => true,
                Some(DeadState::Replayed) => {
                    outcome.skip(&id, "already_replayed");
                    false
                }
                Some(DeadState::Discarded) => {
                    outcome.skip(&id, "discarded");
                    false
                }
            }
        })
        .collect())
}

fn new_state(id: &str, state: DeadState, by: &str) -> DeadLetterState {
    DeadLetterState {
        schema_version: SCHEMA_VERSION,
        dead_letter_id: id.to_owned(),
        state,
        at: hookline_runtime::time::now_rfc3339(),
        by: by.to_owned(),
        delivery_id: None,
        event_id: None,
    }
}

async fn record_states(
    state: &ApiState,
    states: impl Iterator<Item = DeadLetterState>,
) -> Result<(), ApiError> {
    let dead_states = &state.history.dead_states;
    futures::future::try_join_all(states.map(|known| dead_states.record(known)))
        .await
        .map_err(|error| ApiError::Unavailable(Some(error)))?;
    Ok(())
}

/// `POST /api/v1/events/replay`.
pub async fn events(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = read(&headers, body, state.max_body_bytes)?;
    if request.destination.is_some() || request.reason.is_some() {
        return Err(ApiError::InvalidJson(
            "events are selected by ids or by source, since and until".into(),
        ));
    }
    let max = state.history.max_replay;
    let mut outcome = Outcome {
        dry_run: request.dry_run,
        ..Outcome::default()
    };
    let ids: Vec<String> = if request.ids.is_empty() {
        let filter = Filter {
            kinds: vec![RecordKind::Event],
            source_id: request.source.clone(),
            ..Filter::default()
        };
        let (events, truncated) = select(&state, filter, &request, max).await?;
        outcome.truncated = truncated;
        events
            .iter()
            .filter_map(|event| event.json()["event_id"].as_str().map(str::to_owned))
            .collect()
    } else {
        outcome.truncated = request.ids.len() > max;
        request.ids.iter().take(max).cloned().collect()
    };
    let ids = ids.into_iter().map(|id| (id.clone(), id)).collect();
    let by = caller.by;
    replay_events(&state, ids, &request, &by, &mut outcome).await?;
    Ok(outcome.into_response())
}

/// Makes a dead job a first attempt again, to the destination as it is now: the cause is often
/// what the operator just fixed (its URL, its method). A URL a trigger action rendered itself is
/// kept, as the template made it.
fn refresh(job: &mut DeliveryJob, destination: &Destination, url_overridden: bool) {
    job.attempt = 1;
    job.not_before = None;
    job.method = destination.method.clone();
    if !url_overridden {
        job.url = destination.url.clone();
    }
}

/// Writes the stored events back to the events topic, all at once, each with the ids of its
/// deliveries that already succeeded (none with `all`), or with `dry_run` lists what the
/// processor would make of each now. `events` pairs the id a skip is reported under (a dead
/// letter's, or the event's own) with the event id; events the store does not hold are skipped.
async fn replay_events(
    state: &ApiState,
    events: Vec<(String, String)>,
    request: &ReplayRequest,
    by: &str,
    outcome: &mut Outcome,
) -> Result<(), ApiError> {
    let event_ids: Vec<String> = events.iter().map(|(_, event)| event.clone()).collect();
    let stored = state
        .history
        .logs
        .store
        .run(move |connection| {
            event_ids
                .iter()
                .map(|id| Ok((query::event(connection, id)?, delivered(connection, id)?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(store_failed)?;
    let mut sends = Vec::new();
    for ((id, _), (stored, delivered)) in events.into_iter().zip(stored) {
        let event = match stored {
            Some(stored) => match state.history.logs.payload(&stored).await {
                Ok(payload) => readable(&stored, payload),
                Err(error) => {
                    tracing::warn!(%error, event = %id, "A replayed event's whole payload is gone.");
                    outcome.skip(&id, "payload_gone");
                    continue;
                }
            },
            None => None,
        };
        match event {
            Some(event) => {
                let delivered = if request.all {
                    BTreeSet::new()
                } else {
                    delivered
                };
                outcome.already_delivered += delivered.len();
                sends.push((id, event, delivered));
            }
            None => outcome.skip(&id, "event_not_stored"),
        }
    }
    outcome.events += sends.len();
    if request.dry_run {
        let mut planner = plan::Planner::new(state.store.snapshot());
        for (id, event, delivered) in &sends {
            outcome.plan.extend(planner.event(id, event, delivered));
        }
        return Ok(());
    }
    let at = hookline_runtime::time::now_rfc3339();
    let sender = &state.history.sender;
    let resources = state.store.snapshot();
    futures::future::try_join_all(sends.iter().map(|(_, event, delivered)| {
        let replay = Replay {
            at: &at,
            by,
            delivered,
        };
        // Keyed by its source's order key as it is now (an event of a deleted source by its id).
        let order = resources
            .sources
            .get(&event.metadata.source)
            .map_or(OrderKey::Event, |source| OrderKey::of(source));
        async move { sender.event(event, &order, &replay).await }
    }))
    .await
    .map_err(|error| ApiError::Unavailable(Some(error)))?;
    Ok(())
}

/// The ids of an event's deliveries that succeeded, from its stored attempts.
fn delivered(
    connection: &crate::store::Database<'_>,
    event_id: &str,
) -> Result<BTreeSet<String>, StoreError> {
    Ok(query::journey(connection, event_id)?
        .iter()
        .filter(|record| record.kind == "attempt")
        .map(Stored::json)
        .filter(|attempt| attempt["outcome"] == "delivered")
        .filter_map(|attempt| attempt["delivery_id"].as_str().map(str::to_owned))
        .collect())
}

/// A stored event's metadata, client address and payload, as replay writes them.
fn readable(stored: &Stored, payload: Vec<u8>) -> Option<StoredEvent> {
    let mut doc = stored.json();
    let client = doc["client"].as_str().map(str::to_owned);
    if let Value::Object(object) = &mut doc {
        // Not metadata fields: the metadata type refuses unknown fields.
        object.remove("client");
        object.remove("replayed_at");
        object.remove("replayed_by");
    }
    let metadata = serde_json::from_value::<EventMetadata>(doc).ok()?;
    Some(StoredEvent {
        metadata,
        client,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_job_starts_over_at_the_destination_s_current_url() {
        let destination: Destination = serde_json::from_value(json!({
            "id": "crm", "url": "https://fixed.example.com/hooks", "method": "PUT"
        }))
        .unwrap();
        let mut job: DeliveryJob = serde_json::from_value(json!({
            "schema_version": 1, "delivery_id": "msg_1", "event_id": "e", "source_id": "app",
            "trigger_id": "t", "action": 0, "destination_id": "crm", "attempt": 8,
            "method": "POST", "url": "https://broken.example.com/hooks", "body": "{}",
            "received_at": "2026-01-02T03:04:05Z", "not_before": "2026-01-02T04:04:05Z"
        }))
        .unwrap();
        let mut rendered = job.clone();
        refresh(&mut job, &destination, false);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.not_before, None);
        assert_eq!(job.url, "https://fixed.example.com/hooks");
        assert_eq!(job.method, "PUT");
        assert_eq!(job.delivery_id, "msg_1");
        refresh(&mut rendered, &destination, true);
        assert_eq!(rendered.url, "https://broken.example.com/hooks");
    }
}
