//! Since when each destination has failed without a single success, as the dispatchers record it
//! on the compacted `hookline.destination-health` topic (a record at the first failure, a
//! tombstone at the next success). The statistics and the console show it: a destination whose
//! circuit opens fails first, so "failing since" is what control can say of a circuit, whose state
//! lives in each dispatcher's memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use hookline_runtime::{Error, KafkaSettings, compacted};
use hookline_schemas::DestinationHealth;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The failing destinations, by id: since when (RFC 3339).
pub struct Failing {
    since: RwLock<HashMap<String, String>>,
    ready: watch::Sender<bool>,
}

impl Failing {
    /// Nothing is known until [`Self::run`] reads the topic.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            since: RwLock::default(),
            ready: watch::Sender::new(false),
        })
    }

    /// Resolves once every record the topic held when control started has been read (true), or
    /// when the reader stopped before (false).
    pub fn when_ready(&self) -> impl Future<Output = bool> + Send + 'static + use<> {
        let mut ready = self.ready.subscribe();
        async move { ready.wait_for(|ready| *ready).await.is_ok() }
    }

    /// Since when `destination` fails without a success; `None` when it does not.
    pub fn since(&self, destination: &str) -> Option<String> {
        self.since
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(destination)
            .cloned()
    }

    /// Applies one record of the topic: a failure's start, or (a tombstone) its end.
    fn apply(&self, key: &[u8], value: Option<&[u8]>) {
        let key = String::from_utf8_lossy(key).into_owned();
        let mut since = self.since.write().unwrap_or_else(PoisonError::into_inner);
        match value.map(serde_json::from_slice::<DestinationHealth>) {
            None => {
                since.remove(&key);
            }
            Some(Ok(health)) => {
                since.insert(health.destination_id.to_string(), health.failing_since);
            }
            Some(Err(error)) => warn!(%error, "Unreadable destination health record skipped."),
        }
    }

    /// Reads the destination-health topic from its beginning, then follows it, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        settings: KafkaSettings,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let topic = settings.topics().destination_health();
        compacted::follow(
            &settings,
            &topic,
            "control-health",
            &self.ready,
            &shutdown,
            |message| {
                use rdkafka::Message as _;
                self.apply(message.key().unwrap_or_default(), message.payload());
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_known_until_its_tombstone() {
        let failing = Failing::new();
        let record = br#"{"schema_version": 1, "destination_id": "crm", "failing_since": "2026-12-04T10:00:00Z"}"#;
        failing.apply(b"crm", Some(record));
        assert_eq!(
            failing.since("crm").as_deref(),
            Some("2026-12-04T10:00:00Z")
        );
        assert_eq!(failing.since("other"), None);
        failing.apply(b"crm", Some(b"not json"));
        assert_eq!(
            failing.since("crm").as_deref(),
            Some("2026-12-04T10:00:00Z")
        );
        failing.apply(b"crm", None);
        assert_eq!(failing.since("crm"), None);
    }
}
