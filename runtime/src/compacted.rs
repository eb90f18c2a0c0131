//! Reading a compacted state topic from its beginning up to the end it had when reading began:
//! [`open`] and [`caught_up`] for readers that then follow it (the resource store), [`follow`]
//! for a reader that hands each record on (control's dead letter states and held jobs), and
//! [`read_to_end`] for a one-off read into memory (the dispatcher's destination health).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::{Error, KafkaSettings, kafka};

/// How long to wait for a record before checking the position again.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// The latest value of every key of `topic` (keys whose latest record is a tombstone are absent),
/// read from its beginning to the end it had at the start; `None` if `shutdown` came first.
pub async fn read_to_end(
    settings: &KafkaSettings,
    topic: &str,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, Vec<u8>>>, Error> {
    let (consumer, high_watermarks) = match open(settings, topic, "resources", shutdown).await {
        Ok(opened) => opened,
        Err(Error::Interrupted) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut latest = HashMap::new();
    loop {
        if caught_up(&consumer, topic, &high_watermarks) {
            return Ok(Some(latest));
        }
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            received = tokio::time::timeout(IDLE_CHECK, consumer.recv()) => received,
        };
        if let Ok(Ok(message)) = received {
            let Some(key) = message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned())
            else {
                continue;
            };
            match message.payload() {
                Some(value) => latest.insert(key, value.to_vec()),
                None => latest.remove(&key),
            };
        }
    }
}

/// Creates a reader of `topic` outside any group (`role` names it), assigns every partition from
/// its beginning and returns the high watermarks to catch up to ([`caught_up`]). While Kafka does
/// not answer, asks again (a log line says so once) until it does or `shutdown` comes
/// ([`Error::Interrupted`]): a stage starting during a broker outage waits for the broker.
pub async fn open(
    settings: &KafkaSettings,
    topic: &str,
    role: &'static str,
    shutdown: &CancellationToken,
) -> Result<(StreamConsumer, Vec<i64>), Error> {
    let mut waits = backon::BackoffBuilder::build(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times(),
    );
    let mut said = false;
    loop {
        match open_once(settings.clone(), topic.to_owned(), role).await {
            Err(Error::Kafka { context, source }) if kafka::transient(&source) => {
                if !said {
                    said = true;
                    tracing::warn!(%topic, %source, %context,
                        "Kafka does not answer; reading the topic waits until it does.");
                }
                let wait = waits.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    () = shutdown.cancelled() => return Err(Error::Interrupted),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            result => {
                if said && result.is_ok() {
                    tracing::info!(%topic, "Kafka answers again; reading the topic.");
                }
                return result;
            }
        }
    }
}

/// One attempt of [`open`]. librdkafka's metadata calls block, so this runs off the async
/// workers.
async fn open_once(
    settings: KafkaSettings,
    topic: String,
    role: &'static str,
) -> Result<(StreamConsumer, Vec<i64>), Error> {
    tokio::task::spawn_blocking(move || {
        let consumer = kafka::create_consumer(&kafka::reader_config(&settings, role))?;
        let kafka_error = |context: &str| {
            let context = format!("{context} of {topic}");
            move |source| Error::Kafka { context, source }
        };
        let partitions = crate::topics::partition_count(&consumer, &topic)?;
        let mut assignment = TopicPartitionList::new();
        let mut high_watermarks = Vec::with_capacity(partitions);
        for partition in 0..partitions as i32 {
            let (low, high) = crate::topics::watermarks(&consumer, &topic, partition)
                .map_err(kafka_error("fetch watermarks"))?;
            // An empty partition (low == high) has nothing to catch up to.
            high_watermarks.push(if low == high { 0 } else { high });
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .map_err(kafka_error("assign"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(kafka_error("assign"))?;
        Ok((consumer, high_watermarks))
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// Whether `consumer` has read every partition of `topic` up to the high watermarks [`open`]
/// returned (an empty partition, or one compaction emptied, has nothing to read).
pub fn caught_up(consumer: &StreamConsumer, topic: &str, high_watermarks: &[i64]) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    high_watermarks.iter().enumerate().all(|(partition, high)| {
        *high == 0
            || positions
                .find_partition(topic, partition as i32)
                .and_then(|p| p.offset().to_raw())
                .is_some_and(|position| position >= *high)
    })
}

/// Reads `topic` from its beginning and follows it until `shutdown`, handing every record to
/// `apply`; `ready` turns true once every partition is read up to the end it had at the start
/// (at once for an empty topic, or one compaction emptied). A read error is logged and reading
/// goes on: librdkafka recovers by itself.
pub async fn follow(
    settings: &KafkaSettings,
    topic: &str,
    role: &'static str,
    ready: &tokio::sync::watch::Sender<bool>,
    shutdown: &CancellationToken,
    mut apply: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), Error> {
    let (consumer, high_watermarks) = match open(settings, topic, role, shutdown).await {
        Ok(opened) => opened,
        Err(Error::Interrupted) => return Ok(()),
        Err(error) => return Err(error),
    };
    loop {
        if !*ready.borrow() && caught_up(&consumer, topic, &high_watermarks) {
            ready.send_replace(true);
        }
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            received = tokio::time::timeout(IDLE_CHECK, consumer.recv()) => received,
        };
        match received {
            Ok(Ok(message)) => apply(&message),
            Ok(Err(error)) => {
                tracing::warn!(%error, topic, "Reading a state topic failed; retrying.")
            }
            Err(_idle) => {}
        }
    }
}
