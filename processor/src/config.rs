//! The processor's settings and their defaults.

use clap::Args;

use crate::template::Limits;

/// Processor settings.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Most events whose jobs may await acknowledgement at once.
    #[arg(
        long = "processor-max-in-flight",
        env = "HOOKLINE_PROCESSOR_MAX_IN_FLIGHT",
        default_value_t = 10_000
    )]
    pub max_in_flight: usize,

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
            match_records: true,
            limits: Limits::default(),
        }
    }
}
