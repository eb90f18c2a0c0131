//! Kafka clients with the settings Hookline's guarantees rest on.
//!
//! Producers are idempotent with `acks=all`, so an acknowledged record is on every in-sync replica
//! exactly once. Consumers never store an offset by themselves: a stage stores it only after the
//! work the record caused was acknowledged, and librdkafka commits what was stored.

use std::ops::Deref;
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;

use crate::Error;
use crate::observe::{ConsumerMetrics, ObservedContext};
use crate::settings::{GroupProtocol, KafkaSettings};

/// The largest record Hookline writes, in bytes: room for a 1 MiB event with its headers, or a
/// job with a large rendered body. Producers are allowed this much and created topics accept it
/// (`max.message.bytes`); topics created by hand need the same.
pub const MAX_RECORD_BYTES: usize = 2 * 1024 * 1024;

/// The settings every client shares: brokers, client id, then the operator's pass-through
/// options, which come last so they can override anything (security settings above all).
pub fn client_config(settings: &KafkaSettings, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", format!("{}-{role}", settings.client_id));
    for (key, value) in &settings.options {
        config.set(key, value);
    }
    config
}

/// An idempotent producer: `acks=all`, lz4, and a short linger so records batch under load
/// without delaying a lone event noticeably.
pub fn producer_config(settings: &KafkaSettings, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        .set("message.timeout.ms", "30000");
    extend(config, &client_config(settings, role))
}

/// Creates a producer from [`producer_config`] (possibly adjusted by the caller).
pub fn create_producer(config: &ClientConfig) -> Result<FutureProducer, Error> {
    config.create().map_err(Error::ClientConfig)
}

/// A consumer in `group` that reads from the earliest offset when the group has none and commits
/// only offsets the stage stored explicitly (`enable.auto.offset.store=false`).
pub fn consumer_config(settings: &KafkaSettings, role: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // librdkafka's default, stated because the processor's exactly-once mode relies on it:
        // records of aborted or open transactions are never read.
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", settings.fetch_wait_ms.to_string());
    match settings.group_protocol {
        // The broker decides liveness (`group.consumer.session.timeout.ms`, 45 s by default).
        GroupProtocol::Consumer => {
            config.set("group.protocol", "consumer");
        }
        // A member that died (kill -9, a lost machine) holds its partitions until its session
        // times out: 10 s rather than librdkafka's 45 s, so a survivor takes its work within
        // about 15 s. Heartbeats run on librdkafka's own thread, so a busy stage never misses
        // them; the broker accepts 6 s and more (`group.min.session.timeout.ms`).
        GroupProtocol::Classic => {
            config
                .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
                .set(
                    "heartbeat.interval.ms",
                    (SESSION_TIMEOUT_MS / 3).to_string(),
                );
        }
    }
    extend(config, &client_config(settings, role))
}

/// The consumer session timeout of the classic group protocol, in milliseconds.
pub const SESSION_TIMEOUT_MS: u32 = 10_000;

/// A consumer that belongs to no group and reads what it is assigned, from the beginning (the
/// resource store reads the whole resources topic this way in every process).
pub fn reader_config(settings: &KafkaSettings, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set(
            "group.id",
            format!("{}{role}-reader", settings.topic_prefix),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", settings.fetch_wait_ms.to_string());
    extend(config, &client_config(settings, role))
}

/// Creates a consumer from a config built above.
pub fn create_consumer(config: &ClientConfig) -> Result<StreamConsumer, Error> {
    config.create().map_err(Error::ClientConfig)
}

/// The consumer of a role's group ([`group_id`]), which reports its lag and rebalances.
pub fn group_consumer(
    settings: &KafkaSettings,
    role: &str,
    metrics: &ConsumerMetrics,
) -> Result<GroupConsumer, Error> {
    group_consumer_with(settings, role, metrics, &[])
}

/// The consumer of a stage's main input (the processor's events, the dispatcher's deliveries):
/// [`group_consumer_with`] whose fetches wait on the broker for `fetch_batch_bytes`, or at most
/// `fetch_batch_wait_ms` (bounded by `fetch_wait_ms`), so that under load one fetch brings many
/// records. The other consumers (resources, retries, held jobs) answer at the first record and
/// otherwise wait `fetch_wait_ms`, so an idle role polls the broker rarely.
pub fn input_consumer(
    settings: &KafkaSettings,
    role: &str,
    metrics: &ConsumerMetrics,
    overrides: &[(&str, &str)],
) -> Result<GroupConsumer, Error> {
    let min_bytes = settings.fetch_batch_bytes.max(1).to_string();
    let wait = settings
        .fetch_batch_wait_ms
        .min(settings.fetch_wait_ms)
        .to_string();
    let mut all = vec![
        ("fetch.min.bytes", min_bytes.as_str()),
        ("fetch.wait.max.ms", wait.as_str()),
    ];
    all.extend_from_slice(overrides);
    group_consumer_with(settings, role, metrics, &all)
}

/// [`group_consumer`] with these settings on top (a transactional stage commits offsets in its
/// transactions, not with librdkafka's automatic commits, say). A stage that turns
/// `enable.auto.commit` off must commit by itself: [`crate::consume`] only stores offsets, also
/// when partitions are revoked.
pub fn group_consumer_with(
    settings: &KafkaSettings,
    role: &str,
    metrics: &ConsumerMetrics,
    overrides: &[(&str, &str)],
) -> Result<GroupConsumer, Error> {
    let group = group_id(settings, role);
    let mut config = consumer_config(settings, role, &group);
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.set(
        "statistics.interval.ms",
        crate::observe::STATISTICS_INTERVAL_MS.to_string(),
    );
    let consumer = config
        .create_with_context(metrics.context(&group))
        .map_err(Error::ClientConfig)?;
    Ok(GroupConsumer {
        consumer: Some(consumer),
        group,
    })
}

/// How long dropping a [`GroupConsumer`] waits for it to leave its group.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(SESSION_TIMEOUT_MS as u64);

/// A consumer in a group, closed within [`CLOSE_TIMEOUT`] when dropped.
///
/// Closing leaves the group: librdkafka revokes the partitions through the rebalance callback,
/// which assigns through the group's own queue. When the group has already terminated (seen after
/// a broker outage), that request is never answered and the close waits forever
/// (librdkafka issues 4041 and 4884), so a role told to stop would never exit. The close runs on
/// a thread of its own; if it is not done in time the role goes on without it: offsets were
/// committed before, and the group hands the partitions on after its session timeout.
pub struct GroupConsumer {
    consumer: Option<StreamConsumer<ObservedContext>>,
    group: String,
}

impl Deref for GroupConsumer {
    type Target = StreamConsumer<ObservedContext>;

    fn deref(&self) -> &Self::Target {
        self.consumer
            .as_ref()
            .expect("a group consumer is only taken when dropped")
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        if !drop_within(consumer, CLOSE_TIMEOUT) {
            tracing::warn!(
                group = %self.group,
                timeout_s = CLOSE_TIMEOUT.as_secs(),
                "The Kafka consumer did not leave its group in time; stopping without it. Its \
                 partitions move to other instances after the group's session timeout."
            );
        }
    }
}

/// Drops `value` on a thread of its own and waits at most `bound` for that to finish; `false`
/// when it did not (the thread is left to finish, or to end with the process).
fn drop_within<T: Send + 'static>(value: T, bound: Duration) -> bool {
    let (done, dropped) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".to_owned())
        .spawn(move || {
            drop(value);
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => dropped.recv_timeout(bound).is_ok(),
        // No thread to be had: the closure, and with it the value, was dropped here already.
        Err(_) => true,
    }
}

/// The consumer group of a role: `<topic prefix><role>`, so installations sharing a cluster
/// never share groups.
pub fn group_id(settings: &KafkaSettings, role: &str) -> String {
    format!("{}{role}", settings.topic_prefix)
}

fn extend(mut base: ClientConfig, overrides: &ClientConfig) -> ClientConfig {
    for (key, value) in overrides.config_map() {
        base.set(key, value);
    }
    base
}

/// Whether `error` says Kafka could not be reached or was busy for a moment (a broker down, a
/// leader moving, a request timing out): waiting and asking again cures it.
pub fn transient(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode;
    error.rdkafka_error_code().is_some_and(|code| {
        matches!(
            code,
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_options_override_defaults() {
        let mut settings = KafkaSettings::new("127.0.0.1:1");
        settings.options = vec![("linger.ms".into(), "50".into())];
        let config = producer_config(&settings, "ingest");
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("client.id"), Some("hookline-ingest"));
    }

    #[test]
    fn classic_groups_notice_a_dead_member_within_ten_seconds() {
        let settings = KafkaSettings::new("127.0.0.1:1");
        let config = consumer_config(&settings, "processor", "g");
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("3333"));
        let mut kip848 = settings;
        kip848.group_protocol = GroupProtocol::Consumer;
        let config = consumer_config(&kip848, "processor", "g");
        // librdkafka refuses client-side session settings with the consumer protocol.
        assert_eq!(config.get("session.timeout.ms"), None);
    }

    #[test]
    fn consumers_store_offsets_only_when_told() {
        let mut settings = KafkaSettings::new("127.0.0.1:1");
        settings.group_protocol = GroupProtocol::Consumer;
        let config = consumer_config(&settings, "processor", &group_id(&settings, "processor"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("hookline.processor"));
        assert_eq!(config.get("group.protocol"), Some("consumer"));
    }

    /// A value whose drop never ends, as a consumer's close after its group terminated.
    struct Stuck(mpsc::Receiver<()>);

    impl Drop for Stuck {
        fn drop(&mut self) {
            // Waits for a message no one sends, until the sender is dropped.
            let _ = self.0.recv();
        }
    }

    #[test]
    fn a_drop_that_never_ends_is_left_behind_after_the_bound() {
        let (keep, never) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        assert!(!drop_within(Stuck(never), Duration::from_millis(50)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The sender dropped ends the stuck drop, so the test leaves no thread behind.
        drop(keep);
    }

    #[test]
    fn a_drop_that_ends_is_waited_for() {
        let (keep, never) = mpsc::channel::<()>();
        drop(keep);
        assert!(drop_within(Stuck(never), Duration::from_secs(60)));
    }
}
