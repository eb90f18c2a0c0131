//! `/api/v1`: read-only views of sources, destinations and triggers.
//!
//! Every route needs an admin token; without one the answer is 401 and says nothing about
//! resources. Errors are JSON `{"error": {"code", "message"}}` with a stable code.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hookline_runtime::resources::ResourceStore;
use hookline_schemas::{Resource, ResourceId, ResourceKey, ResourceKind, SourceAuth};
use serde_json::json;
use subtle::ConstantTimeEq;

/// What the routes need.
#[derive(Clone)]
pub struct ApiState {
    /// Resources, live.
    pub store: ResourceStore,
    /// Accepted admin tokens.
    pub tokens: Arc<Vec<String>>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid admin token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// No such resource kind.
    #[error("unknown resource kind {0:?}; use sources, destinations or triggers")]
    UnknownKind(String),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::UnknownKind(_) | Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        };
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/{kind}", get(list))
        .route("/api/v1/{kind}/{id}", get(show))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn authenticate(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let valid = !presented.is_empty()
        && state.tokens.iter().fold(false, |found, token| {
            found | bool::from(token.as_bytes().ct_eq(presented))
        });
    if valid {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn kind(plural: &str) -> Result<ResourceKind, ApiError> {
    match plural {
        "sources" => Ok(ResourceKind::Source),
        "destinations" => Ok(ResourceKind::Destination),
        "triggers" => Ok(ResourceKind::Trigger),
        other => Err(ApiError::UnknownKind(other.to_owned())),
    }
}

async fn list(
    State(state): State<ApiState>,
    Path(plural): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let kind = kind(&plural)?;
    let items: Vec<Resource> = state
        .store
        .snapshot()
        .all()
        .into_iter()
        .filter(|resource| resource.key().kind == kind)
        .map(masked)
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn show(
    State(state): State<ApiState>,
    Path((plural, id)): Path<(String, String)>,
) -> Result<Json<Resource>, ApiError> {
    let kind = kind(&plural)?;
    let not_found = || ApiError::NotFound(format!("{} {id:?}", kind.as_str()));
    let id = ResourceId::parse(id.as_str()).map_err(|_| not_found())?;
    let resource = state
        .store
        .snapshot()
        .get(&ResourceKey { kind, id })
        .ok_or_else(not_found)?;
    Ok(Json(masked(resource)))
}

/// Secrets are write-only: shown masked, never in full.
fn masked(resource: Resource) -> Resource {
    match resource {
        Resource::Source(mut source) => {
            for auth in &mut source.auth {
                let secrets = match auth {
                    SourceAuth::Bearer { tokens } => tokens,
                    SourceAuth::SharedSecret { secrets }
                    | SourceAuth::Github { secrets }
                    | SourceAuth::Stripe { secrets, .. }
                    | SourceAuth::Standard { secrets, .. }
                    | SourceAuth::Hmac { secrets, .. } => secrets,
                    SourceAuth::Open => continue,
                };
                secrets.iter_mut().for_each(|secret| *secret = mask(secret));
            }
            Resource::Source(source)
        }
        other @ (Resource::Destination(_) | Resource::Trigger(_)) => other,
    }
}

fn mask(secret: &str) -> String {
    let visible: String = secret.chars().take(4).collect();
    format!("{visible}…")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use hookline_runtime::resources::ResourceSet;
    use hookline_schemas::Source;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let mut set = ResourceSet::default();
        set.put(Resource::Source(Source {
            name: "GitHub".into(),
            ..Source::new(
                ResourceId::parse("github").unwrap(),
                vec![SourceAuth::Bearer {
                    tokens: vec!["supersecret".into()],
                }],
            )
        }));
        router(ApiState {
            store: ResourceStore::fixed(set),
            tokens: Arc::new(vec!["admin".into()]),
        })
    }

    async fn get(path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_without_a_valid_token_learn_nothing() {
        for token in [None, Some("wrong")] {
            let (status, body) = get("/api/v1/sources/github", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(!body.contains("GitHub"), "{body}");
        }
        let (status, _) = get("/api/v1/sources/missing", None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "no 404 before authentication"
        );
    }

    #[tokio::test]
    async fn lists_and_shows_resources_with_secrets_masked() {
        let (status, body) = get("/api/v1/sources", Some("admin")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"github\""), "{body}");
        assert!(!body.contains("supersecret"), "{body}");
        let (status, body) = get("/api/v1/sources/github", Some("admin")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("supe…"), "{body}");
        assert_eq!(
            get("/api/v1/sources/nope", Some("admin")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/api/v1/widgets", Some("admin")).await.0,
            StatusCode::NOT_FOUND
        );
    }
}
