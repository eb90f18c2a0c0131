//! The exactly-once mode (`--processor-exactly-once`): Kafka transactions around read, process
//! and write. A batch of events is read; its jobs and dead letters are written and the events'
//! offsets committed in one transaction, so the jobs of an event are visible to `read_committed`
//! readers (the dispatcher is one) exactly once, even across crashes and rebalances.
//!
//! Each transaction costs a few round trips to the transaction coordinator, which batching
//! amortises; at-least-once (pipelined, offsets stored as acknowledgements arrive) stays the
//! default. A crashed processor's open transaction is aborted when an instance with the same
//! `transactional.id` starts, or after `transaction.timeout.ms`.

use std::collections::BTreeMap;
use std::time::Duration;

use hookline_runtime::observe::Progress;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Processor, State};
use crate::Error;

/// Most events in one transaction.
const BATCH_MAX: usize = 2_000;

/// How long a batch waits for more events after its first one.
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// How long a call to the transaction coordinator may take.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(30);

/// How the cluster id of librdkafka's mock cluster (the embedded broker) begins.
const MOCK_CLUSTER: &str = "mockCluster";

/// How long a transaction may stay open before the broker aborts it (after a crash, say).
pub(super) const TRANSACTION_TIMEOUT_MS: &str = "30000";

impl Processor {
    /// Processes events in transactions until `shutdown`; the batch in progress is finished.
    pub(super) async fn run_exactly_once(
        &self,
        mut state: State<'_>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        // librdkafka's mock cluster answers the transactional requests but neither keeps the
        // offsets committed in a transaction nor hides aborted records: refuse rather than
        // pretend.
        let cluster = blocking(|| self.producer.client().fetch_cluster_id(COORDINATOR_TIMEOUT));
        if cluster.is_some_and(|id| id.starts_with(MOCK_CLUSTER)) {
            return Err(Error::ExactlyOnceUnsupported);
        }
        blocking(|| self.producer.init_transactions(COORDINATOR_TIMEOUT))
            .map_err(Error::Transaction)?;
        info!("Exactly-once mode: events are processed in Kafka transactions.");
        let in_flight = self.consumer.context().in_flight().clone();
        while !shutdown.is_cancelled() {
            let batch = self.read_batch(shutdown, &in_flight).await;
            // A partition revoked while the batch was read is another consumer's now (and one
            // assigned again is read again from its committed offset): drop its events.
            let batch: Vec<BorrowedMessage<'_>> = batch
                .into_iter()
                .filter(|(_, lease)| !lease.is_cancelled())
                .map(|(message, _)| message)
                .collect();
            if batch.is_empty() {
                continue;
            }
            self.transact(&mut state, &batch).await?;
        }
        Ok(())
    }

    /// Reads events until [`BATCH_MAX`], [`BATCH_WAIT`] after the first, or `shutdown`; each
    /// with its partition's lease (cancelled if the partition is revoked meanwhile).
    async fn read_batch(
        &self,
        shutdown: &CancellationToken,
        in_flight: &hookline_runtime::offsets::InFlight,
    ) -> Vec<(BorrowedMessage<'_>, CancellationToken)> {
        let mut batch = Vec::new();
        let mut deadline = None;
        while batch.len() < BATCH_MAX {
            let wait = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => shutdown.cancelled().await,
                }
            };
            tokio::select! {
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        let lease = in_flight.lease(message.topic(), message.partition(), shutdown);
                        batch.push((message, lease));
                        deadline.get_or_insert_with(|| Instant::now() + BATCH_WAIT);
                    }
                    Err(error) => {
                        if hookline_runtime::kafka::transient(&error) {
                        // Kafka away: said once by the reachability check, not per poll.
                        tracing::debug!(%error, "Kafka consumer reported an error.");
                    } else {
                        tracing::warn!(%error, "Kafka consumer reported an error.");
                    }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = wait => break,
            }
        }
        batch
    }

    /// Writes the batch's records and commits its offsets in one transaction. An abortable
    /// failure aborts it and rewinds the batch's partitions, so the batch is processed again.
    async fn transact(
        &self,
        state: &mut State<'_>,
        batch: &[BorrowedMessage<'_>],
    ) -> Result<(), Error> {
        blocking(|| self.producer.begin_transaction()).map_err(Error::Transaction)?;
        let pending: Vec<_> = batch.iter().map(|message| state.handle(message)).collect();
        let mut produced = Ok(());
        for acks in pending {
            if let Err(error) = acks.await {
                produced = Err(error);
                break;
            }
        }
        if let Err(error) = produced {
            // A record the broker refused: like the at-least-once mode, stop rather than go
            // past the event; the aborted transaction leaves nothing behind.
            let _ = blocking(|| self.producer.abort_transaction(COORDINATOR_TIMEOUT));
            return Err(error);
        }
        let offsets = next_offsets(batch);
        let Some(group) = self.consumer.group_metadata() else {
            let _ = blocking(|| self.producer.abort_transaction(COORDINATOR_TIMEOUT));
            return Err(Error::NotInGroup);
        };
        let committed = blocking(|| {
            self.producer
                .send_offsets_to_transaction(&offsets, &group, COORDINATOR_TIMEOUT)?;
            commit(&self.producer)
        });
        match committed {
            Ok(()) => Ok(()),
            Err(KafkaError::Transaction(error)) if error.txn_requires_abort() => {
                warn!(%error, events = batch.len(), "Transaction aborted; its events are processed again.");
                blocking(|| self.producer.abort_transaction(COORDINATOR_TIMEOUT))
                    .map_err(Error::Transaction)?;
                self.rewind(batch);
                Ok(())
            }
            Err(error) => Err(Error::Transaction(error)),
        }
    }

    /// Moves each of the batch's partitions back to the batch's first event of it.
    fn rewind(&self, batch: &[BorrowedMessage<'_>]) {
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for message in batch {
            first
                .entry((message.topic(), message.partition()))
                .and_modify(|offset| *offset = (*offset).min(message.offset()))
                .or_insert(message.offset());
        }
        for ((topic, partition), offset) in first {
            if let Err(error) = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                COORDINATOR_TIMEOUT,
            ) {
                // Not ours any more: its next owner starts from the last committed offset.
                warn!(%error, %topic, partition, "Partition not rewound.");
            }
        }
    }
}

/// Commits, retrying while the client says the failure is retriable.
fn commit(producer: &FutureProducer) -> Result<(), KafkaError> {
    loop {
        match producer.commit_transaction(COORDINATOR_TIMEOUT) {
            Err(KafkaError::Transaction(error)) if error.is_retriable() => {
                warn!(%error, "Transaction commit failed; retrying.");
            }
            result => return result,
        }
    }
}

/// The next offset to read of each partition in the batch.
fn next_offsets(batch: &[BorrowedMessage<'_>]) -> TopicPartitionList {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_default();
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        // Adding a partition to a fresh list with a valid offset cannot fail.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    list
}

/// Runs a blocking call of the transactional producer without stalling the runtime's other
/// tasks (the acknowledgements it waits for among them). A current-thread runtime cannot hand
/// its tasks elsewhere (`block_in_place` panics there), so the call just blocks it meanwhile.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) | Err(_) => call(),
        Ok(_) => tokio::task::block_in_place(call),
    }
}
