//! The load generator: N kept-alive connections posting events, either as fast as the answers
//! come back (closed loop: the maximum) or at a fixed rate whatever the answers (open loop: the
//! latency at a given load). In the open loop every event carries the time it was due as its
//! send time, so a stalled server shows up as latency instead of as fewer requests (no
//! coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use tokio::sync::watch;

use crate::http::Connection;
use crate::receiver::now_us;
use crate::stats::{self, Histogram};
use crate::workload::{Event, Generator, SOURCES, SourceSpec};

/// What the generator sends: the benchmark's workload ([`Generator`]) or the fault suite's.
pub trait Events: Send + Sync {
    /// The sources the events go to; [`Event::source`] indexes them.
    fn sources(&self) -> &[SourceSpec];
    /// The event with sequence number `seq`, stamped `sent_at_us` (microseconds since the Unix
    /// epoch).
    fn event(&self, seq: u64, sent_at_us: u64) -> Event;
}

impl Events for Generator {
    fn sources(&self) -> &[SourceSpec] {
        &SOURCES
    }

    fn event(&self, seq: u64, sent_at_us: u64) -> Event {
        Generator::event(self, seq, sent_at_us)
    }
}

/// How requests are paced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request when the answer to the last one arrived.
    Closed,
    /// Requests are due at a fixed rate, per second, over all connections.
    Open(f64),
}

/// Where requests go.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Hookline's ingest: the workload's events to their sources.
    Ingest(SocketAddr),
    /// The receiver's `/raw`: the same bodies, for the raw HTTP limit.
    Raw(SocketAddr),
}

/// Whether workers may send: the controller pauses a closed loop while the pipeline's backlog
/// is too long, and stops an open loop the pipeline cannot keep up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send.
    Open,
    /// Wait until opened again.
    Paused,
    /// Stop now.
    Stop,
}

/// Counters of the whole run, read live by the progress line.
#[derive(Debug, Default)]
pub struct Totals {
    /// The next event sequence number.
    pub seq: AtomicU64,
    /// Events ingest answered 2xx (the raw HTTP limit's requests are not counted).
    pub accepted: AtomicU64,
    /// Deliveries the accepted events cause.
    pub expected_deliveries: AtomicU64,
    /// Requests answered otherwise, or failed.
    pub failed: AtomicU64,
    /// When kept (the fault suite), every event ingest answered 2xx, what Hookline has promised
    /// to deliver: its sequence number and when the answer came (microseconds since the Unix
    /// epoch).
    pub ledger: Option<Mutex<Vec<(u64, u64)>>>,
}

/// One load phase.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// Where to.
    pub target: Target,
    /// Connections (and concurrent requests at most).
    pub connections: usize,
    /// How long.
    pub duration: Duration,
    /// How fast.
    pub pace: Pace,
    /// In the open loop, an event overdue by more than this when a connection is free for it is
    /// not sent (a sender that gave up): the fault suite keeps a steady load through outages
    /// instead of a burst of every event due while ingest was slow to answer. `None` sends every
    /// event, however late.
    pub skip_later_than: Option<Duration>,
}

/// What one load phase did.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered 2xx (202 from ingest).
    pub accepted: u64,
    /// Other answers, by status.
    pub refused: BTreeMap<u16, u64>,
    /// Requests that failed (connection errors).
    pub errors: u64,
    /// Events not sent because they were overdue by more than [`LoadSpec::skip_later_than`].
    pub skipped: u64,
    /// Deliveries the accepted events cause.
    pub expected_deliveries: u64,
    /// Time from each request's due time to its answer, in microseconds.
    pub response_latency: Histogram,
    /// How long it ran.
    pub elapsed: Duration,
    /// Whether the controller stopped it early.
    pub stopped: bool,
}

struct Prepared {
    path: String,
    authorization: HeaderValue,
    headers: Vec<(HeaderName, HeaderValue)>,
}

struct Context {
    spec: LoadSpec,
    generator: Arc<dyn Events>,
    totals: Arc<Totals>,
    sources: Vec<Prepared>,
    host: HeaderValue,
    start: Instant,
    start_unix_us: u64,
    end: Instant,
    tickets: AtomicU64,
    /// One histogram for all workers: a lock per answer costs less than a histogram per worker
    /// (hundreds of kilobytes each) with 512 connections.
    latency: Mutex<Histogram>,
}

#[derive(Default)]
struct WorkerResult {
    sent: u64,
    accepted: u64,
    refused: BTreeMap<u16, u64>,
    errors: u64,
    skipped: u64,
    expected_deliveries: u64,
    stopped: bool,
}

/// Runs one load phase to its end (or until the gate says stop).
pub async fn run(
    spec: LoadSpec,
    generator: Arc<dyn Events>,
    totals: Arc<Totals>,
    gate: watch::Receiver<Gate>,
) -> anyhow::Result<LoadResult> {
    let addr = match spec.target {
        Target::Ingest(addr) | Target::Raw(addr) => addr,
    };
    let sources = generator
        .sources()
        .iter()
        .map(|source| {
            Ok(Prepared {
                path: format!("/inbound-webhooks/{}", source.id),
                authorization: HeaderValue::from_str(&format!("Bearer {}", source.token))?,
                headers: source
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    let context = Arc::new(Context {
        spec,
        generator,
        totals,
        sources,
        host: HeaderValue::from_str(&addr.to_string())?,
        start,
        start_unix_us: now_us(),
        end: start + spec.duration,
        tickets: AtomicU64::new(0),
        latency: Mutex::new(stats::histogram()),
    });
    let workers: Vec<_> = (0..spec.connections.max(1))
        .map(|_| tokio::spawn(worker(context.clone(), addr, gate.clone())))
        .collect();
    let mut result = LoadResult {
        sent: 0,
        accepted: 0,
        refused: BTreeMap::new(),
        errors: 0,
        skipped: 0,
        expected_deliveries: 0,
        response_latency: stats::histogram(),
        elapsed: Duration::ZERO,
        stopped: false,
    };
    for worker in workers {
        let done = worker.await?;
        result.sent += done.sent;
        result.accepted += done.accepted;
        result.errors += done.errors;
        result.skipped += done.skipped;
        result.expected_deliveries += done.expected_deliveries;
        result.stopped |= done.stopped;
        for (status, count) in done.refused {
            *result.refused.entry(status).or_default() += count;
        }
    }
    result.response_latency = context
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    result.elapsed = start.elapsed().min(spec.duration);
    Ok(result)
}

async fn worker(
    context: Arc<Context>,
    addr: SocketAddr,
    mut gate: watch::Receiver<Gate>,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    let mut connection: Option<Connection> = None;
    let end = tokio::time::Instant::from_std(context.end);
    loop {
        let state = *gate.borrow_and_update();
        match state {
            Gate::Open => {}
            Gate::Stop => {
                result.stopped = true;
                break;
            }
            Gate::Paused => {
                tokio::select! {
                    _ = gate.changed() => continue,
                    () = tokio::time::sleep_until(end) => break,
                }
            }
        }
        let now = Instant::now();
        if now >= context.end {
            break;
        }
        let due = match context.spec.pace {
            Pace::Closed => now,
            Pace::Open(per_second) => {
                let ticket = context.tickets.fetch_add(1, Ordering::Relaxed);
                let due = context.start + Duration::from_secs_f64(ticket as f64 / per_second);
                if due >= context.end {
                    break;
                }
                if let Some(late) = context.spec.skip_later_than
                    && due + late < now
                {
                    result.skipped += 1;
                    continue;
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                due
            }
        };
        if connection.is_none() {
            match Connection::open(addr).await {
                Ok(opened) => connection = Some(opened),
                Err(_) => {
                    result.errors += 1;
                    context.totals.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let seq = context.totals.seq.fetch_add(1, Ordering::Relaxed);
        let since_start = u64::try_from(due.duration_since(context.start).as_micros()).unwrap_or(0);
        let event = context
            .generator
            .event(seq, context.start_unix_us + since_start);
        let Ok(request) = request(&context, event.source, event.body) else {
            result.errors += 1;
            continue;
        };
        let Some(open) = connection.as_mut() else {
            continue;
        };
        result.sent += 1;
        match open.send(request).await {
            Ok((status, _)) if status.is_success() => {
                result.accepted += 1;
                if matches!(context.spec.target, Target::Ingest(_)) {
                    context.totals.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(ledger) = &context.totals.ledger {
                        ledger
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((seq, now_us()));
                    }
                    let deliveries = u64::from(event.deliveries);
                    result.expected_deliveries += deliveries;
                    context
                        .totals
                        .expected_deliveries
                        .fetch_add(deliveries, Ordering::Relaxed);
                }
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                let mut latency = context
                    .latency
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                stats::record(&mut latency, micros);
            }
            Ok((status, _)) => {
                *result.refused.entry(status.as_u16()).or_default() += 1;
                context.totals.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                result.errors += 1;
                context.totals.failed.fetch_add(1, Ordering::Relaxed);
                connection = None;
            }
        }
    }
    result
}

fn request(context: &Context, source: usize, body: Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
    let builder = Request::post(match context.spec.target {
        Target::Ingest(_) => context.sources[source].path.as_str(),
        Target::Raw(_) => "/raw",
    })
    .header(HOST, context.host.clone())
    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let builder = match context.spec.target {
        Target::Ingest(_) => {
            let prepared = &context.sources[source];
            let mut builder = builder.header(AUTHORIZATION, prepared.authorization.clone());
            for (name, value) in &prepared.headers {
                builder = builder.header(name, value.clone());
            }
            builder
        }
        Target::Raw(_) => builder,
    };
    Ok(builder.body(Full::new(body))?)
}
