//! The OpenAPI description of the routes of what happened ([`crate::handlers::history`],
//! [`crate::handlers::replay`], [`crate::handlers::test_send`]): their operations, and the schemas
//! of their answers, built on the message types' own schemas (`AttemptRecord`, `DeadLetter`,
//! `MatchRecord`, ...).

use hookline_schemas::{AttemptRecord, DeadLetter, EventMetadata, MatchRecord, RejectedRequest};
use schemars::SchemaGenerator;
use serde_json::{Map, Value, json};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, PathsBuilder, Ref, Required};

use super::responses::{body, error, string_header, unauthorized};
use crate::list::MAX_LIMIT;

/// The tag of these operations.
pub(super) const TAG: &str = "history";

/// Adds the paths.
pub(super) fn paths(paths: PathsBuilder) -> PathsBuilder {
    paths
        .path("/api/v1/events", PathItem::new(HttpMethod::Get, events()))
        .path(
            "/api/v1/events/{id}",
            PathItem::new(HttpMethod::Get, event()),
        )
        .path(
            "/api/v1/events/replay",
            PathItem::new(HttpMethod::Post, replay_events()),
        )
        .path(
            "/api/v1/sources/{id}/events",
            PathItem::new(HttpMethod::Get, source_events()),
        )
        .path(
            "/api/v1/destinations/{id}/attempts",
            PathItem::new(HttpMethod::Get, attempts()),
        )
        .path(
            "/api/v1/destinations/{id}/test",
            PathItem::new(HttpMethod::Post, test()),
        )
        .path(
            "/api/v1/dead-letters",
            PathItem::new(HttpMethod::Get, dead_letters()),
        )
        .path(
            "/api/v1/dead-letters/replay",
            PathItem::new(HttpMethod::Post, replay_dead_letters()),
        )
        .path(
            "/api/v1/dead-letters/discard",
            PathItem::new(HttpMethod::Post, discard_dead_letters()),
        )
}

fn operation(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .tag(TAG)
        .operation_id(Some(id))
        .summary(Some(summary))
}

fn path_id(description: &str) -> ParameterBuilder {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
}

fn query(name: &str, description: &str, schema: ObjectBuilder) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn enumeration(values: &[&str]) -> ObjectBuilder {
    string().enum_values(Some(values.iter().copied()))
}

/// `limit`, `cursor`, `since` and `until`.
fn paged(operation: OperationBuilder) -> OperationBuilder {
    operation
        .parameter(query(
            "limit",
            "Most items in the page; 50 when absent.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT as f64)),
        ))
        .parameter(query(
            "cursor",
            "The `next_cursor` of the page before.",
            string(),
        ))
        .parameter(query(
            "since",
            "Only records at or after this time (RFC 3339).",
            string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            ))),
        ))
        .parameter(query(
            "until",
            "Only records before this time (RFC 3339).",
            string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            ))),
        ))
        .response("400", error("An unknown or invalid query parameter."))
        .response("401", unauthorized())
}

fn event() -> Operation {
    operation("get_event", "An event's journey")
        .description(Some(
            "When and from which address the event was received, its payload, which triggers \
             matched or why none did, its deliveries with every attempt and the receiver's \
             (truncated) answer, and its dead letters; as far as this instance's store holds \
             them (the retention window, 7 days by default).",
        ))
        .parameter(path_id("The event id."))
        .response("200", body("The journey.", "EventJourney"))
        .response("401", unauthorized())
        .response("404", error("The store holds nothing about this event."))
        .response(
            "503",
            error("The store is still reading the topics and holds nothing about this event yet.")
                .header("Retry-After", string_header("Seconds to wait.")),
        )
        .build()
}

fn source_events() -> Operation {
    paged(operation(
        "list_source_events",
        "A source's events and refused requests, newest first",
    ))
    .parameter(path_id(
        "The source id (refused requests may name sources that do not exist).",
    ))
    .parameter(query(
        "kind",
        "Only events (`event`) or only refused requests (`rejected`).",
        enumeration(&["event", "rejected"]),
    ))
    .response("200", body("The page.", "SourceEventPage"))
    .build()
}

fn events() -> Operation {
    paged(
        operation("search_events", "Events, newest first, searched").description(Some(
            "By source and time (from indexes), and by match outcome, trigger, destination and \
         payload text, which are checked event by event: one request looks at no more than \
         2,000 events. When it stops there before its page is full, `complete` is false and \
         `next_cursor` goes on from the last event it looked at.",
        )),
    )
    .parameter(query("source", "Only events of this source.", string()))
    .parameter(query(
        "outcome",
        "Only events with this match outcome (`pending`: no match record yet).",
        enumeration(&["delivered", "no_trigger", "no_match", "dead", "pending"]),
    ))
    .parameter(query(
        "trigger",
        "Only events this trigger fired for.",
        string(),
    ))
    .parameter(query(
        "destination",
        "Only events sent to this destination (a delivery job made for it).",
        string(),
    ))
    .parameter(query(
        "q",
        "Only events whose payload contains this text (ASCII case-insensitive, at most 256 \
         bytes; within what the store keeps of a payload).",
        string(),
    ))
    .response("200", body("The page.", "EventSearchPage"))
    .build()
}

fn attempts() -> Operation {
    paged(operation(
        "list_destination_attempts",
        "A destination's delivery attempts, newest first",
    ))
    .parameter(path_id("The destination id."))
    .parameter(query(
        "outcome",
        "Only attempts with this outcome.",
        enumeration(&["delivered", "retrying", "dead", "blocked"]),
    ))
    .response("200", body("The page.", "AttemptPage"))
    .build()
}

fn dead_letters() -> Operation {
    paged(operation("list_dead_letters", "Dead letters, newest first"))
        .parameter(query(
            "destination",
            "Only jobs for this destination.",
            string(),
        ))
        .parameter(query(
            "source",
            "Only records of this source's events.",
            string(),
        ))
        .parameter(query(
            "reason",
            "Only this reason (`rejected`, `exhausted`, `render_failed`, ...).",
            string(),
        ))
        .response("200", body("The page.", "DeadLetterPage"))
        .build()
}

fn json_body(schema: &str, required: bool) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(if required {
            Required::True
        } else {
            Required::False
        }))
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
        .build()
}

/// The answers every write of these routes can get.
fn writes(operation: OperationBuilder) -> OperationBuilder {
    operation
        .response(
            "400",
            error("The body is not valid JSON, or asks for nothing."),
        )
        .response("401", unauthorized())
        .response("403", error("The token may only read."))
        .response("413", error("The body is over the limit."))
        .response("415", error("The body is not `application/json`."))
        .response(
            "503",
            error("Kafka did not acknowledge a write in time.")
                .header("Retry-After", string_header("Seconds to wait.")),
        )
}

fn test() -> Operation {
    writes(
        operation("test_destination", "Send a test webhook")
            .description(Some(
                "Sends a sample event (or `body`) to the destination through the dispatcher, \
                 signed and with the destination's headers, and answers with the attempt once \
                 it is recorded (200), or with the delivery id if that takes longer than \
                 `--control-test-timeout-ms` (202). A failed test is retried like any delivery.",
            ))
            .parameter(path_id("The destination id."))
            .request_body(Some(json_body("TestRequest", false))),
    )
    .response("200", body("Sent; the first attempt.", "TestResult"))
    .response(
        "202",
        body(
            "Sent; no attempt recorded yet (`attempt` is null).",
            "TestResult",
        ),
    )
    .response("404", error("No such destination."))
    .response("409", error("The destination is disabled."))
    .build()
}

fn replay_dead_letters() -> Operation {
    writes(
        operation("replay_dead_letters", "Replay dead letters")
            .description(Some(
                "By `ids`, or every dead letter matching a filter. Jobs go back to the \
                 dispatcher as attempt 1 with the same delivery id; dead events are replayed \
                 from the store to the processor (once per event).",
            ))
            .request_body(Some(json_body("ReplayRequest", true))),
    )
    .response(
        "200",
        body("What was replayed and skipped.", "ReplayResult"),
    )
    .build()
}

fn discard_dead_letters() -> Operation {
    writes(
        operation("discard_dead_letters", "Discard dead letters")
            .description(Some(
                "By `ids`, or every dead letter matching a filter: marked `discarded` on the \
                 dead letter states topic, so every control instance sees it. They stay listed \
                 and are not replayed unless `force` is set. Letters already replayed or \
                 discarded are skipped unless `force`; `dry_run` lists what would be discarded.",
            ))
            .request_body(Some(json_body("ReplayRequest", true))),
    )
    .response(
        "200",
        body("What was discarded and skipped.", "DiscardResult"),
    )
    .build()
}

fn replay_events() -> Operation {
    writes(
        operation("replay_events", "Replay stored events")
            .description(Some(
                "By `ids`, or a source's events between `since` and `until`: written back to \
                 the events topic with their original ids, so every trigger sees them again and \
                 their deliveries keep their ids. Deliveries that already succeeded are not sent \
                 again unless `all` is set; `dry_run` lists what would be sent.",
            ))
            .request_body(Some(json_body("ReplayRequest", true))),
    )
    .response(
        "200",
        body("What was replayed and skipped.", "ReplayResult"),
    )
    .build()
}

/// Adds the schemas, generating the message types with `generator`.
pub(super) fn schemas(generator: &mut SchemaGenerator, schemas: &mut Map<String, Value>) {
    generator.subschema_for::<AttemptRecord>();
    generator.subschema_for::<DeadLetter>();
    generator.subschema_for::<MatchRecord>();
    generator.subschema_for::<RejectedRequest>();
    generator.subschema_for::<EventMetadata>();
    schemas.extend(generator.take_definitions(true));
    let event_fields = json!({
        "client": {"type": ["string", "null"], "description": "The address ingest received it from; null for events written straight to Kafka."},
        "replayed_at": {"type": ["string", "null"], "format": "date-time", "description": "When this record was written back by a replay; null on the original."}
    });
    let stored_event = extended(
        schemas,
        "EventMetadata",
        &event_fields,
        &["client", "replayed_at"],
    );
    let mut event_item = stored_event.clone();
    add(
        &mut event_item,
        &json!({
            "kind": {"const": "event"},
            "match_outcome": {
                "enum": ["delivered", "no_trigger", "no_match", "dead", null],
                "description": "Whether the processor produced deliveries for the event, or why not; null while (or if) no match record is stored."
            }
        }),
        &["kind", "match_outcome"],
    );
    let mut rejected_item = schemas.get("RejectedRequest").cloned().unwrap_or_default();
    add(
        &mut rejected_item,
        &json!({"kind": {"const": "rejected"}}),
        &["kind"],
    );
    let mut dead_view = schemas.get("DeadLetter").cloned().unwrap_or_default();
    add(
        &mut dead_view,
        &json!({"id": {"type": "string", "description": "`<partition>-<offset>` on the dead letter topic; what replay takes."}}),
        &["id"],
    );
    add(
        &mut dead_view,
        &json!({
            "state": {"enum": ["open", "replayed", "delivered", "discarded"], "description": "In lists: what operators did with it. `delivered` is a replayed job whose delivery has succeeded since."},
            "state_at": {"type": "string", "format": "date-time", "description": "When it was replayed or discarded."},
            "state_by": {"type": "string", "description": "By which token: `token:` and the first eight hex digits of its SHA-256."}
        }),
        &[],
    );
    schemas.insert("StoredEventItem".into(), event_item);
    schemas.insert("RejectedRequestItem".into(), rejected_item);
    schemas.insert("DeadLetterView".into(), dead_view);
    schemas.insert(
        "SourceEventPage".into(),
        page(json!({"oneOf": [
            {"$ref": "#/components/schemas/StoredEventItem"},
            {"$ref": "#/components/schemas/RejectedRequestItem"}
        ]})),
    );
    let mut search_page = page(json!({"$ref": "#/components/schemas/StoredEventItem"}));
    add(
        &mut search_page,
        &json!({
            "scanned": {"type": "integer", "minimum": 0, "description": "How many events this request looked at."},
            "complete": {"type": "boolean", "description": "False when the request stopped at its budget: `next_cursor` goes on from there."}
        }),
        &["scanned", "complete"],
    );
    schemas.insert("EventSearchPage".into(), search_page);
    schemas.insert(
        "AttemptPage".into(),
        page(json!({"$ref": "#/components/schemas/AttemptRecord"})),
    );
    schemas.insert(
        "DeadLetterPage".into(),
        page(json!({"$ref": "#/components/schemas/DeadLetterView"})),
    );
    schemas.insert("EventJourney".into(), journey());
    schemas.insert("TestRequest".into(), json!({
        "type": "object",
        "properties": {
            "body": {"description": "The JSON to send; a sample `{\"type\": \"hookline.test\", ...}` when absent."},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra request headers."}
        },
        "additionalProperties": false
    }));
    schemas.insert("TestResult".into(), json!({
        "type": "object",
        "required": ["delivery_id", "event_id", "request", "attempt"],
        "properties": {
            "delivery_id": {"type": "string", "description": "Sent as `webhook-id`."},
            "event_id": {"type": "string"},
            "request": {
                "type": "object",
                "description": "The request the dispatcher sends, before it adds the signature and `webhook-*` headers; the URL's credential and credential headers masked.",
                "required": ["method", "url", "headers", "body"],
                "properties": {
                    "method": {"type": "string"},
                    "url": {"type": "string"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"type": "string"}
                },
                "additionalProperties": false
            },
            "attempt": {"oneOf": [{"$ref": "#/components/schemas/AttemptRecord"}, {"type": "null"}]}
        },
        "additionalProperties": false
    }));
    schemas.insert("ReplayRequest".into(), json!({
        "type": "object",
        "description": "Either `ids` or a filter.",
        "properties": {
            "ids": {"type": "array", "items": {"type": "string"}, "description": "Dead letter ids, or event ids for /events/replay."},
            "destination": {"type": "string", "description": "Dead letters of this destination."},
            "source": {"type": "string", "description": "Records of this source."},
            "reason": {"type": "string", "description": "Dead letters with this reason."},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "all": {"type": "boolean", "default": false, "description": "Replay every delivery of the events, also those that already succeeded; by default a replay sends only what did not deliver."},
            "dry_run": {"type": "boolean", "default": false, "description": "List what would be sent (`would_send`) and send nothing."},
            "force": {"type": "boolean", "default": false, "description": "Dead letters only: also those already replayed or discarded."}
        },
        "additionalProperties": false
    }));
    schemas.insert("DiscardResult".into(), json!({
        "type": "object",
        "required": ["dry_run", "discarded", "skipped", "truncated"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "discarded": {"type": "array", "items": {"type": "string"}, "description": "The ids of the letters discarded (or, with `dry_run`, that would be)."},
            "skipped": {"type": "array", "items": {
                "type": "object", "required": ["id", "reason"],
                "properties": {
                    "id": {"type": "string"},
                    "reason": {"type": "string", "description": "not_found, already_replayed, discarded."}
                }
            }},
            "truncated": {"type": "boolean"}
        },
        "additionalProperties": false
    }));
    schemas.insert("ReplayResult".into(), json!({
        "type": "object",
        "required": ["dry_run", "replayed_jobs", "replayed_events", "already_delivered", "skipped", "truncated"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "replayed_jobs": {"type": "integer", "minimum": 0},
            "replayed_events": {"type": "integer", "minimum": 0},
            "already_delivered": {"type": "integer", "minimum": 0, "description": "Deliveries of the replayed events that had succeeded and are not sent again."},
            "would_send": {"type": "array", "description": "With `dry_run`: one entry per dead job, and per trigger and action of each event as the processor would evaluate it now.", "items": {
                "type": "object", "required": ["result"],
                "properties": {
                    "id": {"type": "string", "description": "The id the request named (an event's, or a dead letter's)."},
                    "event_id": {"type": "string"},
                    "trigger_id": {"type": "string"},
                    "action": {"type": "integer", "minimum": 0},
                    "destination_id": {"type": "string"},
                    "delivery_id": {"type": "string"},
                    "method": {"type": "string"},
                    "url": {"type": "string", "description": "Credentials masked."},
                    "result": {"type": "string", "description": "send, already_delivered, destination_disabled, destination_missing, render_failed, condition_false, no_match, does_not_compile, invalid_json."},
                    "error": {"type": "string"}
                }
            }},
            "skipped": {"type": "array", "items": {
                "type": "object", "required": ["id", "reason"],
                "properties": {
                    "id": {"type": "string"},
                    "reason": {"type": "string", "description": "not_found, already_replayed, discarded, unreadable, destination_missing, destination_disabled, event_not_stored, payload_gone (larger than the store keeps, and no longer on the events topic), not_replayable."}
                }
            }},
            "truncated": {"type": "boolean", "description": "More matched than --control-max-replay; send the request again for the rest."}
        },
        "additionalProperties": false
    }));
}

fn journey() -> Value {
    json!({
        "type": "object",
        "description": "Everything the store holds about one event. The event's own fields are absent when the store holds only later records of it.",
        "required": ["event_id", "replays", "match", "deliveries", "dead_letters"],
        "properties": {
            "schema_version": {"type": "integer"},
            "event_id": {"type": "string"},
            "source": {"$ref": "#/components/schemas/ResourceId"},
            "received_at": {"type": "string", "format": "date-time"},
            "content_type": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "client": {"type": ["string", "null"]},
            "replayed_at": {"type": ["string", "null"], "format": "date-time"},
            "replays": {"type": "array", "description": "When and by whom the event was replayed, oldest first.", "items": {"type": "object", "required": ["at", "by"], "properties": {"at": {"type": "string", "format": "date-time"}, "by": {"type": ["string", "null"], "description": "The token that replayed it: `token:` and the first eight hex digits of its SHA-256."}}}},
            "size_bytes": {"type": "integer", "minimum": 0},
            "payload": {"description": "The event's JSON, or {\"not_json\": text} when it is not JSON."},
            "match": {"oneOf": [{"$ref": "#/components/schemas/MatchRecord"}, {"type": "null"}]},
            "deliveries": {"type": "array", "items": {
                "type": "object",
                "required": ["delivery_id", "status", "attempts"],
                "properties": {
                    "delivery_id": {"type": "string"},
                    "trigger_id": {"type": "string"},
                    "action": {"type": "integer"},
                    "destination_id": {"type": "string"},
                    "status": {"enum": ["pending", "held", "delivered", "retrying", "dead", "blocked"], "description": "pending: no attempt yet; held: waiting on hold while its destination is paused, or in line behind an earlier job of an ordered destination."},
                    "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/AttemptRecord"}}
                }
            }},
            "dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetterView"}}
        }
    })
}

fn page(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"], "description": "The cursor of the next page; null on the last."}
        },
        "additionalProperties": false
    })
}

/// The schema `name` with more properties.
fn extended(schemas: &Map<String, Value>, name: &str, fields: &Value, required: &[&str]) -> Value {
    let mut schema = schemas.get(name).cloned().unwrap_or_default();
    add(&mut schema, fields, required);
    schema
}

fn add(schema: &mut Value, fields: &Value, required: &[&str]) {
    if let (Some(properties), Some(fields)) = (
        schema.get_mut("properties").and_then(Value::as_object_mut),
        fields.as_object(),
    ) {
        properties.extend(fields.clone());
    }
    if let Some(list) = schema.get_mut("required").and_then(Value::as_array_mut) {
        list.extend(required.iter().map(|field| Value::from(*field)));
    }
}
