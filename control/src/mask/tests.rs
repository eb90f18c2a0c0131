//! Masking and restoring whole resources: a source's tokens, a destination's secrets, credential
//! headers and the credential in its URL.

use hookline_schemas::ResourceId;

use super::*;

const LONG: &str = "tok_0123456789abcdef";

fn source(tokens: &[&str]) -> Resource {
    Resource::Source(Source::new(
        ResourceId::parse("app").unwrap(),
        vec![
            SourceAuth::Bearer {
                tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
                expires_at: None,
            },
            SourceAuth::Open,
        ],
    ))
}

fn tokens(resource: &Resource) -> Vec<String> {
    let Resource::Source(source) = resource else {
        panic!("not a source");
    };
    let SourceAuth::Bearer { tokens, .. } = &source.auth[0] else {
        panic!("not bearer");
    };
    tokens.clone()
}

#[test]
fn long_secrets_keep_a_prefix_and_short_ones_nothing() {
    assert_eq!(mask(LONG), "tok_…");
    assert_eq!(mask("s3cret"), "…");
    assert_eq!(tokens(&masked(source(&[LONG, "short"]))), ["tok_…", "…"]);
}

#[test]
fn masked_values_sent_back_keep_the_stored_secrets() {
    let stored = source(&[LONG, "short"]);
    let mut sent = masked(stored.clone());
    if let Resource::Source(source) = &mut sent
        && let SourceAuth::Bearer { tokens, .. } = &mut source.auth[0]
    {
        tokens.push("brand-new".into());
    }
    assert_eq!(restore(&mut sent, Some(&stored)), []);
    assert_eq!(tokens(&sent), [LONG, "short", "brand-new"]);
}

#[test]
fn a_mask_that_stands_for_nothing_names_the_field() {
    let mut sent = source(&["abcd…"]);
    let problems = restore(&mut sent, Some(&source(&[LONG])));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "auth[0].tokens[0]");
    let problems = restore(&mut source(&["…"]), None);
    assert_eq!(problems[0].field, "auth[0].tokens[0]");
}

#[test]
fn destination_secrets_and_credential_headers_are_masked_and_restored() {
    let mut destination = Destination::new(ResourceId::parse("crm").unwrap(), "https://x/");
    destination.secrets = vec!["whsec_aG9va2xpbmUtc2VjcmV0LTAx".into()];
    destination
        .headers
        .insert("Authorization".into(), "Bearer abc".into());
    destination.headers.insert("x-team".into(), "blue".into());
    let stored = Resource::Destination(destination);
    let mut shown = masked(stored.clone());
    let Resource::Destination(view) = &shown else {
        panic!("not a destination");
    };
    assert_eq!(view.secrets, ["whse…"]);
    assert_eq!(view.headers["Authorization"], "…");
    assert_eq!(view.headers["x-team"], "blue");
    assert_eq!(restore(&mut shown, Some(&stored)), []);
    assert_eq!(shown, stored);
}

/// The destination `crm` at `url`, with a signing secret and a credential header.
fn crm_at(url: &str, authorization: &str) -> Resource {
    let mut destination = Destination::new(ResourceId::parse("crm").unwrap(), url);
    destination.secrets = vec!["whsec_aG9va2xpbmUtc2VjcmV0LTAx".into()];
    destination
        .headers
        .insert("Authorization".into(), authorization.into());
    Resource::Destination(destination)
}

fn authorization(resource: &Resource) -> &str {
    let Resource::Destination(destination) = resource else {
        panic!("not a destination");
    };
    &destination.headers["Authorization"]
}

#[test]
fn a_masked_credential_header_never_follows_a_new_scheme_host_or_port() {
    let stored = crm_at("https://crm.example.com/hooks", "Bearer receiver-key");
    for url in [
        "https://attacker.example/hooks",
        "https://crm.example.com:8443/hooks",
        "http://crm.example.com/hooks",
    ] {
        let mut sent = crm_at(url, "Bear…");
        let problems = restore(&mut sent, Some(&stored));
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        // Only the header: the signing secret never goes over the wire, so it may follow.
        assert_eq!(fields, ["headers.Authorization"], "{url}");
        assert!(
            problems[0].message.contains("send the value in full"),
            "{}",
            problems[0].message
        );
    }
    // Sent in full, the header may go anywhere: the writer knows it.
    let mut full = crm_at("https://attacker.example/hooks", "Bearer own-key");
    assert_eq!(restore(&mut full, Some(&stored)), []);
    assert_eq!(authorization(&full), "Bearer own-key");
}

#[test]
fn a_masked_credential_header_stays_while_only_the_path_changes() {
    let stored = crm_at("https://crm.example.com/hooks", "Bearer receiver-key");
    for url in [
        "https://crm.example.com/v2/hooks?x=1",
        "https://CRM.example.com:443/hooks",
    ] {
        let mut sent = crm_at(url, "Bear…");
        assert_eq!(restore(&mut sent, Some(&stored)), [], "{url}");
        assert_eq!(authorization(&sent), "Bearer receiver-key", "{url}");
    }
}

#[test]
fn header_values_of_credentials_are_masked_once_and_others_shown() {
    assert_eq!(
        header_value("Authorization", "Bearer receiver-key"),
        "Bear…"
    );
    assert_eq!(header_value("x-api-key", "k"), "…");
    assert_eq!(header_value("authorization", "Bear…"), "Bear…");
    assert_eq!(
        header_value("content-type", "application/json"),
        "application/json"
    );
}

fn destination(url: &str) -> Resource {
    Resource::Destination(Destination::new(ResourceId::parse("crm").unwrap(), url))
}

fn url(resource: &Resource) -> &str {
    let Resource::Destination(destination) = resource else {
        panic!("not a destination");
    };
    &destination.url
}

#[test]
fn a_url_password_is_masked_and_the_user_beside_it_shown() {
    for (stored, shown) in [
        (
            "https://user:pass@example.com/hook",
            "https://user:…@example.com/hook",
        ),
        (
            "https://user:0123456789abcdefXYZ@example.com/",
            "https://user:0123…@example.com/",
        ),
        // Alone, the user name is the credential.
        (
            "https://tok_0123456789abcdef@example.com/",
            "https://tok_…@example.com/",
        ),
        ("https://key:@example.com/", "https://…@example.com/"),
        // Without userinfo the URL is shown exactly as stored.
        ("https://Example.com?to=a@b", "https://Example.com?to=a@b"),
        // Where the credential of a broken URL sits cannot be told: all of it is masked.
        ("https://user:pass@exa mple.com/", "http…"),
    ] {
        assert_eq!(mask_url(stored), shown, "{stored}");
        assert_eq!(url(&masked(destination(stored))), shown, "{stored}");
    }
}

#[test]
fn a_masked_url_sent_back_keeps_the_stored_password() {
    for stored in [
        "https://user:pass@example.com/hook",
        "https://user:0123456789abcdefXYZ@example.com/hook",
        "https://tok_0123456789abcdef@example.com/hook",
        "https://user:pass@exa mple.com/",
    ] {
        let stored = destination(stored);
        let mut sent = masked(stored.clone());
        assert_eq!(restore(&mut sent, Some(&stored)), []);
        assert_eq!(sent, stored);
    }
    // A new path keeps the password: it still goes to the same user at the same host.
    let mut moved = destination("https://user:…@example.com/v2/hook?x=1");
    let stored = destination("https://user:pass@example.com/hook");
    assert_eq!(restore(&mut moved, Some(&stored)), []);
    assert_eq!(url(&moved), "https://user:pass@example.com/v2/hook?x=1");
    // A password sent in full replaces the stored one.
    let mut changed = destination("https://user:new@example.com/hook");
    assert_eq!(restore(&mut changed, Some(&stored)), []);
    assert_eq!(url(&changed), "https://user:new@example.com/hook");
}

#[test]
fn a_masked_url_password_never_follows_a_new_host_user_or_scheme() {
    let stored = destination("https://user:pass@example.com/hook");
    for sent in [
        "https://user:…@attacker.example/hook",
        "https://user:…@example.com:8443/hook",
        "http://user:…@example.com/hook",
        "https://other:…@example.com/hook",
        "https://…@example.com/hook",
        "https://user:abcd…@example.com/hook",
    ] {
        let problems = restore(&mut destination(sent), Some(&stored));
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["url"], "{sent}");
    }
    let problems = restore(&mut destination("https://user:…@example.com/"), None);
    assert_eq!(problems[0].field, "url");
}
