//! The command line. Every flag also reads a `HOOKLINE_…` environment variable.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use hookline_processor::template::Limits;
use hookline_runtime::KafkaSettings;
use hookline_runtime::settings::{AdminSettings, LogSettings};
use hookline_schemas::ResourceKind;
use tokio_util::sync::CancellationToken;

use crate::commands::history;
use crate::commands::resources::{self, ResourceArgs};
use crate::commands::triggers::{self, TriggerArgs};
use crate::dev::{self, DevArgs, Role};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::resource_file::{self, ResourceFile};

/// Hookline: webhooks in, through Kafka, webhooks out.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about, long_about = None)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,

    /// Threads that run Hookline's own work (HTTP, templates, the consume loops); librdkafka's
    /// threads come on top. Defaults to the cores this process may use. Where several roles
    /// share a machine's cores, one or two per role cost less CPU per event (bench/README).
    #[arg(
        long = "worker-threads",
        env = "HOOKLINE_WORKER_THREADS",
        value_name = "N",
        global = true
    )]
    pub worker_threads: Option<NonZeroUsize>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process on an embedded, in-memory broker, with sample resources and
    /// an echo receiver. No setup; nothing durable.
    Dev(DevArgs),
    /// Run the inbound webhook endpoint.
    Ingest(RoleArgs<hookline_ingest::Config>),
    /// Run the processor: triggers, conditions, templates.
    Processor(RoleArgs<hookline_processor::Config>),
    /// Run the dispatcher: HTTP delivery, retries, dead letters.
    Dispatcher(RoleArgs<hookline_dispatcher::Config>),
    /// Run the operator's API.
    Control(RoleArgs<hookline_control::Config>),
    /// Run several roles in one process on a Kafka cluster (all four by default): a single-node
    /// installation, with each role's flags as on its own subcommand.
    Run(Box<RunArgs>),
    /// Validate a resource file and write what changed to Kafka; writes nothing on any error.
    Apply(ApplyArgs),
    /// Validate a resource file without connecting to Kafka.
    Validate(ValidateArgs),
    /// Show what a trigger of a resource file would send for a sample event, without Kafka.
    Preview(PreviewArgs),
    /// Manage sources through the control API.
    Sources(ResourceArgs),
    /// Manage destinations through the control API.
    Destinations(ResourceArgs),
    /// Manage and preview triggers through the control API.
    Triggers(TriggerArgs),
    /// Show an event's journey, list a source's events, replay events (control API).
    Events(history::EventArgs),
    /// List a destination's delivery attempts (control API).
    Attempts(history::AttemptArgs),
    /// List and replay dead letters (control API).
    Dead(history::DeadArgs),
    /// Send a test webhook to a destination through the dispatcher and show the answer.
    Test(history::TestArgs),
}

/// Settings of one role.
#[derive(Debug, Args)]
pub struct RoleArgs<C: Args> {
    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Admin endpoints.
    #[command(flatten)]
    pub admin: AdminSettings,
    /// The role's own settings.
    #[command(flatten)]
    pub role: C,
    /// The end-to-end canary, which any role can run beside it.
    #[command(flatten)]
    pub canary: crate::canary::CanaryConfig,
}

/// `hookline run`: the settings of every role; only those of the roles run are used.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The roles to run, comma separated.
    #[arg(long = "roles", env = "HOOKLINE_ROLES", value_enum, value_delimiter = ',', default_values_t = [Role::Ingest, Role::Processor, Role::Dispatcher, Role::Control])]
    pub roles: Vec<Role>,
    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Admin endpoints, shared by the roles.
    #[command(flatten)]
    pub admin: AdminSettings,
    /// Ingest's settings.
    #[command(flatten)]
    pub ingest: hookline_ingest::Config,
    /// The processor's settings.
    #[command(flatten)]
    pub processor: hookline_processor::Config,
    /// The dispatcher's settings.
    #[command(flatten)]
    pub dispatcher: hookline_dispatcher::Config,
    /// Control's settings.
    #[command(flatten)]
    pub control: hookline_control::Config,
    /// The end-to-end canary.
    #[command(flatten)]
    pub canary: crate::canary::CanaryConfig,
}

/// `hookline apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The resource file (TOML).
    #[arg(short = 'f', long = "file", env = "HOOKLINE_FILE")]
    pub file: PathBuf,
    /// Also delete resources that are not in the file.
    #[arg(long, env = "HOOKLINE_PRUNE")]
    pub prune: bool,
    /// Show what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply through this control API (`POST /api/v1/apply`) instead of writing to Kafka: for a
    /// job that has a control token but no Kafka credentials.
    #[arg(id = "apply-api-url", long = "api-url")]
    pub api_url: Option<String>,
    /// The control API's admin token, with `--api-url`.
    #[arg(
        id = "apply-api-token",
        long = "api-token",
        env = "HOOKLINE_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaSettings,
}

/// `hookline validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The resource file (TOML).
    #[arg(short = 'f', long = "file", env = "HOOKLINE_FILE")]
    pub file: PathBuf,
    /// A sample event (JSON, as for `preview --event`) to render triggers against; any render
    /// error or non-JSON body fails the validation. `SOURCE=FILE` renders the triggers that look
    /// at that source, as if it came from it; a plain `FILE`, every trigger, as if it came from
    /// the trigger's first source. Repeatable.
    #[arg(long = "sample", value_name = "[SOURCE=]FILE")]
    pub samples: Vec<String>,
}

/// `hookline preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The resource file (TOML) holding the trigger and its destinations.
    #[arg(short = 'f', long = "file", env = "HOOKLINE_FILE")]
    pub file: PathBuf,
    /// The trigger's id.
    #[arg(long)]
    pub trigger: String,
    /// A JSON file: the event's body, or `{"headers": {...}, "body": {...}}` with its inbound
    /// headers (the form of the sample payloads).
    #[arg(long)]
    pub event: PathBuf,
    /// The source the event arrives from; the trigger's first source unless set.
    #[arg(long)]
    pub source: Option<String>,
    /// An inbound header, `Name: value`, repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

/// Runs the command and turns its outcome into an exit code.
pub fn main(cli: Cli) -> ExitCode {
    // Single-threaded still: the only time the local offset can be read.
    crate::commands::output::remember_local_offset();
    if let Err(error) = hookline_runtime::telemetry::init_logging(&cli.log) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match runtime(cli.worker_threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Blocking work still running (a store call on a connection that went silent, say) may not
    // keep the process from exiting.
    runtime.shutdown_timeout(SHUTDOWN_BLOCKING_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime, with `worker_threads` workers or one per core.
fn runtime(worker_threads: Option<NonZeroUsize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads.get());
    }
    builder.build()
}

/// How long the process waits for blocking work still running when a command ends.
const SHUTDOWN_BLOCKING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    match command {
        Command::Dev(args) => {
            hookline_runtime::shutdown::cancel_on_signal(shutdown.clone());
            dev::run(args, shutdown).await
        }
        Command::Ingest(args) => {
            let mut config = role(&args.kafka, &args.admin, &args.canary);
            config.ingest = Some(args.role);
            serve(config, shutdown).await
        }
        Command::Processor(args) => {
            let mut config = role(&args.kafka, &args.admin, &args.canary);
            config.processor = Some(args.role);
            serve(config, shutdown).await
        }
        Command::Dispatcher(args) => {
            let mut config = role(&args.kafka, &args.admin, &args.canary);
            config.dispatcher = Some(args.role);
            serve(config, shutdown).await
        }
        Command::Control(args) => {
            let mut config = role(&args.kafka, &args.admin, &args.canary);
            config.control = Some(args.role);
            serve(config, shutdown).await
        }
        Command::Run(args) => {
            let args = *args;
            let runs = |role| args.roles.contains(&role);
            let mut config = role(&args.kafka, &args.admin, &args.canary);
            config.ingest = runs(Role::Ingest).then_some(args.ingest);
            config.processor = runs(Role::Processor).then_some(args.processor);
            config.dispatcher = runs(Role::Dispatcher).then_some(args.dispatcher);
            config.control = runs(Role::Control).then_some(args.control);
            serve(config, shutdown).await
        }
        Command::Apply(args) if args.api_url.is_some() => {
            let file = ResourceFile::load(&args.file)?;
            let url = args.api_url.as_deref().unwrap_or_default();
            let client = crate::api_client::ApiClient::new(url, args.api_token.clone())?;
            let body = serde_json::to_value(&file)?;
            let answer = client.apply(&body, args.prune, args.dry_run).await?;
            let plan: resource_file::PlanView =
                serde_json::from_value(answer).map_err(|error| {
                    anyhow::anyhow!("the control API's answer to apply is not a plan: {error}")
                })?;
            println!("{}", plan.summary());
            if args.dry_run {
                println!("(dry run: nothing was written)");
            }
            Ok(())
        }
        Command::Apply(args) => {
            let file = ResourceFile::load(&args.file)?;
            let plan = resource_file::apply(&args.kafka, &file, args.prune, args.dry_run).await?;
            println!("{}", plan.summary());
            if args.dry_run {
                println!("(dry run: nothing was written)");
            }
            Ok(())
        }
        Command::Preview(args) => {
            let preview = crate::preview::run(&args)?;
            println!("{}", serde_json::to_string_pretty(&preview)?);
            Ok(())
        }
        Command::Sources(args) => resources::run(ResourceKind::Source, args).await,
        Command::Destinations(args) => resources::run(ResourceKind::Destination, args).await,
        Command::Triggers(args) => triggers::run(args).await,
        Command::Events(args) => history::events(args).await,
        Command::Attempts(args) => history::attempts(args).await,
        Command::Dead(args) => history::dead(args).await,
        Command::Test(args) => history::test(args).await,
        Command::Validate(args) => {
            let file = ResourceFile::load(&args.file)?;
            let problems = resource_file::validate(&file.resources(), &Limits::default());
            if !problems.is_empty() {
                bail!(
                    "{} is invalid:\n{}",
                    args.file.display(),
                    resource_file::describe(&problems)
                );
            }
            for line in crate::preview::samples(&file, &args.samples)? {
                println!("{line}");
            }
            println!(
                "{} is valid: {} sources, {} destinations, {} triggers",
                args.file.display(),
                file.sources.len(),
                file.destinations.len(),
                file.triggers.len()
            );
            Ok(())
        }
    }
}

fn role(
    kafka: &KafkaSettings,
    admin: &AdminSettings,
    canary: &crate::canary::CanaryConfig,
) -> PipelineConfig {
    let mut config = PipelineConfig::new(kafka.clone());
    config.admin = admin.clone();
    config.canary = canary.enabled.then(|| canary.clone());
    config
}

async fn serve(config: PipelineConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    hookline_runtime::shutdown::cancel_on_signal(shutdown.clone());
    Pipeline::start(config, shutdown).await?.wait().await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn role_flags_do_not_clash() {
        let cli = Cli::try_parse_from([
            "hookline",
            "ingest",
            "--ingest-addr",
            "127.0.0.1:1",
            "--admin-addr",
            "127.0.0.1:2",
        ])
        .unwrap();
        let Command::Ingest(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.role.addr.port(), 1);
        assert_eq!(args.admin.addr.port(), 2);
        let cli = Cli::try_parse_from([
            "hookline",
            "control",
            "--control-addr",
            "127.0.0.1:3",
            "--admin-addr",
            "127.0.0.1:4",
        ])
        .unwrap();
        let Command::Control(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!((args.role.addr.port(), args.admin.addr.port()), (3, 4));
    }

    #[test]
    fn run_takes_every_role_flag_and_a_role_list() {
        let cli = Cli::try_parse_from([
            "hookline",
            "run",
            "--roles",
            "processor,dispatcher",
            "--ingest-addr",
            "127.0.0.1:1",
            "--control-addr",
            "127.0.0.1:3",
            "--admin-addr",
            "127.0.0.1:4",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.roles, [Role::Processor, Role::Dispatcher]);
        assert_eq!(
            (
                args.ingest.addr.port(),
                args.control.addr.port(),
                args.admin.addr.port()
            ),
            (1, 3, 4)
        );
        let Command::Run(args) = Cli::try_parse_from(["hookline", "run"]).unwrap().command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.roles.len(), 4, "all four roles by default");
        assert!(Cli::try_parse_from(["hookline", "run", "--roles", "ingest,nonsense"]).is_err());
    }

    #[test]
    fn worker_threads_go_before_or_after_the_command_and_size_the_runtime() {
        for args in [
            ["hookline", "--worker-threads", "3", "processor"],
            ["hookline", "processor", "--worker-threads", "3"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let runtime = runtime(cli.worker_threads).unwrap();
            assert_eq!(runtime.metrics().num_workers(), 3);
        }
        assert!(Cli::try_parse_from(["hookline", "--worker-threads", "0", "processor"]).is_err());
    }
}
