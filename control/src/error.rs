//! Why a request failed, and the one place that turns it into an HTTP answer.
//!
//! Every error body is `{"error": {"code": "...", "message": "..."}}`, with `problems` added
//! when a resource was refused; the codes are stable. Causes the client cannot act on (the
//! broker's own errors) are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_runtime::validate::Problem;
use serde_json::json;
use tracing::{error, warn};

use crate::store::StoreError;

/// Why control could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kafka or the listener failed.
    #[error(transparent)]
    Runtime(#[from] hookline_runtime::Error),
    /// The store of what happened failed; it must not silently stop filling.
    #[error("the control store failed")]
    Store(#[from] StoreError),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid token.
    #[error("missing or invalid token; send Authorization: Bearer <token>")]
    Unauthorized,
    /// A read-only token tried to write.
    #[error("this token may only read")]
    ReadOnly,
    /// No such resource.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `source`, `destination` or `trigger`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// No such route.
    #[error("no such route; the API is under /api/v1")]
    NoRoute,
    /// The route exists, the method does not.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The body is not a JSON object.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A path segment does not decode (invalid percent-encoding or UTF-8).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A query parameter is unknown or malformed.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The body is not JSON.
    #[error("send the body as Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is over the limit.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The resource is invalid; nothing was written.
    #[error("the resource is invalid; nothing was written")]
    Invalid(Vec<Problem>),
    /// A trigger's condition or template does not compile; nothing was written or rendered.
    #[error("the trigger does not compile")]
    DoesNotCompile {
        /// `trigger/<id>`.
        resource: String,
        /// The field, its line and column, and what is wrong.
        #[source]
        error: hookline_processor::CompileError,
    },
    /// The write would break references between resources; nothing was written.
    #[error("the change would break references between resources; nothing was written")]
    Conflict(Vec<Problem>),
    /// A resource with this id exists already.
    #[error("{kind} {id:?} exists already; change it with PUT or PATCH")]
    AlreadyExists {
        /// `source`, `destination` or `trigger`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// `If-Match` or `If-None-Match` did not hold: someone else changed the resource.
    #[error(
        "the resource changed since you read it (If-Match) or exists (If-None-Match); read it again"
    )]
    PreconditionFailed,
    /// The resources are still being read at start-up.
    #[error("resources are still loading; retry shortly")]
    NotReady,
    /// A stored event's payload was larger than the store keeps, and the events topic no
    /// longer holds it.
    #[error("{0}")]
    PayloadGone(String),
    /// The store of what happened is still reading its topics.
    #[error("the event log is still loading; retry shortly")]
    StoreNotReady,
    /// The broker did not acknowledge the write.
    #[error(
        "the broker did not acknowledge the write in time; it may or may not have been written, read the resource before you retry"
    )]
    Unavailable(#[source] Option<hookline_runtime::Error>),
    /// The write was acknowledged but this process has not read it back in time.
    #[error("the change was written but is not visible here yet; read it again shortly")]
    NotVisible,
    /// The store's database (PostgreSQL) does not answer.
    #[error("the history store's database does not answer; retry shortly")]
    StoreUnavailable,
    /// Something this API cannot explain to the client; logged.
    #[error("internal error")]
    Internal(&'static str),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::ReadOnly => (StatusCode::FORBIDDEN, "read_only"),
            Self::NotFound { .. } | Self::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Self::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            Self::PayloadGone(_) => (StatusCode::GONE, "payload_gone"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Invalid(_) | Self::DoesNotCompile { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            Self::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Self::NotReady | Self::StoreNotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
            Self::NotVisible => (StatusCode::SERVICE_UNAVAILABLE, "not_visible_yet"),
            Self::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A single problem with one field of the resource being written.
    pub fn invalid_field(
        resource: String,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid(vec![Problem {
            resource,
            field: field.into(),
            message: message.into(),
        }])
    }
}

/// The JSON of a store failure: logged, and a 500 without internals; a 503 when the store's
/// database (PostgreSQL) does not answer, which passes.
pub fn store_failed(error: StoreError) -> ApiError {
    if error.is_transient() {
        warn!(%error, "Control store query failed: its database does not answer.");
        return ApiError::StoreUnavailable;
    }
    error!(%error, "Control store query failed.");
    ApiError::Internal("the store failed")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Unavailable(Some(cause)) = &self {
            warn!(error = %cause, "Resource write not acknowledged.");
        }
        if let Self::Internal(what) = &self {
            error!(what, "Control request failed.");
        }
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let Self::Invalid(problems) | Self::Conflict(problems) = &self {
            error["problems"] = problems
                .iter()
                .map(|p| json!({ "resource": p.resource, "field": p.field, "message": p.message }))
                .collect();
        }
        if let Self::DoesNotCompile {
            resource,
            error: cause,
        } = &self
        {
            let (line, column) = cause.position.unzip();
            error["problems"] = json!([{
                "resource": resource,
                "field": cause.field,
                "message": format!("does not compile: {}", cause.reason),
                "line": line,
                "column": column,
            }]);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hookline\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
