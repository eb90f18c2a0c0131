//! `hookline-bench console`: the console's pages and the statistics calls, timed over HTTP
//! against a real `hookline control` whose store holds `--events` events (2,000,000 by default,
//! as for `store`; the console's target is stated at `--events 1000000`) and their match records,
//! attempts and dead letters, as the store benchmark fills it.
//!
//! The bench fills (or reuses) the store, starts `hookline dev --roles ingest` for its embedded
//! broker, starts `hookline control` on that broker with the filled store, creates the sources,
//! destinations and triggers the traffic names, logs in to the console, and asks every page
//! `--samples` times on one kept-alive connection, one request at a time. It reports p50, p95,
//! p99 and the largest time per page; the console's target is p95 under 200 ms.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use hookline_control::store::Location;
use http_body_util::Full;
use hyper::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::http::Connection;
use crate::procs::Child;
use crate::store::{self, StoreArgs, destination_id, source_id};

/// The admin token the bench gives `hookline control`.
const TOKEN: &str = "bench-admin-token";

/// Settings of `hookline-bench console`.
#[derive(Clone, Debug, Args)]
pub struct ConsoleArgs {
    /// The store to fill or reuse (`--events`, `--path`, `--postgres`, ...; `--samples` is the
    /// number of requests per page).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The `hookline` binary (the release build next to this program by default).
    #[arg(long)]
    pub hookline: Option<PathBuf>,
}

/// Runs the console benchmark and prints its table.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let bin = match &args.hookline {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("hookline"),
    };
    if !bin.exists() {
        bail!(
            "{} does not exist: run `cargo build --release` first, or pass --hookline",
            bin.display()
        );
    }
    let work = tempfile::tempdir()?;
    let file = args
        .store
        .path
        .clone()
        .unwrap_or_else(|| work.path().join("history.sqlite3"));
    let location = {
        let args = args.store.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || store::prepare(&args, &file)).await??
    };

    // An embedded broker (with the topics made), from `hookline dev` running ingest alone.
    let mut command = Command::new(&bin);
    command.args([
        "dev",
        "--roles",
        "ingest",
        "--ingest-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--echo-addr",
        "127.0.0.1:0",
    ]);
    let mut broker = Child::spawn("hookline dev", command, &work.path().join("dev.log")).await?;
    let brokers = broker
        .wait_for(Duration::from_secs(60), |line| {
            let rest = line.strip_prefix("Its embedded Kafka broker listens on ")?;
            Some(rest.split([',', ' ']).next()?.to_owned())
        })
        .await?;
    broker.detach_output();

    let addr = free_addr()?;
    let mut command = Command::new(&bin);
    command.args([
        "control",
        "--kafka-brokers",
        &brokers,
        "--control-addr",
        &addr.to_string(),
        "--admin-addr",
        "127.0.0.1:0",
        "--control-token",
        TOKEN,
        "--data-dir",
    ]);
    command.arg(work.path().join("data"));
    match &location {
        Location::File(path) => {
            command.arg("--control-store-path").arg(path);
        }
        Location::Postgres { url, schema } => {
            command
                .args(["--control-store-postgres", url])
                .args(["--control-store-postgres-schema", schema]);
        }
        Location::Memory => bail!("the console bench needs a store on disk or in PostgreSQL"),
    }
    let control = Child::spawn("control", command, &work.path().join("control.log")).await?;
    let result = measure(addr, &args.store).await;
    control.stop().await;
    broker.stop().await;
    result
}

/// A free loopback address (closed again, for `hookline control` to bind).
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// One request to control: its status and body.
async fn send(
    connection: &mut Connection,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some((content_type, body)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            body
        }
        None => Vec::new(),
    };
    connection
        .send(request.body(Full::new(Bytes::from(body)))?)
        .await
}

/// The path a page is asked at, for a random pick of ids.
type PathOf<'a> = Box<dyn Fn(&mut fastrand::Rng) -> String + 'a>;

/// Sets up the resources, logs in and times every page.
async fn measure(addr: SocketAddr, args: &StoreArgs) -> anyhow::Result<()> {
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    // Ready once the store is read and the resources loaded.
    let started = Instant::now();
    loop {
        let ready = match Connection::open(addr).await {
            Ok(mut connection) => send(
                &mut connection,
                addr,
                "GET",
                "/api/v1/stats/sources?window=5m",
                &auth,
                None,
            )
            .await
            .is_ok_and(|(status, _)| status == StatusCode::OK),
            Err(_) => false,
        };
        if ready {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("control was not ready within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "control ready {:.1} s after it started",
        started.elapsed().as_secs_f64()
    );
    let mut connection = Connection::open(addr).await?;
    let mut create = async |path: &str, resource: Value| -> anyhow::Result<()> {
        let (status, body) = send(
            &mut connection,
            addr,
            "POST",
            path,
            &auth,
            Some(("application/json", resource.to_string().into_bytes())),
        )
        .await?;
        if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
            bail!("POST {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    };
    for n in 0..args.destinations {
        create(
            "/api/v1/destinations",
            json!({"id": destination_id(n), "url": "http://127.0.0.1:9/hooks"}),
        )
        .await?;
    }
    for n in 0..args.sources {
        create(
            "/api/v1/sources",
            json!({"id": source_id(n), "auth": [{"type": "open"}]}),
        )
        .await?;
        create(
            "/api/v1/triggers",
            json!({
                "id": format!("trigger-{n:02}"),
                "when": {"sources": [source_id(n)]},
                "actions": [{"destination": destination_id(n % args.destinations.max(1)),
                             "body": "{{ payload | tojson }}"}]
            }),
        )
        .await?;
    }

    // Logged in as an operator would be.
    let mut connection = Connection::open(addr).await?;
    let request = Request::post("/ui/login")
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={TOKEN}&next=/ui/"))))?;
    let cookie = login_cookie(&mut connection, request).await?;
    let session = [("cookie", cookie.as_str())];

    // Ids the pages ask for: events of the first source, from the API.
    let (_, body) = send(
        &mut connection,
        addr,
        "GET",
        &format!(
            "/api/v1/sources/{}/events?kind=event&limit=200",
            source_id(0)
        ),
        &auth,
        None,
    )
    .await?;
    let events: Vec<String> = serde_json::from_slice::<Value>(&body)?["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["event_id"].as_str().map(str::to_owned))
        .collect();
    if events.is_empty() {
        bail!("the store has no events of {}", source_id(0));
    }

    let mut pick = fastrand::Rng::with_seed(11);
    let pages: Vec<(&str, PathOf)> = vec![
        ("overview", Box::new(|_| "/ui/".to_owned())),
        ("sources", Box::new(|_| "/ui/sources".to_owned())),
        (
            "a source (its last 50 requests)",
            Box::new(|pick| format!("/ui/sources/{}", source_id(pick.usize(..args.sources)))),
        ),
        ("destinations", Box::new(|_| "/ui/destinations".to_owned())),
        (
            "a destination (its last 50 attempts)",
            Box::new(|pick| {
                format!(
                    "/ui/destinations/{}",
                    destination_id(pick.usize(..args.destinations))
                )
            }),
        ),
        (
            "a destination's retrying attempts",
            Box::new(|pick| {
                format!(
                    "/ui/destinations/{}?outcome=retrying",
                    destination_id(pick.usize(..args.destinations))
                )
            }),
        ),
        ("triggers", Box::new(|_| "/ui/triggers".to_owned())),
        (
            "a trigger (editor, newest event as sample)",
            Box::new(|pick| format!("/ui/triggers/trigger-{:02}", pick.usize(..args.sources))),
        ),
        ("events, newest 50", Box::new(|_| "/ui/events".to_owned())),
        (
            "events of a source",
            Box::new(|pick| {
                format!(
                    "/ui/events?source={}",
                    source_id(pick.usize(..args.sources))
                )
            }),
        ),
        (
            "events sent to a destination (checked one by one)",
            Box::new(|pick| {
                format!(
                    "/ui/events?destination={}",
                    destination_id(pick.usize(..args.destinations))
                )
            }),
        ),
        (
            "events whose payload contains a rare text (2,000 looked at)",
            Box::new(|_| "/ui/events?q=no-such-text-anywhere".to_owned()),
        ),
        (
            "an event's timeline",
            Box::new(|pick| format!("/ui/events/{}", events[pick.usize(..events.len())])),
        ),
        ("dead letters", Box::new(|_| "/ui/dead-letters".to_owned())),
        (
            "dead letters of a destination",
            Box::new(|pick| {
                format!(
                    "/ui/dead-letters?destination={}",
                    destination_id(pick.usize(..args.destinations))
                )
            }),
        ),
        (
            "API: stats of every destination, 5m",
            Box::new(|_| "/api/v1/stats/destinations?window=5m".to_owned()),
        ),
        (
            "API: stats of every destination, 1h",
            Box::new(|_| "/api/v1/stats/destinations?window=1h".to_owned()),
        ),
        (
            "API: stats of every destination, 24h",
            Box::new(|_| "/api/v1/stats/destinations?window=24h".to_owned()),
        ),
        (
            "API: stats of every source, 24h",
            Box::new(|_| "/api/v1/stats/sources?window=24h".to_owned()),
        ),
    ];
    println!();
    println!(
        "| page ({} requests each, one at a time) | p50 ms | p95 ms | p99 ms | max ms |",
        args.samples
    );
    println!("|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for (name, path) in &pages {
        let mut histogram = Histogram::<u64>::new(3)?;
        for _ in 0..args.samples {
            let path = path(&mut pick);
            let headers: &[(&str, &str)] = if path.starts_with("/api/") {
                &auth
            } else {
                &session
            };
            let started = Instant::now();
            let (status, body) = send(&mut connection, addr, "GET", &path, headers, None).await?;
            let took = started.elapsed();
            if status != StatusCode::OK {
                bail!(
                    "GET {path}: {status} {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                );
            }
            // A page that shows an error still answers 200: what it shows must be the page.
            if let Some(at) = body.windows(13).position(|w| w == br#"class="error""#) {
                bail!(
                    "GET {path} shows an error: {}",
                    String::from_utf8_lossy(&body[at..(at + 300).min(body.len())])
                );
            }
            histogram.record(took.as_micros() as u64)?;
        }
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        worst = worst.max(ms(0.95));
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(0.5),
            ms(0.95),
            ms(0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    println!();
    println!("slowest p95: {worst:.1} ms (target: under 200 ms)");
    Ok(())
}

/// Posts the login form and answers the session cookie (`name=value`).
async fn login_cookie(
    connection: &mut Connection,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<String> {
    let (status, cookie) = connection.send_with_headers(request).await?;
    if status != StatusCode::SEE_OTHER {
        bail!("the console's login answered {status}");
    }
    let cookie = cookie
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .context("the login set no cookie")?;
    Ok(cookie.to_owned())
}
