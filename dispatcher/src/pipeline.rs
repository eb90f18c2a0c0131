//! The dispatcher's loop: consume a job, deliver it (retrying as the policy says), produce one
//! attempt record per attempt and a dead letter when it gives up, and let the job's offset be
//! stored only once all of those were acknowledged.

use std::sync::Arc;
use std::time::Duration;

use hookline_runtime::consume::{self, Settled};
use hookline_runtime::observe::{ConsumerMetrics, ObservedContext};
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::{KafkaSettings, kafka};
use hookline_schemas::{
    AttemptOutcome, AttemptRecord, DeadLetter, DeadPayload, DeadReason, DeliveryJob,
    SCHEMA_VERSION, SourcePosition,
};
use prometheus::Registry;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::deliver::{Attempt, Deliverer};
use crate::metrics::Metrics;
use crate::retry::{self, Decision, Outcome};
use crate::{Config, Error};

/// How long to wait before enqueueing again when the producer's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The role name in client ids and consumer groups.
pub const ROLE: &str = "dispatcher";

/// A dispatcher, built and ready to run.
pub struct Dispatcher {
    consumer: StreamConsumer<ObservedContext>,
    shared: Arc<Shared>,
}

/// What every delivery task needs.
struct Shared {
    config: Config,
    store: ResourceStore,
    producer: FutureProducer,
    deliverer: Deliverer,
    deliveries_topic: String,
    attempts_topic: String,
    dead_topic: String,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// Creates the Kafka clients and the HTTP client and registers the metrics.
    pub fn build(
        config: Config,
        settings: &KafkaSettings,
        store: ResourceStore,
        registry: &Registry,
        consumers: &ConsumerMetrics,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        let topics = settings.topics();
        let consumer = kafka::group_consumer(settings, ROLE, consumers)?;
        let producer = kafka::create_producer(&kafka::producer_config(settings, ROLE))?;
        let deliverer = Deliverer::new(config.response_body_bytes).map_err(Error::HttpClient)?;
        Ok(Self {
            consumer,
            shared: Arc::new(Shared {
                config,
                store,
                producer,
                deliverer,
                deliveries_topic: topics.deliveries(),
                attempts_topic: topics.attempts(),
                dead_topic: topics.dead(),
                metrics: Metrics::register(registry),
                shutdown,
            }),
        })
    }

    /// Delivers jobs until shutdown, then waits for deliveries in progress (a job waiting for a
    /// retry is given up and read again after a restart) and commits.
    pub async fn run(self) -> Result<(), Error> {
        let shared = &self.shared;
        tokio::select! {
            ready = shared.store.wait_ready() => ready?,
            () = shared.shutdown.cancelled() => return Ok(()),
        }
        self.consumer
            .subscribe(&[&shared.deliveries_topic])
            .map_err(|source| Error::Subscribe {
                topic: shared.deliveries_topic.clone(),
                source,
            })?;
        info!(topic = %shared.deliveries_topic, "Dispatcher started.");
        consume::run(
            &self.consumer,
            shared.config.max_in_flight,
            &shared.shutdown,
            |message| {
                let shared = shared.clone();
                let job = read_job(message);
                async move { shared.settle(job).await }
            },
        )
        .await
    }
}

fn truncated(text: &str) -> String {
    hookline_runtime::truncate::truncate(text, hookline_runtime::truncate::DEAD_LETTER_BODY_BYTES)
}

/// Records waiting for the broker, by topic (or the reason one could not even be enqueued).
type Acks = Vec<(String, Result<DeliveryFuture, KafkaError>)>;

/// A job as read from its record, or why it could not be read.
type ReadJob = (SourcePosition, Result<DeliveryJob, String>);

fn read_job(message: &BorrowedMessage<'_>) -> ReadJob {
    let position = SourcePosition {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let payload = message.payload().unwrap_or_default();
    let job = serde_json::from_slice::<DeliveryJob>(payload)
        .map(|mut job| {
            // Attempts count from 1; a job written by hand with 0 means its first attempt.
            job.attempt = job.attempt.max(1);
            job
        })
        .map_err(|error| {
            format!(
                "not a delivery job ({error}): {}",
                truncated(&String::from_utf8_lossy(payload))
            )
        });
    (position, job)
}

impl Shared {
    async fn settle(&self, (position, job): ReadJob) -> Result<Settled, Error> {
        self.metrics.in_flight.inc();
        let mut acks: Acks = Vec::new();
        let settled = match job {
            Ok(job) => self.deliver(job, &position, &mut acks).await,
            Err(error) => {
                let payload = DeadPayload::Raw {
                    body: error.clone(),
                };
                self.dead_letter(
                    DeadReason::InvalidRequest,
                    error,
                    &position,
                    0,
                    payload,
                    &mut acks,
                )
                .await;
                Settled::Done
            }
        };
        self.metrics.in_flight.dec();
        for (topic, ack) in acks {
            let result = match ack {
                Ok(ack) => match ack.await {
                    Ok(result) => result.map(drop).map_err(|(error, _)| error),
                    Err(_canceled) => Err(KafkaError::Canceled),
                },
                Err(error) => Err(error),
            };
            result.map_err(|source| Error::Produce { topic, source })?;
        }
        Ok(settled)
    }

    async fn deliver(
        &self,
        mut job: DeliveryJob,
        position: &SourcePosition,
        acks: &mut Acks,
    ) -> Settled {
        let mut lookups = 0;
        loop {
            let destination = self
                .store
                .snapshot()
                .destinations
                .get(&job.destination_id)
                .cloned();
            let destination = match destination {
                Some(destination) if destination.enabled => Some(destination),
                Some(_) => None,
                None => {
                    // The processor knew it; this process may not have read it yet, so look
                    // again on the retry schedule before giving up.
                    lookups += 1;
                    if let Some(wait) = self.config.retry.delay(lookups) {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => continue,
                            () = self.shutdown.cancelled() => return Settled::Abandoned,
                        }
                    }
                    None
                }
            };
            let Some(destination) = destination else {
                self.metrics
                    .attempts
                    .with_label_values(&["destination_unavailable"])
                    .inc();
                let error = format!("destination {} is deleted or disabled", job.destination_id);
                let attempts = job.attempt.saturating_sub(1);
                let payload = DeadPayload::Job { job };
                self.dead_letter(
                    DeadReason::DestinationUnavailable,
                    error,
                    position,
                    attempts,
                    payload,
                    acks,
                )
                .await;
                return Settled::Done;
            };
            let deadline = Duration::from_millis(
                destination
                    .timeout_ms
                    .unwrap_or(self.config.default_timeout_ms),
            );
            let attempt = self.deliverer.attempt(&job, &destination, deadline).await;
            let decision = retry::decide(&attempt.outcome, job.attempt, &self.config.retry);
            self.observe(&job, &attempt, decision);
            self.record(&job, &attempt, decision, acks).await;
            match decision {
                Decision::Delivered => return Settled::Done,
                Decision::Dead(reason) => {
                    let error = attempt.error.unwrap_or_else(|| reason.as_str().to_owned());
                    let attempts = job.attempt;
                    let payload = DeadPayload::Job { job };
                    self.dead_letter(reason, error, position, attempts, payload, acks)
                        .await;
                    return Settled::Done;
                }
                Decision::Retry(wait) => {
                    self.metrics.retries.inc();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => job.attempt += 1,
                        () = self.shutdown.cancelled() => return Settled::Abandoned,
                    }
                }
            }
        }
    }

    fn observe(&self, job: &DeliveryJob, attempt: &Attempt, decision: Decision) {
        let label = match &attempt.outcome {
            Outcome::Status { code, .. } => match code {
                200..=299 => "delivered",
                400..=499 => "http_4xx",
                500..=599 => "http_5xx",
                _ => "http_other",
            },
            Outcome::Timeout => "timeout",
            Outcome::Connect => "connect_error",
            Outcome::InvalidRequest => "invalid_request",
        };
        self.metrics.attempts.with_label_values(&[label]).inc();
        self.metrics
            .attempt_duration
            .observe(attempt.latency.as_secs_f64());
        if decision == Decision::Delivered {
            if let Some(received) = hookline_runtime::time::parse_rfc3339(&job.received_at) {
                let age = OffsetDateTime::now_utc() - received;
                self.metrics
                    .end_to_end
                    .observe(age.as_seconds_f64().max(0.0));
            }
        } else {
            warn!(
                destination = %job.destination_id,
                delivery_id = %job.delivery_id,
                attempt = job.attempt,
                error = attempt.error.as_deref().unwrap_or_default(),
                "Delivery attempt failed."
            );
        }
    }

    async fn record(
        &self,
        job: &DeliveryJob,
        attempt: &Attempt,
        decision: Decision,
        acks: &mut Acks,
    ) {
        let outcome = match decision {
            Decision::Delivered => AttemptOutcome::Delivered,
            Decision::Retry(_) => AttemptOutcome::Retrying,
            Decision::Dead(DeadReason::Blocked) => AttemptOutcome::Blocked,
            Decision::Dead(_) => AttemptOutcome::Dead,
        };
        let status = match attempt.outcome {
            Outcome::Status { code, .. } => Some(code),
            Outcome::Timeout | Outcome::Connect | Outcome::InvalidRequest => None,
        };
        let record = AttemptRecord {
            schema_version: SCHEMA_VERSION,
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            trigger_id: job.trigger_id.clone(),
            destination_id: job.destination_id.clone(),
            attempt: job.attempt,
            started_at: hookline_runtime::time::rfc3339(attempt.started_at),
            finished_at: hookline_runtime::time::now_rfc3339(),
            outcome,
            status,
            latency_seconds: attempt.latency.as_secs_f64(),
            response_body: attempt.response_body.clone(),
            error: attempt.error.clone(),
        };
        let payload = serde_json::to_vec(&record).unwrap_or_default();
        self.produce(&self.attempts_topic, &job.delivery_id, &payload, acks)
            .await;
    }

    async fn dead_letter(
        &self,
        reason: DeadReason,
        error: String,
        position: &SourcePosition,
        attempts: u32,
        payload: DeadPayload,
        acks: &mut Acks,
    ) {
        self.metrics
            .dead
            .with_label_values(&[reason.as_str()])
            .inc();
        let key = match &payload {
            DeadPayload::Job { job } => job.destination_id.to_string(),
            DeadPayload::Event { .. } | DeadPayload::Raw { .. } => String::new(),
        };
        let dead = DeadLetter {
            schema_version: SCHEMA_VERSION,
            reason,
            error,
            position: position.clone(),
            attempts,
            dead_at: hookline_runtime::time::now_rfc3339(),
            payload,
        };
        let value = serde_json::to_vec(&dead).unwrap_or_default();
        self.produce(&self.dead_topic, &key, &value, acks).await;
    }

    async fn produce(&self, topic: &str, key: &str, payload: &[u8], acks: &mut Acks) {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        // A full local queue drains as the broker answers; any other refusal is final and stops
        // the dispatcher with the job unfinished.
        let ack = loop {
            match self.producer.send_result(record) {
                Ok(ack) => break Ok(ack),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((error, _)) => break Err(error),
            }
        };
        acks.push((topic.to_owned(), ack));
    }
}
