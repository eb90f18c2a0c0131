//! Logs and the metrics registry.
//!
//! The registry is created here and passed to every stage, never global, so tests running several
//! pipelines in one process keep their figures apart.

use prometheus::{IntGaugeVec, Opts, Registry};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the process's log subscriber. Call once, from `main`.
pub fn init_logging(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|error| format!("invalid --log filter {:?}: {error}", settings.filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let result = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|error| error.to_string())
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
