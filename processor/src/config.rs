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

    /// Template limits.
    #[command(flatten)]
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            limits: Limits::default(),
        }
    }
}
