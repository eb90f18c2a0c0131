//! What the dispatcher counts. Labels are bounded sets (outcomes, reasons), never URLs; ids only
//! in the per-destination series, which are off unless `--metrics-destination-labels N` asks for
//! them and then name at most N destinations ([`PerDestination`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use hookline_runtime::telemetry::register;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
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

/// Attempts by destination and outcome (with `--metrics-destination-labels`).
pub const DESTINATION_ATTEMPTS: &str = "hookline_dispatcher_destination_attempts_total";
/// Duration of one attempt, by destination (with `--metrics-destination-labels`).
pub const DESTINATION_ATTEMPT_DURATION: &str =
    "hookline_dispatcher_destination_attempt_duration_seconds";
/// The `destination` label of every destination past the cap.
pub const OTHER_DESTINATIONS: &str = "_other";

/// Series per destination, for at most `cap` destinations: the first `cap` destinations this
/// dispatcher attempts get their id as the `destination` label, every later one shares
/// [`OTHER_DESTINATIONS`], so the number of series stays bounded whatever the number of
/// destinations. (A destination keeps its label until the process restarts.)
#[derive(Debug)]
pub struct PerDestination {
    cap: usize,
    named: Mutex<HashSet<String>>,
    attempts: IntCounterVec,
    duration: HistogramVec,
}

impl PerDestination {
    /// Registers the series, for at most `cap` destinations.
    fn register(registry: &Registry, cap: usize) -> Self {
        let this = Self {
            cap,
            named: Mutex::new(HashSet::new()),
            attempts: IntCounterVec::new(
                Opts::new(
                    DESTINATION_ATTEMPTS,
                    "Delivery attempts, by destination (capped) and outcome.",
                ),
                &["destination", "outcome"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    DESTINATION_ATTEMPT_DURATION,
                    "Duration of one delivery attempt, by destination (capped).",
                )
                .buckets(latency_buckets()),
                &["destination"],
            )
            .expect("valid metric"),
        };
        register(registry, this.attempts.clone());
        register(registry, this.duration.clone());
        this
    }

    /// The label of destination `id`: its id while the cap allows, [`OTHER_DESTINATIONS`] after.
    pub fn label(&self, id: &str) -> String {
        let mut named = self
            .named
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if named.contains(id) {
            return id.to_owned();
        }
        if named.len() < self.cap && id != OTHER_DESTINATIONS {
            named.insert(id.to_owned());
            return id.to_owned();
        }
        OTHER_DESTINATIONS.to_owned()
    }

    /// Counts an attempt of destination `id` with `outcome`, which took `seconds`.
    pub fn observe(&self, id: &str, outcome: &str, seconds: f64) {
        let label = self.label(id);
        self.attempts.with_label_values(&[&label, outcome]).inc();
        self.duration.with_label_values(&[&label]).observe(seconds);
    }
}

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
    /// Per-destination series, when asked for.
    pub per_destination: Option<Arc<PerDestination>>,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
}

impl Metrics {
    /// Creates and registers the metrics; with `destination_labels` above 0, also the
    /// per-destination series for that many destinations ([`PerDestination`]).
    pub fn register(registry: &Registry, destination_labels: usize) -> Self {
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
            per_destination: (destination_labels > 0)
                .then(|| Arc::new(PerDestination::register(registry, destination_labels))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_destination_series_name_at_most_the_cap_and_are_off_by_default() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry, 0);
        assert!(metrics.per_destination.is_none());
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert!(!names.iter().any(|name| name == DESTINATION_ATTEMPTS));

        let registry = Registry::new();
        let metrics = Metrics::register(&registry, 2);
        let per = metrics.per_destination.unwrap();
        for (id, outcome) in [
            ("crm", "delivered"),
            ("billing", "http_5xx"),
            ("crm", "delivered"),
            ("third", "delivered"),
            ("fourth", "timeout"),
        ] {
            per.observe(id, outcome, 0.01);
        }
        let count = |destination: &str, outcome: &str| {
            per.attempts
                .with_label_values(&[destination, outcome])
                .get()
        };
        assert_eq!(count("crm", "delivered"), 2);
        assert_eq!(count("billing", "http_5xx"), 1);
        assert_eq!(count(OTHER_DESTINATIONS, "delivered"), 1);
        assert_eq!(count(OTHER_DESTINATIONS, "timeout"), 1);
        let attempts = registry
            .gather()
            .into_iter()
            .find(|family| family.name() == DESTINATION_ATTEMPTS)
            .unwrap();
        let destinations: HashSet<String> = attempts
            .get_metric()
            .iter()
            .flat_map(|metric| metric.get_label().iter())
            .filter(|pair| pair.name() == "destination")
            .map(|pair| pair.value().to_owned())
            .collect();
        assert_eq!(destinations.len(), 3, "{destinations:?}");
    }
}
