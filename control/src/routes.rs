//! Every route of the API in one place, and the layers around them: the token check
//! ([`crate::auth`]) in front of every route but the OpenAPI document, the JSON answers of unknown
//! routes and methods, the body limit, the request metrics and the `x-request-id` of every answer.
//!
//! The handlers are grouped by what they serve: the resources, what happened (events, attempts,
//! dead letters), statistics, replays, test sends, previews and apply.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use hookline_schemas::ResourceKind;
use prometheus::Registry;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::console::{self, Console};
use crate::error::ApiError;
use crate::handlers::{apply, history, preview, replay, resources, stats, test_send};
use crate::kind::{KINDS, plural};
use crate::path::Id;
use crate::state::ApiState;
use crate::{auth, metrics, openapi};

/// Every route control serves: the API, and the console under `/ui/`, which calls the API's own
/// router for everything it shows and changes (the overview also reads `registry`, this
/// process's metrics).
pub fn app(state: ApiState, registry: &Registry) -> Router {
    let tokens = state.tokens.clone();
    let max_body_bytes = state.max_body_bytes;
    let api = router(state);
    console::router(Console::new(
        api.clone(),
        max_body_bytes,
        tokens,
        registry.clone(),
    ))
    .fallback_service(api)
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    let mut api = Router::new();
    for kind in KINDS {
        let collection = format!("/api/v1/{}", plural(kind));
        api = api
            .route(
                &collection,
                get(move |state, query| resources::list(state, kind, query)).post(
                    move |state, headers, body| resources::create(state, kind, headers, body),
                ),
            )
            .route(
                &format!("{collection}/{{id}}"),
                get(move |state, id| resources::show(state, kind, id))
                    .put(move |state, id, headers, body| {
                        resources::replace(state, kind, id, headers, body)
                    })
                    .patch(move |state, id, headers, body| {
                        resources::patch(state, kind, id, headers, body)
                    })
                    .delete(move |state, id, headers| resources::delete(state, kind, id, headers)),
            )
            .route(
                &format!("{collection}/{{id}}/enable"),
                post(move |state, id, headers| resources::switch(state, kind, id, headers, true)),
            )
            .route(
                &format!("{collection}/{{id}}/disable"),
                post(move |state, id, headers| resources::switch(state, kind, id, headers, false)),
            );
    }
    api = api
        .route(
            "/api/v1/destinations/{id}/pause",
            post(|state, id, headers| resources::pause(state, id, headers, true)),
        )
        .route(
            "/api/v1/destinations/{id}/resume",
            post(|state, id, headers| resources::pause(state, id, headers, false)),
        )
        .route(
            "/api/v1/sources/{id}/rotate-token",
            post(resources::rotate_token),
        )
        .route(apply::PATH, post(apply::apply));
    api = api.route(preview::SAVED, post(preview::saved)).route(
        preview::UNSAVED,
        // A trigger may be called `preview`: the other methods reach it as they would
        // through `/api/v1/triggers/{id}`, which this static route shadows.
        post(preview::unsaved)
            .get(|state| resources::show(state, ResourceKind::Trigger, shadowed()))
            .put(|state, headers, body| {
                resources::replace(state, ResourceKind::Trigger, shadowed(), headers, body)
            })
            .patch(|state, headers, body| {
                resources::patch(state, ResourceKind::Trigger, shadowed(), headers, body)
            })
            .delete(|state, headers| {
                resources::delete(state, ResourceKind::Trigger, shadowed(), headers)
            }),
    );
    api = api.merge(logs());
    let limit = state.max_body_bytes;
    api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ))
    .route(openapi::PATH, get(openapi::serve))
    .fallback(|| async { ApiError::NoRoute })
    .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
    .layer(DefaultBodyLimit::max(limit))
    // Outermost, so refused and unrouted requests are counted too.
    .layer(middleware::from_fn_with_state(
        state.metrics.clone(),
        metrics::track,
    ))
    // Every answer carries an `x-request-id`: the client's own, or a new one.
    .layer(PropagateRequestIdLayer::x_request_id())
    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    .with_state(state)
}

/// The log routes (behind the same authentication as the rest of the API).
fn logs() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/events", get(history::search_events))
        .route("/api/v1/events/{id}", get(history::event))
        .route("/api/v1/events/replay", post(replay::events))
        .route("/api/v1/sources/{id}/events", get(history::source_events))
        .route("/api/v1/destinations/{id}/attempts", get(history::attempts))
        .route("/api/v1/destinations/{id}/test", post(test_send::send))
        .route("/api/v1/dead-letters", get(history::dead_letters))
        .route("/api/v1/dead-letters/replay", post(replay::dead_letters))
        .route("/api/v1/dead-letters/discard", post(replay::discard))
        .route("/api/v1/stats/destinations", get(stats::destinations))
        .route("/api/v1/stats/sources", get(stats::sources))
}

/// The id `/api/v1/triggers/preview` names when it is not a preview.
fn shadowed() -> Id {
    Id(preview::UNSAVED_ID.to_owned())
}

#[cfg(test)]
mod tests;
