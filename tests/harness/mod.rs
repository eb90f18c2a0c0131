//! The end-to-end test harness: a Kafka per test run (the embedded broker, or the real cluster
//! named by `KAFKA_BROKERS`), a unique topic prefix per test, a receiver that records what it
//! gets and answers what the test says, and `eventually` instead of sleeps.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod kafka;
pub mod receiver;
pub mod stages;

use std::future::Future;
use std::time::{Duration, Instant};

pub use kafka::TestKafka;
pub use receiver::TestReceiver;

/// How long `eventually` waits by default: generous for a loaded 2-core CI machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing the test with `what` after `PATIENCE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs of the code under test, shown for failing tests (`RUST_LOG` filters them).
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // As the binary logs: librdkafka's per-connection complaints kept out during outages.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        )
        .with(hookline_runtime::telemetry::QuietOutages)
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .try_init();
}
