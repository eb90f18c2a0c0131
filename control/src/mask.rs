//! Secrets are write-only: reads show them masked, and a write that sends a masked value back
//! keeps the stored secret it stands for, so a client can read, change one field and write the
//! whole resource back without knowing the secrets.
//!
//! Masked are the tokens and secrets of a source's `auth`, a destination's signing `secrets`,
//! and the values of a destination's headers that carry credentials (`Authorization`,
//! `X-Api-Key`, ...).

use hookline_runtime::validate::Problem;
use hookline_schemas::{Destination, Resource, Source, SourceAuth};

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
        SourceAuth::Bearer { tokens } => Some(("tokens", tokens)),
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
        SourceAuth::Bearer { tokens } => Some(("tokens", tokens)),
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
    let mut unknown = |field: String| {
        problems.push(Problem {
            resource: key.clone(),
            field,
            message: "is a masked value that stands for no stored secret; send the secret itself"
                .to_owned(),
        });
    };
    match resource {
        Resource::Source(source) => {
            let stored = match stored {
                Some(Resource::Source(stored)) => Some(stored),
                Some(Resource::Destination(_) | Resource::Trigger(_)) | None => None,
            };
            restore_source(source, stored, &mut unknown);
        }
        Resource::Destination(destination) => {
            let stored = match stored {
                Some(Resource::Destination(stored)) => Some(stored),
                Some(Resource::Source(_) | Resource::Trigger(_)) | None => None,
            };
            restore_destination(destination, stored, &mut unknown);
        }
        Resource::Trigger(_) => {}
    }
    problems
}

fn restore_source(source: &mut Source, stored: Option<&Source>, unknown: &mut impl FnMut(String)) {
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
                None => unknown(format!("auth[{index}].{field}[{position}]")),
            }
        }
    }
}

fn restore_destination(
    destination: &mut Destination,
    stored: Option<&Destination>,
    unknown: &mut impl FnMut(String),
) {
    let stored_secrets = stored
        .map(|stored| stored.secrets.as_slice())
        .unwrap_or_default();
    for (position, value) in destination.secrets.iter_mut().enumerate() {
        if is_masked(value) {
            match find(value, stored_secrets.get(position), stored_secrets.iter()) {
                Some(secret) => *value = secret,
                None => unknown(format!("secrets[{position}]")),
            }
        }
    }
    for (name, value) in &mut destination.headers {
        if is_masked(value) {
            let stored_value = stored.and_then(|stored| stored.headers.get(name));
            match find(value, stored_value, stored_value.into_iter()) {
                Some(secret) => *value = secret,
                None => unknown(format!("headers.{name}")),
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
                },
                SourceAuth::Open,
            ],
        ))
    }

    fn tokens(resource: &Resource) -> Vec<String> {
        let Resource::Source(source) = resource else {
            panic!("not a source");
        };
        let SourceAuth::Bearer { tokens } = &source.auth[0] else {
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
            && let SourceAuth::Bearer { tokens } = &mut source.auth[0]
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
}
