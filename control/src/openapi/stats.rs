//! The OpenAPI description of the statistics routes ([`crate::handlers::stats`]): their
//! operations and the schemas of their answers.

use serde_json::{Map, Value, json};
use utoipa::openapi::PathsBuilder;
use utoipa::openapi::Required;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::responses::{body, error, string_header, unauthorized};

/// The tag of these operations.
pub(super) const TAG: &str = "stats";

/// What every answer says of its window.
const WINDOWS: &str = "The window, ending now: `5m`, `1h` (default) or `24h`. Counts come from \
    rollups per minute (`5m`, `1h`) or per hour (`24h`), so a window also covers the part of the \
    minute (hour) it starts in: the answer's `since` says where it starts.";

/// Adds the paths.
pub(super) fn paths(paths: PathsBuilder) -> PathsBuilder {
    paths
        .path(
            "/api/v1/stats/destinations",
            PathItem::new(HttpMethod::Get, destinations()),
        )
        .path(
            "/api/v1/stats/sources",
            PathItem::new(HttpMethod::Get, sources()),
        )
}

/// An optional query parameter taking one of `values`.
fn query(name: &str, description: &str, values: &[&str]) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        ))
}

/// An operation of both routes' shape: `window`, `sort` (described by `sorts`, one of
/// `values`) and the answers they share.
fn operation(
    id: &str,
    summary: &str,
    description: &str,
    sorts: &str,
    values: &[&str],
) -> OperationBuilder {
    OperationBuilder::new()
        .tag(TAG)
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .parameter(query("window", WINDOWS, &["5m", "1h", "24h"]))
        .parameter(query("sort", sorts, values))
        .response(
            "400",
            error("An unknown parameter, or a window or sort not allowed (the message names the allowed values)."),
        )
        .response("401", unauthorized())
        .response(
            "503",
            error(
                "`not_ready`: resources, the store or the held jobs are still loading; \
                 `store_unavailable`: the store's database does not answer.",
            )
            .header("Retry-After", string_header("Seconds to wait.")),
        )
}

/// `GET /api/v1/stats/destinations`.
fn destinations() -> Operation {
    operation(
        "stats_destinations",
        "How each destination is doing over a recent window, worst first",
        "Every destination that exists, with zeros when idle. Not shown: a circuit state (each \
         dispatcher keeps its own breaker, and an open circuit writes no attempt) and a backlog \
         on the jobs topic (not per destination); held jobs are the backlog control counts.",
        "The order: `failure_rate` (default; most failing first), `p99` (slowest first), \
         `attempts` or `dead_letters` (most first). Destinations without attempts come last; \
         ties in id order.",
        &["failure_rate", "p99", "attempts", "dead_letters"],
    )
    .response("200", body("The destinations.", "DestinationStatsList"))
    .build()
}

/// `GET /api/v1/stats/sources`.
fn sources() -> Operation {
    operation(
        "stats_sources",
        "How each source is doing over a recent window, most refused first",
        "Every source that exists, with zeros when idle. Refused requests naming no existing \
         source are not counted.",
        "The order: `refused` (default) or `events`, most first; ties in id order.",
        &["refused", "events"],
    )
    .response("200", body("The sources.", "SourceStatsList"))
    .build()
}

/// The answer of both routes, its items of `item`.
fn list(item: &str, sorts: &[&str]) -> Value {
    json!({
        "type": "object",
        "required": ["window", "granularity", "since", "until", "sort", "items"],
        "properties": {
            "window": {"enum": ["5m", "1h", "24h"]},
            "granularity": {"enum": ["minute", "hour"], "description": "The rollups' bucket the window is read in."},
            "since": {"type": "string", "format": "date-time", "description": "The start of the first bucket counted."},
            "until": {"type": "string", "format": "date-time", "description": "Now, as the answer was made."},
            "sort": {"enum": sorts},
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}
        },
        "additionalProperties": false
    })
}

/// Adds the schemas.
pub(super) fn schemas(schemas: &mut Map<String, Value>) {
    let count =
        |description: &str| json!({"type": "integer", "minimum": 0, "description": description});
    let time = |description: &str| json!({"type": ["string", "null"], "format": "date-time", "description": description});
    let milliseconds = |description: &str| json!({"type": ["number", "null"], "minimum": 0, "description": description});
    let rate = |description: &str| json!({"type": ["number", "null"], "minimum": 0, "maximum": 1, "description": description});
    schemas.insert(
        "DestinationStats".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "enabled", "paused", "attempts", "delivered", "failed",
                "dead_letters", "success_rate", "failure_rate", "p50_ms", "p99_ms", "held_jobs",
                "oldest_held_at", "failing_since", "last_delivered_at", "last_attempt_at", "last_attempt_outcome"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "enabled": {"type": "boolean"},
                "paused": {"type": "boolean"},
                "attempts": count("Attempts that finished in the window, whatever their outcome."),
                "delivered": count("Attempts that delivered."),
                "failed": count("Attempts that failed: retrying, dead or blocked."),
                "dead_letters": count("Jobs for the destination dead-lettered in the window."),
                "success_rate": rate("delivered / attempts, to four decimals; null without attempts."),
                "failure_rate": rate("failed / attempts, to four decimals; null without attempts."),
                "p50_ms": milliseconds("Median duration of the attempts that sent a request (from sending to the end of the answer), within 4.5%; null without any."),
                "p99_ms": milliseconds("99th percentile of those durations, within 4.5%; null without any."),
                "held_jobs": count("Jobs on hold now, while the destination is paused, or in line at an ordered destination."),
                "oldest_held_at": time("When the oldest job on hold was held."),
                "failing_since": time("Since when the destination has failed without a single success, as the dispatchers record it (hookline.destination-health); null while it succeeds. Circuit breaker states themselves live in each dispatcher and are not shown."),
                "last_delivered_at": time("The last successful delivery the store saw, in any window."),
                "last_attempt_at": time("When the newest stored attempt finished, in any window."),
                "last_attempt_outcome": {"enum": ["delivered", "retrying", "dead", "blocked", null], "description": "Its outcome."}
            },
            "additionalProperties": false
        }),
    );
    schemas.insert(
        "SourceStats".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "enabled", "events", "matched", "refused", "refused_by_code", "last_event_at"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "enabled": {"type": "boolean"},
                "events": count("Events received in the window."),
                "matched": count("Of those, events the processor made deliveries of (counted when matched)."),
                "refused": count("Requests ingest refused in the window."),
                "refused_by_code": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                    "description": "Refused requests by the error code answered (`unauthorized`, `rate_limited`, ...)."},
                "last_event_at": time("The last event the store saw, in any window.")
            },
            "additionalProperties": false
        }),
    );
    schemas.insert(
        "DestinationStatsList".into(),
        list(
            "DestinationStats",
            &["failure_rate", "p99", "attempts", "dead_letters"],
        ),
    );
    schemas.insert(
        "SourceStatsList".into(),
        list("SourceStats", &["refused", "events"]),
    );
}
