//! Who may call the API: the middleware in front of every route but the OpenAPI document. Admin
//! tokens read and write, read-only tokens only read ([`crate::tokens`] tells them apart). A
//! request without a valid token gets 401 before anything looks at the resources.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::handlers::preview;
use crate::state::ApiState;
use crate::tokens::{Access, Caller, fingerprint};

/// Methods that only read.
fn reads_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware of every API route: authenticates (and tells handlers who calls, [`Caller`]), refuses writes of read-only tokens (previews
/// write nothing, so they may), and answers
/// 503 until the resources are loaded (so nobody reads or writes against a partial view).
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    // The console's requests carry its session's caller (a request from the network has no
    // extensions but those the server gives it).
    let caller = match request.extensions().get::<Caller>() {
        Some(caller) => caller.clone(),
        None => match state.tokens.check(request.headers()) {
            Some(access) => Caller {
                access,
                by: fingerprint(request.headers()),
            },
            None => return ApiError::Unauthorized.into_response(),
        },
    };
    let access = caller.access;
    request.extensions_mut().insert(caller);
    // A preview is a POST that writes nothing, so dashboards may preview too.
    // Only its POST: the unsaved preview's route also reads and writes a trigger named `preview`.
    let previews = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|route| preview::is_preview(route.as_str()));
    if access == Access::ReadOnly && !reads_only(request.method()) && !previews {
        return ApiError::ReadOnly.into_response();
    }
    if !state.store.is_ready() {
        return ApiError::NotReady.into_response();
    }
    next.run(request).await
}
