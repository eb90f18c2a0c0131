//! `hookline-bench faults`: the fault suite. Each scenario starts the roles as separate processes
//! on fresh topics of an Apache Kafka broker, sends a steady load, injects one fault, then waits
//! for the pipeline to drain, and checks that every event ingest acknowledged was delivered,
//! that repeats kept their `webhook-id` and stayed under the in-flight bound, that no role
//! exited and that the pipeline caught up within 30 s of the fault's end. It prints a table,
//! writes a JSON report, and fails when any scenario failed.
//!
//! - [`workload`]: the resources and the events, poison included.
//! - [`scenario`]: the scenarios, their faults and their bounds.
//! - [`check`]: the assertions; [`dead`]: reading the dead letters.

pub mod check;
pub mod dead;
pub mod scenario;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::watch;

use crate::load::{self, Gate, LoadSpec, Pace, Target, Totals};
use crate::pipeline::{Broker, PipelineSpec};
use crate::receiver::{TrackedEvent, now_us};
use check::{Observed, Verdict};
use scenario::{Cluster, Scenario, Surroundings};
use workload::{FaultEvents, Kind, ResourceFile};

/// The longest the suite waits for deliveries after the fault ended: past the 30-s budget, so a
/// slow drain is told from a loss.
const DRAIN_WAIT: Duration = Duration::from_secs(60);

/// Load generator connections: enough that ingest answering slowly during an outage (up to its
/// 5-s produce timeout) still leaves the steady rate's events a connection.
const CONNECTIONS: usize = 64;

/// Settings of `hookline-bench faults`.
#[derive(Clone, Debug, clap::Args)]
pub struct FaultsArgs {
    /// The Apache Kafka broker (bootstrap servers) the roles run on: the one `--broker-script`
    /// pauses and resumes.
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT")]
    pub brokers: String,

    /// The script that stops the broker keeping its data (`pause`) and starts it again
    /// (`resume`), run with this process's environment (`HOOKLINE_KAFKA_DIR`).
    #[arg(long, default_value = "scripts/kafka-local")]
    pub broker_script: PathBuf,

    /// The scenarios to run, comma-separated; all when absent.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,

    /// Events per second of the steady load.
    #[arg(long, default_value_t = 300.0)]
    pub rate: f64,

    /// Seconds of steady load before the fault.
    #[arg(long, default_value_t = 8)]
    pub before: u64,

    /// Seconds of steady load after the fault ended.
    #[arg(long, default_value_t = 10)]
    pub after: u64,

    /// Seconds the broker stays down.
    #[arg(long, default_value_t = 60)]
    pub outage: u64,

    /// Seconds the receiver answers 503, or stalls.
    #[arg(long, default_value_t = 20)]
    pub receiver_failure: u64,

    /// Partitions of each topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,

    /// The `hookline` binary; the one beside this program when absent (build both with
    /// `cargo build --release -p hookline -p hookline-bench`).
    #[arg(long)]
    pub hookline: Option<PathBuf>,

    /// The JSON report; `target/bench/faults-<time>.json` when absent (the logs go to the
    /// directory of the same name).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One scenario's outcome.
#[derive(Debug, Serialize)]
struct Outcome {
    scenario: Scenario,
    /// What the checker found; its `failures` also carry an error that stopped the scenario.
    verdict: Verdict,
    /// Requests the load generator sent, and what came of them.
    sent: u64,
    refused: BTreeMap<u16, u64>,
    connection_errors: u64,
    skipped: u64,
    /// Wall time of the scenario, start-up and drain included.
    seconds: f64,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    started: String,
    brokers: String,
    rate: f64,
    wall_seconds: f64,
    passed: bool,
    scenarios: Vec<Outcome>,
}

/// Runs the suite; exits 1 when a scenario failed an assertion or could not run.
pub async fn run(args: FaultsArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let bin_dir = exe.parent().context("no directory")?.to_owned();
    let hookline = args
        .hookline
        .clone()
        .unwrap_or_else(|| bin_dir.join("hookline"));
    if !hookline.exists() {
        bail!("{} does not exist: build it first", hookline.display());
    }
    let started = OffsetDateTime::now_utc();
    let stamp = started.format(format_description!(
        "[year][month][day]-[hour][minute][second]"
    ))?;
    let json_path = args.out.clone().unwrap_or_else(|| {
        let target = bin_dir.parent().unwrap_or(&bin_dir);
        target.join("bench").join(format!("faults-{stamp}.json"))
    });
    let run_dir = json_path.with_extension("");
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("could not create {}", run_dir.display()))?;
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    eprintln!(
        "hookline-bench faults: {} scenarios on {} at {} events/s; logs in {}",
        scenarios.len(),
        args.brokers,
        args.rate,
        run_dir.display()
    );
    let suite_start = Instant::now();
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        eprintln!("== {}", scenario.name());
        let dir = run_dir.join(scenario.name());
        std::fs::create_dir_all(&dir)?;
        let context = Shared {
            args: &args,
            exe: &exe,
            hookline: &hookline,
            dir: &dir,
            prefix: format!("hookline-faults-{stamp}-{}.", scenario.name()),
        };
        let start = Instant::now();
        let mut outcome = match run_scenario(&context, scenario).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome {
                scenario,
                verdict: Verdict {
                    failures: vec![format!("the scenario could not run: {error:#}")],
                    ..Verdict::default()
                },
                sent: 0,
                refused: BTreeMap::new(),
                connection_errors: 0,
                skipped: 0,
                seconds: 0.0,
            },
        };
        outcome.seconds = start.elapsed().as_secs_f64();
        for failure in &outcome.verdict.failures {
            eprintln!("   FAILED: {failure}");
        }
        outcomes.push(outcome);
    }
    let passed = outcomes
        .iter()
        .all(|outcome| outcome.verdict.failures.is_empty());
    let report = Report {
        started: started.format(&time::format_description::well_known::Rfc3339)?,
        brokers: args.brokers.clone(),
        rate: args.rate,
        wall_seconds: suite_start.elapsed().as_secs_f64(),
        passed,
        scenarios: outcomes,
    };
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("could not write {}", json_path.display()))?;
    println!("{}", table(&report));
    println!("report: {}", json_path.display());
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What every scenario of a run shares.
struct Shared<'a> {
    args: &'a FaultsArgs,
    exe: &'a Path,
    hookline: &'a Path,
    dir: &'a Path,
    prefix: String,
}

async fn run_scenario(context: &Shared<'_>, scenario: Scenario) -> anyhow::Result<Outcome> {
    let args = context.args;
    let (receiver, receiver_addr) =
        crate::run::start_receiver(context.exe, context.dir, None, true).await?;
    let resources = context.dir.join("resources.toml");
    std::fs::write(
        &resources,
        ResourceFile::new(&format!("http://{receiver_addr}"))?.to_toml()?,
    )?;
    let spec = PipelineSpec {
        hookline: context.hookline.to_owned(),
        resources,
        log_dir: context.dir.to_owned(),
        broker: Broker::Kafka(args.brokers.clone()),
        processors: 1,
        dispatchers: scenario.dispatchers(),
        control: false,
        partitions: args.partitions,
        group_protocol: "classic".to_owned(),
        topic_prefix: context.prefix.clone(),
        one_process: false,
    };
    let mut cluster = Cluster::start(spec, &args.brokers, scenario.dispatchers()).await?;
    let totals = Arc::new(Totals {
        ledger: Some(Mutex::new(Vec::new())),
        ..Totals::default()
    });
    let (gate, gate_watch) = watch::channel(Gate::Open);
    let load = tokio::spawn(load::run(
        LoadSpec {
            target: Target::Ingest(cluster.ingest_addr),
            connections: CONNECTIONS,
            duration: Duration::from_secs(3_600),
            pace: Pace::Open(args.rate),
            skip_later_than: Some(Duration::from_secs(1)),
        },
        Arc::new(FaultEvents),
        totals.clone(),
        gate_watch,
    ));
    tokio::time::sleep(Duration::from_secs(args.before)).await;
    let around = Surroundings {
        receiver: receiver_addr,
        broker_script: args.broker_script.clone(),
        outage: Duration::from_secs(args.outage),
        receiver_failure: Duration::from_secs(args.receiver_failure),
        scaled: Duration::from_secs(args.after),
    };
    let fault_end_us = scenario::inject(scenario, &mut cluster, &around).await;
    if fault_end_us.is_ok() {
        tokio::time::sleep(Duration::from_secs(args.after)).await;
    }
    let _ = gate.send(Gate::Stop);
    let sent = load.await?;
    let fault_end_us = match fault_end_us {
        Ok(end) => end,
        Err(error) => {
            cluster.stop_all().await;
            receiver.stop().await;
            return Err(error.context("the fault could not be injected"));
        }
    };
    let sent = sent?;
    let ledger = totals
        .ledger
        .as_ref()
        .map(|ledger| {
            ledger
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
        .unwrap_or_default();
    let deadline = Instant::now()
        + DRAIN_WAIT.saturating_sub(Duration::from_micros(now_us().saturating_sub(fault_end_us)));
    let tracked = wait_for_deliveries(receiver_addr, &ledger, deadline).await?;
    let dead_topic = hookline_schemas::Topics::new(context.prefix.clone()).dead();
    let render_failed = wait_for_dead_letters(&args.brokers, &dead_topic, &ledger).await?;
    let exited = cluster.exited();
    let verdict = check::check(&Observed {
        ledger: &ledger,
        tracked: &tracked,
        render_failed: &render_failed,
        fault_end_us,
        duplicate_bound: scenario.duplicate_bound(args.rate),
        exited,
    });
    cluster.stop_all().await;
    receiver.stop().await;
    Ok(Outcome {
        scenario,
        verdict,
        sent: sent.sent,
        refused: sent.refused,
        connection_errors: sent.errors,
        skipped: sent.skipped,
        seconds: 0.0,
    })
}

/// Asks the receiver what it got until every valid acknowledged event was delivered or the
/// deadline passed; returns its last answer.
async fn wait_for_deliveries(
    receiver: std::net::SocketAddr,
    ledger: &[(u64, u64)],
    deadline: Instant,
) -> anyhow::Result<Vec<TrackedEvent>> {
    let expected: BTreeSet<u64> = ledger
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|seq| Kind::of(*seq) == Kind::Valid)
        .collect();
    loop {
        let (status, body) = crate::http::get(receiver, "/tracked").await?;
        if !status.is_success() {
            bail!("the receiver answered {status} for /tracked");
        }
        let tracked: Vec<TrackedEvent> = serde_json::from_slice(&body)?;
        let delivered = tracked
            .iter()
            .filter(|event| expected.contains(&event.seq))
            .count();
        if delivered == expected.len() || Instant::now() >= deadline {
            return Ok(tracked);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the dead letters until every acknowledged event with a failing template is there, for
/// up to 15 s (they are written as the processor reads the event, long before the drain ends).
async fn wait_for_dead_letters(
    brokers: &str,
    topic: &str,
    ledger: &[(u64, u64)],
) -> anyhow::Result<BTreeSet<u64>> {
    let failing: BTreeSet<u64> = ledger
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|seq| Kind::of(*seq) == Kind::FailingTemplate)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
        let found =
            tokio::task::spawn_blocking(move || dead::render_failed(&brokers, &topic)).await??;
        if failing.is_subset(&found) || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The table printed at the end.
fn table(report: &Report) -> String {
    let mut out = String::from(
        "| scenario | acknowledged | delivered | lost | duplicates | bound | drain s | poison (400 / dead-lettered) | result |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for outcome in &report.scenarios {
        let verdict = &outcome.verdict;
        let drain = verdict
            .drain_s
            .map_or_else(|| "–".to_owned(), |drain| format!("{drain:.1}"));
        let refused_400 = outcome.refused.get(&400).copied().unwrap_or(0);
        let dead_lettered = verdict.render_failures - verdict.render_failures_not_dead_lettered;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} of {} | {} |\n",
            outcome.scenario.name(),
            verdict.acknowledged,
            verdict.delivered,
            verdict.lost,
            verdict.duplicates,
            verdict.duplicate_bound,
            drain,
            refused_400,
            dead_lettered,
            verdict.render_failures,
            if verdict.failures.is_empty() {
                "pass"
            } else {
                "FAIL"
            },
        ));
    }
    out.push_str(&format!(
        "\n{} in {:.0} s at {} events/s",
        if report.passed {
            "all scenarios passed"
        } else {
            "FAILED"
        },
        report.wall_seconds,
        report.rate
    ));
    out
}
