//! With `--control`, asks control's history API what an operator would while a phase runs (a
//! source's events, a destination's attempts, the dead letters, newest 50 each), so the report
//! says how fast history answers under load.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::http::Connection;
use crate::pipeline::CONTROL_TOKEN;
use crate::stats::{self, Histogram, Percentiles};
use crate::workload::{DESTINATIONS, SOURCES};

/// Pause between rounds of questions.
const PAUSE: Duration = Duration::from_millis(100);

/// Asks control at `addr` until `until`; returns each question's latency, and how many answers
/// were not 200.
pub async fn run(addr: std::net::SocketAddr, until: Instant) -> (Vec<(String, Percentiles)>, u64) {
    let questions: Vec<(String, Vec<String>)> = vec![
        (
            "GET /sources/{id}/events?limit=50".to_owned(),
            SOURCES
                .iter()
                .map(|source| format!("/api/v1/sources/{}/events?limit=50", source.id))
                .collect(),
        ),
        (
            "GET /destinations/{id}/attempts?limit=50".to_owned(),
            DESTINATIONS
                .iter()
                .map(|id| format!("/api/v1/destinations/{id}/attempts?limit=50"))
                .collect(),
        ),
        (
            "GET /dead-letters?limit=50".to_owned(),
            vec!["/api/v1/dead-letters?limit=50".to_owned()],
        ),
    ];
    let mut histograms: Vec<Histogram> = questions.iter().map(|_| stats::histogram()).collect();
    let mut failed = 0;
    let mut round = 0_usize;
    let mut connection = None;
    while Instant::now() < until {
        for ((_, paths), histogram) in questions.iter().zip(&mut histograms) {
            let path = &paths[round % paths.len()];
            let started = Instant::now();
            let answer = ask(&mut connection, addr, path).await;
            match answer {
                Some(200) => stats::record(
                    histogram,
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                ),
                Some(_) | None => failed += 1,
            }
        }
        round += 1;
        tokio::time::sleep(PAUSE).await;
    }
    let figures = questions
        .into_iter()
        .zip(&histograms)
        .map(|((name, _), histogram)| (name, Percentiles::of(histogram)))
        .collect();
    (figures, failed)
}

/// One GET on a kept-alive connection (opened again after a failure); the status, or `None`.
async fn ask(
    connection: &mut Option<Connection>,
    addr: std::net::SocketAddr,
    path: &str,
) -> Option<u16> {
    if connection.is_none() {
        *connection = Connection::open(addr).await.ok();
    }
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {CONTROL_TOKEN}"),
        )
        .body(Full::new(Bytes::new()))
        .ok()?;
    let exchange = connection.as_mut()?.send(request);
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok((status, _))) => Some(status.as_u16()),
        Ok(Err(_)) | Err(_) => {
            *connection = None;
            None
        }
    }
}
