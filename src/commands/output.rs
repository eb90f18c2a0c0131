//! How the API commands print: tables with the columns that tell resources apart, one resource
//! as a field/value table, or the API's JSON as it is for scripts (`--json`). Times in tables are
//! RFC 3339 at the local offset; `--json` keeps the API's UTC.

use std::sync::OnceLock;

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use hookline_control::kind::plural;
use hookline_schemas::ResourceKind;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The local offset, read once at start (see [`remember_local_offset`]).
static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local time zone's offset for the tables. Call it while the process has a single
/// thread, before the async runtime starts: the `time` crate refuses to read it otherwise (the
/// C library's time zone functions are not thread-safe). Times then show at this offset, the
/// one in effect now; without it they stay in UTC.
pub fn remember_local_offset() {
    if let Ok(offset) = UtcOffset::current_local_offset() {
        let _ = LOCAL_OFFSET.set(offset);
    }
}

/// `text` at the local offset when it is an RFC 3339 time.
fn local_time(text: &str, offset: Option<UtcOffset>) -> Option<String> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    at.to_offset(offset?).format(&Rfc3339).ok()
}

/// Prints `value` as pretty JSON.
pub fn json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints resources of `kind` as a table, one row each.
pub fn list(kind: ResourceKind, items: &[Value]) {
    if items.is_empty() {
        println!("No {}.", plural(kind));
        return;
    }
    let mut table = table();
    table.set_header(columns(kind).iter().map(|(header, _)| *header));
    for item in items {
        table.add_row(columns(kind).iter().map(|(_, cell)| cell(item)));
    }
    println!("{table}");
}

/// Prints one resource as a table of its fields, `id`, `name` and `enabled` first; nested values
/// as compact JSON.
pub fn resource(resource: &Value) {
    const FIRST: [&str; 3] = ["id", "name", "enabled"];
    let mut table = table();
    table.set_header(["FIELD", "VALUE"]);
    if let Some(fields) = resource.as_object() {
        let first = FIRST
            .iter()
            .filter_map(|field| fields.get_key_value(*field));
        let rest = fields
            .iter()
            .filter(|(field, _)| !FIRST.contains(&field.as_str()));
        for (field, value) in first.chain(rest) {
            table.add_row([field.clone(), text(value)]);
        }
    }
    println!("{table}");
}

/// Prints rows under `headers`.
pub fn rows<H, R>(headers: H, rows: R)
where
    H: IntoIterator,
    H::Item: Into<comfy_table::Cell>,
    R: IntoIterator<Item = Vec<String>>,
{
    let mut table = table();
    table.set_header(headers);
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

/// A value as a cell (see [`text`]).
pub fn cell(value: &Value) -> String {
    text(value)
}

fn table() -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table
}

type Cell = fn(&Value) -> String;

/// The columns of a kind's list: the header and how to fill it.
fn columns(kind: ResourceKind) -> Vec<(&'static str, Cell)> {
    let mut columns: Vec<(&'static str, Cell)> = vec![
        ("ID", |item| text(&item["id"])),
        ("NAME", |item| text(&item["name"])),
        ("ENABLED", |item| text(&item["enabled"])),
    ];
    match kind {
        ResourceKind::Source => {
            columns.push(("AUTH", |item| {
                joined(&item["auth"], |entry| text(&entry["type"]))
            }));
            columns.push(("INGEST URL", |item| text(&item["ingest_url"])));
        }
        ResourceKind::Destination => {
            columns.push(("URL", |item| text(&item["url"])));
            columns.push(("PAUSED", |item| {
                if item["paused"] == Value::Bool(true) {
                    "paused".to_owned()
                } else {
                    String::new()
                }
            }));
            columns.push(("HELD", |item| text(&item["held_jobs"])));
            columns.push(("DISABLED BECAUSE", |item| text(&item["disabled_reason"])));
        }
        ResourceKind::Trigger => {
            columns.push(("SOURCES", |item| joined(&item["when"]["sources"], text)));
            columns.push(("DESTINATIONS", |item| {
                joined(&item["actions"], |action| text(&action["destination"]))
            }));
        }
    }
    columns.push(("UPDATED", |item| text(&item["updated_at"])));
    columns
}

/// A value as a cell: strings as they are, nothing for null, anything else as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => {
            local_time(text, LOCAL_OFFSET.get().copied()).unwrap_or_else(|| text.clone())
        }
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

fn joined(values: &Value, cell: impl Fn(&Value) -> String) -> String {
    values
        .as_array()
        .map(|values| values.iter().map(cell).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_show_at_the_local_offset_and_other_text_as_it_is() {
        let paris = UtcOffset::from_hms(1, 0, 0).unwrap();
        assert_eq!(
            local_time("2026-12-04T12:21:13.5Z", Some(paris)).as_deref(),
            Some("2026-12-04T13:21:13.5+01:00")
        );
        assert_eq!(local_time("crm", Some(paris)), None);
        assert_eq!(local_time("2026-12-04T12:21:13Z", None), None);
    }

    #[test]
    fn trigger_rows_show_their_sources_and_destinations() {
        let trigger = json!({"id": "t", "name": "T", "enabled": true, "when": {"sources": ["a", "b"]},
                             "actions": [{"destination": "crm"}, {"destination": "chat"}],
                             "updated_at": null});
        let row: Vec<String> = columns(ResourceKind::Trigger)
            .iter()
            .map(|(_, cell)| cell(&trigger))
            .collect();
        assert_eq!(row, ["t", "T", "true", "a, b", "crm, chat", ""]);
    }
}
