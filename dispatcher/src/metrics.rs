//! What the dispatcher counts. Labels are bounded sets (outcomes, reasons), never ids or URLs.

use hookline_runtime::telemetry::register;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Attempts by outcome: `delivered`, `http_4xx`, `http_5xx`, `http_other`, `timeout`,
/// `connect_error`, `blocked`, `invalid_request`, `destination_unavailable`.
pub const ATTEMPTS: &str = "hookline_dispatcher_attempts_total";
/// Duration of one attempt.
pub const ATTEMPT_DURATION: &str = "hookline_dispatcher_attempt_duration_seconds";
/// Event received at ingest to delivered.
pub const END_TO_END: &str = "hookline_dispatcher_end_to_end_seconds";
/// Retries scheduled, by where the job waits: `in_process` or a retry tier (`5s` ... `2h`).
pub const RETRIES: &str = "hookline_dispatcher_retries_total";
/// Jobs held back by their destination, by reason: `circuit_open`, `rate_limited`, `busy`.
pub const DEFERRED: &str = "hookline_dispatcher_deferred_total";
/// Destinations whose circuit is open or half-open.
pub const OPEN_CIRCUITS: &str = "hookline_dispatcher_open_circuits";
/// Destinations the dispatcher disabled, by reason: `gone`.
pub const DISABLED: &str = "hookline_dispatcher_destinations_disabled_total";
/// Jobs dead-lettered, by reason.
pub const DEAD: &str = "hookline_dispatcher_dead_letters_total";
/// Jobs in progress.
pub const IN_FLIGHT: &str = "hookline_dispatcher_in_flight";
/// Jobs put on hold because their destination was paused.
pub const HELD: &str = "hookline_dispatcher_held_total";
/// Held jobs handed back to the deliveries topic after their destination resumed (or was
/// deleted, in which case delivery dead-letters them).
pub const RELEASED: &str = "hookline_dispatcher_released_total";
/// Jobs on hold in the held partitions this dispatcher owns.
pub const HELD_JOBS: &str = "hookline_dispatcher_held_jobs";
/// Age of the oldest job on hold in the held partitions this dispatcher owns; 0 when none.
pub const HELD_OLDEST_AGE: &str = "hookline_dispatcher_held_oldest_age_seconds";

/// The dispatcher's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// See [`ATTEMPTS`].
    pub attempts: IntCounterVec,
    /// See [`ATTEMPT_DURATION`].
    pub attempt_duration: Histogram,
    /// See [`END_TO_END`].
    pub end_to_end: Histogram,
    /// See [`RETRIES`].
    pub retries: IntCounterVec,
    /// See [`DEFERRED`].
    pub deferred: IntCounterVec,
    /// See [`OPEN_CIRCUITS`].
    pub open_circuits: IntGauge,
    /// See [`DISABLED`].
    pub disabled: IntCounterVec,
    /// See [`DEAD`].
    pub dead: IntCounterVec,
    /// See [`IN_FLIGHT`].
    pub in_flight: IntGauge,
    /// See [`HELD`].
    pub held: IntCounter,
    /// See [`RELEASED`].
    pub released: IntCounter,
    /// See [`HELD_JOBS`].
    pub held_jobs: IntGauge,
    /// See [`HELD_OLDEST_AGE`].
    pub held_oldest_age: Gauge,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            attempts: IntCounterVec::new(
                Opts::new(ATTEMPTS, "Delivery attempts, by outcome."),
                &["outcome"],
            )
            .expect("valid metric"),
            attempt_duration: Histogram::with_opts(
                HistogramOpts::new(ATTEMPT_DURATION, "Duration of one delivery attempt.")
                    .buckets(latency_buckets()),
            )
            .expect("valid metric"),
            end_to_end: Histogram::with_opts(
                HistogramOpts::new(END_TO_END, "Time from an event's receipt to its delivery.")
                    .buckets(latency_buckets()),
            )
            .expect("valid metric"),
            retries: IntCounterVec::new(
                Opts::new(RETRIES, "Retries scheduled, by where the job waits."),
                &["tier"],
            )
            .expect("valid metric"),
            deferred: IntCounterVec::new(
                Opts::new(
                    DEFERRED,
                    "Jobs held back by their destination's limits or circuit, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            open_circuits: IntGauge::new(
                OPEN_CIRCUITS,
                "Destinations whose circuit is open or half-open.",
            )
            .expect("valid metric"),
            disabled: IntCounterVec::new(
                Opts::new(DISABLED, "Destinations the dispatcher disabled, by reason."),
                &["reason"],
            )
            .expect("valid metric"),
            dead: IntCounterVec::new(
                Opts::new(DEAD, "Jobs sent to the dead letter topic, by reason."),
                &["reason"],
            )
            .expect("valid metric"),
            in_flight: IntGauge::new(IN_FLIGHT, "Delivery jobs in progress.")
                .expect("valid metric"),
            held: IntCounter::new(
                HELD,
                "Jobs put on hold because their destination was paused.",
            )
            .expect("valid metric"),
            released: IntCounter::new(
                RELEASED,
                "Held jobs handed back for delivery after their destination resumed.",
            )
            .expect("valid metric"),
            held_jobs: IntGauge::new(
                HELD_JOBS,
                "Jobs on hold in the held partitions this dispatcher owns.",
            )
            .expect("valid metric"),
            held_oldest_age: Gauge::new(
                HELD_OLDEST_AGE,
                "Age of the oldest job on hold in the held partitions this dispatcher owns.",
            )
            .expect("valid metric"),
        };
        register(registry, metrics.attempts.clone());
        register(registry, metrics.attempt_duration.clone());
        register(registry, metrics.end_to_end.clone());
        register(registry, metrics.retries.clone());
        register(registry, metrics.deferred.clone());
        register(registry, metrics.open_circuits.clone());
        register(registry, metrics.disabled.clone());
        register(registry, metrics.dead.clone());
        register(registry, metrics.in_flight.clone());
        register(registry, metrics.held.clone());
        register(registry, metrics.released.clone());
        register(registry, metrics.held_jobs.clone());
        register(registry, metrics.held_oldest_age.clone());
        metrics
    }
}
