//! The at-least-once consume loop every consuming stage runs.
//!
//! The stage's handler sees each record in order and returns a future for the rest of its work
//! (waiting for produce acknowledgements, an HTTP delivery). Futures run concurrently, up to a
//! limit; a record's offset is stored only once it and every earlier record of its partition have
//! finished, and librdkafka commits what was stored. A handler error stops the loop with that
//! record unfinished, so its offset is never committed and it is read again after a restart; so
//! does a record whose work was abandoned at shutdown.

use std::future::Future;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::offsets::OffsetTracker;

/// How a record's work ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Its work is done and acknowledged: its offset may be committed.
    Done,
    /// Its work was given up at shutdown (a delivery waiting to be retried, say): its offset must
    /// not be committed, so the record is read again after a restart.
    Abandoned,
}

/// A finished record: where it came from and how its work ended.
type Finished<E> = (String, i32, i64, Result<Settled, E>);

/// Reads `consumer` until `shutdown`, handing every record to `handler` and storing offsets as
/// records finish. On shutdown it stops reading, waits for the records in flight and commits.
pub async fn run<C, H, F, E>(
    consumer: &StreamConsumer<C>,
    max_in_flight: usize,
    shutdown: &CancellationToken,
    mut handler: H,
) -> Result<(), E>
where
    C: ConsumerContext + 'static,
    H: FnMut(&BorrowedMessage<'_>) -> F,
    F: Future<Output = Result<Settled, E>> + Send + 'static,
    E: Send + 'static,
{
    let mut tracker = OffsetTracker::default();
    let mut tasks: JoinSet<Finished<E>> = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                finish(consumer, &mut tracker, joined)?;
            }
            () = shutdown.cancelled() => break,
            received = consumer.recv(), if tasks.len() < max_in_flight => match received {
                Ok(message) => {
                    let (topic, partition, offset) =
                        (message.topic().to_owned(), message.partition(), message.offset());
                    tracker.start(&topic, partition, offset);
                    let work = handler(&message);
                    tasks.spawn(async move { (topic, partition, offset, work.await) });
                }
                Err(error) => {
                    // librdkafka reports transient trouble (a broker away, a rebalance) here and
                    // recovers by itself; nothing was read, so nothing is lost by going on.
                    warn!(%error, "Kafka consumer reported an error.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    while let Some(joined) = tasks.join_next().await {
        finish(consumer, &mut tracker, joined)?;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => warn!(%error, "Could not commit offsets at shutdown."),
    }
    Ok(())
}

fn finish<C: ConsumerContext + 'static, E>(
    consumer: &StreamConsumer<C>,
    tracker: &mut OffsetTracker,
    joined: Result<Finished<E>, tokio::task::JoinError>,
) -> Result<(), E> {
    let (topic, partition, offset, outcome) = match joined {
        Ok(finished) => finished,
        // A panicking handler is a bug; keep its record unfinished (never committed) and let the
        // panic surface.
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    if outcome? == Settled::Abandoned {
        return Ok(());
    }
    if let Some(next) = tracker.finish(&topic, partition, offset) {
        // `store_offset` stores `offset + 1`, the next record to read.
        if let Err(error) = consumer.store_offset(&topic, partition, next - 1) {
            // The partition was revoked meanwhile; its new owner reads it again from the last
            // commit, which repeats work but loses none.
            debug!(%error, %topic, partition, "Offset not stored.");
        }
    }
    Ok(())
}
