//! `POST /inbound-webhooks/{source_id}`: check, write to Kafka, answer 202 once acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_runtime::resources::ResourceStore;
use hookline_schemas::event::{
    HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_INBOUND_PREFIX, HEADER_RECEIVED_AT,
    HEADER_SCHEMA_VERSION, HEADER_SOURCE,
};
use hookline_schemas::{ResourceId, SCHEMA_VERSION, Source};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;
use tracing::{debug, warn};

use crate::auth;
use crate::error::IngestError;
use crate::metrics::Metrics;

/// What the endpoint needs.
pub struct AppState {
    /// Sources, live.
    pub store: ResourceStore,
    /// The idempotent producer.
    pub producer: FutureProducer,
    /// The events topic.
    pub topic: String,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Longest wait for the broker.
    pub produce_timeout: Duration,
    /// Counters.
    pub metrics: Metrics,
}

/// The answer to an accepted event.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// The event id.
    pub id: String,
}

/// Answers any method but POST.
pub async fn method_not_allowed() -> IngestError {
    IngestError::MethodNotAllowed
}

/// Receives one event.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = accept(&state, &source_id, &headers, body).await;
    let (code, reason) = match &result {
        Ok(_) => (StatusCode::ACCEPTED, "accepted"),
        Err(error) => (error.status(), error.code()),
    };
    let code = code.as_str();
    state
        .metrics
        .requests
        .with_label_values(&[code, reason])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[code])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(error) => {
            debug!(source = %source_id, reason, "Inbound request refused.");
            error.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    source_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, IngestError> {
    if !state.store.is_ready() {
        return Err(IngestError::NotReady);
    }
    let source = ResourceId::parse(source_id)
        .ok()
        .and_then(|id| state.store.snapshot().sources.get(&id).cloned())
        .ok_or(IngestError::SourceNotFound)?;
    if !source.enabled {
        return Err(IngestError::SourceDisabled);
    }
    if !auth::authorized(&source.auth, headers) {
        return Err(IngestError::Unauthorized);
    }
    let content_type = content_type(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            IngestError::PayloadTooLarge(state.max_body_bytes)
        } else {
            IngestError::BodyUnreadable
        }
    })?;
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        return Err(IngestError::InvalidJson(error.to_string()));
    }
    state.metrics.body_size.observe(body.len() as f64);

    let event_id = uuid::Uuid::now_v7().to_string();
    let received_at = hookline_runtime::time::now_rfc3339();
    let record_headers = event_headers(&source, &event_id, &received_at, &content_type, headers);
    let record = FutureRecord::to(&state.topic)
        .key(source.id.as_str())
        .payload(body.as_ref())
        .headers(record_headers);
    // librdkafka gives up after `message.timeout.ms` (the produce timeout) and says so; the outer
    // timeout only guards against that answer never coming.
    let sent = tokio::time::timeout(
        state.produce_timeout + Duration::from_secs(1),
        state
            .producer
            .send(record, Timeout::After(state.produce_timeout)),
    )
    .await;
    match sent {
        Ok(Ok(_)) => Ok(Accepted { id: event_id }),
        Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))) => {
            Err(IngestError::PayloadTooLarge(state.max_body_bytes))
        }
        Ok(Err((error, _))) => {
            warn!(%error, source = %source.id, "Event not acknowledged by the broker; answered 503.");
            Err(IngestError::BrokerUnavailable)
        }
        Err(_elapsed) => {
            warn!(source = %source.id, "Broker did not acknowledge in time; answered 503.");
            Err(IngestError::BrokerUnavailable)
        }
    }
}

/// The request's media type: JSON (`application/json` or `application/*+json`), or absent,
/// which is taken as JSON since the body is checked anyway.
fn content_type(headers: &HeaderMap) -> Result<String, IngestError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok("application/json".to_owned());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(text.to_owned())
    } else {
        Err(IngestError::UnsupportedMediaType(text.to_owned()))
    }
}

fn event_headers(
    source: &Source,
    event_id: &str,
    received_at: &str,
    content_type: &str,
    inbound: &HeaderMap,
) -> OwnedHeaders {
    let version = SCHEMA_VERSION.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(5 + source.keep_headers.len())
        .insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(event_id),
        })
        .insert(Header {
            key: HEADER_SOURCE,
            value: Some(source.id.as_str()),
        })
        .insert(Header {
            key: HEADER_RECEIVED_AT,
            value: Some(received_at),
        })
        .insert(Header {
            key: HEADER_CONTENT_TYPE,
            value: Some(content_type),
        })
        .insert(Header {
            key: HEADER_SCHEMA_VERSION,
            value: Some(version.as_str()),
        });
    for name in &source.keep_headers {
        let name = name.to_ascii_lowercase();
        for value in inbound.get_all(name.as_str()) {
            let key = format!("{HEADER_INBOUND_PREFIX}{name}");
            headers = headers.insert(Header {
                key: &key,
                value: Some(value.as_bytes()),
            });
        }
    }
    headers
}
