//! The body schemas of the OpenAPI document: the resource types as schemars generates them
//! (JSON Schema 2020-12, which OpenAPI 3.1 takes as it is), and for each kind the forms the API
//! shows (`…View`, `…Page`) and takes (`…Input`, `…Patch`).

use hookline_schemas::{Destination, ResourceKind, Source, Trigger};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::kind::KINDS;

/// The schema name of a kind.
pub(super) fn name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Source => "Source",
        ResourceKind::Destination => "Destination",
        ResourceKind::Trigger => "Trigger",
    }
}

/// Every schema, by name.
pub(super) fn all() -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .into_generator();
    generator.subschema_for::<Source>();
    generator.subschema_for::<Destination>();
    generator.subschema_for::<Trigger>();
    let mut schemas = generator.take_definitions(true);
    for kind in KINDS {
        let name = name(kind);
        let Some(Value::Object(resource)) = schemas.get(name).cloned() else {
            continue;
        };
        schemas.insert(format!("{name}View"), view(kind, resource.clone()));
        schemas.insert(format!("{name}Input"), input_schema(kind, resource.clone()));
        let mut patch = resource;
        patch.remove("required");
        patch.insert(
            "description".into(),
            format!("A JSON merge patch of a {}'s fields.", kind.as_str()).into(),
        );
        schemas.insert(format!("{name}Patch"), Value::Object(patch));
        schemas.insert(
            format!("{name}Page"),
            json!({
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}View")}},
                    "next_cursor": {"type": ["string", "null"], "description": "The cursor of the next page; null on the last."}
                },
                "additionalProperties": false
            }),
        );
    }
    schemas.insert("Error".into(), error_schema());
    let list_of = |input: &str| json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{input}")}});
    schemas.insert(
        "ApplyRequest".into(),
        json!({
            "type": "object",
            "description": "A resource file as JSON; the API's views are accepted too (read-only fields are ignored, masked secrets keep the stored ones).",
            "properties": {
                "sources": list_of("SourceInput"),
                "destinations": list_of("DestinationInput"),
                "triggers": list_of("TriggerInput")
            },
            "additionalProperties": false
        }),
    );
    let keys = json!({"type": "array", "items": {"type": "string"}});
    schemas.insert(
        "ApplyResult".into(),
        json!({
            "type": "object",
            "required": ["dry_run", "created", "changed", "deleted", "unchanged", "kept"],
            "properties": {
                "dry_run": {"type": "boolean"},
                "created": keys,
                "changed": {"type": "array", "items": {
                    "type": "object", "required": ["resource", "fields"],
                    "properties": {
                        "resource": {"type": "string"},
                        "fields": {"type": "array", "items": {"type": "string"},
                            "description": "A line per changed field, secrets masked (`(secret changed)`)."}
                    },
                    "additionalProperties": false
                }},
                "deleted": keys,
                "unchanged": keys,
                "kept": keys
            },
            "additionalProperties": false
        }),
    );
    schemas.insert(
        "RotatedToken".into(),
        json!({
            "type": "object",
            "required": ["token", "previous_tokens_expire_at", "source"],
            "properties": {
                "token": {"type": "string", "description": "The new bearer token, in full this once."},
                "previous_tokens_expire_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "When the tokens in use before stop being accepted; null when they ended at once."},
                "source": {"$ref": "#/components/schemas/SourceView"}
            },
            "additionalProperties": false
        }),
    );
    schemas.extend(preview_schemas());
    super::history::schemas(&mut generator, &mut schemas);
    super::stats::schemas(&mut schemas);
    schemas
}

/// What the API adds to a resource it shows.
fn shown_fields(kind: ResourceKind) -> Vec<(&'static str, Value)> {
    let time = |what: &str| {
        json!({"type": ["string", "null"], "format": "date-time", "readOnly": true,
               "description": format!("When the resource was {what} (RFC 3339); null if unknown.")})
    };
    let mut fields = vec![
        ("created_at", time("created")),
        ("updated_at", time("last written")),
        (
            "last_triggered_at",
            json!({"type": ["string", "null"], "format": "date-time", "readOnly": true,
                   "description": "The last event (source), firing (trigger) or job made (destination) this control instance's store holds; null if none."}),
        ),
        (
            "last_delivered_at",
            json!({"type": ["string", "null"], "format": "date-time", "readOnly": true,
                   "description": "The last successful delivery of an event of the source, of the trigger, or to the destination that this control instance's store holds; null if none."}),
        ),
    ];
    if kind == ResourceKind::Destination {
        fields.push((
            "held_jobs",
            json!({"type": "integer", "minimum": 0, "readOnly": true,
                   "description": "Jobs on hold while the destination is paused (or being released after it resumed), or waiting in line at an ordered destination, as this control instance read them from the held topic."}),
        ));
        fields.push((
            "oldest_held_at",
            json!({"type": ["string", "null"], "format": "date-time", "readOnly": true,
                   "description": "When the oldest job on hold was held (RFC 3339); null if none."}),
        ));
    }
    if kind == ResourceKind::Source {
        fields.push((
            "ingest_url",
            json!({"type": "string", "format": "uri", "readOnly": true,
                   "description": "The URL senders post the source's events to."}),
        ));
    }
    fields
}

fn view(kind: ResourceKind, mut resource: Map<String, Value>) -> Value {
    let added = shown_fields(kind);
    if let Some(Value::Object(properties)) = resource.get_mut("properties") {
        for (field, schema) in &added {
            properties.insert((*field).into(), schema.clone());
        }
    }
    if let Some(Value::Array(required)) = resource.get_mut("required") {
        required.extend(added.iter().map(|(field, _)| Value::from(*field)));
    }
    Value::Object(resource)
}

fn input_schema(kind: ResourceKind, resource: Map<String, Value>) -> Value {
    let Value::Object(mut input) = view(kind, resource) else {
        return Value::Null;
    };
    // Made up when absent on a create; taken from the URL on a replace.
    let optional = [
        "id",
        "auth",
        "created_at",
        "updated_at",
        "ingest_url",
        "last_triggered_at",
        "last_delivered_at",
        "held_jobs",
        "oldest_held_at",
    ];
    if let Some(Value::Array(required)) = input.get_mut("required") {
        required.retain(|field| {
            !field
                .as_str()
                .is_some_and(|field| optional.contains(&field))
        });
    }
    Value::Object(input)
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable: unauthorized, read_only, not_found, method_not_allowed, invalid_json, invalid_query, invalid_path, unsupported_media_type, payload_too_large, invalid, conflict, already_exists, precondition_failed, not_ready, broker_unavailable, not_visible_yet, store_unavailable, internal."},
                    "message": {"type": "string"},
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["resource", "field", "message"],
                            "properties": {
                                "resource": {"type": "string", "description": "`<kind>/<id>`."},
                                "field": {"type": "string", "description": "For example `actions[0].body`."},
                                "message": {"type": "string"},
                                "line": {"type": ["integer", "null"], "minimum": 1, "description": "The line in the field's text, when known."},
                                "column": {"type": ["integer", "null"], "minimum": 1, "description": "The column in the field's text, when known."}
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The bodies of the trigger previews.
fn preview_schemas() -> Map<String, Value> {
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let position = |what: &str| {
        json!({"type": ["integer", "null"], "minimum": 1,
               "description": format!("The {what} in the field's text, when known.")})
    };
    let event_id = json!({"type": "string",
        "description": "A stored event (see `GET /api/v1/events/{id}`): its payload, headers and source are the sample."});
    let Value::Object(schemas) = json!({
        "PreviewEvent": {
            "type": "object",
            "description": "A sample event.",
            "required": ["payload"],
            "properties": {
                "payload": {"description": "The event's JSON body, as a sender would post it."},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Inbound headers; the trigger sees them lower-cased in `event.headers`."
                },
                "source": {
                    "allOf": [reference("ResourceId")],
                    "description": "The source it arrives from; the trigger's first source when absent."
                }
            },
            "additionalProperties": false
        },
        "TriggerPreviewRequest": {
            "type": "object",
            "description": "The sample: an `event`, or the `event_id` of a stored event.",
            "oneOf": [{"required": ["event"]}, {"required": ["event_id"]}],
            "properties": {"event": reference("PreviewEvent"), "event_id": event_id},
            "additionalProperties": false
        },
        "UnsavedTriggerPreviewRequest": {
            "type": "object",
            "description": "The trigger, and the sample: an `event`, or the `event_id` of a stored event.",
            "required": ["trigger"],
            "oneOf": [{"required": ["event"]}, {"required": ["event_id"]}],
            "properties": {
                "trigger": {
                    "allOf": [reference("TriggerInput")],
                    "description": "The trigger, as it would be created; `id` defaults to `preview`."
                },
                "event": reference("PreviewEvent"),
                "event_id": event_id
            },
            "additionalProperties": false
        },
        "Preview": {
            "type": "object",
            "required": ["matched", "reason", "requests", "skipped", "error"],
            "properties": {
                "matched": {"type": "boolean", "description": "Whether `when` and `if` hold for the sample."},
                "reason": {"type": ["string", "null"], "description": "Why the trigger does not fire, when it does not."},
                "requests": {
                    "type": "array",
                    "description": "The requests it would send, one per action whose destination exists and is enabled.",
                    "items": {
                        "type": "object",
                        "required": ["action", "destination", "method", "url", "headers", "body"],
                        "properties": {
                            "action": {"type": "integer", "minimum": 0, "description": "The action's index."},
                            "destination": {"type": "string"},
                            "method": {"type": "string"},
                            "url": {"type": "string"},
                            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                                        "description": "Rendered headers (the destination's static and signing headers are added at delivery)."},
                            "body": {"type": "string", "description": "The rendered body."}
                        },
                        "additionalProperties": false
                    }
                },
                "skipped": {"type": "array", "items": {"type": "string"},
                            "description": "Actions that would send nothing, and why (a missing or disabled destination)."},
                "error": {
                    "description": "The condition or template that failed on the sample; the processor would dead-letter such an event.",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["field", "message", "line", "column"],
                            "properties": {
                                "field": {"type": "string", "description": "For example `if` or `actions[0].body`."},
                                "message": {"type": "string"},
                                "line": position("line"),
                                "column": position("column")
                            },
                            "additionalProperties": false
                        }
                    ]
                }
            },
            "additionalProperties": false
        }
    }) else {
        return Map::new();
    };
    schemas
}
