//! `hookline-bench stage processor|dispatcher`: one stage alone, fed straight through Kafka (an
//! embedded broker the bench hosts, or the cluster given with `--brokers`), with the raw Kafka
//! limit of the same machine measured in the same run.
//!
//! - **processor**: 1 KiB JSON events written to the events topic, one trigger of their source
//!   with a condition and a 300-byte body template, and 10 or 1,000 triggers of other sources.
//!   Measured: delivery jobs out per second and the processor's CPU time per event, for each
//!   trigger count, so a cost that grows with other sources' triggers shows.
//! - **dispatcher**: delivery jobs written to the deliveries topic for a signing destination at
//!   the bench's receiver (another process, which verifies every signature). Measured: signed
//!   deliveries per second (closed loop), the latency from the job's write to its arrival at half
//!   that rate (open loop) beside the latency of the Kafka hop alone at that rate (so what the
//!   dispatcher adds shows), and the dispatcher's memory with 10,000 deliveries waiting on a
//!   receiver that answers after a minute.
//!
//! The bench process hosts the broker, writes the records and counts them, so on a small machine
//! it competes with the stage for CPU; the raw limit is measured under the same handicap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hookline_runtime::KafkaSettings;
use hookline_runtime::embedded::EmbeddedKafka;
use hookline_runtime::kafka::{consumer_config, create_consumer, create_producer, producer_config};
use hookline_schemas::{DeliveryJob, ResourceId, SCHEMA_VERSION};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use serde_json::json;

use crate::cli::{StageArgs, StageRole};
use crate::http;
use crate::pipeline::{self, Broker, PipelineSpec};
use crate::procs::{Child, Usage};
use crate::raw::{self, RawBroker};
use crate::receiver::now_us;
use crate::stats::{self, Counts, Percentiles, Series};
use crate::workload::{Generator, SIGNING_SECRET};

/// Records written but not yet counted out, at most: keeps the embedded broker under the ~5 MB
/// per partition beyond which it drops records, and makes the figure a sustained rate.
const WINDOW: u64 = 5_000;

/// Deliveries held by the slow receiver in the memory phase.
const SLOW_IN_FLIGHT: u64 = 10_000;

/// How long the slow receiver holds each delivery, in milliseconds.
const SLOW_HOLD_MS: u64 = 60_000;

/// The stalled destination's timeout: every delivery to it times out after this long.
const STALLED_TIMEOUT_MS: u64 = 1_000;

/// In the isolation phase, one job for the stalled destination per this many healthy ones.
const STALLED_EVERY: u64 = 10;

/// The isolation phase's warm-up: longer than the dispatcher's default open circuit (30 s).
const ISOLATION_WARMUP: Duration = Duration::from_secs(40);

/// The isolation phase's measured window: two open periods of the circuit.
const ISOLATION_WINDOW: Duration = Duration::from_secs(60);

/// The stage benchmark's report.
#[derive(Debug, Serialize)]
pub struct StageReport {
    /// The stage measured.
    pub stage: String,
    /// The raw Kafka limit (produce → consume, one hop) in the same run, records per second.
    pub raw_kafka_per_second: f64,
    /// The measured phases.
    pub phases: Vec<StagePhase>,
    /// The dispatcher's memory with [`SLOW_IN_FLIGHT`] deliveries waiting on a slow receiver.
    pub slow_receiver: Option<SlowReceiver>,
    /// The healthy destination's closed-loop throughput with a stalled destination's jobs in
    /// its partition, over its throughput alone (the dispatcher's isolation; 0.8 or more is the
    /// target).
    pub beside_stalled_share: Option<f64>,
}

/// One measured window.
#[derive(Debug, Serialize)]
pub struct StagePhase {
    /// What was measured.
    pub name: String,
    /// Records out of the stage (jobs, or deliveries) per second.
    pub per_second: f64,
    /// `per_second` over the raw Kafka limit.
    pub share_of_raw_kafka: f64,
    /// The stage's CPU time per record, in milliseconds.
    pub cpu_ms_per_record: f64,
    /// The stage's resident memory at the end, in MB.
    pub rss_mb: f64,
    /// Latency percentiles in milliseconds, when measured.
    pub latency_ms: Option<Percentiles>,
    /// For an open loop: the latency of the Kafka hop alone (produce, fetch), measured right
    /// after at the same rate with the stage's producer and consumer settings, in milliseconds;
    /// what the stage adds is the difference.
    pub kafka_hop_ms: Option<Percentiles>,
}

/// The dispatcher with many deliveries in flight.
#[derive(Debug, Serialize)]
pub struct SlowReceiver {
    /// Deliveries the receiver was holding.
    pub in_flight: u64,
    /// The dispatcher's resident memory then, in MB.
    pub rss_mb: f64,
}

/// Runs the stage benchmark and prints its report.
pub async fn run(args: StageArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let bin_dir = exe.parent().context("no directory")?.to_owned();
    let hookline = args
        .hookline
        .clone()
        .unwrap_or_else(|| bin_dir.join("hookline"));
    if !hookline.exists() {
        bail!(
            "{} does not exist: run `cargo build --release -p hookline` first, or pass --hookline",
            hookline.display()
        );
    }
    let stamp = now_us();
    let run_dir = bin_dir
        .parent()
        .unwrap_or(&bin_dir)
        .join("bench")
        .join(format!("stage-{stamp}"));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("hookline-bench stage: logs in {}", run_dir.display());

    let raw_broker = match &args.brokers {
        Some(brokers) => RawBroker::Kafka {
            brokers: brokers.clone(),
            group_protocol: hookline_runtime::settings::GroupProtocol::Classic,
        },
        None => RawBroker::Embedded,
    };
    let raw = raw::kafka(
        &raw_broker,
        Duration::from_secs(args.windows.raw_duration),
        args.partitions,
        &format!("stage-{stamp}-raw."),
        &Generator::new(),
    )
    .await?;
    eprintln!("raw Kafka: {:.0} records/s", raw.per_second);
    let broker = match &args.brokers {
        Some(brokers) => StageBroker::Kafka(brokers.clone()),
        None => StageBroker::Hosted(EmbeddedKafka::start(1)?),
    };
    let stage = Stage {
        args: &args,
        hookline,
        run_dir,
        broker,
        raw_per_second: raw.per_second,
        stamp,
    };
    let report = match args.role {
        StageRole::Processor => stage.processor().await?,
        StageRole::Dispatcher => stage.dispatcher(&exe).await?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Where the stage runs.
enum StageBroker {
    /// An embedded broker hosted by the bench.
    Hosted(EmbeddedKafka),
    /// A Kafka cluster at these bootstrap servers.
    Kafka(String),
}

struct Stage<'a> {
    args: &'a StageArgs,
    hookline: PathBuf,
    run_dir: PathBuf,
    broker: StageBroker,
    raw_per_second: f64,
    stamp: u64,
}

impl Stage<'_> {
    /// Topics of their own for one phase, and the `hookline` flags that reach them.
    async fn phase_kafka(
        &self,
        name: &str,
        resources: &str,
    ) -> anyhow::Result<(PipelineSpec, Vec<String>, KafkaSettings)> {
        let prefix = format!("stage-{}-{name}.", self.stamp);
        let (mut settings, servers, hosted) = match &self.broker {
            StageBroker::Hosted(broker) => {
                (broker.settings(&prefix), broker.bootstrap_servers(), true)
            }
            StageBroker::Kafka(brokers) => {
                let mut settings = KafkaSettings::new(brokers.clone());
                settings.topic_prefix = prefix.clone();
                (settings, brokers.clone(), false)
            }
        };
        settings.topics.partitions = self.args.partitions;
        match &self.broker {
            StageBroker::Hosted(broker) => broker.create_topics(&settings)?,
            StageBroker::Kafka(_) => {
                hookline_runtime::topics::ensure(&settings, &hookline_schemas::TopicKind::ALL)
                    .await?;
            }
        }
        let resources_path = self.run_dir.join(format!("{name}.toml"));
        std::fs::write(&resources_path, resources)?;
        let spec = PipelineSpec {
            hookline: self.hookline.clone(),
            resources: resources_path,
            log_dir: self.run_dir.clone(),
            broker: if hosted {
                Broker::Hosted
            } else {
                Broker::Kafka(servers.clone())
            },
            processors: 1,
            dispatchers: 1,
            control: false,
            partitions: self.args.partitions,
            group_protocol: if hosted { "consumer" } else { "classic" }.to_owned(),
            topic_prefix: prefix,
            one_process: false,
        };
        let flags = pipeline::kafka_flags(&spec, &servers, hosted);
        Ok((spec, flags, settings))
    }

    /// With `--tls`, where the receiver writes its CA's certificate.
    fn receiver_ca(&self) -> Option<PathBuf> {
        self.args.tls.then(|| self.run_dir.join("receiver-ca.pem"))
    }

    /// With `--tls`, has the dispatcher trust the receiver's CA.
    fn trust_receiver(&self, flags: &mut Vec<String>) {
        if let Some(ca) = self.receiver_ca() {
            flags.extend(["--destination-ca-file".to_owned(), ca.display().to_string()]);
        }
    }

    async fn processor(&self) -> anyhow::Result<StageReport> {
        let mut phases = Vec::new();
        for others in &self.args.other_triggers {
            let name = format!("processor-{others}-other-triggers");
            let (spec, flags, settings) = self
                .phase_kafka(&name, &processor_resources(*others))
                .await?;
            pipeline::apply(&spec, &flags).await?;
            let mut process = pipeline::start_role(&spec, "processor", &name, &flags)
                .await?
                .child;
            let events = settings.topics().events();
            let jobs = settings.topics().deliveries();
            let body = Bytes::from(event_body().to_string());
            let feed = |producer: &FutureProducer, seq: u64| {
                let headers = OwnedHeaders::new().insert(Header {
                    key: "hookline-source",
                    value: Some("alerts"),
                });
                let key = seq.to_string();
                let record = FutureRecord::to(&events)
                    .key(&key)
                    .payload(body.as_ref())
                    .headers(headers);
                producer.send_result(record).map(drop).map_err(drop)
            };
            let counter = Out::topic(&settings, &jobs, &name)?;
            let phase = self
                .measure(
                    &name,
                    &settings,
                    &mut process,
                    &counter,
                    feed,
                    None,
                    self.windows(),
                )
                .await;
            process.stop().await;
            phases.push(phase?);
        }
        Ok(StageReport {
            stage: "processor".to_owned(),
            raw_kafka_per_second: self.raw_per_second,
            phases,
            slow_receiver: None,
            beside_stalled_share: None,
        })
    }

    async fn dispatcher(&self, exe: &Path) -> anyhow::Result<StageReport> {
        let (mut receiver, receiver_addr) =
            crate::run::start_receiver(exe, &self.run_dir, self.receiver_ca().as_deref(), false)
                .await?;
        let result = self.dispatcher_phases(receiver_addr).await;
        receiver.detach_output();
        receiver.stop().await;
        result
    }

    async fn dispatcher_phases(&self, receiver: SocketAddr) -> anyhow::Result<StageReport> {
        let scheme = if self.args.tls { "https" } else { "http" };
        let base = format!("{scheme}://{receiver}");
        let resources = dispatcher_resources(&base);
        let (phases, beside_stalled_share) = if self.args.memory_only {
            (Vec::new(), None)
        } else {
            let (phases, share) = self
                .dispatcher_throughput(receiver, &base, &resources)
                .await?;
            (phases, Some(share))
        };

        // A fresh dispatcher, so its memory is that of the slow phase alone.
        let (spec, mut flags, settings) = self.phase_kafka("dispatcher-slow", &resources).await?;
        pipeline::apply(&spec, &flags).await?;
        let limit = (SLOW_IN_FLIGHT + 1_000).to_string();
        self.trust_receiver(&mut flags);
        flags.extend([
            "--dispatcher-max-in-flight".to_owned(),
            limit.clone(),
            "--destination-max-in-flight".to_owned(),
            limit,
        ]);
        let mut process = pipeline::start_role(&spec, "dispatcher", "dispatcher-slow", &flags)
            .await?
            .child;
        let slow = self
            .slow_receiver(&settings, &mut process, &base, receiver)
            .await;
        process.stop().await;
        Ok(StageReport {
            stage: "dispatcher".to_owned(),
            raw_kafka_per_second: self.raw_per_second,
            phases,
            slow_receiver: Some(slow?),
            beside_stalled_share,
        })
    }

    /// The dispatcher's closed loop, open loop at half its maximum and closed loop beside a
    /// stalled destination, with the share of its throughput the healthy destination keeps.
    async fn dispatcher_throughput(
        &self,
        receiver: SocketAddr,
        base: &str,
        resources: &str,
    ) -> anyhow::Result<(Vec<StagePhase>, f64)> {
        let (spec, mut flags, settings) = self.phase_kafka("dispatcher", resources).await?;
        pipeline::apply(&spec, &flags).await?;
        self.trust_receiver(&mut flags);
        let mut process = pipeline::start_role(&spec, "dispatcher", "dispatcher", &flags)
            .await?
            .child;
        let deliveries = settings.topics().deliveries();
        let url = format!("{base}/hooks/sink");
        let job = |seq: u64, sent_at_us: u64| delivery_job(seq, sent_at_us, "sink", &url);
        let feed = |producer: &FutureProducer, seq: u64| {
            send_job(producer, &deliveries, &job(seq, now_us()))
        };
        let delivered = Out::Receiver(receiver);
        let result = async {
            let closed = self
                .measure(
                    "dispatcher closed loop",
                    &settings,
                    &mut process,
                    &delivered,
                    feed,
                    None,
                    self.windows(),
                )
                .await?;
            let rate = closed.per_second / 2.0;
            let open = self
                .measure(
                    "dispatcher open loop at half the maximum",
                    &settings,
                    &mut process,
                    &delivered,
                    feed,
                    Some((rate, receiver)),
                    self.windows(),
                )
                .await?;
            // The same closed loop with a destination that times out on every request sharing
            // the healthy one's partition: one of its jobs before every tenth healthy one.
            let stalled_url = format!("{base}/slow/{SLOW_HOLD_MS}");
            let beside = |producer: &FutureProducer, seq: u64| {
                // The stalled job first: when the healthy one cannot be written, the loop calls
                // again with the same number and only the stalled destination gets a repeat.
                if seq.is_multiple_of(STALLED_EVERY) {
                    let stalled = delivery_job(seq, now_us(), "stalled", &stalled_url);
                    send_job_to(producer, &deliveries, Some(0), &stalled)?;
                }
                send_job_to(producer, &deliveries, Some(0), &job(seq, now_us()))
            };
            // Held jobs come back when the circuit may have closed (30 s by default): warm up
            // past the first open period and measure over two, so their returns are inside.
            let (warmup, window) = self.windows();
            let span = (ISOLATION_WARMUP.max(warmup), ISOLATION_WINDOW.max(window));
            let stalled = self
                .measure(
                    "dispatcher closed loop beside a stalled destination",
                    &settings,
                    &mut process,
                    &delivered,
                    beside,
                    None,
                    span,
                )
                .await?;
            anyhow::Ok(vec![closed, open, stalled])
        }
        .await;
        process.stop().await;
        let mut phases = result?;
        let beside_stalled_share = phases[2].per_second / phases[0].per_second;
        eprintln!(
            "  beside a stalled destination the healthy one keeps {beside_stalled_share:.2} of its throughput alone"
        );
        // The same hop without the dispatcher, on the same topics' broker and at the same rate,
        // once the dispatcher stopped: the part of the latency above that Kafka accounts for.
        if let Some(open) = phases.get_mut(1) {
            let hop = self
                .kafka_hop(&settings, &job(0, 0), open.per_second)
                .await?;
            if let (Some(total), Some(hop)) = (&open.latency_ms, &hop) {
                eprintln!(
                    "  Kafka hop alone: p50 {:.1} ms, p99 {:.1} ms; the dispatcher adds about {:.1} ms at p99",
                    hop.p50_ms,
                    hop.p99_ms,
                    total.p99_ms - hop.p99_ms
                );
            }
            open.kafka_hop_ms = hop;
        }

        Ok((phases, beside_stalled_share))
    }

    /// Writes records the size of `job` at `rate` to a topic nobody else reads and times their
    /// way to a consumer in this process, with the stage's producer and consumer settings: the
    /// Kafka hop the stage's latency includes. Warms up and measures like [`Self::measure`].
    async fn kafka_hop(
        &self,
        settings: &KafkaSettings,
        job: &DeliveryJob,
        rate: f64,
    ) -> anyhow::Result<Option<Percentiles>> {
        const SENT_AT: &str = "bench-sent-at-us";
        let topic = settings.topics().events();
        let group = format!("{}bench-hop", settings.topic_prefix);
        let consumer: Arc<StreamConsumer> = Arc::new(create_consumer(&consumer_config(
            settings,
            "bench-hop",
            &group,
        ))?);
        consumer.subscribe(&[&topic])?;
        // Records sent before this instant (the warm-up) are read but not timed.
        let window_from_us = Arc::new(AtomicU64::new(u64::MAX));
        let timed = Arc::new(std::sync::Mutex::new(stats::histogram()));
        let read = Arc::new(AtomicU64::new(0));
        let reader = {
            let (consumer, window_from_us, timed, read) = (
                consumer.clone(),
                window_from_us.clone(),
                timed.clone(),
                read.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Ok(message) = consumer.recv().await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let arrived = now_us();
                    let sent = message
                        .headers()
                        .and_then(|headers| headers.iter().find(|h| h.key == SENT_AT))
                        .and_then(|header| header.value)
                        .and_then(|value| std::str::from_utf8(value).ok()?.parse::<u64>().ok());
                    if let Some(sent) = sent
                        && sent >= window_from_us.load(Ordering::Relaxed)
                        && let Ok(mut timed) = timed.lock()
                    {
                        stats::record(&mut timed, arrived.saturating_sub(sent));
                    }
                    read.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        raw::wait_for_partitions(&consumer, "the Kafka hop's consumer").await?;
        let payload = serde_json::to_vec(job)?;
        let producer = create_producer(&producer_config(settings, "bench-hop"))?;
        let (warmup, window) = self.windows();
        let total = warmup + window;
        let started = Instant::now();
        let mut written = 0_u64;
        while started.elapsed() < total {
            if window_from_us.load(Ordering::Relaxed) == u64::MAX && started.elapsed() >= warmup {
                window_from_us.store(now_us(), Ordering::Relaxed);
            }
            if written >= (started.elapsed().as_secs_f64() * rate) as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let sent_at = now_us().to_string();
            let record = FutureRecord::to(&topic)
                .key(job.destination_id.as_str())
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: SENT_AT,
                    value: Some(&sent_at),
                }));
            match producer.send_result(record) {
                Ok(_) => written += 1,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
            if written.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
        // Let the last records arrive before reading the latencies.
        let draining = Instant::now();
        while read.load(Ordering::Relaxed) < written && draining.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reader.abort();
        let timed = timed
            .lock()
            .map_err(|_| anyhow::anyhow!("the Kafka hop's reader panicked"))?;
        Ok((!timed.is_empty()).then(|| Percentiles::of(&timed)))
    }

    async fn slow_receiver(
        &self,
        settings: &KafkaSettings,
        process: &mut Child,
        base: &str,
        receiver: SocketAddr,
    ) -> anyhow::Result<SlowReceiver> {
        let producer = create_producer(&producer_config(settings, "bench-stage"))?;
        let topic = settings.topics().deliveries();
        let url = format!("{base}/slow/{SLOW_HOLD_MS}");
        let before = receiver_counts(receiver).await?.slow;
        let idle = process.usage()?;
        eprintln!(
            "slow receiver: dispatcher RSS {:.0} MB before any job",
            mb(idle.rss_bytes)
        );
        for seq in 0..SLOW_IN_FLIGHT {
            let job = delivery_job(seq, now_us(), "slow", &url);
            while send_job(&producer, &topic, &job).is_err() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let started = Instant::now();
        let mut held = 0;
        while started.elapsed() < Duration::from_secs(SLOW_HOLD_MS / 1_000 / 2) {
            held = receiver_counts(receiver).await?.slow - before;
            if held >= SLOW_IN_FLIGHT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let usage = process.usage()?;
        let status = procfs::process::Process::new(i32::try_from(process.pid)?)?.status()?;
        eprintln!(
            "slow receiver: {held} deliveries held, dispatcher RSS {:.0} MB ({} threads, {:.0} MB anonymous)",
            mb(usage.rss_bytes),
            status.threads,
            mb(status.rssanon.unwrap_or(0) * 1024),
        );
        Ok(SlowReceiver {
            in_flight: held,
            rss_mb: mb(usage.rss_bytes),
        })
    }

    /// The warm-up and measured window the command line set for each phase.
    fn windows(&self) -> (Duration, Duration) {
        (
            Duration::from_secs(self.args.windows.warmup),
            Duration::from_secs(self.args.windows.duration),
        )
    }

    /// Writes records with `feed` at most [`WINDOW`] ahead of what `out` counted (or at `open`'s
    /// rate, with latencies read from the receiver), warms up, then measures a window (`span`).
    #[allow(clippy::too_many_arguments)]
    async fn measure<F>(
        &self,
        name: &str,
        settings: &KafkaSettings,
        process: &mut Child,
        out: &Out,
        feed: F,
        open: Option<(f64, SocketAddr)>,
        (warmup, window): (Duration, Duration),
    ) -> anyhow::Result<StagePhase>
    where
        F: Fn(&FutureProducer, u64) -> Result<(), ()>,
    {
        let producer = create_producer(&producer_config(settings, "bench-stage"))?;
        let baseline = out.count().await?;
        let started = Instant::now();
        let mut written = 0_u64;
        let mut measuring: Option<(Instant, u64, Usage, u64)> = None;
        let mut next_check = Instant::now();
        let mut counted_now = baseline;
        while measuring
            .as_ref()
            .is_none_or(|(since, ..)| since.elapsed() < window)
        {
            if measuring.is_none() && started.elapsed() >= warmup {
                measuring = Some((
                    Instant::now(),
                    out.count().await?,
                    process.usage()?,
                    now_us() / 1_000_000 + 1,
                ));
            }
            if Instant::now() >= next_check {
                counted_now = out.count().await?;
                next_check = Instant::now() + Duration::from_millis(20);
                if !process.is_running() {
                    bail!(
                        "the stage process exited; see its log in {}",
                        self.run_dir.display()
                    );
                }
            }
            let due = match open {
                Some((rate, _)) => (started.elapsed().as_secs_f64() * rate) as u64,
                None => counted_now - baseline + WINDOW,
            };
            if written >= due {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            match feed(&producer, written) {
                Ok(()) => written += 1,
                Err(()) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
            if written.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
        let (since, counted, usage, first_second) = measuring.context("no measured window")?;
        let counted_end = out.count().await?;
        let usage_end = process.usage()?;
        let seconds = since.elapsed().as_secs_f64();
        let records = counted_end - counted;
        let per_second = records as f64 / seconds;
        let cpu = usage_end.cpu_seconds - usage.cpu_seconds;
        let latency_ms = match open {
            Some((_, receiver)) => {
                let last_second = now_us() / 1_000_000 - 1;
                // Let the window's last deliveries arrive before reading their latencies.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (status, body) = http::get(receiver, "/series").await?;
                if !status.is_success() {
                    bail!("the receiver answered {status} for /series");
                }
                let series: Series = serde_json::from_slice(&body)?;
                let histogram = series.latency_between(first_second, last_second)?;
                // A window shorter than two whole seconds has no complete second to read.
                (!histogram.is_empty()).then(|| Percentiles::of(&histogram))
            }
            None => None,
        };
        let phase = StagePhase {
            name: name.to_owned(),
            per_second,
            share_of_raw_kafka: per_second / self.raw_per_second,
            cpu_ms_per_record: cpu * 1_000.0 / records.max(1) as f64,
            rss_mb: mb(usage_end.rss_bytes),
            latency_ms,
            kafka_hop_ms: None,
        };
        eprintln!(
            "{name}: {per_second:.0}/s ({:.2} of raw Kafka), {:.3} CPU-ms per record, {:.0} MB{}",
            phase.share_of_raw_kafka,
            phase.cpu_ms_per_record,
            phase.rss_mb,
            phase
                .latency_ms
                .as_ref()
                .map(|p| format!(", p50 {:.1} ms, p99 {:.1} ms", p.p50_ms, p.p99_ms))
                .unwrap_or_default()
        );
        Ok(phase)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// What counts the records a stage put out.
enum Out {
    /// The records of a topic, read by a consumer of its own group.
    Topic {
        counted: Arc<AtomicU64>,
        reader: tokio::task::JoinHandle<()>,
    },
    /// The deliveries the receiver took (none with a bad signature).
    Receiver(SocketAddr),
}

impl Out {
    fn topic(settings: &KafkaSettings, topic: &str, name: &str) -> anyhow::Result<Self> {
        let group = format!("{}bench-counter-{name}", settings.topic_prefix);
        let consumer: StreamConsumer =
            create_consumer(&consumer_config(settings, "bench-counter", &group))?;
        consumer.subscribe(&[topic])?;
        let counted = Arc::new(AtomicU64::new(0));
        let reader = {
            let counted = counted.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(message) = consumer.recv().await
                        && message.payload().is_some()
                    {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Ok(Self::Topic { counted, reader })
    }

    async fn count(&self) -> anyhow::Result<u64> {
        match self {
            Self::Topic { counted, .. } => Ok(counted.load(Ordering::Relaxed)),
            Self::Receiver(receiver) => {
                let counts = receiver_counts(*receiver).await?;
                if counts.bad_signatures > 0 {
                    bail!("{} deliveries had a bad signature", counts.bad_signatures);
                }
                Ok(counts.deliveries)
            }
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        if let Self::Topic { reader, .. } = self {
            reader.abort();
        }
    }
}

async fn receiver_counts(receiver: SocketAddr) -> anyhow::Result<Counts> {
    let (status, body) = http::get(receiver, "/counts").await?;
    if !status.is_success() {
        bail!("the receiver answered {status} for /counts");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// A 1 KiB monitoring alert that the processor phase's trigger matches.
fn event_body() -> serde_json::Value {
    json!({
        "alert": {
            "id": "alrt_01HZX3K8T2QW9E7R5Y4U6I0O1P",
            "name": "HighErrorRate",
            "severity": "high",
            "count": 17,
            "status": "firing",
            "started_at": "2026-11-23T17:00:00Z",
            "summary": "5xx rate above 5% for 10 minutes on checkout-api",
            "description": "The checkout API has answered more than 5% of requests with a 5xx status for the last 10 minutes. Error budget burn rate is 14.4x; at this rate the monthly budget is gone in 2 days.",
            "runbook": "https://runbooks.example.com/checkout-api/high-error-rate",
            "dashboard": "https://grafana.example.com/d/checkout/overview?from=now-1h",
        },
        "labels": {
            "service": "checkout-api",
            "env": "prod",
            "region": "eu-west-1",
            "team": "payments",
            "cluster": "prod-eu-1",
            "namespace": "checkout",
            "pod": "checkout-api-7d9f8b6c5-x2k4p",
        },
        "values": {"error_rate": 0.083, "threshold": 0.05, "requests_per_second": 1250.5, "p99_ms": 840},
        "links": ["https://status.example.com/incidents/4711", "https://pager.example.com/incidents/PX4711"],
        "annotations": {"owner": "payments-oncall@example.com", "priority": "P2", "ticket": "OPS-20931"},
    })
}

/// The processor phase's resources: the matching trigger (a condition and a ~300-byte body
/// template) and `others` triggers of other sources, each with its own source.
fn processor_resources(others: usize) -> String {
    // Values render as JSON (the body is JSON, so templates are JSON-escaped): no quotes
    // around them.
    let body = r#"{"text": {{ "[" ~ (payload.alert.severity | upper) ~ "] " ~ payload.alert.name ~ " on " ~ payload.labels.service ~ " (" ~ payload.labels.env ~ "/" ~ payload.labels.region ~ ")" }}, "summary": {{ payload.alert.summary }}, "count": {{ payload.alert.count }}, "runbook": {{ payload.alert.runbook }}, "event": {{ event.id }}, "team": {{ payload.labels.team }}}"#;
    let condition = r#"payload.alert.severity == "high" and payload.alert.count > 3"#;
    let mut file = String::from(
        "[[destinations]]\nid = \"chat\"\nurl = \"https://chat.example.com/hooks/alerts\"\n\n",
    );
    let source = |id: &str| {
        format!(
            "[[sources]]\nid = \"{id}\"\nauth = [{{ type = \"bearer\", tokens = [\"bench-{id}\"] }}]\n\n"
        )
    };
    let trigger = |id: &str, source: &str| {
        format!(
            "[[triggers]]\nid = \"{id}\"\nwhen = {{ sources = [\"{source}\"] }}\nif = '{condition}'\n\n[[triggers.actions]]\ndestination = \"chat\"\nbody = '{body}'\n\n"
        )
    };
    file += &source("alerts");
    file += &trigger("page-on-high", "alerts");
    for n in 0..others {
        let id = format!("other-{n}");
        file += &source(&id);
        file += &trigger(&format!("{id}-trigger"), &id);
    }
    file
}

/// The dispatcher phases' destinations: `sink` answers at once, `slow` after a minute.
fn dispatcher_resources(base: &str) -> String {
    format!(
        "[[destinations]]\nid = \"sink\"\nurl = \"{base}/hooks/sink\"\nsecrets = [\"{SIGNING_SECRET}\"]\n\n\
         [[destinations]]\nid = \"slow\"\nurl = \"{base}/slow/{SLOW_HOLD_MS}\"\nsecrets = [\"{SIGNING_SECRET}\"]\ntimeout_ms = {}\n\n\
         [[destinations]]\nid = \"stalled\"\nurl = \"{base}/slow/{SLOW_HOLD_MS}\"\nsecrets = [\"{SIGNING_SECRET}\"]\ntimeout_ms = {STALLED_TIMEOUT_MS}\n",
        SLOW_HOLD_MS * 2
    )
}

/// A rendered job with a body the receiver reads its sequence number and send time from.
fn delivery_job(seq: u64, sent_at_us: u64, destination: &str, url: &str) -> DeliveryJob {
    let body = format!(
        r#"{{"seq": {seq}, "sent_at_us": {sent_at_us}, "slot": 0, "text": "[HIGH] HighErrorRate on checkout-api (prod/eu-west-1)", "summary": "5xx rate above 5% for 10 minutes on checkout-api", "count": 17, "runbook": "https://runbooks.example.com/checkout-api/high-error-rate"}}"#
    );
    DeliveryJob {
        schema_version: SCHEMA_VERSION,
        delivery_id: format!("dlv_bench_{seq:016}"),
        event_id: format!("evt_bench_{seq:016}"),
        source_id: ResourceId::parse("alerts".to_owned()).expect("a valid id"),
        trigger_id: ResourceId::parse("page-on-high".to_owned()).expect("a valid id"),
        action: 0,
        destination_id: ResourceId::parse(destination.to_owned()).expect("a valid id"),
        attempt: 1,
        method: "POST".to_owned(),
        url: url.to_owned(),
        headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
        body,
        received_at: hookline_runtime::time::rfc3339(time::OffsetDateTime::now_utc()),
        not_before: None,
    }
}

fn send_job(producer: &FutureProducer, topic: &str, job: &DeliveryJob) -> Result<(), ()> {
    send_job_to(producer, topic, None, job)
}

/// [`send_job`] to a given partition instead of the one its key picks.
fn send_job_to(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    job: &DeliveryJob,
) -> Result<(), ()> {
    let value = serde_json::to_vec(job).map_err(drop)?;
    let mut record = FutureRecord::to(topic)
        .key(job.destination_id.as_str())
        .payload(&value);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    producer.send_result(record).map(drop).map_err(drop)
}
