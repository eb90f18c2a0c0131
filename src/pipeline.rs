//! Runs any set of roles in one process: one role per process in production, all of them in
//! `hookline dev`, any mix in tests.
//!
//! Every process shares one resource store, one metrics registry and one admin server. Each role
//! runs as a named task; the first that fails cancels the others, and after a shutdown request
//! they get a deadline to drain.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hookline_runtime::admin::{AdminServer, Readiness};
use hookline_runtime::observe::ConsumerMetrics;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::settings::AdminSettings;
use hookline_runtime::{KafkaSettings, telemetry, topics};
use hookline_schemas::TopicKind;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Which roles to run, with their settings. A role left `None` does not run.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Kafka settings.
    pub kafka: KafkaSettings,
    /// Address and connection limits of `/metrics`, `/healthz`, `/readyz`.
    pub admin: AdminSettings,
    /// Ingest settings.
    pub ingest: Option<hookline_ingest::Config>,
    /// Processor settings.
    pub processor: Option<hookline_processor::Config>,
    /// Dispatcher settings.
    pub dispatcher: Option<hookline_dispatcher::Config>,
    /// Control settings.
    pub control: Option<hookline_control::Config>,
    /// The end-to-end canary, when it runs here.
    pub canary: Option<crate::canary::CanaryConfig>,
    /// How long roles may take to drain after shutdown was requested.
    pub shutdown_deadline: Duration,
}

impl PipelineConfig {
    /// No role yet, admin endpoints on a free loopback port.
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            admin: AdminSettings::default(),
            ingest: None,
            processor: None,
            dispatcher: None,
            control: None,
            canary: None,
            shutdown_deadline: hookline_runtime::shutdown::DEFAULT_DEADLINE,
        }
    }

    fn role_names(&self) -> Vec<&'static str> {
        [
            self.ingest.is_some().then_some("ingest"),
            self.processor.is_some().then_some("processor"),
            self.dispatcher.is_some().then_some("dispatcher"),
            self.control.is_some().then_some("control"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Running roles.
pub struct Pipeline {
    /// Where ingest listens, if it runs.
    pub ingest_addr: Option<SocketAddr>,
    /// Where control listens, if it runs.
    pub control_addr: Option<SocketAddr>,
    /// Where the admin endpoints listen.
    pub admin_addr: SocketAddr,
    /// The resource store the roles share.
    pub store: ResourceStore,
    shutdown: CancellationToken,
    deadline: Duration,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Pipeline {
    /// Creates missing topics, binds every listener and starts the roles. Returns once they are
    /// running; [`Pipeline::ready`] waits for the resources to be loaded.
    pub async fn start(
        config: PipelineConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let kafka = &config.kafka;
        let roles = config.role_names();
        // Every listener's connection cap assumes descriptors to hold them.
        hookline_runtime::serve::raise_open_file_limit();
        topics::ensure(kafka, &TopicKind::ALL)
            .await
            .context("could not prepare the Kafka topics")?;
        let registry = telemetry::registry(&roles.join(","));
        let consumers = ConsumerMetrics::register(&registry);
        let readiness = Readiness::default();
        let mut tasks = JoinSet::new();

        let (store, store_task) = ResourceStore::start(kafka, shutdown.clone())
            .await
            .context("could not start reading resources")?;
        tasks.spawn(async move {
            let result = match store_task.await {
                Ok(result) => result.map_err(anyhow::Error::from),
                Err(join) => Err(anyhow::anyhow!("resource reader panicked: {join}")),
            };
            ("resources", result)
        });
        let resources_ready = readiness.register("resources");
        let waiting = store.clone();
        tasks.spawn(async move {
            let result = waiting.wait_ready().await;
            resources_ready.set(result.is_ok());
            ("resources-ready", result.map_err(Into::into))
        });

        // Registered before the admin server answers, so /readyz never says ready before
        // control's history store has loaded.
        let history_ready = config
            .control
            .as_ref()
            .map(|_| readiness.register("history"));
        // Whether the cluster answers: /readyz says no while it does not.
        let reach =
            hookline_runtime::reach::Reach::new(kafka, readiness.register("kafka"), &registry)
                .context("could not watch the Kafka cluster")?;
        let token = shutdown.clone();
        tasks.spawn(async move {
            reach.run(token).await;
            ("kafka-reach", Ok(()))
        });
        let admin_limits = config.admin.limits()?;
        let admin = AdminServer::bind(config.admin.addr, admin_limits, registry.clone(), readiness)
            .await
            .context("could not start the admin server")?;
        let admin_addr = admin.local_addr();
        let token = shutdown.clone();
        tasks.spawn(async move { ("admin", admin.run(token).await.map_err(Into::into)) });

        let mut ingest_addr = None;
        if let Some(ingest) = &config.ingest {
            let server = hookline_ingest::Ingest::build(ingest, kafka, store.clone(), &registry)
                .await
                .context("could not start ingest")?;
            ingest_addr = Some(server.local_addr());
            let token = shutdown.clone();
            tasks.spawn(async move { ("ingest", server.run(token).await.map_err(Into::into)) });
        }
        if let Some(processor) = config.processor.clone() {
            let processor = hookline_processor::Processor::build(
                processor,
                kafka,
                store.clone(),
                &registry,
                &consumers,
            )
            .context("could not start the processor")?;
            let token = shutdown.clone();
            tasks.spawn(
                async move { ("processor", processor.run(token).await.map_err(Into::into)) },
            );
        }
        if let Some(mut dispatcher) = config.dispatcher.clone() {
            // Deliveries in progress get half the shutdown deadline; the rest is for committing.
            dispatcher.drain = dispatcher.drain.min(config.shutdown_deadline / 2);
            let dispatcher = hookline_dispatcher::Dispatcher::build(
                dispatcher,
                kafka,
                store.clone(),
                &registry,
                &consumers,
                shutdown.clone(),
            )
            .context("could not start the dispatcher")?;
            tasks.spawn(async move { ("dispatcher", dispatcher.run().await.map_err(Into::into)) });
        }
        let mut control_addr = None;
        if let Some(control) = &config.control {
            let mut control = control.clone();
            // Inbound URLs point at this process's own ingest unless a public URL is set.
            if control.public_ingest_url.is_none() {
                control.public_ingest_url =
                    ingest_addr.and_then(hookline_control::config::local_ingest_url);
            }
            let server =
                hookline_control::Control::build(&control, kafka, store.clone(), &registry)
                    .await
                    .context("could not start control")?;
            control_addr = Some(server.local_addr());
            if let Some(history_ready) = history_ready {
                let loaded = server.history_ready();
                tasks.spawn(async move {
                    history_ready.set(loaded.await);
                    ("history-ready", Ok(()))
                });
            }
            let token = shutdown.clone();
            tasks.spawn(async move { ("control", server.run(token).await.map_err(Into::into)) });
        }
        if let Some(canary) = config.canary.clone() {
            let (kafka, store, registry, token) = (
                kafka.clone(),
                store.clone(),
                registry.clone(),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                let run = async {
                    // The canary writes its resources, so it starts once they were loaded (a
                    // store that stops first is reported by its own task).
                    if store.wait_ready().await.is_err() {
                        return Ok(());
                    }
                    crate::canary::Canary::start(canary, &kafka, &store, &registry, ingest_addr)
                        .await?
                        .run(token)
                        .await
                };
                ("canary", run.await)
            });
        }
        info!(roles = %roles.join(","), admin = %admin_addr, "Hookline started.");
        Ok(Self {
            ingest_addr,
            control_addr,
            admin_addr,
            store,
            shutdown,
            deadline: config.shutdown_deadline,
            tasks,
        })
    }

    /// Waits until the resources were read to their end (what `/readyz` waits for, with
    /// control's history store when control runs here).
    pub async fn ready(&self) -> anyhow::Result<()> {
        Ok(self.store.wait_ready().await?)
    }

    /// Runs until shutdown is requested or a role fails, then gives the others the deadline to
    /// drain. Returns the first failure.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failure = None;
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(joined) => {
                        if let Some(error) = Self::check(joined) {
                            failure.get_or_insert(error);
                            self.shutdown.cancel();
                        }
                    }
                },
                () = self.shutdown.cancelled() => break,
            }
        }
        let drain = async {
            while let Some(joined) = self.tasks.join_next().await {
                if let Some(error) = Self::check(joined) {
                    failure.get_or_insert(error);
                }
            }
        };
        if tokio::time::timeout(self.deadline, drain).await.is_err() {
            warn!(deadline = ?self.deadline, "Roles did not stop within the deadline; stopping them now.");
            self.tasks.abort_all();
        }
        failure.map_or(Ok(()), Err)
    }

    /// Requests shutdown and waits for the roles to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Stops every role at once, without draining, as a crash would. Nothing stored as done is
    /// lost; work in progress is done again by the next process.
    pub fn kill(mut self) {
        self.tasks.abort_all();
    }

    fn check(
        joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> Option<anyhow::Error> {
        match joined {
            Ok((_, Ok(()))) => None,
            Ok((role, Err(error))) => {
                error!(role, error = format!("{error:#}"), "Role failed; stopping.");
                Some(error.context(format!("{role} failed")))
            }
            Err(join) if join.is_cancelled() => None,
            Err(join) => Some(anyhow::anyhow!("a role panicked: {join}")),
        }
    }
}
