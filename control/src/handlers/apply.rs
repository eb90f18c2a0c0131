//! `POST /api/v1/apply`: `hookline apply` through the API, for a GitOps job that has a control
//! token but no Kafka credentials. The body holds the file's resources as JSON
//! (`{"sources": [...], "destinations": [...], "triggers": [...]}`); the plan is made against
//! this instance's resources with their real secrets, so a changed secret is seen although
//! answers mask it. The whole result is validated before anything is written, as the file path
//! does; then the changes are written in reference order (sources, destinations, triggers;
//! deletions in reverse), each as a single-resource change would be.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hookline_processor::template::Limits;
use hookline_runtime::validate::Problem;
use hookline_schemas::{Resource, ResourceKind};
use serde_json::Value;

use crate::error::ApiError;
use crate::plan::Plan;
use crate::precondition::Preconditions;
use crate::state::{ApiState, BodyResult};
use crate::write::Change;
use crate::{body, extract, mask};

/// Where the route is.
pub const PATH: &str = "/api/v1/apply";

/// The query of an apply.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// Also delete the resources the body does not name (never Hookline's own canary).
    #[serde(default)]
    prune: bool,
    /// Only say what would change.
    #[serde(default)]
    dry_run: bool,
}

/// The collections of the body, in the order they are written.
const COLLECTIONS: [(&str, ResourceKind); 3] = [
    ("sources", ResourceKind::Source),
    ("destinations", ResourceKind::Destination),
    ("triggers", ResourceKind::Trigger),
];

/// Plans, validates and (unless a dry run) writes the body's resources.
pub async fn apply(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ApplyQuery>, QueryRejection>,
    body: BodyResult,
) -> Result<Response, ApiError> {
    let query = extract::query(query)?;
    let mut object = body::object(&headers, body, state.max_body_bytes)?;
    let snapshot = state.store.snapshot();
    let mut wanted = Vec::new();
    let mut seen = BTreeSet::new();
    for (field, kind) in COLLECTIONS {
        let items = match object.remove(field) {
            None => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid(field, "must be a list of resources")),
        };
        for (index, item) in items.into_iter().enumerate() {
            let Value::Object(mut item) = item else {
                return Err(invalid(&format!("{field}[{index}]"), "must be an object"));
            };
            body::drop_read_only(&mut item, kind)?;
            let mut resource = body::resource(kind, item)?;
            let key = resource.key();
            if !seen.insert(key.clone()) {
                return Err(invalid(
                    &format!("{field}[{index}]"),
                    format!("{key} is named twice"),
                ));
            }
            // A masked secret sent back keeps the stored one, as in a PUT.
            let current = snapshot.get(&key);
            let problems = mask::restore(&mut resource, current.as_ref());
            if !problems.is_empty() {
                return Err(ApiError::Invalid(problems));
            }
            wanted.push(resource);
        }
    }
    if let Some(field) = object.keys().next() {
        return Err(invalid(field, "is not sources, destinations or triggers"));
    }
    let plan = Plan::new(&snapshot, &wanted, query.prune);
    let mut result = wanted;
    result.extend(plan.kept.iter().cloned());
    let problems = hookline_processor::validate::resources(&result, &Limits::default());
    if !problems.is_empty() {
        return Err(if problems.iter().all(Problem::is_reference) {
            ApiError::Conflict(problems)
        } else {
            ApiError::Invalid(problems)
        });
    }
    if !query.dry_run {
        let mut writes: Vec<&Resource> = plan.create.iter().chain(&plan.update).collect();
        writes.sort_by_key(|resource| resource.key().kind);
        let none = Preconditions::default();
        for resource in writes {
            let put = Change::Put(Box::new(resource.clone()));
            state
                .writes
                .change(&resource.key(), &none, |_| Ok(put))
                .await?;
        }
        let mut deletions = plan.delete.clone();
        deletions.sort_by_key(|key| std::cmp::Reverse(key.kind));
        for key in &deletions {
            state
                .writes
                .change(key, &none, |_| Ok(Change::Delete))
                .await?;
        }
    }
    Ok(Json(plan.view(query.dry_run)).into_response())
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field("apply".to_owned(), field, message)
}
