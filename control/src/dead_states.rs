//! What operators did with dead letters, shared by every control instance through the compacted
//! `hookline.dead-states` topic: each instance reads the whole topic into memory at start and
//! follows it, and a replay or discard writes there before it answers. A letter without a
//! record is open.
//!
//! The states are few (one per letter an operator acted on, the newest per letter kept by
//! compaction), so they live in a map rather than in the store of what happened.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hookline_runtime::{Error, KafkaSettings, compacted};
use hookline_schemas::DeadLetterState;
use rdkafka::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The states, and how to record one.
pub struct DeadStates {
    states: RwLock<HashMap<String, DeadLetterState>>,
    ready: watch::Sender<bool>,
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl DeadStates {
    /// States of `settings`' topic, written through `producer`; a write not acknowledged within
    /// `timeout` fails. Nothing is read until [`Self::run`].
    pub fn new(settings: &KafkaSettings, producer: FutureProducer, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            states: RwLock::new(HashMap::new()),
            ready: watch::Sender::new(false),
            producer,
            topic: settings.topics().dead_states(),
            timeout,
        })
    }

    /// Whether every state the topic held when control started has been read.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once [`Self::is_ready`] (true), or when the reader stopped before (false).
    pub fn when_ready(&self) -> impl Future<Output = bool> + Send + 'static + use<> {
        let mut ready = self.ready.subscribe();
        async move { ready.wait_for(|ready| *ready).await.is_ok() }
    }

    /// The state of dead letter `id`, if an operator acted on it.
    pub fn get(&self, id: &str) -> Option<DeadLetterState> {
        self.states
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Writes `state` to the topic and, once Kafka acknowledged it, keeps it here too.
    pub async fn record(&self, state: DeadLetterState) -> Result<(), Error> {
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        let record = FutureRecord::to(&self.topic)
            .key(state.dead_letter_id.as_str())
            .payload(payload.as_slice());
        self.producer
            .send(record, Timeout::After(self.timeout))
            .await
            .map_err(|(source, _)| Error::Kafka {
                context: "write a dead letter's state".to_owned(),
                source,
            })?;
        self.keep(state);
        Ok(())
    }

    fn keep(&self, state: DeadLetterState) {
        self.states
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(state.dead_letter_id.clone(), state);
    }

    /// Reads the topic from its beginning, then follows it, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        settings: KafkaSettings,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let topic = self.topic.clone();
        compacted::follow(
            &settings,
            &topic,
            "control-dead-states",
            &self.ready,
            &shutdown,
            |message| match message
                .payload()
                .map(serde_json::from_slice::<DeadLetterState>)
            {
                Some(Ok(state)) => self.keep(state),
                Some(Err(error)) => {
                    warn!(%error, offset = message.offset(), "Unreadable dead letter state skipped.")
                }
                None => {}
            },
        )
        .await
    }
}
