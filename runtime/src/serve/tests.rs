//! The watchdog's decisions on a paused clock, and real connections on loopback: silent, partial
//! and idle ones are closed whatever the protocol, and a full listener makes others wait.

use std::time::Duration;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::activity::{Activity, Closed};
use super::*;

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 8,
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_a_request_expires_at_the_header_timeout() {
    let activity = Activity::new();
    let limits = limits();
    assert_eq!(
        activity.deadline(&limits),
        Some((
            activity.accepted + limits.header_timeout,
            Closed::HeaderTimeout
        ))
    );
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(activity.expired(&limits), None);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(activity.expired(&limits), Some(Closed::HeaderTimeout));
}

#[tokio::test(start_paused = true)]
async fn a_request_in_progress_keeps_the_connection_then_idleness_counts_from_its_end() {
    let activity = Arc::new(Activity::new());
    let limits = limits();
    let request = activity.begin();
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(activity.expired(&limits), None, "busy, however long");
    assert_eq!(activity.deadline(&limits), None);
    drop(request);
    let done = Instant::now();
    assert_eq!(
        activity.deadline(&limits),
        Some((done + limits.idle_timeout, Closed::Idle))
    );
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(activity.expired(&limits), None);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(activity.expired(&limits), Some(Closed::Idle));
}

#[test]
fn zero_limits_are_refused_naming_the_flag() {
    let error = ConnectionLimits::from_settings("ingest", 10, 0, 5).unwrap_err();
    assert!(
        error.to_string().contains("--ingest-idle-timeout-ms is 0"),
        "{error}"
    );
    assert!(ConnectionLimits::from_settings("admin", 1, 1, 1).is_ok());
}

/// A server on a free loopback port with the given limits, answering `GET /` with `ok`.
struct Server {
    addr: SocketAddr,
    registry: Registry,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: ConnectionLimits) -> Self {
        let registry = Registry::new();
        let listener = Listener::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "test",
            limits,
            &registry,
        )
        .await
        .unwrap();
        let addr = listener.local_addr();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.serve(router, shutdown.clone()));
        Self {
            addr,
            registry,
            shutdown,
            task,
        }
    }

    fn closed(&self, reason: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == CONNECTIONS_CLOSED)
            .flat_map(|family| family.get_metric())
            .filter(|metric| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "reason" && label.value() == reason)
            })
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stopped within 10 s of shutdown")
            .unwrap();
    }
}

fn short(header_ms: u64, idle_ms: u64, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections,
    }
}

/// Reads until the server closes the connection; fails if it is still open after 10 s.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    match read {
        Ok(Ok(_)) => answer,
        // A reset is a close too.
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => answer,
        Ok(Err(error)) => panic!("reading failed: {error}"),
        Err(_) => panic!("the connection was still open after 10 s"),
    }
}

#[tokio::test]
async fn connections_that_send_nothing_or_part_of_a_preface_are_closed() {
    let server = Server::start(short(200, 60_000, 16)).await;
    let openings: [&[u8]; 4] = [
        b"",
        b"P",
        b"PRI * HTTP/2.0\r\n",
        // A whole HTTP/2 preface and an empty SETTINGS frame, then no stream.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ];
    for opening in openings {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(opening).await.unwrap();
        read_until_closed(&mut stream).await;
    }
    assert_eq!(server.closed("header_timeout"), 4);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    // A header timeout longer than the test, so only the idle timeout can close it.
    let server = Server::start(short(60_000, 200, 16)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    assert_eq!(server.closed("idle"), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(short(60_000, 200, 16)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{}/", server.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // The server sends GOAWAY once idle and closes; the client's connection task then ends.
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the HTTP/2 connection was still open after 10 s")
        .unwrap()
        .ok();
    assert_eq!(server.closed("idle"), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_full_listener_makes_new_connections_wait_until_one_closes() {
    let header_timeout = Duration::from_millis(300);
    let server = Server::start(short(300, 60_000, 2)).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The kernel completes the handshake; the server does not accept it while full.
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Served once the silent ones are closed at their header timeout, not before: without the
    // cap it would be answered at once.
    let answer = read_until_closed(&mut waiting).await;
    assert!(
        started.elapsed() >= header_timeout,
        "answered after {:?}, before a slot could free",
        started.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    for mut stream in silent {
        read_until_closed(&mut stream).await;
    }
    assert_eq!(server.closed("header_timeout"), 2);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = short(10_000, 60_000, 4);
    let metrics = ConnectionMetrics::register(&Registry::new(), "test", &limits);
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let release = Arc::new(Notify::new());
    let router = {
        let release = release.clone();
        Router::new().route(
            "/",
            get(move || {
                let entered = entered.lock().unwrap().take();
                let release = release.clone();
                async move {
                    if let Some(entered) = entered {
                        let _ = entered.send(());
                    }
                    release.notified().await;
                    "done"
                }
            }),
        )
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, router, limits, metrics, shutdown.clone()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    entered_rx.await.unwrap();
    shutdown.cancel();
    release.notify_one();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        String::from_utf8_lossy(&answer).ends_with("done"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stopped")
        .unwrap();
}
