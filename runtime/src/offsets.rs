//! Which offset a partition may commit while its records finish out of order.
//!
//! Records of a partition are started in offset order but may finish in any order (deliveries to
//! different destinations run concurrently). Committing past an unfinished record would lose it on
//! a crash, so the committable position is the lowest unfinished offset, or one past the highest
//! started offset when nothing is unfinished.
//!
//! [`InFlight`] shares that bookkeeping between a consume loop and its consumer's rebalance
//! callback: when partitions are revoked, their work is told to wrap up and waited for (within a
//! deadline), and what finished is stored, which librdkafka commits before another consumer takes
//! them over, so a rebalance repeats no finished work.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Debug, Default)]
struct Partition {
    unfinished: BTreeSet<i64>,
    highest_started: Option<i64>,
}

/// Tracks started and finished offsets per (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
}

impl OffsetTracker {
    /// Records that work on `offset` started.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        let entry = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_default();
        entry.unfinished.insert(offset);
        entry.highest_started = entry.highest_started.max(Some(offset));
    }

    /// Records that work on `offset` finished and returns the position that may now be committed
    /// (the next offset to read), if finishing it moved that position.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let entry = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        let was_lowest = entry.unfinished.first() == Some(&offset);
        if !entry.unfinished.remove(&offset) || !was_lowest {
            return None;
        }
        match entry.unfinished.first() {
            Some(lowest) => Some(*lowest),
            None => entry.highest_started.map(|highest| highest + 1),
        }
    }

    /// How many records are unfinished across all partitions.
    pub fn unfinished(&self) -> usize {
        self.partitions.values().map(|p| p.unfinished.len()).sum()
    }

    /// How many records of these partitions are unfinished.
    pub fn unfinished_in(&self, partitions: &[(String, i32)]) -> usize {
        partitions
            .iter()
            .filter_map(|key| self.partitions.get(key))
            .map(|p| p.unfinished.len())
            .sum()
    }

    /// Forgets these partitions: their records are another consumer's now, and a late
    /// [`finish`](Self::finish) of one of them moves nothing.
    pub fn forget(&mut self, partitions: &[(String, i32)]) {
        for key in partitions {
            self.partitions.remove(key);
        }
    }
}

/// How long a revocation waits for the work of its partitions unless the stage says otherwise.
pub const DEFAULT_REVOKE_WAIT: Duration = Duration::from_secs(10);

/// The records a consume loop is working on, shared with its consumer's context (see the module
/// documentation). The loop [`lease`](Self::lease)s partitions, [`start`](Self::start)s records and
/// [stores](Self::store_ready) what is ready; the records' tasks [`finish`](Self::finish) them; the rebalance
/// callback [`revoke`](Self::revoke)s partitions.
#[derive(Debug)]
pub struct InFlight {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug)]
struct State {
    tracker: OffsetTracker,
    /// Positions (next offset to read) that may be stored, by partition.
    ready: HashMap<(String, i32), i64>,
    /// Per partition with work started, the token its work watches: cancelled when the
    /// partition is revoked or the loop stops.
    leases: HashMap<(String, i32), CancellationToken>,
    /// How long a revocation waits for its partitions' work.
    revoke_wait: Duration,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                tracker: OffsetTracker::default(),
                ready: HashMap::new(),
                leases: HashMap::new(),
                revoke_wait: DEFAULT_REVOKE_WAIT,
            }),
            finished: Condvar::new(),
        }
    }
}

impl InFlight {
    /// A new, empty one.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets how long a revocation waits for the work of its partitions.
    pub fn set_revoke_wait(&self, wait: Duration) {
        self.lock().revoke_wait = wait;
    }

    /// The token the work on a record of this partition watches: cancelled when the partition is
    /// revoked, or when `stop` is.
    pub fn lease(
        &self,
        topic: &str,
        partition: i32,
        stop: &CancellationToken,
    ) -> CancellationToken {
        self.lock()
            .leases
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| stop.child_token())
            .clone()
    }

    /// Records that work on a record started.
    pub fn start(&self, topic: &str, partition: i32, offset: i64) {
        self.lock().tracker.start(topic, partition, offset);
    }

    /// Records that a record's work is done, so its offset may be committed once every earlier
    /// one is.
    pub fn finish(&self, topic: &str, partition: i32, offset: i64) {
        let mut state = self.lock();
        if let Some(next) = state.tracker.finish(topic, partition, offset) {
            state.ready.insert((topic.to_owned(), partition), next);
        }
        drop(state);
        self.finished.notify_all();
    }

    /// The positions that may be stored now, as (topic, partition, next offset to read).
    pub fn take_ready(&self) -> Vec<(String, i32, i64)> {
        self.lock()
            .ready
            .drain()
            .map(|((topic, partition), next)| (topic, partition, next))
            .collect()
    }

    /// Stores, in `consumer`, the positions of the partitions whose finished work moved them;
    /// librdkafka commits what was stored.
    pub fn store_ready<C: ConsumerContext>(&self, consumer: &impl Consumer<C>) {
        for (topic, partition, next) in self.take_ready() {
            // `store_offset` stores `offset + 1`, the next record to read.
            if let Err(error) = consumer.store_offset(&topic, partition, next - 1) {
                // The partition was revoked meanwhile; its new owner reads it again from the
                // last commit, which repeats work but loses none.
                debug!(%error, %topic, partition, "Offset not stored.");
            }
        }
    }

    /// Called before `partitions` are taken away: tells their work to wrap up, waits for it up
    /// to the revoke wait, then stores what finished (for librdkafka to commit as it removes them). Work still running after that
    /// is left uncommitted, so the partitions' next owner does it again (at least once).
    pub fn revoke<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) {
        let revoked: Vec<(String, i32)> = partitions
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        let wait = {
            let mut state = self.lock();
            for key in &revoked {
                if let Some(lease) = state.leases.remove(key) {
                    lease.cancel();
                }
            }
            state.revoke_wait
        };
        let started = Instant::now();
        let waiting = || self.wait_for(&revoked, started + wait);
        let left = match Handle::try_current().map(|handle| handle.runtime_flavor()) {
            // The callback runs inside the consume loop's task: let the runtime move this
            // worker's other tasks (the work waited for among them) elsewhere meanwhile.
            Ok(RuntimeFlavor::CurrentThread) => {
                debug!("Not waiting for revoked partitions' work on a current-thread runtime.");
                self.lock().tracker.unfinished_in(&revoked)
            }
            Ok(_) => tokio::task::block_in_place(waiting),
            Err(_) => waiting(),
        };
        // librdkafka commits the stored offsets of the partitions it removes (enable.auto.commit)
        // and waits for that commit before the group moves on, so storing is enough here. A
        // commit of our own from this callback raced the consumer's close and tripped an
        // assertion in librdkafka (confluentinc/librdkafka#4792).
        self.store_ready(consumer);
        self.lock().tracker.forget(&revoked);
        if left > 0 {
            warn!(
                records = left,
                waited = ?started.elapsed(),
                "Work on revoked partitions did not finish in time; their next owner repeats it."
            );
        } else if !revoked.is_empty() {
            info!(partitions = revoked.len(), waited = ?started.elapsed(), "Revoked partitions drained; their offsets stored for the commit.");
        }
    }

    /// Waits until no record of `partitions` is unfinished, or `deadline`; returns how many are.
    fn wait_for(&self, partitions: &[(String, i32)], deadline: Instant) -> usize {
        let mut state = self.lock();
        loop {
            let left = state.tracker.unfinished_in(partitions);
            let now = Instant::now();
            if left == 0 || now >= deadline {
                return left;
            }
            state = self
                .finished
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_lowest_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..=12 {
            tracker.start("t", 0, offset);
        }
        assert_eq!(tracker.finish("t", 0, 11), None, "10 is still unfinished");
        assert_eq!(tracker.finish("t", 0, 12), None, "10 is still unfinished");
        assert_eq!(tracker.finish("t", 0, 10), Some(13));
        assert_eq!(tracker.unfinished(), 0);
    }

    #[test]
    fn moves_to_the_next_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        for offset in [3, 5, 8] {
            tracker.start("t", 1, offset);
        }
        assert_eq!(tracker.finish("t", 1, 3), Some(5));
        assert_eq!(tracker.finish("t", 1, 5), Some(8));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        tracker.start("t", 0, 1);
        tracker.start("t", 1, 7);
        assert_eq!(tracker.finish("t", 1, 7), Some(8));
        assert_eq!(tracker.unfinished(), 1);
        assert_eq!(tracker.finish("other", 0, 1), None, "unknown topic");
    }

    #[test]
    fn forgotten_partitions_have_nothing_unfinished_and_move_nothing() {
        let mut tracker = OffsetTracker::default();
        tracker.start("t", 0, 1);
        tracker.start("t", 1, 4);
        tracker.start("t", 1, 5);
        let revoked = [("t".to_owned(), 1)];
        assert_eq!(tracker.unfinished_in(&revoked), 2);
        tracker.forget(&revoked);
        assert_eq!(tracker.unfinished_in(&revoked), 0);
        assert_eq!(
            tracker.finish("t", 1, 4),
            None,
            "a late finish of a revoked record"
        );
        assert_eq!(tracker.unfinished(), 1);
    }

    #[test]
    fn work_finished_on_another_thread_ends_the_wait_and_is_ready_to_store() {
        let in_flight = InFlight::new();
        let stop = CancellationToken::new();
        let lease = in_flight.lease("t", 2, &stop);
        in_flight.start("t", 2, 7);
        in_flight.start("t", 2, 8);
        let worker = {
            let in_flight = in_flight.clone();
            std::thread::spawn(move || {
                in_flight.finish("t", 2, 8);
                in_flight.finish("t", 2, 7);
            })
        };
        let revoked = [("t".to_owned(), 2)];
        let left = in_flight.wait_for(&revoked, Instant::now() + Duration::from_secs(30));
        worker.join().unwrap();
        assert_eq!(left, 0);
        assert_eq!(in_flight.take_ready(), [("t".to_owned(), 2, 9)]);
        assert!(in_flight.take_ready().is_empty(), "taken once");

        assert!(!lease.is_cancelled());
        stop.cancel();
        assert!(lease.is_cancelled(), "a lease ends when its loop stops");
    }

    #[test]
    fn the_wait_gives_up_at_the_deadline() {
        let in_flight = InFlight::new();
        in_flight.start("t", 0, 1);
        let revoked = [("t".to_owned(), 0)];
        assert_eq!(in_flight.wait_for(&revoked, Instant::now()), 1);
    }
}
