//! `hookline-bench store`: control's history store at production volume, without Kafka.
//!
//! Fills a store file (control's own code: [`Store::insert`] in batches, as its reader does) with
//! the records a day of traffic leaves (per event: the event with a realistic payload, its match
//! record, 0.58 deliveries on average with a few retries and dead letters, and 1 refused request
//! per 100), spread over `--hours` up to now. Then, while a writer keeps adding `--rate` events/s
//! as control's reader would, asks every query the API asks (the statistics routes' included),
//! `--samples` times each, and reports p50/p95/p99 per query, the store's bytes per event, the
//! fill rate and the writer's CPU per event.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use hdrhistogram::Histogram;
use hookline_control::store::page::{Cursor, Window};
use hookline_control::store::query::{self, Filter};
use hookline_control::store::rollup::{self, Grain};
use hookline_control::store::row::{self, RecordKind, Row};
use hookline_control::store::{Location, Store};
use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde_json::Value;
use serde_json::json;

/// Settings of `hookline-bench store`.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Events to fill the store with (each brings about 2.6 records).
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// The hours of traffic the events spread over, ending now.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Sources the events come from.
    #[arg(long, default_value_t = 20)]
    pub sources: usize,
    /// Destinations the deliveries go to.
    #[arg(long, default_value_t = 40)]
    pub destinations: usize,
    /// Events per second the writer adds while the queries run.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Times each query is asked.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// The store file (a temporary directory's when absent; an existing store is reused and
    /// not filled again when it holds at least `--events`).
    #[arg(long, conflicts_with = "postgres")]
    pub path: Option<PathBuf>,
    /// Measure control's PostgreSQL store in this database instead of a SQLite file (a libpq
    /// URL; `scripts/postgres-local start` prints one). Its tables go in `--postgres-schema`.
    #[arg(long)]
    pub postgres: Option<String>,
    /// The schema of `--postgres` (an existing store there is reused as a file is).
    #[arg(long, default_value = "hookline_bench")]
    pub postgres_schema: String,
}

/// The payloads events carry, as in the pipeline benchmark.
const PAYLOADS: [&str; 4] = [
    include_str!("../../tests/fixtures/payloads/github-push.json"),
    include_str!("../../tests/fixtures/payloads/stripe-invoice-payment-failed.json"),
    include_str!("../../tests/fixtures/payloads/monitoring-alert.json"),
    include_str!("../../tests/fixtures/payloads/app-user-signed-up.json"),
];

/// Opens the store `args` name and fills it when it holds fewer than `args.events` events, as
/// the store benchmark does; answers where it is (for `hookline control`) and what the fill
/// took. The console benchmark measures pages over it.
pub fn prepare(args: &StoreArgs, file: &std::path::Path) -> anyhow::Result<Location> {
    let location = match &args.postgres {
        Some(url) => Location::Postgres {
            url: url.clone(),
            schema: args.postgres_schema.clone(),
        },
        None => Location::File(file.to_owned()),
    };
    let store = Store::open(&location, 64 * 1024).context("open the store")?;
    let stored_events = store
        .counts()?
        .into_iter()
        .find(|(kind, _)| *kind == RecordKind::Event)
        .map_or(0, |(_, count)| count);
    if u64::try_from(stored_events).unwrap_or_default() >= args.events {
        println!("reusing a store with {stored_events} events");
    } else {
        let mut traffic = Traffic::new(args);
        let effort = fill(&store, &mut traffic, args)?;
        println!(
            "filled {} events in {:.0} s",
            effort.events,
            effort.elapsed.as_secs_f64()
        );
    }
    store.prune_rollups(now_ms())?;
    Ok(location)
}

/// The id of the `n`th source of the traffic.
pub fn source_id(n: usize) -> String {
    format!("source-{n:02}")
}

/// The id of the `n`th destination of the traffic.
pub fn destination_id(n: usize) -> String {
    format!("destination-{n:02}")
}

/// Runs the store benchmark and prints its table.
pub fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| temporary.path().join("history.sqlite3"));
    let (location, place) = match &args.postgres {
        Some(url) => (
            Location::Postgres {
                url: url.clone(),
                schema: args.postgres_schema.clone(),
            },
            format!("PostgreSQL schema {}", args.postgres_schema),
        ),
        None => (Location::File(path.clone()), path.display().to_string()),
    };
    let store =
        Store::open(&location, 64 * 1024).with_context(|| format!("open the store at {place}"))?;
    let mut traffic = Traffic::new(args);
    let stored_events = store
        .counts()?
        .into_iter()
        .find(|(kind, _)| *kind == RecordKind::Event)
        .map_or(0, |(_, count)| count);
    let fill = if u64::try_from(stored_events).unwrap_or_default() >= args.events {
        println!("reusing {place} with {stored_events} events");
        None
    } else {
        Some(fill(&store, &mut traffic, args)?)
    };
    // As the reader would have before the queries (also of a reused store).
    store.prune_rollups(now_ms())?;
    let size = store.size()?;
    let counts = store.counts()?;
    let events = counts
        .iter()
        .find(|(kind, _)| *kind == RecordKind::Event)
        .map_or(0, |(_, count)| *count)
        .max(1);
    let records: i64 = counts.iter().map(|(_, count)| count).sum();

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let store = store.clone();
        let writing = writing.clone();
        let mut live = traffic.clone();
        let rate = args.rate;
        std::thread::spawn(move || write_live(&store, &mut live, rate, &writing))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let results = runtime.block_on(ask(&store, &traffic, args))?;
    writing.store(false, Ordering::Relaxed);
    let live = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;

    println!();
    println!(
        "store: {} records ({events} events), {:.2} GiB used, {:.2} GiB file, {:.0} bytes per event",
        records,
        size.used_bytes as f64 / f64::from(1 << 30),
        size.file_bytes as f64 / f64::from(1 << 30),
        size.used_bytes as f64 / events as f64
    );
    if let Some(fill) = fill {
        println!(
            "fill: {:.0} events/s ({:.0} records/s) in one thread, {:.3} CPU-ms per event",
            fill.events as f64 / fill.elapsed.as_secs_f64(),
            fill.records as f64 / fill.elapsed.as_secs_f64(),
            fill.cpu.as_secs_f64() * 1000.0 / fill.events as f64
        );
        if let Some(server) = fill.server_cpu {
            println!(
                "fill: the PostgreSQL server took {:.3} CPU-ms per event besides",
                server.as_secs_f64() * 1000.0 / fill.events as f64
            );
        }
    }
    println!(
        "while querying: {} events written at {:.0}/s (asked {}/s), {:.3} CPU-ms per event",
        live.events,
        live.events as f64 / live.elapsed.as_secs_f64(),
        args.rate,
        live.cpu.as_secs_f64() * 1000.0 / live.events.max(1) as f64
    );
    println!();
    println!("| query | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, histogram) in &results {
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
            ms(0.5),
            ms(0.95),
            ms(0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    Ok(())
}

/// What a fill took.
struct Effort {
    events: u64,
    records: u64,
    elapsed: Duration,
    cpu: Duration,
    /// CPU of the PostgreSQL server's processes on this machine meanwhile (a PostgreSQL store).
    server_cpu: Option<Duration>,
}

/// CPU time the PostgreSQL server's processes on this machine (named `postgres`) have used,
/// or `None` when there are none.
fn postgres_server_cpu() -> Option<Duration> {
    let ticks = procfs::ticks_per_second() as f64;
    let mut total = 0_u64;
    let mut found = false;
    for process in procfs::process::all_processes().ok()?.flatten() {
        if let Ok(stat) = process.stat()
            && stat.comm == "postgres"
        {
            found = true;
            total += stat.utime + stat.stime;
        }
    }
    found.then(|| Duration::from_secs_f64(total as f64 / ticks))
}

/// Fills `store` with `args.events` events spread over the hours up to now. Only what control's
/// reader does (parsing records into rows, storing them) counts as its CPU.
fn fill(store: &Store, traffic: &mut Traffic, args: &StoreArgs) -> anyhow::Result<Effort> {
    let now = now_ms();
    let span_ms = (args.hours * 3_600_000.0) as i64;
    let started = Instant::now();
    let server_started = args.postgres.as_ref().and_then(|_| postgres_server_cpu());
    let mut cpu = Duration::ZERO;
    let mut messages = Vec::with_capacity(1_100);
    let mut records = 0;
    let mut reported = Instant::now();
    let mut tidied = Instant::now();
    let mut n = 0;
    while n < args.events {
        while messages.len() < 1_000 && n < args.events {
            let at_ms = now - span_ms + (n as i128 * span_ms as i128 / args.events as i128) as i64;
            traffic.event(at_ms, &mut messages);
            n += 1;
        }
        records += messages.len() as u64;
        cpu += store_as_control_does(store, &mut messages, ("bench", n))?;
        // Control's reader deletes the rollups past their keep every few seconds: so does the
        // fill, so the minutes of hours filled before the last two go as the day passes.
        if tidied.elapsed() >= Duration::from_secs(5) {
            tidied = Instant::now();
            store.prune_rollups(now_ms())?;
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            eprintln!(
                "filled {n} of {} events ({:.0}/s)",
                args.events,
                n as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Effort {
        events: args.events,
        records,
        elapsed: started.elapsed(),
        cpu,
        server_cpu: server_started
            .and_then(|start| Some(postgres_server_cpu()?.saturating_sub(start))),
    })
}

/// Parses `messages` into rows and stores them in one transaction with a position, as control's
/// reader does; returns the CPU time it took.
fn store_as_control_does(
    store: &Store,
    messages: &mut Vec<(RecordKind, OwnedMessage)>,
    (topic, next): (&str, u64),
) -> anyhow::Result<Duration> {
    let cpu = thread_cpu();
    let rows: Vec<Row> = messages
        .drain(..)
        .map(|(kind, message)| row::parse(kind, &message))
        .collect::<Result<_, _>>()?;
    store.insert(&rows, &[(topic, 0, next as i64)])?;
    Ok(thread_cpu().saturating_sub(cpu))
}

/// Adds `rate` events/s at the current time, a batch every 100 ms, until `writing` is false.
fn write_live(
    store: &Store,
    traffic: &mut Traffic,
    rate: u64,
    writing: &AtomicBool,
) -> anyhow::Result<Effort> {
    let started = Instant::now();
    let mut cpu = Duration::ZERO;
    let mut events = 0;
    let mut records = 0;
    let mut messages = Vec::new();
    while writing.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while events < due {
            traffic.event(now_ms(), &mut messages);
            events += 1;
        }
        records += messages.len() as u64;
        cpu += store_as_control_does(store, &mut messages, ("bench-live", events))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Effort {
        events,
        records,
        elapsed: started.elapsed(),
        cpu,
        server_cpu: None,
    })
}

/// Asks each query `args.samples` times through the store's reader connections.
async fn ask(
    store: &Store,
    traffic: &Traffic,
    args: &StoreArgs,
) -> anyhow::Result<Vec<(&'static str, Histogram<u64>)>> {
    let now = now_ms();
    let span_ms = (args.hours * 3_600_000.0) as i64;
    let mut results = Vec::new();
    let shapes: [&'static str; 15] = [
        "source events, newest 50, with match outcomes",
        "source events, 50 from a cursor in the middle",
        "source events in a 1-hour window, 500",
        "destination attempts, newest 50",
        "destination attempts retrying, newest 50",
        "dead letters, newest 50",
        "dead letters of a destination, newest 50",
        "event journey",
        "latest attempt of a delivery",
        "events of every source in a 1-hour window, 500",
        "stats of every destination, 5m",
        "stats of every destination, 1h",
        "stats of every destination, 24h",
        "stats of every source, 1h",
        "stats of every source, 24h",
    ];
    let destinations: Vec<String> = (0..args.destinations).map(destination_id).collect();
    let mut pick = fastrand::Rng::with_seed(7);
    for (shape, name) in shapes.into_iter().enumerate() {
        let mut histogram = Histogram::<u64>::new(3)?;
        for _ in 0..args.samples {
            let source = source_id(pick.usize(..args.sources));
            let destination = destination_id(pick.usize(..args.destinations));
            let event_id = traffic.known_event(&mut pick);
            let delivery_id = traffic.known_delivery(&mut pick);
            let hour_ago = now - pick.i64(0..span_ms.max(3_600_001) - 3_600_000);
            let destinations = destinations.clone();
            let started = Instant::now();
            store
                .run(move |connection| {
                    let newest = |limit| Window::latest(limit);
                    let hour = |limit| Window {
                        since_ms: Some(hour_ago - 3_600_000),
                        until_ms: Some(hour_ago),
                        ..Window::latest(limit)
                    };
                    let of_source = Filter {
                        kinds: vec![RecordKind::Event, RecordKind::Rejected],
                        source_id: Some(source.clone()),
                        ..Filter::default()
                    };
                    let attempts = Filter {
                        kinds: vec![RecordKind::Attempt],
                        destination_id: Some(destination.clone()),
                        ..Filter::default()
                    };
                    let dead = Filter {
                        kinds: vec![RecordKind::Dead],
                        ..Filter::default()
                    };
                    match shape {
                        0 => {
                            let page = query::page(connection, &of_source, &newest(50))?;
                            let ids: Vec<String> = page
                                .items
                                .iter()
                                .filter_map(|record| {
                                    record.json()["event_id"].as_str().map(str::to_owned)
                                })
                                .collect();
                            query::match_outcomes(connection, &ids)?;
                        }
                        1 => {
                            let mut window = newest(50);
                            window.after = Some(Cursor {
                                at_ms: hour_ago,
                                kind: "event".into(),
                                partition: 0,
                                position: i64::MAX,
                            });
                            query::page(connection, &of_source, &window)?;
                        }
                        2 => {
                            query::page(connection, &of_source, &hour(500))?;
                        }
                        3 => {
                            query::page(connection, &attempts, &newest(50))?;
                        }
                        4 => {
                            let retrying = Filter {
                                outcome: Some("retrying".into()),
                                ..attempts
                            };
                            query::page(connection, &retrying, &newest(50))?;
                        }
                        5 => {
                            query::page(connection, &dead, &newest(50))?;
                        }
                        6 => {
                            let of_destination = Filter {
                                destination_id: Some(destination.clone()),
                                ..dead.clone()
                            };
                            query::page(connection, &of_destination, &newest(50))?;
                        }
                        7 => {
                            query::journey(connection, &event_id)?;
                        }
                        8 => {
                            let (event_id, delivery_id) = &delivery_id;
                            query::latest_attempt(connection, event_id, delivery_id)?;
                        }
                        9 => {
                            let all = Filter {
                                kinds: vec![RecordKind::Event],
                                ..Filter::default()
                            };
                            query::page(connection, &all, &hour(500))?;
                        }
                        // What the stats routes ask of the store (the rest of their work is
                        // a sort of a few hundred items in memory).
                        10..=12 => {
                            let (grain, window_ms) = match shape {
                                10 => (Grain::Minute, 5 * 60_000),
                                11 => (Grain::Minute, 3_600_000),
                                _ => (Grain::Hour, 24 * 3_600_000),
                            };
                            let since = now_ms() - window_ms;
                            rollup::destination_figures(connection, grain, since, &destinations)?;
                        }
                        13 => {
                            rollup::totals(
                                connection,
                                Grain::Minute,
                                rollup::SOURCE,
                                now_ms() - 3_600_000,
                            )?;
                        }
                        _ => {
                            rollup::totals(
                                connection,
                                Grain::Hour,
                                rollup::SOURCE,
                                now_ms() - 24 * 3_600_000,
                            )?;
                        }
                    }
                    Ok(())
                })
                .await?;
            histogram.record(started.elapsed().as_micros().max(1) as u64)?;
        }
        results.push((name, histogram));
    }
    Ok(results)
}

/// Makes the records of events as the roles would write them, and remembers some ids to ask
/// for.
#[derive(Clone)]
struct Traffic {
    random: fastrand::Rng,
    sources: usize,
    destinations: usize,
    offset: i64,
    events: Vec<String>,
    deliveries: Vec<(String, String)>,
    seen: u64,
}

impl Traffic {
    fn new(args: &StoreArgs) -> Self {
        Self {
            random: fastrand::Rng::with_seed(42),
            sources: args.sources.max(1),
            destinations: args.destinations.max(1),
            offset: 0,
            events: Vec::new(),
            deliveries: Vec::new(),
            seen: 0,
        }
    }

    fn known_event(&self, pick: &mut fastrand::Rng) -> String {
        self.events
            .get(pick.usize(..self.events.len().max(1)))
            .cloned()
            .unwrap_or_default()
    }

    fn known_delivery(&self, pick: &mut fastrand::Rng) -> (String, String) {
        self.deliveries
            .get(pick.usize(..self.deliveries.len().max(1)))
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps `item` in a uniform sample of at most 10,000 (reservoir sampling).
    fn remember<T>(sample: &mut Vec<T>, random: &mut fastrand::Rng, seen: u64, item: T) {
        if sample.len() < 10_000 {
            sample.push(item);
        } else if let Some(slot) = sample.get_mut(random.usize(..=seen as usize)) {
            *slot = item;
        }
    }

    /// The records of one event received at `at_ms`, appended to `rows`.
    fn event(&mut self, at_ms: i64, rows: &mut Vec<(RecordKind, OwnedMessage)>) {
        self.offset += 1;
        self.seen += 1;
        let offset = self.offset;
        let source = source_id(self.random.usize(..self.sources));
        if self.random.u32(..100) == 0 {
            rows.push(record(
                RecordKind::Rejected,
                offset,
                at_ms,
                json!({"schema_version": 1, "at": rfc3339(at_ms), "source": source,
                       "status": 401, "code": "unauthorized",
                       "message": "missing or invalid token"}),
            ));
            return;
        }
        // Ingest's ids are UUIDv7: their time comes first.
        let event_id = uuid::Builder::from_unix_timestamp_millis(
            u64::try_from(at_ms).unwrap_or_default(),
            &self.random.u128(..).to_le_bytes()[..10]
                .try_into()
                .unwrap_or_default(),
        )
        .into_uuid()
        .to_string();
        Self::remember(
            &mut self.events,
            &mut self.random,
            self.seen,
            event_id.clone(),
        );
        let mut payload: Value =
            serde_json::from_str(PAYLOADS[self.random.usize(..PAYLOADS.len())])
                .expect("the fixtures are JSON");
        vary(&mut payload, &mut self.random);
        payload["id"] = event_id.clone().into();
        let payload = payload.to_string();
        rows.push(event_message(
            offset,
            &event_id,
            &source,
            at_ms,
            payload.as_bytes(),
        ));
        // 0.58 deliveries per event on average.
        let delivery = (self.random.u32(..100) < 58).then(|| {
            (
                format!(
                    "msg_{}",
                    uuid::Uuid::from_u128(self.random.u128(..)).simple()
                ),
                destination_id(self.random.usize(..self.destinations)),
            )
        });
        let deliveries = delivery
            .iter()
            .map(|(id, destination)| {
                json!({"delivery_id": id, "action": 0, "destination_id": destination})
            })
            .collect::<Vec<_>>();
        rows.push(record(
            RecordKind::Match,
            offset,
            at_ms + 2,
            json!({"schema_version": 1, "event_id": event_id, "source": source,
                   "matched_at": rfc3339(at_ms + 2),
                   "outcome": if deliveries.is_empty() { "no_match" } else { "delivered" },
                   "triggers": [{"trigger_id": "orders", "result": if deliveries.is_empty() { "condition_false" } else { "fired" },
                                 "deliveries": deliveries}]}),
        ));
        let Some((delivery_id, destination)) = delivery else {
            return;
        };
        Self::remember(
            &mut self.deliveries,
            &mut self.random,
            self.seen,
            (event_id.clone(), delivery_id.clone()),
        );
        // 3% fail once first; 1 in 300 is dead after its attempts.
        let failures = match self.random.u32(..300) {
            0 => 3,
            1..=9 => 1,
            _ => 0,
        };
        for attempt in 0..=failures {
            let dead = failures == 3 && attempt == 3;
            let outcome = if dead {
                "dead"
            } else if attempt < failures {
                "retrying"
            } else {
                "delivered"
            };
            let finished = at_ms + 20 + i64::from(attempt) * 5_000;
            rows.push(record(
                RecordKind::Attempt,
                offset + i64::from(attempt),
                finished,
                json!({"schema_version": 1, "delivery_id": delivery_id, "event_id": event_id,
                       "source_id": source, "trigger_id": "orders",
                       "destination_id": destination, "attempt": attempt + 1,
                       "started_at": rfc3339(finished - 15), "finished_at": rfc3339(finished),
                       "outcome": outcome,
                       "status": if outcome == "delivered" { 200 } else { 503 },
                       "latency_seconds": 0.015,
                       "response_body": if outcome == "delivered" { "{\"ok\":true}" } else { "upstream unavailable" }}),
            ));
            if dead {
                rows.push(record(
                    RecordKind::Dead,
                    offset,
                    finished + 1,
                    json!({"schema_version": 1, "reason": "exhausted", "error": "503 four times",
                           "position": {"topic": "hookline.deliveries", "partition": 0, "offset": offset},
                           "attempts": 4, "dead_at": rfc3339(finished + 1),
                           "payload": {"kind": "job", "job": {
                               "schema_version": 1, "delivery_id": delivery_id, "event_id": event_id,
                               "source_id": source, "trigger_id": "orders", "action": 0,
                               "destination_id": destination, "attempt": 4, "method": "POST",
                               "url": "https://receiver.example.com/hooks", "body": payload,
                               "received_at": rfc3339(at_ms)}}}),
                ));
            }
        }
    }
}

/// Gives `value` the variety of real events: every number, and every string longer than 8
/// characters (ids, names, URLs, messages), becomes a random one of the same size; short strings
/// (`usd`, `open`, `critical`) stay, as enumerations do. Random text compresses worse than real
/// text, so the bytes per event measured are an upper bound.
fn vary(value: &mut Value, random: &mut fastrand::Rng) {
    match value {
        Value::String(text) if text.len() > 8 => {
            *text = std::iter::repeat_with(|| random.alphanumeric())
                .take(text.len())
                .collect();
        }
        Value::Number(number) => {
            *number = if number.is_f64() {
                serde_json::Number::from_f64(random.f64() * 1_000.0).unwrap_or(0.into())
            } else {
                random.u32(..1_000_000).into()
            };
        }
        Value::Array(items) => items.iter_mut().for_each(|item| vary(item, random)),
        Value::Object(fields) => fields.values_mut().for_each(|field| vary(field, random)),
        Value::String(_) | Value::Null | Value::Bool(_) => {}
    }
}

/// An event record as ingest writes it.
fn event_message(
    offset: i64,
    id: &str,
    source: &str,
    at_ms: i64,
    payload: &[u8],
) -> (RecordKind, OwnedMessage) {
    let received = rfc3339(at_ms);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "hookline-event-id",
            value: Some(id),
        })
        .insert(Header {
            key: "hookline-source",
            value: Some(source),
        })
        .insert(Header {
            key: "hookline-received-at",
            value: Some(received.as_str()),
        })
        .insert(Header {
            key: "hookline-client",
            value: Some("203.0.113.7"),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
    let message = OwnedMessage::new(
        Some(payload.to_vec()),
        Some(source.as_bytes().to_vec()),
        "hookline.events".into(),
        Timestamp::CreateTime(at_ms),
        0,
        offset,
        Some(headers),
    );
    (RecordKind::Event, message)
}

/// A JSON record of `kind` as the roles write it.
fn record(kind: RecordKind, offset: i64, at_ms: i64, value: Value) -> (RecordKind, OwnedMessage) {
    let message = OwnedMessage::new(
        Some(value.to_string().into_bytes()),
        None,
        kind.as_str().into(),
        Timestamp::CreateTime(at_ms),
        0,
        offset,
        None,
    );
    (kind, message)
}

fn rfc3339(ms: i64) -> String {
    hookline_runtime::time::rfc3339(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(spent.tv_sec).unwrap_or_default(),
        u32::try_from(spent.tv_nsec).unwrap_or_default(),
    )
}
