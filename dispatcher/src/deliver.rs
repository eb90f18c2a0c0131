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
use percent_encoding::percent_decode_str;
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
    // A `%` without two hex digits after it stays as written, as in browsers and curl.
    let mut credentials: Vec<u8> = percent_decode_str(url.username()).collect();
    credentials.push(b':');
    credentials.extend(percent_decode_str(password.unwrap_or_default()));
    Some(credentials)
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
mod tests;
