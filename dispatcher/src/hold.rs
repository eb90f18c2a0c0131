//! Holding the jobs of paused destinations, and handing them back once they resume; and the
//! lines of ordered (FIFO) destinations, delivered one job at a time.
//!
//! A job whose destination is paused is written to the compacted held topic (key: its delivery
//! id) and its deliveries offset is then committed: holding costs one write per job, never a pass
//! per period, however long the pause and the backlog. One dispatcher of the group owns each held
//! partition and reads it in order:
//!
//! - a job whose destination is paused, or that an earlier held job of the same destination waits
//!   before, stays on hold (the partition's committed offset stops at the first such job);
//! - any other job is released: written back to the deliveries topic unchanged (same delivery id,
//!   attempt and body), then tombstoned in the held topic, so compaction removes it.
//!
//! When a destination with held jobs resumes, the reader goes back to the first held job of the
//! partition and reads on, passing over the jobs it released meanwhile (it knows their
//! tombstones), so the resumed destination's jobs are released in the order they were held. A new
//! owner of a partition (after a rebalance or a restart) cannot know what the previous one
//! released past the committed offset until it has seen the tombstones, which come after the
//! jobs: it first reads to the end learning them, then goes back and releases.
//!
//! An ordered destination's jobs all come here (the deliveries reader writes them in the order it
//! read them, and the held topic has one partition), and wait in the destination's line: the
//! owner keeps only their offsets, fetches the first, delivers it (every retry waits in place, the
//! rest of the line behind it), tombstones it once it is delivered or dead-lettered, and goes on
//! with the next. Other destinations, ordered or not, are not held up; a paused ordered
//! destination's line stops at its first job. The committed offset stops at the first job of a
//! line, as at a held one, so a new owner starts each line again from its first unfinished job
//! (which may then be delivered twice, with the same `webhook-id`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_runtime::consume::Settled;
use hookline_runtime::observe::ConsumerMetrics;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::{KafkaSettings, kafka, order, produce};
use hookline_schemas::{ResourceId, SourcePosition};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Error;
use crate::metrics::Metrics;
use crate::pipeline::{ReadJob, parse_job};

/// The role name of the held topic's consumer group.
pub const HOLD_ROLE: &str = "dispatcher-held";

/// Releases in flight before their acknowledgements are awaited.
const BATCH: usize = 256;

/// How long the reader waits for another record before it settles the releases in flight.
const IDLE: Duration = Duration::from_millis(50);

/// How often the held gauges are updated.
const REPORT: Duration = Duration::from_secs(1);

/// A tombstone whose acknowledgement has not come back yet: released, at an offset not known.
const UNACKNOWLEDGED: i64 = i64::MAX;

/// How long a rewind may take; it is local unless the partition was just revoked.
const SEEK_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a partition still learning while no record comes is checked against its end, in
/// case librdkafka's end-of-partition event did not reach the loop.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How many bytes of the jobs waiting in lines the reader keeps, per partition, as it reads them;
/// a job not kept is fetched by its offset when its turn comes.
const LINE_MEMORY: usize = 16 << 20;

/// How long one fetch of a line's next job may take before it is tried again.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The jobs on hold of one destination in one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    jobs: u64,
    /// The offset of the first one.
    first: i64,
    /// When the oldest was held, in milliseconds since the epoch.
    oldest_ms: i64,
}

/// What the reader knows of one partition it owns.
#[derive(Debug, Default)]
struct Partition {
    /// Set while it reads to the end after gaining the partition, learning tombstones; the
    /// offset it goes back to then.
    learning_from: Option<i64>,
    /// Released delivery ids, with the offset of their tombstone (see [`UNACKNOWLEDGED`]).
    released: HashMap<String, i64>,
    /// Jobs on hold, by destination.
    held: HashMap<ResourceId, Run>,
    /// Ordered destinations' lines.
    lines: HashMap<ResourceId, Line>,
    /// The bytes of the records the lines keep.
    kept_bytes: usize,
    /// The next offset to read.
    next: Option<i64>,
}

/// The jobs of one ordered destination waiting in one partition, in order.
#[derive(Debug, Default)]
struct Line {
    /// Their offsets, with when each was held (milliseconds since the epoch); the first is the
    /// one delivered next, or now.
    jobs: VecDeque<(i64, i64)>,
    /// Set while the first is being delivered; cancelling it stops that delivery.
    running: Option<CancellationToken>,
    /// Records kept as they were read (key and value), by offset, within [`LINE_MEMORY`].
    kept: HashMap<i64, (String, Vec<u8>)>,
}

/// The bytes a kept record counts for.
fn kept_size((key, value): &(String, Vec<u8>)) -> usize {
    key.len() + value.len()
}

/// How the delivery of a line's first job ended.
enum LineEnd {
    /// Delivered or dead-lettered, and tombstoned at this offset.
    Finished { delivery_id: String, tombstone: i64 },
    /// Not in the topic any more.
    Gone,
    /// Stopped before it finished (its destination paused, its partition lost, a shutdown): it
    /// stays first.
    Stopped,
}

/// A line's delivery that ended, with the job's partition, destination and offset.
type LineDone = (i32, ResourceId, i64, Result<LineEnd, Error>);

/// The part of a held job the releaser reads: not its body.
#[derive(serde::Deserialize)]
struct HeldJob {
    destination_id: ResourceId,
}

/// What to do with a job read from the held topic.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Its tombstone comes later: an earlier reader released it.
    AlreadyReleased,
    /// Keep it.
    Hold,
    /// It is (already) in its ordered destination's line.
    Line,
    /// Send it back to the deliveries topic.
    Release,
}

impl Partition {
    /// Whether a job read at `offset` is held, released or was released before.
    fn judge(
        &mut self,
        offset: i64,
        delivery_id: &str,
        destination: Option<&ResourceId>,
        held_at_ms: i64,
        paused: impl Fn(&ResourceId) -> bool,
        ordered: impl Fn(&ResourceId) -> bool,
    ) -> Verdict {
        if self
            .released
            .get(delivery_id)
            .is_some_and(|tombstone| *tombstone > offset)
        {
            return Verdict::AlreadyReleased;
        }
        // A line keeps its jobs even if its destination stops being ordered, so that jobs of
        // the destination held after them do not overtake them.
        if let Some(destination) = destination
            && (ordered(destination) || self.lines.contains_key(destination))
        {
            let line = self.lines.entry(destination.clone()).or_default();
            // Read again after a rewind, it is in the line already; a job held before the
            // destination became ordered, read again on its resume, goes in offset order.
            if let Err(at) = line
                .jobs
                .binary_search_by_key(&offset, |(queued, _)| *queued)
            {
                line.jobs.insert(at, (offset, held_at_ms));
            }
            return Verdict::Line;
        }
        if let Some(destination) = destination
            && (paused(destination) || self.held.contains_key(destination))
        {
            let run = self.held.entry(destination.clone()).or_insert(Run {
                jobs: 0,
                first: offset,
                oldest_ms: held_at_ms,
            });
            run.jobs += 1;
            run.oldest_ms = run.oldest_ms.min(held_at_ms);
            return Verdict::Hold;
        }
        self.released.insert(delivery_id.to_owned(), UNACKNOWLEDGED);
        Verdict::Release
    }

    /// Where the group's committed offset may move: the first job still held, or past
    /// everything read.
    fn commit(&self) -> Option<i64> {
        // `next` too: after a rewind it is behind the lines' first jobs.
        let lines = self.lines.values().filter_map(|line| line.jobs.front());
        let firsts = self.held.values().map(|run| run.first);
        firsts
            .chain(lines.map(|(offset, _)| *offset))
            .chain(self.next)
            .min()
    }

    /// The first job of `destination`'s line at `offset` finished: the next one is first.
    fn finished(&mut self, destination: &ResourceId, offset: i64) {
        if let Some(line) = self.lines.get_mut(destination) {
            line.running = None;
            if line.jobs.front().is_some_and(|(first, _)| *first == offset) {
                line.jobs.pop_front();
            }
            // Kept again if it was read again (a rewind) while it was delivered.
            if let Some(record) = line.kept.remove(&offset) {
                self.kept_bytes = self.kept_bytes.saturating_sub(kept_size(&record));
            }
            if line.jobs.is_empty() {
                let freed: usize = line.kept.values().map(kept_size).sum();
                self.kept_bytes = self.kept_bytes.saturating_sub(freed);
                self.lines.remove(destination);
            }
        }
    }

    /// Keeps the record of a job just put in `destination`'s line, if memory allows.
    fn keep(&mut self, destination: &ResourceId, offset: i64, record: (String, Vec<u8>)) {
        let size = kept_size(&record);
        if self.kept_bytes + size > LINE_MEMORY {
            return;
        }
        if let Some(line) = self.lines.get_mut(destination)
            && line
                .jobs
                .binary_search_by_key(&offset, |(queued, _)| *queued)
                .is_ok()
            && !line.kept.contains_key(&offset)
        {
            line.kept.insert(offset, record);
            self.kept_bytes += size;
        }
    }

    /// The kept record of the job at `offset` of `destination`'s line, taken out.
    fn take_kept(&mut self, destination: &ResourceId, offset: i64) -> Option<(String, Vec<u8>)> {
        let record = self.lines.get_mut(destination)?.kept.remove(&offset)?;
        self.kept_bytes = self.kept_bytes.saturating_sub(kept_size(&record));
        Some(record)
    }

    /// Forgets every line (their deliveries were stopped first).
    fn clear_lines(&mut self) {
        self.lines.clear();
        self.kept_bytes = 0;
    }

    /// Lines that may start delivering their first job: not delivering, not paused.
    fn startable(
        &self,
        paused: impl Fn(&ResourceId) -> bool,
    ) -> impl Iterator<Item = (&ResourceId, i64)> {
        self.lines
            .iter()
            .filter(move |(destination, line)| line.running.is_none() && !paused(destination))
            .filter_map(|(destination, line)| Some((destination, line.jobs.front()?.0)))
    }

    /// Whether a destination with jobs on hold here is no longer paused, so the partition must
    /// be read again from its first held job.
    fn resumed(&self, paused: impl Fn(&ResourceId) -> bool) -> bool {
        self.held.keys().any(|destination| !paused(destination))
    }

    /// Forgets tombstones behind `commit`: their jobs are never read again.
    fn forget_before(&mut self, commit: i64) {
        self.released.retain(|_, tombstone| *tombstone >= commit);
    }
}

/// A release on its way: the job back on the deliveries topic and its tombstone.
struct Pending {
    partition: i32,
    delivery_id: String,
    job: Result<DeliveryFuture, KafkaError>,
    tombstone: Result<DeliveryFuture, KafkaError>,
}

/// Reads the held topic and releases the jobs of destinations that are not paused.
pub struct Releaser {
    consumer: kafka::GroupConsumer,
    /// Asks the brokers where partitions end (see [`PROBE_INTERVAL`]); in no group.
    prober: Arc<BaseConsumer>,
    /// Fetches the first job of a line by its offset; in no group, created on first use.
    fetcher: Arc<Fetcher>,
    producer: FutureProducer,
    store: ResourceStore,
    metrics: Metrics,
    held_topic: String,
    deliveries_topic: String,
}

/// Reads single records of the held topic by offset, for lines (see the module documentation).
struct Fetcher {
    config: rdkafka::ClientConfig,
    consumer: Mutex<Option<BaseConsumer>>,
}

impl Fetcher {
    /// The record at `offset` of `partition` (its key and value), `None` when it is not there
    /// any more. Blocking: call it off the runtime's threads.
    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<(String, Vec<u8>)>, KafkaError> {
        let mut consumer = self
            .consumer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if consumer.is_none() {
            *consumer = Some(self.config.create()?);
        }
        let Some(consumer) = consumer.as_ref() else {
            unreachable!("created above");
        };
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        consumer.assign(&assignment)?;
        let found = Self::poll_for(consumer, offset);
        // Assigned, it would go on fetching while the line delivers.
        consumer.unassign()?;
        found
    }

    fn poll_for(
        consumer: &BaseConsumer,
        offset: i64,
    ) -> Result<Option<(String, Vec<u8>)>, KafkaError> {
        let deadline = std::time::Instant::now() + FETCH_TIMEOUT;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) if message.offset() == offset => {
                    let key = String::from_utf8_lossy(message.key().unwrap_or_default());
                    let value = message.payload().unwrap_or_default().to_vec();
                    return Ok(Some((key.into_owned(), value)));
                }
                // Compacted away.
                Some(Ok(message)) if message.offset() > offset => return Ok(None),
                Some(Ok(_)) | None => {}
                Some(Err(error)) => return Err(error),
            }
        }
        Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::RequestTimedOut,
        ))
    }
}

impl Releaser {
    /// The held topic's consumer, in its own group.
    pub fn build(
        settings: &KafkaSettings,
        consumers: &ConsumerMetrics,
        producer: FutureProducer,
        store: ResourceStore,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        // The end of a partition is where learning stops (see the module documentation).
        let consumer = kafka::group_consumer_with(
            settings,
            HOLD_ROLE,
            consumers,
            &[("enable.partition.eof", "true")],
        )?;
        let prober = kafka::client_config(settings, HOLD_ROLE)
            .create()
            .map_err(hookline_runtime::Error::ClientConfig)?;
        let fetcher = Fetcher {
            config: kafka::reader_config(settings, "dispatcher-line"),
            consumer: Mutex::new(None),
        };
        Ok(Self {
            consumer,
            prober: Arc::new(prober),
            fetcher: Arc::new(fetcher),
            producer,
            store,
            metrics,
            held_topic: settings.topics().held(),
            deliveries_topic: settings.topics().deliveries(),
        })
    }

    /// Releases until `shutdown`, then settles what is in flight and commits. `deliver` works
    /// on the first job of a line until it is delivered or dead-lettered, or its token is
    /// cancelled.
    pub async fn run<D, F>(self, shutdown: &CancellationToken, deliver: D) -> Result<(), Error>
    where
        D: Fn(ReadJob, CancellationToken) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Settled, Error>> + Send + 'static,
    {
        self.consumer
            .subscribe(&[self.held_topic.as_str()])
            .map_err(|source| Error::Subscribe {
                topic: self.held_topic.clone(),
                source,
            })?;
        let mut partitions: HashMap<i32, Partition> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut resources = self.store.subscribe();
        let mut rebalances = self.consumer.context().rebalances();
        let mut report = tokio::time::interval(REPORT);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probed = tokio::time::Instant::now();
        let mut running: JoinSet<LineDone> = JoinSet::new();
        loop {
            let now = self.consumer.context().rebalances();
            if now != rebalances {
                rebalances = now;
                self.settle(&mut partitions, &mut pending).await?;
                self.stop_lines(&mut partitions, &mut running).await?;
                self.relearn(&mut partitions);
            }
            self.start_lines(&mut partitions, &mut running, &deliver);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = running.join_next() => {
                    let (partition, destination, offset, end) =
                        done.map_err(|error| Error::Task(error.to_string()))?;
                    self.line_ended(&mut partitions, partition, &destination, offset, end?);
                }
                _ = report.tick() => self.report(&partitions),
                changed = resources.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.settle(&mut partitions, &mut pending).await?;
                    self.rewind_resumed(&mut partitions);
                }
                received = tokio::time::timeout(IDLE, self.consumer.recv()) => match received {
                    Err(_idle) => {
                        self.settle(&mut partitions, &mut pending).await?;
                        if probed.elapsed() >= PROBE_INTERVAL {
                            probed = tokio::time::Instant::now();
                            self.probe_ends(&mut partitions).await;
                        }
                    }
                    Ok(Ok(message)) => {
                        self.read(&message, &mut partitions, &mut pending).await;
                        if pending.len() >= BATCH {
                            self.settle(&mut partitions, &mut pending).await?;
                        }
                    }
                    Ok(Err(KafkaError::PartitionEOF(partition))) => {
                        self.settle(&mut partitions, &mut pending).await?;
                        self.reached_end(partition, &mut partitions);
                    }
                    Ok(Err(error)) => {
                        if kafka::transient(&error) {
                        // Kafka away: said once by the reachability check, not per poll.
                        tracing::debug!(%error, "Kafka consumer of the held topic reported an error.");
                    } else {
                        tracing::warn!(%error, "Kafka consumer of the held topic reported an error.");
                    }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        self.settle(&mut partitions, &mut pending).await?;
        self.stop_lines(&mut partitions, &mut running).await?;
        self.settle(&mut partitions, &mut pending).await?;
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => warn!(%error, "Could not commit the held topic's offsets at shutdown."),
        }
        Ok(())
    }

    fn paused(&self) -> impl Fn(&ResourceId) -> bool + use<> {
        let snapshot = self.store.snapshot();
        move |id| {
            snapshot
                .destinations
                .get(id)
                .is_some_and(|destination| destination.paused)
        }
    }

    fn ordered(&self) -> impl Fn(&ResourceId) -> bool + use<> {
        let snapshot = self.store.snapshot();
        move |id| {
            snapshot
                .destinations
                .get(id)
                .is_some_and(|destination| destination.ordered)
        }
    }

    /// Starts delivering the first job of every line that is idle and not paused.
    fn start_lines<D, F>(
        &self,
        partitions: &mut HashMap<i32, Partition>,
        running: &mut JoinSet<LineDone>,
        deliver: &D,
    ) where
        D: Fn(ReadJob, CancellationToken) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Settled, Error>> + Send + 'static,
    {
        let paused = self.paused();
        for (partition, state) in partitions.iter_mut() {
            if state.learning_from.is_some() {
                continue;
            }
            let ready: Vec<(ResourceId, i64)> = state
                .startable(&paused)
                .map(|(destination, offset)| (destination.clone(), offset))
                .collect();
            for (destination, offset) in ready {
                let token = CancellationToken::new();
                let kept = state.take_kept(&destination, offset);
                if let Some(line) = state.lines.get_mut(&destination) {
                    line.running = Some(token.clone());
                }
                let partition = *partition;
                let work = self.first_of_line(partition, offset, kept, token, deliver);
                running.spawn(async move { (partition, destination, offset, work.await) });
            }
        }
    }

    /// Has the job at `offset` delivered (fetching it unless it was `kept`) and tombstones it;
    /// waits through a Kafka outage until `token` is cancelled.
    fn first_of_line<D, F>(
        &self,
        partition: i32,
        offset: i64,
        kept: Option<(String, Vec<u8>)>,
        token: CancellationToken,
        deliver: &D,
    ) -> impl Future<Output = Result<LineEnd, Error>> + Send + 'static
    where
        D: Fn(ReadJob, CancellationToken) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Settled, Error>> + Send + 'static,
    {
        let (fetcher, producer, topic) = (
            self.fetcher.clone(),
            self.producer.clone(),
            self.held_topic.clone(),
        );
        let deliver = deliver.clone();
        async move {
            let mut kept = kept;
            let (delivery_id, payload) = loop {
                if let Some(record) = kept.take() {
                    break record;
                }
                let (fetcher, name) = (fetcher.clone(), topic.clone());
                let fetched =
                    tokio::task::spawn_blocking(move || fetcher.fetch(&name, partition, offset))
                        .await
                        .map_err(|error| Error::Task(error.to_string()))?;
                match fetched {
                    Ok(Some(record)) => break record,
                    Ok(None) => return Ok(LineEnd::Gone),
                    Err(error) => {
                        debug!(%error, partition, offset, "The first job of a line was not fetched; trying again.");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = token.cancelled() => return Ok(LineEnd::Stopped),
                        }
                    }
                }
            };
            if token.is_cancelled() {
                return Ok(LineEnd::Stopped);
            }
            let position = SourcePosition {
                topic: topic.clone(),
                partition,
                offset,
            };
            let job = parse_job(position, &payload);
            if deliver(job, token).await? != Settled::Done {
                return Ok(LineEnd::Stopped);
            }
            let tombstone = FutureRecord::<str, [u8]>::to(&topic)
                .key(delivery_id.as_str())
                .partition(partition);
            let ack = produce::enqueue(&producer, tombstone).await;
            let result = match ack {
                Ok(ack) => produce::acknowledged(&producer, &topic, ack)
                    .await
                    .map(|delivery| delivery.offset),
                Err(error) => Err(error),
            };
            let tombstone = result.map_err(|source| Error::Produce { topic, source })?;
            Ok(LineEnd::Finished {
                delivery_id,
                tombstone,
            })
        }
    }

    /// A line's first job finished, or stopped; the loop starts the next one.
    fn line_ended(
        &self,
        partitions: &mut HashMap<i32, Partition>,
        partition: i32,
        destination: &ResourceId,
        offset: i64,
        end: LineEnd,
    ) {
        let Some(state) = partitions.get_mut(&partition) else {
            return;
        };
        match end {
            LineEnd::Finished {
                delivery_id,
                tombstone,
            } => {
                self.metrics.released.inc();
                state.released.insert(delivery_id, tombstone);
                state.finished(destination, offset);
            }
            LineEnd::Gone => state.finished(destination, offset),
            LineEnd::Stopped => {
                if let Some(line) = state.lines.get_mut(destination) {
                    line.running = None;
                }
            }
        }
        self.store_commit(partition, state);
    }

    async fn read(
        &self,
        message: &BorrowedMessage<'_>,
        partitions: &mut HashMap<i32, Partition>,
        pending: &mut Vec<Pending>,
    ) {
        let offset = message.offset();
        let state = partitions.entry(message.partition()).or_insert_with(|| {
            // First record since the partition was gained: learn before releasing anything.
            Partition {
                learning_from: Some(offset),
                ..Partition::default()
            }
        });
        state.next = Some(offset + 1);
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let Some(payload) = message.payload() else {
            // A tombstone: that job was released.
            state.released.insert(key, offset);
            return;
        };
        if state.learning_from.is_some() {
            return;
        }
        let job = serde_json::from_slice::<HeldJob>(payload).ok();
        let destination = job.as_ref().map(|job| &job.destination_id);
        let held_at_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        let (paused, ordered) = (self.paused(), self.ordered());
        match state.judge(offset, &key, destination, held_at_ms, paused, ordered) {
            Verdict::AlreadyReleased | Verdict::Hold => {}
            Verdict::Line => {
                if let Some(destination) = destination {
                    state.keep(destination, offset, (key, payload.to_vec()));
                }
            }
            Verdict::Release => {
                // A record that is not a job goes back too: delivery dead-letters it with the
                // reason, where an operator sees it.
                // One key per destination, so its jobs go back to one partition in the order
                // they were held; not the destination alone, which marks an ordered one's jobs.
                let job_key = destination.map_or_else(
                    || key.clone(),
                    |destination| order::job_key(destination.as_str(), ""),
                );
                let record = FutureRecord::to(&self.deliveries_topic)
                    .key(&job_key)
                    .payload(payload);
                let job = produce::enqueue(&self.producer, record).await;
                let tombstone = FutureRecord::<str, [u8]>::to(&self.held_topic)
                    .key(key.as_str())
                    .partition(message.partition());
                let tombstone = produce::enqueue(&self.producer, tombstone).await;
                pending.push(Pending {
                    partition: message.partition(),
                    delivery_id: key,
                    job,
                    tombstone,
                });
            }
        }
    }

    /// Waits for the releases in flight, notes their tombstones' offsets and stores how far
    /// each partition may be committed. A release the broker refused stops the dispatcher with
    /// its held job uncommitted, so it is released again after a restart.
    async fn settle(
        &self,
        partitions: &mut HashMap<i32, Partition>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), Error> {
        let released = pending.len() as u64;
        for release in pending.drain(..) {
            self.acknowledged(&self.deliveries_topic, release.job)
                .await?;
            let offset = self
                .acknowledged(&self.held_topic, release.tombstone)
                .await?;
            if let Some(state) = partitions.get_mut(&release.partition) {
                state.released.insert(release.delivery_id, offset);
            }
        }
        self.metrics.released.inc_by(released);
        for (partition, state) in partitions.iter_mut() {
            self.store_commit(*partition, state);
        }
        Ok(())
    }

    /// Stores how far `partition` may be committed, once it is not learning.
    fn store_commit(&self, partition: i32, state: &mut Partition) {
        if state.learning_from.is_some() {
            return;
        }
        let Some(commit) = state.commit() else {
            return;
        };
        state.forget_before(commit);
        // `store_offset` stores the offset after the one given: the next to read.
        if commit > 0
            && let Err(error) = self
                .consumer
                .store_offset(&self.held_topic, partition, commit - 1)
        {
            debug!(%error, partition, "Held topic offset not stored.");
        }
    }

    /// Stops every line's delivery (an attempt in progress gets the drain time) and notes how
    /// each ended, before partitions change hands or the dispatcher stops.
    async fn stop_lines(
        &self,
        partitions: &mut HashMap<i32, Partition>,
        running: &mut JoinSet<LineDone>,
    ) -> Result<(), Error> {
        for line in partitions.values().flat_map(|state| state.lines.values()) {
            if let Some(token) = &line.running {
                token.cancel();
            }
        }
        while let Some(done) = running.join_next().await {
            let (partition, destination, offset, end) =
                done.map_err(|error| Error::Task(error.to_string()))?;
            self.line_ended(partitions, partition, &destination, offset, end?);
        }
        Ok(())
    }

    /// Ends the learning of partitions whose reader is at their end, which the end-of-partition
    /// event normally says first.
    async fn probe_ends(&self, partitions: &mut HashMap<i32, Partition>) {
        let learning: Vec<(i32, i64)> = partitions
            .iter()
            .filter(|(_, state)| state.learning_from.is_some())
            .filter_map(|(partition, state)| Some((*partition, state.next?)))
            .collect();
        if learning.is_empty() {
            return;
        }
        let (prober, topic) = (self.prober.clone(), self.held_topic.clone());
        let ends = tokio::task::spawn_blocking(move || {
            learning
                .into_iter()
                .filter_map(|(partition, next)| {
                    let (_, high) = prober
                        .fetch_watermarks(&topic, partition, SEEK_TIMEOUT)
                        .ok()?;
                    (next >= high).then_some(partition)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for partition in ends {
            self.reached_end(partition, partitions);
        }
    }

    /// Learning reached the end of `partition`: go back and release.
    fn reached_end(&self, partition: i32, partitions: &mut HashMap<i32, Partition>) {
        let state = partitions.entry(partition).or_default();
        if let Some(from) = state.learning_from.take() {
            info!(
                partition,
                from,
                released = state.released.len(),
                "Read the held topic to its end; releasing from its first unfinished job."
            );
            state.held.clear();
            state.clear_lines();
            state.next = Some(from);
            self.seek(partition, from);
        }
    }

    /// Partitions may have changed hands: every one kept goes back to where its committed
    /// offset may be and learns again, keeping what it released itself; ones gained start
    /// learning at their first record.
    fn relearn(&self, partitions: &mut HashMap<i32, Partition>) {
        partitions.retain(|_, state| state.learning_from.is_some() || state.commit().is_some());
        for (partition, state) in partitions.iter_mut() {
            let Some(from) = state.learning_from.or_else(|| state.commit()) else {
                continue;
            };
            state.held.clear();
            // Their deliveries were stopped first.
            state.clear_lines();
            state.learning_from = Some(from);
            state.next = Some(from);
            self.seek(*partition, from);
        }
    }

    /// A destination with held jobs resumed (or was deleted): read those partitions again from
    /// their first held job.
    fn rewind_resumed(&self, partitions: &mut HashMap<i32, Partition>) {
        let paused = self.paused();
        for (partition, state) in partitions.iter_mut() {
            if state.learning_from.is_some() || !state.resumed(&paused) {
                continue;
            }
            if let Some(first) = state.commit() {
                info!(
                    partition,
                    from = first,
                    "Releasing jobs of resumed destinations."
                );
                state.held.clear();
                state.next = Some(first);
                self.seek(*partition, first);
            }
        }
    }

    fn seek(&self, partition: i32, offset: i64) {
        if let Err(error) = self.consumer.seek(
            &self.held_topic,
            partition,
            Offset::Offset(offset),
            SEEK_TIMEOUT,
        ) {
            // Not ours any more: its next owner starts from the committed offset.
            debug!(%error, partition, "Held topic partition not rewound.");
        }
    }

    /// The offset the broker gave a record, waiting through an outage (see
    /// [`hookline_runtime::produce`]).
    async fn acknowledged(
        &self,
        topic: &str,
        ack: Result<DeliveryFuture, KafkaError>,
    ) -> Result<i64, Error> {
        let result = match ack {
            Ok(ack) => produce::acknowledged(&self.producer, topic, ack)
                .await
                .map(|delivery| delivery.offset),
            Err(error) => Err(error),
        };
        result.map_err(|source| Error::Produce {
            topic: topic.to_owned(),
            source,
        })
    }

    /// The held gauges count the jobs on hold and those waiting in lines.
    fn report(&self, partitions: &HashMap<i32, Partition>) {
        let known = partitions
            .values()
            .filter(|state| state.learning_from.is_none());
        let runs = known
            .clone()
            .flat_map(|state| state.held.values())
            .map(|run| (run.jobs, run.oldest_ms));
        let lines = known
            .flat_map(|state| state.lines.values())
            .filter_map(|line| Some((line.jobs.len() as u64, line.jobs.front()?.1)));
        let (jobs, oldest) =
            runs.chain(lines)
                .fold((0, None::<i64>), |(jobs, oldest), (count, oldest_ms)| {
                    (
                        jobs + count,
                        Some(oldest.map_or(oldest_ms, |o| o.min(oldest_ms))),
                    )
                });
        self.metrics
            .held_jobs
            .set(i64::try_from(jobs).unwrap_or(i64::MAX));
        let age = oldest.map_or(0.0, |oldest| (now_ms() - oldest).max(0) as f64 / 1000.0);
        self.metrics.held_oldest_age.set(age);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unordered(_: &ResourceId) -> bool {
        false
    }

    fn id(text: &str) -> ResourceId {
        ResourceId::parse(text).unwrap()
    }

    #[test]
    fn a_resumed_destination_waits_behind_its_own_held_jobs_not_others() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused_a = |d: &ResourceId| d.as_str() == "a";
        assert_eq!(
            state.judge(10, "a1", Some(&a), 1, paused_a, unordered),
            Verdict::Hold
        );
        assert_eq!(
            state.judge(11, "b1", Some(&b), 2, paused_a, unordered),
            Verdict::Release
        );
        state.next = Some(12);
        assert_eq!(state.commit(), Some(10), "the committed offset stops at a1");
        // `a` resumed, but a job of `a` read before the rewind stays behind a1.
        let none = |_: &ResourceId| false;
        assert_eq!(
            state.judge(12, "a2", Some(&a), 3, none, unordered),
            Verdict::Hold
        );
        assert!(state.resumed(none));
        assert_eq!(state.held[&a].jobs, 2);
    }

    #[test]
    fn a_rewind_passes_over_what_was_released_and_releases_in_order() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused_a = |d: &ResourceId| d.as_str() == "a";
        state.judge(10, "a1", Some(&a), 1, paused_a, unordered);
        state.judge(11, "b1", Some(&b), 2, paused_a, unordered);
        // b1's tombstone was written at 20.
        state.released.insert("b1".to_owned(), 20);
        // Rewound to 10 after `a` resumed.
        state.held.clear();
        let none = |_: &ResourceId| false;
        assert_eq!(
            state.judge(10, "a1", Some(&a), 1, none, unordered),
            Verdict::Release
        );
        assert_eq!(
            state.judge(11, "b1", Some(&b), 2, none, unordered),
            Verdict::AlreadyReleased
        );
        // The same delivery held again after its release is a new hold.
        assert_eq!(
            state.judge(25, "b1", Some(&b), 3, none, unordered),
            Verdict::Release
        );
    }

    #[test]
    fn a_job_released_but_not_yet_acknowledged_is_not_released_twice() {
        let a = id("a");
        let mut state = Partition::default();
        let none = |_: &ResourceId| false;
        assert_eq!(
            state.judge(5, "a1", Some(&a), 1, none, unordered),
            Verdict::Release
        );
        assert_eq!(
            state.judge(6, "a1", Some(&a), 1, none, unordered),
            Verdict::AlreadyReleased
        );
    }

    #[test]
    fn the_commit_follows_the_first_held_job_and_forgets_only_what_is_behind_it() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused = |d: &ResourceId| d.as_str() == "b";
        state.judge(3, "a1", Some(&a), 1, paused, unordered);
        state.released.insert("a1".to_owned(), 4);
        state.judge(7, "b1", Some(&b), 1, paused, unordered);
        state.next = Some(8);
        assert_eq!(state.commit(), Some(7));
        state.forget_before(7);
        assert!(
            state.released.is_empty(),
            "a1 and its tombstone are behind 7"
        );
        state.held.clear();
        assert_eq!(
            state.commit(),
            Some(8),
            "nothing held: past everything read"
        );
    }

    #[test]
    fn an_ordered_destination_s_jobs_wait_in_line_and_the_commit_follows_its_first() {
        let (crm, other) = (id("crm"), id("other"));
        let mut state = Partition::default();
        let none = |_: &ResourceId| false;
        let ordered = |d: &ResourceId| d.as_str() == "crm";
        assert_eq!(
            state.judge(3, "c1", Some(&crm), 1, none, ordered),
            Verdict::Line
        );
        assert_eq!(
            state.judge(4, "o1", Some(&other), 2, none, ordered),
            Verdict::Release
        );
        assert_eq!(
            state.judge(5, "c2", Some(&crm), 3, none, ordered),
            Verdict::Line
        );
        state.next = Some(6);
        assert_eq!(state.commit(), Some(3), "stops at the line's first job");
        assert_eq!(state.startable(none).collect::<Vec<_>>(), [(&crm, 3)]);

        // Read again after a rewind: nothing is queued twice.
        assert_eq!(
            state.judge(3, "c1", Some(&crm), 1, none, ordered),
            Verdict::Line
        );
        assert_eq!(state.lines[&crm].jobs.len(), 2);

        state.lines.get_mut(&crm).unwrap().running = Some(CancellationToken::new());
        assert_eq!(state.startable(none).count(), 0, "one delivery at a time");
        state.finished(&crm, 3);
        assert_eq!(state.commit(), Some(5));
        assert_eq!(state.startable(none).collect::<Vec<_>>(), [(&crm, 5)]);
        let paused = |d: &ResourceId| d.as_str() == "crm";
        assert_eq!(state.startable(paused).count(), 0, "a paused line waits");
        state.finished(&crm, 5);
        assert!(state.lines.is_empty(), "an empty line is forgotten");
        assert_eq!(state.commit(), Some(6));
    }

    #[test]
    fn a_line_keeps_its_order_when_its_destination_stops_being_ordered() {
        let crm = id("crm");
        let mut state = Partition::default();
        let none = |_: &ResourceId| false;
        let ordered = |d: &ResourceId| d.as_str() == "crm";
        state.judge(1, "c1", Some(&crm), 1, none, ordered);
        assert_eq!(
            state.judge(2, "c2", Some(&crm), 2, none, unordered),
            Verdict::Line,
            "behind c1, not released past it"
        );
        state.finished(&crm, 1);
        state.finished(&crm, 2);
        assert_eq!(
            state.judge(7, "c3", Some(&crm), 3, none, unordered),
            Verdict::Release
        );
    }

    #[test]
    fn after_a_rewind_the_commit_stays_at_the_reader_not_at_a_line_further_on() {
        let (paused, crm) = (id("paused"), id("crm"));
        let mut state = Partition::default();
        let is_paused = |d: &ResourceId| d.as_str() == "paused";
        let ordered = |d: &ResourceId| d.as_str() == "crm";
        state.judge(3, "p1", Some(&paused), 1, is_paused, ordered);
        state.judge(50, "c1", Some(&crm), 2, is_paused, ordered);
        state.next = Some(51);
        assert_eq!(state.commit(), Some(3));
        // Rewound to 3 (another destination resumed): until 3 is read again, nothing past it
        // may be committed.
        state.held.clear();
        state.next = Some(3);
        assert_eq!(state.commit(), Some(3));
    }

    #[test]
    fn a_line_keeps_records_within_its_memory_and_gives_them_back_once() {
        let crm = id("crm");
        let mut state = Partition::default();
        let none = |_: &ResourceId| false;
        let ordered = |_: &ResourceId| true;
        state.judge(1, "c1", Some(&crm), 1, none, ordered);
        state.judge(2, "c2", Some(&crm), 1, none, ordered);
        state.keep(&crm, 1, ("c1".to_owned(), vec![0; LINE_MEMORY - 2]));
        state.keep(&crm, 2, ("c2".to_owned(), vec![0; 10]));
        assert_eq!(state.kept_bytes, LINE_MEMORY, "c2 is over the budget");
        assert!(
            state.take_kept(&crm, 2).is_none(),
            "fetched when its turn comes"
        );
        assert!(state.take_kept(&crm, 1).is_some());
        assert!(state.take_kept(&crm, 1).is_none());
        assert_eq!(state.kept_bytes, 0);
        state.keep(&crm, 7, ("c7".to_owned(), vec![1]));
        assert_eq!(state.kept_bytes, 0, "only jobs in the line are kept");
    }
}
