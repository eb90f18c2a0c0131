//! Request bodies: a JSON object, read into the resource types with errors that name the field.
//!
//! What the API adds to a resource when it shows one (`created_at`, `updated_at`, `ingest_url`,
//! `last_triggered_at`, `last_delivered_at`, `schema_version`, `kind`) is dropped from what a client sends, so a resource read, changed
//! and sent back is accepted as it is.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use hookline_schemas::{Resource, ResourceKind};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::kind;

/// Fields the API shows but never takes from a client.
pub const READ_ONLY: [&str; 8] = [
    "created_at",
    "updated_at",
    "ingest_url",
    "schema_version",
    "last_triggered_at",
    "last_delivered_at",
    "held_jobs",
    "oldest_held_at",
];

/// The body as a JSON object, after checking its size and type.
pub fn object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::InvalidJson("the body could not be read".to_owned())
        }
    })?;
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(mut object)) => {
            object.values_mut().for_each(integral_numbers_as_integers);
            Ok(object)
        }
        Ok(_) => Err(ApiError::InvalidJson("expected a JSON object".to_owned())),
        Err(error) => Err(ApiError::InvalidJson(error.to_string())),
    }
}

/// Turns numbers such as `60.0` into `60`, recursively. JSON Schema (and the OpenAPI document)
/// counts them as integers, and some JSON encoders write every number that way, but serde would
/// refuse them for integer fields.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && float.abs() < 2f64.powi(53)
            {
                // Exact below 2^53, so the conversion loses nothing.
                let integer = float as i64;
                *number = integer.into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// `application/json`, or any `application/*+json` such as `application/merge-patch+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Drops the fields the API adds when it shows a resource; a `kind` other than the
/// collection's is a problem.
pub fn drop_read_only(body: &mut Map<String, Value>, kind: ResourceKind) -> Result<(), ApiError> {
    for field in READ_ONLY {
        body.remove(field);
    }
    match body.remove("kind") {
        Some(Value::String(sent)) if sent == kind.as_str() => Ok(()),
        None => Ok(()),
        Some(sent) => Err(ApiError::invalid_field(
            kind.as_str().to_owned(),
            "kind",
            format!(
                "is {sent}, but this is the {} collection; leave it out",
                kind::plural(kind)
            ),
        )),
    }
}

/// Reads `body` as a resource of `kind`. Unknown fields, missing fields and bad values are
/// problems naming the field, such as `auth[0].tokens` or `actions[0].hedaers`.
pub fn resource(kind: ResourceKind, body: Map<String, Value>) -> Result<Resource, ApiError> {
    let label = body.get("id").and_then(Value::as_str).map_or_else(
        || kind.as_str().to_owned(),
        |id| format!("{}/{id}", kind.as_str()),
    );
    let body = Value::Object(body);
    let read = match kind {
        ResourceKind::Source => typed(body).map(Resource::Source),
        ResourceKind::Destination => typed(body).map(Resource::Destination),
        ResourceKind::Trigger => typed(body).map(Resource::Trigger),
    };
    read.map_err(|(field, message)| ApiError::invalid_field(label, field, message))
}

fn typed<T: DeserializeOwned>(body: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.inner().to_string();
        // serde names an unknown or missing field in its message, not in the path.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next());
        let field = match named {
            Some(name) if !path.ends_with(name) && path.is_empty() => name.to_owned(),
            Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
            Some(_) | None => path,
        };
        let message = match message.split_once(", expected") {
            Some((unknown, expected)) if message.starts_with("unknown field") => {
                format!("{unknown} (expected{expected})")
            }
            Some(_) | None => message,
        };
        (field, message)
    })
}

/// Applies a JSON merge patch (RFC 7396): members replace, `null` removes, objects merge.
pub fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in patch {
            if value.is_null() {
                target.remove(&name);
            } else {
                merge_patch(target.entry(name).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn problem(kind: ResourceKind, body: Value) -> (String, String) {
        let Value::Object(body) = body else {
            panic!("not an object");
        };
        match resource(kind, body) {
            Err(ApiError::Invalid(problems)) => {
                (problems[0].field.clone(), problems[0].message.clone())
            }
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn unknown_and_missing_fields_are_named_with_their_path() {
        let (field, message) = problem(
            ResourceKind::Destination,
            json!({"id": "d", "url": "https://x/", "hedaers": {}}),
        );
        assert_eq!(field, "hedaers");
        assert!(message.contains("unknown field"), "{message}");
        let (field, _) = problem(
            ResourceKind::Trigger,
            json!({"id": "t", "when": {"sources": ["s"]}, "actions": [{"destination": "d", "body": "{}", "hedaers": {}}]}),
        );
        assert_eq!(field, "actions[0].hedaers");
        let (field, _) = problem(ResourceKind::Destination, json!({"id": "d"}));
        assert_eq!(field, "url");
        let (field, message) = problem(ResourceKind::Source, json!({"id": "a b", "auth": []}));
        assert_eq!(field, "id");
        assert!(message.contains("' '"), "{message}");
    }

    #[test]
    fn integral_numbers_are_read_as_integers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body =
            br#"{"rate_limit": {"per_minute": 600.0}, "retry": {"multiplier": 1.5}, "n": [2.0]}"#;
        let read = object(&headers, Ok(Bytes::from_static(body)), 1024).unwrap();
        assert_eq!(
            Value::Object(read),
            serde_json::json!({"rate_limit": {"per_minute": 600}, "retry": {"multiplier": 1.5}, "n": [2]})
        );
        let destination =
            br#"{"id": "d", "url": "https://x.example/", "rate_limit": {"per_minute": 60.0}}"#;
        let destination = object(&headers, Ok(Bytes::from_static(destination)), 1024).unwrap();
        assert!(resource(ResourceKind::Destination, destination).is_ok());
    }

    #[test]
    fn only_json_bodies_are_read() {
        let mut headers = HeaderMap::new();
        let body = || Ok(Bytes::from_static(b"{\"id\": \"x\"}"));
        assert!(matches!(
            object(&headers, body(), 10),
            Err(ApiError::UnsupportedMediaType)
        ));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/merge-patch+json; charset=utf-8"),
        );
        assert!(object(&headers, body(), 10).is_ok());
        assert!(matches!(
            object(&headers, Ok(Bytes::from_static(b"[1]")), 10),
            Err(ApiError::InvalidJson(_))
        ));
    }

    #[test]
    fn read_only_fields_are_dropped_and_a_wrong_kind_refused() {
        let mut body = json!({"id": "x", "created_at": "2026-01-01T00:00:00Z", "kind": "source"});
        drop_read_only(body.as_object_mut().unwrap(), ResourceKind::Source).unwrap();
        assert_eq!(body, json!({"id": "x"}));
        let mut body = json!({"kind": "trigger"});
        assert!(drop_read_only(body.as_object_mut().unwrap(), ResourceKind::Source).is_err());
    }

    #[test]
    fn merge_patches_replace_remove_and_merge() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        merge_patch(
            &mut target,
            json!({"a": null, "b": {"c": 5}, "e": [3], "f": "new"}),
        );
        assert_eq!(target, json!({"b": {"c": 5, "d": 3}, "e": [3], "f": "new"}));
    }
}
