//! The processor's settings and their defaults.

use clap::Args;

use crate::template::Limits;

/// Processor settings.
#[derive(Clone, Debug, Args)]
#[group(id = "processor")]
pub struct Config {
    /// Most events whose jobs may await acknowledgement at once.
    #[arg(
        id = "processor-max-in-flight",
        long = "processor-max-in-flight",
        env = "HOOKLINE_PROCESSOR_MAX_IN_FLIGHT",
        default_value_t = 10_000
    )]
    pub max_in_flight: usize,

    /// Process events in Kafka transactions, so each event's jobs are written to the
    /// deliveries topic exactly once (for `read_committed` readers), even across crashes. Costs
    /// throughput; at-least-once (the default) may repeat an event's jobs after a crash, always
    /// with the same delivery ids.
    #[arg(
        long = "processor-exactly-once",
        env = "HOOKLINE_PROCESSOR_EXACTLY_ONCE",
        default_value_t = false
    )]
    pub exactly_once: bool,

    /// The `transactional.id` of the exactly-once mode: unique per processor instance and
    /// stable across its restarts (a restart then aborts what the previous run left open).
    /// Defaults to `<topic prefix>processor-<host name>`.
    #[arg(
        long = "processor-transactional-id",
        env = "HOOKLINE_PROCESSOR_TRANSACTIONAL_ID"
    )]
    pub transactional_id: Option<String>,

    /// Write a match record per event to the matches topic (which triggers fired, or why none
    /// did), for the control API's event timeline. `false` leaves the timeline without match
    /// results.
    #[arg(
        long = "processor-match-records",
        env = "HOOKLINE_PROCESSOR_MATCH_RECORDS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub match_records: bool,

    /// Template limits.
    #[command(flatten)]
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            exactly_once: false,
            transactional_id: None,
            match_records: true,
            limits: Limits::default(),
        }
    }
}
