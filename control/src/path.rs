//! The `{id}` of a route. axum's own `Path` answers a segment that does not decode (`%ff`) in
//! plain text; this one answers in the API's JSON, like every other refusal.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The decoded `{id}` segment of the route.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Self(id))
            .map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))
    }
}
