//! One HTTP attempt: build the request from the job and its destination, send it under one
//! deadline that covers a slow body too, and read at most a capped part of the answer.

use std::time::{Duration, Instant, SystemTime};

use hookline_schemas::{DeliveryJob, Destination};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Method, Url};
use time::OffsetDateTime;

use crate::retry::Outcome;

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

/// Sends attempts over a pooled HTTP/1.1 and HTTP/2 client.
#[derive(Clone, Debug)]
pub struct Deliverer {
    client: Client,
    body_cap: usize,
}

impl Deliverer {
    /// A client that follows no redirects (a redirect is an answer, and following one could
    /// lead anywhere) and reads at most `body_cap` bytes of an answer.
    pub fn new(body_cap: usize) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Hookline/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client, body_cap })
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
            Err(error) => {
                return Attempt {
                    outcome: Outcome::InvalidRequest,
                    started_at,
                    latency: clock.elapsed(),
                    response_body: None,
                    error: Some(error),
                };
            }
        };
        let exchange = async {
            let mut response = self.client.execute(request).await?;
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(parse_retry_after);
            let mut body = Vec::new();
            while body.len() < self.body_cap {
                match response.chunk().await? {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            body.truncate(self.body_cap);
            Ok::<_, reqwest::Error>((code, retry_after, body))
        };
        let (outcome, response_body, error) = match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok((code, retry_after, body))) => (
                Outcome::Status { code, retry_after },
                Some(String::from_utf8_lossy(&body).into_owned()),
                (!(200..300).contains(&code)).then(|| format!("receiver answered {code}")),
            ),
            Ok(Err(error)) if error.is_timeout() => {
                (Outcome::Timeout, None, Some(describe(&error)))
            }
            Ok(Err(error)) => (Outcome::Connect, None, Some(describe(&error))),
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
    ) -> Result<reqwest::Request, String> {
        let method = Method::from_bytes(job.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", job.method))?;
        let url = Url::parse(&job.url).map_err(|error| format!("invalid URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported URL scheme {:?}", url.scheme()));
        }
        let mut headers = HeaderMap::new();
        // The destination's static headers first; the trigger's rendered headers are more
        // specific and win.
        for (name, value) in destination.headers.iter().chain(&job.headers) {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            headers.insert(name, value);
        }
        // The delivery id, the same on every attempt and every re-run, lets receivers
        // deduplicate (Standard Webhooks names it `webhook-id`).
        headers.insert(
            HeaderName::from_static("webhook-id"),
            HeaderValue::from_str(&job.delivery_id)
                .map_err(|_| format!("invalid delivery id {:?}", job.delivery_id))?,
        );
        let mut request = reqwest::Request::new(method, url);
        *request.headers_mut() = headers;
        *request.body_mut() = Some(job.body.clone().into());
        Ok(request)
    }
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

/// The error with its causes, which say what actually failed (refused, reset, DNS).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
