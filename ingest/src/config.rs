//! Ingest settings and their defaults.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Ingest settings.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address of the inbound webhook endpoint.
    #[arg(
        id = "ingest-addr",
        long = "ingest-addr",
        env = "HOOKLINE_INGEST_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub addr: SocketAddr,

    /// Largest accepted body in bytes; larger ones get 413.
    #[arg(long = "ingest-max-body-bytes", env = "HOOKLINE_INGEST_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long to wait for the broker's acknowledgement before answering 503, in milliseconds.
    #[arg(
        long = "ingest-produce-timeout-ms",
        env = "HOOKLINE_INGEST_PRODUCE_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub produce_timeout_ms: u64,
}

impl Config {
    /// The produce timeout as a duration.
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_body_bytes: 1024 * 1024,
            produce_timeout_ms: 5_000,
        }
    }
}
