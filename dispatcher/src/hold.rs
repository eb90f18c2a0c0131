//! Holding the jobs of paused destinations, and handing them back once they resume.
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_runtime::observe::ConsumerMetrics;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::{KafkaSettings, kafka, produce};
use hookline_schemas::ResourceId;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Message, Offset};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Error;
use crate::metrics::Metrics;

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
    /// The next offset to read.
    next: Option<i64>,
}

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
    ) -> Verdict {
        if self
            .released
            .get(delivery_id)
            .is_some_and(|tombstone| *tombstone > offset)
        {
            return Verdict::AlreadyReleased;
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
        self.held.values().map(|run| run.first).min().or(self.next)
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
    producer: FutureProducer,
    store: ResourceStore,
    metrics: Metrics,
    held_topic: String,
    deliveries_topic: String,
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
        Ok(Self {
            consumer,
            prober: Arc::new(prober),
            producer,
            store,
            metrics,
            held_topic: settings.topics().held(),
            deliveries_topic: settings.topics().deliveries(),
        })
    }

    /// Releases until `shutdown`, then settles what is in flight and commits.
    pub async fn run(self, shutdown: &CancellationToken) -> Result<(), Error> {
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
        loop {
            let now = self.consumer.context().rebalances();
            if now != rebalances {
                rebalances = now;
                self.settle(&mut partitions, &mut pending).await?;
                self.relearn(&mut partitions);
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
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
        match state.judge(offset, &key, destination, held_at_ms, self.paused()) {
            Verdict::AlreadyReleased | Verdict::Hold => {}
            Verdict::Release => {
                // A record that is not a job goes back too: delivery dead-letters it with the
                // reason, where an operator sees it.
                let job_key = destination.map_or(key.as_str(), ResourceId::as_str);
                let record = FutureRecord::to(&self.deliveries_topic)
                    .key(job_key)
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
            if state.learning_from.is_some() {
                continue;
            }
            let Some(commit) = state.commit() else {
                continue;
            };
            state.forget_before(commit);
            // `store_offset` stores the offset after the one given: the next to read.
            if commit > 0
                && let Err(error) =
                    self.consumer
                        .store_offset(&self.held_topic, *partition, commit - 1)
            {
                debug!(%error, partition, "Held topic offset not stored.");
            }
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

    fn report(&self, partitions: &HashMap<i32, Partition>) {
        let runs = partitions
            .values()
            .filter(|state| state.learning_from.is_none())
            .flat_map(|state| state.held.values());
        let (jobs, oldest) = runs.fold((0, None::<i64>), |(jobs, oldest), run| {
            (
                jobs + run.jobs,
                Some(oldest.map_or(run.oldest_ms, |o| o.min(run.oldest_ms))),
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

    fn id(text: &str) -> ResourceId {
        ResourceId::parse(text).unwrap()
    }

    #[test]
    fn a_resumed_destination_waits_behind_its_own_held_jobs_not_others() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused_a = |d: &ResourceId| d.as_str() == "a";
        assert_eq!(state.judge(10, "a1", Some(&a), 1, paused_a), Verdict::Hold);
        assert_eq!(
            state.judge(11, "b1", Some(&b), 2, paused_a),
            Verdict::Release
        );
        state.next = Some(12);
        assert_eq!(state.commit(), Some(10), "the committed offset stops at a1");
        // `a` resumed, but a job of `a` read before the rewind stays behind a1.
        let none = |_: &ResourceId| false;
        assert_eq!(state.judge(12, "a2", Some(&a), 3, none), Verdict::Hold);
        assert!(state.resumed(none));
        assert_eq!(state.held[&a].jobs, 2);
    }

    #[test]
    fn a_rewind_passes_over_what_was_released_and_releases_in_order() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused_a = |d: &ResourceId| d.as_str() == "a";
        state.judge(10, "a1", Some(&a), 1, paused_a);
        state.judge(11, "b1", Some(&b), 2, paused_a);
        // b1's tombstone was written at 20.
        state.released.insert("b1".to_owned(), 20);
        // Rewound to 10 after `a` resumed.
        state.held.clear();
        let none = |_: &ResourceId| false;
        assert_eq!(state.judge(10, "a1", Some(&a), 1, none), Verdict::Release);
        assert_eq!(
            state.judge(11, "b1", Some(&b), 2, none),
            Verdict::AlreadyReleased
        );
        // The same delivery held again after its release is a new hold.
        assert_eq!(state.judge(25, "b1", Some(&b), 3, none), Verdict::Release);
    }

    #[test]
    fn a_job_released_but_not_yet_acknowledged_is_not_released_twice() {
        let a = id("a");
        let mut state = Partition::default();
        let none = |_: &ResourceId| false;
        assert_eq!(state.judge(5, "a1", Some(&a), 1, none), Verdict::Release);
        assert_eq!(
            state.judge(6, "a1", Some(&a), 1, none),
            Verdict::AlreadyReleased
        );
    }

    #[test]
    fn the_commit_follows_the_first_held_job_and_forgets_only_what_is_behind_it() {
        let (a, b) = (id("a"), id("b"));
        let mut state = Partition::default();
        let paused = |d: &ResourceId| d.as_str() == "b";
        state.judge(3, "a1", Some(&a), 1, paused);
        state.released.insert("a1".to_owned(), 4);
        state.judge(7, "b1", Some(&b), 1, paused);
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
}
