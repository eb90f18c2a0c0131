//! Secrets are write-only: reads show them masked, and a write that sends a masked value back
//! keeps the stored secret it stands for, so a client can read, change one field and write the
//! whole resource back without knowing the secrets.
//!
//! Masked are the tokens and secrets of a source's `auth`, a destination's signing `secrets`,
//! the values of a destination's headers that carry credentials (`Authorization`,
//! `X-Api-Key`, ...), and the password in a destination's `url` (`https://user:…@host/`,
//! in `mask/url.rs`).
//!
//! A masked secret that is sent to the receiver (a URL password, a credential header) is restored
//! only while the destination's URL still goes to the same scheme, host and port: whoever may
//! write but not read secrets must not be able to send a stored one to a host of their choosing.

mod url;

use hookline_runtime::validate::Problem;
use hookline_schemas::{Destination, Resource, Source, SourceAuth};

pub use self::url::mask_url;
use self::url::{UrlRestore, restore_url, same_origin};

/// What a masked value ends with; no real secret does.
pub const MASK: char = '…';

/// Secrets at least this long keep their first characters visible, so an operator can tell
/// them apart; shorter ones are shown as the mask alone.
const SHOW_PREFIX_FROM: usize = 16;

/// How many leading characters of a long secret are shown.
const PREFIX: usize = 4;

/// The masked form of `secret`: `whse…` for a long one, `…` for a short one.
pub fn mask(secret: &str) -> String {
    if secret.chars().count() >= SHOW_PREFIX_FROM {
        let visible: String = secret.chars().take(PREFIX).collect();
        format!("{visible}{MASK}")
    } else {
        MASK.to_string()
    }
}

fn is_masked(value: &str) -> bool {
    value.ends_with(MASK)
}

/// The value of header `name` as the API shows it: masked when the header carries a credential
/// (and is not masked already), as it is.
pub fn header_value(name: &str, value: &str) -> String {
    if sensitive_header(name) && !is_masked(value) {
        mask(value)
    } else {
        value.to_owned()
    }
}

/// What a refused masked value is told: where its mask stands for no stored secret.
const UNKNOWN: &str = "is a masked value that stands for no stored secret; send the secret itself";

/// What a refused masked header is told when the URL moved.
const MOVED: &str = "is a masked value, and the url now goes to another scheme, host or port, \
                     where a stored credential does not follow; send the value in full";

/// Whether a destination header carries a credential, so its value is masked.
pub fn sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "key", "password", "auth", "signature"]
        .iter()
        .any(|word| name.contains(word))
}

/// The tokens or secrets of one way to authenticate, with their field name.
fn auth_secrets(auth: &SourceAuth) -> Option<(&'static str, &Vec<String>)> {
    match auth {
        SourceAuth::Bearer { tokens, .. } => Some(("tokens", tokens)),
        SourceAuth::SharedSecret { secrets }
        | SourceAuth::Github { secrets }
        | SourceAuth::Stripe { secrets, .. }
        | SourceAuth::Standard { secrets, .. }
        | SourceAuth::Hmac { secrets, .. } => Some(("secrets", secrets)),
        SourceAuth::Open => None,
    }
}

fn auth_secrets_mut(auth: &mut SourceAuth) -> Option<(&'static str, &mut Vec<String>)> {
    match auth {
        SourceAuth::Bearer { tokens, .. } => Some(("tokens", tokens)),
        SourceAuth::SharedSecret { secrets }
        | SourceAuth::Github { secrets }
        | SourceAuth::Stripe { secrets, .. }
        | SourceAuth::Standard { secrets, .. }
        | SourceAuth::Hmac { secrets, .. } => Some(("secrets", secrets)),
        SourceAuth::Open => None,
    }
}

/// `resource` with every secret masked.
pub fn masked(resource: Resource) -> Resource {
    match resource {
        Resource::Source(mut source) => {
            for (_, secrets) in source.auth.iter_mut().filter_map(auth_secrets_mut) {
                secrets.iter_mut().for_each(|secret| *secret = mask(secret));
            }
            Resource::Source(source)
        }
        Resource::Destination(mut destination) => {
            destination.url = mask_url(&destination.url);
            for secret in &mut destination.secrets {
                *secret = mask(secret);
            }
            for (name, value) in &mut destination.headers {
                if sensitive_header(name) {
                    *value = mask(value);
                }
            }
            Resource::Destination(destination)
        }
        trigger @ Resource::Trigger(_) => trigger,
    }
}

/// Replaces the masked values in `resource` by the stored secrets they stand for: the secret at
/// the same place if its mask matches, else the only stored secret with that mask. A masked
/// value that stands for no stored secret is a problem (send the secret itself).
pub fn restore(resource: &mut Resource, stored: Option<&Resource>) -> Vec<Problem> {
    let key = resource.key().to_string();
    let mut problems = Vec::new();
    let mut refuse = |field: String, message: &str| {
        problems.push(Problem {
            resource: key.clone(),
            field,
            message: message.to_owned(),
        });
    };
    match resource {
        Resource::Source(source) => {
            let stored = match stored {
                Some(Resource::Source(stored)) => Some(stored),
                Some(Resource::Destination(_) | Resource::Trigger(_)) | None => None,
            };
            restore_source(source, stored, &mut refuse);
        }
        Resource::Destination(destination) => {
            let stored = match stored {
                Some(Resource::Destination(stored)) => Some(stored),
                Some(Resource::Source(_) | Resource::Trigger(_)) | None => None,
            };
            restore_destination(destination, stored, &mut refuse);
        }
        Resource::Trigger(_) => {}
    }
    problems
}

fn restore_source(
    source: &mut Source,
    stored: Option<&Source>,
    refuse: &mut impl FnMut(String, &str),
) {
    let stored_lists: Vec<&[String]> = stored
        .map(|stored| {
            stored
                .auth
                .iter()
                .map(|auth| auth_secrets(auth).map_or(&[][..], |(_, list)| list.as_slice()))
                .collect()
        })
        .unwrap_or_default();
    for (index, auth) in source.auth.iter_mut().enumerate() {
        let Some((field, secrets)) = auth_secrets_mut(auth) else {
            continue;
        };
        for (position, value) in secrets.iter_mut().enumerate() {
            if !is_masked(value) {
                continue;
            }
            let same_place = stored_lists.get(index).and_then(|list| list.get(position));
            match find(
                value,
                same_place,
                stored_lists.iter().flat_map(|l| l.iter()),
            ) {
                Some(secret) => *value = secret,
                None => refuse(format!("auth[{index}].{field}[{position}]"), UNKNOWN),
            }
        }
    }
}

fn restore_destination(
    destination: &mut Destination,
    stored: Option<&Destination>,
    refuse: &mut impl FnMut(String, &str),
) {
    match restore_url(&destination.url, stored.map(|stored| stored.url.as_str())) {
        UrlRestore::Unmasked => {}
        UrlRestore::Restored(url) => destination.url = url,
        UrlRestore::Unknown => refuse("url".to_owned(), UNKNOWN),
    }
    // The signing secrets stay wherever the URL goes: they only sign and never go over the wire,
    // and a writer who points the destination at their own host learns signatures of bodies they
    // chose, which they could have had from the real receiver's test send as well.
    let stored_secrets = stored
        .map(|stored| stored.secrets.as_slice())
        .unwrap_or_default();
    for (position, value) in destination.secrets.iter_mut().enumerate() {
        if is_masked(value) {
            match find(value, stored_secrets.get(position), stored_secrets.iter()) {
                Some(secret) => *value = secret,
                None => refuse(format!("secrets[{position}]"), UNKNOWN),
            }
        }
    }
    // A credential header is sent as it is, like a URL password: it follows the URL only to the
    // same scheme, host and port.
    let same_place = stored.is_some_and(|stored| same_origin(&destination.url, &stored.url));
    for (name, value) in &mut destination.headers {
        if is_masked(value) {
            let stored_value = stored.and_then(|stored| stored.headers.get(name));
            match find(value, stored_value, stored_value.into_iter()) {
                Some(secret) if same_place => *value = secret,
                Some(_) => refuse(format!("headers.{name}"), MOVED),
                None => refuse(format!("headers.{name}"), UNKNOWN),
            }
        }
    }
}

/// The stored secret `masked` stands for: `same_place` if it matches, else the only candidate
/// that does.
fn find<'a>(
    masked: &str,
    same_place: Option<&String>,
    candidates: impl Iterator<Item = &'a String>,
) -> Option<String> {
    if let Some(secret) = same_place.filter(|secret| mask(secret) == masked) {
        return Some(secret.clone());
    }
    let mut matching = candidates.filter(|secret| mask(secret) == masked);
    match (matching.next(), matching.next()) {
        (Some(secret), None) => Some(secret.clone()),
        (Some(_), Some(_)) | (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
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
}
