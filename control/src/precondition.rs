//! Optimistic concurrency: `If-Match` and `If-None-Match` on writes (RFC 9110, section 13.1).

use axum::http::{HeaderMap, HeaderName, header};

use crate::error::ApiError;

/// The conditions of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

/// The value of a conditional header.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tags {
    /// `*`: any current version.
    Any,
    /// A list of entity tags, each with whether it is weak (`W/"…"`).
    List(Vec<(bool, String)>),
}

impl Preconditions {
    /// Reads `If-Match` and `If-None-Match`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_match: tags(headers, &header::IF_MATCH),
            if_none_match: tags(headers, &header::IF_NONE_MATCH),
        }
    }

    /// Whether `If-None-Match: *` was sent: create only, never replace.
    pub fn create_only(&self) -> bool {
        self.if_none_match == Some(Tags::Any)
    }

    /// Checks the conditions against the current version's tag (`None` when the resource does
    /// not exist): 412 when one does not hold.
    pub fn check(&self, current: Option<&str>) -> Result<(), ApiError> {
        let holds_if_match = match (&self.if_match, current) {
            (None, _) => true,
            (Some(Tags::Any), current) => current.is_some(),
            (Some(Tags::List(_)), None) => false,
            // If-Match compares strongly: a weak tag never matches.
            (Some(Tags::List(tags)), Some(current)) => {
                tags.iter().any(|(weak, tag)| !weak && tag == current)
            }
        };
        let holds_if_none_match = match (&self.if_none_match, current) {
            (None, _) | (Some(_), None) => true,
            (Some(Tags::Any), Some(_)) => false,
            // If-None-Match compares weakly.
            (Some(Tags::List(tags)), Some(current)) => tags.iter().all(|(_, tag)| tag != current),
        };
        if holds_if_match && holds_if_none_match {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed)
        }
    }
}

fn tags(headers: &HeaderMap, name: &HeaderName) -> Option<Tags> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{0}"))
        .collect();
    if values.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for tag in values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
    {
        if tag == "*" {
            return Some(Tags::Any);
        }
        match tag.strip_prefix("W/") {
            Some(weak) => list.push((true, weak.to_owned())),
            None if !tag.is_empty() => list.push((false, tag.to_owned())),
            None => {}
        }
    }
    Some(Tags::List(list))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn conditions(name: HeaderName, value: &'static str) -> Preconditions {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        Preconditions::from_headers(&headers)
    }

    #[test]
    fn if_match_needs_the_current_tag() {
        let matching = conditions(header::IF_MATCH, "\"old\", \"v1\"");
        assert!(matching.check(Some("\"v1\"")).is_ok());
        assert!(matching.check(Some("\"v2\"")).is_err());
        assert!(matching.check(None).is_err());
        assert!(
            conditions(header::IF_MATCH, "W/\"v1\"")
                .check(Some("\"v1\""))
                .is_err()
        );
        assert!(
            conditions(header::IF_MATCH, "*")
                .check(Some("\"v1\""))
                .is_ok()
        );
        assert!(conditions(header::IF_MATCH, "*").check(None).is_err());
        assert!(Preconditions::default().check(Some("\"v1\"")).is_ok());
    }

    #[test]
    fn if_none_match_star_means_create_only() {
        let create = conditions(header::IF_NONE_MATCH, "*");
        assert!(create.create_only());
        assert!(create.check(None).is_ok());
        assert!(create.check(Some("\"v1\"")).is_err());
        let other = conditions(header::IF_NONE_MATCH, "W/\"v1\"");
        assert!(!other.create_only());
        assert!(other.check(Some("\"v1\"")).is_err());
        assert!(other.check(Some("\"v2\"")).is_ok());
    }
}
