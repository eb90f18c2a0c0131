//! Serving HTTP on a listener with the limits every address Hookline opens needs: a connection
//! must finish its first request head within the header timeout whatever the protocol, an idle
//! connection is closed after the idle timeout, and the listener holds at most so many
//! connections at once.
//!
//! hyper's own header-read timeout covers HTTP/1.1 only once the protocol is known: while
//! `hyper_util`'s auto builder is still reading the first bytes to tell HTTP/1.1 from HTTP/2, and
//! for HTTP/2 altogether, nothing closes a connection that sends nothing. `axum::serve` sets no
//! timeout at all. So every connection here has a watchdog that sees when its requests start and
//! end, and closes it when it has nothing to show for the time it holds a file descriptor.
//!
//! At the cap, the listener stops accepting: new connections wait in the kernel's backlog and are
//! served as soon as one closes (silent ones close within the header timeout), rather than taking
//! the descriptors that other listeners of the process, such as `/healthz`, need.

mod activity;
mod open_files;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use self::activity::{Activity, Closed};
pub use self::open_files::raise_open_file_limit;
use self::open_files::warn_if_over_file_limit;
use crate::telemetry::register;

/// Open connections, by listener.
pub const CONNECTIONS: &str = "hookline_http_connections";
/// The most connections a listener holds at once, by listener.
pub const MAX_CONNECTIONS: &str = "hookline_http_max_connections";
/// Connections closed by the server, by listener and reason.
pub const CONNECTIONS_CLOSED: &str = "hookline_http_connections_closed_total";

/// Default time a connection has to send a complete request head.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default time an open connection may stay without a request in progress.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// How long a connection asked to close (idle, or shutting down) has to finish what it is doing
/// once nothing is in progress: an HTTP/2 GOAWAY exchange, say.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often a full listener says so at most.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The limits of one listener's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time from accepting a connection to its first complete request head; the same bound
    /// applies to every later HTTP/1.1 request head.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// Limits from the millisecond settings the CLI takes; zero is refused, naming the flag.
    pub fn from_settings(
        flag_prefix: &str,
        header_timeout_ms: u64,
        idle_timeout_ms: u64,
        max_connections: usize,
    ) -> Result<Self, crate::Error> {
        for (value, flag) in [
            (header_timeout_ms, "header-timeout-ms"),
            (idle_timeout_ms, "idle-timeout-ms"),
            (max_connections as u64, "max-connections"),
        ] {
            if value == 0 {
                return Err(crate::Error::InvalidSetting(format!(
                    "--{flag_prefix}-{flag} is 0; it must be at least 1"
                )));
            }
        }
        Ok(Self {
            header_timeout: Duration::from_millis(header_timeout_ms),
            idle_timeout: Duration::from_millis(idle_timeout_ms),
            max_connections,
        })
    }
}

/// The connection metrics of one listener.
#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    open: IntGauge,
    closed: IntCounterVec,
}

impl ConnectionMetrics {
    /// Registers the metrics of the listener called `listener` (`ingest`, `control`, `admin`):
    /// a constant label, so several listeners of one process share the names.
    fn register(registry: &Registry, listener: &str, limits: &ConnectionLimits) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("listener", listener);
        let open = IntGauge::with_opts(opts(CONNECTIONS, "Open HTTP connections, by listener."))
            .expect("valid metric");
        let max = IntGauge::with_opts(opts(
            MAX_CONNECTIONS,
            "The most HTTP connections a listener holds at once; more wait to be accepted.",
        ))
        .expect("valid metric");
        max.set(i64::try_from(limits.max_connections).unwrap_or(i64::MAX));
        let closed = IntCounterVec::new(
            opts(
                CONNECTIONS_CLOSED,
                "HTTP connections the server closed, by listener and reason: header_timeout (no complete request head in time) or idle.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in [Closed::HeaderTimeout, Closed::Idle] {
            closed.with_label_values(&[reason.as_str()]);
        }
        register(registry, open.clone());
        register(registry, max);
        register(registry, closed.clone());
        Self { open, closed }
    }
}

/// A bound listener with its connection limits and metrics, ready to serve.
pub struct Listener {
    listener: TcpListener,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port) for the listener called `name` (`ingest`,
    /// `control`, `admin`), registering its connection metrics in `registry`.
    pub async fn bind(
        addr: SocketAddr,
        name: &str,
        limits: ConnectionLimits,
        registry: &Registry,
    ) -> Result<Self, crate::Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| crate::Error::Bind { addr, source })?;
        Ok(Self {
            listener,
            limits,
            metrics: ConnectionMetrics::register(registry, name, &limits),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves `router` until `shutdown`, then lets the requests in progress finish. Each request
    /// carries the client's address as `ConnectInfo<SocketAddr>`.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        serve(self.listener, router, self.limits, self.metrics, shutdown).await;
    }
}

async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    warn_if_over_file_limit(addr, &limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut last_full_log: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_full_log.is_none_or(|at| at.elapsed() >= FULL_LOG_INTERVAL) {
                    last_full_log = Some(Instant::now());
                    warn!(addr = ?addr, max_connections = limits.max_connections, "Listener holds its most connections; new ones wait to be accepted.");
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: pause instead of spinning.
                    warn!(%error, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Answers are small and latency matters more than packing segments.
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            Connection {
                stream,
                remote,
                permit,
                limits,
                metrics: metrics.clone(),
            },
            builder.clone(),
            router.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One accepted connection and what it holds.
struct Connection {
    stream: TcpStream,
    remote: SocketAddr,
    /// Its slot under the listener's cap, given back when the connection ends.
    permit: OwnedSemaphorePermit,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
}

/// Serves one connection, closing it when its watchdog says so or on shutdown.
async fn connection(
    accepted: Connection,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    shutdown: CancellationToken,
) {
    let Connection {
        stream,
        remote,
        permit,
        limits,
        metrics,
    } = accepted;
    metrics.open.inc();
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |mut request: axum::extract::Request<Incoming>| {
            let in_progress = activity.begin();
            request.extensions_mut().insert(ConnectInfo(remote));
            let request = request.map(axum::body::Body::new);
            let answer = tower::ServiceExt::oneshot(router.clone(), request);
            async move {
                let answer = answer.await;
                drop(in_progress);
                answer
            }
        })
    };
    let served = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(served);
    // Set once the connection was asked to close: when it must be gone if nothing is in progress.
    let mut closing: Option<Instant> = None;
    loop {
        // While a request is in progress there is no deadline: the watchdog waits for it to end
        // (`changed`), looking again after an idle timeout at the latest.
        let wake = closing.unwrap_or_else(|| {
            activity
                .deadline(&limits)
                .map_or_else(|| Instant::now() + limits.idle_timeout, |(at, _)| at)
        });
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    // A client that goes away or sends garbage ends its own connection only.
                    debug!(%error, %remote, "Connection ended with an error.");
                }
                break;
            }
            () = shutdown.cancelled(), if closing.is_none() => {
                served.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + CLOSE_GRACE);
            }
            // A request started or ended: the deadline that applies has changed.
            () = activity.changed.notified() => {}
            () = sleep_until(wake) => {
                if closing.is_some() {
                    if activity.in_progress() == 0 {
                        break;
                    }
                    closing = Some(Instant::now() + CLOSE_GRACE);
                    continue;
                }
                match activity.expired(&limits) {
                    None => {}
                    Some(Closed::HeaderTimeout) => {
                        metrics.closed.with_label_values(&[Closed::HeaderTimeout.as_str()]).inc();
                        debug!(%remote, "Closed a connection that sent no complete request head in time.");
                        break;
                    }
                    Some(Closed::Idle) => {
                        metrics.closed.with_label_values(&[Closed::Idle.as_str()]).inc();
                        served.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        }
    }
    metrics.open.dec();
    drop(permit);
}

#[cfg(test)]
mod tests;
