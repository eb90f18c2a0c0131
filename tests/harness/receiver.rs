//! `TestReceiver`: an HTTP receiver on a free loopback port that records every request and
//! answers as the test queues (200 once the queue is empty, or stalls when told to).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One queued answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// Headers to send with it.
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// Just this status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    /// With this header too.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query.
    pub path: String,
    /// Headers by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    answers: VecDeque<Answer>,
    /// When set, requests with no queued answer wait this long before answering 200.
    stall: Option<Duration>,
    /// When set, requests with no queued answer get this status instead of 200.
    failing: Option<u16>,
    /// Requests being answered now.
    in_flight: usize,
    /// The most requests answered at once.
    most_in_flight: usize,
}

/// The receiver; stops when dropped.
#[derive(Clone)]
pub struct TestReceiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _server: Arc<tokio::task::JoinHandle<()>>,
}

impl TestReceiver {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(record).with_state(inner.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            addr,
            inner,
            _server: Arc::new(server),
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these statuses, in order.
    pub fn answer(&self, statuses: &[u16]) {
        self.answer_with(statuses.iter().copied().map(Answer::status));
    }

    /// Queues these answers, in order.
    pub fn answer_with(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().answers.extend(answers);
    }

    /// Makes every request without a queued answer wait `stall` before its answer.
    pub fn stall(&self, stall: Duration) {
        self.inner.lock().unwrap().stall = Some(stall);
    }

    /// Answers every request without a queued answer with `status` from now on, or 200 again
    /// with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.inner.lock().unwrap().failing = status;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The most requests that were in progress at once.
    pub fn most_in_flight(&self) -> usize {
        self.inner.lock().unwrap().most_in_flight
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self._server) == 1 {
            self._server.abort();
        }
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _counted = InFlight::enter(&inner);
    let (answer, stall) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            path: uri.to_string(),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        let answer = inner.answers.pop_front();
        (answer.or(inner.failing.map(Answer::status)), inner.stall)
    };
    match answer {
        Some(answer) => {
            let mut response = StatusCode::from_u16(answer.status).unwrap().into_response();
            for (name, value) in answer.headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        None => {
            if let Some(stall) = stall {
                tokio::time::sleep(stall).await;
            }
            StatusCode::OK.into_response()
        }
    }
}

/// Counts a request in [`Inner::in_flight`] until it is answered (or dropped).
struct InFlight<'a>(&'a Mutex<Inner>);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Mutex<Inner>) -> Self {
        let mut locked = inner.lock().unwrap();
        locked.in_flight += 1;
        locked.most_in_flight = locked.most_in_flight.max(locked.in_flight);
        drop(locked);
        Self(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}
