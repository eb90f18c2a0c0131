//! Reads the resources topic into [`ResourceSet`] snapshots.

use std::sync::Arc;
use std::time::Duration;

use hookline_schemas::{Resource, ResourceKey, SCHEMA_VERSION};
use rdkafka::Message;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{BorrowedMessage, Headers};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ResourceSet;
use super::set::RecordInfo;
use super::writer::{CREATED_AT_HEADER, Written};
use crate::{Error, KafkaSettings};

/// How often the reader checks its position while caught up with nothing to read.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// The resource reader stopped before it had read the resources topic to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the resource reader stopped before the resources were loaded")]
pub struct StoreStopped;

/// A live view of the resources topic. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResourceStore {
    snapshot: watch::Receiver<Arc<ResourceSet>>,
    ready: watch::Receiver<bool>,
}

impl ResourceStore {
    /// Starts reading the resources topic from its beginning in a task of its own, which runs
    /// until `shutdown`. Returns once the topic's partitions are assigned (waiting while Kafka
    /// does not answer); [`Self::wait_ready`] waits until the topic was read to the end it had at
    /// start.
    pub async fn start(
        settings: &KafkaSettings,
        shutdown: CancellationToken,
    ) -> Result<(Self, JoinHandle<Result<(), Error>>), Error> {
        let topic = settings.topics().resources();
        let (consumer, high_watermarks) =
            crate::compacted::open(settings, &topic, "resources", &shutdown).await?;
        let (snapshot_tx, snapshot) = watch::channel(Arc::new(ResourceSet::default()));
        let (ready_tx, ready) = watch::channel(false);
        let reader = Reader {
            consumer,
            topic,
            high_watermarks,
            set: ResourceSet::default(),
            snapshot_tx,
            ready_tx,
        };
        let task = tokio::spawn(reader.run(shutdown));
        Ok((Self { snapshot, ready }, task))
    }

    /// A store that holds `set` and never changes: ready at once. For tests, previews and
    /// validation, where no topic is read.
    pub fn fixed(set: ResourceSet) -> Self {
        let (_, snapshot) = watch::channel(Arc::new(set));
        // `wait_ready` looks at the value first, so a closed channel holding `true` is ready.
        let (_, ready) = watch::channel(true);
        Self { snapshot, ready }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<ResourceSet> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that is told of every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ResourceSet>> {
        self.snapshot.clone()
    }

    /// Whether the topic was read to the end it had at start.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until this store applied the write `written` (or a later record of its partition)
    /// and returns that snapshot: what a writer needs to read its own writes.
    pub async fn wait_applied(&self, written: Written) -> Result<Arc<ResourceSet>, StoreStopped> {
        let mut updates = self.snapshot.clone();
        updates
            .wait_for(|set| {
                set.applied(written.partition)
                    .is_some_and(|offset| offset >= written.offset)
            })
            .await
            .map(|set| Arc::clone(&set))
            .map_err(|_| StoreStopped)
    }

    /// Waits until [`Self::is_ready`]. Fails if the reader stopped before that, so no stage ever
    /// starts on a partial view of the resources.
    pub async fn wait_ready(&self) -> Result<(), StoreStopped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(drop)
            .map_err(|_| StoreStopped)
    }
}

struct Reader {
    consumer: StreamConsumer,
    topic: String,
    high_watermarks: Vec<i64>,
    set: ResourceSet,
    snapshot_tx: watch::Sender<Arc<ResourceSet>>,
    ready_tx: watch::Sender<bool>,
}

impl Reader {
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        self.check_caught_up();
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                received = tokio::time::timeout(IDLE_CHECK, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    apply(&mut self.set, &message);
                    // While catching up, one snapshot at the end is enough.
                    if *self.ready_tx.borrow() {
                        self.publish();
                    }
                }
                Ok(Err(error)) => {
                    if crate::kafka::transient(&error) {
                        // Kafka away: said once by the reachability check, not per poll.
                        tracing::debug!(%error, topic = %self.topic, "Resource reader reported an error.");
                    } else {
                        tracing::warn!(%error, topic = %self.topic, "Resource reader reported an error.");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_idle) => {}
            }
            self.check_caught_up();
        }
    }
}

/// Applies one record of the resources topic to `set`; invalid records are logged and skipped.
fn apply(set: &mut ResourceSet, message: &BorrowedMessage<'_>) {
    let offset = message.offset();
    // Skipped records count as applied too: a writer waiting for its record must not wait
    // forever because the record was refused.
    set.mark_applied(message.partition(), offset);
    let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        warn!(offset, "Resource record without a text key skipped.");
        return;
    };
    let key = match ResourceKey::parse(key) {
        Ok(key) => key,
        Err(error) => {
            warn!(%error, key, offset, "Resource record with an invalid key skipped.");
            return;
        }
    };
    let Some(value) = message.payload() else {
        set.remove(&key);
        return;
    };
    match serde_json::from_slice::<Resource>(value) {
        Ok(resource) if resource.key() != key => {
            warn!(%key, offset, "Resource record whose key does not match its value skipped.");
        }
        Ok(resource) if resource.schema_version() > SCHEMA_VERSION => {
            warn!(%key, offset, version = resource.schema_version(),
                    "Resource written by a newer Hookline skipped; upgrade this process.");
        }
        Ok(resource) => {
            let record = record_info(set, &key, message);
            set.put_record(resource, record);
        }
        Err(error) => warn!(%error, %key, offset, "Invalid resource record skipped."),
    }
}

/// Where the record is and when its resource was created and changed. The creation time comes
/// from the record's [`CREATED_AT_HEADER`], so it survives compaction; a record without one
/// (written by an older Hookline, or by a writer that does not know it) keeps the creation time
/// this reader saw earlier, or else takes the record's own time.
fn record_info(set: &ResourceSet, key: &ResourceKey, message: &BorrowedMessage<'_>) -> RecordInfo {
    let updated_at = message.timestamp().to_millis().and_then(|millis| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
    });
    let header = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key == CREATED_AT_HEADER)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(crate::time::parse_rfc3339)
    });
    let created_at = header
        .or_else(|| set.record(key).and_then(|known| known.created_at))
        .or(updated_at);
    RecordInfo {
        partition: message.partition(),
        offset: message.offset(),
        created_at,
        updated_at,
    }
}

impl Reader {
    fn publish(&self) {
        self.snapshot_tx.send_replace(Arc::new(self.set.clone()));
    }

    fn check_caught_up(&mut self) {
        if *self.ready_tx.borrow() {
            return;
        }
        if crate::compacted::caught_up(&self.consumer, &self.topic, &self.high_watermarks) {
            self.publish();
            self.ready_tx.send_replace(true);
            info!(resources = self.set.len(), topic = %self.topic, "Resources loaded.");
        }
    }
}
