//! Binding and serving the operator's API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hookline_runtime::resources::{ResourceStore, ResourceWriter};
use hookline_runtime::serve::Listener;
use hookline_runtime::{KafkaSettings, kafka};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Config;
use crate::dead_states::DeadStates;
use crate::error::Error;
use crate::failing::Failing;
use crate::held::Held;
use crate::metrics::Metrics;
use crate::routes;
use crate::send::Sender;
use crate::state::{ApiState, History};
use crate::store::Store;
use crate::store::metrics::StoreMetrics;
use crate::store::reader::Reader;
use crate::tokens::Tokens;
use crate::write::Writes;

/// Control, bound and ready to serve.
pub struct Control {
    listener: Listener,
    router: Router,
    reader: Reader,
    history: Arc<History>,
    dead_states: Arc<DeadStates>,
    held: Arc<Held>,
    failing: Arc<Failing>,
    kafka: KafkaSettings,
}

impl Control {
    /// Binds the listener (port 0 picks a free port); writes go to the resources topic of
    /// `kafka` and are read back through `store`; the API's and the store's metrics go to
    /// `registry`. Opens the store of what happened on the logged topics; [`Self::run`] fills it.
    pub async fn build(
        config: &Config,
        kafka: &KafkaSettings,
        store: ResourceStore,
        registry: &Registry,
    ) -> Result<Self, Error> {
        let tokens = Tokens::new(&config.tokens, &config.read_tokens);
        if tokens.is_empty() {
            warn!("No control token is set (--control-token); every API request will be refused.");
        }
        // One producer for every write control makes: each has a thread that wakes up ten
        // times a second.
        let producer = kafka::create_producer(&kafka::producer_config(kafka, "control"))?;
        let writer = ResourceWriter::with_producer(kafka, producer.clone());
        let listener = Listener::bind(
            config.addr,
            "control",
            config.connection_limits()?,
            registry,
        )
        .await?;
        let location = config.store_location();
        let max_payload = config.store_max_payload_bytes;
        let database = tokio::task::spawn_blocking(move || Store::open(&location, max_payload))
            .await
            .map_err(|_| crate::store::StoreError::Panicked)??;
        let (reader, logs) = Reader::open(
            kafka,
            database,
            config.store_retention(),
            StoreMetrics::register(registry),
        )
        .await?;
        let dead_states = DeadStates::new(kafka, producer.clone(), config.write_timeout());
        let held = Held::new();
        let failing = Failing::new();
        let history = Arc::new(History {
            logs,
            sender: Sender::new(kafka, producer, config.write_timeout()),
            test_timeout: config.test_timeout(),
            max_replay: config.max_replay,
            dead_states: dead_states.clone(),
            held: held.clone(),
            failing: failing.clone(),
        });
        let router = routes::app(
            ApiState {
                writes: Arc::new(Writes::new(writer, store.clone(), config.write_timeout())),
                store,
                tokens: Arc::new(tokens),
                ingest_base: config.ingest_base().into(),
                max_body_bytes: config.max_body_bytes,
                history: history.clone(),
                metrics: Metrics::register(registry),
            },
            registry,
        );
        Ok(Self {
            listener,
            router,
            reader,
            history,
            dead_states,
            held,
            failing,
            kafka: kafka.clone(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Resolves once the store of what happened holds every record the logged topics had when
    /// control started, and the dead letters' states and held jobs are read (true), or when a
    /// reader stopped before that (false): the condition for `/readyz`, since timelines and
    /// lists answer 503 until then.
    pub fn history_ready(&self) -> impl Future<Output = bool> + Send + 'static + use<> {
        let logs = self.history.logs.when_ready();
        let states = self.dead_states.when_ready();
        let held = self.held.when_ready();
        async move { logs.await && states.await && held.await }
    }

    /// Serves and fills the store until `shutdown`; a store that fails stops control.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        info!(addr = %self.local_addr(), "Control API listening.");
        let reader = self.reader.run(shutdown.clone());
        let serve = self.listener.serve(self.router, shutdown.clone());
        let states = self.dead_states.run(self.kafka.clone(), shutdown.clone());
        let failing = self.failing.run(self.kafka.clone(), shutdown.clone());
        let held = self.held.run(self.kafka, shutdown.clone());
        tokio::select! {
            () = serve => Ok(()),
            read = failing => {
                let result = read.map_err(Error::from);
                if result.is_err() {
                    shutdown.cancel();
                }
                result
            }
            read = held => {
                let result = read.map_err(Error::from);
                if result.is_err() {
                    shutdown.cancel();
                }
                result
            }
            read = states => {
                let result = read.map_err(Error::from);
                if result.is_err() {
                    shutdown.cancel();
                }
                result
            }
            read = reader => {
                let result = read.map_err(Error::from);
                if result.is_err() {
                    shutdown.cancel();
                }
                result
            }
        }
    }
}
