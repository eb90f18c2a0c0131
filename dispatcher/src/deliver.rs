//! One HTTP attempt: build the request from the job and its destination (signed when the
//! destination has secrets), check its target against the SSRF guard, send it under one deadline
//! that covers a slow body too, and read at most a capped part of the answer.
//!
//! A user and password in the URL (`https://user:pass@host/`) are sent as `Authorization: Basic`,
//! as curl and reqwest send them, unless the destination or job sets `Authorization` itself; the
//! userinfo never goes on the wire, where HTTP/1.1 has no place for it and HTTP/2 forbids it in
//! `:authority` (RFC 9113, section 8.3.1).

use std::error::Error as StdError;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hookline_schemas::headers::is_reserved;
use hookline_schemas::{DeliveryJob, Destination};
use http::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use time::OffsetDateTime;
use url::Url;

use crate::guard::{self, Connector, Guard};
use crate::retry::Outcome;
use crate::sign::{self, Signer};

/// What one attempt came to, with what the attempt record needs.
#[derive(Debug)]
pub struct Attempt {
    /// For the retry decision.
    pub outcome: Outcome,
    /// When the request started.
    pub started_at: OffsetDateTime,
    /// Request start to the end of the (capped) answer.
    pub latency: Duration,
    /// The start of the answer's body.
    pub response_body: Option<String>,
    /// Why it failed, in words.
    pub error: Option<String>,
}

/// How many times one attempt is sent again after an HTTP/2 server refused it unprocessed.
const REFUSED_RETRIES: u32 = 2;

/// The `user-agent` of every request unless the destination or job sets one.
const USER_AGENT_VALUE: &str = concat!("Hookline/", env!("CARGO_PKG_VERSION"));

/// Sends attempts over a pooled HTTP/1.1 and HTTP/2 client.
///
/// The client is hyper's own pooled client, not `reqwest` on top of it: a request waiting on a
/// slow HTTP/1.1 receiver holds about 18 KB in it against 24 KB in `reqwest`, and that is most
/// of what a delivery in flight costs (with 10,000 in flight the dispatcher went from 333 to
/// 272 MB; bench/README.md).
#[derive(Clone, Debug)]
pub struct Deliverer {
    client: Client<Connector, Full<Bytes>>,
    guard: Guard,
    body_cap: usize,
}

impl Deliverer {
    /// A client that connects only where `guard` allows, speaks TLS with `tls`, follows no
    /// redirects (a redirect is an answer, and following one could lead anywhere) and reads at
    /// most `body_cap` bytes of an answer.
    pub fn new(guard: Guard, tls: rustls::ClientConfig, body_cap: usize) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(guard::connector(&guard, tls));
        Self {
            client,
            guard,
            body_cap,
        }
    }

    /// Sends `job` to `destination` within `deadline`.
    pub async fn attempt(
        &self,
        job: &DeliveryJob,
        destination: &Destination,
        deadline: Duration,
    ) -> Attempt {
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let request = match self.request(job, destination) {
            Ok(request) => request,
            Err((outcome, error)) => {
                return Attempt {
                    outcome,
                    started_at,
                    latency: clock.elapsed(),
                    response_body: None,
                    error: Some(error),
                };
            }
        };
        let exchange = async {
            let mut request = request;
            let mut refused = 0;
            let response = loop {
                match self.client.request(request).await {
                    // Not processed, by the server's own word: safe to send again, at once.
                    Err(error) if refused < REFUSED_RETRIES && refused_unprocessed(&error) => {
                        refused += 1;
                        // It was built once already, so it builds again.
                        request = self.request(job, destination).map_err(|(_, error)| error)?;
                    }
                    result => break result?,
                }
            };
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(parse_retry_after);
            let mut incoming = response.into_body();
            let mut body = Vec::new();
            while body.len() < self.body_cap {
                match incoming.frame().await.transpose()? {
                    // Trailers carry nothing the record keeps.
                    Some(frame) => {
                        if let Some(chunk) = frame.data_ref() {
                            body.extend_from_slice(chunk);
                        }
                    }
                    None => break,
                }
            }
            body.truncate(self.body_cap);
            Ok::<_, Box<dyn StdError + Send + Sync>>((code, retry_after, body))
        };
        let (outcome, response_body, error) = match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok((code, retry_after, body))) => (
                Outcome::Status { code, retry_after },
                Some(String::from_utf8_lossy(&body).into_owned()),
                (!(200..300).contains(&code)).then(|| format!("receiver answered {code}")),
            ),
            Ok(Err(error)) if guard::blocked_in(&*error).is_some() => {
                (Outcome::Blocked, None, Some(describe(&*error)))
            }
            Ok(Err(error)) if timed_out(&*error) => {
                (Outcome::Timeout, None, Some(describe(&*error)))
            }
            Ok(Err(error)) => (Outcome::Connect, None, Some(describe(&*error))),
            Err(_elapsed) => (
                Outcome::Timeout,
                None,
                Some(format!(
                    "no complete answer within {} ms",
                    deadline.as_millis()
                )),
            ),
        };
        Attempt {
            outcome,
            started_at,
            latency: clock.elapsed(),
            response_body,
            error,
        }
    }

    fn request(
        &self,
        job: &DeliveryJob,
        destination: &Destination,
    ) -> Result<Request<Full<Bytes>>, (Outcome, String)> {
        let invalid = |error: String| (Outcome::InvalidRequest, error);
        let method = Method::from_bytes(job.method.as_bytes())
            .map_err(|_| invalid(format!("invalid method {:?}", job.method)))?;
        let mut url =
            Url::parse(&job.url).map_err(|error| invalid(format!("invalid URL: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "unsupported URL scheme {:?}",
                url.scheme()
            )));
        }
        // IP literals never reach the guard's resolver, so they are judged here.
        self.guard
            .check_url(&url)
            .map_err(|blocked| (Outcome::Blocked, blocked.to_string()))?;
        let basic = basic_credentials(&url);
        if basic.is_some() {
            url.set_username("")
                .and_then(|()| url.set_password(None))
                .map_err(|()| invalid("URL userinfo cannot be removed".to_owned()))?;
        }
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|error| invalid(format!("invalid URL: {error}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // The destination's static headers first; the trigger's rendered headers are more
        // specific and win.
        for (name, value) in destination.headers.iter().chain(&job.headers) {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            // Validation refuses these in resources; a job written straight to Kafka may still
            // carry one, and the dispatcher's own value must win.
            if is_reserved(name.as_str()) {
                continue;
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value for header {name}")))?;
            headers.insert(name, value);
        }
        // An explicit header wins, as it does in curl and reqwest: it is the more deliberate.
        if let Some(credentials) = basic
            && !headers.contains_key(AUTHORIZATION)
        {
            let mut value =
                HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
                    .map_err(|_| invalid("Basic credentials are not a header value".to_owned()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        // The delivery id, the same on every attempt and every re-run, lets receivers
        // deduplicate (Standard Webhooks names it `webhook-id`).
        let id = HeaderValue::from_str(&job.delivery_id)
            .map_err(|_| invalid(format!("invalid delivery id {:?}", job.delivery_id)))?;
        headers.insert(HeaderName::from_static(sign::WEBHOOK_ID), id);
        if !destination.secrets.is_empty() {
            let signer = Signer::new(&destination.secrets).map_err(invalid)?;
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            let signature = signer.signature(&job.delivery_id, timestamp, job.body.as_bytes());
            headers.insert(
                HeaderName::from_static(sign::WEBHOOK_TIMESTAMP),
                HeaderValue::from(timestamp),
            );
            headers.insert(
                HeaderName::from_static(sign::WEBHOOK_SIGNATURE),
                HeaderValue::from_str(&signature)
                    .map_err(|_| invalid("signature is not a header value".to_owned()))?,
            );
        }
        let mut request = Request::new(Full::new(Bytes::from(job.body.clone())));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// The `user:password` of Basic auth (RFC 7617) from `url`'s userinfo, percent-decoded; a user
/// alone has an empty password. None without userinfo.
fn basic_credentials(url: &Url) -> Option<Vec<u8>> {
    let password = url.password();
    if url.username().is_empty() && password.is_none() {
        return None;
    }
    let mut credentials = percent_decode(url.username());
    credentials.push(b':');
    credentials.extend(percent_decode(password.unwrap_or_default()));
    Some(credentials)
}

/// `text` with every `%XX` replaced by its byte; a `%` without two hex digits after it stays.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let hex = |at: usize| {
        bytes
            .get(at)
            .and_then(|byte| char::from(*byte).to_digit(16))
            .and_then(|digit| u8::try_from(digit).ok())
    };
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match (byte, hex(at + 1), hex(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(high * 16 + low);
                at += 3;
            }
            _ => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    decoded
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Whether an HTTP/2 server said it did not process the request (RFC 9113, section 8.7): it
/// refused the stream, or was closing the connection gracefully when the request came. nginx,
/// for one, closes an HTTP/2 connection this way after a number of requests.
fn refused_unprocessed(error: &(dyn StdError + 'static)) -> bool {
    guard::chain(error)
        .find_map(|error| error.downcast_ref::<h2::Error>())
        .is_some_and(|h2| {
            h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)))
        })
}

/// Whether the system gave up on the connection (a connect or read that timed out), as
/// opposed to the attempt's own deadline, which is judged around the exchange.
fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    guard::chain(error)
        .find_map(|error| error.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// The error with its causes, which say what actually failed (refused, reset, DNS).
fn describe(error: &(dyn StdError + 'static)) -> String {
    guard::chain(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
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
}
