//! Requests as receivers see them, over loopback: headers, signatures, Basic auth from URLs,
//! refused streams and timeouts.

use hookline_schemas::ResourceId;
use hookline_schemas::headers::RESERVED_HEADERS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;

/// A receiver on loopback that answers every connection with `head` and then `body_chunk`
/// again and again, for as long as the client reads.
async fn endless_receiver(head: &'static str, body_chunk: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                while !body_chunk.is_empty() && socket.write_all(body_chunk).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}/hook")
}

/// One chunk of a chunked body: 16 bytes.
const CHUNK: &[u8] = b"10\r\n0123456789abcdef\r\n";

fn job_to(url: &str) -> (DeliveryJob, Destination) {
    let id = ResourceId::parse("d").unwrap();
    let job = DeliveryJob {
        schema_version: 1,
        delivery_id: "msg_test".into(),
        event_id: "e".into(),
        source_id: ResourceId::parse("s").unwrap(),
        trigger_id: ResourceId::parse("t").unwrap(),
        action: 0,
        destination_id: id.clone(),
        attempt: 1,
        method: "POST".into(),
        url: url.into(),
        headers: [
            ("webhook-id".to_owned(), "forged".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ]
        .into(),
        body: "{}".into(),
        received_at: "2026-11-23T00:00:00Z".into(),
        not_before: None,
    };
    (job, Destination::new(id, url))
}

fn loopback_deliverer(cap: usize) -> Deliverer {
    Deliverer::new(
        Guard::new(crate::config::loopback()),
        guard::tls_config(Vec::new()).unwrap(),
        cap,
    )
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_cap() {
    let url = endless_receiver(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        CHUNK,
    )
    .await;
    let (job, destination) = job_to(&url);
    let attempt = loopback_deliverer(4096)
        .attempt(&job, &destination, Duration::from_secs(10))
        .await;
    assert_eq!(
        attempt.outcome,
        Outcome::Status {
            code: 200,
            retry_after: None
        }
    );
    let body = attempt.response_body.unwrap();
    assert_eq!(body.len(), 4096, "cut at the cap");
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let url = endless_receiver(
        "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\n\r\n",
        b"",
    )
    .await;
    let (job, destination) = job_to(&url);
    let attempt = loopback_deliverer(4096)
        .attempt(&job, &destination, Duration::from_secs(10))
        .await;
    assert_eq!(
        attempt.outcome,
        Outcome::Status {
            code: 302,
            retry_after: None
        }
    );
}

#[tokio::test]
async fn ip_literals_are_judged_before_sending() {
    for url in [
        "http://127.0.0.1:9/hook",
        "http://2130706433:9/hook",
        "http://0x7f.1:9/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        let (job, destination) = job_to(url);
        let attempt = Deliverer::new(
            Guard::default(),
            guard::tls_config(Vec::new()).unwrap(),
            1024,
        )
        .attempt(&job, &destination, Duration::from_secs(10))
        .await;
        assert_eq!(attempt.outcome, Outcome::Blocked, "{url}");
    }
}

#[test]
fn signing_headers_cannot_be_forged_by_a_job() {
    let (job, mut destination) = job_to("http://127.0.0.1:9/hook");
    destination.secrets = vec!["whsec_aGVsbG8td29ybGQtc2VjcmV0".to_owned()];
    let request = loopback_deliverer(1024)
        .request(&job, &destination)
        .unwrap();
    let headers = request.headers();
    assert_eq!(headers[sign::WEBHOOK_ID], "msg_test");
    assert!(
        headers[sign::WEBHOOK_SIGNATURE]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert_eq!(headers["content-type"], "application/json");
}

#[test]
fn every_header_the_dispatcher_signs_with_is_reserved() {
    for name in [
        sign::WEBHOOK_ID,
        sign::WEBHOOK_TIMESTAMP,
        sign::WEBHOOK_SIGNATURE,
    ] {
        assert!(is_reserved(name), "{name}");
    }
}

#[test]
fn reserved_headers_of_a_destination_or_job_are_dropped() {
    let (mut job, mut destination) = job_to("http://127.0.0.1:9/hook");
    for name in RESERVED_HEADERS {
        destination
            .headers
            .insert(name.to_ascii_uppercase(), "1".to_owned());
        job.headers.insert(name.to_owned(), "1".to_owned());
    }
    let request = loopback_deliverer(1024)
        .request(&job, &destination)
        .unwrap();
    for name in RESERVED_HEADERS {
        let sent = request.headers().get(name);
        match name {
            sign::WEBHOOK_ID => assert_eq!(sent.unwrap(), "msg_test"),
            _ => assert_eq!(sent, None, "{name}"),
        }
    }
}

/// A receiver on loopback that answers one request with 204 and hands over its head (the
/// request line and headers) as it came over the wire.
async fn capturing_receiver() -> (String, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        let _ = socket.write_all(answer).await;
        let _ = sender.send(String::from_utf8_lossy(&head).into_owned());
    });
    (addr.to_string(), received)
}

/// The values of header `name` in a captured head.
fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .collect()
}

#[tokio::test]
async fn a_url_password_is_sent_as_basic_auth_and_never_on_the_wire() {
    let (addr, received) = capturing_receiver().await;
    let (job, destination) = job_to(&format!("http://user%40corp:p%3Ass%20w@{addr}/hook"));
    let attempt = loopback_deliverer(1024)
        .attempt(&job, &destination, Duration::from_secs(10))
        .await;
    assert_eq!(
        attempt.outcome,
        Outcome::Status {
            code: 204,
            retry_after: None
        },
        "{:?}",
        attempt.error
    );
    let head = received.await.unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    // base64("user@corp:p:ss w"), decoded from the URL's percent-encoding.
    assert_eq!(
        header_values(&head, "authorization"),
        ["Basic dXNlckBjb3JwOnA6c3Mgdw=="]
    );
    assert_eq!(header_values(&head, "host"), [addr.as_str()]);
    assert!(!head.contains('@'), "{head}");
}

#[tokio::test]
async fn an_explicit_authorization_header_wins_over_a_url_password() {
    let (addr, received) = capturing_receiver().await;
    let (job, mut destination) = job_to(&format!("http://user:pass@{addr}/hook"));
    destination
        .headers
        .insert("Authorization".to_owned(), "Bearer receiver-key".to_owned());
    let attempt = loopback_deliverer(1024)
        .attempt(&job, &destination, Duration::from_secs(10))
        .await;
    assert_eq!(attempt.error, None);
    let head = received.await.unwrap();
    assert_eq!(
        header_values(&head, "authorization"),
        ["Bearer receiver-key"]
    );
    assert!(!head.contains('@'), "{head}");
    // A job's rendered header is as explicit.
    let (mut job, destination) = job_to("http://user:pass@127.0.0.1:9/hook");
    job.headers
        .insert("authorization".to_owned(), "Bearer job-key".to_owned());
    let request = loopback_deliverer(1024)
        .request(&job, &destination)
        .unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer job-key");
}

#[test]
fn the_uri_sent_has_no_userinfo_so_neither_has_an_http2_authority() {
    for (url, basic) in [
        ("http://tok_abc@127.0.0.1:9/hook?x=1", "Basic dG9rX2FiYzo="),
        ("http://:p%zz@127.0.0.1:9/hook?x=1", "Basic OnAleno="),
    ] {
        let (job, destination) = job_to(url);
        let request = loopback_deliverer(1024)
            .request(&job, &destination)
            .unwrap();
        // hyper's HTTP/2 client takes `:authority` from the URI.
        assert_eq!(
            request.uri().authority().unwrap().as_str(),
            "127.0.0.1:9",
            "{url}"
        );
        assert_eq!(request.uri().to_string(), "http://127.0.0.1:9/hook?x=1");
        assert_eq!(request.headers()[AUTHORIZATION], basic, "{url}");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
    }
    let (job, destination) = job_to("http://127.0.0.1:9/hook");
    let request = loopback_deliverer(1024)
        .request(&job, &destination)
        .unwrap();
    assert_eq!(request.headers().get(AUTHORIZATION), None);
}

#[test]
fn only_the_servers_own_refusal_is_sent_again() {
    // Our own resets and I/O failures say nothing about what the server processed. (A
    // server's refusal comes off the wire: tests/tls.rs has a server send one.)
    let local = h2::Error::from(h2::Reason::REFUSED_STREAM);
    assert!(!refused_unprocessed(&local));
    let going_away = h2::Error::from(h2::Reason::NO_ERROR);
    assert!(!refused_unprocessed(&going_away));
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert!(!refused_unprocessed(&reset));
}

#[test]
fn retry_after_takes_seconds_or_a_date() {
    let seconds = HeaderValue::from_static("120");
    assert_eq!(parse_retry_after(&seconds), Some(Duration::from_secs(120)));
    let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
    let wait = parse_retry_after(&HeaderValue::from_str(&future).unwrap()).unwrap();
    assert!(
        wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
    assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
}
