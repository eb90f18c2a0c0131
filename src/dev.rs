//! `hookline dev`: every role in one process on the embedded broker, the sample resources
//! applied, and an echo receiver to deliver to. No setup, and nothing durable: the embedded
//! broker keeps events in memory only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hookline_runtime::embedded::EmbeddedKafka;
use tokio_util::sync::CancellationToken;

use crate::echo::EchoReceiver;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::resource_file::{self, ResourceFile};

/// The sample resources, built in so `hookline dev` works from any directory.
const SAMPLE: &str = include_str!("../examples/hookline.toml");

/// The admin token of the control API in dev mode.
pub const DEV_CONTROL_TOKEN: &str = "dev-admin-token";

/// Settings of `hookline dev`.
#[derive(Clone, Debug, Args)]
pub struct DevArgs {
    /// Address of the inbound webhook endpoint.
    #[arg(
        long = "ingest-addr",
        env = "HOOKLINE_INGEST_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub ingest_addr: SocketAddr,

    /// Address of the control API.
    #[arg(
        long = "control-addr",
        env = "HOOKLINE_CONTROL_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub control_addr: SocketAddr,

    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long = "admin-addr",
        env = "HOOKLINE_ADMIN_ADDR",
        default_value = "127.0.0.1:9400"
    )]
    pub admin_addr: SocketAddr,

    /// Address of the built-in echo receiver (the sample destination points at 127.0.0.1:8082).
    #[arg(
        long = "echo-addr",
        env = "HOOKLINE_ECHO_ADDR",
        default_value = "127.0.0.1:8082"
    )]
    pub echo_addr: SocketAddr,

    /// Resource file to apply at start instead of the built-in sample.
    #[arg(short = 'f', long = "file", env = "HOOKLINE_FILE")]
    pub file: Option<PathBuf>,

    /// Roles to run (all by default), for example `ingest` to measure ingest alone.
    #[arg(long = "roles", env = "HOOKLINE_DEV_ROLES", value_enum, value_delimiter = ',', default_values_t = [Role::Ingest, Role::Processor, Role::Dispatcher, Role::Control])]
    pub roles: Vec<Role>,

    /// Ingest's rate limits.
    #[command(flatten)]
    pub limits: hookline_ingest::limits::LimitSettings,

    /// Address ranges (CIDRs) deliveries may reach although the SSRF guard refuses them in
    /// production; loopback, so the echo receiver and servers on this machine work.
    #[arg(
        long = "dispatcher-allow-cidr",
        env = "HOOKLINE_DISPATCHER_ALLOW_CIDRS",
        value_delimiter = ',',
        default_values = ["127.0.0.0/8", "::1/128"]
    )]
    pub allow_cidrs: Vec<ipnet::IpNet>,

    /// Read-only tokens of the control API, comma separated (the admin token is
    /// `dev-admin-token`): they may list, get and preview, and get 403 on every write.
    #[arg(
        long = "control-read-token",
        env = "HOOKLINE_CONTROL_READ_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub control_read_tokens: Vec<String>,

    /// Per-destination dispatcher series (`hookline_dispatcher_destination_*`) for at most this
    /// many destinations; 0 (the default) turns them off.
    #[arg(
        long = "metrics-destination-labels",
        env = "HOOKLINE_METRICS_DESTINATION_LABELS",
        default_value_t = 0
    )]
    pub metrics_destination_labels: usize,

    /// The end-to-end canary (`--canary` turns it on).
    #[command(flatten)]
    pub canary: crate::canary::CanaryConfig,
}

/// A role `hookline dev` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The inbound endpoint.
    Ingest,
    /// Triggers and templates.
    Processor,
    /// Delivery.
    Dispatcher,
    /// The operator's API.
    Control,
}

/// Runs `hookline dev` until `shutdown`.
pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let echo = EchoReceiver::bind(args.echo_addr).await?;
    let echo_addr = echo.local_addr();
    let resources = match &args.file {
        Some(path) => ResourceFile::load(path)?,
        None => sample(echo_addr)?,
    };
    let broker = EmbeddedKafka::start(1)?;
    let kafka = broker.settings(hookline_schemas::topics::DEFAULT_PREFIX);
    broker.create_topics(&kafka)?;

    let echo_task = tokio::spawn(echo.run(shutdown.clone()));

    let mut config = PipelineConfig::new(kafka.clone());
    config.admin.addr = args.admin_addr;
    let runs = |role| args.roles.contains(&role);
    config.ingest = runs(Role::Ingest).then(|| hookline_ingest::Config {
        addr: args.ingest_addr,
        limits: args.limits.clone(),
        ..hookline_ingest::Config::default()
    });
    config.processor = runs(Role::Processor).then(hookline_processor::Config::default);
    config.dispatcher = runs(Role::Dispatcher).then(|| hookline_dispatcher::Config {
        allow_cidrs: args.allow_cidrs.clone(),
        metrics_destination_labels: args.metrics_destination_labels,
        ..hookline_dispatcher::Config::default()
    });
    config.control = runs(Role::Control).then(|| hookline_control::Config {
        addr: args.control_addr,
        tokens: vec![DEV_CONTROL_TOKEN.to_owned()],
        read_tokens: args.control_read_tokens.clone(),
        // A laptop's history: in memory, rebuilt from the embedded broker at each start.
        store_memory: true,
        ..hookline_control::Config::default()
    });
    config.canary = args.canary.enabled.then(|| args.canary.clone());
    config.shutdown_deadline = Duration::from_secs(5);
    let pipeline = Pipeline::start(config, shutdown.clone()).await?;
    pipeline.ready().await?;

    let plan = resource_file::apply(&kafka, &resources, false, false).await?;
    // Read our own writes: wait until the roles see the applied resources.
    let written = resources.resources();
    let mut store = pipeline.store.subscribe();
    let seen = store.wait_for(|set| {
        written
            .iter()
            .all(|r| set.get(&r.key()).as_ref() == Some(r))
    });
    tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .context("the applied resources did not come back from the broker")?
        .context("the resource store stopped")?;

    let ingest = pipeline.ingest_addr.unwrap_or(args.ingest_addr);
    let control = pipeline.control_addr.unwrap_or(args.control_addr);
    println!("{}", plan.summary());
    println!(
        "Hookline dev is ready: ingest http://{ingest}, control http://{control} (token {DEV_CONTROL_TOKEN}; \
         console http://{control}/ui/), \
         metrics http://{}/metrics, echo receiver http://{echo_addr}. \
         The embedded broker keeps events in memory only: they are gone when this process stops.",
        pipeline.admin_addr
    );
    println!(
        "Its embedded Kafka broker listens on {brokers}, for `hookline apply --kafka-brokers {brokers}` \
         and any Kafka client.",
        brokers = kafka.brokers
    );
    println!("Try it:\n{}", sample_curl(ingest));
    if pipeline.control_addr.is_some() {
        println!(
            "Manage it:\nexport HOOKLINE_API_URL=http://{control} HOOKLINE_API_TOKEN={DEV_CONTROL_TOKEN}\n\
             hookline triggers list"
        );
    }
    let result = pipeline.wait().await;
    shutdown.cancel();
    let _ = echo_task.await;
    result
}

/// The built-in sample, its echo destination pointing at the echo receiver wherever it listens.
fn sample(echo_addr: SocketAddr) -> anyhow::Result<ResourceFile> {
    let mut file = ResourceFile::parse(SAMPLE).context("the built-in sample is invalid")?;
    for destination in &mut file.destinations {
        if destination.id.as_str() == "echo" {
            destination.url = format!("http://{echo_addr}/chat");
        }
    }
    Ok(file)
}

/// A `curl` that works as printed against the sample resources.
pub fn sample_curl(ingest: SocketAddr) -> String {
    format!(
        "curl -sS -X POST http://{ingest}/inbound-webhooks/github \\\n  \
         -H 'Authorization: Bearer dev-token' -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \\\n  \
         -d '{{\"ref\": \"refs/heads/main\", \"repository\": {{\"full_name\": \"acme/api\"}}, \"pusher\": {{\"name\": \"octocat\"}}, \"commits\": [{{\"id\": \"4f2a\"}}]}}'"
    )
}
