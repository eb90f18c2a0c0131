//! Creation of missing topics at start-up. Existing topics are left as they are: changing
//! partitions or configs of a live topic is an operator's decision, not a side effect of a restart.

use std::time::{Duration, Instant};

use hookline_schemas::TopicKind;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

use crate::{Error, KafkaSettings, kafka};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions of a topic. The compacted state topics (resources, destination health) always have
/// one, so every reader sees all changes in the order they were written.
pub fn partitions(settings: &KafkaSettings, kind: TopicKind) -> i32 {
    if kind.compacted() {
        1
    } else {
        settings.topics.partitions
    }
}

/// Makes sure the given topics exist: creates the missing ones when `--create-topics` is on,
/// and fails naming the first missing one otherwise.
pub async fn ensure(settings: &KafkaSettings, kinds: &[TopicKind]) -> Result<(), Error> {
    let topics = settings.topics();
    let existing = usable_topics(settings).await?;
    let missing: Vec<TopicKind> = kinds
        .iter()
        .copied()
        .filter(|kind| !existing.contains(&topics.name(*kind)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !settings.topics.create {
        return Err(Error::MissingTopic(topics.name(missing[0])));
    }

    let admin: AdminClient<DefaultClientContext> = kafka::client_config(settings, "admin")
        .create()
        .map_err(Error::ClientConfig)?;
    let names: Vec<String> = missing.iter().map(|kind| topics.name(*kind)).collect();
    let max_bytes = kafka::MAX_RECORD_BYTES.to_string();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .zip(&names)
        .map(|(kind, name)| {
            let topic = NewTopic::new(
                name,
                partitions(settings, *kind),
                TopicReplication::Fixed(settings.topics.replication),
            )
            .set("max.message.bytes", &max_bytes);
            if kind.compacted() {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| Error::Kafka {
            context: "create topics".to_owned(),
            source,
        })?;
    for result in results {
        match result {
            Ok(topic) => info!(%topic, "Created topic."),
            // Another process created it between our look-up and our request, or it exists but
            // was not usable yet when we looked.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    // The controller acknowledges a creation before every broker's metadata shows the topic
    // (KRaft propagates it a moment later); a reader starting right now would find it missing.
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let usable = usable_topics(settings).await?;
        let Some(waiting) = names.iter().find(|name| !usable.contains(name)) else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(Error::MissingTopic(waiting.clone()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number of partitions of `topic`. A topic created a moment ago may not be in the metadata
/// of every broker yet (a real cluster propagates it asynchronously), so an unknown topic is asked
/// for again until [`METADATA_TIMEOUT`] before it counts as missing. Blocking: call it off the
/// async workers.
pub fn partition_count<X, C>(consumer: &C, topic: &str) -> Result<usize, Error>
where
    X: ConsumerContext,
    C: Consumer<X>,
{
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|source| Error::Kafka {
                context: format!("fetch metadata of {topic}"),
                source,
            })?;
        let partitions = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions > 0 {
            return Ok(partitions);
        }
        if Instant::now() >= deadline {
            return Err(Error::MissingTopic(topic.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The low and high watermarks of one partition. Right after a topic was created its leader can
/// be unknown for a moment (Kafka answers "not leader"), so that is asked again until
/// [`METADATA_TIMEOUT`]. Blocking: call it off the async workers.
pub fn watermarks<X, C>(consumer: &C, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError>
where
    X: ConsumerContext,
    C: Consumer<X>,
{
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT) {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition,
            )) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// The topics the cluster's metadata shows with partitions and without an error: ready to use.
async fn usable_topics(settings: &KafkaSettings) -> Result<Vec<String>, Error> {
    let settings = settings.clone();
    // librdkafka's metadata call blocks; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka::client_config(&settings, "admin")
            .create()
            .map_err(Error::ClientConfig)?;
        let metadata = consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|source| Error::Kafka {
                context: format!(
                    "fetch metadata from {} (the brokers set by --kafka-brokers or \
                     HOOKLINE_KAFKA_BROKERS)",
                    settings.brokers
                ),
                source,
            })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none() && !topic.partitions().is_empty())
            .map(|topic| topic.name().to_owned())
            .collect())
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}
