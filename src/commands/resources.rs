//! `hookline sources|destinations|triggers list|get|create|update|edit|delete|enable|disable`,
//! and `hookline destinations pause|resume`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hookline_control::kind::plural;
use hookline_schemas::ResourceKind;
use serde_json::{Map, Value};

use super::ApiArgs;
use super::output;

/// A kind's commands.
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with resources of one kind.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// List them (every page), in id order.
    List(ListArgs),
    /// Show one, secrets masked.
    Get {
        /// The id.
        id: String,
    },
    /// Create one from a JSON or TOML file and/or flags; generated tokens and secrets are shown
    /// this once.
    Create(CreateArgs),
    /// Change fields of one: a JSON or TOML file of the fields to change (a JSON merge patch:
    /// `null` removes a field) and/or flags. Refused if someone changed it since it was read.
    Update(UpdateArgs),
    /// Open one in $VISUAL or $EDITOR (secrets masked: leave them as they are to keep them) and
    /// replace it with what was saved. Refused if someone changed it meanwhile.
    Edit {
        /// The id.
        id: String,
    },
    /// Delete one.
    Delete {
        /// The id.
        id: String,
    },
    /// Enable one (a destination also forgets why it was disabled).
    Enable {
        /// The id.
        id: String,
    },
    /// Disable one: a source's URL answers 403, a trigger stops firing, a destination stops
    /// receiving.
    Disable {
        /// The id.
        id: String,
    },
    /// Pause a destination: its jobs are held, in arrival order, until it is resumed; nothing
    /// is dropped (unlike `disable`).
    Pause {
        /// The id.
        id: String,
    },
    /// Resume a paused destination: its held jobs are delivered, in the order they were held,
    /// with their original delivery ids.
    Resume {
        /// The id.
        id: String,
    },
    /// Give a source a new bearer token (shown this once); the tokens in use now stay valid for
    /// a grace period, so senders can switch, and are removed at the next rotation after it.
    RotateToken {
        /// The id.
        id: String,
        /// How long the current tokens stay valid, in seconds: a day by default, at most 30
        /// days; 0 ends them now.
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
}

/// `list`'s filters.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only enabled (true) or disabled (false) ones.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Only ids starting with this.
    #[arg(long)]
    pub id_prefix: Option<String>,
    /// Only names starting with this, ignoring case.
    #[arg(long)]
    pub name_prefix: Option<String>,
}

/// `create`'s input: a file, flags, or both (flags win).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The resource as a JSON or TOML file (fields as in `hookline apply` files and the API);
    /// `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The id; made up when absent.
    #[arg(long)]
    pub id: Option<String>,
    /// The name.
    #[arg(long)]
    pub name: Option<String>,
    /// A destination's URL.
    #[arg(long)]
    pub url: Option<String>,
}

/// `update`'s input: the id, then a file of fields and/or flags (flags win).
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The id.
    pub id: String,
    /// The fields to change, as a JSON or TOML object (a JSON merge patch); `-` reads standard
    /// input.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// A destination's new URL.
    #[arg(long)]
    pub url: Option<String>,
    /// Enable (true) or disable (false) it.
    #[arg(long)]
    pub enabled: Option<bool>,
}

/// Runs one command on resources of `kind`.
pub async fn run(kind: ResourceKind, args: ResourceArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let collection = plural(kind);
    let json = args.api.json;
    match args.action {
        Action::List(filters) => {
            let mut query = Vec::new();
            if let Some(enabled) = filters.enabled {
                query.push(("enabled", enabled.to_string()));
            }
            if let Some(prefix) = filters.id_prefix {
                query.push(("id_prefix", prefix));
            }
            if let Some(prefix) = filters.name_prefix {
                query.push(("name_prefix", prefix));
            }
            let items = client.list(collection, &query).await?;
            if json {
                output::json(&Value::Array(items))
            } else {
                output::list(kind, &items);
                Ok(())
            }
        }
        Action::Get { id } => {
            let resource = client.get(collection, &id).await?;
            show(json, &resource)
        }
        Action::Create(input) => {
            let body = body(&input)?;
            let resource = client.create(collection, &body).await?;
            show(json, &resource)?;
            if !json && kind == ResourceKind::Source {
                println!("Tokens and secrets are shown in full this once; store them now.");
            }
            Ok(())
        }
        Action::Update(input) => {
            let patch = patch(&input)?;
            let (_, etag) = client.get_tagged(collection, &input.id).await?;
            let updated = client
                .patch(collection, &input.id, &patch, etag.as_deref())
                .await?;
            show(json, &updated)
        }
        Action::Edit { id } => match edit(&client, collection, &id).await? {
            Some(updated) => show(json, &updated),
            None if json => output::json(&serde_json::json!({ "id": id, "changed": false })),
            None => {
                println!("No change to {} {id}.", kind.as_str());
                Ok(())
            }
        },
        Action::Delete { id } => {
            client.delete(collection, &id).await?;
            if json {
                output::json(&serde_json::json!({ "id": id, "deleted": true }))
            } else {
                println!("Deleted {} {id}.", kind.as_str());
                Ok(())
            }
        }
        Action::Enable { id } => switch(json, &client.switch(collection, &id, true).await?, kind),
        Action::Disable { id } => switch(json, &client.switch(collection, &id, false).await?, kind),
        Action::Pause { id } | Action::Resume { id } if kind != ResourceKind::Destination => {
            bail!(
                "only destinations can be paused or resumed ({id} is a {})",
                kind.as_str()
            )
        }
        Action::RotateToken { id, .. } if kind != ResourceKind::Source => {
            bail!(
                "only sources have tokens to rotate ({id} is a {})",
                kind.as_str()
            )
        }
        Action::RotateToken { id, grace_seconds } => {
            let rotated = client.rotate_token(&id, grace_seconds).await?;
            if json {
                return output::json(&rotated);
            }
            println!(
                "New token for source {id} (shown this once; store it now):\n{}",
                rotated["token"].as_str().unwrap_or_default()
            );
            match rotated["previous_tokens_expire_at"].as_str() {
                Some(until) => println!(
                    "The tokens in use before stay valid until {}.",
                    output::cell(&Value::String(until.to_owned()))
                ),
                None => println!("The tokens in use before are no longer accepted."),
            }
            Ok(())
        }
        Action::Pause { id } => paused(json, &client.pause(&id, true).await?),
        Action::Resume { id } => paused(json, &client.pause(&id, false).await?),
    }
}

fn paused(json: bool, destination: &Value) -> anyhow::Result<()> {
    if json {
        return output::json(destination);
    }
    let id = destination["id"].as_str().unwrap_or_default();
    let held = destination["held_jobs"].as_u64().unwrap_or_default();
    if destination["paused"] == Value::Bool(true) {
        println!(
            "Paused destination {id}: its jobs are held until it is resumed ({held} held now)."
        );
    } else {
        println!("Resumed destination {id}: {held} held jobs are being delivered, in order.");
    }
    Ok(())
}

fn show(json: bool, resource: &Value) -> anyhow::Result<()> {
    if json {
        output::json(resource)
    } else {
        output::resource(resource);
        Ok(())
    }
}

fn switch(json: bool, resource: &Value, kind: ResourceKind) -> anyhow::Result<()> {
    if json {
        return output::json(resource);
    }
    let id = resource["id"].as_str().unwrap_or_default();
    let state = if resource["enabled"] == Value::Bool(true) {
        "Enabled"
    } else {
        "Disabled"
    };
    println!("{state} {} {id}.", kind.as_str());
    Ok(())
}

/// The merge patch of an `update`: the file's object, with the flags set on top.
fn patch(input: &UpdateArgs) -> anyhow::Result<Value> {
    let mut object = match &input.file {
        Some(path) => read_object(path)?,
        None => Map::new(),
    };
    for (field, value) in [("name", &input.name), ("url", &input.url)] {
        if let Some(value) = value {
            object.insert(field.to_owned(), Value::String(value.clone()));
        }
    }
    if let Some(enabled) = input.enabled {
        object.insert("enabled".to_owned(), Value::Bool(enabled));
    }
    if object.is_empty() {
        bail!(
            "nothing to change: give -f FILE with the fields to change, or --name, --url, --enabled"
        );
    }
    Ok(Value::Object(object))
}

/// Opens resource `id` in the user's editor and, if it changed, replaces it with what was
/// saved, only if nobody changed it meanwhile; `None` when nothing changed.
async fn edit(
    client: &crate::api_client::ApiClient,
    collection: &str,
    id: &str,
) -> anyhow::Result<Option<Value>> {
    let (mut resource, etag) = client.get_tagged(collection, id).await?;
    if let Value::Object(object) = &mut resource {
        for field in hookline_control::body::READ_ONLY {
            object.remove(field);
        }
    }
    let mut file = tempfile::Builder::new()
        .prefix(&format!("hookline-{collection}-"))
        .suffix(".json")
        .tempfile()
        .context("could not create a temporary file to edit")?;
    let before = serde_json::to_string_pretty(&resource)? + "\n";
    std::io::Write::write_all(&mut file, before.as_bytes())?;
    let path = file.path().to_owned();
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    // Through the shell, as git does, so an editor with arguments (`code --wait`) works.
    let status = tokio::task::spawn_blocking({
        let (editor, path) = (editor.clone(), path.clone());
        move || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{editor} \"$@\""))
                .arg(&editor)
                .arg(&path)
                .status()
        }
    })
    .await?
    .with_context(|| format!("could not run the editor {editor:?} (set VISUAL or EDITOR)"))?;
    if !status.success() {
        bail!("the editor {editor:?} exited with {status}; nothing was changed");
    }
    let after = std::fs::read_to_string(&path)
        .with_context(|| format!("could not read back {}", path.display()))?;
    let edited: Value = serde_json::from_str(&after).map_err(|error| {
        // Kept, so the edit is not lost.
        let kept = file.keep().map(|(_, path)| path).ok();
        match kept {
            Some(kept) => anyhow::anyhow!(
                "the edited resource is not JSON ({error}); nothing was changed, your edit is in {}",
                kept.display()
            ),
            None => anyhow::anyhow!("the edited resource is not JSON ({error}); nothing was changed"),
        }
    })?;
    if edited == resource {
        return Ok(None);
    }
    Ok(Some(
        client
            .replace(collection, id, &edited, etag.as_deref())
            .await?,
    ))
}

/// The body to create: the file's object, with the flags set on top.
fn body(input: &CreateArgs) -> anyhow::Result<Value> {
    let mut object = match &input.file {
        Some(path) => read_object(path)?,
        None => Map::new(),
    };
    for (field, value) in [
        ("id", &input.id),
        ("name", &input.name),
        ("url", &input.url),
    ] {
        if let Some(value) = value {
            object.insert(field.to_owned(), Value::String(value.clone()));
        }
    }
    Ok(Value::Object(object))
}

/// A JSON or TOML file holding one resource as an object (TOML by a `.toml` name, else JSON,
/// else TOML).
pub fn read_object(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?
    };
    let toml_named = path.extension().is_some_and(|ext| ext == "toml");
    let parsed = if toml_named {
        from_toml(&text)?
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => value,
            Err(json_error) => from_toml(&text).map_err(|_| {
                anyhow::anyhow!("{} is neither JSON ({json_error}) nor TOML", path.display())
            })?,
        }
    };
    match parsed {
        Value::Object(object) => Ok(object),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_) => {
            bail!("{} must hold one resource, as an object", path.display())
        }
    }
}

fn from_toml(text: &str) -> anyhow::Result<Value> {
    let table: toml::Table = toml::from_str(text).context("invalid TOML")?;
    Ok(serde_json::to_value(table)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let path = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .unwrap()
            .into_temp_path();
        std::fs::write(
            &path,
            "id = \"crm\"\nurl = \"https://old.example.com\"\nheaders = { x-team = \"growth\" }\n",
        )
        .unwrap();
        let body = body(&CreateArgs {
            file: Some(path.to_path_buf()),
            id: None,
            name: Some("CRM".into()),
            url: Some("https://crm.example.com/hooks".into()),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"id": "crm", "name": "CRM", "url": "https://crm.example.com/hooks",
                               "headers": {"x-team": "growth"}})
        );
    }
}
