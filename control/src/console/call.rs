//! The console's way to the API: every read and change a page makes is a request to the API's
//! own router, made in process as the logged-in operator ([`Caller`]), so the console has the
//! API's validation, ETags, masking and access rules, and no logic of its own.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tower::ServiceExt;

use crate::tokens::Caller;

/// What the console escapes in a path segment or a query value: all but RFC 3986's unreserved
/// characters.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `id` as one path segment.
pub fn segment(id: &str) -> String {
    utf8_percent_encode(id, ESCAPED).to_string()
}

/// `value` as a query string value.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, ESCAPED).to_string()
}

/// `&name=value` for each of `pairs` with a value that is not blank, escaped: the filters of a
/// list, for the API's query string and for the console's own links.
pub fn query_string(pairs: &[(&str, &Option<String>)]) -> String {
    let mut query = String::new();
    for (name, value) in pairs {
        if let Some(value) = value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
        {
            query.push_str(&format!("&{name}={}", query_value(value)));
        }
    }
    query
}

/// The API's answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its `ETag`, when it has one.
    pub etag: Option<String>,
    /// Its JSON body (null when it had none or it was not JSON).
    pub body: Value,
}

impl Answer {
    /// Whether the API did what was asked.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message with each problem it names (field and what is wrong, one per
    /// line), or its status when it gave none.
    pub fn message(&self) -> String {
        let mut message = match self.body["error"]["message"].as_str() {
            Some(message) => message.to_owned(),
            None => format!("the API answered {}", self.status),
        };
        for problem in self.body["error"]["problems"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let field = problem["field"].as_str().unwrap_or_default();
            let text = problem["message"].as_str().unwrap_or_default();
            message.push_str(&format!("\n{field}: {text}"));
        }
        message
    }

    /// The API's error code (`not_found`, `validation_failed`, …), if any.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// The API, as the console calls it.
#[derive(Clone)]
pub struct Api {
    router: Router,
    max_body_bytes: usize,
}

impl Api {
    /// Calls go to `router`, the API's own; answers are read up to `max_body_bytes` (pages of
    /// stored records included).
    pub fn new(router: Router, max_body_bytes: usize) -> Self {
        Self {
            router,
            max_body_bytes,
        }
    }

    /// `GET path` as `caller`.
    pub async fn get(&self, caller: &Caller, path: &str) -> Answer {
        self.call(caller, Method::GET, path, None, None).await
    }

    /// `method path` with a JSON `body`, and `If-Match: if_match` when given, as `caller`.
    pub async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(tag) = if_match {
            request = request.header(header::IF_MATCH, tag);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(body).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let request = request
            .extension(caller.clone())
            .body(body)
            .expect("a path the console made");
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let status = response.status();
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|tag| tag.to_str().ok())
            .map(str::to_owned);
        // An answer larger than the limit reads as no body: the page says what the status says.
        let bytes = axum::body::to_bytes(response.into_body(), self.max_body_bytes.max(1 << 24))
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, etag, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_segment() {
        assert_eq!(segment("push-to_chat.v2~"), "push-to_chat.v2~");
        assert_eq!(segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(query_value("a&b=c"), "a%26b%3Dc");
        let none = None;
        let filter = [
            ("source", &Some("a b".to_owned())),
            ("q", &Some(" ".to_owned())),
            ("x", &none),
        ];
        assert_eq!(query_string(&filter), "&source=a%20b");
    }
}
