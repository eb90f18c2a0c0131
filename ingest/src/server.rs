//! Binding and serving the inbound endpoint, with the connection limits of
//! [`hookline_runtime::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::routing::post;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::serve::Listener;
use hookline_runtime::{Error, KafkaSettings, kafka};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::info;

use crate::error::IngestError;
use crate::handler::{self, AppState};
use crate::idempotency::Idempotency;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::rejected::RejectedLog;
use crate::{Config, ROLE};

/// Room for an event's headers within one Kafka record.
const HEADER_ROOM: usize = 64 * 1024;

/// Ingest, bound and ready to serve.
pub struct Ingest {
    listener: Listener,
    router: Router,
}

impl Ingest {
    /// Creates the producer and binds the listener (port 0 picks a free port).
    pub async fn build(
        config: &Config,
        settings: &KafkaSettings,
        store: ResourceStore,
        registry: &Registry,
    ) -> Result<Self, Error> {
        // An event is the body plus a few headers; keep room for them within one record.
        if config.max_body_bytes + HEADER_ROOM > kafka::MAX_RECORD_BYTES {
            return Err(Error::InvalidSetting(format!(
                "--ingest-max-body-bytes is {}, but a Kafka record holds at most {} bytes with its headers; use at most {}",
                config.max_body_bytes,
                kafka::MAX_RECORD_BYTES,
                kafka::MAX_RECORD_BYTES - HEADER_ROOM
            )));
        }
        let limits = config.connection_limits()?;
        let mut producer_config = kafka::producer_config(settings, ROLE);
        // A request waits at most this long; the broker's answer must come within it.
        producer_config.set("message.timeout.ms", config.produce_timeout_ms.to_string());
        let producer = kafka::create_producer(&producer_config)?;
        let metrics = Metrics::register(registry);
        let rejected = RejectedLog::new(
            producer.clone(),
            settings.topics().rejected(),
            config.rejected_per_second,
            metrics.rejected_records.clone(),
        );
        let state = AppState {
            store,
            producer,
            topic: settings.topics().events(),
            max_body_bytes: config.max_body_bytes,
            produce_timeout: config.produce_timeout(),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            limits: RateLimits::new(config.limits.clone()),
            idempotency: Idempotency::new(&config.idempotency),
            rejected,
            verifiers: Default::default(),
            metrics,
        };
        let listener = Listener::bind(config.addr, ROLE, limits, registry).await?;
        Ok(Self {
            listener,
            router: router(state, config.max_concurrent_requests),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, then finishes the requests in progress.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        info!(addr = %self.local_addr(), "Ingest listening.");
        self.listener.serve(self.router, shutdown).await;
        Ok(())
    }
}

/// The inbound routes, with request ids and load shedding beyond `max_concurrent` requests.
pub fn router(state: AppState, max_concurrent: usize) -> Router {
    Router::new()
        .route(
            "/inbound-webhooks/{source_id}",
            post(handler::receive).fallback(handler::method_not_allowed),
        )
        .fallback(handler::not_found)
        .with_state(Arc::new(state))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .concurrency_limit(max_concurrent.max(1)),
        )
}

async fn overloaded(_: tower::BoxError) -> axum::response::Response {
    IngestError::Overloaded.into_response()
}

#[cfg(test)]
mod tests;
