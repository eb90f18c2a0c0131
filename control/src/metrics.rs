//! What the control API counts: requests by route template, method and status, and how long
//! they take. Routes are the templates the router matched (`/api/v1/sources/{id}`), never raw
//! paths, so ids and typos cannot grow the label sets.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use hookline_runtime::telemetry::register;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Requests by route, method and status code.
pub const REQUESTS: &str = "hookline_control_requests_total";
/// Time from request to answer, by route and method.
pub const REQUEST_DURATION: &str = "hookline_control_request_duration_seconds";

/// The `route` of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The control API's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// See [`REQUESTS`]; labels `route`, `method`, `status`.
    pub requests: IntCounterVec,
    /// See [`REQUEST_DURATION`]; labels `route`, `method`.
    pub duration: HistogramVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    REQUESTS,
                    "Control API requests, by route template, method and status code.",
                ),
                &["route", "method", "status"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    REQUEST_DURATION,
                    "Time from a control API request to its answer, writes included until they were read back.",
                )
                .buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["route", "method"],
            )
            .expect("valid metric"),
        };
        register(registry, metrics.requests.clone());
        register(registry, metrics.duration.clone());
        metrics
    }
}

/// Middleware around every route and the fallback: counts and times each request.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method(request.method());
    let response = next.run(request).await;
    metrics
        .requests
        .with_label_values(&[route.as_str(), method, response.status().as_str()])
        .inc();
    metrics
        .duration
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard ones by name, any other as `other`, since clients may
/// send made-up methods.
fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
