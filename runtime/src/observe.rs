//! What a consuming stage tells about its consumer group: lag per partition (from librdkafka's
//! statistics, so no separate lag exporter is needed) and rebalances.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;
use tracing::warn;

use crate::offsets::InFlight;
use crate::telemetry::register;

/// Records a consumer group is behind, per partition.
pub const LAG: &str = "hookline_consumer_lag";
/// Age of the oldest record a group has not finished, per topic.
pub const LAG_SECONDS: &str = "hookline_consumer_lag_seconds";
/// Partition assignments and revocations of a group.
pub const REBALANCES: &str = "hookline_consumer_rebalances_total";

/// How often librdkafka reports statistics, in milliseconds.
pub const STATISTICS_INTERVAL_MS: u32 = 5_000;

/// The consumer metrics of a process, shared by its consuming stages.
#[derive(Clone, Debug)]
pub struct ConsumerMetrics {
    lag: IntGaugeVec,
    lag_seconds: GaugeVec,
    rebalances: IntCounterVec,
}

impl ConsumerMetrics {
    /// Creates and registers the metrics; once per registry.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            lag: IntGaugeVec::new(
                Opts::new(
                    LAG,
                    "Records a consumer group has not read yet, per partition.",
                ),
                &["group", "topic", "partition"],
            )
            .expect("valid metric"),
            lag_seconds: GaugeVec::new(
                Opts::new(
                    LAG_SECONDS,
                    "Age of the oldest record a consumer group has read but not finished, or of \
                     the last one it read while it is behind; 0 when caught up.",
                ),
                &["group", "topic"],
            )
            .expect("valid metric"),
            rebalances: IntCounterVec::new(
                Opts::new(
                    REBALANCES,
                    "Partition assignments and revocations of a consumer group.",
                ),
                &["group"],
            )
            .expect("valid metric"),
        };
        register(registry, metrics.lag.clone());
        register(registry, metrics.lag_seconds.clone());
        register(registry, metrics.rebalances.clone());
        metrics
    }

    /// The context of one consumer of `group`.
    pub fn context(&self, group: &str) -> ObservedContext {
        ObservedContext {
            group: group.to_owned(),
            metrics: self.clone(),
            behind: Mutex::default(),
            in_flight: InFlight::new(),
            rebalances: AtomicU64::new(0),
            assignment: watch::Sender::new(BTreeSet::new()),
        }
    }
}

/// A consumer context that keeps [`ConsumerMetrics`] up to date.
pub struct ObservedContext {
    group: String,
    metrics: ConsumerMetrics,
    /// The last statistics' lag per (topic, partition).
    behind: Mutex<HashMap<(String, i32), i64>>,
    /// The consume loop's work, waited for before partitions are revoked.
    in_flight: Arc<InFlight>,
    /// Rebalances seen (assignments and revocations), so a loop that keeps state per partition
    /// can tell its partitions may have changed hands since it last looked.
    rebalances: AtomicU64,
    /// The partitions assigned now, as (topic, partition).
    assignment: watch::Sender<BTreeSet<(String, i32)>>,
}

impl ObservedContext {
    /// The partitions this consumer is assigned, told again after every rebalance.
    pub fn assignment(&self) -> watch::Receiver<BTreeSet<(String, i32)>> {
        self.assignment.subscribe()
    }

    /// How many rebalances this consumer has seen; it changes whenever partitions were assigned
    /// or revoked.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Acquire)
    }
}

/// What the consume loop tells its consumer's context about progress.
pub trait Progress {
    /// Records `topic` as `seconds` behind (see [`LAG_SECONDS`]).
    fn report_age(&self, topic: &str, seconds: f64);
    /// Records the group is behind on a partition, by librdkafka's last statistics; `None` when
    /// unknown.
    fn records_behind(&self, topic: &str, partition: i32) -> Option<i64>;
    /// The consume loop's work in progress, which the context's rebalance callback waits for.
    fn in_flight(&self) -> &Arc<InFlight>;
}

impl Progress for ObservedContext {
    fn report_age(&self, topic: &str, seconds: f64) {
        self.metrics
            .lag_seconds
            .with_label_values(&[self.group.as_str(), topic])
            .set(seconds);
    }

    fn records_behind(&self, topic: &str, partition: i32) -> Option<i64> {
        self.behind
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }
}

impl ClientContext for ObservedContext {
    /// librdkafka's errors, as the default does, except the end of a partition: a consumer that
    /// asked for it (`enable.partition.eof`) reads it as an event, and it is no error.
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
                | KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%error, reason, "End of a partition.");
        } else if crate::kafka::transient(&error) {
            // A broker away: said once by the reachability check (crate::reach), not per client.
            tracing::debug!("librdkafka: {error}: {reason}");
        } else {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }

    /// Reads only the figures used here from librdkafka's statistics JSON, so a field a newer
    /// librdkafka adds or drops elsewhere cannot make the whole report unreadable.
    fn stats_raw(&self, statistics: &[u8]) {
        let statistics = match serde_json::from_slice::<StatisticsLag>(statistics) {
            Ok(statistics) => statistics,
            Err(error) => {
                tracing::debug!(%error, "Unreadable librdkafka statistics.");
                return;
            }
        };
        for (topic, stats) in &statistics.topics {
            for stats in stats.partitions.values() {
                // Partition -1 is librdkafka's internal "unassigned" queue; -1 lag means unknown.
                if stats.partition < 0 || stats.consumer_lag < 0 {
                    continue;
                }
                self.behind
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert((topic.clone(), stats.partition), stats.consumer_lag);
                let partition = stats.partition.to_string();
                self.metrics
                    .lag
                    .with_label_values(&[self.group.as_str(), topic.as_str(), partition.as_str()])
                    .set(stats.consumer_lag);
            }
        }
    }
}

/// The part of librdkafka's statistics this module reads.
#[derive(serde::Deserialize)]
struct StatisticsLag {
    #[serde(default)]
    topics: HashMap<String, TopicLag>,
}

#[derive(serde::Deserialize)]
struct TopicLag {
    #[serde(default)]
    partitions: HashMap<String, PartitionLag>,
}

#[derive(serde::Deserialize)]
struct PartitionLag {
    partition: i32,
    #[serde(default = "unknown")]
    consumer_lag: i64,
}

fn unknown() -> i64 {
    -1
}

impl ConsumerContext for ObservedContext {
    /// librdkafka's own commits (periodic, and of revoked partitions' stored offsets) report
    /// here; a failed one means work finished since the last commit may be done again.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => warn!(
                group = %self.group,
                %error,
                partitions = offsets.count(),
                "Kafka did not take a commit of offsets; their work may be repeated."
            ),
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.in_flight.revoke(consumer, partitions);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.assignment.send_modify(|assigned| {
                    assigned.extend(
                        partitions
                            .elements()
                            .iter()
                            .map(|element| (element.topic().to_owned(), element.partition())),
                    );
                });
            }
            Rebalance::Revoke(partitions) => {
                self.assignment.send_modify(|assigned| {
                    for element in partitions.elements() {
                        assigned.remove(&(element.topic().to_owned(), element.partition()));
                    }
                });
                // A revoked partition's lag is another consumer's to report now.
                let mut behind = self
                    .behind
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                for element in partitions.elements() {
                    behind.remove(&(element.topic().to_owned(), element.partition()));
                    let partition = element.partition().to_string();
                    let _ = self.metrics.lag.remove_label_values(&[
                        self.group.as_str(),
                        element.topic(),
                        partition.as_str(),
                    ]);
                }
            }
            Rebalance::Error(_) => return,
        }
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        self.metrics
            .rebalances
            .with_label_values(&[self.group.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_set_the_lag_of_assigned_partitions() {
        let registry = Registry::new();
        let metrics = ConsumerMetrics::register(&registry);
        let context = metrics.context("hookline.processor");
        // The shape librdkafka reports (trimmed to what is read, plus a field it ignores).
        let statistics =
            br#"{"name": "c", "topics": {"hookline.events": {"topic": "hookline.events",
            "partitions": {"0": {"partition": 0, "consumer_lag": 42, "hi_offset": 50},
                           "1": {"partition": 1, "consumer_lag": -1},
                           "-1": {"partition": -1, "consumer_lag": 7}}}}}"#;
        context.stats_raw(statistics);
        context.stats_raw(b"not json");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(r#"hookline_consumer_lag{group="hookline.processor",partition="0",topic="hookline.events"} 42"#),
            "{text}"
        );
        assert!(!text.contains(r#"partition="-1""#), "{text}");
        assert!(
            !text.contains(r#"partition="1""#),
            "unknown lag is not reported: {text}"
        );
    }
}
