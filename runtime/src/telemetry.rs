//! Logs and the metrics registry.
//!
//! The registry is created here and passed to every stage, never global, so tests running several
//! pipelines in one process keep their figures apart.

use prometheus::{IntGaugeVec, Opts, Registry};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LogFormat, LogSettings};

/// Installs the process's log subscriber. Call once, from `main`.
pub fn init_logging(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|error| format!("invalid --log filter {:?}: {error}", settings.filter))?;
    let base = tracing_subscriber::registry()
        .with(filter)
        .with(QuietOutages);
    let result = match settings.format {
        LogFormat::Text => base
            .with(tracing_subscriber::fmt::layer().with_target(true))
            .try_init(),
        LogFormat::Json => base
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .json()
                    .flatten_event(true),
            )
            .try_init(),
    };
    result.map_err(|error| error.to_string())
}

/// Keeps librdkafka's per-connection complaints out of the log while brokers are away: every
/// client of every role reports each failed connection attempt, hundreds of lines a minute
/// during an outage. [`crate::reach`] says once that Kafka is unreachable and once that it is
/// back; other librdkafka errors (TLS, authentication, unknown topics, ...) still pass.
pub struct QuietOutages;

/// Words of librdkafka's messages about connections to brokers failing or dropping.
const OUTAGE_MARKERS: [&str; 7] = [
    "AllBrokersDown",
    "BrokerTransportFailure",
    "Connection refused",
    "Connect to ipv",
    "Disconnected",
    "brokers are down",
    "Broker: Not coordinator",
];

impl<S: Subscriber> Layer<S> for QuietOutages {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        let from_librdkafka = matches!(metadata.target(), "librdkafka" | "rdkafka::client");
        if !from_librdkafka || *metadata.level() > Level::WARN {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !OUTAGE_MARKERS
            .iter()
            .any(|marker| message.0.contains(marker))
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// A registry with the metrics every process exports: `hookline_build_info` and the process
/// metrics (CPU, memory, file descriptors).
pub fn registry(roles: &str) -> Registry {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "hookline_build_info",
            "Always 1; labels say which version runs which roles.",
        ),
        &["version", "roles"],
    )
    .expect("static metric definition is valid");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), roles])
        .set(1);
    register(&registry, build_info);
    #[cfg(target_os = "linux")]
    register(
        &registry,
        prometheus::process_collector::ProcessCollector::for_self(),
    );
    registry
}

/// Registers a collector. Each crate registers its own metrics once per registry, so a clash is
/// a programming error.
pub fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, collector: C) {
    registry
        .register(Box::new(collector))
        .expect("each metric is registered once per registry");
}
