//! A benchmark run: the receiver, the raw limits, the pipeline under a closed loop and then open
//! loops at shares of the maximum (or, with `--scale`, a closed loop per instance count), and the
//! report, the chart and the table at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use tokio::process::Command;

use crate::chart::{self, Span};
use crate::cli::RunArgs;
use crate::load::{self, LoadSpec, Pace, Target, Totals};
use crate::machine::{self, Machine};
use crate::monitor::{Mode, Monitor};
use crate::pipeline::{Broker, Pipeline, PipelineSpec};
use crate::procs::{Child, Usage};
use crate::raw::{self, RawBroker};
use crate::receiver::now_us;
use crate::report::{
    DeliveryCheck, Phase, ProcessFigures, RawLimits, Report, ScaleRow, Setup, Smoke, Summary,
    TimelinePoint, WorkloadFacts, thousands,
};
use crate::stats::{self, Percentiles, Series};
use crate::topic_counts;
use crate::workload::{self, DESTINATIONS, Generator, ResourceFile, SIGNING_SECRET, SOURCES};

/// How long a drain waits without progress before it counts the rest as missing.
const DRAIN_QUIET: Duration = Duration::from_secs(15);

/// Durations of one run, after `--smoke` is applied.
struct Plan {
    warmup: Duration,
    window: Duration,
    /// The closed loop's window.
    closed_window: Duration,
    raw_window: Duration,
    open_levels: Vec<u32>,
    /// Whether the open levels are events per second (`--open-rate`), not percentages.
    open_absolute: bool,
}

/// What every phase needs.
struct Bench {
    args: RunArgs,
    plan: Plan,
    generator: Arc<Generator>,
    totals: Arc<Totals>,
    monitor: Arc<Monitor>,
    receiver: Child,
    /// Most outstanding deliveries the closed loop allows.
    max_outstanding: u64,
}

/// A measured phase and its window, in Unix seconds, for its latencies.
struct Measured {
    phase: Phase,
    latency_window: (u64, u64),
    span: (f64, f64),
}

/// Runs the benchmark; the exit code fails only a `--smoke` run below its floor.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let bin_dir = exe.parent().context("no directory")?.to_owned();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace")?
        .to_owned();
    let started = OffsetDateTime::now_utc();
    let stamp = started.format(format_description!(
        "[year][month][day]-[hour][minute][second]"
    ))?;
    let json_path = match &args.out {
        Some(path) => path.clone(),
        None => bin_dir
            .parent()
            .unwrap_or(&bin_dir)
            .join("bench")
            .join(format!("{stamp}.json")),
    };
    let run_dir = json_path.with_extension("");
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("could not create {}", run_dir.display()))?;
    let hookline = match &args.hookline {
        Some(path) => path.clone(),
        None => {
            if !args.no_build {
                build(&workspace).await?;
            }
            bin_dir.join("hookline")
        }
    };
    if !hookline.exists() {
        bail!(
            "{} does not exist: run `cargo build --release` first, or pass --hookline",
            hookline.display()
        );
    }
    let plan = if args.smoke {
        Plan {
            warmup: Duration::from_secs(3),
            window: Duration::from_secs(8),
            closed_window: Duration::from_secs(8),
            raw_window: Duration::from_secs(3),
            open_levels: vec![50],
            open_absolute: false,
        }
    } else {
        Plan {
            warmup: Duration::from_secs(args.windows.warmup),
            window: Duration::from_secs(args.windows.duration),
            closed_window: Duration::from_secs(
                args.windows
                    .closed_duration
                    .unwrap_or(args.windows.duration),
            ),
            raw_window: Duration::from_secs(args.windows.raw_duration),
            open_levels: if args.open_rate.is_empty() {
                args.open_loop.clone()
            } else {
                args.open_rate.clone()
            },
            open_absolute: !args.open_rate.is_empty(),
        }
    };
    let machine = Machine::describe(&workspace);
    eprintln!(
        "hookline-bench: {} cores, {}; logs in {}",
        machine.cores,
        machine.cpu_model,
        run_dir.display()
    );

    let (receiver, receiver_addr) = start_receiver(&exe, &run_dir, None, false).await?;
    let resources = ResourceFile::new(&format!("http://{receiver_addr}"))?;
    let resources_path = run_dir.join("resources.toml");
    std::fs::write(&resources_path, resources.to_toml()?)?;
    let totals = Arc::new(Totals::default());
    let monitor = Monitor::start(receiver_addr, totals.clone());
    let dpe = workload::deliveries_per_event();
    let context = Bench {
        plan,
        generator: Arc::new(Generator::new()),
        totals,
        monitor,
        receiver,
        max_outstanding: (args.max_backlog as f64 * dpe).ceil() as u64,
        args,
    };
    let args = &context.args;

    // The raw limits first, while nothing else runs; with the CPU each took.
    let mut raw_spans = Vec::new();
    let cpu = |pid: Option<u32>| {
        pid.and_then(|pid| Usage::of(pid).ok())
            .map_or(0.0, |usage| usage.cpu_seconds)
    };
    let receiver_pid = Some(context.receiver.pid);
    let broker_pid = args.broker_pid;
    let own_pid = Some(std::process::id());
    let http_cpu_start = cpu(own_pid) + cpu(receiver_pid);
    let raw_start = now_us() as f64 / 1e6;
    context
        .monitor
        .phase("raw HTTP", context.plan.raw_window, Mode::Free);
    let http = load::run(
        LoadSpec {
            target: Target::Raw(receiver_addr),
            connections: args.connections,
            duration: context.plan.raw_window,
            pace: Pace::Closed,
            skip_later_than: None,
        },
        context.generator.clone(),
        context.totals.clone(),
        context.monitor.gate(),
    )
    .await?;
    let http_per_second = http.accepted as f64 / http.elapsed.as_secs_f64().max(1e-3);
    let http_cpu_ms =
        (cpu(own_pid) + cpu(receiver_pid) - http_cpu_start) * 1000.0 / http.accepted.max(1) as f64;
    let kafka_cpu_start = cpu(own_pid) + cpu(broker_pid);
    let raw_kafka_start = now_us() as f64 / 1e6;
    raw_spans.push(("raw HTTP", raw_start, raw_kafka_start));
    context
        .monitor
        .phase("raw Kafka", context.plan.raw_window, Mode::Free);
    let raw_broker = match &args.brokers {
        Some(brokers) => RawBroker::Kafka {
            brokers: brokers.clone(),
            group_protocol: args.group_protocol,
        },
        None => RawBroker::Embedded,
    };
    let kafka = raw::kafka(
        &raw_broker,
        context.plan.raw_window,
        args.partitions,
        &format!("hookline-bench-{stamp}-raw."),
        &context.generator,
    )
    .await?;
    raw_spans.push(("raw Kafka", raw_kafka_start, now_us() as f64 / 1e6));
    let kafka_cpu_ms =
        (cpu(own_pid) + cpu(broker_pid) - kafka_cpu_start) * 1000.0 / kafka.records.max(1) as f64;
    // The floor of one event: 1 + d HTTP exchanges (in, and each delivery) and 1 + d Kafka
    // records (the event, and each job), at what the raw phases spent on one of each.
    let d = workload::deliveries_per_event();
    let floor_ms = (1.0 + d) * (http_cpu_ms + kafka_cpu_ms);
    let composed_per_second = machine.cores as f64 * 1000.0 / floor_ms.max(1e-9);
    let (smaller_per_second, smaller) = if kafka.per_second <= http_per_second {
        (kafka.per_second, "Kafka")
    } else {
        (http_per_second, "HTTP")
    };
    let raw = RawLimits {
        http_per_second,
        kafka,
        smaller_per_second,
        smaller: smaller.to_owned(),
        http_cpu_ms,
        kafka_cpu_ms,
        kafka_broker_counted: args.brokers.is_none() || broker_pid.is_some(),
        composed_per_second,
    };

    let per_role = args.brokers.is_some() || args.per_role || args.scale;
    let broker = match (&args.brokers, per_role) {
        (Some(brokers), _) => Broker::Kafka(brokers.clone()),
        (None, true) => Broker::Hosted,
        (None, false) => Broker::Dev,
    };
    let spec = |processors, dispatchers, index: usize| PipelineSpec {
        hookline: hookline.clone(),
        resources: resources_path.clone(),
        log_dir: run_dir.clone(),
        broker: broker.clone(),
        processors,
        dispatchers,
        control: args.control,
        partitions: args.partitions,
        group_protocol: group_protocol_flag(args.group_protocol).to_owned(),
        topic_prefix: format!("hookline-bench-{stamp}-{index}."),
        one_process: args.one_process,
    };
    let mut measured = Vec::new();
    let mut scale = Vec::new();
    let mut topic_costs = None;
    if args.scale {
        for (index, instances) in [1_usize, 2].into_iter().enumerate() {
            let mut pipeline = Pipeline::start(&spec(instances, instances, index)).await?;
            // A consumer group that gains a member rebalances after it reported ready (the
            // classic protocol waits 3 s first): let it settle before the warm-up.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let name = format!("scale {instances}+{instances}");
            let result = measure(&context, &mut pipeline, &name, Pace::Closed).await;
            pipeline.stop().await;
            let result = result?;
            scale.push(ScaleRow {
                processors: instances,
                dispatchers: instances,
                partitions: args.partitions,
                events_per_second: result.phase.end_to_end_per_second,
                deliveries_per_second: result.phase.deliveries_per_second,
                p99_ms: 0.0,
            });
            measured.push(result);
        }
    } else {
        let spec = spec(1, 1, 0);
        let mut pipeline = Pipeline::start(&spec).await?;
        let result = async {
            let counts_before = match &args.kafka_local {
                Some(script) => Some(topic_counts::read(script).await?),
                None => None,
            };
            let closed = measure(&context, &mut pipeline, "closed loop", Pace::Closed).await?;
            if let (Some(script), Some(before)) = (&args.kafka_local, &counts_before) {
                let after = topic_counts::read(script).await?;
                topic_costs = topic_counts::per_event(before, &after, &spec.topic_prefix);
            }
            let max = closed.phase.end_to_end_per_second;
            let mut phases = vec![closed];
            for level in &context.plan.open_levels {
                let (rate, name) = if context.plan.open_absolute {
                    (f64::from(*level), format!("open {level}/s"))
                } else {
                    (max * f64::from(*level) / 100.0, format!("open {level}%"))
                };
                if rate < 1.0 {
                    continue;
                }
                phases.push(measure(&context, &mut pipeline, &name, Pace::Open(rate)).await?);
            }
            anyhow::Ok(phases)
        }
        .await;
        pipeline.stop().await;
        measured = result?;
    }
    context.monitor.clear_line();

    // The latencies, now that every delivery is in.
    let (status, body) = crate::http::get(receiver_addr, "/series").await?;
    if !status.is_success() {
        bail!("the receiver answered {status} for its series");
    }
    let series: Series = serde_json::from_slice(&body)?;
    for result in &mut measured {
        let (from, to) = result.latency_window;
        result.phase.end_to_end_latency = Percentiles::of(&series.latency_between(from, to)?);
    }
    for (row, result) in scale.iter_mut().zip(measured.iter()) {
        row.p99_ms = result.phase.end_to_end_latency.p99_ms;
    }
    let mut by_second = BTreeMap::new();
    for second in &series.latency {
        by_second.insert(
            second.second,
            Percentiles::of(&stats::decode(&second.histogram)?),
        );
    }
    let samples = context.monitor.samples();
    let timeline = TimelinePoint::build(&samples, &by_second);
    let origin = samples.first().map_or(0.0, |sample| sample.unix_s);
    let spans: Vec<Span> = raw_spans
        .iter()
        .map(|(label, from, to)| ((*label).to_owned(), *from, *to))
        .chain(
            measured
                .iter()
                .map(|result| (result.phase.name.clone(), result.span.0, result.span.1)),
        )
        .map(|(label, from, to)| Span {
            label,
            from: (from - origin).max(0.0),
            to: to - origin,
        })
        .collect();
    let phases: Vec<Phase> = measured.into_iter().map(|result| result.phase).collect();

    let counts = context.monitor.counts();
    let deliveries = DeliveryCheck {
        expected: context
            .totals
            .expected_deliveries
            .load(std::sync::atomic::Ordering::Relaxed),
        received: counts.unique,
        duplicates: counts.duplicates,
        bad_signatures: counts.bad_signatures,
        unparsable: counts.unparsable,
    };
    let summary = (!args.scale)
        .then(|| phases.first())
        .flatten()
        .map(|closed| summarize(closed, &phases, &raw));
    let smoke = args.smoke.then(|| {
        let measured = phases
            .first()
            .map_or(0.0, |phase| phase.end_to_end_per_second);
        Smoke {
            floor: args.smoke_floor,
            measured,
            passed: measured >= args.smoke_floor,
        }
    });
    let layout = match broker {
        Broker::Dev => "all roles in one process (hookline dev)",
        Broker::Kafka(_) if args.one_process => "all roles in one process (hookline run)",
        Broker::Hosted | Broker::Kafka(_) => "one process per role",
    };
    let report = Report {
        started_at: started.format(&Rfc3339)?,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        setup: Setup {
            broker: args
                .brokers
                .clone()
                .map_or_else(|| "embedded".to_owned(), |b| format!("Kafka at {b}")),
            layout: layout.to_owned(),
            partitions: args.partitions,
            connections: args.connections,
            warmup_seconds: context.plan.warmup.as_secs(),
            window_seconds: context.plan.window.as_secs(),
            max_backlog_events: args.max_backlog,
            workload: WorkloadFacts {
                sources: SOURCES.len(),
                triggers: workload::trigger_count(),
                destinations: DESTINATIONS.len(),
                event_bytes: raw.kafka.record_bytes,
                matching_share: workload::matching_share(),
                deliveries_per_event: dpe,
            },
        },
        raw,
        phases,
        summary,
        topic_costs,
        scale,
        deliveries,
        timeline,
        smoke,
    };
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)?;
    let chart_path = json_path.with_extension("svg");
    let title = format!(
        "Hookline end to end, {} broker, {} ({} cores)",
        report.setup.broker, layout, report.machine.cores
    );
    chart::draw(&chart_path, &title, &report.timeline, &spans)?;
    println!("{}", report.table());
    println!(
        "report: {}\nchart:  {}\nlogs:   {}",
        json_path.display(),
        chart_path.display(),
        run_dir.display()
    );
    context.receiver.stop().await;
    Ok(match report.smoke {
        Some(smoke) if !smoke.passed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// A warm-up, then a measured window, then a drain until every delivery arrived.
async fn measure(
    context: &Bench,
    pipeline: &mut Pipeline,
    name: &str,
    pace: Pace,
) -> anyhow::Result<Measured> {
    let mode = match pace {
        Pace::Closed => Mode::Bounded(context.max_outstanding),
        Pace::Open(_) => Mode::StopAbove(context.max_outstanding * 2),
    };
    let ingest = pipeline.ingest_addr;
    let connections = match pace {
        Pace::Closed => context.args.connections,
        Pace::Open(_) => context.args.open_connections,
    };
    let load = |duration| LoadSpec {
        target: Target::Ingest(ingest),
        connections,
        duration,
        pace,
        skip_later_than: None,
    };
    let span_start = now_us() as f64 / 1e6;
    if !context.plan.warmup.is_zero() {
        context
            .monitor
            .phase(&format!("{name}, warm-up"), context.plan.warmup, mode);
        load::run(
            load(context.plan.warmup),
            context.generator.clone(),
            context.totals.clone(),
            context.monitor.gate(),
        )
        .await?;
        pipeline.check_running()?;
    }
    let window = match pace {
        Pace::Closed => context.plan.closed_window,
        Pace::Open(_) => context.plan.window,
    };
    let usage_before = usages(context, pipeline);
    let busy_before = machine::busy_seconds();
    let counts_before = context.monitor.counts();
    let start_us = now_us();
    context.monitor.phase(name, window, mode);
    let probed = pipeline
        .control_addr
        .filter(|_| !context.args.no_control_queries);
    let probing = probed
        .map(|addr| tokio::spawn(crate::probe::run(addr, std::time::Instant::now() + window)));
    let result = load::run(
        load(window),
        context.generator.clone(),
        context.totals.clone(),
        context.monitor.gate(),
    )
    .await?;
    let (control_queries, control_query_failures) = match probing {
        Some(probing) => probing.await?,
        None => (Vec::new(), 0),
    };
    let end_us = now_us();
    let counts_after = context.monitor.counts();
    let usage_after = usages(context, pipeline);
    let busy = machine::busy_seconds() - busy_before;
    let span_end = end_us as f64 / 1e6;
    let missing = context
        .monitor
        .drain(&format!("{name}, drain"), DRAIN_QUIET)
        .await;
    pipeline.check_running()?;

    let seconds = ((end_us - start_us) as f64 / 1e6).max(1e-3);
    let accepted_per_second = result.accepted as f64 / seconds;
    let deliveries = counts_after.deliveries - counts_before.deliveries;
    let deliveries_per_second = deliveries as f64 / seconds;
    let end_to_end_per_second =
        accepted_per_second.min(deliveries_per_second / workload::deliveries_per_event());
    let mut processes = Vec::new();
    let mut ours = 0.0;
    for ((name, before), (_, after)) in usage_before.iter().zip(&usage_after) {
        let cpu_seconds = (after.cpu_seconds - before.cpu_seconds).max(0.0);
        ours += cpu_seconds;
        processes.push(ProcessFigures {
            name: name.clone(),
            hookline: !(name == "receiver" || name == "kafka broker" || name.starts_with("bench")),
            cpu_seconds,
            cpu_seconds_per_1000_events: cpu_seconds / (result.accepted.max(1) as f64) * 1000.0,
            cores_used: cpu_seconds / seconds,
            peak_rss_mb: after.peak_rss_bytes as f64 / 1e6,
            rss_mb: after.rss_bytes as f64 / 1e6,
        });
    }
    let phase = Phase {
        name: name.to_owned(),
        target_per_second: match pace {
            Pace::Closed => None,
            Pace::Open(rate) => Some(rate),
        },
        seconds,
        sent: result.sent,
        accepted: result.accepted,
        refused: result.refused,
        errors: result.errors,
        accepted_per_second,
        deliveries,
        deliveries_per_second,
        end_to_end_per_second,
        end_to_end_latency: Percentiles::default(),
        ingest_latency: Percentiles::of(&result.response_latency),
        processes,
        other_cpu_seconds: (busy - ours).max(0.0),
        fell_behind: result.stopped,
        missing_after_drain: missing,
        control_queries,
        control_query_failures,
    };
    eprintln!(
        "{name}: {} events/s accepted, {} deliveries/s{}",
        thousands(accepted_per_second),
        thousands(deliveries_per_second),
        if missing > 0 {
            format!(", {missing} deliveries missing after the drain")
        } else {
            String::new()
        }
    );
    Ok(Measured {
        phase,
        latency_window: (start_us.div_ceil(1_000_000), end_us / 1_000_000),
        span: (span_start, span_end),
    })
}

/// CPU and memory of the pipeline's processes, the receiver and the bench itself.
fn usages(context: &Bench, pipeline: &Pipeline) -> Vec<(String, Usage)> {
    let mut usages = pipeline.usage();
    usages.push((
        "receiver".to_owned(),
        context.receiver.usage().unwrap_or_default(),
    ));
    let bench = if context.args.brokers.is_none() && (context.args.per_role || context.args.scale) {
        "bench (generator+broker)"
    } else {
        "bench (generator)"
    };
    usages.push((bench.to_owned(), Usage::own().unwrap_or_default()));
    if let Some(pid) = context.args.broker_pid {
        usages.push((
            "kafka broker".to_owned(),
            Usage::of(pid).unwrap_or_default(),
        ));
    }
    usages
}

fn summarize(closed: &Phase, phases: &[Phase], raw: &RawLimits) -> Summary {
    let hookline = |phase: &Phase| {
        phase
            .processes
            .iter()
            .filter(|process| process.hookline)
            .cloned()
            .collect::<Vec<_>>()
    };
    let peak = phases
        .iter()
        .flat_map(hookline)
        .map(|process| process.peak_rss_mb)
        .fold(0.0, f64::max);
    Summary {
        max_events_per_second: closed.end_to_end_per_second,
        max_deliveries_per_second: closed.deliveries_per_second,
        ratio_to_smaller_raw_limit: closed.end_to_end_per_second / raw.smaller_per_second.max(1e-3),
        ratio_to_composed_limit: closed.end_to_end_per_second / raw.composed_per_second.max(1e-3),
        p99_at_half_ms: phases
            .iter()
            .find(|phase| phase.name == "open 50%")
            .map(|phase| phase.end_to_end_latency.p99_ms),
        hookline_cpu_seconds_per_1000_events: hookline(closed)
            .iter()
            .map(|process| process.cpu_seconds_per_1000_events)
            .sum(),
        hookline_peak_rss_mb: peak,
    }
}

fn group_protocol_flag(protocol: hookline_runtime::settings::GroupProtocol) -> &'static str {
    match protocol {
        hookline_runtime::settings::GroupProtocol::Classic => "classic",
        hookline_runtime::settings::GroupProtocol::Consumer => "consumer",
    }
}

/// `cargo build --release -p hookline --bin hookline`, so the binary measured is the source's.
async fn build(workspace: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("hookline-bench: cargo build --release -p hookline --bin hookline");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "hookline",
            "--bin",
            "hookline",
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .status()
        .await
        .context("could not run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p hookline failed ({status})");
    }
    Ok(())
}

/// Starts `hookline-bench receiver` and reads where it listens; with `tls_ca`, it also speaks
/// TLS and writes its CA's certificate there; with `track_ids`, it keeps each event's deliveries
/// (the fault suite).
pub(crate) async fn start_receiver(
    exe: &Path,
    run_dir: &Path,
    tls_ca: Option<&Path>,
    track_ids: bool,
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut command = Command::new(exe);
    command.args([
        "receiver",
        "--addr",
        "127.0.0.1:0",
        "--secret",
        SIGNING_SECRET,
    ]);
    if let Some(path) = tls_ca {
        command.arg("--tls-ca").arg(path);
    }
    if track_ids {
        command.arg("--track-ids");
    }
    let mut child = Child::spawn("receiver", command, &run_dir.join("receiver.log")).await?;
    let addr = child
        .wait_for(Duration::from_secs(30), |line| {
            line.strip_prefix("listening on http://")?
                .parse::<SocketAddr>()
                .ok()
        })
        .await?;
    child.detach_output();
    Ok((child, addr))
}
