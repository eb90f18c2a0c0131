//! Property tests of the inbound router: random methods, paths, headers and bodies (compression
//! bombs among them) never panic, never allocate without bound, and always get a documented
//! answer: the JSON error with a stable code, or 202, and an `x-request-id`.
//!
//! A counting global allocator records the peak of the heap Rust code holds, so "bounded memory"
//! is measured rather than assumed. It is this test binary's own allocator, nothing else's; what
//! C libraries allocate themselves (librdkafka, zstd's window) is not in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::io::Write;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use cap::Cap;
use hookline_ingest::handler::AppState;
use hookline_ingest::idempotency::Idempotency;
use hookline_ingest::limits::{LimitSettings, RateLimits};
use hookline_ingest::metrics::Metrics;
use hookline_ingest::rejected::RejectedLog;
use hookline_runtime::KafkaSettings;
use hookline_runtime::kafka;
use hookline_runtime::resources::{ResourceSet, ResourceStore};
use hookline_schemas::{Resource, ResourceId, Source, SourceAuth};
use prometheus::Registry;
use proptest::prelude::*;
use tower::ServiceExt;

/// The system allocator, counting the bytes Rust code holds; `max_allocated` is the peak.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// The body limit of the router under test.
const LIMIT: usize = 64 * 1024;

/// The most the heap may ever hold during the test: a few bodies at the limit and the test's
/// own state. One decompression bomb inflated in full would be 32 MiB.
const PEAK_ALLOWED: usize = 8 << 20;

/// Every status ingest documents, and every error code.
const STATUSES: [u16; 11] = [202, 400, 401, 403, 404, 405, 408, 413, 415, 429, 503];
const CODES: [&str; 17] = [
    "source_not_found",
    "not_found",
    "unsupported_encoding",
    "invalid_encoding",
    "source_disabled",
    "unauthorized",
    "unsupported_media_type",
    "payload_too_large",
    "body_unreadable",
    "invalid_json",
    "method_not_allowed",
    "client_not_allowed",
    "rate_limited",
    "body_timeout",
    "overloaded",
    "not_ready",
    "broker_unavailable",
];

/// One router for every case, as ingest has one for every request.
static ROUTER: LazyLock<Router> = LazyLock::new(router);

fn router() -> Router {
    let mut set = ResourceSet::default();
    for (id, auth) in [
        (
            "app",
            SourceAuth::Bearer {
                tokens: vec!["s3cret".into()],
                expires_at: None,
            },
        ),
        ("open", SourceAuth::Open),
    ] {
        set.put(Resource::Source(Source::new(
            ResourceId::parse(id).unwrap(),
            vec![auth],
        )));
    }
    let settings = KafkaSettings::new("127.0.0.1:1");
    let mut config = kafka::producer_config(&settings, hookline_ingest::ROLE);
    // The broker is never there: let librdkafka give up on an accepted event at once.
    config.set("message.timeout.ms", "20");
    let producer = kafka::create_producer(&config).unwrap();
    let metrics = Metrics::register(&Registry::new());
    let rejected = RejectedLog::new(
        producer.clone(),
        "t.rejected".into(),
        10,
        metrics.rejected_records.clone(),
    );
    hookline_ingest::server::router(
        AppState {
            store: ResourceStore::fixed(set),
            producer,
            topic: "t.events".into(),
            max_body_bytes: LIMIT,
            // The producer never connects: an accepted event costs this wait, then 503.
            produce_timeout: Duration::from_millis(20),
            body_timeout: Duration::from_secs(5),
            limits: RateLimits::new(LimitSettings::default()),
            idempotency: Idempotency::new(&Default::default()),
            rejected,
            verifiers: Default::default(),
            metrics,
        },
        64,
    )
}

/// Compressed bodies that inflate far beyond the limit, made once.
/// Compressed bodies that inflate far beyond the limit, made once and in pieces, so that making
/// them does not raise the heap's peak.
static BOMBS: LazyLock<Vec<(&'static str, Vec<u8>)>> = LazyLock::new(|| {
    fn inflated(out: &mut impl Write) {
        let spaces = [b' '; 64 * 1024];
        out.write_all(b"{\"a\": \"").unwrap();
        for _ in 0..512 {
            out.write_all(&spaces).unwrap();
        }
        out.write_all(b"\"}").unwrap();
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    inflated(&mut gzip);
    let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    inflated(&mut zstd);
    vec![
        ("gzip", gzip.finish().unwrap()),
        ("zstd", zstd.finish().unwrap()),
    ]
});

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("POST".to_owned()),
        1 => prop::sample::select(vec!["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]).prop_map(str::to_owned),
        1 => "[A-Z]{1,10}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("app".to_owned()),
        Just("open".to_owned()),
        "[a-z0-9_.-]{0,20}",
        // Percent escapes, valid UTF-8 or not.
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|bytes| bytes
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()),
    ];
    prop_oneof![
        4 => (segment.clone(), prop::bool::ANY).prop_map(|(id, slash)| format!(
            "/inbound-webhooks/{id}{}",
            if slash { "/" } else { "" }
        )),
        1 => prop::collection::vec(segment, 0..4).prop_map(|segments| format!("/{}", segments.join("/"))),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        Just("application/json".to_owned()),
        Just("Bearer s3cret".to_owned()),
        Just("gzip".to_owned()),
        Just("zstd".to_owned()),
        Just("gzip, zstd".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("-1".to_owned()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "content-type",
            "content-encoding",
            "content-length",
            "authorization",
            "idempotency-key",
            "x-request-id",
            "x-webhook-secret",
        ])
        .prop_map(str::to_owned),
        "x-[a-z]{1,12}",
    ];
    prop::collection::vec((name, header_value()), 0..6)
}

#[derive(Debug, Clone)]
enum BodyKind {
    Bytes(Vec<u8>),
    Json(String),
    Bomb(usize),
}

fn body() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(BodyKind::Bytes),
        2 => "\\{\"[a-z]{1,8}\": [0-9]{1,6}\\}".prop_map(BodyKind::Json),
        1 => (0..2usize).prop_map(BodyKind::Bomb),
    ]
}

/// Builds the request; `None` when `http` refuses a generated part (not ingest's concern).
fn request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &BodyKind,
) -> Option<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(path);
    let bytes = match body {
        BodyKind::Bytes(bytes) => bytes.clone(),
        BodyKind::Json(text) => text.clone().into_bytes(),
        BodyKind::Bomb(index) => {
            let (encoding, bomb) = &BOMBS[*index];
            builder = builder
                .header(header::CONTENT_ENCODING, *encoding)
                .header(header::AUTHORIZATION, "Bearer s3cret");
            bomb.clone()
        }
    };
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(bytes)).ok()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_request_gets_a_documented_answer_within_bounded_memory(
        method in method(),
        path in path(),
        headers in headers(),
        body in body(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Some(request) = request(&method, &path, &headers, &body) else {
            return Ok(());
        };
        let response = runtime.block_on(ROUTER.clone().oneshot(request)).unwrap();
        let status = response.status().as_u16();
        prop_assert!(STATUSES.contains(&status), "{method} {path}: undocumented status {status}");
        prop_assert!(response.headers().contains_key("x-request-id"), "{method} {path}: no x-request-id");
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        if method == "HEAD" {
            // An answer to HEAD has no body, by definition.
            prop_assert!(bytes.is_empty());
            return Ok(());
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
            TestCaseError::fail(format!(
                "{method} {path}: {status} with a body that is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        if status == 202 {
            prop_assert!(json["id"].is_string(), "{json}");
        } else {
            let code = json["error"]["code"].as_str().unwrap_or_default();
            prop_assert!(CODES.contains(&code), "{method} {path}: undocumented code {json}");
            prop_assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
        }
        if matches!(body, BodyKind::Bomb(_)) && path == "/inbound-webhooks/app" && method == "POST" {
            prop_assert!(status != 202, "a bomb was accepted: {json}");
        }
        let peak = ALLOCATOR.max_allocated();
        prop_assert!(peak <= PEAK_ALLOWED, "the heap held {peak} bytes at its peak");
    }
}
