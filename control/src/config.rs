//! Control settings and their defaults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::store::Location;
use crate::store::reader::Retention;

/// Where inbound URLs point when nothing says otherwise: ingest's default address.
pub const DEFAULT_PUBLIC_INGEST_URL: &str = "http://127.0.0.1:8080";

/// Control settings.
#[derive(Clone, Debug, Args)]
#[group(id = "control")]
pub struct Config {
    /// Address of the operator's API.
    #[arg(
        id = "control-addr",
        long = "control-addr",
        env = "HOOKLINE_CONTROL_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub addr: SocketAddr,

    /// Longest time a connection to the API may take to send a complete request head, in
    /// milliseconds; slower ones are closed.
    #[arg(
        id = "control-header-timeout-ms",
        long = "control-header-timeout-ms",
        env = "HOOKLINE_CONTROL_HEADER_TIMEOUT_MS",
        default_value_t = hookline_runtime::serve::DEFAULT_HEADER_TIMEOUT_MS
    )]
    pub header_timeout_ms: u64,

    /// Longest time a connection to the API may stay open with no request in progress, in
    /// milliseconds.
    #[arg(
        id = "control-idle-timeout-ms",
        long = "control-idle-timeout-ms",
        env = "HOOKLINE_CONTROL_IDLE_TIMEOUT_MS",
        default_value_t = hookline_runtime::serve::DEFAULT_IDLE_TIMEOUT_MS
    )]
    pub idle_timeout_ms: u64,

    /// Most connections to the API open at once; more wait to be accepted.
    #[arg(
        id = "control-max-connections",
        long = "control-max-connections",
        env = "HOOKLINE_CONTROL_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,

    /// Admin tokens accepted as `Authorization: Bearer <token>`, comma separated: they may read
    /// and write. With none and no read token, every request is refused.
    #[arg(
        long = "control-token",
        env = "HOOKLINE_CONTROL_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,

    /// Read-only tokens, comma separated, for dashboards: they may read (secrets masked) and get
    /// 403 on every write.
    #[arg(
        long = "control-read-token",
        env = "HOOKLINE_CONTROL_READ_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_tokens: Vec<String>,

    /// The base URL senders reach ingest at, for the inbound URLs the API shows
    /// (`<base>/inbound-webhooks/<source id>`). When unset: this process's own ingest if it runs
    /// one, else http://127.0.0.1:8080.
    #[arg(long = "public-ingest-url", env = "HOOKLINE_PUBLIC_INGEST_URL")]
    pub public_ingest_url: Option<Url>,

    /// Largest accepted request body in bytes; larger ones get 413.
    #[arg(
        id = "control-max-body-bytes",
        long = "control-max-body-bytes",
        env = "HOOKLINE_CONTROL_MAX_BODY_BYTES",
        default_value_t = 1024 * 1024
    )]
    pub max_body_bytes: usize,

    /// How long a write may take, from sending it to the broker until this process's resource
    /// store applied it, in milliseconds; then the answer is 503.
    #[arg(
        long = "control-write-timeout-ms",
        env = "HOOKLINE_CONTROL_WRITE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub write_timeout_ms: u64,

    /// How long the store keeps events, attempts, match records, refusals and dead letters, in
    /// hours. The store can only show what the topics held when it read them: keep their
    /// `retention.ms` at least this long, so a store rebuilt from them is whole.
    #[arg(
        long = "control-store-retention-hours",
        env = "HOOKLINE_CONTROL_STORE_RETENTION_HOURS",
        default_value_t = 168
    )]
    pub store_retention_hours: u64,

    /// The store's size budget in bytes. Above it the oldest records are deleted before the
    /// retention window ends (counted in
    /// hookline_control_store_deleted_records_total{reason="size"}); README's "Control's history"
    /// gives the bytes per event to size it.
    #[arg(
        long = "control-store-max-bytes",
        env = "HOOKLINE_CONTROL_STORE_MAX_BYTES",
        default_value_t = DEFAULT_STORE_MAX_BYTES
    )]
    pub store_max_bytes: u64,

    /// Most bytes of one event's payload the store keeps; a larger payload keeps its first bytes
    /// and its size (replays and previews read it from the events topic instead).
    #[arg(
        long = "control-store-max-payload-bytes",
        env = "HOOKLINE_CONTROL_STORE_MAX_PAYLOAD_BYTES",
        default_value_t = 64 * 1024
    )]
    pub store_max_payload_bytes: usize,

    /// Where Hookline keeps its files: control's store is `control/history.sqlite3` under it.
    #[arg(
        long = "data-dir",
        env = "HOOKLINE_DATA_DIR",
        default_value = "hookline-data"
    )]
    pub data_dir: PathBuf,

    /// The store's file, instead of the one under --data-dir.
    #[arg(long = "control-store-path", env = "HOOKLINE_CONTROL_STORE_PATH")]
    pub store_path: Option<PathBuf>,

    /// Keep the store in memory, rebuilt from the topics at every start (`hookline dev` does).
    #[arg(
        long = "control-store-memory",
        env = "HOOKLINE_CONTROL_STORE_MEMORY",
        conflicts_with = "store_path"
    )]
    pub store_memory: bool,

    /// Keep the store in PostgreSQL, shared by every control instance given the same database:
    /// a libpq URL or key=value settings (`postgres://user:password@host/db?sslmode=require`).
    #[arg(
        long = "control-store-postgres",
        env = "HOOKLINE_CONTROL_STORE_POSTGRES",
        hide_env_values = true,
        conflicts_with_all = ["store_path", "store_memory"]
    )]
    pub store_postgres: Option<String>,

    /// The PostgreSQL schema of the store's tables (made when missing).
    #[arg(
        long = "control-store-postgres-schema",
        env = "HOOKLINE_CONTROL_STORE_POSTGRES_SCHEMA",
        default_value = "hookline"
    )]
    pub store_postgres_schema: String,

    /// How long `POST /api/v1/destinations/{id}/test` waits for the attempt, in milliseconds;
    /// after that it answers 202 with the delivery id to look up later.
    #[arg(
        long = "control-test-timeout-ms",
        env = "HOOKLINE_CONTROL_TEST_TIMEOUT_MS",
        default_value_t = 20_000
    )]
    pub test_timeout_ms: u64,

    /// Most records one replay request may send.
    #[arg(
        long = "control-max-replay",
        env = "HOOKLINE_CONTROL_MAX_REPLAY",
        default_value_t = 10_000
    )]
    pub max_replay: usize,
}

/// The store's default size budget: 96 GiB, more than a day at 1,000 events/s (`hookline-bench
/// store` measures at most ~920 bytes per event; README's "Control's history" has the table).
pub const DEFAULT_STORE_MAX_BYTES: u64 = 96 * 1024 * 1024 * 1024;

/// Default cap on the API's open connections: operators, the CLI and dashboards need few.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

impl Default for Config {
    /// A free loopback port, no tokens, the default limits.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            header_timeout_ms: hookline_runtime::serve::DEFAULT_HEADER_TIMEOUT_MS,
            idle_timeout_ms: hookline_runtime::serve::DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tokens: Vec::new(),
            read_tokens: Vec::new(),
            public_ingest_url: None,
            max_body_bytes: 1024 * 1024,
            write_timeout_ms: 10_000,
            store_retention_hours: 168,
            store_max_bytes: DEFAULT_STORE_MAX_BYTES,
            store_max_payload_bytes: 64 * 1024,
            data_dir: PathBuf::from("hookline-data"),
            store_path: None,
            store_memory: false,
            store_postgres: None,
            store_postgres_schema: "hookline".to_owned(),
            test_timeout_ms: 20_000,
            max_replay: 10_000,
        }
    }
}

impl Config {
    /// The limits of the API listener's connections; zero values are refused.
    pub fn connection_limits(
        &self,
    ) -> Result<hookline_runtime::serve::ConnectionLimits, hookline_runtime::Error> {
        hookline_runtime::serve::ConnectionLimits::from_settings(
            "control",
            self.header_timeout_ms,
            self.idle_timeout_ms,
            self.max_connections,
        )
    }

    /// The write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    /// What the store keeps.
    pub fn store_retention(&self) -> Retention {
        Retention {
            window: Duration::from_secs(self.store_retention_hours.saturating_mul(3_600)),
            max_bytes: self.store_max_bytes,
        }
    }

    /// Where the store lives.
    pub fn store_location(&self) -> Location {
        if self.store_memory {
            return Location::Memory;
        }
        if let Some(url) = &self.store_postgres {
            return Location::Postgres {
                url: url.clone(),
                schema: self.store_postgres_schema.clone(),
            };
        }
        Location::File(
            self.store_path
                .clone()
                .unwrap_or_else(|| self.data_dir.join("control").join("history.sqlite3")),
        )
    }

    /// How long a test send waits for its attempt.
    pub fn test_timeout(&self) -> Duration {
        Duration::from_millis(self.test_timeout_ms)
    }

    /// The base of inbound URLs, without a trailing `/`.
    pub fn ingest_base(&self) -> String {
        self.public_ingest_url
            .as_ref()
            .map_or(DEFAULT_PUBLIC_INGEST_URL, Url::as_str)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The URL of an ingest listening on `addr` in this process, as a client on this machine reaches
/// it (an unspecified address such as `0.0.0.0` becomes loopback).
pub fn local_ingest_url(addr: SocketAddr) -> Option<Url> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip @ (IpAddr::V4(_) | IpAddr::V6(_)) => ip,
    };
    Url::parse(&format!("http://{}", SocketAddr::new(ip, addr.port()))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_urls_default_to_local_ingest() {
        assert_eq!(Config::default().ingest_base(), "http://127.0.0.1:8080");
        let config = Config {
            public_ingest_url: Url::parse("https://hooks.example.com/hookline/").ok(),
            ..Config::default()
        };
        assert_eq!(config.ingest_base(), "https://hooks.example.com/hookline");
        let local = local_ingest_url("0.0.0.0:9000".parse().unwrap()).unwrap();
        assert_eq!(local.as_str(), "http://127.0.0.1:9000/");
    }
}
