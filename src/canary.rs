//! The canary: a synthetic source, trigger and destination owned by Hookline. Every few seconds it
//! posts one event to ingest and waits for the webhook to reach its own receiver, through the
//! real path (ingest, Kafka, processor, dispatcher), so "is the pipeline flowing" is one query:
//! `hookline_canary_probes_total{outcome}` and `hookline_canary_round_trip_seconds`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Args;
use hookline_runtime::KafkaSettings;
use hookline_runtime::resources::{ResourceStore, ResourceWriter};
use hookline_runtime::telemetry::register;
use hookline_schemas::{
    Action, Destination, Resource, ResourceId, RetryPolicy, Source, SourceAuth, Trigger, When,
};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Probes by outcome: `success`, `failure` (ingest refused it), `timeout` (never arrived).
pub const PROBES: &str = "hookline_canary_probes_total";
/// Send to arrival of successful probes.
pub const ROUND_TRIP: &str = "hookline_canary_round_trip_seconds";

/// The id of the canary's source, destination and trigger.
pub const ID: &str = hookline_control::plan::CANARY_ID;

/// Canary settings.
#[derive(Clone, Debug, Args)]
pub struct CanaryConfig {
    /// Run the end-to-end canary.
    #[arg(long = "canary", env = "HOOKLINE_CANARY")]
    pub enabled: bool,

    /// Time between probes, in milliseconds.
    #[arg(
        long = "canary-interval-ms",
        env = "HOOKLINE_CANARY_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub interval_ms: u64,

    /// How long a probe may take before it counts as a timeout, in milliseconds.
    #[arg(
        long = "canary-timeout-ms",
        env = "HOOKLINE_CANARY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub timeout_ms: u64,

    /// Where the canary's receiver listens.
    #[arg(
        long = "canary-addr",
        env = "HOOKLINE_CANARY_ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub addr: SocketAddr,

    /// The receiver's URL as the dispatcher reaches it; `http://<canary-addr>/canary` when unset.
    #[arg(long = "canary-receiver-url", env = "HOOKLINE_CANARY_RECEIVER_URL")]
    pub receiver_url: Option<String>,

    /// Ingest's base URL as the canary reaches it (`http://ingest:8080`); this process's own
    /// ingest when unset.
    #[arg(long = "canary-ingest-url", env = "HOOKLINE_CANARY_INGEST_URL")]
    pub ingest_url: Option<String>,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 5_000,
            timeout_ms: 30_000,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            receiver_url: None,
            ingest_url: None,
        }
    }
}

#[derive(Clone)]
struct Metrics {
    probes: IntCounterVec,
    round_trip: Histogram,
}

/// Probes sent and not arrived yet: sequence number to send time.
type Pending = Arc<Mutex<HashMap<u64, Instant>>>;

fn lock(pending: &Pending) -> MutexGuard<'_, HashMap<u64, Instant>> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A canary, its receiver bound and its resources written.
pub struct Canary {
    config: CanaryConfig,
    ingest_url: String,
    token: String,
    listener: TcpListener,
    metrics: Metrics,
    client: reqwest::Client,
}

impl Canary {
    /// Binds the receiver, registers the metrics and writes the canary's resources (a fresh
    /// token each start), waiting until `store` sees them.
    pub async fn start(
        config: CanaryConfig,
        settings: &KafkaSettings,
        store: &ResourceStore,
        registry: &Registry,
        local_ingest: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let ingest_url = match (&config.ingest_url, local_ingest) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => anyhow::bail!(
                "the canary needs --canary-ingest-url when this process runs no ingest"
            ),
        };
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("could not bind the canary receiver to {}", config.addr))?;
        let receiver_url = match &config.receiver_url {
            Some(url) => url.clone(),
            None => format!("http://{}/canary", listener.local_addr()?),
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let resources = resources(&receiver_url, &token)?;
        let writer = ResourceWriter::new(settings, "canary")?;
        let mut last = None;
        for resource in &resources {
            let created_at = store
                .snapshot()
                .record(&resource.key())
                .and_then(|record| record.created_at);
            last = Some(writer.put_created(resource, created_at).await?);
        }
        // One partition: once the last write is applied, so are the others.
        if let Some(last) = last {
            tokio::time::timeout(Duration::from_secs(30), store.wait_applied(last))
                .await
                .context("the canary's resources did not arrive within 30 s")??;
        }

        let metrics = Metrics {
            probes: IntCounterVec::new(
                Opts::new(PROBES, "End-to-end canary probes, by outcome."),
                &["outcome"],
            )?,
            round_trip: Histogram::with_opts(
                HistogramOpts::new(
                    ROUND_TRIP,
                    "Time from sending a canary event to its webhook's arrival.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            )?,
        };
        register(registry, metrics.probes.clone());
        register(registry, metrics.round_trip.clone());
        for outcome in ["success", "failure", "timeout"] {
            metrics.probes.with_label_values(&[outcome]);
        }
        Ok(Self {
            config,
            ingest_url,
            token,
            listener,
            metrics,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// Probes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            config,
            ingest_url,
            token,
            listener,
            metrics,
            client,
        } = self;
        let pending: Pending = Arc::default();
        let receiver = Router::new()
            .route("/canary", post(arrived))
            .with_state((pending.clone(), metrics.clone()));
        let stop = shutdown.clone();
        let server = tokio::spawn(
            axum::serve(listener, receiver)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .into_future(),
        );
        let url = format!("{ingest_url}/inbound-webhooks/{ID}");
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut ticks = tokio::time::interval(Duration::from_millis(config.interval_ms.max(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(ingest = %ingest_url, "Canary started.");
        for sequence in 0_u64.. {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            expire(&pending, &metrics, timeout);
            lock(&pending).insert(sequence, Instant::now());
            let sent = client
                .post(&url)
                .bearer_auth(&token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(format!(r#"{{"probe": {sequence}}}"#))
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {}
                refused => {
                    lock(&pending).remove(&sequence);
                    metrics.probes.with_label_values(&["failure"]).inc();
                    let status = refused.map(|r| r.status().to_string());
                    warn!(?status, "Canary event not accepted by ingest.");
                }
            }
        }
        server.await??;
        Ok(())
    }
}

/// Counts probes older than `timeout` as timed out.
fn expire(pending: &Pending, metrics: &Metrics, timeout: Duration) {
    let expired = {
        let mut pending = lock(pending);
        let before = pending.len();
        pending.retain(|_, sent| sent.elapsed() < timeout);
        before - pending.len()
    };
    if expired > 0 {
        metrics
            .probes
            .with_label_values(&["timeout"])
            .inc_by(expired as u64);
        warn!(expired, "Canary probes did not arrive in time.");
    }
}

async fn arrived(
    State((pending, metrics)): State<(Pending, Metrics)>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> StatusCode {
    let Some(sequence) = body.get("probe").and_then(serde_json::Value::as_u64) else {
        return StatusCode::BAD_REQUEST;
    };
    // A probe that arrives twice (at least once) or after its timeout counts once, as sent.
    if let Some(sent) = lock(&pending).remove(&sequence) {
        metrics.probes.with_label_values(&["success"]).inc();
        metrics.round_trip.observe(sent.elapsed().as_secs_f64());
    }
    StatusCode::NO_CONTENT
}

/// The canary's source, destination (no retries: a late probe is a failed probe) and trigger.
fn resources(receiver_url: &str, token: &str) -> anyhow::Result<Vec<Resource>> {
    let id = ResourceId::parse(ID)?;
    let mut source = Source::new(
        id.clone(),
        vec![SourceAuth::Bearer {
            tokens: vec![token.to_owned()],
            expires_at: None,
        }],
    );
    source.name = "Hookline canary".to_owned();
    let mut destination = Destination::new(id.clone(), receiver_url);
    destination.name = "Hookline canary".to_owned();
    destination
        .headers
        .insert("content-type".to_owned(), "application/json".to_owned());
    destination.retry = Some(RetryPolicy::Schedule {
        waits_seconds: Vec::new(),
        jitter: false,
    });
    let trigger = Trigger {
        schema_version: hookline_schemas::SCHEMA_VERSION,
        id: id.clone(),
        name: "Hookline canary".to_owned(),
        enabled: true,
        when: When {
            sources: vec![id.clone()],
            event_type: None,
            event_types: Vec::new(),
        },
        condition: None,
        actions: vec![Action {
            destination: id,
            body: r#"{"probe": {{ payload.probe }}}"#.to_owned(),
            headers: Default::default(),
            url: None,
        }],
    };
    Ok(vec![
        Resource::Source(source),
        Resource::Destination(destination),
        Resource::Trigger(trigger),
    ])
}
