//! Ingest settings and their defaults.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use hookline_runtime::serve::ConnectionLimits;

use crate::idempotency::IdempotencySettings;
use crate::limits::LimitSettings;

/// Ingest settings.
#[derive(Clone, Debug, Args)]
#[group(id = "ingest")]
pub struct Config {
    /// Address of the inbound webhook endpoint.
    #[arg(
        id = "ingest-addr",
        long = "ingest-addr",
        env = "HOOKLINE_INGEST_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub addr: SocketAddr,

    /// Largest accepted body in bytes, unless a source sets its own; larger ones get 413.
    #[arg(id = "ingest-max-body-bytes", long = "ingest-max-body-bytes", env = "HOOKLINE_INGEST_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long to wait for the broker's acknowledgement before answering 503, in milliseconds.
    #[arg(
        long = "ingest-produce-timeout-ms",
        env = "HOOKLINE_INGEST_PRODUCE_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub produce_timeout_ms: u64,

    /// Longest time a client may take to send a complete request head, in milliseconds, from
    /// connecting (whatever the protocol) and for every later HTTP/1.1 request; slower
    /// connections are closed.
    #[arg(
        id = "ingest-header-timeout-ms",
        long = "ingest-header-timeout-ms",
        env = "HOOKLINE_INGEST_HEADER_TIMEOUT_MS",
        default_value_t = hookline_runtime::serve::DEFAULT_HEADER_TIMEOUT_MS
    )]
    pub header_timeout_ms: u64,

    /// Longest time a connection may stay open with no request in progress, in milliseconds.
    #[arg(
        id = "ingest-idle-timeout-ms",
        long = "ingest-idle-timeout-ms",
        env = "HOOKLINE_INGEST_IDLE_TIMEOUT_MS",
        default_value_t = hookline_runtime::serve::DEFAULT_IDLE_TIMEOUT_MS
    )]
    pub idle_timeout_ms: u64,

    /// Most connections open at once; more wait to be accepted until one closes.
    #[arg(
        id = "ingest-max-connections",
        long = "ingest-max-connections",
        env = "HOOKLINE_INGEST_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,

    /// Longest time a client may take to send the body, in milliseconds; slower ones get 408.
    #[arg(
        long = "ingest-body-timeout-ms",
        env = "HOOKLINE_INGEST_BODY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub body_timeout_ms: u64,

    /// Most requests handled at once; more are shed with 503 before memory grows.
    #[arg(
        long = "ingest-max-concurrent-requests",
        env = "HOOKLINE_INGEST_MAX_CONCURRENT_REQUESTS",
        default_value_t = 4096
    )]
    pub max_concurrent_requests: usize,

    /// Most refused requests recorded per second on the rejected topic; the rest are counted.
    #[arg(
        long = "ingest-rejected-records-per-second",
        env = "HOOKLINE_INGEST_REJECTED_RECORDS_PER_SECOND",
        default_value_t = 50
    )]
    pub rejected_per_second: u32,

    /// Rate limits.
    #[command(flatten)]
    pub limits: LimitSettings,

    /// Idempotency keys.
    #[command(flatten)]
    pub idempotency: IdempotencySettings,
}

/// Default cap on open connections: room for every request in progress
/// (`--ingest-max-concurrent-requests`) on its own connection.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Config {
    /// The limits of the inbound listener's connections; zero values are refused.
    pub fn connection_limits(&self) -> Result<ConnectionLimits, hookline_runtime::Error> {
        ConnectionLimits::from_settings(
            "ingest",
            self.header_timeout_ms,
            self.idle_timeout_ms,
            self.max_connections,
        )
    }

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
            header_timeout_ms: hookline_runtime::serve::DEFAULT_HEADER_TIMEOUT_MS,
            idle_timeout_ms: hookline_runtime::serve::DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_timeout_ms: 30_000,
            max_concurrent_requests: 4096,
            rejected_per_second: 50,
            limits: LimitSettings::default(),
            idempotency: IdempotencySettings::default(),
        }
    }
}
