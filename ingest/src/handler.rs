//! `POST /inbound-webhooks/{source_id}`: check, write to Kafka, answer 202 once acknowledged.
//!
//! The checks run cheapest first and never parse before authenticating: source (404), disabled
//! (403), client address (403), content type and encoding (415), declared length (413), body
//! size and arrival (413, 408), decoding a compressed body within the limit (413, 400),
//! credentials on the decoded bytes (401), rate limits (429), JSON (400). Only then is the event
//! written, and only the broker's acknowledgement earns a 202.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_runtime::order::OrderKey;
use hookline_runtime::resources::ResourceStore;
use hookline_schemas::event::{
    HEADER_CLIENT, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_INBOUND_PREFIX, HEADER_RECEIVED_AT,
    HEADER_SCHEMA_VERSION, HEADER_SOURCE,
};
use hookline_schemas::{RejectedRequest, ResourceId, SCHEMA_VERSION, Source};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;
use tracing::{debug, error, warn};

use crate::auth::Verifier;
use crate::encoding::Coding;
use crate::error::IngestError;
use crate::idempotency::Idempotency;
use crate::limits::{RateLimits, Scope};
use crate::metrics::Metrics;
use crate::rejected::{BODY_PREVIEW_BYTES, RejectedLog};

/// What the endpoint needs.
pub struct AppState {
    /// Sources, live.
    pub store: ResourceStore,
    /// The idempotent producer.
    pub producer: FutureProducer,
    /// The events topic.
    pub topic: String,
    /// Largest accepted body unless a source sets its own.
    pub max_body_bytes: usize,
    /// Longest wait for the broker.
    pub produce_timeout: Duration,
    /// Longest wait for a body.
    pub body_timeout: Duration,
    /// Rate limiters.
    pub limits: RateLimits,
    /// Recently seen idempotency keys.
    pub idempotency: Idempotency,
    /// Where refusals are recorded.
    pub rejected: RejectedLog,
    /// Compiled credentials per source, rebuilt when a source changes.
    pub verifiers: RwLock<HashMap<ResourceId, CachedVerifier>>,
    /// Counters.
    pub metrics: Metrics,
}

/// A source's compiled credentials and the version of the source they were compiled from.
pub type CachedVerifier = (Arc<Source>, Arc<Verifier>);

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

/// Answers any path but the inbound endpoint's, in the same JSON as every other refusal.
pub async fn not_found() -> IngestError {
    IngestError::NotFound
}

/// Receives one event.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    source_id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // An id that does not decode (`%ff`) names no source: it is refused as unknown below, in
    // JSON like every refusal, rather than with axum's plain-text rejection.
    let source_id = match source_id {
        Ok(Path(id)) => id,
        Err(_) => raw_source_id(request.uri().path()),
    };
    let started = Instant::now();
    state.metrics.in_flight.inc();
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let mut preview = None;
    let result = accept(
        &state,
        &source_id,
        &parts.headers,
        client,
        body,
        &mut preview,
    )
    .await;
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
    state.metrics.in_flight.dec();
    match result {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(error) => {
            let request_id = parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            debug!(source = %source_id, reason, request_id = request_id.as_deref().unwrap_or_default(), "Inbound request refused.");
            state.rejected.record(&RejectedRequest {
                schema_version: SCHEMA_VERSION,
                at: hookline_runtime::time::now_rfc3339(),
                source: hookline_runtime::truncate::truncate(&source_id, 128),
                client: client.map(|ip| ip.to_string()),
                request_id,
                status: error.status().as_u16(),
                code: error.code().to_owned(),
                message: error.to_string(),
                body_preview: preview.as_deref().map(body_preview),
            });
            error.into_response()
        }
    }
}

/// The start of a refused body, as text, for the refusal log.
fn body_preview(body: &[u8]) -> String {
    hookline_runtime::truncate::truncate(
        &String::from_utf8_lossy(&body[..body.len().min(BODY_PREVIEW_BYTES + 4)]),
        BODY_PREVIEW_BYTES,
    )
}

/// The still percent-encoded id segment of an inbound path.
fn raw_source_id(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

async fn accept(
    state: &AppState,
    source_id: &str,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    body: Body,
    preview: &mut Option<Bytes>,
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
    if !client_allowed(&source, client) {
        return Err(IngestError::ClientNotAllowed);
    }
    let content_type = content_type(headers)?;
    let coding = Coding::of(headers)?;
    let limit = source.max_body_bytes.unwrap_or(state.max_body_bytes);
    if declared_length(headers).is_some_and(|length| length > limit as u64) {
        discard_in_background(body);
        return Err(IngestError::PayloadTooLarge(limit));
    }
    let body = read_body(body, limit, state.body_timeout).await?;
    // Signatures cover the event as the sender made it, before any transfer compression.
    let body = coding.decode(body, limit)?;
    // Kept (a reference count, not a copy) for the refusal log; made text only if refused.
    *preview = Some(body.clone());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if !verifier(state, &source).is_some_and(|v| v.verify(headers, &body, now)) {
        return Err(IngestError::Unauthorized);
    }
    if let Err((scope, retry_after)) = state.limits.check(&source) {
        state
            .metrics
            .rate_limited
            .with_label_values(&[scope.as_str()])
            .inc();
        let scope = match scope {
            Scope::Source => "source",
            Scope::Org => "organisation",
        };
        return Err(IngestError::RateLimited { scope, retry_after });
    }
    // The payload is parsed only when the source's order key is a value in it.
    let order = OrderKey::of(&source);
    let parsed = if order.reads_payload() {
        let value = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|error| IngestError::InvalidJson(error.to_string()))?;
        Some(value)
    } else {
        crate::json::check(&body).map_err(|error| IngestError::InvalidJson(error.to_string()))?;
        None
    };
    let idempotency_key = Idempotency::key(&source, headers);
    if let Some(first) = idempotency_key
        .as_ref()
        .and_then(|key| state.idempotency.get(key))
    {
        state.metrics.idempotent_replays.inc();
        return Ok(Accepted { id: first });
    }
    state.metrics.body_size.observe(body.len() as f64);

    let event_id = uuid::Uuid::now_v7().to_string();
    let key = order.event_key(source.id.as_str(), &event_id, parsed.as_ref());
    let event = Inbound {
        id: &event_id,
        key: &key,
        content_type: &content_type,
        client,
    };
    produce(state, &source, &event, headers, &body).await?;
    if let Some(key) = idempotency_key {
        state.idempotency.remember(key, event_id.clone());
    }
    Ok(Accepted { id: event_id })
}

/// What ingest knows of an accepted event besides its body and headers.
struct Inbound<'a> {
    id: &'a str,
    /// The record key: the event's order key ([`OrderKey`]).
    key: &'a str,
    content_type: &'a str,
    client: Option<IpAddr>,
}

async fn produce(
    state: &AppState,
    source: &Source,
    event: &Inbound<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), IngestError> {
    let received_at = hookline_runtime::time::now_rfc3339();
    let record_headers = event_headers(source, event, &received_at, headers);
    let record = FutureRecord::to(&state.topic)
        .key(event.key)
        .payload(body)
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
        Ok(Ok(_)) => Ok(()),
        Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))) => {
            Err(IngestError::PayloadTooLarge(body.len()))
        }
        Ok(Err((error, _))) => {
            state.metrics.produce_errors.inc();
            warn!(%error, source = %source.id, "Event not acknowledged by the broker; answered 503.");
            Err(IngestError::BrokerUnavailable)
        }
        Err(_elapsed) => {
            state.metrics.produce_errors.inc();
            warn!(source = %source.id, "Broker did not acknowledge in time; answered 503.");
            Err(IngestError::BrokerUnavailable)
        }
    }
}

/// How much of a refused body is read and thrown away after the answer, and for how long.
const DISCARD_BYTES: usize = 16 * 1024 * 1024;
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// Reads and throws away what a refused sender is still sending, within bounds, while the
/// answer goes out. A client that writes its whole body before reading (most do, unless they
/// send `Expect: 100-continue`, which then gets no body at all) would otherwise meet a reset
/// connection instead of the 413: nginx's "lingering close".
fn discard_in_background(body: Body) {
    tokio::spawn(async move {
        let mut body = body;
        let mut read = 0;
        let _ = tokio::time::timeout(DISCARD_TIME, async {
            while read < DISCARD_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                    Some(Err(_)) | None => break,
                }
            }
        })
        .await;
    });
}

/// The `Content-Length` a request declares, if it declares one that parses.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads at most `limit` bytes of body within `deadline`.
async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Bytes, IngestError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            Err(IngestError::PayloadTooLarge(limit))
        }
        Ok(Err(_)) => Err(IngestError::BodyUnreadable),
        Err(_elapsed) => Err(IngestError::BodyTimeout),
    }
}

/// The source's compiled credentials, compiled again only when the source changed.
fn verifier(state: &AppState, source: &Arc<Source>) -> Option<Arc<Verifier>> {
    let cached = state
        .verifiers
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&source.id)
        .filter(|(seen, _)| Arc::ptr_eq(seen, source))
        .map(|(_, verifier)| verifier.clone());
    if cached.is_some() {
        return cached;
    }
    match Verifier::new(&source.auth) {
        Ok(verifier) => {
            let verifier = Arc::new(verifier);
            state
                .verifiers
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(source.id.clone(), (source.clone(), verifier.clone()));
            Some(verifier)
        }
        Err(reason) => {
            // Validation refuses such sources; one written around it refuses every request.
            error!(source = %source.id, %reason, "Source credentials are invalid; refusing its requests.");
            None
        }
    }
}

/// Whether the client may post: any client when the source lists no ranges.
fn client_allowed(source: &Source, client: Option<IpAddr>) -> bool {
    if source.allowed_cidrs.is_empty() {
        return true;
    }
    let Some(client) = client else {
        return false;
    };
    // An IPv4 client reached over an IPv6 socket arrives as ::ffff:a.b.c.d.
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        IpAddr::V4(_) => client,
    };
    source.allowed_cidrs.iter().any(|range| {
        range
            .parse::<ipnet::IpNet>()
            .map(|net| net.contains(&client))
            .or_else(|_| range.parse::<IpAddr>().map(|ip| ip == client))
            .unwrap_or(false)
    })
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
    event: &Inbound<'_>,
    received_at: &str,
    inbound: &HeaderMap,
) -> OwnedHeaders {
    let version = SCHEMA_VERSION.to_string();
    let content_type = event.content_type;
    let mut headers = OwnedHeaders::new_with_capacity(6 + source.keep_headers.len())
        .insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(event.id),
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
    if let Some(client) = event.client {
        headers = headers.insert(Header {
            key: HEADER_CLIENT,
            value: Some(client.to_string().as_str()),
        });
    }
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

#[cfg(test)]
mod tests {
    use hookline_schemas::SourceAuth;

    use super::*;

    #[test]
    fn clients_are_checked_against_the_source_ranges() {
        let mut source = Source::new(ResourceId::parse("s").unwrap(), vec![SourceAuth::Open]);
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert!(
            client_allowed(&source, ip("203.0.113.9")),
            "no ranges: anyone"
        );
        source.allowed_cidrs = vec![
            "192.30.252.0/22".into(),
            "2001:db8::/32".into(),
            "198.51.100.7".into(),
        ];
        assert!(client_allowed(&source, ip("192.30.253.1")));
        assert!(
            client_allowed(&source, ip("::ffff:192.30.252.10")),
            "IPv4-mapped"
        );
        assert!(client_allowed(&source, ip("2001:db8::1")));
        assert!(
            client_allowed(&source, ip("198.51.100.7")),
            "a single address"
        );
        assert!(!client_allowed(&source, ip("192.30.250.1")));
        assert!(!client_allowed(&source, ip("203.0.113.9")));
        assert!(
            !client_allowed(&source, None),
            "unknown client with ranges set"
        );
    }
}
