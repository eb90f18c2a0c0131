//! The at-least-once consume loop every consuming stage runs.
//!
//! The stage's handler sees each record in order and returns a future for the rest of its work
//! (waiting for produce acknowledgements, an HTTP delivery). Futures run concurrently, up to a
//! limit; a record's offset is stored only once it and every earlier record of its partition have
//! finished, and librdkafka commits what was stored. A handler error stops the loop with that
//! record unfinished, so its offset is never committed and it is read again after a restart; so
//! does a record whose work was abandoned at shutdown.
//!
//! Each record's work gets a token that is cancelled when its partition is revoked or the loop
//! stops: work that can hand itself over (a delivery waiting for its next attempt) does so then.
//! Before a partition goes to another consumer, its work is waited for and what finished is
//! stored, then committed by librdkafka ([`InFlight::revoke`]), so a rebalance repeats no finished
//! work.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::observe::Progress;
use crate::offsets::InFlight;

/// How often the age of the oldest unfinished record is reported.
const AGE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a rewind may take; it is local unless the partition was just revoked.
const SEEK_TIMEOUT: Duration = Duration::from_secs(1);

/// How a record's work ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Its work is done and acknowledged: its offset may be committed.
    Done,
    /// Its work was given up at shutdown (a delivery waiting to be retried, say): its offset must
    /// not be committed, so the record is read again after a restart.
    Abandoned,
}

/// A finished record: where it came from and how its work ended (a `Done` one is already
/// recorded in [`InFlight`]).
type Finished<E> = (String, i32, i64, Result<Settled, E>);

/// What a gated handler makes of a record.
pub enum Next<F> {
    /// Work on it now.
    Run(F),
    /// It is not due before this instant: its partition is paused, rewound to it and resumed
    /// then, while the other partitions (and the group membership) carry on.
    NotBefore(Instant),
}

/// Reads `consumer` until `shutdown`, handing every record to `handler` with the token its work
/// watches (see the module documentation) and storing offsets as records finish. On shutdown it
/// stops reading, waits for the records in flight and commits.
pub async fn run<C, H, F, E>(
    consumer: &StreamConsumer<C>,
    max_in_flight: usize,
    shutdown: &CancellationToken,
    mut handler: H,
) -> Result<(), E>
where
    C: ConsumerContext + Progress + 'static,
    H: FnMut(&BorrowedMessage<'_>, CancellationToken) -> F,
    F: Future<Output = Result<Settled, E>> + Send + 'static,
    E: Send + 'static,
{
    run_gated(consumer, max_in_flight, shutdown, |message, release| {
        Next::Run(handler(message, release))
    })
    .await
}

/// [`run`] for topics whose records fall due later (the retry topics): the handler may answer
/// that a record is not due yet. Its partition then waits, paused, without holding up the others;
/// records of one partition must fall due in order, which holds for the fixed-delay retry topics.
pub async fn run_gated<C, H, F, E>(
    consumer: &StreamConsumer<C>,
    max_in_flight: usize,
    shutdown: &CancellationToken,
    mut handler: H,
) -> Result<(), E>
where
    C: ConsumerContext + Progress + 'static,
    H: FnMut(&BorrowedMessage<'_>, CancellationToken) -> Next<F>,
    F: Future<Output = Result<Settled, E>> + Send + 'static,
    E: Send + 'static,
{
    let in_flight = consumer.context().in_flight().clone();
    let mut tasks: JoinSet<Finished<E>> = JoinSet::new();
    let mut paused: HashMap<(String, i32), Instant> = HashMap::new();
    let mut ages = Ages::default();
    let mut report = tokio::time::interval(AGE_INTERVAL);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_resume = paused.values().min().copied();
        tokio::select! {
            biased;
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                finish(consumer, &in_flight, &mut ages, joined)?;
            }
            () = shutdown.cancelled() => break,
            _ = report.tick() => ages.report(consumer.context().as_ref()),
            () = sleep_until_or_forever(next_resume), if next_resume.is_some() => {
                resume_due(consumer, &mut paused);
            }
            received = consumer.recv(), if tasks.len() < max_in_flight => match received {
                Ok(message) => {
                    let (topic, partition, offset) =
                        (message.topic().to_owned(), message.partition(), message.offset());
                    let lease = in_flight.lease(&topic, partition, shutdown);
                    match handler(&message, lease) {
                        Next::Run(work) => {
                            in_flight.start(&topic, partition, offset);
                            ages.start(&topic, partition, offset, message.timestamp().to_millis());
                            let in_flight = in_flight.clone();
                            // A combinator rather than an async block: the block would hold
                            // `work` twice, as captured and as awaited (rust-lang/rust#62958),
                            // doubling every task's memory.
                            let task = work.map(move |outcome| {
                                if matches!(outcome, Ok(Settled::Done)) {
                                    in_flight.finish(&topic, partition, offset);
                                }
                                (topic, partition, offset, outcome)
                            });
                            tasks.spawn(task);
                        }
                        Next::NotBefore(due) => {
                            drop(message);
                            pause_at(consumer, &topic, partition, offset);
                            paused.insert((topic, partition), due);
                        }
                    }
                }
                Err(error) => {
                    // librdkafka reports transient trouble (a broker away, a rebalance) here and
                    // recovers by itself; nothing was read, so nothing is lost by going on.
                    if crate::kafka::transient(&error) {
                        // Kafka away: said once by the reachability check, not per poll.
                        tracing::debug!(%error, "Kafka consumer reported an error.");
                    } else {
                        tracing::warn!(%error, "Kafka consumer reported an error.");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    while let Some(joined) = tasks.join_next().await {
        finish(consumer, &in_flight, &mut ages, joined)?;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => warn!(%error, "Could not commit offsets at shutdown."),
    }
    Ok(())
}

async fn sleep_until_or_forever(instant: Option<Instant>) {
    match instant {
        Some(instant) => tokio::time::sleep_until(instant).await,
        None => std::future::pending().await,
    }
}

/// Pauses a partition and rewinds it to `offset`, the first record not yet due, so it is read
/// again once the partition resumes.
fn pause_at<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    if let Err(error) = consumer.pause(&list) {
        debug!(%error, %topic, partition, "Partition not paused.");
    }
    if let Err(error) = consumer.seek(topic, partition, Offset::Offset(offset), SEEK_TIMEOUT) {
        // Not assigned any more: its new owner starts from the last commit, which is at or
        // before this record.
        debug!(%error, %topic, partition, "Partition not rewound.");
    }
}

fn resume_due<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    paused: &mut HashMap<(String, i32), Instant>,
) {
    let now = Instant::now();
    let mut list = TopicPartitionList::new();
    paused.retain(|(topic, partition), due| {
        let ready = *due <= now;
        if ready {
            list.add_partition(topic, *partition);
        }
        !ready
    });
    if let Err(error) = consumer.resume(&list) {
        debug!(%error, "Partitions not resumed.");
    }
}

/// The timestamps behind [`crate::observe::LAG_SECONDS`].
#[derive(Default)]
struct Ages {
    /// Timestamps (milliseconds since the epoch) of the records in progress, by partition and
    /// offset.
    in_flight: HashMap<(String, i32), HashMap<i64, i64>>,
    /// The timestamp of the last record read, by partition.
    last_read: HashMap<(String, i32), i64>,
}

impl Ages {
    fn start(&mut self, topic: &str, partition: i32, offset: i64, timestamp: Option<i64>) {
        let Some(timestamp) = timestamp else { return };
        let key = (topic.to_owned(), partition);
        self.in_flight
            .entry(key.clone())
            .or_default()
            .insert(offset, timestamp);
        self.last_read.insert(key, timestamp);
    }

    fn finish(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(records) = self.in_flight.get_mut(&(topic.to_owned(), partition)) {
            records.remove(&offset);
        }
    }

    /// Per topic, the age of the oldest record in progress; with none in progress, the age of
    /// the last record read if the group is still behind on that partition; else 0.
    fn report(&self, context: &impl Progress) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        let mut oldest: HashMap<&str, f64> = HashMap::new();
        for ((topic, partition), last) in &self.last_read {
            let in_flight = self
                .in_flight
                .get(&(topic.clone(), *partition))
                .and_then(|records| records.values().min().copied());
            let since = match in_flight {
                Some(timestamp) => Some(timestamp),
                None if context.records_behind(topic, *partition).unwrap_or(0) > 0 => Some(*last),
                None => None,
            };
            let age = since.map_or(0.0, |since| (now - since).max(0) as f64 / 1000.0);
            let entry = oldest.entry(topic.as_str()).or_default();
            *entry = entry.max(age);
        }
        for (topic, age) in oldest {
            context.report_age(topic, age);
        }
    }
}

fn finish<C: ConsumerContext + 'static, E>(
    consumer: &StreamConsumer<C>,
    in_flight: &InFlight,
    ages: &mut Ages,
    joined: Result<Finished<E>, tokio::task::JoinError>,
) -> Result<(), E> {
    let (topic, partition, offset, outcome) = match joined {
        Ok(finished) => finished,
        // A panicking handler is a bug; keep its record unfinished (never committed) and let the
        // panic surface.
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    ages.finish(&topic, partition, offset);
    outcome?;
    in_flight.store_ready(consumer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorded {
        behind: HashMap<(String, i32), i64>,
        ages: Mutex<HashMap<String, f64>>,
        in_flight: std::sync::Arc<InFlight>,
    }

    impl Progress for Recorded {
        fn report_age(&self, topic: &str, seconds: f64) {
            self.ages.lock().unwrap().insert(topic.to_owned(), seconds);
        }

        fn records_behind(&self, topic: &str, partition: i32) -> Option<i64> {
            self.behind.get(&(topic.to_owned(), partition)).copied()
        }

        fn in_flight(&self) -> &std::sync::Arc<InFlight> {
            &self.in_flight
        }
    }

    fn millis_ago(seconds: i64) -> Option<i64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        Some(now.as_millis() as i64 - seconds * 1000)
    }

    #[test]
    fn the_age_is_the_oldest_record_in_progress_or_the_last_read_while_behind() {
        let mut ages = Ages::default();
        ages.start("events", 0, 10, millis_ago(60));
        ages.start("events", 0, 11, millis_ago(5));
        ages.start("events", 1, 3, millis_ago(30));
        ages.start("jobs", 0, 1, millis_ago(100));
        ages.finish("jobs", 0, 1);
        let mut context = Recorded::default();
        ages.report(&context);
        let reported = context.ages.lock().unwrap().clone();
        let near = |topic: &str, seconds: f64| (reported[topic] - seconds).abs() < 2.0;
        assert!(near("events", 60.0), "{reported:?}");
        assert_eq!(
            reported["jobs"], 0.0,
            "caught up: nothing in progress, nothing behind"
        );

        // Finished, but the group is still behind on the partition: the last read record's age.
        ages.finish("events", 0, 10);
        ages.finish("events", 0, 11);
        ages.finish("events", 1, 3);
        context.behind.insert(("events".to_owned(), 1), 500);
        ages.report(&context);
        let reported = context.ages.lock().unwrap().clone();
        assert!((reported["events"] - 30.0).abs() < 2.0, "{reported:?}");
    }
}
