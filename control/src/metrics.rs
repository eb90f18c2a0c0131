//! What control counts.
//!
//! - [`Metrics`]: requests by route template, method and status, and how long they take. Routes
//!   are the templates the router matched (`/api/v1/sources/{id}`), never raw paths, so ids and
//!   typos cannot grow the label sets.
//! - [`StoreMetrics`]: the store's size, lag and deletions; labels are the record kind (a fixed
//!   set of five) and why records were deleted (two).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use hookline_runtime::telemetry::register;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::store::RecordKind;

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

/// Records the store holds, by kind.
pub const STORE_RECORDS: &str = "hookline_control_store_records";
/// How long after it was written the newest stored record of a kind reached the store.
pub const STORE_LAG_SECONDS: &str = "hookline_control_store_lag_seconds";
/// Records read but not stored because they could not be read as their topic's type.
pub const STORE_SKIPPED: &str = "hookline_control_store_skipped_records_total";
/// Records deleted from the store, by why.
pub const STORE_DELETED: &str = "hookline_control_store_deleted_records_total";
/// Whether the store has read the topics up to where they ended at start.
pub const STORE_READY: &str = "hookline_control_store_ready";

/// The store's metrics.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    records: IntGaugeVec,
    lag_seconds: GaugeVec,
    skipped: IntCounterVec,
    deleted: IntCounterVec,
    ready: IntGauge,
}

impl StoreMetrics {
    /// Creates and registers the metrics; once per registry.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            records: IntGaugeVec::new(
                Opts::new(
                    STORE_RECORDS,
                    "Records the control store holds (within the retention window), by kind.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            lag_seconds: GaugeVec::new(
                Opts::new(
                    STORE_LAG_SECONDS,
                    "Time from writing the newest stored record of a kind to storing it; 0 when \
                     the store has nothing left to read.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            skipped: IntCounterVec::new(
                Opts::new(
                    STORE_SKIPPED,
                    "Records the control store could not read as their topic's type, by kind.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            deleted: IntCounterVec::new(
                Opts::new(
                    STORE_DELETED,
                    "Records deleted from the control store: past the retention window \
                     (`retention`) or beyond its size limit (`size`).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            ready: IntGauge::new(
                STORE_READY,
                "1 once the control store has read its topics up to where they ended at start.",
            )
            .expect("valid metric"),
        };
        for kind in RecordKind::ALL {
            metrics.records.with_label_values(&[kind.as_str()]).set(0);
            metrics
                .lag_seconds
                .with_label_values(&[kind.as_str()])
                .set(0.0);
        }
        register(registry, metrics.records.clone());
        register(registry, metrics.lag_seconds.clone());
        register(registry, metrics.skipped.clone());
        for reason in ["retention", "size"] {
            metrics.deleted.with_label_values(&[reason]).inc_by(0);
        }
        register(registry, metrics.deleted.clone());
        register(registry, metrics.ready.clone());
        metrics
    }

    /// Sets the record count of `kind`.
    pub fn records(&self, kind: RecordKind, count: i64) {
        self.records.with_label_values(&[kind.as_str()]).set(count);
    }

    /// Sets the lag of `kind`.
    pub fn lag(&self, kind: RecordKind, seconds: f64) {
        self.lag_seconds
            .with_label_values(&[kind.as_str()])
            .set(seconds);
    }

    /// Counts a record of `kind` that was not stored.
    pub fn skipped(&self, kind: RecordKind) {
        self.skipped.with_label_values(&[kind.as_str()]).inc();
    }

    /// Counts `count` records deleted for `reason` (`retention` or `size`).
    pub fn deleted(&self, reason: &str, count: usize) {
        self.deleted
            .with_label_values(&[reason])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Says whether the store is loaded.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }
}
