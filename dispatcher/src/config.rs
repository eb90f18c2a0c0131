//! Dispatcher settings and their defaults.

use clap::Args;

use crate::retry::RetryPolicy;

/// Dispatcher settings.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Most deliveries in progress at once.
    #[arg(
        long = "dispatcher-max-in-flight",
        env = "HOOKLINE_DISPATCHER_MAX_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_in_flight: usize,

    /// Largest part of a receiver's answer that is read and recorded, in bytes.
    #[arg(long = "dispatcher-response-body-bytes", env = "HOOKLINE_DISPATCHER_RESPONSE_BODY_BYTES", default_value_t = 16 * 1024)]
    pub response_body_bytes: usize,

    /// Deadline of one attempt when the destination sets none, in milliseconds.
    #[arg(
        long = "dispatcher-timeout-ms",
        env = "HOOKLINE_DISPATCHER_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub default_timeout_ms: u64,

    /// Retry schedule.
    #[command(flatten)]
    pub retry: RetryPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            response_body_bytes: 16 * 1024,
            default_timeout_ms: 15_000,
            retry: RetryPolicy::default(),
        }
    }
}
