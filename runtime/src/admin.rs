//! The admin endpoints every process serves on its admin address: `/metrics` (Prometheus text),
//! `/healthz` (the process runs) and `/readyz` (every component is ready for traffic).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::serve::{ConnectionLimits, Listener};

/// The components a process waits for before it reports ready. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<Check>>>,
}

/// A component's name and whether it is ready.
type Check = (String, Arc<AtomicBool>);

/// One component's readiness, set by the component.
#[derive(Clone, Debug)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// Marks the component ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

impl Readiness {
    /// Adds a component that starts not ready.
    pub fn register(&self, name: &str) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().push((name.to_owned(), flag.clone()));
        ReadyFlag(flag)
    }

    /// The components that are not ready yet; empty means ready.
    pub fn not_ready(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, flag)| !flag.load(Ordering::Acquire))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Check>> {
        // The list is only pushed to; a panic elsewhere cannot leave it inconsistent.
        self.checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Registry,
    readiness: Readiness,
}

/// The admin server, bound and ready to run.
pub struct AdminServer {
    listener: Listener,
    router: Router,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port), with its own connection limits so that
    /// `/healthz` answers while another listener of the process is full.
    pub async fn bind(
        addr: SocketAddr,
        limits: ConnectionLimits,
        registry: Registry,
        readiness: Readiness,
    ) -> Result<Self, Error> {
        let listener = Listener::bind(addr, "admin", limits, &registry).await?;
        Ok(Self {
            listener,
            router: router(registry, readiness),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        self.listener.serve(self.router, shutdown).await;
        Ok(())
    }
}

/// The admin routes, for serving or for testing without a socket.
pub fn router(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AdminState {
            registry,
            readiness,
        })
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn ready(State(state): State<AdminState>) -> Response {
    let waiting = state.readiness.not_ready();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}\n", waiting.join(", ")),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_waits_for_every_component() {
        let readiness = Readiness::default();
        let resources = readiness.register("resources");
        let router = router(Registry::new(), readiness);
        let (status, body) = get(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("resources"), "{body}");
        resources.set(true);
        assert_eq!(get(router, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let registry = Registry::new();
        let counter =
            prometheus::IntCounter::new("hookline_test_total", "A test counter.").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let (status, body) = get(router(registry, Readiness::default()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("hookline_test_total 1"), "{body}");
    }
}
