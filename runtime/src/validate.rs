//! Checks of a whole set of resources before any of it is written: each resource on its own, and
//! the references between them. `hookline apply` and the control API use the same checks, so a
//! resource accepted by one is accepted by the other. Template compilation is the processor's and
//! is added by the caller.

use std::collections::BTreeSet;
use std::fmt;

use axum::http::{HeaderName, HeaderValue, Method};
use hookline_schemas::{Resource, ResourceKey, ResourceKind, RetryPolicy, SourceAuth};

/// One thing wrong with one resource, naming the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The resource, `<kind>/<id>`.
    pub resource: String,
    /// The field, for example `url` or `actions[0].destination`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// Whether the problem is a broken reference between resources (a trigger naming a source
    /// or destination that does not exist) rather than something wrong with one resource alone.
    pub fn is_reference(&self) -> bool {
        let indexed = |prefix: &str, suffix: &str| {
            self.field
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        };
        self.resource.starts_with("trigger/")
            && (indexed("when.sources[", "]") || indexed("actions[", "].destination"))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.resource, self.field, self.message)
    }
}

/// Checks every resource in `resources`, which is the complete set that will exist afterwards.
pub fn resources(resources: &[Resource]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for resource in resources {
        let key = resource.key();
        if !seen.insert(key.clone()) {
            problems.push(problem(
                &key,
                "id",
                "is used twice; ids are unique per kind",
            ));
        }
    }
    for resource in resources {
        let key = resource.key();
        let mut report = |field: &str, message: &str| problems.push(problem(&key, field, message));
        match resource {
            Resource::Source(source) => {
                if source.auth.is_empty() {
                    report(
                        "auth",
                        "is empty; add { type = \"bearer\", tokens = [...] }, or { type = \"open\" } to accept anyone",
                    );
                }
                for (index, auth) in source.auth.iter().enumerate() {
                    let (field, secrets) = match auth {
                        SourceAuth::Bearer { tokens, .. } => ("tokens", tokens),
                        SourceAuth::SharedSecret { secrets }
                        | SourceAuth::Github { secrets }
                        | SourceAuth::Stripe { secrets, .. }
                        | SourceAuth::Standard { secrets, .. } => ("secrets", secrets),
                        SourceAuth::Hmac {
                            header, secrets, ..
                        } => {
                            check_header(
                                &mut report,
                                &format!("auth[{index}].header"),
                                header,
                                None,
                            );
                            ("secrets", secrets)
                        }
                        SourceAuth::Open => continue,
                    };
                    if secrets.is_empty() || secrets.iter().any(|s| s.trim().is_empty()) {
                        report(
                            &format!("auth[{index}].{field}"),
                            "needs at least one non-empty value",
                        );
                    }
                    if let SourceAuth::Bearer {
                        expires_at: Some(at),
                        ..
                    } = auth
                        && crate::time::parse_rfc3339(at).is_none()
                    {
                        report(
                            &format!("auth[{index}].expires_at"),
                            "is not an RFC 3339 time such as 2026-12-31T00:00:00Z",
                        );
                    }
                    if let SourceAuth::Standard { secrets, .. } = auth {
                        for (position, secret) in secrets.iter().enumerate() {
                            if let Err(message) = crate::secrets::standard_key(secret) {
                                report(&format!("auth[{index}].secrets[{position}]"), &message);
                            }
                        }
                    }
                }
                if let Err(message) = crate::order::OrderKey::parse(source.order_key.as_deref()) {
                    report("order_key", &message);
                }
                for (index, cidr) in source.allowed_cidrs.iter().enumerate() {
                    if cidr.parse::<ipnet::IpNet>().is_err()
                        && cidr.parse::<std::net::IpAddr>().is_err()
                    {
                        report(
                            &format!("allowed_cidrs[{index}]"),
                            "is not an address or CIDR range such as 192.30.252.0/22",
                        );
                    }
                }
                if source
                    .rate_limit
                    .as_ref()
                    .is_some_and(|limit| limit.per_minute == 0 || limit.burst == Some(0))
                {
                    report(
                        "rate_limit",
                        "per_minute and burst must be at least 1; disable the source to refuse everything",
                    );
                }
                if source.max_body_bytes == Some(0) {
                    report("max_body_bytes", "must be more than 0");
                }
                if let Some(header) = &source.idempotency_header {
                    check_header(&mut report, "idempotency_header", header, None);
                }
            }
            Resource::Destination(destination) => {
                // The raw text first: `url::Url` drops tabs and line breaks and trims control
                // characters off the ends without a word, so the URL used would not be the one
                // stored and shown.
                if let Some(message) = control_character(&destination.url) {
                    report("url", &message);
                } else {
                    match url::Url::parse(&destination.url) {
                        Ok(url)
                            if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                        }
                        Ok(_) => report("url", "must be an http:// or https:// URL with a host"),
                        Err(error) => report("url", &format!("is not a valid URL: {error}")),
                    }
                }
                if destination.method.parse::<Method>().is_err() {
                    report("method", "is not a valid HTTP method");
                }
                for (name, value) in &destination.headers {
                    let field = format!("headers.{name}");
                    check_header(&mut report, &field, name, Some(value));
                    check_not_reserved(&mut report, &field, name);
                }
                if destination.timeout_ms == Some(0) {
                    report("timeout_ms", "must be more than 0");
                }
                for (index, secret) in destination.secrets.iter().enumerate() {
                    if let Err(error) = crate::secrets::standard_key(secret) {
                        report(&format!("secrets[{index}]"), &error);
                    }
                }
                if let Some(retry) = &destination.retry {
                    check_retry(&mut report, retry);
                }
                if destination.max_in_flight == Some(0) {
                    report(
                        "max_in_flight",
                        "must be at least 1; disable the destination to stop deliveries",
                    );
                }
                if destination
                    .rate_limit
                    .as_ref()
                    .is_some_and(|limit| limit.per_minute == 0 || limit.burst == Some(0))
                {
                    report(
                        "rate_limit",
                        "per_minute and burst must be at least 1; disable the destination to stop deliveries",
                    );
                }
            }
            Resource::Trigger(trigger) => {
                for (index, source) in trigger.when.sources.iter().enumerate() {
                    if !seen.contains(&ResourceKey {
                        kind: ResourceKind::Source,
                        id: source.clone(),
                    }) {
                        report(
                            &format!("when.sources[{index}]"),
                            &format!("names source \"{source}\", which does not exist"),
                        );
                    }
                }
                for (index, action) in trigger.actions.iter().enumerate() {
                    let destination = ResourceKey {
                        kind: ResourceKind::Destination,
                        id: action.destination.clone(),
                    };
                    if !seen.contains(&destination) {
                        report(
                            &format!("actions[{index}].destination"),
                            &format!(
                                "names destination {:?}, which does not exist",
                                action.destination.as_str()
                            ),
                        );
                    }
                    for name in action.headers.keys() {
                        let field = format!("actions[{index}].headers.{name}");
                        check_header(&mut report, &field, name, None);
                        check_not_reserved(&mut report, &field, name);
                    }
                    // Checked as a whole template, not only its literal text: outside a tag a
                    // control character is rendered into the URL, and inside one a space does
                    // the same job, so a URL template never needs one.
                    if let Some(message) = action.url.as_deref().and_then(control_character) {
                        report(&format!("actions[{index}].url"), &message);
                    }
                }
            }
        }
    }
    problems
}

/// The longest wait a retry policy may ask for: a week.
const MAX_RETRY_WAIT_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

fn check_retry(report: &mut impl FnMut(&str, &str), retry: &RetryPolicy) {
    let wait_ok =
        |seconds: f64| seconds.is_finite() && (0.0..=MAX_RETRY_WAIT_SECONDS).contains(&seconds);
    match retry {
        RetryPolicy::Schedule { waits_seconds, .. } => {
            for (index, wait) in waits_seconds.iter().enumerate() {
                if !wait_ok(*wait) {
                    report(
                        &format!("retry.waits_seconds[{index}]"),
                        "must be between 0 and 604800 seconds (a week)",
                    );
                }
            }
        }
        RetryPolicy::Exponential {
            initial_seconds,
            multiplier,
            max_interval_seconds,
            max_attempts,
            ..
        } => {
            if !wait_ok(*initial_seconds) || *initial_seconds <= 0.0 {
                report(
                    "retry.initial_seconds",
                    "must be more than 0 and at most a week",
                );
            }
            if !multiplier.is_finite() || *multiplier < 1.0 {
                report("retry.multiplier", "must be at least 1");
            }
            if !wait_ok(*max_interval_seconds) || max_interval_seconds < initial_seconds {
                report(
                    "retry.max_interval_seconds",
                    "must be at least initial_seconds and at most a week",
                );
            }
            if *max_attempts == 0 {
                report("retry.max_attempts", "must be at least 1");
            }
        }
    }
}

fn check_header(report: &mut impl FnMut(&str, &str), field: &str, name: &str, value: Option<&str>) {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        report(field, "is not a valid header name");
    }
    if let Some(value) = value
        && HeaderValue::from_str(value).is_err()
    {
        report(field, "is not a valid header value");
    }
}

/// Refuses a header the dispatcher sets or drops at delivery, so an operator learns it on write
/// instead of finding it missing at the receiver.
fn check_not_reserved(report: &mut impl FnMut(&str, &str), field: &str, name: &str) {
    if hookline_schemas::headers::is_reserved(name) {
        report(
            field,
            "is set by the dispatcher and would be dropped; remove it",
        );
    }
}

/// The problem with the first control character in `text` (C0, DEL or C1, line breaks and tabs
/// included), saying which and where, since none of them is visible when the value is shown.
fn control_character(text: &str) -> Option<String> {
    let (at, character) = text
        .char_indices()
        .find(|(_, character)| character.is_control())?;
    Some(format!(
        "contains a control character ({} at byte {at}); remove it",
        character.escape_default()
    ))
}

fn problem(key: &ResourceKey, field: &str, message: &str) -> Problem {
    Problem {
        resource: key.to_string(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<Resource> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_consistent_set_has_no_problems() {
        let set = parse(
            r#"[{"kind":"source","id":"s","auth":[{"type":"open"}]},
                {"kind":"destination","id":"d","url":"https://example.com/hook"},
                {"kind":"trigger","id":"t","when":{"sources":["s"]},"actions":[{"destination":"d","body":"{}"}]}]"#,
        );
        assert_eq!(resources(&set), []);
    }

    #[test]
    fn order_keys_are_checked_naming_the_field() {
        for (order_key, problems) in [
            ("source", 0),
            ("payload.customer.id", 0),
            ("customer.id", 1),
        ] {
            let set = parse(&format!(
                r#"[{{"kind":"source","id":"s","auth":[{{"type":"open"}}],"order_key":"{order_key}"}}]"#
            ));
            let found = resources(&set);
            assert_eq!(found.len(), problems, "{order_key}: {found:?}");
            assert!(found.iter().all(|problem| problem.field == "order_key"));
        }
    }

    /// A destination `d` and a trigger `t` that sends to it, with `headers` on both and `url` as
    /// the destination's URL and the action's URL template.
    fn with(headers: &serde_json::Value, url: &str) -> Vec<Resource> {
        serde_json::from_value(serde_json::json!([
            {"kind": "source", "id": "s", "auth": [{"type": "open"}]},
            {"kind": "destination", "id": "d", "url": url, "headers": headers},
            {"kind": "trigger", "id": "t", "when": {"sources": ["s"]},
             "actions": [{"destination": "d", "body": "{}", "headers": headers, "url": url}]},
        ]))
        .unwrap()
    }

    #[test]
    fn every_reserved_header_is_refused_in_any_case_naming_the_field() {
        for reserved in hookline_schemas::headers::RESERVED_HEADERS {
            let title = reserved
                .split('-')
                .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
                .collect::<Vec<_>>()
                .join("-");
            for name in [reserved.to_owned(), reserved.to_ascii_uppercase(), title] {
                let set = with(&serde_json::json!({ &name: "1" }), "https://example.com/");
                let found: Vec<String> = resources(&set).iter().map(ToString::to_string).collect();
                let message = "is set by the dispatcher and would be dropped; remove it";
                assert_eq!(
                    found,
                    [
                        format!("destination/d headers.{name}: {message}"),
                        format!("trigger/t actions[0].headers.{name}: {message}"),
                    ]
                );
            }
        }
    }

    #[test]
    fn headers_the_dispatcher_only_defaults_may_be_set() {
        let headers = serde_json::json!({
            "Content-Type": "application/json",
            "User-Agent": "crm-sync",
            "Accept": "application/json",
            "Authorization": "Bearer k",
            "X-Host": "a",
        });
        assert_eq!(resources(&with(&headers, "https://example.com/")), []);
    }

    #[test]
    fn control_characters_in_urls_are_refused_naming_which_and_where() {
        // What makes the raw check necessary: the parser would accept these and quietly drop
        // the line break.
        assert!(url::Url::parse("https://example.com/ho\r\nok").is_ok());
        let prefix = "https://example.com/ho";
        for (character, shown) in [
            ('\r', r"\r"),
            ('\n', r"\n"),
            ('\t', r"\t"),
            ('\0', r"\u{0}"),
            ('\u{1b}', r"\u{1b}"),
            ('\u{7f}', r"\u{7f}"),
            ('\u{85}', r"\u{85}"),
        ] {
            let set = with(&serde_json::json!({}), &format!("{prefix}{character}ok"));
            let found: Vec<String> = resources(&set).iter().map(ToString::to_string).collect();
            let message = format!(
                "contains a control character ({shown} at byte {}); remove it",
                prefix.len()
            );
            assert_eq!(
                found,
                [
                    format!("destination/d url: {message}"),
                    format!("trigger/t actions[0].url: {message}"),
                ],
                "{shown}"
            );
        }
        let template = with(
            &serde_json::json!({}),
            "https://example.com/{{ payload.id }}",
        );
        assert_eq!(resources(&template), []);
    }

    #[test]
    fn problems_name_the_resource_and_field() {
        let set = parse(
            r#"[{"kind":"source","id":"s","auth":[]},
                {"kind":"destination","id":"d","url":"ftp://example.com","headers":{"bad header":"x"}},
                {"kind":"destination","id":"d","url":"https://example.com"},
                {"kind":"trigger","id":"t","when":{"sources":["nope"]},"actions":[{"destination":"gone","body":"{}"}]}]"#,
        );
        let found: Vec<String> = resources(&set)
            .iter()
            .map(|p| format!("{} {}", p.resource, p.field))
            .collect();
        for expected in [
            "destination/d id",
            "source/s auth",
            "destination/d url",
            "destination/d headers.bad header",
            "trigger/t when.sources[0]",
            "trigger/t actions[0].destination",
        ] {
            assert!(
                found.iter().any(|f| f == expected),
                "{expected} not in {found:?}"
            );
        }
        let references: Vec<String> = resources(&set)
            .iter()
            .filter(|p| p.is_reference())
            .map(|p| p.field.clone())
            .collect();
        assert_eq!(references, ["when.sources[0]", "actions[0].destination"]);
    }
}
