//! Reading a scenario's dead letter topic: which events the processor dead-lettered because a
//! template failed. Read as loose JSON, so the suite follows the contract's meaning (reason, the
//! event's body) rather than every field of it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use serde_json::Value;

/// How long reading the topic to its end may take.
const READ_DEADLINE: Duration = Duration::from_secs(20);

/// The sequence numbers of the events on `topic` dead-lettered with reason `render_failed`.
pub fn render_failed(brokers: &str, topic: &str) -> anyhow::Result<BTreeSet<u64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "hookline-faults-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("could not create the dead letter reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("no metadata for {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment.add_partition_offset(topic, *partition, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut open: BTreeSet<i32> = partitions.into_iter().collect();
    let mut found = BTreeSet::new();
    let started = Instant::now();
    while !open.is_empty() {
        if started.elapsed() > READ_DEADLINE {
            anyhow::bail!("{topic} was not read to its end within {READ_DEADLINE:?}");
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ))) => {
                // The topic is created at start-up; a new one may still be propagating.
            }
            Some(Err(error)) => return Err(error).context("could not read the dead letters"),
            Some(Ok(message)) => {
                if let Some(seq) = message.payload().and_then(render_failed_seq) {
                    found.insert(seq);
                }
            }
        }
    }
    Ok(found)
}

/// The event's sequence number, when `value` is a dead letter of an event whose render failed.
fn render_failed_seq(value: &[u8]) -> Option<u64> {
    let letter: Value = serde_json::from_slice(value).ok()?;
    if letter.get("reason")?.as_str()? != "render_failed" {
        return None;
    }
    let payload = letter.get("payload")?;
    if payload.get("kind")?.as_str()? != "event" {
        return None;
    }
    let body: Value = serde_json::from_str(payload.get("body")?.as_str()?).ok()?;
    body.get("seq")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_number_of_an_events_render_failure_only() {
        let letter = |reason: &str, kind: &str| {
            serde_json::json!({
                "schema_version": 1,
                "reason": reason,
                "error": "undefined value",
                "payload": {"kind": kind, "body": "{\"seq\": 999, \"other\": \"x\"}"},
            })
            .to_string()
        };
        assert_eq!(
            render_failed_seq(letter("render_failed", "event").as_bytes()),
            Some(999)
        );
        assert_eq!(
            render_failed_seq(letter("exhausted", "event").as_bytes()),
            None
        );
        assert_eq!(
            render_failed_seq(letter("render_failed", "raw").as_bytes()),
            None
        );
        assert_eq!(render_failed_seq(b"not json"), None);
    }
}
