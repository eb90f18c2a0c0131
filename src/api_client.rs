//! A client of the control API (`/api/v1`) for the CLI: one method per operation, answers as
//! JSON, and the API's errors turned into messages that say what to fix.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Largest page the API serves; lists are read page by page up to the end.
const PAGE: usize = 500;

/// Where the API is and how to authenticate.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL given for the API is not one.
    #[error("--api-url {0:?} is not a URL")]
    InvalidUrl(String),
    /// The HTTP client could not be built.
    #[error("could not set up the HTTP client")]
    Setup(#[source] reqwest::Error),
    /// The API could not be reached, or did not answer in time.
    #[error(
        "could not reach the control API at {url} (is `hookline control` running there? see --api-url)"
    )]
    Unreachable {
        /// The URL called.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an error.
    #[error("{0}")]
    Api(ApiFailure),
    /// Something answered that is not a Hookline control API (a web server, a proxy's error
    /// page, another service on that port).
    #[error(
        "{url} does not look like a Hookline control API: it answered {status} with {what} \
         (check --api-url / HOOKLINE_API_URL)"
    )]
    NotHookline {
        /// The URL called.
        url: String,
        /// The status of the answer.
        status: StatusCode,
        /// What was wrong with it.
        what: String,
    },
}

/// An error answer of the API: `{"error": {"code", "message", "problems"}}`.
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable error code, such as `not_found` or `invalid`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// `(resource, field, message)` of each problem with the resource sent.
    pub problems: Vec<(String, String, String)>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.message, self.code, self.status)?;
        for (resource, field, message) in &self.problems {
            write!(f, "\n  {resource} {field}: {message}")?;
        }
        if self.status == StatusCode::UNAUTHORIZED {
            write!(
                f,
                "\n  set --api-token or HOOKLINE_API_TOKEN to an admin token"
            )?;
        }
        Ok(())
    }
}

impl ApiClient {
    /// A client of the API at `base` (for example `http://127.0.0.1:8081`), sending `token` as a
    /// bearer token when given.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let mut base = Url::parse(base).map_err(|_| ClientError::InvalidUrl(base.to_owned()))?;
        if base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl(base.to_string()));
        }
        // Relative paths join below the base, also when it has a path prefix.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Self {
            base,
            token: token.filter(|token| !token.is_empty()),
            http,
        })
    }

    /// Every resource of a collection (`sources`, `destinations`, `triggers`) passing `filters`
    /// (query parameters such as `enabled=true`), reading page after page.
    pub async fn list(
        &self,
        collection: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(&str, String)> = filters.to_vec();
            query.push(("limit", PAGE.to_string()));
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let page = self
                .call(Method::GET, &format!("api/v1/{collection}"), &query, None)
                .await?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// One resource.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, &one(collection, id), &[], None)
            .await
    }

    /// One resource and its `ETag`, for a change that must not overwrite someone else's.
    pub async fn get_tagged(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<(Value, Option<String>), ClientError> {
        self.call_tagged(Method::GET, &one(collection, id), None, None)
            .await
    }

    /// Merges a JSON merge patch (RFC 7396) into a resource, only if it still has `etag`.
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: &Value,
        etag: Option<&str>,
    ) -> Result<Value, ClientError> {
        let (value, _) = self
            .call_tagged(Method::PATCH, &one(collection, id), Some(patch), etag)
            .await?;
        Ok(value)
    }

    /// Replaces a resource, only if it still has `etag`.
    pub async fn replace(
        &self,
        collection: &str,
        id: &str,
        resource: &Value,
        etag: Option<&str>,
    ) -> Result<Value, ClientError> {
        let (value, _) = self
            .call_tagged(Method::PUT, &one(collection, id), Some(resource), etag)
            .await?;
        Ok(value)
    }

    /// Creates a resource; the answer shows generated tokens and secrets this once.
    pub async fn create(&self, collection: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("api/v1/{collection}"),
            &[],
            Some(body),
        )
        .await
    }

    /// Deletes a resource.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &one(collection, id), &[], None)
            .await
            .map(drop)
    }

    /// Enables or disables a resource; returns it as written.
    pub async fn switch(
        &self,
        collection: &str,
        id: &str,
        enabled: bool,
    ) -> Result<Value, ClientError> {
        let verb = if enabled { "enable" } else { "disable" };
        self.call(
            Method::POST,
            &format!("{}/{verb}", one(collection, id)),
            &[],
            None,
        )
        .await
    }

    /// Gives source `id` a new bearer token; the current ones stay valid for `grace_seconds`
    /// (the API's default, a day, when `None`).
    pub async fn rotate_token(
        &self,
        id: &str,
        grace_seconds: Option<u64>,
    ) -> Result<Value, ClientError> {
        let query: Vec<(&str, String)> = grace_seconds
            .map(|grace| ("grace_seconds", grace.to_string()))
            .into_iter()
            .collect();
        self.call(
            Method::POST,
            &format!("{}/rotate-token", one("sources", id)),
            &query,
            None,
        )
        .await
    }

    /// Applies a resource file's resources (`{"sources": [...], ...}`) through the API.
    pub async fn apply(
        &self,
        body: &Value,
        prune: bool,
        dry_run: bool,
    ) -> Result<Value, ClientError> {
        let query = [
            ("prune", prune.to_string()),
            ("dry_run", dry_run.to_string()),
        ];
        self.call(Method::POST, "api/v1/apply", &query, Some(body))
            .await
    }

    /// Pauses (`true`) or resumes destination `id`.
    pub async fn pause(&self, id: &str, paused: bool) -> Result<Value, ClientError> {
        let verb = if paused { "pause" } else { "resume" };
        self.call(
            Method::POST,
            &format!("{}/{verb}", one("destinations", id)),
            &[],
            None,
        )
        .await
    }

    /// What a trigger would send for a sample event: the saved trigger `id`, or the unsaved one
    /// in `body["trigger"]` when `id` is `None`.
    pub async fn preview(&self, id: Option<&str>, body: &Value) -> Result<Value, ClientError> {
        let path = match id {
            Some(id) => format!("{}/preview", one("triggers", id)),
            None => "api/v1/triggers/preview".to_owned(),
        };
        self.call(Method::POST, &path, &[], Some(body)).await
    }

    /// `GET` of the API path made of `segments` (each percent-encoded), with `query`.
    pub async fn fetch(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.call(Method::GET, &path(segments), query, None).await
    }

    /// `POST` of `body` to the API path made of `segments`.
    pub async fn send(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, &path(segments), &[], Some(body))
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (value, _) = self.request(method, path, query, body, None).await?;
        Ok(value)
    }

    async fn call_tagged(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), ClientError> {
        self.request(method, path, &[], body, if_match).await
    }

    /// The answer's JSON and its `ETag`.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), ClientError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|_| ClientError::InvalidUrl(format!("{}{path}", self.base)))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(tag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, tag);
        }
        let unreachable = |source| ClientError::Unreachable {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.map_err(unreachable)?;
        if status == StatusCode::NO_CONTENT {
            return Ok((Value::Null, etag));
        }
        let value = answer(status, &content_type, &text).map_err(|what| match what {
            Answer::Failure(failure) => ClientError::Api(failure),
            Answer::Foreign(what) => ClientError::NotHookline {
                url: url.to_string(),
                status,
                what,
            },
        })?;
        Ok((value, etag))
    }
}

/// Why an answer is not a result.
enum Answer {
    /// The API's documented error.
    Failure(ApiFailure),
    /// Not what a Hookline control API sends, and how it differs.
    Foreign(String),
}

/// The result in an answer: the API answers JSON objects only, and its errors as
/// `{"error": {"code", "message"}}`; anything else comes from something else.
fn answer(status: StatusCode, content_type: &str, text: &str) -> Result<Value, Answer> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" {
        let shown = if essence.is_empty() {
            "no content type".to_owned()
        } else {
            format!("content type {essence}")
        };
        let start: String = text.chars().take(120).collect();
        return Err(Answer::Foreign(format!("{shown}: {start:?}")));
    }
    let body = match serde_json::from_str::<Value>(text) {
        Ok(body @ Value::Object(_)) => body,
        Ok(_) | Err(_) => {
            let start: String = text.chars().take(120).collect();
            return Err(Answer::Foreign(format!(
                "a body that is not a JSON object: {start:?}"
            )));
        }
    };
    if status.is_success() {
        return Ok(body);
    }
    if !body["error"]["code"].is_string() {
        return Err(Answer::Foreign(format!(
            "an error body without the documented {{\"error\": {{\"code\", \"message\"}}}}: {body}"
        )));
    }
    Err(Answer::Failure(failure(status, &body)))
}

/// The path of one resource; the id is percent-encoded as a path segment.
fn one(collection: &str, id: &str) -> String {
    path(&[collection, id])
}

/// `api/v1/` and `segments`, each percent-encoded as one path segment.
fn path(segments: &[&str]) -> String {
    let mut url = Url::parse("http://x/").expect("a valid URL");
    url.path_segments_mut()
        .expect("an http URL has a path")
        .extend(["api", "v1"])
        .extend(segments);
    url.path().trim_start_matches('/').to_owned()
}

fn failure(status: StatusCode, body: &Value) -> ApiFailure {
    let error = &body["error"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let problems = error["problems"]
        .as_array()
        .map(|problems| {
            problems
                .iter()
                .map(|p| (text(&p["resource"]), text(&p["field"]), text(&p["message"])))
                .collect()
        })
        .unwrap_or_default();
    ApiFailure {
        status,
        code: text(&error["code"]),
        message: text(&error["message"]),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_s_own_json_is_taken_for_an_answer() {
        let ok = answer(StatusCode::OK, "application/json", r#"{"items": []}"#);
        assert!(matches!(ok, Ok(Value::Object(_))));
        let error = r#"{"error": {"code": "not_found", "message": "no source x"}}"#;
        let refused = answer(
            StatusCode::NOT_FOUND,
            "application/json; charset=utf-8",
            error,
        );
        assert!(matches!(refused, Err(Answer::Failure(f)) if f.code == "not_found"));
        let foreign = |status, content_type, text| match answer(status, content_type, text) {
            Err(Answer::Foreign(what)) => what,
            Ok(_) | Err(Answer::Failure(_)) => panic!("taken for the API: {text}"),
        };
        let page = foreign(StatusCode::OK, "text/html", "<html>It works!</html>");
        assert!(page.starts_with("content type text/html"), "{page}");
        assert!(foreign(StatusCode::OK, "", "{}").starts_with("no content type"));
        assert!(
            foreign(StatusCode::OK, "application/json", "[1, 2]").contains("not a JSON object")
        );
        let other = foreign(
            StatusCode::BAD_GATEWAY,
            "application/json",
            r#"{"message": "upstream down"}"#,
        );
        assert!(other.contains("without the documented"), "{other}");
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(one("sources", "shop"), "api/v1/sources/shop");
        assert_eq!(one("sources", "a/b c"), "api/v1/sources/a%2Fb%20c");
    }

    #[test]
    fn a_base_with_a_path_keeps_it() {
        let client = ApiClient::new("https://ops.example.com/hookline", None).unwrap();
        assert_eq!(
            client.base.join("api/v1/sources").unwrap().as_str(),
            "https://ops.example.com/hookline/api/v1/sources"
        );
        assert!(ApiClient::new("not a url", None).is_err());
    }

    #[tokio::test]
    async fn lists_follow_the_cursor_to_the_last_page() {
        use axum::extract::Query;
        use axum::routing::get;
        use std::collections::HashMap;

        // Two pages: the second is asked for with the first's cursor, filters kept.
        let app = axum::Router::new().route(
            "/api/v1/sources",
            get(|Query(query): Query<HashMap<String, String>>| async move {
                assert_eq!(query.get("enabled").map(String::as_str), Some("true"));
                assert_eq!(query.get("limit").map(String::as_str), Some("500"));
                axum::Json(match query.get("cursor").map(String::as_str) {
                    None => serde_json::json!({"items": [{"id": "a"}], "next_cursor": "YQ"}),
                    Some("YQ") => serde_json::json!({"items": [{"id": "b"}], "next_cursor": null}),
                    Some(other) => panic!("unexpected cursor {other}"),
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = ApiClient::new(&format!("http://{addr}"), Some("t".into())).unwrap();
        let items = client
            .list("sources", &[("enabled", "true".to_owned())])
            .await
            .unwrap();
        server.abort();
        let ids: Vec<&str> = items
            .iter()
            .filter_map(|item| item["id"].as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn errors_list_the_problems_and_how_to_authenticate() {
        let body = serde_json::json!({"error": {"code": "invalid", "message": "the resource is invalid",
            "problems": [{"resource": "trigger/t", "field": "actions[0].body", "message": "does not compile"}]}});
        let text = failure(StatusCode::UNPROCESSABLE_ENTITY, &body).to_string();
        assert!(
            text.contains("trigger/t actions[0].body: does not compile"),
            "{text}"
        );
        let body =
            serde_json::json!({"error": {"code": "unauthorized", "message": "missing token"}});
        let text = failure(StatusCode::UNAUTHORIZED, &body).to_string();
        assert!(text.contains("HOOKLINE_API_TOKEN"), "{text}");
    }
}
