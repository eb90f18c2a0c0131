//! The command line: `hookline-bench [run] [OPTIONS]`, and the internal `receiver` subcommand
//! the bench starts itself as.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hookline_runtime::settings::GroupProtocol;

/// Hookline's benchmark: the pipeline end to end (events in over HTTP, signed webhooks out),
/// against the raw Kafka and HTTP limits of the same machine, measured in the same run.
#[derive(Debug, Parser)]
#[command(
    name = "hookline-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `run` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `run`, when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the benchmark (the default).
    Run(RunArgs),
    /// One stage alone (processor or dispatcher), fed straight through Kafka on an embedded
    /// broker the bench hosts.
    Stage(StageArgs),
    /// Control's history store at production volume: fill it with a day of traffic, then time
    /// every query the API asks while a writer keeps adding events.
    Store(crate::store::StoreArgs),
    /// The console's pages and the statistics calls over HTTP, against `hookline control` with a
    /// filled store (`--events`, as `store`'s).
    Console(crate::console::ConsoleArgs),
    /// The fault suite on Apache Kafka: one process per role under a steady load, one fault per
    /// scenario (kill -9, broker outage, failing receiver, scaling), every acknowledged event
    /// checked for delivery.
    Faults(crate::faults::FaultsArgs),
    /// The webhook receiver, in its own process (the bench starts it; not for direct use).
    #[command(hide = true)]
    Receiver(ReceiverArgs),
}

/// Settings of `hookline-bench run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// A short run for CI (under 2 minutes with start-up): raw limits, a closed loop and one
    /// open-loop step; fails only when end-to-end throughput is below `--smoke-floor`.
    #[arg(long)]
    pub smoke: bool,

    /// Lowest end-to-end events per second `--smoke` accepts.
    #[arg(long, default_value_t = 4500.0)]
    pub smoke_floor: f64,

    /// Measure one and two processor and dispatcher instances in one consumer group each (one
    /// process per role), and report throughput against instances.
    #[arg(long)]
    pub scale: bool,

    /// A Kafka cluster (bootstrap servers) to run on instead of the embedded broker. The roles
    /// then run one per process, as in production.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,

    /// The process id of the Kafka broker given with `--brokers`, when it runs on this machine:
    /// its CPU and memory are then reported with the others' (for `scripts/kafka-local`:
    /// `$(cat target/kafka-local/run/kafka.pid)`).
    #[arg(long, requires = "brokers")]
    pub broker_pid: Option<u32>,

    /// `scripts/kafka-local` of the broker given with `--brokers`: the broker's own counts per
    /// topic (records, produce and fetch requests, bytes) over the closed loop are then reported
    /// per event.
    #[arg(long, value_name = "SCRIPT", requires = "brokers")]
    pub kafka_local: Option<PathBuf>,

    /// On the embedded broker, run one process per role (the production layout) on a broker the
    /// bench hosts, instead of `hookline dev` with every role in one process.
    #[arg(long, conflicts_with = "brokers")]
    pub per_role: bool,

    /// On the Kafka cluster given with `--brokers`, run every role in one process (`hookline
    /// run`), as a single-node installation does, instead of one process per role.
    #[arg(long, requires = "brokers", conflicts_with = "scale")]
    pub one_process: bool,

    /// Consumer group protocol of the roles on a real Kafka (`classic` or `consumer`).
    #[arg(long, value_enum, default_value_t = GroupProtocol::Classic)]
    pub group_protocol: GroupProtocol,

    /// Partitions of each topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,

    /// Connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,

    /// Connections of the load generator in the open loops. Senders of webhooks are many
    /// independent clients; with too few connections a slow answer would hold up the requests
    /// due after it, and the generator's queue would count as Hookline's latency.
    #[arg(long, default_value_t = 512)]
    pub open_connections: usize,

    /// How long each phase runs.
    #[command(flatten)]
    pub windows: Windows,

    /// Open-loop rates, as percentages of the closed-loop maximum.
    #[arg(long, value_delimiter = ',', default_values_t = [25, 50, 75, 100])]
    pub open_loop: Vec<u32>,

    /// Open-loop rates in events per second instead of percentages (for example `1000` to
    /// measure each role's cost at a production rate).
    #[arg(long, value_delimiter = ',', conflicts_with = "open_loop")]
    pub open_rate: Vec<u32>,

    /// Also run a control process (one process per role layouts), so its cost of following the
    /// topics into its history store is measured with the other roles'.
    #[arg(long, conflicts_with = "smoke")]
    pub control: bool,

    /// With `--control`, do not ask its history API during the phases (to measure what following
    /// the topics alone costs it).
    #[arg(long, requires = "control")]
    pub no_control_queries: bool,

    /// Most events accepted but not yet delivered in the closed loop; the generator waits while
    /// there are more. It keeps the embedded broker under its ~5 MB per partition (beyond which
    /// it drops records) and makes the maximum a sustained one.
    #[arg(long, default_value_t = 10_000)]
    pub max_backlog: u64,

    /// The `hookline` binary; built with `cargo build --release` and taken from beside this
    /// binary when absent.
    #[arg(long)]
    pub hookline: Option<PathBuf>,

    /// Do not run `cargo build --release -p hookline` first (use the binary as it is).
    #[arg(long)]
    pub no_build: bool,

    /// The JSON report; `target/bench/<time>.json` when absent. The chart and the logs go beside
    /// it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How long the phases of a run last.
#[derive(Clone, Debug, Args)]
pub struct Windows {
    /// Warm-up before each measured window, in seconds.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,

    /// Measured window of each phase, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,

    /// Measured window of each raw limit, in seconds.
    #[arg(long, default_value_t = 10)]
    pub raw_duration: u64,

    /// Measured window of the closed loop, in seconds, when it should differ from the other
    /// phases' (`--duration`): a soak of `--open-rate 1000 --duration 1200` needs no 20-minute
    /// closed loop.
    #[arg(long)]
    pub closed_duration: Option<u64>,
}

/// The stage `hookline-bench stage` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StageRole {
    /// Events in, delivery jobs out.
    Processor,
    /// Delivery jobs in, signed webhooks out.
    Dispatcher,
}

/// Settings of `hookline-bench stage`.
#[derive(Clone, Debug, Args)]
pub struct StageArgs {
    /// The stage to measure.
    #[arg(value_enum)]
    pub role: StageRole,

    /// A Kafka cluster (bootstrap servers) to run on instead of a hosted embedded broker.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,

    /// Processor: the numbers of other sources' triggers to measure with, one phase each.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 1000])]
    pub other_triggers: Vec<usize>,

    /// Dispatcher: measure only its memory with 10,000 deliveries held by a slow receiver,
    /// skipping the throughput, latency and isolation phases.
    #[arg(long)]
    pub memory_only: bool,

    /// Dispatcher: deliver over HTTPS (HTTP/1.1, with a certificate from a CA made for the
    /// run and given to the dispatcher with `--destination-ca-file`) instead of plain HTTP.
    #[arg(long)]
    pub tls: bool,

    /// Partitions of each topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,

    /// How long each phase runs.
    #[command(flatten)]
    pub windows: Windows,

    /// The `hookline` binary; taken from beside this binary when absent (build it with
    /// `cargo build --release -p hookline`).
    #[arg(long)]
    pub hookline: Option<PathBuf>,
}

/// Settings of the receiver.
#[derive(Clone, Debug, Args)]
pub struct ReceiverArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// The Standard Webhooks secret deliveries are signed with.
    #[arg(long)]
    pub secret: String,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also speak TLS on the same port (a connection whose first byte starts a TLS handshake),
    /// with a certificate for 127.0.0.1 from a CA made at start, whose certificate (PEM) is
    /// written here.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// Keep every event's deliveries with their `webhook-id`s for `GET /tracked` (the fault
    /// suite; memory grows with the events, so not for long benchmark runs).
    #[arg(long)]
    pub track_ids: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default() {
        let cli = Cli::try_parse_from(["hookline-bench", "--smoke"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.run.smoke);
        let cli = Cli::try_parse_from(["hookline-bench", "run", "--scale"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(args)) if args.scale));
    }
}
