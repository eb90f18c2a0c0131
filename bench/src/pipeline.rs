//! Starting the Hookline pipeline under test: `hookline dev` (every role in one process on its
//! embedded broker), one process per role (the production layout) on a real Kafka or on an
//! embedded broker the bench hosts, or every role in one process on a real Kafka (`hookline run`,
//! a single-node installation), after `hookline apply` wrote the resources.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hookline_runtime::embedded::EmbeddedKafka;
use tokio::process::Command;

use crate::http;
use crate::procs::{Child, Usage};

/// How long a Hookline process may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A per-source and per-organisation rate limit nobody reaches, so the benchmark measures the
/// pipeline and not the limiter's refusals.
const NO_RATE_LIMIT: &str = "1000000000";

/// The broker the pipeline runs on.
#[derive(Clone, Debug)]
pub enum Broker {
    /// The embedded broker inside `hookline dev` (all roles in one process).
    Dev,
    /// An embedded broker (librdkafka's mock cluster) hosted by the bench, for one process per
    /// role without installing Kafka.
    Hosted,
    /// A Kafka cluster at these bootstrap servers.
    Kafka(String),
}

/// What to start.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// The `hookline` binary.
    pub hookline: PathBuf,
    /// The resource file.
    pub resources: PathBuf,
    /// Where the processes' logs go.
    pub log_dir: PathBuf,
    /// The broker.
    pub broker: Broker,
    /// Processor instances (one process per role unless the broker is [`Broker::Dev`]).
    pub processors: usize,
    /// Dispatcher instances.
    pub dispatchers: usize,
    /// Whether a control process runs too (its history store under the log directory), so its
    /// cost of following the topics is measured with the others'.
    pub control: bool,
    /// Partitions of each created topic.
    pub partitions: i32,
    /// `--group-protocol` for a real Kafka (`classic` or `consumer`).
    pub group_protocol: String,
    /// A topic prefix no earlier run used, so a real cluster's old topics and groups stay out.
    pub topic_prefix: String,
    /// On a real Kafka, every role in one `hookline run` process instead of one per role (one
    /// processor and one dispatcher, whatever `processors` and `dispatchers` say).
    pub one_process: bool,
}

/// A running pipeline.
pub struct Pipeline {
    /// Where ingest listens.
    pub ingest_addr: SocketAddr,
    /// Its processes, ingest first.
    pub processes: Vec<Child>,
    /// Where the control API listens, when a control process runs (`--control`).
    pub control_addr: Option<SocketAddr>,
    /// The bench-hosted broker, if any; dropping it stops it.
    hosted: Option<EmbeddedKafka>,
}

impl Pipeline {
    /// Starts the pipeline and waits until every process is ready.
    pub async fn start(spec: &PipelineSpec) -> anyhow::Result<Self> {
        match &spec.broker {
            Broker::Dev => Self::start_dev(spec).await,
            Broker::Hosted => {
                let hosted = EmbeddedKafka::start(1)?;
                let mut settings = hosted.settings(&spec.topic_prefix);
                settings.topics.partitions = spec.partitions;
                hosted.create_topics(&settings)?;
                let flags = kafka_flags(spec, &hosted.bootstrap_servers(), true);
                let mut pipeline = Self::start_roles(spec, &flags).await?;
                pipeline.hosted = Some(hosted);
                Ok(pipeline)
            }
            Broker::Kafka(brokers) if spec.one_process => {
                let flags = kafka_flags(spec, brokers, false);
                Self::start_one_process(spec, &flags).await
            }
            Broker::Kafka(brokers) => {
                let flags = kafka_flags(spec, brokers, false);
                Self::start_roles(spec, &flags).await
            }
        }
    }

    async fn start_dev(spec: &PipelineSpec) -> anyhow::Result<Self> {
        let mut command = Command::new(&spec.hookline);
        command.arg("dev").arg("-f").arg(&spec.resources).args([
            "--roles",
            "ingest,processor,dispatcher",
            "--ingest-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--control-addr",
            "127.0.0.1:0",
            "--echo-addr",
            "127.0.0.1:0",
            "--source-rate-limit-per-minute",
            NO_RATE_LIMIT,
            "--org-rate-limit-per-minute",
            NO_RATE_LIMIT,
        ]);
        let log = spec.log_dir.join("hookline-dev.log");
        let mut child = Child::spawn("hookline dev", command, &log).await?;
        let ingest_addr = child
            .wait_for(READY_TIMEOUT, |line| {
                let rest = line.strip_prefix("Hookline dev is ready: ingest http://")?;
                rest.split(',').next()?.parse::<SocketAddr>().ok()
            })
            .await?;
        child.detach_output();
        Ok(Self {
            ingest_addr,
            processes: vec![child],
            control_addr: None,
            hosted: None,
        })
    }

    async fn start_one_process(spec: &PipelineSpec, flags: &[String]) -> anyhow::Result<Self> {
        apply(spec, flags).await?;
        let started = start_role(spec, "run", "hookline-run", flags).await?;
        Ok(Self {
            ingest_addr: started
                .ingest
                .context("ingest did not say where it listens")?,
            control_addr: started.control,
            processes: vec![started.child],
            hosted: None,
        })
    }

    async fn start_roles(spec: &PipelineSpec, flags: &[String]) -> anyhow::Result<Self> {
        apply(spec, flags).await?;
        let mut processes = Vec::new();
        let mut ingest = start_role(spec, "ingest", "ingest", flags).await?;
        let ingest_addr = ingest
            .ingest
            .take()
            .context("ingest did not say where it listens")?;
        processes.push(ingest.child);
        for index in 1..=spec.processors {
            let name = format!("processor-{index}");
            processes.push(start_role(spec, "processor", &name, flags).await?.child);
        }
        for index in 1..=spec.dispatchers {
            let name = format!("dispatcher-{index}");
            processes.push(start_role(spec, "dispatcher", &name, flags).await?.child);
        }
        let mut control_addr = None;
        if spec.control {
            let control = start_role(spec, "control", "control", flags).await?;
            control_addr = Some(
                control
                    .control
                    .context("control did not say where it listens")?,
            );
            processes.push(control.child);
        }
        Ok(Self {
            ingest_addr,
            processes,
            control_addr,
            hosted: None,
        })
    }

    /// CPU time and memory of each process, by name.
    pub fn usage(&self) -> Vec<(String, Usage)> {
        self.processes
            .iter()
            .map(|child| (child.name.clone(), child.usage().unwrap_or_default()))
            .collect()
    }

    /// Fails if a process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for child in &mut self.processes {
            if !child.is_running() {
                bail!("{} exited; see {}", child.name, child.log.display());
            }
        }
        Ok(())
    }

    /// Stops every process, then the hosted broker.
    pub async fn stop(self) {
        for child in self.processes.into_iter().rev() {
            child.stop().await;
        }
        drop(self.hosted);
    }
}

/// The Kafka flags every `hookline` command of the run gets.
pub(crate) fn kafka_flags(spec: &PipelineSpec, brokers: &str, hosted: bool) -> Vec<String> {
    let mut flags = vec![
        "--kafka-brokers".to_owned(),
        brokers.to_owned(),
        "--topic-prefix".to_owned(),
        spec.topic_prefix.clone(),
        "--topic-partitions".to_owned(),
        spec.partitions.to_string(),
    ];
    if hosted {
        // What `hookline dev` sets for its own embedded broker: topics exist already (the mock
        // has no admin API), KIP-848 groups, and a short wait for the stages' input fetches (the
        // mock holds a fetch for its whole wait even when records arrive).
        flags.extend(
            [
                "--create-topics",
                "false",
                "--group-protocol",
                "consumer",
                "--kafka-fetch-batch-wait-ms",
                "10",
            ]
            .map(str::to_owned),
        );
    } else {
        flags.extend(["--group-protocol".to_owned(), spec.group_protocol.clone()]);
    }
    flags
}

/// `hookline apply -f <resources>`.
pub(crate) async fn apply(spec: &PipelineSpec, flags: &[String]) -> anyhow::Result<()> {
    let log = spec.log_dir.join("hookline-apply.log");
    let file = std::fs::File::create(&log)?;
    let status = Command::new(&spec.hookline)
        .arg("apply")
        .arg("-f")
        .arg(&spec.resources)
        .args(flags)
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .await
        .context("could not run hookline apply")?;
    if !status.success() {
        bail!("hookline apply failed ({status}); see {}", log.display());
    }
    Ok(())
}

pub(crate) struct Started {
    pub(crate) child: Child,
    /// Where ingest listens, if it runs.
    pub(crate) ingest: Option<SocketAddr>,
    /// Where control listens, if it runs.
    pub(crate) control: Option<SocketAddr>,
}

/// The token the bench's control process accepts.
pub const CONTROL_TOKEN: &str = "bench-control-token";

/// Starts one role and waits until its `/readyz` answers 200.
pub(crate) async fn start_role(
    spec: &PipelineSpec,
    role: &str,
    name: &str,
    flags: &[String],
) -> anyhow::Result<Started> {
    start_role_at(spec, role, name, flags, "127.0.0.1:0").await
}

/// [`start_role`] with ingest listening on `ingest_addr`: the fault suite restarts a killed
/// ingest where its clients know it, as a supervisor would.
pub(crate) async fn start_role_at(
    spec: &PipelineSpec,
    role: &str,
    name: &str,
    flags: &[String],
    ingest_addr: &str,
) -> anyhow::Result<Started> {
    // `run` is every role in one process: ingest, processor and dispatcher, control with
    // `spec.control`.
    let one = role == "run";
    let runs_ingest = role == "ingest" || one;
    let runs_control = role == "control" || (one && spec.control);
    let mut command = Command::new(&spec.hookline);
    command
        .args(["--log-format", "json", role])
        .args(flags)
        .args(["--admin-addr", "127.0.0.1:0"]);
    if one {
        let roles = if spec.control {
            "ingest,processor,dispatcher,control"
        } else {
            "ingest,processor,dispatcher"
        };
        command.args(["--roles", roles]);
    }
    if runs_ingest {
        command.args([
            "--ingest-addr",
            ingest_addr,
            "--source-rate-limit-per-minute",
            NO_RATE_LIMIT,
            "--org-rate-limit-per-minute",
            NO_RATE_LIMIT,
        ]);
    }
    if role == "dispatcher" || one {
        command.args(["--dispatcher-allow-cidr", "127.0.0.0/8"]);
    }
    if runs_control {
        command
            .args([
                "--control-addr",
                "127.0.0.1:0",
                "--control-token",
                CONTROL_TOKEN,
            ])
            .arg("--data-dir")
            .arg(spec.log_dir.join("data"));
    }
    let log = spec.log_dir.join(format!("hookline-{name}.log"));
    let mut child = Child::spawn(name, command, &log).await?;
    let (mut admin, mut ingest, mut control) = (None, None, None);
    child
        .wait_for(READY_TIMEOUT, |line| {
            let entry: serde_json::Value = serde_json::from_str(line).ok()?;
            let address = |field: &str| entry.get(field)?.as_str()?.parse::<SocketAddr>().ok();
            match entry.get("message").and_then(serde_json::Value::as_str) {
                Some("Hookline started.") => admin = address("admin"),
                Some("Ingest listening.") => ingest = address("addr"),
                Some("Control API listening.") => control = address("addr"),
                _ => {}
            }
            (admin.is_some()
                && (ingest.is_some() || !runs_ingest)
                && (control.is_some() || !runs_control))
                .then_some(())
        })
        .await?;
    child.detach_output();
    let admin = admin.context("no admin address")?;
    wait_ready(admin, name, &child.log).await?;
    Ok(Started {
        child,
        ingest,
        control,
    })
}

/// Polls `GET /readyz` until it answers 200.
async fn wait_ready(admin: SocketAddr, name: &str, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok((status, _)) = http::get(admin, "/readyz").await
            && status.is_success()
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("{name} did not become ready; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
