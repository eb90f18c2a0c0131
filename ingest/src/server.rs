//! Binding and serving the inbound endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use hookline_runtime::resources::ResourceStore;
use hookline_runtime::{Error, KafkaSettings, kafka};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::handler::{self, AppState};
use crate::metrics::Metrics;
use crate::{Config, ROLE};

/// Ingest, bound and ready to serve.
pub struct Ingest {
    listener: TcpListener,
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
        if config.max_body_bytes + 64 * 1024 > kafka::MAX_RECORD_BYTES {
            return Err(Error::InvalidSetting(format!(
                "--ingest-max-body-bytes is {}, but a Kafka record holds at most {} bytes with its headers; use at most {}",
                config.max_body_bytes,
                kafka::MAX_RECORD_BYTES,
                kafka::MAX_RECORD_BYTES - 64 * 1024
            )));
        }
        let mut producer_config = kafka::producer_config(settings, ROLE);
        // A request waits at most this long; the broker's answer must come within it.
        producer_config.set("message.timeout.ms", config.produce_timeout_ms.to_string());
        let producer = kafka::create_producer(&producer_config)?;
        let state = AppState {
            store,
            producer,
            topic: settings.topics().events(),
            max_body_bytes: config.max_body_bytes,
            produce_timeout: config.produce_timeout(),
            metrics: Metrics::register(registry),
        };
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(Self {
            listener,
            router: router(state),
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Serve)
    }
}

/// The inbound routes.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(
            "/inbound-webhooks/{source_id}",
            post(handler::receive).fallback(handler::method_not_allowed),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(state))
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
        let mut set = ResourceSet::default();
        set.put(source("github", true));
        set.put(source("paused", false));
        let settings = KafkaSettings::new("127.0.0.1:1");
        let producer = kafka::create_producer(&kafka::producer_config(&settings, ROLE)).unwrap();
        router(AppState {
            store: ResourceStore::fixed(set),
            producer,
            topic: "t.events".into(),
            max_body_bytes: 64,
            produce_timeout: Duration::from_millis(100),
            metrics: Metrics::register(&Registry::new()),
        })
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
        let big = format!("{{\"a\": \"{}\"}}", "x".repeat(100));
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
}
