//! Whether the Kafka cluster answers: a small metadata request every few seconds. While it does
//! not, `/readyz` answers 503 (component `kafka`), `hookline_kafka_reachable` is 0, and one log
//! line says so; one more says when it is back. Roles do not stop meanwhile: producers resend and
//! consumers wait (see [`crate::produce`]), so a broker outage needs no human.

use std::time::{Duration, Instant};

use prometheus::{IntGauge, Registry};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::ReadyFlag;
use crate::settings::KafkaSettings;
use crate::telemetry::register;
use crate::{Error, kafka};

/// Whether the process reaches its Kafka cluster (1) or not (0).
pub const KAFKA_REACHABLE: &str = "hookline_kafka_reachable";

/// How often the cluster is asked.
const INTERVAL: Duration = Duration::from_secs(2);
/// How long one answer may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Failed requests in a row before the cluster counts as unreachable (one lost request is no
/// outage).
const FAILURES: u32 = 2;

/// Watches the cluster of `settings`.
pub struct Reach {
    client: BaseConsumer,
    topic: String,
    flag: ReadyFlag,
    reachable: IntGauge,
}

impl Reach {
    /// A watcher that marks `flag` ready while the cluster answers, and exports its state to
    /// `registry`.
    pub fn new(
        settings: &KafkaSettings,
        flag: ReadyFlag,
        registry: &Registry,
    ) -> Result<Self, Error> {
        let config: ClientConfig = kafka::client_config(settings, "reach");
        let client = config.create().map_err(Error::ClientConfig)?;
        let reachable = IntGauge::new(
            KAFKA_REACHABLE,
            "1 while this process's Kafka cluster answers metadata requests, 0 while it does not.",
        )
        .expect("valid metric");
        register(registry, reachable.clone());
        Ok(Self {
            client,
            topic: settings.topics().events(),
            flag,
            reachable,
        })
    }

    /// Asks the cluster every few seconds until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0;
        let mut lost_at: Option<Instant> = None;
        let mut known = false;
        let client = std::sync::Arc::new(self.client);
        loop {
            let asking = client.clone();
            let topic = self.topic.clone();
            let answer = tokio::task::spawn_blocking(move || {
                // Serves the client's queued events (its errors), which nothing else reads.
                let _ = asking.poll(Duration::ZERO);
                asking.fetch_metadata(Some(&topic), TIMEOUT).map(|_| ())
            })
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
            match answer {
                Ok(()) => {
                    failures = 0;
                    if let Some(since) = lost_at.take() {
                        info!(
                            after_seconds = since.elapsed().as_secs(),
                            "Kafka is reachable again."
                        );
                    }
                    known = true;
                    self.flag.set(true);
                    self.reachable.set(1);
                }
                Err(error) => {
                    failures += 1;
                    if failures >= FAILURES && lost_at.is_none() {
                        lost_at = Some(Instant::now());
                        warn!(%error, "Kafka is unreachable; /readyz answers 503 until it is back. \
                               Nothing accepted is lost: writes are resent and reads wait.");
                        self.flag.set(false);
                        self.reachable.set(0);
                    } else if !known {
                        self.reachable.set(0);
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }
}
