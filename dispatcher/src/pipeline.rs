//! The dispatcher's loops: consume a job (from the deliveries topic or, once due, from a retry
//! topic), deliver it within its destination's limits, produce one attempt record per attempt,
//! and then either finish, wait a little in memory, hand it to a retry topic for a longer wait,
//! or dead-letter it. A job's offset is stored only once all of that was acknowledged.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::Either;
use hookline_runtime::consume::{self, Next, Settled};
use hookline_runtime::observe::{ConsumerMetrics, ObservedContext, Progress};
use hookline_runtime::produce;
use hookline_runtime::resources::{ResourceStore, ResourceWriter};
use hookline_runtime::{KafkaSettings, kafka, order};
use hookline_schemas::{
    AttemptOutcome, AttemptRecord, DeadLetter, DeadPayload, DeadReason, DeliveryJob, Destination,
    Resource, RetryTier, SCHEMA_VERSION, SourcePosition, Topics,
};
use prometheus::Registry;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::deliver::{Attempt, Deliverer};
use crate::guard::{self, Guard};
use crate::health::{Health, Verdict};
use crate::hold::Releaser;
use crate::isolation::{BreakerSettings, Held, Isolation};
use crate::metrics::Metrics;
use crate::retry::{self, Decision, Outcome};
use crate::share::Part;
use crate::{Config, Error};

/// Waits for a destination this process has not read yet (the processor knew it), before the
/// job is dead-lettered as having none.
const LOOKUP_WAITS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// Waits shorter than this always happen in memory: a trip through a retry topic costs more.
const PARK_MIN: Duration = Duration::from_millis(100);

/// The role name in client ids and consumer groups.
pub const ROLE: &str = "dispatcher";

/// The consumer group of the retry topics.
pub const RETRY_ROLE: &str = "dispatcher-retry";

/// A dispatcher, built and ready to run.
pub struct Dispatcher {
    settings: KafkaSettings,
    consumer: kafka::GroupConsumer,
    retry_consumer: kafka::GroupConsumer,
    releaser: Releaser,
    /// What the deliveries reader sends to the line of an ordered destination, in read order.
    line: mpsc::UnboundedReceiver<Divert>,
    shared: Arc<Shared>,
}

/// A job of an ordered destination on its way to its line in the held topic (see
/// [`crate::hold`]), handed over in the order the deliveries reader read it, which is the order
/// its line keeps.
struct Divert {
    delivery_id: String,
    payload: Vec<u8>,
    /// Told once the broker acknowledged it, or why it never will.
    written: oneshot::Sender<Result<(), KafkaError>>,
}

/// The most jobs [`write_lines`] sends before it waits for their acknowledgements.
const LINE_BATCH: usize = 1024;

/// How a job is worked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Read from the deliveries topic or a retry topic: a long wait goes to a retry topic, and a
    /// job of an ordered destination goes to its line.
    Topic,
    /// At the head of an ordered destination's line: every wait happens in place, because the
    /// destination's later jobs wait for this one.
    Line,
}

/// What every delivery task needs.
struct Shared {
    config: Config,
    store: ResourceStore,
    producer: FutureProducer,
    writer: ResourceWriter,
    deliverer: Deliverer,
    isolation: Isolation,
    health: Health,
    topics: Topics,
    /// The retry topic of each tier, in [`RetryTier::ALL`] order.
    retry_topics: Vec<(RetryTier, String)>,
    attempts_topic: String,
    dead_topic: String,
    held_topic: String,
    /// See [`Divert`].
    line: mpsc::UnboundedSender<Divert>,
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
        let consumer = kafka::input_consumer(settings, ROLE, consumers, &[])?;
        let retry_consumer = kafka::group_consumer(settings, RETRY_ROLE, consumers)?;
        let producer = kafka::create_producer(&kafka::producer_config(settings, ROLE))?;
        let writer = ResourceWriter::with_producer(settings, producer.clone());
        let guard = Guard::new(config.allow_cidrs.clone());
        let tls = guard::tls_config(config.extra_roots()).map_err(Error::HttpClient)?;
        let deliverer = Deliverer::new(guard, tls, config.response_body_bytes);
        let metrics = Metrics::register(registry, config.metrics_destination_labels);
        let isolation = Isolation::new(
            config.destination_max_in_flight,
            BreakerSettings {
                consecutive_failures: config.circuit_failures.max(1),
                open_for: Duration::from_millis(config.circuit_open_ms),
                open_max: Duration::from_millis(config.circuit_open_max_ms),
            },
            metrics.open_circuits.clone(),
        );
        let health = Health::new(
            settings,
            producer.clone(),
            Duration::from_secs(config.disable_after_failing_seconds),
        );
        let releaser = Releaser::build(
            settings,
            consumers,
            producer.clone(),
            store.clone(),
            metrics.clone(),
        )?;
        let (line, diverted) = mpsc::unbounded_channel();
        Ok(Self {
            settings: settings.clone(),
            consumer,
            retry_consumer,
            releaser,
            line: diverted,
            shared: Arc::new(Shared {
                config,
                store,
                producer,
                writer,
                deliverer,
                isolation,
                health,
                topics: settings.topics(),
                retry_topics: RetryTier::ALL
                    .into_iter()
                    .map(|tier| (tier, settings.topics().retry(tier)))
                    .collect(),
                attempts_topic: settings.topics().attempts(),
                dead_topic: settings.topics().dead(),
                held_topic: settings.topics().held(),
                line,
                metrics,
                shutdown,
            }),
        })
    }

    /// Delivers jobs until shutdown, then waits for deliveries in progress (a job waiting in
    /// memory for its next attempt is handed to a retry topic) and commits.
    pub async fn run(self) -> Result<(), Error> {
        let Self {
            settings,
            consumer,
            retry_consumer,
            releaser,
            line,
            shared,
        } = self;
        let shared = &shared;
        tokio::select! {
            ready = shared.store.wait_ready() => ready?,
            () = shared.shutdown.cancelled() => return Ok(()),
        }
        if !shared.health.load(&settings, &shared.shutdown).await? {
            return Ok(());
        }
        // Before a partition is revoked, its deliveries get the drain time to finish and their
        // waits are handed to the retry topics; the rest is margin for those hand-overs.
        for consumer in [&consumer, &retry_consumer] {
            consumer
                .context()
                .in_flight()
                .set_revoke_wait(shared.config.drain * 2);
        }
        let deliveries = shared.topics.deliveries();
        subscribe(&consumer, &[deliveries.as_str()])?;
        let tiers: Vec<&str> = shared
            .retry_topics
            .iter()
            .map(|(_, topic)| topic.as_str())
            .collect();
        subscribe(&retry_consumer, &tiers)?;
        info!(topic = %deliveries, retry_topics = ?tiers, "Dispatcher started.");

        // Either loop failing stops the other; each commits what it finished.
        let stop = shared.shutdown.child_token();
        let fresh = async {
            let result = consume::run(
                &consumer,
                shared.config.max_in_flight,
                &stop,
                |message, release| {
                    let job = read_job(message);
                    match shared.ordered(message.key(), &job) {
                        Some(delivery_id) => {
                            let payload = message.payload().unwrap_or_default().to_vec();
                            Either::Left(shared.clone().divert(delivery_id, payload))
                        }
                        None => Either::Right(shared.clone().settle(job, Path::Topic, release)),
                    }
                },
            )
            .await;
            stop.cancel();
            result
        };
        let retried = async {
            let result = consume::run_gated(
                &retry_consumer,
                shared.config.max_in_flight,
                &stop,
                |message, release| {
                    let job = read_job(message);
                    match due(&shared.retry_topics, message, &job.1) {
                        Some(due) if due > Instant::now() => Next::NotBefore(due),
                        _ => Next::Run(shared.clone().settle(job, Path::Topic, release)),
                    }
                },
            )
            .await;
            stop.cancel();
            result
        };
        let released = async {
            let line = Arc::clone(shared);
            let lines = move |job: ReadJob, release| line.clone().settle(job, Path::Line, release);
            let result = releaser.run(&stop, lines).await;
            stop.cancel();
            result
        };
        let shares = follow_part(&consumer, &deliveries, shared, &stop);
        let diverts = write_lines(shared, line, &stop);
        let (fresh, retried, released, (), ()) =
            tokio::join!(fresh, retried, released, shares, diverts);
        fresh.and(retried).and(released)
    }
}

/// Deals this instance's shares of the destinations' limits ([`crate::share`]) again whenever
/// its partitions of the deliveries topic change, until `stop`.
async fn follow_part(
    consumer: &kafka::GroupConsumer,
    topic: &str,
    shared: &Shared,
    stop: &CancellationToken,
) {
    let mut assignment = consumer.context().assignment();
    loop {
        let owned: Vec<i32> = assignment
            .borrow_and_update()
            .iter()
            .filter(|(assigned, _)| assigned == topic)
            .map(|(_, partition)| *partition)
            .collect();
        let producer = shared.producer.clone();
        let name = topic.to_owned();
        let total = tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(5))
                .ok()?;
            let partitions = metadata.topics().first()?.partitions().len();
            (partitions > 0).then_some(partitions)
        })
        .await
        .ok()
        .flatten();
        match total {
            Some(total) => {
                let part = Part::new(owned, total);
                info!(partitions = ?part, "Shares of the destinations' limits dealt for these partitions.");
                shared.isolation.set_part(part);
            }
            // Kafka unreachable: keep the shares; the next rebalance deals them again.
            None => warn!(%topic, "Partition count unknown; destination limit shares unchanged."),
        }
        tokio::select! {
            changed = assignment.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

/// Writes the jobs the deliveries reader sends to ordered destinations' lines to the held topic
/// in the order it sent them (one partition, so the lines keep that order), until `stop`; a job
/// not written by then is read again after a restart. Through a Kafka outage, what was not
/// acknowledged is sent again from the first such job on, in order: a job that was written
/// after all may then be in its line twice (delivered twice, with one `webhook-id`), never
/// ahead of one before it.
async fn write_lines(
    shared: &Shared,
    mut diverted: mpsc::UnboundedReceiver<Divert>,
    stop: &CancellationToken,
) {
    let mut pauses = produce::pauses();
    let mut resending = false;
    loop {
        let first = tokio::select! {
            divert = diverted.recv() => divert,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        let mut batch = VecDeque::from([first]);
        while batch.len() < LINE_BATCH
            && let Ok(divert) = diverted.try_recv()
        {
            batch.push_back(divert);
        }
        while !batch.is_empty() {
            let mut acks = Vec::with_capacity(batch.len());
            for divert in &batch {
                let record = FutureRecord::to(&shared.held_topic)
                    .key(&divert.delivery_id)
                    .payload(&divert.payload);
                acks.push(produce::enqueue(&shared.producer, record).await);
            }
            let mut refused = None;
            for ack in acks {
                let result = match ack {
                    Ok(ack) => match ack.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((error, _))) => Err(error),
                        Err(_canceled) => Err(KafkaError::Canceled),
                    },
                    Err(error) => Err(error),
                };
                // Only the jobs before the first one refused count as written.
                if refused.is_some() {
                    continue;
                }
                match result {
                    Err(error) if produce::curable(&error) => refused = Some(error),
                    result => {
                        if let Some(divert) = batch.pop_front() {
                            // Its reader stopped waiting only if its loop ended.
                            let _ = divert.written.send(result);
                        }
                    }
                }
            }
            match refused {
                Some(error) => {
                    if !std::mem::replace(&mut resending, true) {
                        warn!(%error, "Kafka did not take jobs of ordered destinations; sending them again, in order, until it does.");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pauses.next().unwrap_or(Duration::from_secs(5))) => {}
                        () = stop.cancelled() => return,
                    }
                }
                None if resending => {
                    resending = false;
                    pauses = produce::pauses();
                    info!("Kafka takes the jobs of ordered destinations again.");
                }
                None => {}
            }
        }
    }
}

fn subscribe(consumer: &StreamConsumer<ObservedContext>, topics: &[&str]) -> Result<(), Error> {
    consumer
        .subscribe(topics)
        .map_err(|source| Error::Subscribe {
            topic: topics.join(", "),
            source,
        })
}

/// When a record of a retry topic falls due: its tier's delay after it was written, or the job's
/// own `not_before` if that is sooner. `None` (due now) when the record carries no timestamp.
fn due(
    retry_topics: &[(RetryTier, String)],
    message: &BorrowedMessage<'_>,
    job: &Result<DeliveryJob, String>,
) -> Option<Instant> {
    let (tier, _) = retry_topics
        .iter()
        .find(|(_, topic)| topic == message.topic())?;
    let written =
        UNIX_EPOCH + Duration::from_millis(message.timestamp().to_millis()?.try_into().ok()?);
    let mut due = written + Duration::from_secs(tier.delay_seconds());
    if let Some(not_before) = job
        .as_ref()
        .ok()
        .and_then(|job| job.not_before.as_deref())
        .and_then(hookline_runtime::time::parse_rfc3339)
    {
        due = due.min(SystemTime::from(not_before));
    }
    let wait = due.duration_since(SystemTime::now()).ok()?;
    Some(Instant::now() + wait)
}

/// How long until `job` may be attempted; zero when it may go now.
fn wait_of(job: &DeliveryJob) -> Duration {
    job.not_before
        .as_deref()
        .and_then(hookline_runtime::time::parse_rfc3339)
        .map(|at| at - OffsetDateTime::now_utc())
        .and_then(|wait| Duration::try_from(wait).ok())
        .unwrap_or_default()
}

/// How long a job held back by its destination waits before it is tried again. An open circuit
/// (or its probe in flight) lasts a while: its jobs wait for the shortest retry tier at least as
/// long, and come back once, when that overshoots the wait by at most half again or is the
/// shortest tier, instead of passing through a shorter tier again and again (each pass is a read,
/// a decision and a write). Otherwise, and for limits, the wait itself.
fn held_wait(held: Held, wait: Duration) -> Duration {
    let tier = Duration::from_secs(RetryTier::at_least(wait.as_secs_f64()).delay_seconds());
    let shortest = Duration::from_secs(RetryTier::S5.delay_seconds());
    match held {
        Held::CircuitOpen if tier <= shortest || tier.as_secs_f64() <= wait.as_secs_f64() * 1.5 => {
            tier
        }
        Held::CircuitOpen | Held::RateLimited | Held::Busy => wait,
    }
}

fn truncated(text: &str) -> String {
    hookline_runtime::truncate::truncate(text, hookline_runtime::truncate::DEAD_LETTER_BODY_BYTES)
}

/// Records waiting for the broker, by topic (or the reason one could not even be enqueued).
type Acks = Vec<(String, Result<DeliveryFuture, KafkaError>)>;

/// A job as read from its record, or why it could not be read.
pub(crate) type ReadJob = (SourcePosition, Result<DeliveryJob, String>);

fn read_job(message: &BorrowedMessage<'_>) -> ReadJob {
    let position = SourcePosition {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };
    parse_job(position, message.payload().unwrap_or_default())
}

/// The job in `payload`, read at `position`.
pub(crate) fn parse_job(position: SourcePosition, payload: &[u8]) -> ReadJob {
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
    /// Delivers or dead-letters a job; `release` is cancelled when its partition is revoked or
    /// the dispatcher stops, and the job is then handed over (see [`Self::deliver`]). It owns
    /// its `Arc` so that its future is the task itself: an async block around it would hold the
    /// job twice (rust-lang/rust#62958).
    pub(crate) async fn settle(
        self: Arc<Self>,
        (position, job): ReadJob,
        path: Path,
        release: CancellationToken,
    ) -> Result<Settled, Error> {
        self.metrics.in_flight.inc();
        let mut acks: Acks = Vec::new();
        let settled = match job {
            Ok(job) => {
                self.deliver(job, &position, path, &release, &mut acks)
                    .await
            }
            Err(error) => {
                let payload = DeadPayload::Raw {
                    body: error.clone(),
                };
                Box::pin(self.dead_letter(
                    DeadReason::InvalidRequest,
                    error,
                    &position,
                    0,
                    payload,
                    &mut acks,
                ))
                .await;
                Settled::Done
            }
        };
        self.metrics.in_flight.dec();
        for (topic, ack) in acks {
            // Through a Kafka outage of any length: the job's offset waits, nothing is lost.
            let result = match ack {
                Ok(ack) => produce::acknowledged(&self.producer, &topic, ack)
                    .await
                    .map(drop),
                Err(error) => Err(error),
            };
            result.map_err(|source| Error::Produce { topic, source })?;
        }
        Ok(settled)
    }

    /// The delivery id of `job` when its destination is ordered: the job then goes to its line
    /// ([`Self::divert`]) rather than being delivered from here.
    fn ordered(&self, key: Option<&[u8]>, (_, job): &ReadJob) -> Option<String> {
        let job = job.as_ref().ok()?;
        // The key says so even before this process has read the destination, so none of its
        // jobs goes another way.
        let keyed =
            key.is_some_and(|key| order::is_ordered_job_key(key, job.destination_id.as_str()));
        let ordered = keyed
            || self
                .store
                .snapshot()
                .destinations
                .get(&job.destination_id)
                .is_some_and(|destination| destination.enabled && destination.ordered);
        ordered.then(|| job.delivery_id.clone())
    }

    /// Sends a job of an ordered destination to its line now, in read order (see [`Divert`]),
    /// and returns the wait for the broker's acknowledgement.
    fn divert(
        self: Arc<Self>,
        delivery_id: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Settled, Error>> + Send + 'static {
        let (written, acknowledged) = oneshot::channel();
        let sent = self.line.send(Divert {
            delivery_id,
            payload,
            written,
        });
        async move {
            // The writer stopped: the dispatcher is stopping, and the job is read again later.
            let (Ok(()), Ok(result)) = (sent, acknowledged.await) else {
                return Ok(Settled::Abandoned);
            };
            result.map_err(|source| Error::Produce {
                topic: self.held_topic.clone(),
                source,
            })?;
            self.metrics.held.inc();
            Ok(Settled::Done)
        }
    }

    /// The destination of `job`, waiting a little for one this process has not read yet; `None`
    /// when it is deleted or disabled, `Err` once `release` is cancelled.
    async fn destination(
        &self,
        job: &DeliveryJob,
        release: &CancellationToken,
    ) -> Result<Option<Arc<Destination>>, ()> {
        for wait in LOOKUP_WAITS.into_iter().map(Some).chain([None]) {
            match self.store.snapshot().destinations.get(&job.destination_id) {
                Some(destination) if destination.enabled => return Ok(Some(destination.clone())),
                Some(_) => return Ok(None),
                None => {}
            }
            let Some(wait) = wait else { break };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = release.cancelled() => return Err(()),
            }
        }
        Ok(None)
    }

    /// Attempts `job` until it is delivered, dead or parked in a retry topic. Once `release` is
    /// cancelled (its partition revoked, or the dispatcher stopping) an in-memory wait is handed
    /// to a retry topic, and an attempt in progress gets [`Config::drain`] to finish before it is
    /// abandoned to the partition's next reader.
    async fn deliver(
        &self,
        mut job: DeliveryJob,
        position: &SourcePosition,
        path: Path,
        release: &CancellationToken,
        acks: &mut Acks,
    ) -> Settled {
        loop {
            // Waits up to the in-process limit happen here; longer ones through a retry topic,
            // except in a line, where the jobs behind wait too.
            let wait = wait_of(&job);
            if path == Path::Topic && wait > self.config.in_process_wait().max(PARK_MIN) {
                return self.park(job, wait, acks).await;
            }
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    // Released: the wait goes on in a retry topic, where the partition's next
                    // reader (or a restart) finds it; a line's next owner starts it again.
                    () = release.cancelled() => return match path {
                        Path::Topic => self.park(job, wait, acks).await,
                        Path::Line => Settled::Abandoned,
                    },
                }
            }
            let destination = match self.destination(&job, release).await {
                Ok(Some(destination)) => destination,
                Ok(None) => {
                    self.metrics
                        .attempts
                        .with_label_values(&["destination_unavailable"])
                        .inc();
                    let error =
                        format!("destination {} is deleted or disabled", job.destination_id);
                    let attempts = job.attempt.saturating_sub(1);
                    let payload = DeadPayload::Job { job };
                    Box::pin(self.dead_letter(
                        DeadReason::DestinationUnavailable,
                        error,
                        position,
                        attempts,
                        payload,
                        acks,
                    ))
                    .await;
                    return Settled::Done;
                }
                Err(()) => return Settled::Abandoned,
            };
            match path {
                // A paused line stops at its head; its owner starts it again on resume.
                Path::Line if destination.paused => return Settled::Abandoned,
                Path::Topic if destination.paused || destination.ordered => {
                    return self.hold(job, acks).await;
                }
                Path::Line | Path::Topic => {}
            }
            let pass = match self.isolation.admit(&destination).await {
                Ok(pass) => pass,
                Err((held, wait)) if path == Path::Line => {
                    self.metrics
                        .deferred
                        .with_label_values(&[held.as_str()])
                        .inc();
                    tokio::select! {
                        () = tokio::time::sleep(wait.max(PARK_MIN)) => continue,
                        () = release.cancelled() => return Settled::Abandoned,
                    }
                }
                Err((held, wait)) => {
                    // Held back by its destination's limits or open circuit: wait on the retry
                    // path so the slots and the partition stay free for other destinations.
                    self.metrics
                        .deferred
                        .with_label_values(&[held.as_str()])
                        .inc();
                    let wait = held_wait(held, wait);
                    job.not_before = Some(hookline_runtime::time::rfc3339(
                        OffsetDateTime::now_utc() + wait,
                    ));
                    return self.park(job, wait, acks).await;
                }
            };
            let deadline = Duration::from_millis(
                destination
                    .timeout_ms
                    .unwrap_or(self.config.default_timeout_ms),
            );
            let draining = async {
                release.cancelled().await;
                tokio::time::sleep(self.config.drain).await;
            };
            let attempt = tokio::select! {
                attempt = self.deliverer.attempt(&job, &destination, deadline) => attempt,
                () = draining => return Settled::Abandoned,
            };
            self.isolation.finish(pass, attempt.outcome.is_failure());
            let delivered = matches!(
                attempt.outcome,
                Outcome::Status {
                    code: 200..=299,
                    ..
                }
            );
            let ours = matches!(attempt.outcome, Outcome::Blocked | Outcome::InvalidRequest);
            if !ours && let Verdict::Disable(since) = self.health.record(&destination.id, delivered)
            {
                let why = format!("failed without a single success since {since}");
                Box::pin(self.disable(&destination, "failing", &why)).await;
            }
            let policy = destination
                .retry
                .clone()
                .unwrap_or_else(|| self.config.default_retry());
            let decision = retry::decide(
                &attempt.outcome,
                job.attempt,
                &policy,
                self.config.max_retry_after(),
            );
            self.observe(&job, &attempt, decision);
            self.record(&job, &attempt, decision, acks).await;
            match decision {
                Decision::Delivered => return Settled::Done,
                Decision::Dead(reason) => {
                    let error = attempt.error.unwrap_or_else(|| reason.as_str().to_owned());
                    if reason == DeadReason::Gone {
                        Box::pin(self.disable(&destination, "gone", &error)).await;
                    }
                    let attempts = job.attempt;
                    let payload = DeadPayload::Job { job };
                    Box::pin(self.dead_letter(reason, error, position, attempts, payload, acks))
                        .await;
                    return Settled::Done;
                }
                Decision::Retry(wait) => {
                    job.attempt += 1;
                    job.not_before = Some(hookline_runtime::time::rfc3339(
                        OffsetDateTime::now_utc() + wait,
                    ));
                    if path == Path::Line || wait <= self.config.in_process_wait().max(PARK_MIN) {
                        self.metrics
                            .retries
                            .with_label_values(&["in_process"])
                            .inc();
                    }
                }
            }
        }
    }

    /// Hands `job` to the retry topic for a wait of `wait`: the longest tier no longer than it,
    /// from which it comes back (again, if need be) until due.
    async fn park(&self, job: DeliveryJob, wait: Duration, acks: &mut Acks) -> Settled {
        let tier = RetryTier::for_wait(wait.as_secs_f64());
        self.metrics
            .retries
            .with_label_values(&[tier.label()])
            .inc();
        let payload = serde_json::to_vec(&job).unwrap_or_default();
        // `retry_topics` follows `RetryTier::ALL`, the tiers' declaration order.
        let (_, topic) = &self.retry_topics[tier as usize];
        // Keyed as the processor keys an event's jobs by default, so one destination's waits
        // spread over the retry topic's partitions, and its readers, too.
        let key = order::job_key(job.destination_id.as_str(), &job.event_id);
        self.produce(topic, &key, &payload, acks).await;
        Settled::Done
    }

    /// Puts `job` on hold until its destination resumes (see [`crate::hold`]).
    async fn hold(&self, job: DeliveryJob, acks: &mut Acks) -> Settled {
        self.metrics.held.inc();
        let payload = serde_json::to_vec(&job).unwrap_or_default();
        self.produce(&self.held_topic, &job.delivery_id, &payload, acks)
            .await;
        Settled::Done
    }

    /// Disables a destination that said it is gone (`reason` "gone") or kept failing
    /// ("failing"), through the resources topic, so every stage (and a restart) sees it. Boxed
    /// where awaited, like [`Self::dead_letter`]: a rare path whose state would otherwise size
    /// every delivery's task (boxing both took it from 3,184 to 2,728 bytes).
    async fn disable(&self, destination: &Destination, reason: &str, why: &str) {
        let mut disabled = destination.clone();
        disabled.enabled = false;
        disabled.disabled_reason = Some(format!(
            "disabled by the dispatcher at {}: {why}",
            hookline_runtime::time::now_rfc3339()
        ));
        let disabled = Resource::Destination(disabled);
        // Keeps the destination's creation time, which the record carries.
        let created_at = self
            .store
            .snapshot()
            .record(&disabled.key())
            .and_then(|record| record.created_at);
        match self.writer.put_created(&disabled, created_at).await {
            Ok(_) => {
                self.metrics.disabled.with_label_values(&[reason]).inc();
                warn!(destination = %destination.id, why, "Destination disabled.");
            }
            Err(error) => {
                warn!(destination = %destination.id, %error, why, "Could not disable a destination.");
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
            Outcome::Blocked => "blocked",
            Outcome::InvalidRequest => "invalid_request",
        };
        self.metrics.attempts.with_label_values(&[label]).inc();
        self.metrics
            .attempt_duration
            .observe(attempt.latency.as_secs_f64());
        if let Some(per_destination) = &self.metrics.per_destination {
            per_destination.observe(
                job.destination_id.as_str(),
                label,
                attempt.latency.as_secs_f64(),
            );
        }
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
            Outcome::Timeout | Outcome::Connect | Outcome::Blocked | Outcome::InvalidRequest => {
                None
            }
        };
        let record = AttemptRecord {
            schema_version: SCHEMA_VERSION,
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            source_id: Some(job.source_id.clone()),
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

    /// Writes `payload` to the dead-letter topic. Boxed where awaited: see [`Self::disable`].
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
        let record = FutureRecord::to(topic).key(key).payload(payload);
        // A refusal other than a full queue is final and stops the dispatcher with the job
        // unfinished.
        let ack = produce::enqueue(&self.producer, record).await;
        acks.push((topic.to_owned(), ack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn an_open_circuit_holds_jobs_for_a_whole_tier_when_it_overshoots_little() {
        // The probe in flight (1 s) or a circuit about to half-open: the shortest tier.
        assert_eq!(held_wait(Held::CircuitOpen, secs(1)), secs(5));
        assert_eq!(held_wait(Held::CircuitOpen, secs(5)), secs(5));
        // Most of a 30 s open period left: back once, from the 30 s tier.
        assert_eq!(held_wait(Held::CircuitOpen, secs(29)), secs(30));
        assert_eq!(held_wait(Held::CircuitOpen, secs(20)), secs(30));
        // A tier much longer than the wait would keep the job long after the circuit closed.
        assert_eq!(held_wait(Held::CircuitOpen, secs(19)), secs(19));
        assert_eq!(held_wait(Held::CircuitOpen, secs(60)), secs(60));
        assert_eq!(held_wait(Held::CircuitOpen, secs(250)), secs(300));
    }

    #[test]
    fn limits_hold_jobs_for_their_exact_wait() {
        assert_eq!(held_wait(Held::Busy, secs(1)), secs(1));
        assert_eq!(
            held_wait(Held::RateLimited, Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        assert_eq!(held_wait(Held::RateLimited, secs(29)), secs(29));
    }
}
