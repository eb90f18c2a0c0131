//! What the processor counts. Names follow Prometheus conventions; labels are bounded sets
//! (reasons), never ids.

use hookline_runtime::telemetry::register;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Events read from the events topic.
pub const EVENTS: &str = "hookline_processor_events_total";
/// Triggers whose `when` and `if` matched an event.
pub const MATCHES: &str = "hookline_processor_matches_total";
/// Delivery jobs produced.
pub const JOBS: &str = "hookline_processor_jobs_total";
/// Actions that produced no job, by reason.
pub const SKIPPED: &str = "hookline_processor_skipped_actions_total";
/// Records sent to the dead letter topic, by reason.
pub const DEAD: &str = "hookline_processor_dead_letters_total";
/// Match records that could not be enqueued (the event itself was processed).
pub const MATCH_RECORDS_DROPPED: &str = "hookline_processor_match_records_dropped_total";
/// Time to match and render one event.
pub const RENDER_DURATION: &str = "hookline_processor_render_duration_seconds";

/// The processor's metrics, registered in the process registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// See [`EVENTS`].
    pub events: IntCounter,
    /// See [`MATCHES`].
    pub matches: IntCounter,
    /// See [`JOBS`].
    pub jobs: IntCounter,
    /// See [`SKIPPED`]; label `reason`: `destination_missing`, `destination_disabled`.
    pub skipped: IntCounterVec,
    /// See [`DEAD`]; label `reason`: a dead letter reason.
    pub dead: IntCounterVec,
    /// See [`MATCH_RECORDS_DROPPED`].
    pub match_records_dropped: IntCounter,
    /// See [`RENDER_DURATION`].
    pub render_duration: Histogram,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            events: IntCounter::new(EVENTS, "Events read from the events topic.")
                .expect("valid metric"),
            matches: IntCounter::new(MATCHES, "Triggers that matched an event.")
                .expect("valid metric"),
            jobs: IntCounter::new(JOBS, "Delivery jobs produced.").expect("valid metric"),
            skipped: IntCounterVec::new(
                Opts::new(SKIPPED, "Trigger actions that produced no job, by reason."),
                &["reason"],
            )
            .expect("valid metric"),
            dead: IntCounterVec::new(
                Opts::new(DEAD, "Events sent to the dead letter topic, by reason."),
                &["reason"],
            )
            .expect("valid metric"),
            match_records_dropped: IntCounter::new(
                MATCH_RECORDS_DROPPED,
                "Match records that could not be enqueued.",
            )
            .expect("valid metric"),
            render_duration: Histogram::with_opts(
                HistogramOpts::new(RENDER_DURATION, "Time to match and render one event.").buckets(
                    prometheus::exponential_buckets(0.000_01, 4.0, 10).expect("valid buckets"),
                ),
            )
            .expect("valid metric"),
        };
        register(registry, metrics.events.clone());
        register(registry, metrics.matches.clone());
        register(registry, metrics.jobs.clone());
        register(registry, metrics.skipped.clone());
        register(registry, metrics.dead.clone());
        register(registry, metrics.match_records_dropped.clone());
        register(registry, metrics.render_duration.clone());
        metrics
    }
}
