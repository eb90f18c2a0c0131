//! Reads the logged topics (events, rejected, matches, attempts, dead) into the [`Store`], from
//! the start of the retention window, and keeps following them.
//!
//! The reader belongs to no consumer group: every control instance reads every partition, so each
//! has the whole picture. At start it asks Kafka for the first offset at or after
//! `now - retention` (`offsets_for_times`); where Kafka cannot say (the embedded broker never can,
//! and Kafka answers "end" for a partition whose records are all older), it reads from the
//! beginning and skips the old records. It is ready once it has read up to the ends the topics had
//! at start. Records are stored in batches, one transaction each; older ones are purged every
//! minute.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use hookline_runtime::{Error, KafkaSettings, kafka};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use rusqlite::Connection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::row::{self, RecordKind, Row};
use super::{Activities, Store, StoreError};
use crate::store::metrics::StoreMetrics;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reader waits for a record before it checks its position and the purge.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// Most records stored in one transaction.
const BATCH: usize = 1_000;
/// How often records past the retention window or the size limit are deleted, and the record
/// counts exported (counting is a scan of an index).
const TIDY_INTERVAL: Duration = Duration::from_secs(5);

/// What the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are not stored, and deleted once they get this old.
    pub window: Duration,
    /// At most this many records are kept; the oldest stored go first. A guard against a volume
    /// the window alone would let outgrow the memory (or disk) the store has.
    pub max_records: u64,
}

/// The store and what tells of its progress. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Logs {
    /// The store.
    pub store: Store,
    /// When resources were last active.
    pub activities: Activities,
    applied: watch::Receiver<u64>,
    ready: watch::Receiver<bool>,
}

impl Logs {
    /// A store nobody fills, ready at once: for tests of the API without Kafka.
    pub fn fixed(store: Store) -> Self {
        let (_, applied) = watch::channel(0);
        let (_, ready) = watch::channel(true);
        Self {
            store,
            activities: Activities::default(),
            applied,
            ready,
        }
    }

    /// A store nobody fills that never finishes loading: for tests of the API without Kafka.
    #[cfg(test)]
    pub(crate) fn loading(store: Store) -> Self {
        let (_, applied) = watch::channel(0);
        let (_, ready) = watch::channel(false);
        Self {
            store,
            activities: Activities::default(),
            applied,
            ready,
        }
    }

    /// Whether the store holds every record the topics had when it started.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the store is ready (true), or when its reader stopped before (false).
    pub fn when_ready(&self) -> impl Future<Output = bool> + Send + 'static + use<> {
        let mut ready = self.ready.clone();
        async move { ready.wait_for(|ready| *ready).await.is_ok() }
    }

    /// Asks `question` now and after every batch the reader stores, until it answers `Some` or
    /// `timeout` passes (then `None`).
    pub async fn wait_for<T, F>(
        &self,
        timeout: Duration,
        question: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<Option<T>, StoreError> + Clone + Send + 'static,
    {
        let mut applied = self.applied.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            applied.borrow_and_update();
            if let Some(answer) = self.store.run(question.clone()).await? {
                return Ok(Some(answer));
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                // The reader stopped: nothing new will come; one last look happened above.
                Ok(Err(_)) | Err(_) => return Ok(None),
            }
        }
    }
}

/// The reader, opened and assigned.
pub struct Reader {
    consumer: StreamConsumer,
    kinds: HashMap<String, RecordKind>,
    ends: Ends,
    store: Store,
    activities: Activities,
    retention: Retention,
    metrics: StoreMetrics,
    applied: watch::Sender<u64>,
    ready: watch::Sender<bool>,
}

impl Reader {
    /// Opens the reader on the logged topics of `settings`, from the start of the retention
    /// window.
    pub async fn open(
        settings: &KafkaSettings,
        store: Store,
        retention: Retention,
        metrics: StoreMetrics,
    ) -> Result<(Self, Logs), Error> {
        let topics = settings.topics();
        let kinds: HashMap<String, RecordKind> = [
            (topics.events(), RecordKind::Event),
            (topics.rejected(), RecordKind::Rejected),
            (topics.matches(), RecordKind::Match),
            (topics.attempts(), RecordKind::Attempt),
            (topics.dead(), RecordKind::Dead),
        ]
        .into_iter()
        .collect();
        let since_ms = now_ms() - i64::try_from(retention.window.as_millis()).unwrap_or(i64::MAX);
        let settings = settings.clone();
        let names: Vec<String> = kinds.keys().cloned().collect();
        let (consumer, ends) =
            tokio::task::spawn_blocking(move || assign(&settings, &names, since_ms))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        let (applied, applied_rx) = watch::channel(0);
        let (ready, ready_rx) = watch::channel(false);
        let activities = Activities::default();
        let logs = Logs {
            store: store.clone(),
            activities: activities.clone(),
            applied: applied_rx,
            ready: ready_rx,
        };
        Ok((
            Self {
                consumer,
                kinds,
                ends,
                store,
                activities,
                retention,
                metrics,
                applied,
                ready,
            },
            logs,
        ))
    }

    /// Reads until `shutdown`. A database error stops it (and with it the process): a store that
    /// silently stops filling would show a false picture.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let mut last_tidy = tokio::time::Instant::now();
        let mut batch = Vec::new();
        let mut newest: HashMap<RecordKind, i64> = HashMap::new();
        self.check_ready();
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                received = tokio::time::timeout(IDLE_CHECK, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    self.take(&message, &mut batch, &mut newest);
                    // Whatever else is already here joins the same transaction.
                    while batch.len() < BATCH {
                        match self.consumer.recv().now_or_never() {
                            Some(Ok(message)) => self.take(&message, &mut batch, &mut newest),
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                Ok(Err(error)) => {
                    warn!(%error, "Store reader reported an error.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_idle) => {
                    // Nothing arrived for a while: the store is as fresh as the topics.
                    for kind in RecordKind::ALL {
                        self.metrics.lag(kind, 0.0);
                    }
                }
            }
            if !batch.is_empty() {
                let rows = std::mem::take(&mut batch);
                let store = self.store.clone();
                let rows = tokio::task::spawn_blocking(move || store.insert(&rows).map(|()| rows))
                    .await
                    .map_err(|_| StoreError::Panicked)??;
                self.activities.note(&rows);
                let now = now_ms();
                for (kind, at_ms) in newest.drain() {
                    self.metrics.lag(kind, (now - at_ms).max(0) as f64 / 1000.0);
                }
                self.applied.send_modify(|generation| *generation += 1);
            }
            let was_ready = *self.ready.borrow();
            self.check_ready();
            if !was_ready && *self.ready.borrow() {
                self.publish_counts().await?;
            }
            if last_tidy.elapsed() >= TIDY_INTERVAL {
                last_tidy = tokio::time::Instant::now();
                self.tidy().await?;
                self.publish_counts().await?;
            }
        }
    }

    /// Parses one record into `batch`, unless it is past the retention window or invalid.
    fn take(
        &self,
        message: &BorrowedMessage<'_>,
        batch: &mut Vec<Row>,
        newest: &mut HashMap<RecordKind, i64>,
    ) {
        let Some(kind) = self.kinds.get(message.topic()).copied() else {
            return;
        };
        match row::parse(kind, message) {
            Ok(row) => {
                if let Some(record_ms) = message.timestamp().to_millis() {
                    let entry = newest.entry(kind).or_insert(record_ms);
                    *entry = (*entry).max(record_ms);
                }
                if row.at_ms >= self.cutoff_ms() {
                    batch.push(row);
                }
            }
            Err(error) => {
                self.metrics.skipped(kind);
                debug!(%error, topic = message.topic(), partition = message.partition(),
                       offset = message.offset(), "Record not stored.");
            }
        }
    }

    fn cutoff_ms(&self) -> i64 {
        now_ms() - i64::try_from(self.retention.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Deletes the records past the retention window, then those beyond the size limit.
    async fn tidy(&self) -> Result<(), StoreError> {
        let cutoff = self.cutoff_ms();
        let max = self.retention.max_records;
        let store = self.store.clone();
        let (expired, evicted) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((store.purge(cutoff)?, store.cap(max)?))
        })
        .await
        .map_err(|_| StoreError::Panicked)??;
        self.metrics.deleted("retention", expired);
        self.metrics.deleted("size", evicted);
        if evicted > 0 {
            warn!(
                evicted,
                max_records = max,
                "The store is full; its oldest records were deleted before the retention window ended."
            );
        }
        Ok(())
    }

    async fn publish_counts(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let counts = tokio::task::spawn_blocking(move || store.counts())
            .await
            .map_err(|_| StoreError::Panicked)??;
        for (kind, count) in counts {
            self.metrics.records(kind, count);
        }
        Ok(())
    }

    fn check_ready(&self) {
        if *self.ready.borrow() {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let caught_up = self.ends.iter().all(|((topic, partition), end)| {
            positions
                .find_partition(topic, *partition)
                .and_then(|p| p.offset().to_raw())
                .is_some_and(|position| position >= *end)
        });
        if caught_up {
            self.ready.send_replace(true);
            self.metrics.set_ready(true);
            info!(retention = ?self.retention, "Store loaded from the topics.");
        }
    }
}

/// Where each non-empty partition ended when the reader started, by topic and partition.
type Ends = HashMap<(String, i32), i64>;

/// Creates the consumer and assigns every partition of `topics` from the first offset at or
/// after `since_ms`; returns the ends (high watermarks) of the non-empty partitions. Blocking.
fn assign(
    settings: &KafkaSettings,
    topics: &[String],
    since_ms: i64,
) -> Result<(StreamConsumer, Ends), Error> {
    let consumer = kafka::create_consumer(&kafka::reader_config(settings, "control-store"))?;
    let kafka_error = |context: String| move |source| Error::Kafka { context, source };
    let mut by_time = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let partitions = hookline_runtime::topics::partition_count(&consumer, topic)?;
        for partition in 0..partitions as i32 {
            let (low, high) = hookline_runtime::topics::watermarks(&consumer, topic, partition)
                .map_err(kafka_error(format!("fetch watermarks of {topic}")))?;
            if high > low {
                ends.insert((topic.clone(), partition), high);
            }
            by_time
                .add_partition_offset(topic, partition, Offset::Offset(since_ms))
                .map_err(kafka_error(format!("assign {topic}")))?;
        }
    }
    let found = consumer
        .offsets_for_times(by_time.clone(), METADATA_TIMEOUT)
        .unwrap_or(by_time);
    let mut assignment = TopicPartitionList::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) if element.error().is_ok() && offset >= 0 => {
                Offset::Offset(offset)
            }
            // Unknown (or "end" from a broker that cannot look up times): read it all, skipping
            // what is too old.
            Offset::Offset(_)
            | Offset::Beginning
            | Offset::End
            | Offset::Stored
            | Offset::Invalid
            | Offset::OffsetTail(_) => Offset::Beginning,
        };
        assignment
            .add_partition_offset(element.topic(), element.partition(), offset)
            .map_err(kafka_error(format!("assign {}", element.topic())))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_error("assign the logged topics".to_owned()))?;
    Ok((consumer, ends))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
