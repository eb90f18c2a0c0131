//! What happened, from the store: an event's journey, a source's events and refused requests, a
//! destination's attempts, and dead letters. (When each resource was last active is part of its
//! view, [`crate::view`].)
//!
//! | route | shows |
//! |---|---|
//! | `GET /api/v1/events` | events newest first, by `source`, time, match `outcome`, `trigger`, `destination` and payload text `q` (bounded, [`crate::store::search`]) |
//! | `GET /api/v1/events/{id}` | the event, its payload, its match record, its deliveries with every attempt, its dead letters |
//! | `GET /api/v1/sources/{id}/events` | the source's events and refused requests, newest first (`kind`, `since`, `until`, paged) |
//! | `GET /api/v1/destinations/{id}/attempts` | the destination's attempts, newest first (`outcome`, `since`, `until`, paged) |
//! | `GET /api/v1/dead-letters` | dead letters, newest first (`destination`, `source`, `reason`, `since`, `until`, paged) |
//!
//! Lists page like the resource lists (`limit`, `cursor`, answer `items` and `next_cursor`).
//!
//! A dead job is shown with its secrets masked as a destination's view masks them
//! ([`crate::dead_letter`]).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use hookline_schemas::DeadState;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dead_letter::{dead_letter, dead_letter_id};
use crate::error::{ApiError, store_failed};
use crate::extract::query;
use crate::journey::journey;
use crate::path::Id;
use crate::state::ApiState;
use crate::store::RecordKind;
use crate::store::page::Window;
use crate::store::query::{self, Filter, Page, Stored};
use crate::store::search::{self, Search};

pub(crate) async fn event(State(state): State<ApiState>, Id(id): Id) -> Result<Response, ApiError> {
    let lookup = id.clone();
    let records = state
        .history
        .logs
        .store
        .run(move |connection| query::journey(connection, &lookup))
        .await
        .map_err(store_failed)?;
    if records.is_empty() {
        return Err(state.history.missing_event(id));
    }
    let mut journey = journey(&id, &records);
    mark_held(&mut journey, &state.history.held);
    Ok(Json(journey).into_response())
}

/// A delivery without an attempt that waits on hold, its destination paused, says so.
fn mark_held(journey: &mut Value, held: &crate::held::Held) {
    let deliveries = journey
        .get_mut("deliveries")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for delivery in deliveries {
        let waiting = delivery["status"] == "pending"
            && delivery["delivery_id"]
                .as_str()
                .is_some_and(|id| held.holds(id));
        if waiting {
            delivery["status"] = "held".into();
        }
    }
}

/// The page as JSON: `items` shown by `show`, and `next_cursor`.
fn page_json(page: &Page, show: impl Fn(&Stored) -> Value) -> Response {
    Json(json!({
        "items": page.items.iter().map(show).collect::<Vec<_>>(),
        "next_cursor": page.next.as_ref().map(|cursor| cursor.encode()),
    }))
    .into_response()
}

async fn page(state: &ApiState, filter: Filter, window: Window) -> Result<Page, ApiError> {
    state
        .history
        .logs
        .store
        .run(move |connection| query::page(connection, &filter, &window))
        .await
        .map_err(store_failed)
}

/// The query of a source's events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEventsQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// `event` or `rejected`; both when absent.
    kind: Option<String>,
}

pub(crate) async fn source_events(
    State(state): State<ApiState>,
    Id(id): Id,
    params: Result<Query<SourceEventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let window = Window::parse(
        params.limit,
        params.cursor.as_deref(),
        params.since.as_deref(),
        params.until.as_deref(),
    )?;
    let kinds = match params.kind.as_deref() {
        None => vec![RecordKind::Event, RecordKind::Rejected],
        Some("event") => vec![RecordKind::Event],
        Some("rejected") => vec![RecordKind::Rejected],
        Some(_) => {
            return Err(ApiError::InvalidQuery(
                "kind must be event or rejected".into(),
            ));
        }
    };
    let filter = Filter {
        kinds,
        source_id: Some(id),
        ..Filter::default()
    };
    let page = page(&state, filter, window).await?;
    let event_ids: Vec<String> = page
        .items
        .iter()
        .filter(|record| record.kind == RecordKind::Event.as_str())
        .filter_map(|record| record.json()["event_id"].as_str().map(str::to_owned))
        .collect();
    let outcomes = state
        .history
        .logs
        .store
        .run(move |connection| query::match_outcomes(connection, &event_ids))
        .await
        .map_err(store_failed)?;
    Ok(page_json(&page, |record| {
        let mut item = record.json();
        item["kind"] = record.kind.clone().into();
        if record.kind == RecordKind::Event.as_str() {
            // Whether anything went out, at a glance; the event's own route says why.
            let outcome = item["event_id"]
                .as_str()
                .and_then(|id| outcomes.get(id))
                .map_or(Value::Null, |outcome| outcome.as_str().into());
            item["match_outcome"] = outcome;
        }
        item
    }))
}

/// Most events one search looks at (see [`crate::store::search`]).
pub const SEARCH_BUDGET: usize = 2_000;

/// The match outcomes an event search takes.
const OUTCOMES: &[&str] = &["delivered", "no_trigger", "no_match", "dead", "pending"];

/// The query of an event search.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    source: Option<String>,
    outcome: Option<String>,
    trigger: Option<String>,
    destination: Option<String>,
    /// Text the payload contains.
    q: Option<String>,
}

pub(crate) async fn search_events(
    State(state): State<ApiState>,
    params: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let window = Window::parse(
        params.limit,
        params.cursor.as_deref(),
        params.since.as_deref(),
        params.until.as_deref(),
    )?;
    if let Some(outcome) = &params.outcome
        && !OUTCOMES.contains(&outcome.as_str())
    {
        return Err(ApiError::InvalidQuery(format!(
            "outcome must be one of {}",
            OUTCOMES.join(", ")
        )));
    }
    let text = params.q.filter(|text| !text.is_empty());
    if text.as_ref().is_some_and(|text| text.len() > 256) {
        return Err(ApiError::InvalidQuery("q must be at most 256 bytes".into()));
    }
    if !state.history.logs.is_ready() {
        return Err(ApiError::StoreNotReady);
    }
    let search = Search {
        source_id: params.source,
        outcome: params.outcome,
        trigger_id: params.trigger,
        destination_id: params.destination,
        text,
        budget: SEARCH_BUDGET,
    };
    let found = state
        .history
        .logs
        .store
        .run(move |connection| search::events(connection, &search, &window))
        .await
        .map_err(store_failed)?;
    let unknown: Vec<String> = found
        .items
        .iter()
        .filter(|(_, matched)| matched.is_none())
        .filter_map(|(event, _)| event.json()["event_id"].as_str().map(str::to_owned))
        .collect();
    let outcomes = state
        .history
        .logs
        .store
        .run(move |connection| query::match_outcomes(connection, &unknown))
        .await
        .map_err(store_failed)?;
    let items: Vec<Value> = found
        .items
        .iter()
        .map(|(event, matched)| {
            let mut item = event.json();
            item["kind"] = RecordKind::Event.as_str().into();
            let outcome = match matched {
                Some(record) => record["outcome"].clone(),
                None => item["event_id"]
                    .as_str()
                    .and_then(|id| outcomes.get(id))
                    .map_or(Value::Null, |outcome| outcome.as_str().into()),
            };
            item["match_outcome"] = outcome;
            item
        })
        .collect();
    Ok(Json(json!({
        "items": items,
        "next_cursor": found.next.as_ref().map(|cursor| cursor.encode()),
        "scanned": found.scanned,
        "complete": !found.stopped_at_budget,
    }))
    .into_response())
}

/// The query of a destination's attempts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptsQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// `delivered`, `retrying`, `dead` or `blocked`.
    outcome: Option<String>,
}

pub(crate) async fn attempts(
    State(state): State<ApiState>,
    Id(id): Id,
    params: Result<Query<AttemptsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let window = Window::parse(
        params.limit,
        params.cursor.as_deref(),
        params.since.as_deref(),
        params.until.as_deref(),
    )?;
    if let Some(outcome) = &params.outcome
        && !["delivered", "retrying", "dead", "blocked"].contains(&outcome.as_str())
    {
        return Err(ApiError::InvalidQuery(
            "outcome must be delivered, retrying, dead or blocked".into(),
        ));
    }
    let filter = Filter {
        kinds: vec![RecordKind::Attempt],
        destination_id: Some(id),
        outcome: params.outcome,
        ..Filter::default()
    };
    let page = page(&state, filter, window).await?;
    Ok(page_json(&page, Stored::json))
}

/// The query of the dead letters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    destination: Option<String>,
    source: Option<String>,
    reason: Option<String>,
}

impl DeadLettersQuery {
    /// The filter and window it asks for.
    pub fn parse(&self) -> Result<(Filter, Window), ApiError> {
        let window = Window::parse(
            self.limit,
            self.cursor.as_deref(),
            self.since.as_deref(),
            self.until.as_deref(),
        )?;
        let filter = Filter {
            kinds: vec![RecordKind::Dead],
            destination_id: self.destination.clone(),
            source_id: self.source.clone(),
            outcome: self.reason.clone(),
            ..Filter::default()
        };
        Ok((filter, window))
    }
}

pub(crate) async fn dead_letters(
    State(state): State<ApiState>,
    params: Result<Query<DeadLettersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, window) = query(params)?.parse()?;
    let states = &state.history.dead_states;
    // Until the states are read, every letter would read as open; until the store has read the
    // attempts the topics held at start, a replayed letter already delivered would read as
    // only replayed (a new instance reads the dead letters and the attempts in any order).
    if !states.is_ready() || !state.history.logs.is_ready() {
        return Err(ApiError::StoreNotReady);
    }
    let page = page(&state, filter, window).await?;
    let known: Vec<_> = page
        .items
        .iter()
        .map(|record| states.get(&dead_letter_id(record)))
        .collect();
    // A replayed job reads as delivered once an attempt of its delivery succeeded since.
    let checks: Vec<(usize, String, String, i64)> = known
        .iter()
        .zip(&page.items)
        .enumerate()
        .filter_map(|(index, (known, record))| {
            let known = known.as_ref()?;
            let at_ms = crate::store::row::millis(&known.at)?;
            let event_id = record.json()["payload"]["job"]["event_id"]
                .as_str()?
                .to_owned();
            (known.state == DeadState::Replayed)
                .then(|| Some((index, event_id, known.delivery_id.clone()?, at_ms)))?
        })
        .collect();
    let delivered: BTreeSet<usize> = state
        .history
        .logs
        .store
        .run(move |connection| {
            let mut delivered = BTreeSet::new();
            for (index, event_id, delivery_id, since_ms) in &checks {
                if query::delivered_since(connection, event_id, delivery_id, *since_ms)? {
                    delivered.insert(*index);
                }
            }
            Ok(delivered)
        })
        .await
        .map_err(store_failed)?;
    let items = page
        .items
        .iter()
        .zip(&known)
        .enumerate()
        .map(|(index, (record, known))| {
            let mut letter = dead_letter(record);
            let state = match known.as_ref().map(|known| known.state) {
                None => "open",
                Some(DeadState::Replayed) if delivered.contains(&index) => "delivered",
                Some(DeadState::Replayed) => "replayed",
                Some(DeadState::Discarded) => "discarded",
            };
            letter["state"] = state.into();
            if let Some(known) = known {
                letter["state_at"] = known.at.clone().into();
                letter["state_by"] = known.by.clone().into();
            }
            letter
        });
    Ok(Json(json!({
        "items": items.collect::<Vec<_>>(),
        "next_cursor": page.next.as_ref().map(|cursor| cursor.encode()),
    }))
    .into_response())
}
