//! End-to-end tests of the `hookline` commands on the control API: the real binary, with the API
//! URL and token from the environment, against ingest and control on a test Kafka. What the CLI
//! does must be visible where it matters: a source it disables answers 403 at its inbound URL, and
//! a dead letter it replays reaches the receiver again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::process::Command;

use harness::stages::{
    CONTROL_READ_TOKEN, CONTROL_TOKEN, Stages, World, accepted_id, post, signup,
};
use harness::{TestKafka, TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use serde_json::{Value, json};

/// What a run of the binary printed, and whether it succeeded.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert!(self.success, "failed: {}\n{}", self.stderr, self.stdout);
        self.stdout
    }

    fn json(self) -> Value {
        let stdout = self.ok();
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("not JSON: {stdout}"))
    }
}

/// Runs `hookline ARGS` with the API's URL and `token` in the environment.
async fn hookline(pipeline: &Pipeline, token: &str, args: &[&str]) -> Run {
    hookline_with(pipeline, token, args, &[]).await
}

/// [`hookline`] with more variables in the environment.
async fn hookline_with(
    pipeline: &Pipeline,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let url = format!("http://{}", pipeline.control_addr.unwrap());
    let token = token.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(&args)
            .env("HOOKLINE_API_URL", url)
            .env("HOOKLINE_API_TOKEN", token)
            .env_remove("VISUAL")
            .envs(env)
            .output()
            .unwrap();
        Run {
            success: output.status.success(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}

async fn admin(pipeline: &Pipeline, args: &[&str]) -> Run {
    hookline(pipeline, CONTROL_TOKEN, args).await
}

/// Writes `text` to a temporary file whose name ends in `name` (so the CLI sees its extension);
/// the file is removed when the returned path is dropped.
fn file(name: &str, text: &str) -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .prefix("hookline-cli-")
        .suffix(&format!("-{name}"))
        .tempfile()
        .unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file.into_temp_path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_lists_disables_and_deletes_resources() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let pipeline = Stages::ingest_and_control().start(&settings).await;

    // A destination from flags, a source from a JSON file, a trigger from a TOML file.
    let created = admin(
        &pipeline,
        &[
            "destinations",
            "create",
            "--id",
            "crm",
            "--url",
            &receiver.url("/hooks/crm"),
        ],
    )
    .await
    .ok();
    assert!(
        created.contains("crm") && created.contains("/hooks/crm"),
        "{created}"
    );
    let source = file("shop.json", r#"{"id": "shop", "name": "Shop"}"#);
    let source = admin(
        &pipeline,
        &[
            "sources",
            "create",
            "-f",
            source.to_str().unwrap(),
            "--json",
        ],
    )
    .await
    .json();
    let token = source["auth"][0]["tokens"][0].as_str().unwrap().to_owned();
    let ingest_url = source["ingest_url"].as_str().unwrap().to_owned();
    let trigger = file(
        "orders.toml",
        "id = \"orders\"\nname = \"Orders\"\nwhen = { sources = [\"shop\"] }\n\
         [[actions]]\ndestination = \"crm\"\nbody = '{\"order\": {{ payload.order }}}'\n",
    );
    admin(
        &pipeline,
        &["triggers", "create", "--file", trigger.to_str().unwrap()],
    )
    .await
    .ok();

    // Tables for people, JSON for scripts; a read-only token may list.
    let table = hookline(&pipeline, CONTROL_READ_TOKEN, &["triggers", "list"])
        .await
        .ok();
    let row = table
        .lines()
        .find(|line| line.contains("orders"))
        .unwrap_or_else(|| panic!("no row for orders in\n{table}"));
    assert!(row.contains("shop") && row.contains("crm"), "{row}");
    assert!(table.contains("DESTINATIONS"), "{table}");
    let listed = admin(&pipeline, &["sources", "list", "--json"])
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&token),
        "secrets are masked after the create"
    );

    // Disabling through the CLI closes the source's URL.
    let post = || {
        reqwest::Client::new()
            .post(&ingest_url)
            .bearer_auth(&token)
            .json(&json!({"order": 1}))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 202);
    let disabled = admin(&pipeline, &["sources", "disable", "shop"]).await.ok();
    assert_eq!(disabled.trim(), "Disabled source shop.");
    assert_eq!(post().await.unwrap().status(), 403);
    let shown = admin(&pipeline, &["sources", "get", "shop", "--json"])
        .await
        .json();
    assert_eq!(shown["enabled"], false);
    let only_disabled = admin(&pipeline, &["sources", "list", "--enabled", "false"])
        .await
        .ok();
    assert!(only_disabled.contains("shop"), "{only_disabled}");
    admin(&pipeline, &["sources", "enable", "shop"]).await.ok();
    assert_eq!(post().await.unwrap().status(), 202);

    // Rotating a token: the new one works at once, the old one for the grace period; a
    // rotation with no grace ends the tokens in use at once.
    let status_with = |bearer: String| {
        let url = ingest_url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(bearer)
                .json(&json!({"order": 1}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let rotated = admin(&pipeline, &["sources", "rotate-token", "shop", "--json"])
        .await
        .json();
    let second = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(second, token);
    assert!(
        rotated["previous_tokens_expire_at"].is_string(),
        "{rotated}"
    );
    eventually("ingest to accept the new token", || async {
        (status_with(second.clone()).await == 202).then_some(())
    })
    .await;
    assert_eq!(
        status_with(token.clone()).await,
        202,
        "the old one, in its grace"
    );
    let ended = admin(
        &pipeline,
        &["sources", "rotate-token", "shop", "--grace-seconds", "0"],
    )
    .await
    .ok();
    assert!(ended.contains("no longer accepted"), "{ended}");
    let third = ended.lines().nth(1).unwrap().trim().to_owned();
    assert!(third.starts_with("hl_"), "{ended}");
    eventually("ingest to refuse the token ended at once", || async {
        (status_with(second.clone()).await == 401).then_some(())
    })
    .await;
    assert_eq!(status_with(third.clone()).await, 202);
    assert_eq!(
        status_with(token.clone()).await,
        202,
        "the first token's grace still runs"
    );
    let shown = admin(&pipeline, &["sources", "get", "shop", "--json"])
        .await
        .json()
        .to_string();
    for secret in [&token, &second, &third] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    let not_a_source = admin(&pipeline, &["destinations", "rotate-token", "crm"]).await;
    assert!(
        !not_a_source.success && not_a_source.stderr.contains("only sources"),
        "{}",
        not_a_source.stderr
    );

    // Pausing is for destinations, and shows in their list.
    let paused = admin(&pipeline, &["destinations", "pause", "crm"])
        .await
        .ok();
    assert!(
        paused.starts_with("Paused destination crm: its jobs are held"),
        "{paused}"
    );
    let table = admin(&pipeline, &["destinations", "list"]).await.ok();
    let row = table.lines().find(|line| line.contains("crm")).unwrap();
    assert!(row.contains("paused"), "{table}");
    // Times in tables are at the local offset (a POSIX TZ needs no time zone database).
    let local = hookline_with(
        &pipeline,
        CONTROL_TOKEN,
        &["destinations", "list"],
        &[("TZ", "XYZ-2")],
    )
    .await
    .ok();
    assert!(local.contains("+02:00"), "{local}");
    assert!(table.contains("HELD"), "{table}");
    let resumed = admin(&pipeline, &["destinations", "resume", "crm", "--json"])
        .await
        .json();
    assert!(resumed.get("paused").is_none(), "{resumed}");
    assert_eq!(resumed["held_jobs"], 0);
    // Update merges fields; edit goes through $EDITOR; both keep what they do not touch.
    let updated = admin(
        &pipeline,
        &["destinations", "update", "crm", "--name", "CRM", "--json"],
    )
    .await
    .json();
    assert_eq!(updated["name"], "CRM");
    assert!(updated["url"].as_str().unwrap().ends_with("/hooks/crm"));
    let nothing = admin(&pipeline, &["destinations", "update", "crm"]).await;
    assert!(
        !nothing.success && nothing.stderr.contains("nothing to change"),
        "{}",
        nothing.stderr
    );
    let edited = hookline_with(
        &pipeline,
        CONTROL_TOKEN,
        &["destinations", "edit", "crm", "--json"],
        &[("EDITOR", "sed -i s/CRM/Renamed/")],
    )
    .await
    .json();
    assert_eq!(edited["name"], "Renamed");
    assert!(edited["url"].as_str().unwrap().ends_with("/hooks/crm"));
    let untouched = hookline_with(
        &pipeline,
        CONTROL_TOKEN,
        &["destinations", "edit", "crm"],
        &[("EDITOR", "true")],
    )
    .await
    .ok();
    assert_eq!(untouched.trim(), "No change to destination crm.");
    let not_a_destination = admin(&pipeline, &["sources", "pause", "shop"]).await;
    assert!(
        !not_a_destination.success
            && not_a_destination
                .stderr
                .contains("only destinations can be paused"),
        "{}",
        not_a_destination.stderr
    );

    // Errors name the problem and fail the command.
    let in_use = admin(&pipeline, &["destinations", "delete", "crm"]).await;
    assert!(!in_use.success);
    assert!(
        in_use
            .stderr
            .contains("trigger/orders actions[0].destination"),
        "{}",
        in_use.stderr
    );
    let deleted = admin(&pipeline, &["triggers", "delete", "orders", "--json"])
        .await
        .json();
    assert_eq!(deleted, json!({"id": "orders", "deleted": true}));
    let gone = admin(&pipeline, &["triggers", "get", "orders"]).await;
    assert!(
        !gone.success && gone.stderr.contains("not found"),
        "{}",
        gone.stderr
    );
    let refused = hookline(&pipeline, "wrong-token", &["sources", "list"]).await;
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("HOOKLINE_API_TOKEN"),
        "{}",
        refused.stderr
    );

    // Every call was counted by route template, never by raw path.
    let metrics = reqwest::get(format!("http://{}/metrics", pipeline.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"hookline_control_requests_total{method="POST",route="/api/v1/sources/{id}/disable",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hookline_control_requests_total{method="GET",route="/api/v1/sources",status="401"} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("/api/v1/sources/shop"), "{metrics}");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_previews_saved_and_unsaved_triggers_without_sending() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let pipeline = Stages::all().with_control().start(&settings).await;
    admin(
        &pipeline,
        &[
            "destinations",
            "create",
            "--id",
            "crm",
            "--url",
            &receiver.url("/hooks/crm"),
        ],
    )
    .await
    .ok();
    let source = file("shop.json", r#"{"id": "shop", "auth": [{"type": "open"}]}"#);
    admin(
        &pipeline,
        &["sources", "create", "-f", source.to_str().unwrap()],
    )
    .await
    .ok();
    let trigger = file(
        "orders.json",
        &json!({"id": "orders", "when": {"sources": ["shop"]}, "if": "payload.total > 100",
                "actions": [{"destination": "crm",
                             "body": "{\"email\": {{ payload.customer.email }}, \"total\": {{ payload.total }}}"}]})
        .to_string(),
    );
    admin(
        &pipeline,
        &["triggers", "create", "-f", trigger.to_str().unwrap()],
    )
    .await
    .ok();

    let big = file(
        "big.json",
        r#"{"total": 250, "customer": {"email": "ada@example.org"}}"#,
    );
    let fires = admin(
        &pipeline,
        &[
            "triggers",
            "preview",
            "orders",
            "--event",
            big.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    assert!(fires.starts_with("Fires."), "{fires}");
    assert!(fires.contains(&receiver.url("/hooks/crm")), "{fires}");
    assert!(fires.contains(r#""email": "ada@example.org""#), "{fires}");
    let small = file("small.json", r#"{"total": 5}"#);
    let quiet = admin(
        &pipeline,
        &[
            "triggers",
            "preview",
            "orders",
            "--event",
            small.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    assert_eq!(quiet.trim(), "Does not fire: the `if` condition is false.");
    let anonymous = file("anonymous.json", r#"{"total": 500}"#);
    let fails = admin(
        &pipeline,
        &[
            "triggers",
            "preview",
            "orders",
            "--event",
            anonymous.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        !fails.success,
        "a template failing on the event fails the command"
    );
    assert!(
        fails
            .stderr
            .contains("Fails in actions[0].body (line 1, column 21)")
            && fails.stderr.contains("`payload.customer` is undefined"),
        "{}",
        fails.stderr
    );

    // An unsaved trigger from TOML, with the event's inbound headers in an envelope.
    let draft = file(
        "draft.toml",
        "when = { sources = [\"shop\"], event_type = 'event.headers[\"x-kind\"]', event_types = [\"order.*\"] }\n\
         [[actions]]\ndestination = \"crm\"\nbody = '{\"kind\": {{ event.headers[\"x-kind\"] }}}'\n\
         headers = { x-total = \"{{ payload.total }}\" }\n",
    );
    let envelope = file(
        "envelope.json",
        r#"{"headers": {"X-Kind": "order.paid"}, "body": {"total": 7}}"#,
    );
    let unsaved = admin(
        &pipeline,
        &[
            "triggers",
            "preview",
            "-f",
            draft.to_str().unwrap(),
            "--event",
            envelope.to_str().unwrap(),
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(unsaved["matched"], true, "{unsaved}");
    assert_eq!(unsaved["requests"][0]["body"], r#"{"kind": "order.paid"}"#);
    assert_eq!(unsaved["requests"][0]["headers"]["x-total"], "7");
    let other = admin(
        &pipeline,
        &[
            "triggers",
            "preview",
            "-f",
            draft.to_str().unwrap(),
            "--event",
            envelope.to_str().unwrap(),
            "--header",
            "X-Kind: refund",
        ],
    )
    .await
    .ok();
    assert!(
        other.contains("\"refund\" is not in when.event_types"),
        "{other}"
    );
    let listed = admin(&pipeline, &["triggers", "list", "--json"])
        .await
        .json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the draft was not saved"
    );

    // Previews sent nothing: the first webhook the receiver gets is the event posted after them.
    let url = format!(
        "http://{}/inbound-webhooks/shop",
        pipeline.ingest_addr.unwrap()
    );
    let posted = reqwest::Client::new()
        .post(url)
        .json(&json!({"total": 101, "customer": {"email": "real@example.org"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let received = eventually("the real event to be delivered", || async {
        let received = receiver.received();
        (!received.is_empty()).then_some(received)
    })
    .await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body,
        r#"{"email": "real@example.org", "total": 101}"#
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_a_journey_and_replays_a_dead_letter_after_the_fix() {
    let World {
        kafka: _kafka,
        settings: _settings,
        receiver,
        pipeline,
    } = Stages::all().with_control().world().await;

    // An event delivered: its journey shows the receiver's answer.
    let delivered = accepted_id(post(&pipeline, signup(1)).await).await;
    let journey = eventually("the journey of the delivered event", || async {
        let run = admin(&pipeline, &["events", "get", &delivered, "--json"]).await;
        let journey: Value = serde_json::from_str(&run.stdout).ok()?;
        // The match record and the attempt come from different topics: wait for both.
        let both = journey["deliveries"][0]["status"] == "delivered" && !journey["match"].is_null();
        both.then_some(journey)
    })
    .await;
    assert_eq!(journey["deliveries"][0]["attempts"][0]["status"], 200);
    let table = admin(&pipeline, &["events", "get", &delivered]).await.ok();
    assert!(
        table.contains("delivered") && table.contains("crm"),
        "{table}"
    );

    // The receiver breaks: a 400 is dead-lettered at once.
    receiver.answer(&[400]);
    let failed = accepted_id(post(&pipeline, signup(2)).await).await;
    let dead = eventually("the dead letter", || async {
        let run = admin(
            &pipeline,
            &["dead", "list", "--destination", "crm", "--json"],
        )
        .await;
        let page: Value = serde_json::from_str(&run.stdout).ok()?;
        let items = page["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let listed = admin(&pipeline, &["dead", "list"]).await.ok();
    assert!(listed.contains("REASON"), "{listed}");
    let failed_id = receiver.received()[1].headers["webhook-id"].clone();

    // Fixed (the receiver answers 200 again): replaying the destination's failures delivers the
    // job under the same delivery id.
    let replayed = admin(&pipeline, &["dead", "replay", "--destination", "crm"])
        .await
        .ok();
    assert!(replayed.contains("Replayed 1 jobs"), "{replayed}");
    let again = eventually("the replayed delivery", || async {
        let received = receiver.received();
        (received.len() >= 3).then(|| received[2].clone())
    })
    .await;
    assert_eq!(again.headers["webhook-id"], failed_id);
    assert_eq!(again.json()["event"], failed.as_str());

    // A test send goes through the dispatcher and shows the answer; the attempts list has all.
    let tested = admin(&pipeline, &["test", "crm"]).await.ok();
    assert!(tested.contains("delivered"), "{tested}");
    assert_eq!(receiver.received().len(), 4);
    let attempts = eventually("every attempt in the store", || async {
        let run = admin(
            &pipeline,
            &["attempts", "list", "--destination", "crm", "--json"],
        )
        .await;
        let page: Value = serde_json::from_str(&run.stdout).ok()?;
        let items = page["items"].as_array()?.clone();
        (items.len() >= 4).then_some(items)
    })
    .await;
    let outcomes: Vec<&str> = attempts
        .iter()
        .filter_map(|attempt| attempt["outcome"].as_str())
        .collect();
    assert!(outcomes.contains(&"dead"), "{outcomes:?}");
    pipeline.stop().await.unwrap();
}

/// A long-running `hookline` child process, killed when dropped (also when the test fails).
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (no brokers from the environment), with its standard output to read.
fn spawn(command: &mut Command) -> (Spawned, std::process::ChildStdout) {
    let mut child = command
        .env_remove("HOOKLINE_KAFKA_BROKERS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (Spawned(child), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_dev_prints_its_broker_and_takes_a_read_only_token() {
    use std::io::BufRead as _;

    let (_dev, stdout) = spawn(Command::new(env!("CARGO_BIN_EXE_hookline")).args([
        "dev",
        "--ingest-addr",
        "127.0.0.1:0",
        "--control-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--echo-addr",
        "127.0.0.1:0",
        "--control-read-token",
        "dashboard-token",
    ]));
    // Everything up to the line that names the control URL (the last one it prints at start).
    let printed = tokio::task::spawn_blocking(move || {
        let mut printed = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("export HOOKLINE_API_URL=") {
                break;
            }
        }
        printed
    });
    let printed = tokio::time::timeout(harness::PATIENCE, printed)
        .await
        .expect("hookline dev did not get ready")
        .unwrap();
    let after = |marker: &str| {
        let start = printed
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in\n{printed}"))
            + marker.len();
        printed[start..]
            .split(|c: char| c.is_whitespace() || c == ',')
            .next()
            .unwrap()
            .to_owned()
    };
    let brokers = after("Its embedded Kafka broker listens on ");
    let control = after("export HOOKLINE_API_URL=");

    // The printed broker takes a `hookline apply` from another process.
    let file = file(
        "crm.toml",
        "[[destinations]]\nid = \"elsewhere\"\nurl = \"https://example.com/hooks\"\n",
    );
    let apply = tokio::task::spawn_blocking({
        let path = file.to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_hookline"))
                .args(["apply", "--kafka-brokers", &brokers, "-f"])
                .arg(path)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );

    // The read-only token reads (and sees what was applied), and may not write.
    let client = reqwest::Client::new();
    eventually("the applied destination through the API", || async {
        let response = client
            .get(format!("{control}/api/v1/destinations/elsewhere"))
            .bearer_auth("dashboard-token")
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let write = client
        .post(format!("{control}/api/v1/destinations/elsewhere/pause"))
        .bearer_auth("dashboard-token")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_without_a_broker_names_the_brokers_and_the_flag() {
    // A loopback port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = file(
        "one.toml",
        "[[destinations]]\nid = \"a\"\nurl = \"https://example.com/hooks\"\n",
    );
    let path = file.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["apply", "--kafka-brokers", &closed.to_string(), "-f"])
            .arg(path)
            .env_remove("HOOKLINE_KAFKA_BROKERS")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&closed.to_string()) && stderr.contains("--kafka-brokers"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_through_the_api_sees_changed_secrets_and_writes_only_what_changed() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let pipeline = Stages::ingest_and_control().start(&settings).await;
    let url = format!("http://{}", pipeline.control_addr.unwrap());
    let resources = |host: &str, secret: &str| {
        format!(
            "[[sources]]\nid = \"shop\"\nauth = [{{ type = \"bearer\", tokens = [\"tok-1\"] }}]\n\n\
             [[destinations]]\nid = \"crm\"\nurl = \"https://{host}/hooks\"\nsecrets = [\"{secret}\"]\n"
        )
    };
    let first = file(
        "first.toml",
        &resources("a.example.com", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    let apply = |path: &tempfile::TempPath, extra: &[&str]| {
        let mut args = vec!["apply", "-f", path.to_str().unwrap(), "--api-url", &url];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let pipeline = &pipeline;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            admin(pipeline, &args).await.ok()
        }
    };
    let created = apply(&first, &[]).await;
    assert!(
        created.contains("created   source/shop")
            && created.contains("created   destination/crm")
            && created.contains("2 created, 0 changed"),
        "{created}"
    );
    let again = apply(&first, &[]).await;
    assert!(
        again.contains("0 created, 0 changed, 0 deleted, 2 unchanged"),
        "{again}"
    );

    // Another URL and another secret: the dry run sees both, the secret masked, and writes nothing.
    let second = file(
        "second.toml",
        &resources("b.example.com", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    );
    let planned = apply(&second, &["--dry-run"]).await;
    assert!(
        planned.contains(r#"url: "https://a.example.com/hooks" → "https://b.example.com/hooks""#)
            && planned.contains("secrets[0]: (secret changed)")
            && planned.contains("(dry run: nothing was written)"),
        "{planned}"
    );
    assert!(!planned.contains("C2FVsBQI"), "{planned}");
    let shown = admin(&pipeline, &["destinations", "get", "crm", "--json"])
        .await
        .json();
    assert_eq!(shown["url"], "https://a.example.com/hooks");
    let applied = apply(&second, &[]).await;
    assert!(applied.contains("0 created, 1 changed"), "{applied}");
    let shown = admin(&pipeline, &["destinations", "get", "crm", "--json"])
        .await
        .json();
    assert_eq!(shown["url"], "https://b.example.com/hooks");

    // A read-only token may not apply.
    let path = first.to_str().unwrap().to_owned();
    let refused = hookline(
        &pipeline,
        CONTROL_READ_TOKEN,
        &["apply", "-f", &path, "--api-url", &url],
    )
    .await;
    assert!(!refused.success, "{}", refused.stdout);
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_run_serves_every_role_in_one_process_on_a_kafka_cluster() {
    use std::io::BufRead as _;

    use hookline_runtime::settings::GroupProtocol;

    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let resources = harness::stages::resources(&receiver);
    hookline::resource_file::apply(&settings, &resources, false, false)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();

    let group_protocol = match settings.group_protocol {
        GroupProtocol::Classic => "classic",
        GroupProtocol::Consumer => "consumer",
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
    command
        .args(["--log-format", "json", "run", "--kafka-brokers"])
        .arg(&settings.brokers)
        .arg("--topic-prefix")
        .arg(&settings.topic_prefix)
        .args(["--group-protocol", group_protocol, "--kafka-fetch-wait-ms"])
        .arg(settings.fetch_wait_ms.to_string())
        .arg("--create-topics")
        .arg(settings.topics.create.to_string())
        .args([
            "--ingest-addr",
            "127.0.0.1:0",
            "--control-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--control-token",
            CONTROL_TOKEN,
            "--dispatcher-allow-cidr",
            "127.0.0.0/8",
            "--data-dir",
        ])
        .arg(data.path());
    let (_run, stdout) = spawn(&mut command);
    // Where ingest and control listen, from their log lines at start.
    let addresses = tokio::task::spawn_blocking(move || {
        let (mut ingest, mut control) = (None, None);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(entry) = serde_json::from_str::<Value>(&line.unwrap()) else {
                continue;
            };
            let addr = entry["addr"].as_str().map(str::to_owned);
            match entry["message"].as_str() {
                Some("Ingest listening.") => ingest = addr,
                Some("Control API listening.") => control = addr,
                _ => {}
            }
            if let (Some(ingest), Some(control)) = (&ingest, &control) {
                return (ingest.clone(), control.clone());
            }
        }
        panic!("hookline run ended before ingest and control listened");
    });
    let (ingest, control) = tokio::time::timeout(harness::PATIENCE, addresses)
        .await
        .expect("hookline run did not start ingest and control")
        .unwrap();

    // Control serves the applied resources; an event posted to ingest is processed and delivered.
    let client = reqwest::Client::new();
    eventually("control to see the applied destination", || async {
        let response = client
            .get(format!("http://{control}/api/v1/destinations/crm"))
            .bearer_auth(CONTROL_TOKEN)
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let id = eventually("ingest to accept an event", || async {
        let response = client
            .post(format!("http://{ingest}/inbound-webhooks/app"))
            .bearer_auth(harness::stages::TOKEN)
            .json(&signup(7))
            .send()
            .await
            .ok()?;
        (response.status() == 202).then_some(accepted_id(response).await)
    })
    .await;
    let delivered = eventually("the delivery of the event", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(delivered.json()["event"], id.as_str(), "{}", delivered.body);
    assert_eq!(delivered.json()["seq"], 7);
}
