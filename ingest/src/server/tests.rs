//! The inbound router's answers, through `oneshot`: no socket, a producer that never connects.

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
                expires_at: None,
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
    let settings = KafkaSettings::new("127.0.0.1:1");
    let producer = kafka::create_producer(&kafka::producer_config(&settings, ROLE)).unwrap();
    let state = AppState {
        body_timeout,
        ..app_state(producer, "t")
    };
    router(state, max_concurrent)
}

/// The state of a router over the test sources, producing with `producer` to topics named
/// `<prefix>.events` and `<prefix>.rejected`, with the default limits on the monotonic clock.
fn app_state(producer: rdkafka::producer::FutureProducer, prefix: &str) -> AppState {
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
    let metrics = Metrics::register(&Registry::new());
    let rejected = RejectedLog::new(
        producer.clone(),
        format!("{prefix}.rejected"),
        10,
        metrics.rejected_records.clone(),
    );
    AppState {
        store: ResourceStore::fixed(set),
        producer,
        topic: format!("{prefix}.events"),
        max_body_bytes: 1024,
        produce_timeout: Duration::from_millis(100),
        body_timeout: Duration::from_secs(5),
        limits: RateLimits::new(crate::limits::LimitSettings::default()),
        idempotency: Idempotency::new(&Default::default()),
        rejected,
        verifiers: Default::default(),
        metrics,
    }
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
async fn nesting_is_accepted_to_127_levels_and_refused_at_128() {
    for (depth, refused) in [(127, false), (128, true)] {
        for deep in [
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
        ] {
            let (status, body, _) = call(post(
                "/inbound-webhooks/github",
                Some("s3cret"),
                "application/json",
                &deep,
            ))
            .await;
            if refused {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{depth}: {body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("recursion limit"), "{message}");
            } else {
                // Past every check: only the broker, which this router cannot reach, refuses it.
                assert_eq!(code(&body), "broker_unavailable", "{depth}: {body}");
            }
        }
    }
}

/// The whole answer: status, headers and the JSON body (which every answer must have).
async fn answer(request: Request<Body>) -> (StatusCode, header::HeaderMap, serde_json::Value) {
    let response = app().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or_else(|error| {
        panic!(
            "{} answered a body that is not JSON ({error}): {:?}",
            parts.status,
            String::from_utf8_lossy(&body)
        )
    });
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn unrouted_paths_and_undecodable_ids_get_the_json_error_with_a_request_id() {
    for (method, path, status, expected) in [
        ("POST", "/inbound-webhooks/github/", 404, "not_found"),
        ("POST", "/inbound-webhooks", 404, "not_found"),
        ("GET", "/", 404, "not_found"),
        ("POST", "/inbound-webhooks/%ff", 404, "source_not_found"),
        ("POST", "/inbound-webhooks/%E2%82", 404, "source_not_found"),
        ("PUT", "/inbound-webhooks/%ff", 405, "method_not_allowed"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (answered, headers, body) = answer(request).await;
        assert_eq!(answered.as_u16(), status, "{method} {path}: {body}");
        assert_eq!(code(&body), expected, "{method} {path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(
            headers.contains_key("x-request-id"),
            "{method} {path} has no x-request-id"
        );
    }
}

fn compressed(encoding: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/inbound-webhooks/github")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, encoding)
        .body(Body::from(body))
        .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_zstd_bodies_are_decoded_before_the_checks() {
    let json = br#"{"compressed": true}"#;
    let zstd = zstd::stream::encode_all(&json[..], 3).unwrap();
    for (encoding, body) in [("gzip", gzip(json)), ("zstd", zstd)] {
        let (_, _, body) = answer(compressed(encoding, body)).await;
        // Decoded, authenticated and valid JSON: only the unreachable broker refuses it.
        assert_eq!(code(&body), "broker_unavailable", "{encoding}: {body}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_in_its_declared_encoding_gets_400() {
    let (status, _, body) = answer(compressed("gzip", b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_encoding");
}

#[tokio::test]
async fn other_encodings_get_415() {
    for encoding in ["br", "deflate", "gzip, br"] {
        let (status, _, body) = answer(compressed(encoding, b"{}".to_vec())).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{encoding}");
        assert_eq!(code(&body), "unsupported_encoding", "{encoding}");
    }
}

#[tokio::test]
async fn a_decompression_bomb_gets_413() {
    // 16 MiB of spaces inside a JSON string: within the test's 1 KiB limit on the wire, so only
    // the limit on the decoded body can refuse it.
    let mut bomb = b"{\"a\": \"".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 16 << 20));
    bomb.extend(b"\"}");
    let body = zstd::stream::encode_all(&bomb[..], 19).unwrap();
    assert!(
        body.len() < 1024,
        "the bomb is {} bytes on the wire",
        body.len()
    );
    let (status, _, answer) = answer(compressed("zstd", body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&answer), "payload_too_large");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_without_reading_the_body() {
    // The body never arrives, and the body timeout is far longer than the test's bound: only
    // the declared length can have refused it.
    let app = app_with(16, Duration::from_secs(3600));
    let mut request = stalled("/inbound-webhooks/github");
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, "2048".parse().unwrap());
    let response = tokio::time::timeout(Duration::from_secs(10), app.oneshot(request))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
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

#[tokio::test]
async fn of_150_requests_in_a_minute_to_a_100_per_minute_source_100_get_202_and_50_get_429() {
    // A broker that acknowledges, so admitted requests get their 202; the limiter's clock moves
    // by hand (400 ms between requests: 0 s .. 59.6 s), the broker's does not need to.
    let kafka = hookline_runtime::embedded::EmbeddedKafka::start(1).unwrap();
    let settings = kafka.settings("limits.");
    kafka.create_topics(&settings).unwrap();
    let producer = kafka::create_producer(&kafka::producer_config(&settings, ROLE)).unwrap();
    let clock = crate::limits::tests::ManualClock::new();
    let state = AppState {
        produce_timeout: Duration::from_secs(10),
        limits: RateLimits::with_clock(crate::limits::LimitSettings::default(), clock.now()),
        ..app_state(producer, "limits")
    };
    let app = router(state, 16);
    let (mut accepted, mut retry_after) = (0, Vec::new());
    for seq in 0..150 {
        let request = post(
            "/inbound-webhooks/github",
            Some("s3cret"),
            "application/json",
            &format!("{{\"seq\": {seq}}}"),
        );
        let response = app.clone().oneshot(request).await.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => retry_after.push(
                response.headers()[header::RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            ),
            status => panic!("request {seq}: {status}"),
        }
        clock.advance(Duration::from_millis(400));
    }
    assert_eq!((accepted, retry_after.len()), (100, 50));
    // Refused from 40 s on; each `Retry-After` names the whole second at or after 60 s, when
    // the request at 0 s leaves the window: 20.001 s at 40 s, ... 0.401 s at 59.6 s.
    assert_eq!(retry_after.first(), Some(&21));
    assert_eq!(retry_after.last(), Some(&1));
    for (index, seconds) in retry_after.iter().enumerate() {
        let at_ms = 40_000 + 400 * index as u64;
        assert_eq!(*seconds, (60_001 - at_ms).div_ceil(1000), "at {at_ms} ms");
    }
}
