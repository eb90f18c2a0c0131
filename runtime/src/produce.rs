//! Waiting for a record's acknowledgement through a Kafka outage of any length.
//!
//! librdkafka retries a record by itself until `message.timeout.ms` (30 s) and then gives it back
//! with `MessageTimedOut`. A stage that stopped then would lose nothing (its input offset is not
//! committed), but a broker away for longer than the timeout would end the process and need a
//! human. [`acknowledged`] sends a record given back for a reason that waiting can cure again,
//! with a growing pause, until the broker takes it; the stage's input stays uncommitted
//! meanwhile. Errors that waiting cannot cure (a record too large, a missing authorisation) are
//! returned at once. One line is logged when records start coming back and one when Kafka takes
//! them again, not one per record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tracing::{info, warn};

/// Whether this process is resending records because Kafka did not take them.
static RESENDING: AtomicBool = AtomicBool::new(false);

/// The first pause before a record is sent again.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// The longest pause between two sends of a record.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// How long to wait before enqueueing again when the producer's local queue is full: it drains
/// as the broker answers.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Enqueues `record`, waiting while the producer's local queue is full; any other refusal is
/// final (a record too large, say).
pub async fn enqueue<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(ack) => return Ok(ack),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Waits until the broker acknowledged the record behind `ack`, written to `topic` by `producer`,
/// sending it again while the broker is unavailable (see the module documentation).
pub async fn acknowledged(
    producer: &FutureProducer,
    topic: &str,
    ack: DeliveryFuture,
) -> Result<Delivery, KafkaError> {
    let mut outcome = settle(ack).await;
    if let Ok(delivery) = outcome {
        // The common case costs one load, no shared write.
        if RESENDING.load(Ordering::Relaxed) && RESENDING.swap(false, Ordering::AcqRel) {
            info!(topic, "Kafka acknowledges records again.");
        }
        return Ok(delivery);
    }
    let mut pauses = pauses();
    loop {
        match outcome {
            Ok(delivery) => {
                if RESENDING.swap(false, Ordering::AcqRel) {
                    info!(topic, "Kafka acknowledges records again.");
                }
                return Ok(delivery);
            }
            Err((error, message)) if curable(&error) => {
                if !RESENDING.swap(true, Ordering::AcqRel) {
                    warn!(
                        %error,
                        topic,
                        "Kafka did not acknowledge a record; sending it again until it does \
                         (the input stays uncommitted meanwhile)."
                    );
                }
                tokio::time::sleep(pauses.next().unwrap_or(LONGEST_PAUSE)).await;
                outcome = match resend(producer, topic, &message).await {
                    Ok(ack) => settle(ack).await,
                    Err(error) => return Err(error),
                };
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// The pauses between sends of a record Kafka did not take: growing from 200 ms to 5 s, with
/// jitter, without end.
pub fn pauses() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_PAUSE)
        .with_max_delay(LONGEST_PAUSE)
        .with_jitter()
        .without_max_times()
        .build()
}

async fn settle(ack: DeliveryFuture) -> Result<Delivery, (KafkaError, Option<OwnedMessage>)> {
    match ack.await {
        Ok(Ok(delivery)) => Ok(delivery),
        Ok(Err((error, message))) => Err((error, Some(message))),
        Err(_canceled) => Err((KafkaError::Canceled, None)),
    }
}

/// Enqueues `message` again, to the partition it was meant for.
async fn resend(
    producer: &FutureProducer,
    topic: &str,
    message: &Option<OwnedMessage>,
) -> Result<DeliveryFuture, KafkaError> {
    let Some(message) = message else {
        // The producer itself went away: nothing to send again.
        return Err(KafkaError::Canceled);
    };
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    if let Some(headers) = message.headers() {
        record = record.headers(headers.clone());
    }
    if message.partition() >= 0 {
        record = record.partition(message.partition());
    }
    enqueue(producer, record).await
}

/// Whether waiting for the broker can cure `error`, so the record is worth sending again.
pub fn curable(error: &KafkaError) -> bool {
    let KafkaError::MessageProduction(code) = error else {
        return false;
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::KafkaStorageError
            | RDKafkaErrorCode::QueueFull
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_waiting_can_cure_is_sent_again() {
        let production = KafkaError::MessageProduction;
        assert!(curable(&production(RDKafkaErrorCode::MessageTimedOut)));
        assert!(curable(&production(RDKafkaErrorCode::NotEnoughReplicas)));
        assert!(!curable(&production(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!curable(&production(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!curable(&KafkaError::Canceled));
    }
}
