//! The echo receiver `hookline dev` delivers to: it logs every request it gets (method, path,
//! the headers a receiver cares about, and the body) and answers 200.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Headers worth showing: what a receiver uses to route, deduplicate and verify.
const SHOWN_HEADERS: [&str; 4] = [
    "content-type",
    "webhook-id",
    "user-agent",
    "x-hookline-sample",
];

/// The echo receiver, bound.
pub struct EchoReceiver {
    listener: TcpListener,
}

impl EchoReceiver {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!("could not listen on {addr} for the echo receiver: {error}")
        })?;
        Ok(Self { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = Router::new().fallback(echo);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> &'static str {
    let shown: Vec<String> = SHOWN_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(format!("{name}: {value}"))
        })
        .collect();
    info!(
        target: "hookline::echo",
        "Echo receiver got {method} {uri} [{}]\n{}",
        shown.join(", "),
        String::from_utf8_lossy(&body)
    );
    "{\"ok\": true}"
}
