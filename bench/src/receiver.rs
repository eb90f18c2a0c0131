//! `hookline-bench receiver`: the webhook receiver, in a process of its own so its work is not
//! charged to the load generator or to Hookline.
//!
//! It verifies each delivery's Standard Webhooks signature, records the latency from the
//! generator's send (`sent_at_us` in the rendered body) to its arrival, and counts each (event,
//! trigger) pair once, so repeats and losses show. The bench reads the figures with
//! `GET /counts` and `GET /series`. `POST /raw` takes the raw HTTP limit's requests, and
//! `POST /slow/<ms>` is a receiver that answers only after that long (counted, not verified). The process
//! exits when its standard input closes, so it never outlives the bench.
//!
//! For the fault suite (`hookline-bench faults`) it can also play a failing receiver
//! (`PUT /mode/ok`, `/mode/unavailable`, `/mode/stall/<ms>`) and, with `--track-ids`, keep every
//! event's deliveries with their `webhook-id`s and first arrival (`GET /tracked`), so a checker
//! can tell lost events, repeats and whether a repeat kept its id.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use hookline_ingest::auth::Verifier;
use hookline_schemas::SourceAuth;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::stats::{self, Counts, Histogram, SecondLatency, Series};

/// Oldest or newest signature timestamp accepted, in seconds from now (the Standard Webhooks
/// recommendation).
const TOLERANCE_SECONDS: u64 = 300;

/// Highest event sequence number tracked for duplicates: one byte each, so 64 MB at most.
const MAX_TRACKED_SEQ: u64 = 64 * 1024 * 1024;

/// Serves until standard input closes; also over TLS when `tls_ca` names where to write the CA;
/// with `track_ids`, keeps each event's deliveries for `GET /tracked`.
pub async fn run(
    addr: SocketAddr,
    secret: &str,
    tls_ca: Option<&Path>,
    track_ids: bool,
) -> anyhow::Result<()> {
    let verifier = verifier(secret)?;
    let tls = tls_ca.map(tls_acceptor).transpose()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    let local = listener.local_addr()?;
    // The bench reads this line to learn the port.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}")?;
    stdout.flush()?;
    let state = Arc::new(State {
        verifier,
        recorder: Mutex::new(Recorder {
            tracked: track_ids.then(HashMap::new),
            ..Recorder::default()
        }),
        mode: Mutex::new(Mode::Ok),
    });
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0_u8; 64];
        while let Ok(read) = stdin.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = stdin_closed => Ok(()),
        result = serve(listener, state, tls) => result,
    }
}

/// The first byte of a TLS record carrying a handshake (RFC 8446, section 5.1), which no HTTP
/// request starts with.
const TLS_HANDSHAKE: u8 = 0x16;

async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut first = [0_u8; 1];
            let handshake = tls.is_some()
                && matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
            match tls {
                Some(tls) if handshake => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve_connection(stream, state).await;
                    }
                }
                _ => serve_connection(stream, state).await,
            }
        });
    }
}

/// Answers the requests of one connection, plain or TLS.
async fn serve_connection<S>(stream: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(state.clone(), request));
    // A connection the client drops mid-request is no error of the receiver's.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Makes a CA, writes its certificate to `ca_path`, and returns TLS settings (HTTP/1.1) with a
/// certificate it issued for 127.0.0.1.
fn tls_acceptor(ca_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.distinguished_name
        .push(DnType::CommonName, "hookline-bench receiver CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let leaf = leaf.signed_by(&key, &ca)?;
    std::fs::write(ca_path, ca.pem())
        .with_context(|| format!("could not write {}", ca_path.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

struct State {
    verifier: Verifier,
    recorder: Mutex<Recorder>,
    mode: Mutex<Mode>,
}

impl State {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How `/hooks/...` answers: the fault suite switches it to play a receiver that fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Verify, record, answer 204.
    Ok,
    /// Answer 503 without recording, as a receiver whose backend is down.
    Unavailable,
    /// Hold each request this many milliseconds, then answer 204 without recording: a receiver
    /// that hangs before doing the work, so a sender that gave up has delivered nothing.
    Stall(u64),
}

impl Mode {
    /// The mode a `PUT /mode/...` path names.
    fn parse(path: &str) -> Option<Self> {
        match path.strip_prefix("/mode/")? {
            "ok" => Some(Self::Ok),
            "unavailable" => Some(Self::Unavailable),
            rest => Some(Self::Stall(rest.strip_prefix("stall/")?.parse().ok()?)),
        }
    }

    /// The path that sets this mode.
    pub fn path(self) -> String {
        match self {
            Self::Ok => "/mode/ok".to_owned(),
            Self::Unavailable => "/mode/unavailable".to_owned(),
            Self::Stall(ms) => format!("/mode/stall/{ms}"),
        }
    }
}

/// What the receiver kept of one event's deliveries (`--track-ids`).
#[derive(Clone, Debug)]
struct Tracked {
    /// Deliveries received.
    count: u32,
    /// The `webhook-id` of the first.
    webhook_id: String,
    /// Later deliveries whose `webhook-id` differed from the first's.
    other_ids: u32,
    /// When the first arrived, in microseconds since the Unix epoch.
    first_arrival_us: u64,
}

/// One event's deliveries as `GET /tracked` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedEvent {
    /// The event's sequence number.
    pub seq: u64,
    /// Deliveries received (more than one: repeats).
    pub count: u32,
    /// Repeats whose `webhook-id` differed from the first delivery's.
    pub other_ids: u32,
    /// When the first arrived, in microseconds since the Unix epoch.
    pub first_arrival_us: u64,
}

/// The part of a delivery's body the receiver reads; the rest is the trigger's.
#[derive(Deserialize)]
struct Mark {
    seq: u64,
    sent_at_us: u64,
    slot: u32,
}

#[derive(Default)]
struct Recorder {
    counts: Counts,
    /// Per event sequence number, a bit per trigger slot already received.
    seen: Vec<u8>,
    latency: BTreeMap<u64, Histogram>,
    arrivals: BTreeMap<u64, u64>,
    /// Per event sequence number, its deliveries, when tracking (`--track-ids`).
    tracked: Option<HashMap<u64, Tracked>>,
}

impl Recorder {
    fn delivery(
        &mut self,
        arrived_us: u64,
        signed: bool,
        mark: Option<Mark>,
        webhook_id: Option<&str>,
    ) {
        self.counts.deliveries += 1;
        *self.arrivals.entry(arrived_us / 1_000_000).or_default() += 1;
        if !signed {
            self.counts.bad_signatures += 1;
        }
        let Some(mark) = mark.filter(|mark| mark.seq < MAX_TRACKED_SEQ && mark.slot < 8) else {
            self.counts.unparsable += 1;
            return;
        };
        let histogram = self
            .latency
            .entry(mark.sent_at_us / 1_000_000)
            .or_insert_with(stats::histogram);
        stats::record(histogram, arrived_us.saturating_sub(mark.sent_at_us));
        if let Some(tracked) = &mut self.tracked {
            let webhook_id = webhook_id.unwrap_or_default();
            tracked
                .entry(mark.seq)
                .and_modify(|event| {
                    event.count += 1;
                    if event.webhook_id != webhook_id {
                        event.other_ids += 1;
                    }
                })
                .or_insert_with(|| Tracked {
                    count: 1,
                    webhook_id: webhook_id.to_owned(),
                    other_ids: 0,
                    first_arrival_us: arrived_us,
                });
        }
        let index = usize::try_from(mark.seq).unwrap_or(usize::MAX);
        if index >= self.seen.len() {
            let grown = (index + 1).max(self.seen.len() * 2);
            self.seen.resize(grown, 0);
        }
        let bit = 1_u8 << mark.slot;
        if self.seen[index] & bit == 0 {
            self.seen[index] |= bit;
            self.counts.unique += 1;
        } else {
            self.counts.duplicates += 1;
        }
    }

    fn series(&self) -> anyhow::Result<Series> {
        let latency = self
            .latency
            .iter()
            .map(|(second, histogram)| {
                Ok(SecondLatency {
                    second: *second,
                    histogram: stats::encode(histogram)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let arrivals = self.arrivals.iter().map(|(s, n)| (*s, *n)).collect();
        Ok(Series { latency, arrivals })
    }

    fn tracked(&self) -> Vec<TrackedEvent> {
        let mut events: Vec<TrackedEvent> = self
            .tracked
            .iter()
            .flatten()
            .map(|(seq, event)| TrackedEvent {
                seq: *seq,
                count: event.count,
                other_ids: event.other_ids,
                first_arrival_us: event.first_arrival_us,
            })
            .collect();
        events.sort_unstable_by_key(|event| event.seq);
        events
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let response = match (&parts.method, path) {
        (&Method::GET, "/counts") => {
            let counts = state.recorder().counts;
            json(serde_json::to_vec(&counts).map_err(anyhow::Error::from))
        }
        (&Method::GET, "/series") => {
            let series = state.recorder().series();
            json(series.and_then(|series| Ok(serde_json::to_vec(&series)?)))
        }
        (&Method::GET, "/tracked") => {
            let tracked = state.recorder().tracked();
            json(serde_json::to_vec(&tracked).map_err(anyhow::Error::from))
        }
        (&Method::PUT, path) if path.starts_with("/mode/") => match Mode::parse(path) {
            Some(mode) => {
                *state.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
                status(StatusCode::NO_CONTENT)
            }
            None => status(StatusCode::NOT_FOUND),
        },
        (&Method::POST, "/raw") => match body.collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                // The same parsing work as a delivery, without the bookkeeping.
                let _ = serde_json::from_slice::<serde_json::Value>(&body);
                state.recorder().counts.raw += 1;
                status(StatusCode::NO_CONTENT)
            }
            Err(_) => status(StatusCode::BAD_REQUEST),
        },
        (&Method::POST, path) if path.starts_with("/slow/") => {
            let hold = path["/slow/".len()..].parse::<u64>().unwrap_or(0);
            state.recorder().counts.slow += 1;
            // Read the body as any receiver would, then keep the client waiting.
            let _ = body.collect().await;
            tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
            status(StatusCode::NO_CONTENT)
        }
        (&Method::POST, path) if path.starts_with("/hooks/") => {
            let body = body.collect().await;
            match (state.mode(), body) {
                (_, Err(_)) => status(StatusCode::BAD_REQUEST),
                (Mode::Unavailable, Ok(_)) => {
                    state.recorder().counts.failed_on_purpose += 1;
                    status(StatusCode::SERVICE_UNAVAILABLE)
                }
                (Mode::Stall(hold), Ok(_)) => {
                    state.recorder().counts.failed_on_purpose += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
                    status(StatusCode::NO_CONTENT)
                }
                (Mode::Ok, Ok(body)) => {
                    let body = body.to_bytes();
                    let arrived_us = now_us();
                    let now = i64::try_from(arrived_us / 1_000_000).unwrap_or(i64::MAX);
                    let signed = state.verifier.verify(&parts.headers, &body, now);
                    let mark = serde_json::from_slice::<Mark>(&body).ok();
                    let webhook_id = parts
                        .headers
                        .get("webhook-id")
                        .and_then(|value| value.to_str().ok());
                    state
                        .recorder()
                        .delivery(arrived_us, signed, mark, webhook_id);
                    status(StatusCode::NO_CONTENT)
                }
            }
        }
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn json(body: anyhow::Result<Vec<u8>>) -> Response<Full<Bytes>> {
    match body {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// A Standard Webhooks verifier for `secret`: ingest's own, which is tested against vectors
/// made by the official library, so the bench does not trust a second copy of the scheme.
fn verifier(secret: &str) -> anyhow::Result<Verifier> {
    Verifier::new(&[SourceAuth::Standard {
        secrets: vec![secret.to_owned()],
        tolerance_seconds: Some(TOLERANCE_SECONDS),
    }])
    .map_err(|error| anyhow::anyhow!("the signing secret {error}"))
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::workload::SIGNING_SECRET;

    fn signed(body: &[u8], timestamp: u64) -> HeaderMap {
        let signature = hookline_dispatcher::sign::Signer::new(&[SIGNING_SECRET.to_owned()])
            .unwrap()
            .signature("msg_1", timestamp as i64, body);
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
        headers.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&format!("v1,AAAA {signature}")).unwrap(),
        );
        headers
    }

    #[test]
    fn accepts_a_valid_signature_and_refuses_a_changed_body_or_an_old_one() {
        let verifier = verifier(SIGNING_SECRET).unwrap();
        let headers = signed(b"{\"a\":1}", 1_000_000);
        assert!(verifier.verify(&headers, b"{\"a\":1}", 1_000_010));
        assert!(!verifier.verify(&headers, b"{\"a\":2}", 1_000_010));
        assert!(!verifier.verify(&headers, b"{\"a\":1}", 1_000_400));
        assert!(!verifier.verify(&HeaderMap::new(), b"{\"a\":1}", 1_000_010));
    }

    #[test]
    fn counts_each_event_and_slot_once() {
        let mut recorder = Recorder::default();
        let mark = |seq, slot| {
            Some(Mark {
                seq,
                sent_at_us: 5_000_000,
                slot,
            })
        };
        recorder.delivery(5_010_000, true, mark(3, 0), None);
        recorder.delivery(5_020_000, true, mark(3, 1), None);
        recorder.delivery(5_030_000, true, mark(3, 0), None);
        recorder.delivery(5_030_000, false, None, None);
        let counts = recorder.counts;
        assert_eq!(
            (counts.deliveries, counts.unique, counts.duplicates),
            (4, 2, 1)
        );
        assert_eq!((counts.bad_signatures, counts.unparsable), (1, 1));
        let latency = recorder.series().unwrap().latency_between(5, 6).unwrap();
        assert_eq!(latency.len(), 3);
    }

    #[test]
    fn tracks_each_events_deliveries_and_whether_repeats_kept_their_id() {
        let mut recorder = Recorder {
            tracked: Some(HashMap::new()),
            ..Recorder::default()
        };
        let mark = |seq| {
            Some(Mark {
                seq,
                sent_at_us: 5_000_000,
                slot: 0,
            })
        };
        recorder.delivery(5_010_000, true, mark(7), Some("msg_a"));
        recorder.delivery(5_020_000, true, mark(7), Some("msg_a"));
        recorder.delivery(5_030_000, true, mark(2), Some("msg_b"));
        recorder.delivery(5_040_000, true, mark(2), Some("msg_c"));
        recorder.delivery(5_050_000, true, mark(9), None);
        let tracked = recorder.tracked();
        let summary: Vec<_> = tracked
            .iter()
            .map(|event| {
                (
                    event.seq,
                    event.count,
                    event.other_ids,
                    event.first_arrival_us,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, 2, 1, 5_030_000),
                (7, 2, 0, 5_010_000),
                (9, 1, 0, 5_050_000)
            ]
        );
    }

    #[test]
    fn modes_parse_from_their_paths_and_nothing_else() {
        for mode in [Mode::Ok, Mode::Unavailable, Mode::Stall(5000)] {
            assert_eq!(Mode::parse(&mode.path()), Some(mode));
        }
        assert_eq!(Mode::parse("/mode/stall/soon"), None);
        assert_eq!(Mode::parse("/mode/down"), None);
    }
}
