//! Reads an event back from the events topic, for the replays and previews of an event whose
//! payload was larger than the store keeps (`--control-store-max-payload-bytes`): the store keeps
//! its first bytes and its place on the topic, Kafka keeps the whole value.

use std::time::Duration;

use hookline_runtime::{KafkaSettings, kafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::query::Stored;

/// How long one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where whole events are read back from.
#[derive(Clone, Debug)]
pub struct Origin {
    settings: KafkaSettings,
}

/// Why a whole payload could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The consumer could not be made or assigned.
    #[error("cannot read the events topic: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Kafka no longer holds the record, or did not answer in time.
    #[error("the events topic no longer holds partition {partition} offset {offset}")]
    Gone {
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
}

impl Origin {
    /// Reads back from the events topic of `settings`.
    pub fn new(settings: &KafkaSettings) -> Self {
        Self {
            settings: settings.clone(),
        }
    }

    /// The whole payload of the stored event `event`: the stored one when it is whole, else the
    /// value of its record on the events topic. Blocking.
    pub fn payload(&self, event: &Stored) -> Result<Vec<u8>, OriginError> {
        if event.payload_complete() {
            return Ok(event.payload.clone().unwrap_or_default());
        }
        let (partition, offset) = (event.partition, event.position);
        let consumer: BaseConsumer =
            kafka::reader_config(&self.settings, "control-origin").create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(
            &self.settings.topics().events(),
            partition,
            Offset::Offset(offset),
        )?;
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + READ_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match consumer.poll(left) {
                Some(Ok(message)) if message.offset() == offset => {
                    return Ok(message.payload().unwrap_or_default().to_vec());
                }
                // Past it: the record is gone (compaction cannot happen on events; retention can).
                Some(Ok(message)) if message.offset() > offset => break,
                Some(Ok(_) | Err(_)) => {}
                None => break,
            }
        }
        Err(OriginError::Gone { partition, offset })
    }
}
