//! `hookline triggers …`: the commands every kind has, and `preview`, which asks the control API
//! what a saved or an unsaved trigger would send for a sample event.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use hookline_schemas::ResourceKind;
use serde_json::{Map, Value, json};

use super::resources::{self, Action, read_object};
use super::{ApiArgs, output};

/// The triggers' commands.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: TriggerAction,
}

/// What to do with triggers.
#[derive(Debug, Subcommand)]
pub enum TriggerAction {
    /// The commands of every kind.
    #[command(flatten)]
    Common(Action),
    /// Show what a saved trigger (by id) or an unsaved one (`-f`) would send for a sample event,
    /// rendered by the control API without sending anything; exits non-zero when a condition
    /// or template fails on the event.
    Preview(PreviewArgs),
}

/// `preview`'s trigger and sample event.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("trigger").required(true).args(["id", "file"])))]
pub struct PreviewArgs {
    /// The saved trigger's id.
    pub id: Option<String>,
    /// An unsaved trigger, as a JSON or TOML file (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// A JSON file: the event's body, or `{"headers": {...}, "body": ...}` with its inbound
    /// headers (the form of `hookline preview`'s samples).
    #[arg(long)]
    pub event: PathBuf,
    /// An inbound header, `Name: value`, repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The source the event arrives from; the trigger's first source unless set.
    #[arg(long)]
    pub source: Option<String>,
}

/// Runs a trigger command.
pub async fn run(args: TriggerArgs) -> anyhow::Result<()> {
    match args.action {
        TriggerAction::Common(action) => {
            resources::run(
                ResourceKind::Trigger,
                resources::ResourceArgs {
                    api: args.api,
                    action,
                },
            )
            .await
        }
        TriggerAction::Preview(preview) => run_preview(&args.api, &preview).await,
    }
}

async fn run_preview(api: &ApiArgs, args: &PreviewArgs) -> anyhow::Result<()> {
    let body = preview_body(args)?;
    let answer = api.client()?.preview(args.id.as_deref(), &body).await?;
    if api.json {
        output::json(&answer)?;
    } else {
        print_preview(&answer);
    }
    if let Some(error) = answer.get("error").filter(|error| !error.is_null()) {
        bail!(
            "the trigger fails on this event at {}: the processor would dead-letter it",
            error["field"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// The request body: the sample event, and the unsaved trigger when there is one.
fn preview_body(args: &PreviewArgs) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(&args.event)
        .with_context(|| format!("could not read {}", args.event.display()))?;
    let (mut headers, body) = crate::preview::sample(&text);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} is not `Name: value`"))?;
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let payload: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{} is not JSON", args.event.display()))?;
    let mut event = Map::new();
    event.insert("payload".into(), payload);
    event.insert("headers".into(), json!(headers));
    if let Some(source) = &args.source {
        event.insert("source".into(), source.clone().into());
    }
    let mut body = json!({ "event": event });
    if let Some(file) = &args.file {
        body["trigger"] = Value::Object(read_object(file)?);
    }
    Ok(body)
}

/// Prints whether the trigger fires, each request it would send, and what failed.
fn print_preview(answer: &Value) {
    let reason = answer["reason"].as_str().unwrap_or_default();
    if answer["matched"] == Value::Bool(true) {
        println!("Fires.");
    } else {
        println!("Does not fire: {reason}.");
    }
    for request in answer["requests"].as_array().into_iter().flatten() {
        println!(
            "\n{} {}   (actions[{}] → destination {})",
            request["method"].as_str().unwrap_or_default(),
            request["url"].as_str().unwrap_or_default(),
            request["action"],
            request["destination"].as_str().unwrap_or_default(),
        );
        for (name, value) in request["headers"].as_object().into_iter().flatten() {
            println!("{name}: {}", value.as_str().unwrap_or_default());
        }
        // As rendered, byte for byte: that is what the receiver gets.
        println!("\n{}", request["body"].as_str().unwrap_or_default());
    }
    for skipped in answer["skipped"].as_array().into_iter().flatten() {
        println!("Skipped {}", skipped.as_str().unwrap_or_default());
    }
    let error = &answer["error"];
    if !error.is_null() {
        let position = error["line"]
            .as_u64()
            .zip(error["column"].as_u64())
            .map(|(line, column)| format!(" (line {line}, column {column})"))
            .unwrap_or_default();
        eprintln!(
            "Fails in {}{position}: {}",
            error["field"].as_str().unwrap_or_default(),
            error["message"].as_str().unwrap_or_default()
        );
    }
}
