//! What happened, through the control API's event store: `hookline events get|list|replay`,
//! `hookline attempts list`, `hookline dead list|replay` and `hookline test DESTINATION`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{ApiArgs, output};

/// `hookline events …`.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: EventAction,
}

/// What to do with events.
#[derive(Debug, Subcommand)]
pub enum EventAction {
    /// An event's journey: when and from where it came, which triggers matched (or why none
    /// did), its deliveries and every attempt with the receiver's answer.
    Get {
        /// The event id (the `id` ingest answered with).
        id: String,
    },
    /// A source's events and the requests ingest refused, newest first.
    List {
        /// The source.
        #[arg(long)]
        source: String,
        /// Only accepted events (`event`) or only refused requests (`rejected`).
        #[arg(long, value_parser = ["event", "rejected"])]
        kind: Option<String>,
        /// The window and page size.
        #[command(flatten)]
        window: Window,
    },
    /// Send stored events through the processor again (after fixing a trigger, say): by id,
    /// or every event of a source in a time window.
    Replay(Selection),
}

/// `hookline attempts …`.
#[derive(Debug, Args)]
pub struct AttemptArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: AttemptAction,
}

/// What to do with attempts.
#[derive(Debug, Subcommand)]
pub enum AttemptAction {
    /// A destination's delivery attempts, newest first.
    List {
        /// The destination.
        #[arg(long)]
        destination: String,
        /// Only attempts with this outcome.
        #[arg(long, value_parser = ["delivered", "retrying", "dead", "blocked"])]
        outcome: Option<String>,
        /// The window and page size.
        #[command(flatten)]
        window: Window,
    },
}

/// `hookline dead …`.
#[derive(Debug, Args)]
pub struct DeadArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: DeadAction,
}

/// What to do with dead letters.
#[derive(Debug, Subcommand)]
pub enum DeadAction {
    /// Dead letters, newest first, with their reasons.
    List {
        /// Only those of this destination.
        #[arg(long)]
        destination: Option<String>,
        /// Only those of this source.
        #[arg(long)]
        source: Option<String>,
        /// Only those with this reason (`exhausted`, `rejected`, `render_failed`, …).
        #[arg(long)]
        reason: Option<String>,
        /// The window and page size.
        #[command(flatten)]
        window: Window,
    },
    /// Send dead jobs to their destinations again (new attempts, same delivery ids), and dead
    /// events through the processor: by id, or every one of a destination, source or reason in a
    /// time window. Letters already replayed or discarded are skipped unless `--force`.
    Replay(Selection),
    /// Mark dead letters discarded: they stay listed, and are not replayed unless `--force`.
    Discard(Selection),
}

/// A time window and a page size.
#[derive(Debug, Args)]
pub struct Window {
    /// From this time on (RFC 3339, for example 2026-11-23T10:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Which records a replay takes: ids, or a filter.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true)
    .args(["ids", "destination", "source", "reason", "since"])))]
pub struct Selection {
    /// The ids (dead letter ids, or event ids for `events replay`).
    pub ids: Vec<String>,
    /// Those of this destination (dead letters only).
    #[arg(long, conflicts_with = "ids")]
    pub destination: Option<String>,
    /// Those of this source.
    #[arg(long, conflicts_with = "ids")]
    pub source: Option<String>,
    /// Those with this reason (dead letters only).
    #[arg(long, conflicts_with = "ids")]
    pub reason: Option<String>,
    /// From this time on (RFC 3339).
    #[arg(long, conflicts_with = "ids")]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long, conflicts_with = "ids")]
    pub until: Option<String>,
    /// Replay every delivery of the events, also those that already succeeded (by default a
    /// replay sends only what did not deliver).
    #[arg(long)]
    pub all: bool,
    /// List exactly what would be sent (or discarded), and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also dead letters that are not open (already replayed, or discarded).
    #[arg(long)]
    pub force: bool,
}

/// `hookline test DESTINATION`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// The destination to send a test webhook to.
    pub destination: String,
    /// A JSON file with the body to send; a sample event when absent.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// A header to add, `Name: value`, repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

/// Runs `hookline events …`.
pub async fn events(args: EventArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let answer = match &args.action {
        EventAction::Get { id } => client.fetch(&["events", id], &[]).await?,
        EventAction::List {
            source,
            kind,
            window,
        } => {
            let mut query = window.query();
            query.extend(kind.iter().map(|kind| ("kind", kind.clone())));
            client.fetch(&["sources", source, "events"], &query).await?
        }
        EventAction::Replay(selection) => {
            client
                .send(&["events", "replay"], &selection.request())
                .await?
        }
    };
    if args.api.json {
        return output::json(&answer);
    }
    match &args.action {
        EventAction::Get { .. } => print_journey(&answer),
        EventAction::List { .. } => print_page(&answer, EVENT_COLUMNS, "events"),
        EventAction::Replay(_) => print_replay(&answer),
    }
    Ok(())
}

/// Runs `hookline attempts …`.
pub async fn attempts(args: AttemptArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let AttemptAction::List {
        destination,
        outcome,
        window,
    } = &args.action;
    let mut query = window.query();
    query.extend(outcome.iter().map(|outcome| ("outcome", outcome.clone())));
    let answer = client
        .fetch(&["destinations", destination, "attempts"], &query)
        .await?;
    if args.api.json {
        return output::json(&answer);
    }
    print_page(&answer, ATTEMPT_COLUMNS, "attempts");
    Ok(())
}

/// Runs `hookline dead …`.
pub async fn dead(args: DeadArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let answer = match &args.action {
        DeadAction::List {
            destination,
            source,
            reason,
            window,
        } => {
            let mut query = window.query();
            for (name, value) in [
                ("destination", destination),
                ("source", source),
                ("reason", reason),
            ] {
                query.extend(value.iter().map(|value| (name, value.clone())));
            }
            client.fetch(&["dead-letters"], &query).await?
        }
        DeadAction::Replay(selection) => {
            client
                .send(&["dead-letters", "replay"], &selection.request())
                .await?
        }
        DeadAction::Discard(selection) => {
            client
                .send(&["dead-letters", "discard"], &selection.request())
                .await?
        }
    };
    if args.api.json {
        return output::json(&answer);
    }
    match &args.action {
        DeadAction::List { .. } => print_page(&answer, DEAD_COLUMNS, "dead letters"),
        DeadAction::Replay(_) => print_replay(&answer),
        DeadAction::Discard(_) => print_discard(&answer),
    }
    Ok(())
}

/// Runs `hookline test DESTINATION`; fails unless the receiver answered 2xx.
pub async fn test(args: TestArgs) -> anyhow::Result<()> {
    let mut request = Map::new();
    if let Some(path) = &args.body {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        request.insert("body".to_owned(), body);
    }
    if !args.headers.is_empty() {
        request.insert("headers".to_owned(), headers(&args.headers)?);
    }
    let answer = args
        .api
        .client()?
        .send(
            &["destinations", &args.destination, "test"],
            &Value::Object(request),
        )
        .await?;
    if args.api.json {
        output::json(&answer)?;
    } else {
        print_test(&answer);
    }
    match answer["attempt"]["outcome"].as_str() {
        Some("delivered") => Ok(()),
        Some(outcome) => bail!("the test webhook was not delivered ({outcome})"),
        None => bail!("no attempt yet: the dispatcher has not delivered the test webhook in time"),
    }
}

impl Window {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", self.limit.to_string())];
        query.extend(self.since.iter().map(|since| ("since", since.clone())));
        query.extend(self.until.iter().map(|until| ("until", until.clone())));
        query
    }
}

impl Selection {
    /// The API's replay request: `{"ids": [...]}`, or the filter's fields that are set.
    fn request(&self) -> Value {
        let mut request = Map::new();
        for (name, set) in [
            ("all", self.all),
            ("dry_run", self.dry_run),
            ("force", self.force),
        ] {
            if set {
                request.insert(name.to_owned(), Value::Bool(true));
            }
        }
        if !self.ids.is_empty() {
            request.insert("ids".to_owned(), json!(self.ids));
            return Value::Object(request);
        }
        for (name, value) in [
            ("destination", &self.destination),
            ("source", &self.source),
            ("reason", &self.reason),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(value) = value {
                request.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        Value::Object(request)
    }
}

/// `Name: value` headers as a JSON object.
fn headers(headers: &[String]) -> anyhow::Result<Value> {
    let mut object = Map::new();
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("--header {header:?} is not `Name: value`");
        };
        object.insert(
            name.trim().to_owned(),
            Value::String(value.trim().to_owned()),
        );
    }
    Ok(Value::Object(object))
}

/// Columns of a list: the header, and where in each item its value is (JSON pointers; the first
/// one present).
type Columns = &'static [(&'static str, &'static [&'static str])];

/// The columns of a source's events and refused requests.
const EVENT_COLUMNS: Columns = &[
    ("AT", &["/received_at", "/at"]),
    ("EVENT / REQUEST", &["/event_id", "/request_id"]),
    ("KIND", &["/kind"]),
    ("MATCH", &["/match_outcome"]),
    ("FROM", &["/client"]),
    ("REFUSED", &["/status"]),
    ("WHY", &["/message"]),
];

/// The columns of attempts.
const ATTEMPT_COLUMNS: Columns = &[
    ("STARTED", &["/started_at"]),
    ("DELIVERY", &["/delivery_id"]),
    ("ATTEMPT", &["/attempt"]),
    ("OUTCOME", &["/outcome"]),
    ("STATUS", &["/status"]),
    ("SECONDS", &["/latency_seconds"]),
    ("ERROR", &["/error"]),
];

/// The columns of dead letters: what died (a job names its delivery, event and destination; an
/// event its id) and why.
const DEAD_COLUMNS: Columns = &[
    ("DEAD AT", &["/dead_at"]),
    ("ID", &["/id"]),
    ("DELIVERY", &["/payload/job/delivery_id"]),
    (
        "EVENT",
        &["/payload/job/event_id", "/payload/metadata/event_id"],
    ),
    ("DESTINATION", &["/payload/job/destination_id"]),
    ("REASON", &["/reason"]),
    ("STATE", &["/state"]),
    ("ATTEMPTS", &["/attempts"]),
    ("ERROR", &["/error"]),
];

fn print_page(page: &Value, columns: Columns, what: &str) {
    let items = page["items"].as_array().map_or(&[][..], Vec::as_slice);
    if items.is_empty() {
        println!("No {what}.");
        return;
    }
    output::rows(
        columns.iter().map(|(header, _)| *header),
        items.iter().map(|item| page_row(item, columns)),
    );
    if page["next_cursor"].is_string() {
        println!("(more: raise --limit, or narrow --since/--until)");
    }
}

fn page_row(item: &Value, columns: Columns) -> Vec<String> {
    columns
        .iter()
        .map(|(_, pointers)| {
            pointers
                .iter()
                .filter_map(|pointer| item.pointer(pointer))
                .find(|value| !value.is_null())
                .map(output::cell)
                .unwrap_or_default()
        })
        .collect()
}

fn print_journey(journey: &Value) {
    let matched = &journey["match"];
    output::rows(
        ["FIELD", "VALUE"],
        [
            ("event", &journey["event_id"]),
            ("source", &journey["source"]),
            ("received at", &journey["received_at"]),
            ("from", &journey["client"]),
            ("bytes", &journey["size_bytes"]),
            ("match", &matched["outcome"]),
            ("match error", &matched["error"]),
        ]
        .into_iter()
        .map(|(field, value)| vec![field.to_owned(), output::cell(value)]),
    );
    for replay in journey["replays"].as_array().map_or(&[][..], Vec::as_slice) {
        match replay["by"].as_str() {
            Some(by) => println!("Replayed at {} by {by}.", output::cell(&replay["at"])),
            None => println!("Replayed at {}.", output::cell(&replay["at"])),
        }
    }
    let triggers = trigger_rows(journey);
    if triggers.is_empty() {
        println!("No trigger looked at this event (yet).");
    } else {
        output::rows(
            [
                "TRIGGER",
                "ACTION",
                "DESTINATION",
                "RESULT",
                "DELIVERY",
                "DETAIL",
            ],
            triggers,
        );
    }
    let attempts = attempt_rows(journey);
    if !attempts.is_empty() {
        output::rows(
            [
                "DELIVERY", "ATTEMPT", "STARTED", "OUTCOME", "HTTP", "MS", "ANSWER", "ERROR",
            ],
            attempts,
        );
    }
}

/// One row per trigger that did not fire (and why), and per action of those that did: delivered
/// (with the delivery's state) or skipped, and why.
fn trigger_rows(journey: &Value) -> Vec<Vec<String>> {
    let deliveries = journey["deliveries"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let state_of = |delivery_id: &Value| {
        deliveries
            .iter()
            .find(|delivery| &delivery["delivery_id"] == delivery_id)
            .map_or_else(
                || "pending".to_owned(),
                |delivery| output::cell(&delivery["status"]),
            )
    };
    let mut rows = Vec::new();
    for trigger in journey["match"]["triggers"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        let id = output::cell(&trigger["trigger_id"]);
        let error = output::cell(&trigger["error"]);
        let not_fired = match trigger["result"].as_str() {
            Some("fired") => None,
            Some("other_event_type") => Some((
                "no_match",
                "the event type is not in when.event_types".to_owned(),
            )),
            Some("condition_false") => Some(("condition_false", String::new())),
            _ => Some(("render_failed", error.clone())),
        };
        if let Some((result, detail)) = not_fired {
            rows.push(vec![
                id,
                String::new(),
                String::new(),
                result.to_owned(),
                String::new(),
                detail,
            ]);
            continue;
        }
        let mut actions: Vec<(u64, Vec<String>)> = Vec::new();
        for produced in trigger["deliveries"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            actions.push((
                produced["action"].as_u64().unwrap_or_default(),
                vec![
                    output::cell(&produced["destination_id"]),
                    state_of(&produced["delivery_id"]),
                    output::cell(&produced["delivery_id"]),
                    String::new(),
                ],
            ));
        }
        for skipped in trigger["skipped"].as_array().map_or(&[][..], Vec::as_slice) {
            let reason = output::cell(&skipped["reason"]);
            let detail = if matches!(reason.as_str(), "render_failed" | "too_large") {
                error.clone()
            } else {
                String::new()
            };
            actions.push((
                skipped["action"].as_u64().unwrap_or_default(),
                vec![
                    output::cell(&skipped["destination_id"]),
                    reason,
                    String::new(),
                    detail,
                ],
            ));
        }
        actions.sort_by_key(|(action, _)| *action);
        for (action, cells) in actions {
            let mut row = vec![id.clone(), action.to_string()];
            row.extend(cells);
            rows.push(row);
        }
    }
    rows
}

/// One row per attempt of each delivery: the receiver's answer and our error apart, the duration
/// in milliseconds.
fn attempt_rows(journey: &Value) -> Vec<Vec<String>> {
    let deliveries = journey["deliveries"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    deliveries
        .iter()
        .flat_map(|delivery| {
            let attempts = delivery["attempts"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            attempts.iter().map(|attempt| {
                let ms = attempt["latency_seconds"]
                    .as_f64()
                    .map(|seconds| format!("{:.0}", seconds * 1000.0))
                    .unwrap_or_default();
                vec![
                    output::cell(&delivery["delivery_id"]),
                    output::cell(&attempt["attempt"]),
                    output::cell(&attempt["started_at"]),
                    output::cell(&attempt["outcome"]),
                    output::cell(&attempt["status"]),
                    ms,
                    output::cell(&attempt["response_body"]),
                    output::cell(&attempt["error"]),
                ]
            })
        })
        .collect()
}

fn print_replay(result: &Value) {
    let dry_run = result["dry_run"].as_bool() == Some(true);
    println!(
        "{} {} jobs and {} events{}; {} deliveries that had succeeded are not sent again{}.",
        if dry_run { "Would replay" } else { "Replayed" },
        output::cell(&result["replayed_jobs"]),
        output::cell(&result["replayed_events"]),
        if result["truncated"].as_bool() == Some(true) {
            " (stopped at the limit: replay again for the rest)"
        } else {
            ""
        },
        output::cell(&result["already_delivered"]),
        if dry_run { "; nothing was sent" } else { "" },
    );
    for skipped in result["skipped"].as_array().map_or(&[][..], Vec::as_slice) {
        println!("  skipped: {}", output::cell(skipped));
    }
    let plan = result["would_send"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !plan.is_empty() {
        output::rows(
            [
                "EVENT",
                "TRIGGER",
                "ACTION",
                "DESTINATION",
                "RESULT",
                "DELIVERY",
                "DETAIL",
            ],
            plan.iter().map(|entry| {
                [
                    "event_id",
                    "trigger_id",
                    "action",
                    "destination_id",
                    "result",
                    "delivery_id",
                ]
                .iter()
                .map(|field| output::cell(&entry[*field]))
                .chain([output::cell(&entry["error"]) + &output::cell(&entry["url"])])
                .collect()
            }),
        );
    }
}

fn print_discard(result: &Value) {
    let ids = result["discarded"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let ids: Vec<String> = ids.iter().map(output::cell).collect();
    println!(
        "{} {} dead letters{}{}",
        if result["dry_run"].as_bool() == Some(true) {
            "Would discard"
        } else {
            "Discarded"
        },
        ids.len(),
        if ids.is_empty() { "" } else { ": " },
        ids.join(", ")
    );
    for skipped in result["skipped"].as_array().map_or(&[][..], Vec::as_slice) {
        println!("  skipped: {}", output::cell(skipped));
    }
}

fn print_test(result: &Value) {
    let attempt = &result["attempt"];
    output::rows(
        ["FIELD", "VALUE"],
        [
            ("delivery", &result["delivery_id"]),
            ("outcome", &attempt["outcome"]),
            ("status", &attempt["status"]),
            ("seconds", &attempt["latency_seconds"]),
            ("answer", &attempt["response_body"]),
            ("error", &attempt["error"]),
        ]
        .into_iter()
        .map(|(field, value)| vec![field.to_owned(), output::cell(value)]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(ids: &[&str]) -> Selection {
        Selection {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            destination: None,
            source: None,
            reason: None,
            since: None,
            until: None,
            all: false,
            dry_run: false,
            force: false,
        }
    }

    #[test]
    fn a_replay_takes_ids_or_the_filters_that_are_set() {
        assert_eq!(
            selection(&["d1", "d2"]).request(),
            json!({"ids": ["d1", "d2"]})
        );
        let filtered = Selection {
            destination: Some("crm".to_owned()),
            since: Some("2026-11-23T10:00:00Z".to_owned()),
            ..selection(&[])
        };
        assert_eq!(
            filtered.request(),
            json!({"destination": "crm", "since": "2026-11-23T10:00:00Z"})
        );
        let dry = Selection {
            dry_run: true,
            all: true,
            ..selection(&["e1"])
        };
        assert_eq!(
            dry.request(),
            json!({"ids": ["e1"], "all": true, "dry_run": true})
        );
    }

    #[test]
    fn the_journey_shows_every_trigger_and_action_and_each_attempt() {
        let journey = json!({
            "event_id": "evt_1",
            "match": {"outcome": "partial", "triggers": [
                {"trigger_id": "a", "result": "fired", "error": "trigger a: actions[1].body: undefined value (line 2, column 3)",
                 "deliveries": [{"delivery_id": "msg_1", "action": 0, "destination_id": "crm"}],
                 "skipped": [{"action": 2, "destination_id": "off", "reason": "destination_disabled"},
                             {"action": 1, "destination_id": "crm", "reason": "render_failed"}]},
                {"trigger_id": "b", "result": "condition_false", "deliveries": [], "skipped": []},
                {"trigger_id": "c", "result": "other_event_type", "deliveries": [], "skipped": []},
            ]},
            "deliveries": [{"delivery_id": "msg_1", "status": "delivered", "attempts": [
                {"attempt": 1, "started_at": "t1", "outcome": "failed", "status": 503, "latency_seconds": 0.0126, "response_body": "busy", "error": null},
                {"attempt": 2, "started_at": "t2", "outcome": "delivered", "status": 200, "latency_seconds": 0.004, "response_body": "ok", "error": null},
            ]}],
        });
        let row = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            trigger_rows(&journey),
            [
                row(&["a", "0", "crm", "delivered", "msg_1", ""]),
                row(&[
                    "a",
                    "1",
                    "crm",
                    "render_failed",
                    "",
                    "trigger a: actions[1].body: undefined value (line 2, column 3)"
                ]),
                row(&["a", "2", "off", "destination_disabled", "", ""]),
                row(&["b", "", "", "condition_false", "", ""]),
                row(&[
                    "c",
                    "",
                    "",
                    "no_match",
                    "",
                    "the event type is not in when.event_types"
                ]),
            ]
        );
        assert_eq!(
            attempt_rows(&journey),
            [
                row(&["msg_1", "1", "t1", "failed", "503", "13", "busy", ""]),
                row(&["msg_1", "2", "t2", "delivered", "200", "4", "ok", ""]),
            ]
        );
    }

    #[test]
    fn dead_letters_show_what_died() {
        let job = json!({"id": "3-14", "reason": "exhausted", "attempts": 5, "payload": {"kind": "job",
            "job": {"delivery_id": "msg_1", "event_id": "evt_1", "destination_id": "crm"}}});
        let event = json!({"id": "3-15", "reason": "render_failed", "payload": {"kind": "event",
            "metadata": {"event_id": "evt_2"}, "body": "{}"}});
        assert_eq!(
            page_row(&job, DEAD_COLUMNS)[1..6],
            ["3-14", "msg_1", "evt_1", "crm", "exhausted"]
        );
        assert_eq!(
            page_row(&event, DEAD_COLUMNS)[1..6],
            ["3-15", "", "evt_2", "", "render_failed"]
        );
    }

    #[test]
    fn headers_need_a_colon() {
        assert_eq!(
            headers(&["X-Env: prod".to_owned()]).unwrap(),
            json!({"X-Env": "prod"})
        );
        assert!(headers(&["no colon".to_owned()]).is_err());
    }

    #[test]
    fn windows_always_send_their_limit() {
        let window = Window {
            since: Some("2026-11-23T10:00:00Z".to_owned()),
            until: None,
            limit: 20,
        };
        assert_eq!(
            window.query(),
            [
                ("limit", "20".to_owned()),
                ("since", "2026-11-23T10:00:00Z".to_owned())
            ]
        );
    }
}
