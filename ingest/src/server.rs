//! Binding and serving the inbound endpoint.
//!
//! Served by hyper directly rather than `axum::serve`, which sets no header-read timeout: a client
//! that trickles its headers would otherwise hold a connection forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::routing::post;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::{Error, KafkaSettings, kafka};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{info, warn};

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
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
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
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(Self {
            listener,
            router: router(state, config.max_concurrent_requests),
            header_timeout: Duration::from_millis(config.header_timeout_ms),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown`, then finishes the requests in progress.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        info!(addr = %self.local_addr(), "Ingest listening.");
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
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
            let router = self.router.clone();
            let service = tower::service_fn(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    let request = request.map(axum::body::Body::new);
                    tower::ServiceExt::oneshot(router.clone(), request)
                },
            );
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client that goes away or sends garbage ends its own connection only.
                let _ = connection.await;
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
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
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use hookline_runtime::resources::ResourceSet;
    use hookline_schemas::{Resource, Source, SourceAuth};
    use tower::ServiceExt;

    use super::*;

    fn source(id: &str, enabled: bool) -> Resource {
        Resource::Source(Source {
            enabled,
            ..Source::new(
                hookline_schemas::ResourceId::parse(id).unwrap(),
                vec![SourceAuth::Bearer {
                    tokens: vec!["s3cret".into()],
                }],
            )
        })
    }

    /// A router whose producer points at a closed port: every test here is refused before
    /// anything is produced.
    fn app() -> Router {
        app_with(16, Duration::from_secs(5))
    }

    fn app_with(max_concurrent: usize, body_timeout: Duration) -> Router {
        let mut set = ResourceSet::default();
        set.put(source("github", true));
        set.put(source("paused", false));
        set.put(Resource::Source(Source {
            allowed_cidrs: vec!["192.30.252.0/22".into()],
            ..Source::new(
                hookline_schemas::ResourceId::parse("ranged").unwrap(),
                vec![SourceAuth::Open],
            )
        }));
        let settings = KafkaSettings::new("127.0.0.1:1");
        let producer = kafka::create_producer(&kafka::producer_config(&settings, ROLE)).unwrap();
        let metrics = Metrics::register(&Registry::new());
        let rejected = RejectedLog::new(
            producer.clone(),
            "t.rejected".into(),
            10,
            metrics.rejected_records.clone(),
        );
        router(
            AppState {
                store: ResourceStore::fixed(set),
                producer,
                topic: "t.events".into(),
                max_body_bytes: 1024,
                produce_timeout: Duration::from_millis(100),
                body_timeout,
                limits: RateLimits::new(crate::limits::LimitSettings::default()),
                idempotency: Idempotency::new(&Default::default()),
                rejected,
                verifiers: Default::default(),
                metrics,
            },
            max_concurrent,
        )
    }

    async fn call(request: Request<Body>) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap(), allow)
    }

    fn post(path: &str, token: Option<&str>, content_type: &str, body: &str) -> Request<Body> {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, content_type);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Body::from(body.to_owned())).unwrap()
    }

    fn code(body: &serde_json::Value) -> &str {
        body["error"]["code"].as_str().unwrap()
    }

    #[tokio::test]
    async fn unknown_sources_get_404() {
        let (status, body, _) = call(post(
            "/inbound-webhooks/nope",
            Some("s3cret"),
            "application/json",
            "{}",
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(code(&body), "source_not_found");
    }

    #[tokio::test]
    async fn disabled_sources_get_403() {
        let (status, body, _) = call(post(
            "/inbound-webhooks/paused",
            Some("s3cret"),
            "application/json",
            "{}",
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(code(&body), "source_disabled");
    }

    #[tokio::test]
    async fn missing_or_wrong_tokens_get_401() {
        for token in [None, Some("wrong")] {
            let (status, body, _) = call(post(
                "/inbound-webhooks/github",
                token,
                "application/json",
                "{}",
            ))
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
            assert_eq!(code(&body), "unauthorized");
        }
    }

    #[tokio::test]
    async fn non_json_content_types_get_415() {
        let (status, body, _) = call(post(
            "/inbound-webhooks/github",
            Some("s3cret"),
            "text/plain",
            "{}",
        ))
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(code(&body), "unsupported_media_type");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_413() {
        let big = format!("{{\"a\": \"{}\"}}", "x".repeat(2000));
        let (status, body, _) = call(post(
            "/inbound-webhooks/github",
            Some("s3cret"),
            "application/json",
            &big,
        ))
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code(&body), "payload_too_large");
    }

    #[tokio::test]
    async fn invalid_json_gets_400_with_line_and_column() {
        let (status, body, _) = call(post(
            "/inbound-webhooks/github",
            Some("s3cret"),
            "application/json",
            "{\n  \"a\": }",
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code(&body), "invalid_json");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("line 2 column"), "{message}");
    }

    #[tokio::test]
    async fn other_methods_get_405_with_allow_post() {
        let request = Request::get("/inbound-webhooks/github")
            .body(Body::empty())
            .unwrap();
        let (status, body, allow) = call(request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(code(&body), "method_not_allowed");
        assert_eq!(allow.as_deref(), Some("POST"));
    }

    #[tokio::test]
    async fn nesting_deeper_than_128_levels_gets_400() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (status, body, _) = call(post(
            "/inbound-webhooks/github",
            Some("s3cret"),
            "application/json",
            &deep,
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("recursion limit"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn clients_outside_the_source_ranges_get_403() {
        let request = post("/inbound-webhooks/ranged", None, "application/json", "{}");
        let outside = app()
            .layer(axum::extract::connect_info::MockConnectInfo(
                SocketAddr::from(([203, 0, 113, 9], 4000)),
            ))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(outside.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(outside.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("client_not_allowed"));
    }

    /// A request whose body never arrives.
    fn stalled(path: &str) -> Request<Body> {
        Request::post(path)
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::from_stream(futures::stream::pending::<
                Result<bytes::Bytes, std::io::Error>,
            >()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_gets_408() {
        let app = app_with(16, Duration::from_millis(100));
        let response = app
            .oneshot(stalled("/inbound-webhooks/github"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn requests_beyond_the_concurrency_cap_are_shed_with_503() {
        let app = app_with(1, Duration::from_secs(10));
        let holding = tokio::spawn(app.clone().oneshot(stalled("/inbound-webhooks/github")));
        // Give the first request time to take the only slot.
        tokio::task::yield_now().await;
        let mut shed = None;
        for _ in 0..100 {
            let response = app
                .clone()
                .oneshot(post(
                    "/inbound-webhooks/github",
                    Some("s3cret"),
                    "application/json",
                    "{}",
                ))
                .await
                .unwrap();
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                shed = Some(response);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let shed = shed.expect("a second request was not shed while the only slot was taken");
        assert!(shed.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(shed.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("overloaded"));
        holding.abort();
    }
}

#[cfg(test)]
mod build_tests {
    use hookline_runtime::resources::ResourceSet;

    use super::*;

    #[tokio::test]
    async fn refuses_a_body_limit_that_kafka_cannot_hold() {
        let config = Config {
            max_body_bytes: kafka::MAX_RECORD_BYTES,
            ..Config::default()
        };
        let settings = KafkaSettings::new("127.0.0.1:1");
        let store = ResourceStore::fixed(ResourceSet::default());
        let Err(error) = Ingest::build(&config, &settings, store, &Registry::new()).await else {
            panic!("a body limit as large as a record was accepted");
        };
        assert!(
            error.to_string().contains("--ingest-max-body-bytes"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_cut_off() {
        let config = Config {
            header_timeout_ms: 200,
            ..Config::default()
        };
        let settings = KafkaSettings::new("127.0.0.1:1");
        let store = ResourceStore::fixed(ResourceSet::default());
        let ingest = Ingest::build(&config, &settings, store, &Registry::new())
            .await
            .unwrap();
        let addr = ingest.local_addr();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(ingest.run(shutdown.clone()));

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"POST /inbound-webhooks/x HTTP/1.1\r\nHost: a\r\n",
        )
        .await
        .unwrap();
        // The headers never end: the server must give up on its own.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
        )
        .await;
        assert!(read.is_ok(), "the connection was still open after 10 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
