//! Deliveries over HTTPS to receivers whose certificates a private CA issued (made per test
//! with rcgen), trusted through `--destination-ca-file`: HTTP/2 when the receiver offers it,
//! HTTP/1.1 otherwise, and an HTTP/2 refusal sent again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hookline_dispatcher::Config;
use hookline_dispatcher::config::CaFile;
use hookline_dispatcher::deliver::{Attempt, Deliverer};
use hookline_dispatcher::guard::{self, Guard};
use hookline_dispatcher::retry::Outcome;
use hookline_dispatcher::sign::WEBHOOK_SIGNATURE;
use hookline_schemas::{DeliveryJob, Destination, ResourceId};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const DEADLINE: Duration = Duration::from_secs(10);

/// A CA of this test run and a server certificate it issued.
struct Pki {
    /// The CA's certificate, as a `--destination-ca-file` holds it.
    ca_pem: tempfile::NamedTempFile,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    /// A CA and a server certificate for `names` (receivers listen on 127.0.0.1).
    fn new(names: &[&str]) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "Hookline test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut server = CertificateParams::new(names).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server = server.signed_by(&server_key, &ca).unwrap();

        let mut ca_pem = tempfile::Builder::new().suffix(".pem").tempfile().unwrap();
        std::io::Write::write_all(&mut ca_pem, ca.pem().as_bytes()).unwrap();
        Self {
            ca_pem,
            server_chain: vec![server.der().clone()],
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        }
    }

    /// The server's TLS settings, offering `alpn` in that order.
    fn server(&self, alpn: &[&[u8]]) -> TlsAcceptor {
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    /// A deliverer that trusts this CA the way the dispatcher does: read from the CA file.
    fn deliverer(&self) -> Deliverer {
        let config = Config {
            ca_file: Some(CaFile::read(self.ca_pem.path()).unwrap()),
            ..Config::default()
        };
        deliverer(config.extra_roots())
    }
}

fn deliverer(extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>) -> Deliverer {
    let guard = Guard::new(hookline_dispatcher::config::loopback());
    Deliverer::new(guard, guard::tls_config(extra_roots).unwrap(), 16 * 1024)
}

/// Listens on loopback, completes the TLS handshake of each connection with `acceptor` and hands
/// the stream to `serve`; returns the URL to deliver to.
async fn tls_listener<F, Serving>(acceptor: TlsAcceptor, serve: F) -> String
where
    F: Fn(TlsStream<TcpStream>) -> Serving + Clone + Send + 'static,
    Serving: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    url
}

/// A receiver behind `acceptor` that answers 200 to everything (HTTP/1.1 or HTTP/2, whichever
/// the client speaks) and reports the version and headers of each request.
async fn receiver(
    acceptor: TlsAcceptor,
) -> (String, mpsc::UnboundedReceiver<(Version, HeaderMap)>) {
    let (seen, requests) = mpsc::unbounded_channel();
    let url = tls_listener(acceptor, move |tls| {
        let seen = seen.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let _ = seen.send((request.version(), request.headers().clone()));
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok")))) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
    (url, requests)
}

fn signed_job(url: &str) -> (DeliveryJob, Destination) {
    let id = ResourceId::parse("tls").unwrap();
    let job = DeliveryJob {
        schema_version: 1,
        delivery_id: "msg_tls".into(),
        event_id: "evt_tls".into(),
        source_id: ResourceId::parse("s").unwrap(),
        trigger_id: ResourceId::parse("t").unwrap(),
        action: 0,
        destination_id: id.clone(),
        attempt: 1,
        method: "POST".into(),
        url: url.into(),
        headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
        body: r#"{"ok": true}"#.into(),
        received_at: "2026-12-02T00:00:00Z".into(),
        not_before: None,
    };
    let mut destination = Destination::new(id, url);
    destination.secrets = vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()];
    (job, destination)
}

fn assert_delivered(attempt: &Attempt) {
    assert!(
        matches!(attempt.outcome, Outcome::Status { code: 200, .. }),
        "{attempt:?}"
    );
    assert_eq!(attempt.response_body.as_deref(), Some("ok"));
}

#[tokio::test]
async fn a_receiver_behind_a_private_ca_is_reached_over_http2_or_http1() {
    let pki = Pki::new(&["127.0.0.1"]);
    let deliverer = pki.deliverer();
    for (alpn, version) in [
        (&[&b"h2"[..], b"http/1.1"][..], Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], Version::HTTP_11),
    ] {
        let (url, mut requests) = receiver(pki.server(alpn)).await;
        let (job, destination) = signed_job(&url);
        let attempt = deliverer.attempt(&job, &destination, DEADLINE).await;
        assert_delivered(&attempt);
        let (seen, headers) = requests.recv().await.unwrap();
        assert_eq!(seen, version, "ALPN {alpn:?}");
        assert!(
            headers[WEBHOOK_SIGNATURE]
                .to_str()
                .unwrap()
                .starts_with("v1,"),
            "{headers:?}"
        );
    }
}

/// Sends a signed job to a receiver serving `pki`'s certificate with `deliverer`, and returns
/// why the attempt failed, asserting that it did.
async fn refused_by(deliverer: &Deliverer, pki: &Pki) -> String {
    let (url, _requests) = receiver(pki.server(&[b"h2", b"http/1.1"])).await;
    let (job, destination) = signed_job(&url);
    let attempt = deliverer.attempt(&job, &destination, DEADLINE).await;
    assert_eq!(attempt.outcome, Outcome::Connect, "{attempt:?}");
    attempt.error.unwrap()
}

#[tokio::test]
async fn a_certificate_from_a_ca_nobody_trusts_is_refused() {
    let error = refused_by(&deliverer(Vec::new()), &Pki::new(&["127.0.0.1"])).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn a_trusted_ca_does_not_vouch_for_another_name() {
    // Issued by the trusted CA, but for `localhost`; the receiver is reached as 127.0.0.1.
    let pki = Pki::new(&["localhost"]);
    let error = refused_by(&pki.deliverer(), &pki).await;
    assert!(error.contains("not valid for name"), "{error}");
}

#[test]
fn the_ca_file_must_hold_certificates() {
    let error = CaFile::read("/nonexistent/ca.pem").unwrap_err().to_string();
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");

    let mut not_pem = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut not_pem, b"not a certificate\n").unwrap();
    let error = CaFile::read(not_pem.path()).unwrap_err().to_string();
    assert!(error.contains("holds no PEM certificate"), "{error}");

    let mut not_der = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut not_der,
        b"-----BEGIN CERTIFICATE-----\naG9va2xpbmU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let error = CaFile::read(not_der.path()).unwrap_err().to_string();
    assert!(
        error.contains("certificate 1 is not a usable CA certificate"),
        "{error}"
    );
}

/// An HTTP/2 receiver (h2's server, which can refuse streams) that resets the first `refusals`
/// requests with `reason` and answers 200 after that; returns its URL and the request count.
async fn refusing_receiver(
    acceptor: TlsAcceptor,
    refusals: usize,
    reason: h2::Reason,
) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let url = tls_listener(acceptor, move |tls| {
        let count = count.clone();
        async move {
            let Ok(mut connection) = h2::server::handshake(tls).await else {
                return;
            };
            while let Some(Ok((_request, mut respond))) = connection.accept().await {
                if count.fetch_add(1, Ordering::SeqCst) < refusals {
                    respond.send_reset(reason);
                } else {
                    let response = Response::builder().status(StatusCode::OK).body(()).unwrap();
                    let _ = respond.send_response(response, true);
                }
            }
        }
    })
    .await;
    (url, requests)
}

#[tokio::test]
async fn a_refused_http2_request_is_sent_again_up_to_twice() {
    let pki = Pki::new(&["127.0.0.1"]);
    let deliverer = pki.deliverer();

    // Refused twice, answered the third time: delivered within the one attempt.
    let (url, requests) =
        refusing_receiver(pki.server(&[b"h2"]), 2, h2::Reason::REFUSED_STREAM).await;
    let (job, destination) = signed_job(&url);
    let attempt = deliverer.attempt(&job, &destination, DEADLINE).await;
    assert!(
        matches!(attempt.outcome, Outcome::Status { code: 200, .. }),
        "{attempt:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    // Refused every time: three sends, then the attempt fails for the retry schedule to handle.
    let (url, requests) =
        refusing_receiver(pki.server(&[b"h2"]), usize::MAX, h2::Reason::REFUSED_STREAM).await;
    let (job, destination) = signed_job(&url);
    let attempt = deliverer.attempt(&job, &destination, DEADLINE).await;
    assert_eq!(attempt.outcome, Outcome::Connect, "{attempt:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    // Any other reset may come after the request was processed: it is not sent again.
    let (url, requests) =
        refusing_receiver(pki.server(&[b"h2"]), 1, h2::Reason::INTERNAL_ERROR).await;
    let (job, destination) = signed_job(&url);
    let attempt = deliverer.attempt(&job, &destination, DEADLINE).await;
    assert_eq!(attempt.outcome, Outcome::Connect, "{attempt:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
