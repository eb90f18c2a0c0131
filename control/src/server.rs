//! Binding and serving the operator's API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hookline_runtime::resources::{ResourceStore, ResourceWriter};
use hookline_runtime::{Error, KafkaSettings};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Config;
use crate::api::{self, ApiState};
use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::write::Writes;

/// Control, bound and ready to serve.
pub struct Control {
    listener: TcpListener,
    router: Router,
}

impl Control {
    /// Binds the listener (port 0 picks a free port); writes go to the resources topic of
    /// `kafka` and are read back through `store`; the API's metrics go to `registry`.
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
        let writer = ResourceWriter::new(kafka, "control")?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr,
                source,
            })?;
        let router = api::router(ApiState {
            writes: Arc::new(Writes::new(writer, store.clone(), config.write_timeout())),
            store,
            tokens: Arc::new(tokens),
            ingest_base: config.ingest_base().into(),
            max_body_bytes: config.max_body_bytes,
            metrics: Metrics::register(registry),
        });
        Ok(Self { listener, router })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        info!(addr = %self.local_addr(), "Control API listening.");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Serve)
    }
}
