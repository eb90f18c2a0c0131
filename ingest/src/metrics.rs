//! What ingest counts. Per-source figures go to logs, not labels, so cardinality stays bounded.

use hookline_runtime::telemetry::register;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Requests by status code and reason (`accepted` or an error code).
pub const REQUESTS: &str = "hookline_ingest_requests_total";
/// Time from request to answer, by status code.
pub const REQUEST_DURATION: &str = "hookline_ingest_request_duration_seconds";
/// Size of accepted bodies.
pub const BODY_SIZE: &str = "hookline_ingest_body_size_bytes";
/// Requests refused by a rate limit, by scope.
pub const RATE_LIMITED: &str = "hookline_ingest_rate_limited_total";
/// Events the broker did not acknowledge.
pub const PRODUCE_ERRORS: &str = "hookline_ingest_produce_errors_total";
/// Requests in progress.
pub const IN_FLIGHT: &str = "hookline_ingest_in_flight_requests";
/// Rejection records, by outcome.
pub const REJECTED_RECORDS: &str = "hookline_ingest_rejected_records_total";
/// Retried requests answered with the first event's id.
pub const IDEMPOTENT_REPLAYS: &str = "hookline_ingest_idempotent_replays_total";

/// Ingest's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// See [`REQUESTS`]; labels `code` (HTTP status) and `reason`.
    pub requests: IntCounterVec,
    /// See [`REQUEST_DURATION`]; label `code`.
    pub duration: HistogramVec,
    /// See [`BODY_SIZE`].
    pub body_size: Histogram,
    /// See [`RATE_LIMITED`]; label `scope`: `source`, `org`.
    pub rate_limited: IntCounterVec,
    /// See [`PRODUCE_ERRORS`].
    pub produce_errors: IntCounter,
    /// See [`IN_FLIGHT`].
    pub in_flight: IntGauge,
    /// See [`REJECTED_RECORDS`]; label `outcome`: `written`, `sampled_out`, `failed`.
    pub rejected_records: IntCounterVec,
    /// See [`IDEMPOTENT_REPLAYS`].
    pub idempotent_replays: IntCounter,
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
            rate_limited: IntCounterVec::new(
                Opts::new(RATE_LIMITED, "Inbound requests refused by a rate limit, by scope."),
                &["scope"],
            )
            .expect("valid metric"),
            produce_errors: IntCounter::new(
                PRODUCE_ERRORS,
                "Inbound events the broker did not acknowledge (answered 503).",
            )
            .expect("valid metric"),
            in_flight: IntGauge::new(IN_FLIGHT, "Inbound requests in progress.")
                .expect("valid metric"),
            rejected_records: IntCounterVec::new(
                Opts::new(
                    REJECTED_RECORDS,
                    "Records of refused requests, by outcome (written, sampled_out, failed).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            idempotent_replays: IntCounter::new(
                IDEMPOTENT_REPLAYS,
                "Retried inbound requests answered with the first event's id.",
            )
            .expect("valid metric"),
        };
        register(registry, metrics.requests.clone());
        register(registry, metrics.rate_limited.clone());
        register(registry, metrics.produce_errors.clone());
        register(registry, metrics.in_flight.clone());
        register(registry, metrics.rejected_records.clone());
        register(registry, metrics.idempotent_replays.clone());
        register(registry, metrics.duration.clone());
        register(registry, metrics.body_size.clone());
        metrics
    }
}
