//! What ingest counts. Per-source figures go to logs, not labels, so cardinality stays bounded.

use hookline_runtime::telemetry::register;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Requests by status code and reason (`accepted` or an error code).
pub const REQUESTS: &str = "hookline_ingest_requests_total";
/// Time from request to answer, by status code.
pub const REQUEST_DURATION: &str = "hookline_ingest_request_duration_seconds";
/// Size of accepted bodies.
pub const BODY_SIZE: &str = "hookline_ingest_body_size_bytes";

/// Ingest's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// See [`REQUESTS`]; labels `code` (HTTP status) and `reason`.
    pub requests: IntCounterVec,
    /// See [`REQUEST_DURATION`]; label `code`.
    pub duration: HistogramVec,
    /// See [`BODY_SIZE`].
    pub body_size: Histogram,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(REQUESTS, "Inbound webhook requests, by status code and reason."),
                &["code", "reason"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    REQUEST_DURATION,
                    "Time from an inbound request to its answer, including the broker's acknowledgement.",
                )
                .buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["code"],
            )
            .expect("valid metric"),
            body_size: Histogram::with_opts(
                HistogramOpts::new(BODY_SIZE, "Size of accepted event bodies.")
                    .buckets(prometheus::exponential_buckets(256.0, 4.0, 8).expect("valid buckets")),
            )
            .expect("valid metric"),
        };
        register(registry, metrics.requests.clone());
        register(registry, metrics.duration.clone());
        register(registry, metrics.body_size.clone());
        metrics
    }
}
