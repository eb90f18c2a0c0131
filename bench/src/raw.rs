//! The machine's raw limits, measured in the same run as the pipeline: Kafka produce→consume
//! with Hookline's own client settings and the workload's events (one hop, where the pipeline
//! makes several), and HTTP POSTs of the same events from the same load generator to the same
//! receiver process. The pipeline's throughput is reported as a share of the smaller one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hookline_runtime::embedded::EmbeddedKafka;
use hookline_runtime::kafka::{consumer_config, create_consumer, create_producer, producer_config};
use hookline_runtime::settings::GroupProtocol;
use hookline_runtime::{KafkaSettings, topics};
use hookline_schemas::TopicKind;
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Serialize;

use crate::workload::{Generator, SOURCES, VARIANTS};

/// Records produced but not yet consumed, at most. It keeps the embedded broker, which drops
/// the oldest records of a partition beyond about 5 MB, from dropping any, and makes the figure
/// a sustained produce→consume rate rather than a producer's burst.
const WINDOW: u64 = 5_000;

/// Where the raw Kafka limit is measured.
#[derive(Clone, Debug)]
pub enum RawBroker {
    /// A fresh embedded broker (librdkafka's mock cluster, as in `hookline dev`) in this process.
    Embedded,
    /// The Kafka cluster the pipeline uses.
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Group protocol of the consumer.
        group_protocol: GroupProtocol,
    },
}

/// The raw Kafka limit.
#[derive(Clone, Debug, Serialize)]
pub struct RawKafka {
    /// Records produced and consumed.
    pub records: u64,
    /// From the first produce to the last consume, in seconds.
    pub seconds: f64,
    /// Records per second.
    pub per_second: f64,
    /// Mean record value size, in bytes.
    pub record_bytes: usize,
    /// Partitions of the topic.
    pub partitions: i32,
}

/// Produces the workload's events to a fresh topic for `duration`, at most [`WINDOW`] ahead of
/// a consumer in its own group, and measures the rate at which they come out.
pub async fn kafka(
    broker: &RawBroker,
    duration: Duration,
    partitions: i32,
    prefix: &str,
    generator: &Generator,
) -> anyhow::Result<RawKafka> {
    let mut embedded = None;
    let settings = match broker {
        RawBroker::Embedded => {
            let cluster = EmbeddedKafka::start(1)?;
            let mut settings = cluster.settings(prefix);
            settings.topics.partitions = partitions;
            cluster.create_topics(&settings)?;
            embedded = Some(cluster);
            settings
        }
        RawBroker::Kafka {
            brokers,
            group_protocol,
        } => {
            let mut settings = KafkaSettings::new(brokers.clone());
            settings.topic_prefix = prefix.to_owned();
            settings.topics.partitions = partitions;
            settings.group_protocol = *group_protocol;
            topics::ensure(&settings, &[TopicKind::Events]).await?;
            settings
        }
    };
    let topic = settings.topics().name(TopicKind::Events);
    let producer = create_producer(&producer_config(&settings, "bench-raw"))?;
    let consumer = Arc::new(create_consumer(&consumer_config(
        &settings,
        "bench-raw",
        &format!("{prefix}bench-raw"),
    ))?);
    consumer.subscribe(&[&topic])?;

    let consumed = Arc::new(AtomicU64::new(0));
    let last_consumed = Arc::new(std::sync::Mutex::new(Instant::now()));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (consumer, consumed, last_consumed, done) = (
            consumer.clone(),
            consumed.clone(),
            last_consumed.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(Ok(message)) =
                    tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
                    && message.payload().is_some()
                {
                    consumed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut last) = last_consumed.lock() {
                        *last = Instant::now();
                    }
                }
            }
        })
    };
    // Wait for the partitions to be assigned before the clock starts.
    wait_for_partitions(&consumer, "the raw Kafka consumer").await?;

    let cycle = (SOURCES.len() * VARIANTS) as u64;
    let bodies: Vec<(usize, Bytes)> = (0..cycle)
        .map(|seq| {
            let event = generator.event(seq, 0);
            (event.source, event.body)
        })
        .collect();
    let record_bytes = bodies.iter().map(|(_, body)| body.len()).sum::<usize>() / bodies.len();
    let start = Instant::now();
    let mut produced = 0_u64;
    while start.elapsed() < duration {
        if produced.saturating_sub(consumed.load(Ordering::Relaxed)) >= WINDOW {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let (source, body) = &bodies[(produced % cycle) as usize];
        let source = SOURCES[*source].id;
        let headers = OwnedHeaders::new().insert(Header {
            key: "hookline-source",
            value: Some(source),
        });
        let record = FutureRecord::to(&topic)
            .key(source)
            .payload(body.as_ref())
            .headers(headers);
        match producer.send_result(record) {
            // The consumer's count is what is measured; the acknowledgement is not awaited.
            Ok(_delivery) => produced += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
        if produced.is_multiple_of(256) {
            tokio::task::yield_now().await;
        }
    }
    let draining = Instant::now();
    while consumed.load(Ordering::Relaxed) < produced
        && draining.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    reader.await.context("the raw Kafka consumer panicked")?;
    let records = consumed.load(Ordering::Relaxed);
    let last = last_consumed
        .lock()
        .map(|last| *last)
        .unwrap_or_else(|_| Instant::now());
    let seconds = last
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-3);
    drop(producer);
    drop(consumer);
    drop(embedded);
    Ok(RawKafka {
        records,
        seconds,
        per_second: records as f64 / seconds,
        record_bytes,
        partitions,
    })
}

/// Waits, up to 60 s, until `consumer` (polled by a task of its own) was assigned partitions;
/// `what` names it in the error.
pub(crate) async fn wait_for_partitions(
    consumer: &StreamConsumer,
    what: &str,
) -> anyhow::Result<()> {
    let waiting = Instant::now();
    while consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        if waiting.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("{what} got no partitions within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
