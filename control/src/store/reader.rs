//! Reads the logged topics (events, rejected, matches, attempts, dead) into the [`Store`], from
//! the start of the retention window, and keeps following them.
//!
//! The reader belongs to no consumer group: every control instance reads every partition, so each
//! has the whole picture. A partition the store has read before resumes at the position stored
//! with its records. Any other starts at the first offset at or after `now - retention`
//! (`offsets_for_times`); where Kafka cannot say (the embedded broker never can, and Kafka answers
//! "end" for a partition whose records are all older), it reads from the beginning and skips the
//! old records. It is ready once it has read up to the ends the topics had at start. Records are
//! stored in batches, one transaction each with their partitions' positions; every few seconds
//! the records past the retention window are deleted (and the rollups past the longest
//! statistics window), and the oldest ones while the store is above its size budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_runtime::{Error, KafkaSettings, kafka};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::origin::{Origin, OriginError};
use super::query::Stored;
use super::row::{self, RecordKind, Row};
use super::{Activities, Database, Store, StoreError};
use crate::store::metrics::StoreMetrics;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reader waits for a record before it checks its position and the purge.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// Most records stored in one transaction.
const BATCH: usize = 1_000;
/// How long records are gathered into one transaction after the first arrives: what the
/// history lags behind the topics, at most, besides the writing itself.
const GATHER: Duration = Duration::from_millis(100);
/// How often records past the retention window or above the size budget are deleted, and the
/// store's counts and size exported.
const TIDY_INTERVAL: Duration = Duration::from_secs(5);

/// What the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are not stored, and deleted once they get this old.
    pub window: Duration,
    /// The store's size budget: above it the oldest records are deleted until it takes at most
    /// [`SHRINK_TO`] of it, whatever the window says.
    pub max_bytes: u64,
}

/// What the store is shrunk to once it is above its budget, as a share of the budget: some
/// room, so it is not shrunk again at every tidy.
pub const SHRINK_TO: f64 = 0.9;

/// The store and what tells of its progress. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Logs {
    /// The store.
    pub store: Store,
    /// When resources were last active.
    pub activities: Activities,
    applied: watch::Receiver<u64>,
    ready: watch::Receiver<bool>,
    origin: Option<Origin>,
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
            origin: None,
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
            origin: None,
        }
    }

    /// The whole payload of the stored event `event`: the stored one, or, when the store kept
    /// only its first bytes, its record's value on the events topic.
    pub async fn payload(&self, event: &Stored) -> Result<Vec<u8>, OriginError> {
        if event.payload_complete() {
            return Ok(event.payload.clone().unwrap_or_default());
        }
        let Some(origin) = self.origin.clone() else {
            return Err(OriginError::Gone {
                partition: event.partition,
                offset: event.position,
            });
        };
        let event = event.clone();
        tokio::task::spawn_blocking(move || origin.payload(&event))
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
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
        F: Fn(&Database<'_>) -> Result<Option<T>, StoreError> + Clone + Send + 'static,
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
    /// Whether the size budget has deleted records (said once in the log).
    budget_reached: AtomicBool,
}

impl Reader {
    /// Opens the reader on the logged topics of `settings`, from the start of the retention
    /// window.
    pub async fn open(
        settings: &KafkaSettings,
        store: Store,
        retention: Retention,
        metrics: StoreMetrics,
    ) -> Result<(Self, Logs), crate::error::Error> {
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
        let kafka = settings.clone();
        let names: Vec<String> = kinds.keys().cloned().collect();
        let kinds_of = kinds.clone();
        let stored = store.clone();
        let installation = settings.topic_prefix.clone();
        let (consumer, ends, activities) = tokio::task::spawn_blocking(move || {
            stored.claim(&installation)?;
            let positions = stored.positions()?;
            let activities = stored.activities()?;
            let (consumer, ends, renewed) = assign(&kafka, &names, since_ms, &positions)?;
            for (topic, partition) in renewed {
                if let Some(kind) = kinds_of.get(&topic) {
                    stored.forget(*kind, &topic, partition)?;
                }
            }
            Ok::<_, crate::error::Error>((consumer, ends, activities))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        let (applied, applied_rx) = watch::channel(0);
        let (ready, ready_rx) = watch::channel(false);
        let loaded = Activities::default();
        loaded.load(activities);
        let activities = loaded;
        let logs = Logs {
            store: store.clone(),
            activities: activities.clone(),
            applied: applied_rx,
            ready: ready_rx,
            origin: Some(Origin::new(settings)),
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
                budget_reached: AtomicBool::new(false),
            },
            logs,
        ))
    }

    /// Reads until `shutdown`. A database error stops it (and with it the process): a store that
    /// silently stops filling would show a false picture. A store SQLite finds damaged is deleted
    /// first, so the next start rebuilds it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let store = self.store.clone();
        let result = self.read(shutdown).await;
        if let Err(error) = &result
            && error.is_corrupt()
        {
            error!(%error, "The control store is damaged; it is deleted and will be rebuilt from \
                   the topics when control starts again.");
            store.discard()?;
        }
        result
    }

    async fn read(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        match self.follow(&shutdown).await {
            // Stopped while waiting for the store's database: nothing is lost, the positions
            // stored say where the next run goes on.
            Err(StoreError::Stopped) => Ok(()),
            result => result,
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let mut last_tidy = tokio::time::Instant::now();
        let mut batch = Batch::default();
        self.check_ready();
        self.tidy(shutdown).await?;
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                received = tokio::time::timeout(IDLE_CHECK, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    self.take(&message, &mut batch);
                    // What arrives within the gathering time joins the same transaction: a
                    // transaction costs about as much as the records it writes, so a few large
                    // ones cost far less than many small ones.
                    let until = tokio::time::Instant::now() + GATHER;
                    while batch.rows.len() < BATCH {
                        match tokio::time::timeout_at(until, self.consumer.recv()).await {
                            Ok(Ok(message)) => self.take(&message, &mut batch),
                            Ok(Err(_)) | Err(_) => break,
                        }
                    }
                }
                Ok(Err(error)) => {
                    if kafka::transient(&error) {
                        // Kafka away: said once by the reachability check, not per poll.
                        tracing::debug!(%error, "Store reader reported an error.");
                    } else {
                        tracing::warn!(%error, "Store reader reported an error.");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_idle) => {
                    // Nothing arrived for a while: the store is as fresh as the topics.
                    for kind in RecordKind::ALL {
                        self.metrics.lag(kind, 0.0);
                    }
                }
            }
            if !batch.positions.is_empty() {
                let Batch {
                    rows,
                    positions,
                    newest,
                } = std::mem::take(&mut batch);
                let rows = Arc::new(rows);
                let stored = rows.clone();
                self.patiently(shutdown, move |store| {
                    let positions: Vec<(&str, i32, i64)> = positions
                        .iter()
                        .map(|((topic, partition), next)| (topic.as_str(), *partition, *next))
                        .collect();
                    store.insert(&stored, &positions)
                })
                .await?;
                self.activities.note(&rows);
                let now = now_ms();
                for (kind, at_ms) in newest {
                    self.metrics.lag(kind, (now - at_ms).max(0) as f64 / 1000.0);
                }
                self.applied.send_modify(|generation| *generation += 1);
            }
            let was_ready = *self.ready.borrow();
            self.check_ready();
            if !was_ready && *self.ready.borrow() {
                self.publish_counts(shutdown).await?;
            }
            if last_tidy.elapsed() >= TIDY_INTERVAL {
                last_tidy = tokio::time::Instant::now();
                self.tidy(shutdown).await?;
                self.publish_counts(shutdown).await?;
            }
        }
    }

    /// Takes one record into `batch` (its row, unless it is past the retention window or
    /// invalid; its position in any case).
    fn take(&self, message: &BorrowedMessage<'_>, batch: &mut Batch) {
        let Some(kind) = self.kinds.get(message.topic()).copied() else {
            return;
        };
        batch.positions.insert(
            (message.topic().to_owned(), message.partition()),
            message.offset() + 1,
        );
        match row::parse(kind, message) {
            Ok(row) => {
                if let Some(record_ms) = message.timestamp().to_millis() {
                    let entry = batch.newest.entry(kind).or_insert(record_ms);
                    *entry = (*entry).max(record_ms);
                }
                if row.at_ms >= self.cutoff_ms() {
                    batch.rows.push(row);
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

    /// Deletes the records past the retention window, then, while the store is above its
    /// budget, the oldest ones; exports the store's size and reach.
    async fn tidy(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let cutoff = self.cutoff_ms();
        let budget = self.retention.max_bytes;
        let (expired, evicted, size, oldest) = self
            .patiently(shutdown, move |store| {
                let expired = store.purge(cutoff)?;
                store.prune_rollups(now_ms())?;
                let mut evicted = 0;
                let mut size = store.size()?;
                // Deleting frees pages for reuse, so the used size falls at once; a few rounds at
                // most, since each deletes the share the budget calls for.
                for _ in 0..4 {
                    if size.used_bytes <= budget {
                        break;
                    }
                    let keep = SHRINK_TO * budget as f64 / size.used_bytes as f64;
                    evicted += store.shrink(1.0 - keep)?;
                    size = store.size()?;
                }
                Ok((expired, evicted, size, store.oldest_ms()?))
            })
            .await?;
        self.metrics.deleted("retention", expired);
        self.metrics.deleted("size", evicted);
        self.metrics.size(size, budget, oldest);
        if evicted > 0 && !self.budget_reached.swap(true, Ordering::Relaxed) {
            let reach_hours = oldest.map(|oldest| (now_ms() - oldest) as f64 / 3_600_000.0);
            warn!(
                budget_bytes = budget,
                reach_hours,
                retention = ?self.retention.window,
                "The control store reached its size budget: from now on its oldest records are \
                 deleted before the retention window ends (counted in \
                 hookline_control_store_deleted_records_total{{reason=\"size\"}}). Raise \
                 --control-store-max-bytes to keep the whole window."
            );
        }
        Ok(())
    }

    async fn publish_counts(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let counts = self.patiently(shutdown, Store::counts).await?;
        for (kind, count) in counts {
            self.metrics.records(kind, count);
        }
        Ok(())
    }

    /// Runs `work` on the store off the async workers. While the store's database does not
    /// answer (PostgreSQL restarting or away), waits and tries again, saying so once, so history
    /// catches up when it is back rather than control stopping. [`StoreError::Stopped`] when
    /// `shutdown` comes meanwhile.
    async fn patiently<T, F>(&self, shutdown: &CancellationToken, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Store) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        let work = Arc::new(work);
        let mut waits = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build();
        let mut said = false;
        loop {
            let store = self.store.clone();
            let attempt = work.clone();
            let result = tokio::task::spawn_blocking(move || attempt(&store))
                .await
                .map_err(|_| StoreError::Panicked)?;
            match result {
                Err(error) if error.is_transient() => {
                    if !said {
                        said = true;
                        warn!(%error, "The control store's database does not answer; history \
                              waits and goes on where it stopped once it does.");
                    }
                    let wait = waits.next().unwrap_or(Duration::from_secs(5));
                    tokio::select! {
                        () = shutdown.cancelled() => return Err(StoreError::Stopped),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                result => {
                    if said && result.is_ok() {
                        info!("The control store's database answers again.");
                    }
                    return result;
                }
            }
        }
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

/// Records read and not stored yet.
#[derive(Default)]
struct Batch {
    /// The rows to store.
    rows: Vec<Row>,
    /// The next offset of each partition read: (topic, partition) to offset.
    positions: HashMap<(String, i32), i64>,
    /// The newest record time of each kind (for the lag).
    newest: HashMap<RecordKind, i64>,
}

/// Where each non-empty partition ended when the reader started, by topic and partition.
type Ends = HashMap<(String, i32), i64>;

/// A topic and one of its partitions.
type Place = (String, i32);

/// Creates the consumer and assigns every partition of `topics`: where the store stopped when
/// it has read the partition before (`positions`) and Kafka still holds that offset, else from
/// the first offset at or after `since_ms`. Returns the ends (high watermarks) of the non-empty
/// partitions, and the partitions the store read further than they now go (to forget).
/// Blocking.
fn assign(
    settings: &KafkaSettings,
    topics: &[String],
    since_ms: i64,
    positions: &HashMap<(String, i32), i64>,
) -> Result<(StreamConsumer, Ends, Vec<Place>), Error> {
    let mut config = kafka::reader_config(settings, "control-store");
    // History may lag a quarter of a second: fetches then carry many records each, which costs
    // control and the brokers far less than one small fetch per partition every 100 ms.
    // (`--kafka-option` settings still win.)
    for (key, value) in [("fetch.min.bytes", "65536"), ("fetch.wait.max.ms", "250")] {
        if !settings.options.iter().any(|(set, _)| set == key) {
            config.set(key, value);
        }
    }
    let consumer = kafka::create_consumer(&config)?;
    let kafka_error = |context: String| move |source| Error::Kafka { context, source };
    let mut assignment = TopicPartitionList::new();
    let mut by_time = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let mut resumed = 0;
    let mut renewed = Vec::new();
    for topic in topics {
        let partitions = hookline_runtime::topics::partition_count(&consumer, topic)?;
        for partition in 0..partitions as i32 {
            let (low, high) = hookline_runtime::topics::watermarks(&consumer, topic, partition)
                .map_err(kafka_error(format!("fetch watermarks of {topic}")))?;
            if high > low {
                ends.insert((topic.clone(), partition), high);
            }
            match positions.get(&(topic.clone(), partition)) {
                // Kafka still holds what comes next: go on from there.
                Some(&next) if (low..=high).contains(&next) => {
                    resumed += 1;
                    if next == high {
                        // Nothing to read there: caught up already.
                        ends.remove(&(topic.clone(), partition));
                    }
                    assignment
                        .add_partition_offset(topic, partition, Offset::Offset(next))
                        .map_err(kafka_error(format!("assign {topic}")))?;
                }
                Some(&next) if next > high => {
                    warn!(%topic, partition, stored = next, end = high,
                          "The store read further than this partition now goes (a topic made \
                           anew, or another cluster): the records stored from it are forgotten \
                           (their offsets now name other records) and it is read again from \
                           the retention window.");
                    renewed.push((topic.clone(), partition));
                    by_time
                        .add_partition_offset(topic, partition, Offset::Offset(since_ms))
                        .map_err(kafka_error(format!("assign {topic}")))?;
                }
                // Never read, or deleted by Kafka's retention meanwhile.
                Some(_) | None => {
                    by_time
                        .add_partition_offset(topic, partition, Offset::Offset(since_ms))
                        .map_err(kafka_error(format!("assign {topic}")))?;
                }
            }
        }
    }
    if resumed > 0 {
        info!(
            partitions = resumed,
            "Control store resumes reading where it stopped."
        );
    }
    let found = if by_time.count() == 0 {
        by_time
    } else {
        consumer
            .offsets_for_times(by_time.clone(), METADATA_TIMEOUT)
            .unwrap_or_else(|error| {
                // Unanswered: read those partitions from their beginning (their entries hold the
                // time asked for, not an offset).
                warn!(%error, "Kafka did not say where the retention window starts; the store \
                      reads those partitions from their beginning.");
                let mut beginning = TopicPartitionList::new();
                for element in by_time.elements() {
                    let _ = beginning.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        Offset::Beginning,
                    );
                }
                beginning
            })
    };
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) if element.error().is_ok() && offset >= 0 => {
                let key = (element.topic().to_owned(), element.partition());
                if ends.get(&key).is_some_and(|end| offset >= *end) {
                    ends.remove(&key);
                }
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
    Ok((consumer, ends, renewed))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
