//! Since when each destination has failed without a single success, kept on the compacted
//! destination-health topic so the window outlasts restarts of the dispatcher. A destination
//! that fails for longer than the window (5 days unless configured) is disabled.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hookline_runtime::time::{parse_rfc3339, rfc3339};
use hookline_runtime::{KafkaSettings, compacted};
use hookline_schemas::{DestinationHealth, ResourceId, SCHEMA_VERSION};
use rdkafka::producer::{FutureProducer, FutureRecord};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::Error;

/// What an attempt's outcome means for its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// It has failed without a success since this time (RFC 3339), longer than the window.
    Disable(String),
}

/// The failing destinations and since when.
pub struct Health {
    window: Option<Duration>,
    failing: Mutex<HashMap<ResourceId, OffsetDateTime>>,
    producer: FutureProducer,
    topic: String,
}

impl Health {
    /// Tracks health for a dispatcher using `settings`, writing through its `producer`;
    /// `window` of zero never disables.
    pub fn new(settings: &KafkaSettings, producer: FutureProducer, window: Duration) -> Self {
        Self {
            window: (!window.is_zero()).then_some(window),
            failing: Mutex::new(HashMap::new()),
            producer,
            topic: settings.topics().destination_health(),
        }
    }

    /// Reads what earlier runs recorded; returns false if `shutdown` came first.
    pub async fn load(
        &self,
        settings: &KafkaSettings,
        shutdown: &CancellationToken,
    ) -> Result<bool, Error> {
        let Some(records) = compacted::read_to_end(settings, &self.topic, shutdown).await? else {
            return Ok(false);
        };
        let mut failing = self.lock();
        for value in records.into_values() {
            match serde_json::from_slice::<DestinationHealth>(&value) {
                Ok(health) => {
                    if let Some(since) = parse_rfc3339(&health.failing_since) {
                        failing.insert(health.destination_id, since);
                    }
                }
                Err(error) => {
                    warn!(%error, topic = %self.topic, "Unreadable destination health record skipped.")
                }
            }
        }
        Ok(true)
    }

    /// Records an attempt to `destination`: `delivered`, or a failure the receiver is to blame
    /// for. Writes the transitions (first failure, first success) to the topic.
    pub fn record(&self, destination: &ResourceId, delivered: bool) -> Verdict {
        let now = OffsetDateTime::now_utc();
        let mut failing = self.lock();
        if delivered {
            if failing.remove(destination).is_some() {
                drop(failing);
                self.write(destination, None);
            }
            return Verdict::Keep;
        }
        let since = match failing.get(destination) {
            Some(since) => *since,
            None => {
                failing.insert(destination.clone(), now);
                drop(failing);
                self.write(destination, Some(now));
                return Verdict::Keep;
            }
        };
        match self.window {
            Some(window) if now - since >= window => {
                failing.remove(destination);
                drop(failing);
                // Disabled now; enabling it again starts a fresh window.
                self.write(destination, None);
                Verdict::Disable(rfc3339(since))
            }
            _ => Verdict::Keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ResourceId, OffsetDateTime>> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes (or, with `None`, clears) a destination's record. Not waited for: losing one
    /// only shortens what a restart remembers, and the next transition writes again.
    fn write(&self, destination: &ResourceId, since: Option<OffsetDateTime>) {
        let value = since.map(|since| {
            serde_json::to_vec(&DestinationHealth {
                schema_version: SCHEMA_VERSION,
                destination_id: destination.clone(),
                failing_since: rfc3339(since),
            })
            .unwrap_or_default()
        });
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(destination.as_str());
        if let Some(value) = &value {
            record = record.payload(value.as_slice());
        }
        if let Err((error, _)) = self.producer.send_result(record) {
            warn!(%error, destination = %destination, "Destination health not recorded.");
        }
    }
}
