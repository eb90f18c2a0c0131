//! The embedded Kafka-protocol broker: librdkafka's mock cluster, in process.
//!
//! It lets `hookline dev` and the tests run the real clients with no Kafka installed. It is not
//! Kafka: it keeps records in memory only, drops the oldest records of a partition beyond about
//! 5 MB or 100,000 batches, compacts nothing and has no admin API (topics are created with its own
//! call). The KIP-848 group protocol assigns partitions in about 0.1 s where the classic one waits
//! 3 s, so settings made here select it.

use hookline_schemas::TopicKind;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::settings::GroupProtocol;
use crate::{Error, KafkaSettings, topics};

/// A running embedded broker. Dropping it stops it.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` brokers listening on loopback ports chosen by the OS.
    pub fn start(brokers: i32) -> Result<Self, Error> {
        let cluster = MockCluster::new(brokers).map_err(|source| Error::Kafka {
            context: "start the embedded broker".to_owned(),
            source,
        })?;
        Ok(Self { cluster })
    }

    /// The bootstrap servers clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Settings for clients of this broker with the given topic prefix: the KIP-848 group
    /// protocol, and no admin requests (topics come from [`Self::create_topics`]).
    pub fn settings(&self, topic_prefix: &str) -> KafkaSettings {
        let mut settings = KafkaSettings::new(self.bootstrap_servers());
        settings.topic_prefix = topic_prefix.to_owned();
        settings.group_protocol = GroupProtocol::Consumer;
        settings.topics.create = false;
        // The embedded broker holds a fetch for its full wait even when records arrive meanwhile,
        // so the wait is the latency each stage adds: short for the stages' inputs (the events,
        // the deliveries), the default 100 ms for the other readers (resources, retries, held
        // jobs, control's history), which would otherwise keep an idle `hookline dev` busy
        // answering a hundred fetches a second each.
        settings.fetch_batch_wait_ms = 10;
        settings
    }

    /// Creates every Hookline topic of `settings` with its partition count.
    pub fn create_topics(&self, settings: &KafkaSettings) -> Result<(), Error> {
        let names = settings.topics();
        for kind in TopicKind::ALL {
            let name = names.name(kind);
            self.cluster
                .create_topic(&name, topics::partitions(settings, kind), 1)
                .map_err(|source| Error::CreateTopic {
                    topic: name,
                    reason: source.to_string(),
                })?;
        }
        Ok(())
    }

    /// The mock cluster, for fault injection in tests (request errors, brokers down).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
