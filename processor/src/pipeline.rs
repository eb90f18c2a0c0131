//! The processor's loop: consume an event, match the triggers of its source, render their
//! actions into delivery jobs, produce them keyed by destination, and let the event's offset be
//! stored only once every record it caused was acknowledged.
//!
//! Matching and rendering run inline, in offset order, so jobs enter the producer queue in event
//! order; only the wait for acknowledgements runs concurrently. (When the producer's local queue
//! is full, which its size makes rare, a job is enqueued later from its event's task and may
//! overtake an earlier one.)

use std::sync::Arc;
use std::time::Instant;

use hookline_runtime::consume::{self, Settled};
use hookline_runtime::observe::ConsumerMetrics;
use hookline_runtime::resources::{ResourceSet, ResourceStore};
use hookline_runtime::{KafkaSettings, kafka, order, produce};
use hookline_schemas::{
    DeadLetter, DeadPayload, DeadReason, EventMetadata, MatchOutcome, MatchRecord,
    ProducedDelivery, SCHEMA_VERSION, SkipReason, SkippedAction, SourcePosition, TriggerMatch,
    TriggerResult,
};
use prometheus::Registry;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::evaluate::{self, ActionResult, Outcome};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::{Config, Error, context, event};

mod exactly_once;

/// The role name in client ids and consumer groups.
pub const ROLE: &str = "processor";

/// A processor, built and ready to run.
pub struct Processor {
    config: Config,
    store: ResourceStore,
    consumer: kafka::GroupConsumer,
    producer: FutureProducer,
    events_topic: String,
    deliveries_topic: String,
    dead_topic: String,
    matches_topic: String,
    metrics: Metrics,
}

impl Processor {
    /// Creates the Kafka clients and registers the metrics.
    pub fn build(
        config: Config,
        settings: &KafkaSettings,
        store: ResourceStore,
        registry: &Registry,
        consumers: &ConsumerMetrics,
    ) -> Result<Self, Error> {
        let topics = settings.topics();
        let mut producer_config = kafka::producer_config(settings, ROLE);
        // Room for the jobs of every event in flight, so enqueueing practically never waits.
        producer_config.set("queue.buffering.max.messages", "1000000");
        let consumer = if config.exactly_once {
            let id = config
                .transactional_id
                .clone()
                .unwrap_or_else(|| format!("{}{ROLE}-{}", settings.topic_prefix, host_name()));
            producer_config.set("transactional.id", id).set(
                "transaction.timeout.ms",
                exactly_once::TRANSACTION_TIMEOUT_MS,
            );
            // Offsets are committed in the transactions; only committed records are read.
            kafka::input_consumer(
                settings,
                ROLE,
                consumers,
                &[
                    ("enable.auto.commit", "false"),
                    ("isolation.level", "read_committed"),
                ],
            )?
        } else {
            kafka::input_consumer(settings, ROLE, consumers, &[])?
        };
        let producer = kafka::create_producer(&producer_config)?;
        Ok(Self {
            config,
            store,
            consumer,
            producer,
            events_topic: topics.events(),
            deliveries_topic: topics.deliveries(),
            dead_topic: topics.dead(),
            matches_topic: topics.matches(),
            metrics: Metrics::register(registry),
        })
    }

    /// Processes events until `shutdown`, then finishes the events in flight and commits.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        tokio::select! {
            ready = self.store.wait_ready() => ready?,
            () = shutdown.cancelled() => return Ok(()),
        }
        self.consumer
            .subscribe(&[&self.events_topic])
            .map_err(|source| Error::Subscribe {
                topic: self.events_topic.clone(),
                source,
            })?;
        info!(topic = %self.events_topic, "Processor started.");
        let mut resources = self.store.subscribe();
        let snapshot = resources.borrow_and_update().clone();
        let mut state = State {
            rules: Rules::build(snapshot, &Rules::default(), &self.config.limits),
            resources,
            processor: &self,
        };
        if self.config.exactly_once {
            return self.run_exactly_once(state, &shutdown).await;
        }
        consume::run(
            &self.consumer,
            self.config.max_in_flight,
            &shutdown,
            // An event's work is waiting for acknowledgements: nothing to hand over when its
            // partition is revoked, so the token is not watched.
            |message, _release| state.handle(message),
        )
        .await
    }
}

struct State<'p> {
    rules: Rules,
    resources: watch::Receiver<Arc<ResourceSet>>,
    processor: &'p Processor,
}

/// The acknowledgements an event waits for before its offset may be stored.
struct Pending {
    /// What sends records again through an outage, or once the queue has room.
    producer: FutureProducer,
    acks: Vec<(String, Ack)>,
}

enum Ack {
    /// Enqueued; the broker's answer will arrive (sent again through an outage).
    Queued(DeliveryFuture),
    /// The producer queue was full; send when there is room.
    Unsent(OwnedRecord),
    /// The record could not be enqueued at all.
    Failed(KafkaError),
}

struct OwnedRecord {
    key: String,
    payload: Vec<u8>,
}

impl Pending {
    async fn wait(self) -> Result<Settled, Error> {
        let producer = &self.producer;
        for (topic, ack) in self.acks {
            let result = match ack {
                // Through a Kafka outage of any length: the event's offset waits.
                Ack::Queued(future) => produce::acknowledged(producer, &topic, future)
                    .await
                    .map(drop),
                Ack::Unsent(record) => enqueue(producer, &topic, &record).await,
                Ack::Failed(error) => Err(error),
            };
            result.map_err(|source| Error::Produce { topic, source })?;
        }
        Ok(Settled::Done)
    }
}

/// Sends a record the full producer queue refused, once there is room, and waits for its
/// acknowledgement as [`Ack::Queued`] does.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    record: &OwnedRecord,
) -> Result<(), KafkaError> {
    let sent = FutureRecord::to(topic)
        .key(record.key.as_str())
        .payload(record.payload.as_slice());
    let future = produce::enqueue(producer, sent).await?;
    produce::acknowledged(producer, topic, future)
        .await
        .map(drop)
}

impl State<'_> {
    fn handle(
        &mut self,
        message: &BorrowedMessage<'_>,
    ) -> impl Future<Output = Result<Settled, Error>> + Send + 'static + use<> {
        let started = Instant::now();
        self.refresh_rules();
        self.processor.metrics.events.inc();
        let mut pending = Pending {
            producer: self.processor.producer.clone(),
            acks: Vec::new(),
        };
        self.process(message, &mut pending);
        self.processor
            .metrics
            .render_duration
            .observe(started.elapsed().as_secs_f64());
        pending.wait()
    }

    /// Takes the newest resource snapshot, compiling only the triggers that changed.
    fn refresh_rules(&mut self) {
        if self.resources.has_changed().unwrap_or(false) {
            let snapshot = self.resources.borrow_and_update().clone();
            self.rules = Rules::build(snapshot, &self.rules, &self.processor.config.limits);
            debug!("Rules updated.");
        }
    }

    fn process(&self, message: &BorrowedMessage<'_>, pending: &mut Pending) {
        let metadata = match event::metadata(message) {
            Ok(metadata) => metadata,
            Err(error) => {
                // Without a source there is no timeline to show a match record in; the dead
                // letter says what happened.
                let dead = dead_event(message, None, DeadReason::MissingSource, error.to_string());
                return self.dead_letter(dead, pending);
            }
        };
        let mut record = MatchRecord {
            schema_version: SCHEMA_VERSION,
            event_id: metadata.event_id.clone(),
            source: metadata.source.clone(),
            matched_at: String::new(),
            outcome: MatchOutcome::NoTrigger,
            triggers: Vec::new(),
            error: None,
        };
        self.match_triggers(message, &metadata, &mut record, pending);
        if !self.processor.config.match_records {
            return;
        }
        record.outcome = MatchRecord::outcome_of(&record.triggers, record.error.is_some());
        record.matched_at = hookline_runtime::time::now_rfc3339();
        self.record_match(&record, pending);
    }

    /// Matches the triggers of the event's source, produces their jobs and dead letters, and
    /// notes every result in `record`.
    fn match_triggers(
        &self,
        message: &BorrowedMessage<'_>,
        metadata: &EventMetadata,
        record: &mut MatchRecord,
        pending: &mut Pending,
    ) {
        let triggers = self.rules.triggers_for(&metadata.source);
        if triggers.is_empty() {
            return;
        }
        let payload = match context::payload(message.payload().unwrap_or_default()) {
            Ok(payload) => payload,
            Err(error) => {
                let error = format!("the event is not valid JSON: {error}");
                record.error = Some(short(&error));
                let dead = dead_event(
                    message,
                    Some(metadata.clone()),
                    DeadReason::InvalidJson,
                    error,
                );
                return self.dead_letter(dead, pending);
            }
        };
        let event = context::event(metadata);
        // The event's order key, which its jobs carry on (see `hookline_runtime::order`); a
        // record written to Kafka without a key is keyed by its id.
        let event_key = message
            .key()
            .and_then(|key| std::str::from_utf8(key).ok())
            .filter(|key| !key.is_empty())
            .unwrap_or(metadata.event_id.as_str());
        let now = hookline_runtime::time::now_rfc3339();
        let delivered = event::replay_skip(message);
        let evaluated = evaluate::Event {
            metadata,
            payload: &payload,
            event: &event,
            now: &now,
            delivered: &delivered,
        };
        for compiled in triggers {
            let trigger = compiled.trigger();
            let outcome = evaluate::trigger(
                compiled,
                |id| self.rules.destination(id).map(AsRef::as_ref),
                &evaluated,
            );
            let mut result = TriggerMatch {
                trigger_id: trigger.id.clone(),
                result: TriggerResult::Fired,
                deliveries: Vec::new(),
                skipped: Vec::new(),
                error: None,
            };
            let actions = match outcome {
                Outcome::Fired(actions) => {
                    self.processor.metrics.matches.inc();
                    actions
                }
                // The rules index triggers by source, so this one looks at it.
                Outcome::OtherSource => continue,
                Outcome::OtherEventType(_) => {
                    result.result = TriggerResult::OtherEventType;
                    record.triggers.push(result);
                    continue;
                }
                Outcome::ConditionFalse => {
                    result.result = TriggerResult::ConditionFalse;
                    record.triggers.push(result);
                    continue;
                }
                Outcome::Failed(error) => {
                    let reason = format!("trigger {}: {error}", trigger.id);
                    result.result = TriggerResult::Error;
                    result.error = Some(short(&reason));
                    record.triggers.push(result);
                    let dead = dead_event(
                        message,
                        Some(metadata.clone()),
                        DeadReason::RenderFailed,
                        reason,
                    );
                    self.dead_letter(dead, pending);
                    continue;
                }
            };
            for action in actions {
                let index = action.index;
                let skip = |reason| SkippedAction {
                    action: u32::try_from(index).unwrap_or(u32::MAX),
                    destination_id: action.destination_id.clone(),
                    reason,
                };
                match action.result {
                    ActionResult::Skipped(why) => {
                        self.processor
                            .metrics
                            .skipped
                            .with_label_values(&[why.label()])
                            .inc();
                        result.skipped.push(skip(why.reason()));
                    }
                    ActionResult::Job(job) => {
                        let payload = serde_json::to_vec(&job).unwrap_or_default();
                        let topic = &self.processor.deliveries_topic;
                        let destination = job.destination_id.as_str();
                        let key = if self
                            .rules
                            .destination(&job.destination_id)
                            .is_some_and(|d| d.ordered)
                        {
                            order::ordered_job_key(destination)
                        } else {
                            order::job_key(destination, event_key)
                        };
                        match self.produce(topic, &key, payload, pending) {
                            Ok(()) => {
                                self.processor.metrics.jobs.inc();
                                result.deliveries.push(ProducedDelivery {
                                    delivery_id: job.delivery_id,
                                    action: job.action,
                                    destination_id: job.destination_id,
                                });
                            }
                            Err(error) => {
                                let reason = format!(
                                    "trigger {} action {index}: the job cannot be written to Kafka: {error}",
                                    trigger.id
                                );
                                result.skipped.push(skip(SkipReason::TooLarge));
                                result.error.get_or_insert_with(|| short(&reason));
                                let dead = dead_event(
                                    message,
                                    Some(metadata.clone()),
                                    DeadReason::TooLarge,
                                    reason,
                                );
                                self.dead_letter(dead, pending);
                            }
                        }
                    }
                    ActionResult::Failed(error) => {
                        let reason = format!("trigger {}: {error}", trigger.id);
                        warn!(trigger = %trigger.id, event_id = %metadata.event_id, %error, "Render failed; event dead-lettered.");
                        result.skipped.push(skip(SkipReason::RenderFailed));
                        result.error.get_or_insert_with(|| short(&reason));
                        let dead = dead_event(
                            message,
                            Some(metadata.clone()),
                            DeadReason::RenderFailed,
                            reason,
                        );
                        self.dead_letter(dead, pending);
                    }
                }
            }
            record.triggers.push(result);
        }
    }

    /// Produces the event's match record. Its acknowledgement joins the event's other ones when
    /// there are any, so it costs the event no extra wait; an event that caused nothing else does
    /// not wait for it either: the record is for the operator's timeline, and losing one to a
    /// crash loses no delivery (the event, read again, writes it again).
    fn record_match(&self, record: &MatchRecord, pending: &mut Pending) {
        let payload = serde_json::to_vec(record).unwrap_or_default();
        let topic = &self.processor.matches_topic;
        let key = record.source.as_str();
        if pending.acks.is_empty() {
            let sent = FutureRecord::to(topic).key(key).payload(payload.as_slice());
            if let Err((error, _)) = self.processor.producer.send_result(sent) {
                self.processor.metrics.match_records_dropped.inc();
                debug!(%error, event_id = %record.event_id, "Match record not enqueued.");
            }
            return;
        }
        if let Err(error) = self.produce(topic, key, payload, pending) {
            self.processor.metrics.match_records_dropped.inc();
            debug!(%error, event_id = %record.event_id, "Match record not enqueued.");
        }
    }

    fn dead_letter(&self, dead: DeadLetter, pending: &mut Pending) {
        self.processor
            .metrics
            .dead
            .with_label_values(&[dead.reason.as_str()])
            .inc();
        let key = match &dead.payload {
            DeadPayload::Event {
                metadata: Some(metadata),
                ..
            } => metadata.source.to_string(),
            DeadPayload::Event { metadata: None, .. }
            | DeadPayload::Raw { .. }
            | DeadPayload::Job { .. } => String::new(),
        };
        let payload = serde_json::to_vec(&dead).unwrap_or_default();
        if let Err(error) = self.produce(&self.processor.dead_topic, &key, payload, pending) {
            // Dead letters are small (bodies are truncated); if even one cannot be written, the
            // event stays unfinished and the processor stops rather than lose it.
            let topic = self.processor.dead_topic.clone();
            pending.acks.push((topic, Ack::Failed(error)));
        }
    }

    /// Enqueues a record; fails only when the record can never be written (too large).
    fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
        pending: &mut Pending,
    ) -> Result<(), KafkaError> {
        let record = FutureRecord::to(topic).key(key).payload(payload.as_slice());
        let ack = match self.processor.producer.send_result(record) {
            Ok(future) => Ack::Queued(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                debug!("Producer queue full; sending when there is room.");
                Ack::Unsent(OwnedRecord {
                    key: key.to_owned(),
                    payload,
                })
            }
            Err((error, _)) => return Err(error),
        };
        pending.acks.push((topic.to_owned(), ack));
        Ok(())
    }
}

/// This machine's name, for a default `transactional.id` that survives restarts.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// An error cut to fit a compact match record.
fn short(error: &str) -> String {
    hookline_runtime::truncate::truncate(error, MATCH_ERROR_BYTES)
}

/// The longest error text a match record carries; the dead letter has the whole of it.
const MATCH_ERROR_BYTES: usize = 512;

fn dead_event(
    message: &BorrowedMessage<'_>,
    metadata: Option<EventMetadata>,
    reason: DeadReason,
    error: String,
) -> DeadLetter {
    DeadLetter {
        schema_version: SCHEMA_VERSION,
        reason,
        error,
        position: SourcePosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
        attempts: 0,
        dead_at: hookline_runtime::time::now_rfc3339(),
        payload: DeadPayload::Event {
            metadata,
            body: hookline_runtime::truncate::truncate(
                &String::from_utf8_lossy(message.payload().unwrap_or_default()),
                hookline_runtime::truncate::DEAD_LETTER_BODY_BYTES,
            ),
        },
    }
}
