//! `POST /api/v1/destinations/{id}/test`: a sample (or given) webhook through the real path.
//!
//! The job goes to the deliveries topic like any other, so the dispatcher signs it, applies the
//! destination's headers, limits, SSRF guard and retry policy, and records the attempt. The
//! answer waits (`--control-test-timeout-ms`) until this instance's store read that attempt. A
//! failed test is retried like any delivery; its later attempts appear in the destination's log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hookline_runtime::validate::Problem;
use hookline_schemas::{DeliveryJob, Destination, ResourceId, SCHEMA_VERSION};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, store_failed};
use crate::path::Id;
use crate::state::ApiState;
use crate::store::query;

/// The source and trigger id test jobs carry: no such resource exists, so the logs can tell
/// test sends apart.
pub const TEST_ID: &str = "hookline-test";

/// What a test may say; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The JSON body to send; a sample when absent.
    pub body: Option<Value>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Sends a test webhook and answers with its attempt.
pub async fn send(
    State(state): State<ApiState>,
    Id(id): Id,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let destination = ResourceId::parse(&id)
        .ok()
        .and_then(|id| state.store.snapshot().destinations.get(&id).cloned())
        .ok_or_else(|| ApiError::NotFound {
            kind: "destination",
            id: id.clone(),
        })?;
    if !destination.enabled {
        return Err(ApiError::Conflict(vec![Problem {
            resource: format!("destination/{id}"),
            field: "enabled".into(),
            message: "the destination is disabled; enable it before testing it".into(),
        }]));
    }
    let request = request(&headers, body, state.max_body_bytes)?;
    let job = job(
        &destination,
        request,
        &hookline_runtime::time::now_rfc3339(),
    );
    state
        .history
        .sender
        .job(&job)
        .await
        .map_err(|error| ApiError::Unavailable(Some(error)))?;
    let (event_id, delivery_id) = (job.event_id.clone(), job.delivery_id.clone());
    let attempt = state
        .history
        .logs
        .wait_for(state.history.test_timeout, move |connection| {
            query::latest_attempt(connection, &event_id, &delivery_id)
        })
        .await
        .map_err(store_failed)?;
    let (status, attempt) = match attempt {
        Some(attempt) => (StatusCode::OK, attempt.json()),
        // Still on its way: the delivery id finds it later in the destination's attempts.
        None => (StatusCode::ACCEPTED, Value::Null),
    };
    Ok((
        status,
        Json(json!({
            "delivery_id": job.delivery_id,
            "event_id": job.event_id,
            "request": request_view(&job),
            "attempt": attempt,
        })),
    )
        .into_response())
}

/// The request a test job makes, as any token may read it: the URL's credential and the values
/// of credential headers masked, as a destination's view masks them.
fn request_view(job: &DeliveryJob) -> Value {
    let headers: serde_json::Map<String, Value> = job
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), crate::mask::header_value(name, value).into()))
        .collect();
    json!({
        "method": job.method,
        "url": crate::mask::mask_url(&job.url),
        "headers": headers,
        "body": job.body,
    })
}

/// The body of a test request: empty, or a [`TestRequest`] as JSON.
fn request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<TestRequest, ApiError> {
    if body
        .as_ref()
        .is_ok_and(|bytes| bytes.iter().all(u8::is_ascii_whitespace))
    {
        return Ok(TestRequest::default());
    }
    let object = crate::body::object(headers, body, limit)?;
    serde_json::from_value(Value::Object(object))
        .map_err(|error| ApiError::InvalidJson(error.to_string()))
}

/// The job of a test send to `destination`, made at `now`.
pub fn job(destination: &Destination, request: TestRequest, now: &str) -> DeliveryJob {
    let event_id = uuid::Uuid::now_v7().to_string();
    let body = request.body.unwrap_or_else(|| {
        json!({
            "type": "hookline.test",
            "message": "A test webhook from Hookline.",
            "destination": destination.id,
            "sent_at": now,
        })
    });
    let mut headers = request.headers;
    headers
        .entry("content-type".to_owned())
        .or_insert_with(|| "application/json".to_owned());
    let test = ResourceId::parse(TEST_ID).unwrap_or_else(|_| destination.id.clone());
    DeliveryJob {
        schema_version: SCHEMA_VERSION,
        delivery_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        event_id,
        source_id: test.clone(),
        trigger_id: test,
        action: 0,
        destination_id: destination.id.clone(),
        attempt: 1,
        method: destination.method.clone(),
        url: destination.url.clone(),
        headers,
        body: body.to_string(),
        received_at: now.to_owned(),
        not_before: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_job_is_a_first_attempt_to_the_destination_with_a_fresh_id() {
        let destination: Destination = serde_json::from_value(json!({
            "id": "crm", "url": "https://crm.example.com/hooks"
        }))
        .unwrap();
        let job = job(&destination, TestRequest::default(), "2026-01-02T03:04:05Z");
        assert_eq!(job.destination_id.as_str(), "crm");
        assert_eq!(job.url, "https://crm.example.com/hooks");
        assert_eq!(job.attempt, 1);
        assert_eq!(job.trigger_id.as_str(), TEST_ID);
        assert!(job.delivery_id.starts_with("msg_") && job.delivery_id.len() == 36);
        let body: Value = serde_json::from_str(&job.body).unwrap();
        assert_eq!(body["type"], "hookline.test");
        assert_eq!(job.headers["content-type"], "application/json");

        let given = TestRequest {
            body: Some(json!({"hello": 1})),
            headers: [("x-test".to_owned(), "yes".to_owned())].into(),
        };
        let other = super::job(&destination, given, "2026-01-02T03:04:05Z");
        assert_eq!(other.body, r#"{"hello":1}"#);
        assert_eq!(other.headers["x-test"], "yes");
        assert_ne!(other.delivery_id, job.delivery_id);
    }
}
