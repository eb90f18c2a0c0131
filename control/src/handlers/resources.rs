//! `/api/v1`: create, read, list, change, enable, disable and delete sources, destinations and
//! triggers.
//!
//! Every route but the OpenAPI document needs a token ([`crate::auth`]); writes need an admin
//! one. Each kind has the same routes:
//!
//! | route | does |
//! |---|---|
//! | `GET /api/v1/{kind}` | a page of the kind, filtered (`enabled`, `name_prefix`, `id_prefix`, `limit`, `cursor`) |
//! | `POST /api/v1/{kind}` | creates one (201; 409 if the id exists; `If-None-Match: *` makes that 412) |
//! | `GET /api/v1/{kind}/{id}` | shows one, with its `ETag` |
//! | `PUT /api/v1/{kind}/{id}` | replaces one (`If-Match` optional; with `If-None-Match: *` creates it) |
//! | `PATCH /api/v1/{kind}/{id}` | merges a JSON merge patch (RFC 7396) into one |
//! | `POST /api/v1/{kind}/{id}/enable`, `/disable` | switches one on or off |
//! | `DELETE /api/v1/{kind}/{id}` | deletes one (204) |
//!
//! and `POST /api/v1/triggers/{id}/preview` and `POST /api/v1/triggers/preview` render a saved
//! or an unsaved trigger against a sample event without sending it ([`super::preview`]).
//! Views show `last_triggered_at` and `last_delivered_at` from the store; the routes of what
//! happened (events, attempts, dead letters, tests and replays) are in [`super::history`].

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_runtime::resources::ResourceSet;
use hookline_runtime::validate::Problem;
use hookline_schemas::{Resource, ResourceId, ResourceKey, ResourceKind, SourceAuth};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::kind::{self, plural};
use crate::list::{self, ListQuery};
use crate::path::Id;
use crate::precondition::Preconditions;
use crate::state::{ApiState, BodyResult};
use crate::view::{self, Secrets, etag, render};
use crate::write::Change;
use crate::{body, credentials, extract, mask};

pub(crate) async fn list(
    State(state): State<ApiState>,
    kind: ResourceKind,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = extract::query(query)?;
    let snapshot = state.store.snapshot();
    let page = list::page(of_kind(&snapshot, kind), &query)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|resource| {
            let mut view = render(
                resource,
                snapshot.record(&resource.key()),
                &state.ingest_base,
                Secrets::Masked,
            );
            annotate(&state, resource, &mut view);
            view
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_cursor": page.next_cursor })).into_response())
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    kind: ResourceKind,
    Id(id): Id,
) -> Result<Response, ApiError> {
    let key = key(kind, &id)?;
    respond(
        &state,
        &state.store.snapshot(),
        &key,
        StatusCode::OK,
        Secrets::Masked,
    )
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    kind: ResourceKind,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let mut object = body::object(&headers, body, state.max_body_bytes)?;
    body::drop_read_only(&mut object, kind)?;
    if !object.contains_key("id") {
        object.insert("id".into(), credentials::id(kind)?.into());
    }
    if kind == ResourceKind::Source {
        credentials::fill_source(&mut object)?;
    }
    let mut resource = body::resource(kind, object)?;
    let key = resource.key();
    let preconditions = Preconditions::from_headers(&headers);
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            if current.is_some() {
                return Err(ApiError::AlreadyExists {
                    kind: kind.as_str(),
                    id: key.id.to_string(),
                });
            }
            refuse(mask::restore(&mut resource, None))?;
            Ok(Change::Put(Box::new(resource)))
        })
        .await?;
    created(&state, &snapshot, &key)
}

pub(crate) async fn replace(
    State(state): State<ApiState>,
    kind: ResourceKind,
    Id(id): Id,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let key = key(kind, &id)?;
    let mut object = body::object(&headers, body, state.max_body_bytes)?;
    body::drop_read_only(&mut object, kind)?;
    same_id(
        &key,
        object.entry("id").or_insert_with(|| id.clone().into()),
    )?;
    let mut resource = body::resource(kind, object)?;
    let preconditions = Preconditions::from_headers(&headers);
    let create_only = preconditions.create_only();
    let mut new = false;
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            if current.is_none() && !create_only {
                return Err(not_found(&key));
            }
            new = current.is_none();
            refuse(mask::restore(&mut resource, current.as_ref()))?;
            // An enabled destination has no reason to be disabled any more.
            let enabled = kind::enabled(&resource);
            kind::set_enabled(&mut resource, enabled);
            Ok(Change::Put(Box::new(resource)))
        })
        .await?;
    if new {
        created(&state, &snapshot, &key)
    } else {
        respond(&state, &snapshot, &key, StatusCode::OK, Secrets::Masked)
    }
}

pub(crate) async fn patch(
    State(state): State<ApiState>,
    kind: ResourceKind,
    Id(id): Id,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let key = key(kind, &id)?;
    let mut patch = body::object(&headers, body, state.max_body_bytes)?;
    body::drop_read_only(&mut patch, kind)?;
    if let Some(sent) = patch.get("id") {
        same_id(&key, sent)?;
    }
    let preconditions = Preconditions::from_headers(&headers);
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            let current = current.ok_or_else(|| not_found(&key))?;
            // Patched over the masked view, as a client would send it back whole: the masked
            // secrets are then restored by the same rules as a PUT (a credential header never
            // follows the URL to another host).
            let mut document = view::fields(&mask::masked(current.clone()));
            body::merge_patch(&mut document, Value::Object(patch));
            let Value::Object(mut object) = document else {
                return Err(ApiError::Internal("a patched resource is not an object"));
            };
            body::drop_read_only(&mut object, kind)?;
            let mut resource = body::resource(kind, object)?;
            refuse(mask::restore(&mut resource, Some(&current)))?;
            // An enabled destination has no reason to be disabled any more.
            let enabled = kind::enabled(&resource);
            kind::set_enabled(&mut resource, enabled);
            Ok(Change::Put(Box::new(resource)))
        })
        .await?;
    respond(&state, &snapshot, &key, StatusCode::OK, Secrets::Masked)
}

pub(crate) async fn switch(
    State(state): State<ApiState>,
    kind: ResourceKind,
    Id(id): Id,
    headers: HeaderMap,
    enabled: bool,
) -> Result<Response, ApiError> {
    let key = key(kind, &id)?;
    let preconditions = Preconditions::from_headers(&headers);
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            let mut resource = current.ok_or_else(|| not_found(&key))?;
            kind::set_enabled(&mut resource, enabled);
            Ok(Change::Put(Box::new(resource)))
        })
        .await?;
    respond(&state, &snapshot, &key, StatusCode::OK, Secrets::Masked)
}

/// Pauses a destination (its jobs are held, in order, until it resumes) or resumes it.
pub(crate) async fn pause(
    State(state): State<ApiState>,
    Id(id): Id,
    headers: HeaderMap,
    paused: bool,
) -> Result<Response, ApiError> {
    let key = key(ResourceKind::Destination, &id)?;
    let preconditions = Preconditions::from_headers(&headers);
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            let Some(Resource::Destination(mut destination)) = current else {
                return Err(not_found(&key));
            };
            destination.paused = paused;
            Ok(Change::Put(Box::new(Resource::Destination(destination))))
        })
        .await?;
    respond(&state, &snapshot, &key, StatusCode::OK, Secrets::Masked)
}

/// How long the old tokens of a rotation stay valid unless asked otherwise: a day.
pub const ROTATE_GRACE_SECONDS: u64 = 86_400;
/// The longest grace a rotation may give: 30 days.
pub const ROTATE_GRACE_MAX_SECONDS: u64 = 30 * 86_400;

/// `rotate-token`'s query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateQuery {
    /// How long the current tokens stay valid; [`ROTATE_GRACE_SECONDS`] when absent, 0 ends
    /// them now.
    grace_seconds: Option<u64>,
}

/// Gives a source a new bearer token: its current tokens get an `expires_at` a grace period
/// away (or go at once with a grace of 0), tokens whose expiry passed are removed, and the new
/// one, shown this once, is accepted from now on.
pub(crate) async fn rotate_token(
    State(state): State<ApiState>,
    Id(id): Id,
    headers: HeaderMap,
    query: Result<Query<RotateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = extract::query(query)?;
    let grace = query.grace_seconds.unwrap_or(ROTATE_GRACE_SECONDS);
    if grace > ROTATE_GRACE_MAX_SECONDS {
        return Err(ApiError::InvalidQuery(format!(
            "grace_seconds: at most {ROTATE_GRACE_MAX_SECONDS} (30 days)"
        )));
    }
    let key = key(ResourceKind::Source, &id)?;
    let token = credentials::token()?;
    let now = time::OffsetDateTime::now_utc();
    let until = (grace > 0)
        .then(|| hookline_runtime::time::rfc3339(now + std::time::Duration::from_secs(grace)));
    let preconditions = Preconditions::from_headers(&headers);
    let snapshot = state
        .writes
        .change(&key, &preconditions, |current| {
            let Some(Resource::Source(mut source)) = current else {
                return Err(not_found(&key));
            };
            let mut rotated = false;
            let mut auth = Vec::with_capacity(source.auth.len() + 1);
            for entry in source.auth.drain(..) {
                match entry {
                    SourceAuth::Bearer {
                        tokens,
                        expires_at: None,
                    } => {
                        rotated = true;
                        if let Some(until) = &until {
                            auth.push(SourceAuth::Bearer {
                                tokens,
                                expires_at: Some(until.clone()),
                            });
                        }
                    }
                    SourceAuth::Bearer {
                        expires_at: Some(at),
                        ..
                    } if hookline_runtime::time::parse_rfc3339(&at).is_some_and(|at| at <= now) => {
                    }
                    other @ (SourceAuth::Bearer { .. }
                    | SourceAuth::SharedSecret { .. }
                    | SourceAuth::Github { .. }
                    | SourceAuth::Stripe { .. }
                    | SourceAuth::Standard { .. }
                    | SourceAuth::Hmac { .. }
                    | SourceAuth::Open) => auth.push(other),
                }
            }
            if !rotated {
                return Err(ApiError::invalid_field(
                    key.to_string(),
                    "auth",
                    "has no bearer token without an expiry to rotate; add one with PATCH",
                ));
            }
            auth.insert(
                0,
                SourceAuth::Bearer {
                    tokens: vec![token.clone()],
                    expires_at: None,
                },
            );
            source.auth = auth;
            Ok(Change::Put(Box::new(Resource::Source(source))))
        })
        .await?;
    let (view, tag) = shown(&state, &snapshot, &key, Secrets::Masked)?;
    let mut response = Json(json!({
        "token": token,
        "previous_tokens_expire_at": until,
        "source": view,
    }))
    .into_response();
    if let Some(tag) = tag {
        response.headers_mut().insert(header::ETAG, tag);
    }
    Ok(response)
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    kind: ResourceKind,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = key(kind, &id)?;
    let preconditions = Preconditions::from_headers(&headers);
    state
        .writes
        .change(&key, &preconditions, |current| {
            current.ok_or_else(|| not_found(&key))?;
            Ok(Change::Delete)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The key of `id` in the collection of `kind`; an id that cannot exist is not found.
fn key(kind: ResourceKind, id: &str) -> Result<ResourceKey, ApiError> {
    let id = ResourceId::parse(id).map_err(|_| ApiError::NotFound {
        kind: kind.as_str(),
        id: id.to_owned(),
    })?;
    Ok(ResourceKey { kind, id })
}

fn not_found(key: &ResourceKey) -> ApiError {
    ApiError::NotFound {
        kind: key.kind.as_str(),
        id: key.id.to_string(),
    }
}

fn same_id(key: &ResourceKey, sent: &Value) -> Result<(), ApiError> {
    if sent.as_str() == Some(key.id.as_str()) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            key.to_string(),
            "id",
            format!(
                "must be the id in the URL, {:?}; ids cannot change",
                key.id.as_str()
            ),
        ))
    }
}

fn refuse(problems: Vec<Problem>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(problems))
    }
}

/// Every resource of `kind`, in id order.
fn of_kind(set: &ResourceSet, kind: ResourceKind) -> Vec<Resource> {
    match kind {
        ResourceKind::Source => set
            .sources
            .values()
            .map(|source| Resource::Source(source.as_ref().clone()))
            .collect(),
        ResourceKind::Destination => set
            .destinations
            .values()
            .map(|destination| Resource::Destination(destination.as_ref().clone()))
            .collect(),
        ResourceKind::Trigger => set
            .triggers
            .values()
            .map(|trigger| Resource::Trigger(trigger.as_ref().clone()))
            .collect(),
    }
}

/// The answer showing `key` as `snapshot` has it, with its `ETag`.
fn respond(
    state: &ApiState,
    snapshot: &ResourceSet,
    key: &ResourceKey,
    status: StatusCode,
    secrets: Secrets,
) -> Result<Response, ApiError> {
    let (view, tag) = shown(state, snapshot, key, secrets)?;
    let mut response = (status, Json(view)).into_response();
    if let Some(tag) = tag {
        response.headers_mut().insert(header::ETAG, tag);
    }
    Ok(response)
}

/// How the API shows `key` as `snapshot` has it, and its `ETag`.
fn shown(
    state: &ApiState,
    snapshot: &ResourceSet,
    key: &ResourceKey,
    secrets: Secrets,
) -> Result<(Value, Option<HeaderValue>), ApiError> {
    let resource = snapshot.get(key).ok_or_else(|| not_found(key))?;
    let record = snapshot.record(key);
    let mut view = render(&resource, record, &state.ingest_base, secrets);
    annotate(state, &resource, &mut view);
    let tag = HeaderValue::from_str(&etag(&resource, record)).ok();
    Ok((view, tag))
}

/// Adds when the resource was last triggered and delivered to, as this instance's store saw it,
/// and for a destination the jobs it has on hold.
fn annotate(state: &ApiState, resource: &Resource, view: &mut Value) {
    let last = state
        .history
        .logs
        .activities
        .get(resource.key().kind.as_str(), kind::id(resource).as_str());
    view::annotate_activity(view, last);
    if let Resource::Destination(destination) = resource {
        view::annotate_held(view, state.history.held.of(&destination.id));
    }
}

/// The answer to a create: 201, the resource with its secrets shown this once, and its
/// `Location`.
fn created(
    state: &ApiState,
    snapshot: &ResourceSet,
    key: &ResourceKey,
) -> Result<Response, ApiError> {
    let mut response = respond(state, snapshot, key, StatusCode::CREATED, Secrets::Shown)?;
    let location = format!("/api/v1/{}/{}", plural(key.kind), key.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
