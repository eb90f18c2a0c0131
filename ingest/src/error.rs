//! Every answer ingest gives besides 202, with a stable error code clients can match on. The body
//! is always `{"error": {"code": "...", "message": "..."}}` and never reveals internals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source has this id.
    #[error("no inbound webhook has this id")]
    SourceNotFound,
    /// The source exists but is disabled.
    #[error("this inbound webhook is disabled")]
    SourceDisabled,
    /// Missing or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// No route has this path.
    #[error("no such endpoint; send events with POST /inbound-webhooks/{{source_id}}")]
    NotFound,
    /// The body is compressed with a coding ingest does not decode.
    #[error("content encoding {0:?} is not supported; send gzip, zstd or an uncompressed body")]
    UnsupportedEncoding(String),
    /// The body is not valid in the coding its `Content-Encoding` names.
    #[error("{0}")]
    InvalidEncoding(String),
    /// The content type is not JSON.
    #[error("content type {0:?} is not supported; send application/json")]
    UnsupportedMediaType(String),
    /// The body is over the limit.
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The body could not be read.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// The body is not JSON; the message says where it broke.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// Any method but POST.
    #[error("only POST is allowed")]
    MethodNotAllowed,
    /// The client's address is not in the source's allow-list.
    #[error("this client address may not post to this inbound webhook")]
    ClientNotAllowed,
    /// Over the source's or its organisation's rate limit.
    #[error("rate limit of the {scope} exceeded; retry in {} s", retry_after_seconds(*.retry_after))]
    RateLimited {
        /// `source` or `organisation`.
        scope: &'static str,
        /// How long until a request would pass.
        retry_after: std::time::Duration,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// Too many requests in progress; shed before memory grows.
    #[error("ingest is overloaded; retry shortly")]
    Overloaded,
    /// Resources are still loading after a start.
    #[error("ingest is starting; retry shortly")]
    NotReady,
    /// The broker did not acknowledge the event in time. It was not accepted, though it may still
    /// have been written: a retry then yields a second event, never a lost one.
    #[error("the event could not be stored in time; retry later")]
    BrokerUnavailable,
}

impl IngestError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SourceNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidEncoding(_) => StatusCode::BAD_REQUEST,
            Self::SourceDisabled => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable | Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ClientNotAllowed => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotReady | Self::BrokerUnavailable | Self::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable error code (also the `reason` label of the requests metric).
    pub fn code(&self) -> &'static str {
        match self {
            Self::SourceNotFound => "source_not_found",
            Self::NotFound => "not_found",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::InvalidEncoding(_) => "invalid_encoding",
            Self::SourceDisabled => "source_disabled",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::InvalidJson(_) => "invalid_json",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::BodyTimeout => "body_timeout",
            Self::Overloaded => "overloaded",
            Self::NotReady => "not_ready",
            Self::BrokerUnavailable => "broker_unavailable",
        }
    }
}

/// Whole seconds to wait, rounded up so a client that waits that long is not refused again.
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Self::NotReady | Self::BrokerUnavailable | Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, retry_after_seconds(retry_after).into());
            }
            Self::ClientNotAllowed
            | Self::BodyTimeout
            | Self::SourceNotFound
            | Self::NotFound
            | Self::UnsupportedEncoding(_)
            | Self::InvalidEncoding(_)
            | Self::SourceDisabled
            | Self::Unauthorized
            | Self::UnsupportedMediaType(_)
            | Self::PayloadTooLarge(_)
            | Self::BodyUnreadable
            | Self::InvalidJson(_) => {}
        }
        response
    }
}
