//! Settings every stage shares. Each one is a CLI flag that also reads a `HOOKLINE_…` environment
//! variable; the defaults here are the single documented place for them.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use hookline_schemas::Topics;

/// How to reach Kafka and name the topics.
#[derive(Clone, Debug, Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma separated.
    #[arg(
        long = "kafka-brokers",
        env = "HOOKLINE_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Client id reported to the brokers; the role name is appended.
    #[arg(
        long = "kafka-client-id",
        env = "HOOKLINE_KAFKA_CLIENT_ID",
        default_value = "hookline"
    )]
    pub client_id: String,

    /// Prefix of every topic name, so several installations can share a cluster.
    #[arg(long = "topic-prefix", env = "HOOKLINE_TOPIC_PREFIX", default_value = hookline_schemas::topics::DEFAULT_PREFIX)]
    pub topic_prefix: String,

    /// Extra librdkafka setting for every client, `key=value`, repeatable (for example
    /// `security.protocol=SASL_SSL`). The variable takes a comma-separated list.
    #[arg(
        long = "kafka-option",
        env = "HOOKLINE_KAFKA_OPTIONS",
        value_name = "KEY=VALUE",
        value_parser = parse_option,
        value_delimiter = ','
    )]
    pub options: Vec<(String, String)>,

    /// Consumer group protocol: `classic`, or `consumer` (KIP-848, Kafka 4.0+), which assigns
    /// partitions faster and without stop-the-world rebalances.
    #[arg(long = "group-protocol", env = "HOOKLINE_GROUP_PROTOCOL", value_enum, default_value_t = GroupProtocol::Classic)]
    pub group_protocol: GroupProtocol,

    /// Longest time a consumer's fetch waits for records, in milliseconds. Real brokers answer
    /// as soon as records arrive; the embedded one waits this long. The stages' input fetches
    /// wait at most `--kafka-fetch-batch-wait-ms`.
    #[arg(
        long = "kafka-fetch-wait-ms",
        env = "HOOKLINE_KAFKA_FETCH_WAIT_MS",
        default_value_t = 100
    )]
    pub fetch_wait_ms: u32,

    /// Bytes a stage's input fetch (the processor's events, the dispatcher's deliveries) lets
    /// gather on the broker before it is answered, or until `--kafka-fetch-batch-wait-ms` passes:
    /// under load, a few full fetches instead of one per record or two, which halves the broker's
    /// CPU per event. 1 answers every fetch at its first record.
    #[arg(
        long = "kafka-fetch-batch-bytes",
        env = "HOOKLINE_KAFKA_FETCH_BATCH_BYTES",
        default_value_t = DEFAULT_FETCH_BATCH_BYTES
    )]
    pub fetch_batch_bytes: u32,

    /// The longest a stage's input fetch waits for `--kafka-fetch-batch-bytes`, in milliseconds
    /// (at most `--kafka-fetch-wait-ms`): at low load, what the processor and the dispatcher may
    /// each add to an event's latency.
    #[arg(
        long = "kafka-fetch-batch-wait-ms",
        env = "HOOKLINE_KAFKA_FETCH_BATCH_WAIT_MS",
        default_value_t = DEFAULT_FETCH_BATCH_WAIT_MS
    )]
    pub fetch_batch_wait_ms: u32,

    /// How topics are created at start-up.
    #[command(flatten)]
    pub topics: TopicSettings,
}

/// Default of `--kafka-fetch-batch-bytes`: about 16 events of 1 KB.
pub const DEFAULT_FETCH_BATCH_BYTES: u32 = 16 * 1024;
/// Default of `--kafka-fetch-batch-wait-ms`.
pub const DEFAULT_FETCH_BATCH_WAIT_MS: u32 = 10;

/// The consumer group protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GroupProtocol {
    /// The classic protocol (join/sync), supported by every Kafka version.
    Classic,
    /// The KIP-848 protocol, for Kafka 4.0 and later.
    Consumer,
}

/// Creation of missing topics at start-up.
#[derive(Clone, Debug, Args)]
pub struct TopicSettings {
    /// Create missing topics at start-up (existing topics are never changed).
    #[arg(long = "create-topics", env = "HOOKLINE_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create: bool,

    /// Partitions of each created topic: the most consumers one group can use.
    #[arg(
        long = "topic-partitions",
        env = "HOOKLINE_TOPIC_PARTITIONS",
        default_value_t = 6
    )]
    pub partitions: i32,

    /// Replication factor of each created topic (3 on a production cluster).
    #[arg(
        long = "topic-replication",
        env = "HOOKLINE_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub replication: i32,
}

impl KafkaSettings {
    /// Settings for the given brokers with every other field at its default.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: "hookline".to_owned(),
            topic_prefix: hookline_schemas::topics::DEFAULT_PREFIX.to_owned(),
            options: Vec::new(),
            group_protocol: GroupProtocol::Classic,
            fetch_wait_ms: 100,
            fetch_batch_bytes: DEFAULT_FETCH_BATCH_BYTES,
            fetch_batch_wait_ms: DEFAULT_FETCH_BATCH_WAIT_MS,
            topics: TopicSettings {
                create: true,
                partitions: 6,
                replication: 1,
            },
        }
    }

    /// The topic names these settings select.
    pub fn topics(&self) -> Topics {
        Topics::new(self.topic_prefix.clone())
    }
}

/// Where the admin endpoints (`/metrics`, `/healthz`, `/readyz`) listen.
#[derive(Clone, Debug, Args)]
pub struct AdminSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        id = "admin-addr",
        long = "admin-addr",
        env = "HOOKLINE_ADMIN_ADDR",
        default_value = "127.0.0.1:9400"
    )]
    pub addr: SocketAddr,

    /// Longest time a connection to the admin address may take to send a complete request
    /// head, in milliseconds; slower ones are closed.
    #[arg(
        id = "admin-header-timeout-ms",
        long = "admin-header-timeout-ms",
        env = "HOOKLINE_ADMIN_HEADER_TIMEOUT_MS",
        default_value_t = crate::serve::DEFAULT_HEADER_TIMEOUT_MS
    )]
    pub header_timeout_ms: u64,

    /// Longest time a connection to the admin address may stay open with no request in
    /// progress, in milliseconds.
    #[arg(
        id = "admin-idle-timeout-ms",
        long = "admin-idle-timeout-ms",
        env = "HOOKLINE_ADMIN_IDLE_TIMEOUT_MS",
        default_value_t = crate::serve::DEFAULT_IDLE_TIMEOUT_MS
    )]
    pub idle_timeout_ms: u64,

    /// Most connections the admin address holds at once; more wait to be accepted.
    #[arg(
        id = "admin-max-connections",
        long = "admin-max-connections",
        env = "HOOKLINE_ADMIN_MAX_CONNECTIONS",
        default_value_t = DEFAULT_ADMIN_MAX_CONNECTIONS
    )]
    pub max_connections: usize,
}

/// Default cap on the admin address's connections: scrapers and probes need a few.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

impl AdminSettings {
    /// The connection limits of the admin address; zero values are refused.
    pub fn limits(&self) -> Result<crate::serve::ConnectionLimits, crate::Error> {
        crate::serve::ConnectionLimits::from_settings(
            "admin",
            self.header_timeout_ms,
            self.idle_timeout_ms,
            self.max_connections,
        )
    }
}

impl Default for AdminSettings {
    /// Loopback port 0 (a free port), default limits.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            header_timeout_ms: crate::serve::DEFAULT_HEADER_TIMEOUT_MS,
            idle_timeout_ms: crate::serve::DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
        }
    }
}

/// How logs are written.
#[derive(Clone, Debug, Args)]
pub struct LogSettings {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long = "log-format", env = "HOOKLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,

    /// Log filter in `RUST_LOG` syntax (for example `info,hookline_dispatcher=debug`).
    #[arg(long = "log", env = "HOOKLINE_LOG", default_value = "info")]
    pub filter: String,
}

/// The log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty key in {text:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_options_are_key_value_pairs() {
        assert_eq!(
            parse_option("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert!(parse_option("no-equals").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_option("=value").unwrap_err().contains("empty key"));
    }
}
