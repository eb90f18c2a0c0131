//! The OpenAPI 3.1 document of the API, served without a token at `/api/v1/openapi.json` and
//! checked in as `control/openapi.json` (a test fails when it drifts; `HOOKLINE_BLESS=1`
//! rewrites it).
//!
//! It is built from the same list of kinds the router serves: the operations with utoipa's
//! builders, the bodies from the JSON Schemas schemars generates from the resource types (the
//! ones under `schemas/json/`), which OpenAPI 3.1 takes as they are.

use std::sync::LazyLock;

use axum::Json;
use hookline_schemas::ResourceKind;
use serde_json::Value;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
    PathItemBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required,
    ResponseBuilder, Tag,
};

use self::responses::{body, error, string_header, unauthorized, unavailable};
use self::schemas::name;
use crate::handlers::{preview, resources};
use crate::kind::{KINDS, plural};
use crate::list::MAX_LIMIT;

mod history;
mod responses;
mod schemas;
mod stats;

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

const BEARER: &str = "bearer";

/// Serves the document.
pub async fn serve() -> Json<Value> {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(document);
    Json(DOCUMENT.clone())
}

/// The document.
pub fn document() -> Value {
    let mut paths = PathsBuilder::new();
    for kind in KINDS {
        let collection = format!("/api/v1/{}", plural(kind));
        paths = paths
            .path(
                &collection,
                PathItemBuilder::new()
                    .operation(HttpMethod::Get, list(kind))
                    .operation(HttpMethod::Post, create(kind))
                    .build(),
            )
            .path(
                format!("{collection}/{{id}}"),
                PathItemBuilder::new()
                    .operation(HttpMethod::Get, show(kind))
                    .operation(HttpMethod::Put, replace(kind))
                    .operation(HttpMethod::Patch, patch(kind))
                    .operation(HttpMethod::Delete, delete(kind))
                    .build(),
            )
            .path(
                format!("{collection}/{{id}}/enable"),
                PathItem::new(HttpMethod::Post, switch(kind, true)),
            )
            .path(
                format!("{collection}/{{id}}/disable"),
                PathItem::new(HttpMethod::Post, switch(kind, false)),
            );
    }
    paths = paths
        .path(
            "/api/v1/destinations/{id}/pause",
            PathItem::new(HttpMethod::Post, pause(true)),
        )
        .path(
            "/api/v1/destinations/{id}/resume",
            PathItem::new(HttpMethod::Post, pause(false)),
        )
        .path(
            "/api/v1/sources/{id}/rotate-token",
            PathItem::new(HttpMethod::Post, rotate_token()),
        )
        .path(
            crate::handlers::apply::PATH,
            PathItem::new(HttpMethod::Post, apply()),
        );
    paths = paths
        .path(
            preview::SAVED,
            PathItem::new(HttpMethod::Post, preview_saved()),
        )
        .path(
            preview::UNSAVED,
            PathItem::new(HttpMethod::Post, preview_unsaved()),
        )
        .path(PATH, PathItem::new(HttpMethod::Get, itself()));
    paths = history::paths(paths);
    paths = stats::paths(paths);
    let document: OpenApi = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hookline control API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Sources, destinations and triggers of a Hookline installation, and what \
                     happened to events: their journeys, attempts, dead letters, test sends and \
                     replays, and how each destination and source is doing. Every route but \
                     this document needs `Authorization: Bearer <token>`; read-only tokens may \
                     only read. Secrets are shown masked, except in the answer to a create.",
                )),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    BEARER,
                    SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
                )
                .build(),
        ))
        .security(Some([SecurityRequirement::new(
            BEARER,
            Vec::<String>::new(),
        )]))
        .tags(Some(
            KINDS
                .map(|kind| Tag::new(plural(kind)))
                .into_iter()
                .chain([Tag::new(history::TAG), Tag::new(stats::TAG)]),
        ))
        .build();
    // The utoipa types serialize to plain JSON.
    let mut document = serde_json::to_value(&document).unwrap_or_default();
    if let Some(components) = document
        .get_mut("components")
        .and_then(Value::as_object_mut)
    {
        components.insert("schemas".into(), Value::Object(schemas::all()));
    }
    document
}

fn operation(kind: ResourceKind, id: String, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .tag(plural(kind))
        .operation_id(Some(id))
        .summary(Some(summary))
}

fn list(kind: ResourceKind) -> Operation {
    let query = |name: &str, schema: ObjectBuilder, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    operation(
        kind,
        format!("list_{}", plural(kind)),
        "A page of the list, in id order",
    )
    .parameter(query(
        "limit",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT as f64)),
        "Most items in the page; 50 when absent.",
    ))
    .parameter(query(
        "cursor",
        string(),
        "The `next_cursor` of the page before; empty or absent for the first page.",
    ))
    .parameter(query(
        "enabled",
        ObjectBuilder::new().schema_type(Type::Boolean),
        "Only enabled (true) or disabled (false) ones.",
    ))
    .parameter(query(
        "name_prefix",
        string(),
        "Only names starting with this, ignoring case.",
    ))
    .parameter(query("id_prefix", string(), "Only ids starting with this."))
    .response("200", body("The page.", &format!("{}Page", name(kind))))
    .response("400", error("An unknown or invalid query parameter."))
    .response("401", unauthorized())
    .response("503", error("Resources are still loading."))
    .build()
}

fn create(kind: ResourceKind) -> Operation {
    operation(kind, format!("create_{}", kind.as_str()), "Create one")
        .description(Some(
            "An id is made up when absent. A source without `auth` gets a bearer token, and an \
             auth entry without tokens or secrets gets one (Stripe's excepted): the answer shows \
             them in full, this once.",
        ))
        .parameter(condition(
            "If-None-Match",
            "`*`: answer 412 instead of 409 if the id exists.",
        ))
        .request_body(Some(input(kind)))
        .response("201", created(kind))
        .response(
            "409",
            error("The id exists, or a reference names a missing resource."),
        )
        .response("412", error("`If-None-Match: *` and the id exists."))
        .with_write_errors()
        .build()
}

fn show(kind: ResourceKind) -> Operation {
    operation(kind, format!("get_{}", kind.as_str()), "Show one")
        .parameter(id())
        .response("200", shown(kind, "The resource, secrets masked."))
        .response("401", unauthorized())
        .response("404", error("No such resource."))
        .response("503", error("Resources are still loading."))
        .build()
}

fn replace(kind: ResourceKind) -> Operation {
    operation(kind, format!("replace_{}", kind.as_str()), "Replace one")
        .description(Some(
            "Masked secrets sent back keep the stored ones. With `If-None-Match: *` a missing \
             resource is created.",
        ))
        .parameter(id())
        .parameter(condition(
            "If-Match",
            "Only if the resource still has this `ETag`.",
        ))
        .parameter(condition(
            "If-None-Match",
            "`*`: only create, never replace.",
        ))
        .request_body(Some(input(kind)))
        .response("200", shown(kind, "The resource as written."))
        .response("201", created(kind))
        .response("404", error("No such resource."))
        .response("409", error("A reference names a missing resource."))
        .response(
            "412",
            error("The resource changed since it was read, or exists."),
        )
        .with_write_errors()
        .build()
}

fn patch(kind: ResourceKind) -> Operation {
    let patch = Content::new(Some(Ref::from_schema_name(format!("{}Patch", name(kind)))));
    operation(
        kind,
        format!("patch_{}", kind.as_str()),
        "Change some fields",
    )
    .description(Some(
        "A JSON merge patch (RFC 7396): members replace, null removes.",
    ))
    .parameter(id())
    .parameter(condition(
        "If-Match",
        "Only if the resource still has this `ETag`.",
    ))
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/merge-patch+json", patch.clone())
            .content("application/json", patch)
            .build(),
    ))
    .response("200", shown(kind, "The resource as written."))
    .response("404", error("No such resource."))
    .response("409", error("A reference names a missing resource."))
    .response("412", error("The resource changed since it was read."))
    .with_write_errors()
    .build()
}

fn delete(kind: ResourceKind) -> Operation {
    operation(kind, format!("delete_{}", kind.as_str()), "Delete one")
        .parameter(id())
        .parameter(condition(
            "If-Match",
            "Only if the resource still has this `ETag`.",
        ))
        .response("204", ResponseBuilder::new().description("Deleted."))
        .response("401", unauthorized())
        .response("403", error("The token may only read."))
        .response("404", error("No such resource."))
        .response(
            "409",
            error("A trigger still uses it; `problems` names the trigger."),
        )
        .response("412", error("The resource changed since it was read."))
        .response("503", unavailable())
        .build()
}

fn switch(kind: ResourceKind, enable: bool) -> Operation {
    let (verb, summary) = if enable {
        (
            "enable",
            "Enable one (a destination forgets why it was disabled)",
        )
    } else {
        ("disable", "Disable one")
    };
    operation(kind, format!("{verb}_{}", kind.as_str()), summary)
        .parameter(id())
        .parameter(condition(
            "If-Match",
            "Only if the resource still has this `ETag`.",
        ))
        .response("200", shown(kind, "The resource as written."))
        .response("401", unauthorized())
        .response("403", error("The token may only read."))
        .response("404", error("No such resource."))
        .response("409", error("The resource names a missing one."))
        .response("412", error("The resource changed since it was read."))
        .response("422", error("The resource is invalid."))
        .response("503", unavailable())
        .build()
}

fn pause(pause: bool) -> Operation {
    let kind = ResourceKind::Destination;
    let (verb, summary) = if pause {
        (
            "pause",
            "Pause one: its jobs are held, in arrival order, until it resumes (nothing is dropped)",
        )
    } else {
        (
            "resume",
            "Resume one: its held jobs are delivered, in the order they were held, with their original delivery ids",
        )
    };
    operation(kind, format!("{verb}_destination"), summary)
        .parameter(id())
        .parameter(condition(
            "If-Match",
            "Only if the resource still has this `ETag`.",
        ))
        .response("200", shown(kind, "The destination as written."))
        .response("401", unauthorized())
        .response("403", error("The token may only read."))
        .response("404", error("No such destination."))
        .response("409", error("The resource names a missing one."))
        .response("412", error("The resource changed since it was read."))
        .response("422", error("The resource is invalid."))
        .response("503", unavailable())
        .build()
}

fn apply() -> Operation {
    let flag = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
    };
    OperationBuilder::new()
        .tag("apply")
        .operation_id(Some("apply"))
        .summary(Some(
            "Apply a resource file's resources: validate the whole result, then write what changed",
        ))
        .parameter(flag(
            "prune",
            "Also delete the resources the body does not name.",
        ))
        .parameter(flag("dry_run", "Only say what would change."))
        .request_body(Some(json_body("ApplyRequest")))
        .response(
            "200",
            body(
                "What was (or, in a dry run, would be) created, changed field by field, deleted, left unchanged or kept.",
                "ApplyResult",
            ),
        )
        .response(
            "409",
            error("A reference names a missing resource; `problems` says which."),
        )
        .with_write_errors()
        .build()
}

fn rotate_token() -> Operation {
    operation(
        ResourceKind::Source,
        "rotate_source_token".to_owned(),
        "Give a source a new bearer token; the current ones stay valid for a grace period",
    )
    .parameter(id())
    .parameter(
        ParameterBuilder::new()
            .name("grace_seconds")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "How long the current tokens stay valid: a day when absent, 0 ends them now.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(resources::ROTATE_GRACE_MAX_SECONDS as f64)),
            )),
    )
    .parameter(condition(
        "If-Match",
        "Only if the resource still has this `ETag`.",
    ))
    .response(
        "200",
        body(
            "The new token, shown in full this once, and the source as written.",
            "RotatedToken",
        )
        .header("ETag", string_header("The version, for `If-Match`.")),
    )
    .response("400", error("An unknown or invalid query parameter."))
    .response("401", unauthorized())
    .response("403", error("The token may only read."))
    .response("404", error("No such source."))
    .response("409", error("The resource names a missing one."))
    .response("412", error("The resource changed since it was read."))
    .response("422", error("The source has no bearer token to rotate."))
    .response("503", unavailable())
    .build()
}

fn preview_saved() -> Operation {
    operation(
        ResourceKind::Trigger,
        "preview_trigger".to_owned(),
        "Preview a saved trigger on a sample event",
    )
    .description(Some(
        "Renders what the trigger would send for the sample event, with the destinations as \
         they are now, and sends nothing. Read-only tokens may preview.",
    ))
    .parameter(id())
    .request_body(Some(json_body("TriggerPreviewRequest")))
    .with_preview_answers()
    .response("404", error("No such trigger, or no such stored event."))
    .build()
}

fn preview_unsaved() -> Operation {
    operation(
        ResourceKind::Trigger,
        "preview_unsaved_trigger".to_owned(),
        "Preview an unsaved trigger on a sample event",
    )
    .description(Some(
        "Renders what the trigger in the body would send for the sample event, with the \
         destinations as they are now; saves and sends nothing. Read-only tokens may preview.",
    ))
    .request_body(Some(json_body("UnsavedTriggerPreviewRequest")))
    .with_preview_answers()
    .response("404", error("No such stored event."))
    .build()
}

fn json_body(schema: &str) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
        .build()
}

/// The answers of both previews.
trait PreviewAnswers {
    fn with_preview_answers(self) -> Self;
}

impl PreviewAnswers for OperationBuilder {
    fn with_preview_answers(self) -> Self {
        self.response(
            "200",
            body(
                "What the trigger would do; `error` when a condition or template fails on the \
                 sample.",
                "Preview",
            ),
        )
        .response("400", error("The body is not a JSON object."))
        .response("401", unauthorized())
        .response("413", error("The body is over the limit."))
        .response("415", error("The body is not `application/json`."))
        .response(
            "422",
            error(
                "The trigger does not compile or the body is invalid; `problems` names the \
                 field (with `line` and `column` when known).",
            ),
        )
        .response("503", unavailable())
    }
}

fn itself() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This document"))
        // An empty requirement: no token needed.
        .security(SecurityRequirement::default())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI document.")
                .content(
                    "application/json",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                ),
        )
        .build()
}

fn id() -> ParameterBuilder {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(Ref::from_schema_name("ResourceId")))
}

fn condition(header: &str, description: &str) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(header)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
}

fn input(kind: ResourceKind) -> utoipa::openapi::request_body::RequestBody {
    json_body(&format!("{}Input", name(kind)))
}

fn shown(kind: ResourceKind, description: &str) -> ResponseBuilder {
    body(description, &format!("{}View", name(kind)))
        .header("ETag", string_header("The version, for `If-Match`."))
}

fn created(kind: ResourceKind) -> ResponseBuilder {
    let created = shown(
        kind,
        "Created; generated tokens and secrets are shown in full this once.",
    )
    .header("Location", string_header("The new resource's URL."));
    // What can be done with the new resource, so clients (and stateful fuzzers) can follow.
    let mut operations = ["get", "replace", "patch", "enable", "disable", "delete"]
        .map(|verb| format!("{verb}_{}", kind.as_str()))
        .to_vec();
    if kind == ResourceKind::Trigger {
        operations.push("preview_trigger".to_owned());
    }
    if kind == ResourceKind::Destination {
        operations.extend([
            "pause_destination".to_owned(),
            "resume_destination".to_owned(),
        ]);
    }
    if kind == ResourceKind::Source {
        operations.push("rotate_source_token".to_owned());
    }
    operations.into_iter().fold(created, |response, operation| {
        let link = LinkBuilder::new()
            .operation_id(operation.clone())
            .parameter("id", "$response.body#/id")
            .build();
        response.link(operation, link)
    })
}

/// The answers every write can get.
trait WriteErrors {
    fn with_write_errors(self) -> Self;
}

impl WriteErrors for OperationBuilder {
    fn with_write_errors(self) -> Self {
        write_errors()
            .into_iter()
            .fold(self, |operation, (status, response)| {
                operation.response(status, response)
            })
    }
}

fn write_errors() -> [(&'static str, ResponseBuilder); 7] {
    [
        ("400", error("The body is not a JSON object.")),
        ("401", unauthorized()),
        ("403", error("The token may only read.")),
        ("413", error("The body is over the limit.")),
        ("415", error("The body is not `application/json`.")),
        (
            "422",
            error("The resource is invalid; `problems` names the fields."),
        ),
        ("503", unavailable()),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_checked_in_document_matches_the_code() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("HOOKLINE_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is out of date with the code; rerun with HOOKLINE_BLESS=1 and commit it",
            path.display()
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route_and_its_schemas() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        for kind in KINDS {
            let collection = format!("/api/v1/{}", plural(kind));
            for method in ["get", "post"] {
                assert!(
                    paths[&collection].get(method).is_some(),
                    "{method} {collection}"
                );
            }
            for method in ["get", "put", "patch", "delete"] {
                assert!(paths[&format!("{collection}/{{id}}")].get(method).is_some());
            }
        }
        for route in [preview::SAVED, preview::UNSAVED] {
            assert!(paths[route].get("post").is_some(), "{route}");
        }
        // Every link names an operation of the document.
        let operations: Vec<&Value> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .collect();
        let ids: Vec<&str> = operations
            .iter()
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let mut links = 0;
        for operation in &operations {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(ids.contains(&target), "link to unknown operation {target}");
                    links += 1;
                }
            }
        }
        assert!(links >= 19, "{links} links");
        for (path, method) in [
            ("/api/v1/events/{id}", "get"),
            ("/api/v1/events/replay", "post"),
            ("/api/v1/sources/{id}/events", "get"),
            ("/api/v1/destinations/{id}/attempts", "get"),
            ("/api/v1/destinations/{id}/test", "post"),
            ("/api/v1/dead-letters", "get"),
            ("/api/v1/dead-letters/replay", "post"),
            ("/api/v1/stats/destinations", "get"),
            ("/api/v1/stats/sources", "get"),
        ] {
            assert!(paths[path].get(method).is_some(), "{method} {path}");
        }
        let view = &document["components"]["schemas"]["DestinationView"];
        assert!(view["properties"].get("last_delivered_at").is_some());
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{target} is not defined"
            );
        }
        assert_eq!(
            document["components"]["schemas"]["SourceView"]["properties"]["ingest_url"]["format"],
            "uri"
        );
    }
}
