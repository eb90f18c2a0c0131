//! The scenarios: which roles run, the fault each injects, when the fault ends, and how many
//! repeated deliveries it may cause.
//!
//! **The in-flight bound.** Processor and dispatcher store a record's offset once its output is
//! acknowledged (the job written, the attempt recorded), and librdkafka commits stored offsets
//! every second (`auto.commit.interval.ms=1000`) and when partitions are revoked. An instance
//! that dies, is stopped, joins, or is cut off from Kafka therefore repeats at most what it had
//! taken since its last commit: the events of one commit interval plus the pipeline's own delay
//! (another second) at the load's rate, plus one destination's delivery slots (256, deliveries
//! sent but not yet recorded). The bound of a scenario is that, times the consumer instances it
//! disrupts; a scenario that disrupts none (ingest killed, receiver failing) must repeat nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

use crate::faults::workload::STALL_MS;
use crate::pipeline::{self, PipelineSpec};
use crate::procs::Child;
use crate::receiver::{Mode, now_us};

/// How long a supervisor waits before it restarts a killed role.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// One destination's delivery slots (`--destination-max-in-flight`'s default).
const DELIVERY_SLOTS: u64 = 256;

/// The seconds of work a disrupted consumer may repeat: one commit interval and the pipeline's
/// delay.
const REPEATABLE_SECONDS: f64 = 2.0;

/// A fault and what surrounds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// kill -9 of ingest under load; restarted on the same address.
    KillIngest,
    /// kill -9 of the processor under load; restarted.
    KillProcessor,
    /// kill -9 of the dispatcher under load; restarted.
    KillDispatcher,
    /// Two dispatchers, one killed with -9 and not restarted: the other takes its partitions.
    KillOneOfTwoDispatchers,
    /// The broker stopped for 60 s with its data kept, then started again; no role restarted.
    BrokerOutage,
    /// The receiver answers 503 for 20 s.
    #[value(name = "receiver-503")]
    #[serde(rename = "receiver-503")]
    Receiver503,
    /// The receiver holds every request past the destination's timeout for 20 s.
    ReceiverStall,
    /// A second processor and dispatcher join, then stop with SIGTERM.
    ScaleOutIn,
}

impl Scenario {
    /// Every scenario, in the order the suite runs them.
    pub const ALL: [Self; 8] = [
        Self::KillIngest,
        Self::KillProcessor,
        Self::KillDispatcher,
        Self::KillOneOfTwoDispatchers,
        Self::BrokerOutage,
        Self::Receiver503,
        Self::ReceiverStall,
        Self::ScaleOutIn,
    ];

    /// Its name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillIngest => "kill-ingest",
            Self::KillProcessor => "kill-processor",
            Self::KillDispatcher => "kill-dispatcher",
            Self::KillOneOfTwoDispatchers => "kill-one-of-two-dispatchers",
            Self::BrokerOutage => "broker-outage",
            Self::Receiver503 => "receiver-503",
            Self::ReceiverStall => "receiver-stall",
            Self::ScaleOutIn => "scale-out-in",
        }
    }

    /// Dispatchers at the start.
    pub fn dispatchers(self) -> usize {
        match self {
            Self::KillOneOfTwoDispatchers => 2,
            Self::KillIngest
            | Self::KillProcessor
            | Self::KillDispatcher
            | Self::BrokerOutage
            | Self::Receiver503
            | Self::ReceiverStall
            | Self::ScaleOutIn => 1,
        }
    }

    /// Consumer instances whose partitions the fault moves or cuts off.
    fn disrupted(self) -> u64 {
        match self {
            Self::KillIngest | Self::Receiver503 | Self::ReceiverStall => 0,
            Self::KillProcessor | Self::KillDispatcher | Self::KillOneOfTwoDispatchers => 1,
            // The processor and the dispatcher both lose the broker.
            Self::BrokerOutage => 2,
            // Two instances join and the same two leave.
            Self::ScaleOutIn => 4,
        }
    }

    /// Most repeated deliveries allowed at `rate` events per second (see the module's comment).
    pub fn duplicate_bound(self, rate: f64) -> u64 {
        let per_instance = (rate * REPEATABLE_SECONDS).ceil() as u64 + DELIVERY_SLOTS;
        self.disrupted() * per_instance
    }
}

/// The role processes of one scenario, by name (`ingest`, `processor-1`, `dispatcher-2`).
pub struct Cluster {
    spec: PipelineSpec,
    flags: Vec<String>,
    /// Where ingest listens; a restarted ingest listens there again.
    pub ingest_addr: SocketAddr,
    processes: Vec<(&'static str, Child)>,
}

impl Cluster {
    /// Writes the resources and starts ingest, one processor and `dispatchers` dispatchers.
    pub async fn start(
        spec: PipelineSpec,
        brokers: &str,
        dispatchers: usize,
    ) -> anyhow::Result<Self> {
        let flags = pipeline::kafka_flags(&spec, brokers, false);
        pipeline::apply(&spec, &flags).await?;
        let ingest = pipeline::start_role(&spec, "ingest", "ingest", &flags).await?;
        let ingest_addr = ingest
            .ingest
            .context("ingest did not say where it listens")?;
        let mut cluster = Self {
            spec,
            flags,
            ingest_addr,
            processes: vec![("ingest", ingest.child)],
        };
        cluster.add("processor", "processor-1").await?;
        for index in 1..=dispatchers {
            cluster
                .add("dispatcher", &format!("dispatcher-{index}"))
                .await?;
        }
        Ok(cluster)
    }

    /// Starts `role` as `name` and waits until it is ready.
    pub async fn add(&mut self, role: &'static str, name: &str) -> anyhow::Result<()> {
        let addr = self.ingest_addr.to_string();
        let started = pipeline::start_role_at(&self.spec, role, name, &self.flags, &addr).await?;
        self.processes.push((role, started.child));
        Ok(())
    }

    fn take(&mut self, name: &str) -> anyhow::Result<(&'static str, Child)> {
        let index = self
            .processes
            .iter()
            .position(|(_, child)| child.name == name)
            .with_context(|| format!("no process named {name}"))?;
        Ok(self.processes.remove(index))
    }

    /// kill -9 of `name`; with `restart`, started again after [`RESTART_DELAY`] as a supervisor
    /// would, and ready.
    pub async fn kill(&mut self, name: &str, restart: bool) -> anyhow::Result<()> {
        let (role, child) = self.take(name)?;
        if let Some(pid) = i32::try_from(child.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            rustix::process::kill_process(pid, rustix::process::Signal::Kill)
                .with_context(|| format!("could not kill {name}"))?;
        }
        // Reaps it (it is gone already, so this does not wait).
        child.stop().await;
        if restart {
            tokio::time::sleep(RESTART_DELAY).await;
            self.add(role, name).await?;
        }
        Ok(())
    }

    /// SIGTERM to `name`, and waits until it exited.
    pub async fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        let (_, child) = self.take(name)?;
        child.stop().await;
        Ok(())
    }

    /// The processes that are no longer running, by name.
    pub fn exited(&mut self) -> Vec<String> {
        self.processes
            .iter_mut()
            .filter_map(|(_, child)| (!child.is_running()).then(|| child.name.clone()))
            .collect()
    }

    /// Stops every process.
    pub async fn stop_all(self) {
        for (_, child) in self.processes.into_iter().rev() {
            child.stop().await;
        }
    }
}

/// What a fault needs besides the roles.
pub struct Surroundings {
    /// The receiver, whose mode the receiver faults switch.
    pub receiver: SocketAddr,
    /// `scripts/kafka-local`, which pauses and resumes the broker.
    pub broker_script: PathBuf,
    /// How long the broker stays down.
    pub outage: Duration,
    /// How long the receiver fails.
    pub receiver_failure: Duration,
    /// How long the extra instances of the scale scenario run.
    pub scaled: Duration,
}

/// Injects the scenario's fault and returns when it ended (µs since the epoch): the killed role
/// restarted and ready, the broker answering again, the receiver well again, the extra
/// instances stopped; for the dispatcher killed beside another, the kill itself.
pub async fn inject(
    scenario: Scenario,
    cluster: &mut Cluster,
    around: &Surroundings,
) -> anyhow::Result<u64> {
    match scenario {
        Scenario::KillIngest => cluster.kill("ingest", true).await?,
        Scenario::KillProcessor => cluster.kill("processor-1", true).await?,
        Scenario::KillDispatcher => cluster.kill("dispatcher-1", true).await?,
        Scenario::KillOneOfTwoDispatchers => cluster.kill("dispatcher-2", false).await?,
        Scenario::BrokerOutage => {
            broker(&around.broker_script, "pause").await?;
            tokio::time::sleep(around.outage).await;
            broker(&around.broker_script, "resume").await?;
        }
        Scenario::Receiver503 => {
            fail_receiver(around.receiver, Mode::Unavailable, around.receiver_failure).await?;
        }
        Scenario::ReceiverStall => {
            let stall = Mode::Stall(STALL_MS);
            fail_receiver(around.receiver, stall, around.receiver_failure).await?;
        }
        Scenario::ScaleOutIn => {
            cluster.add("processor", "processor-2").await?;
            cluster.add("dispatcher", "dispatcher-2").await?;
            tokio::time::sleep(around.scaled).await;
            cluster.stop("processor-2").await?;
            cluster.stop("dispatcher-2").await?;
        }
    }
    Ok(now_us())
}

async fn fail_receiver(receiver: SocketAddr, mode: Mode, how_long: Duration) -> anyhow::Result<()> {
    set_mode(receiver, mode).await?;
    tokio::time::sleep(how_long).await;
    set_mode(receiver, Mode::Ok).await
}

async fn set_mode(receiver: SocketAddr, mode: Mode) -> anyhow::Result<()> {
    let request = hyper::Request::put(mode.path())
        .header(hyper::header::HOST, receiver.to_string())
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let mut connection = crate::http::Connection::open(receiver).await?;
    let (status, _) = connection.send(request).await?;
    if !status.is_success() {
        bail!("the receiver answered {status} to {}", mode.path());
    }
    Ok(())
}

/// `scripts/kafka-local pause|resume`.
async fn broker(script: &std::path::Path, command: &str) -> anyhow::Result<()> {
    let status = Command::new(script)
        .arg(command)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("could not run {}", script.display()))?;
    if !status.success() {
        bail!("{} {command} failed ({status})", script.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_that_move_no_partitions_may_repeat_nothing() {
        assert_eq!(Scenario::KillIngest.duplicate_bound(300.0), 0);
        assert_eq!(Scenario::Receiver503.duplicate_bound(300.0), 0);
        assert_eq!(Scenario::KillProcessor.duplicate_bound(300.0), 600 + 256);
        assert_eq!(
            Scenario::BrokerOutage.duplicate_bound(300.0),
            2 * (600 + 256)
        );
    }
}
