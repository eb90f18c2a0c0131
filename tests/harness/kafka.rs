//! `TestKafka`: the embedded broker by default, the real cluster at `KAFKA_BROKERS` when set.

use std::time::Duration;

use hookline_runtime::embedded::EmbeddedKafka;
use hookline_runtime::settings::GroupProtocol;
use hookline_runtime::{KafkaSettings, kafka, topics};
use hookline_schemas::TopicKind;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

/// Where the test's Kafka is.
pub enum TestKafka {
    /// librdkafka's mock cluster in this process.
    Embedded(EmbeddedKafka),
    /// A real cluster.
    Real(String),
}

impl TestKafka {
    /// The real cluster at `KAFKA_BROKERS`, or a new embedded broker.
    pub fn start() -> Self {
        if Self::embedded_requested() {
            Self::Embedded(EmbeddedKafka::start(1).expect("embedded broker starts"))
        } else {
            Self::Real(std::env::var("KAFKA_BROKERS").unwrap_or_default())
        }
    }

    /// Whether tests run on the embedded broker (no `KAFKA_BROKERS`).
    pub fn embedded_requested() -> bool {
        std::env::var("KAFKA_BROKERS").map_or(true, |brokers| brokers.trim().is_empty())
    }

    /// Whether this is the embedded broker.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Self::Embedded(_))
    }

    /// Settings with a topic prefix no other test uses, and the topics created.
    pub async fn settings(&self) -> KafkaSettings {
        self.settings_with_partitions(3).await
    }

    /// [`Self::settings`] with `partitions` partitions per topic.
    pub async fn settings_with_partitions(&self, partitions: i32) -> KafkaSettings {
        let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
        match self {
            Self::Embedded(broker) => {
                let mut settings = broker.settings(&prefix);
                settings.topics.partitions = partitions;
                broker.create_topics(&settings).expect("topics are created");
                settings
            }
            Self::Real(brokers) => {
                let mut settings = KafkaSettings::new(brokers.clone());
                settings.topic_prefix = prefix;
                settings.topics.partitions = partitions;
                settings.group_protocol = GroupProtocol::Classic;
                topics::ensure(&settings, &TopicKind::ALL)
                    .await
                    .expect("topics are created on the real cluster");
                settings
            }
        }
    }
}

/// Reads `topic` from the beginning as (key, value) pairs: at least `at_least` records (failing
/// the test after the patience runs out), then on until `idle` passes without another one.
pub async fn read_topic(
    settings: &KafkaSettings,
    topic: &str,
    at_least: usize,
    idle: Duration,
) -> Vec<(String, Vec<u8>)> {
    let consumer: StreamConsumer =
        kafka::create_consumer(&kafka::reader_config(settings, "test-reader")).unwrap();
    let mut assignment = TopicPartitionList::new();
    let partitions = if topic.ends_with("resources")
        || topic.ends_with("destination-health")
        || topic.ends_with("dead-states")
        || topic.ends_with(".held")
    {
        1
    } else {
        settings.topics.partitions
    };
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let patience = tokio::time::Instant::now() + super::PATIENCE;
    loop {
        let deadline = if records.len() < at_least {
            patience
        } else {
            tokio::time::Instant::now() + idle
        };
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => records.push((
                String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                message.payload().unwrap_or_default().to_vec(),
            )),
            Ok(Err(error)) => panic!("reading {topic}: {error}"),
            Err(_) => break,
        }
    }
    assert!(
        records.len() >= at_least,
        "{topic} has {} records, expected at least {at_least}",
        records.len()
    );
    records
}
