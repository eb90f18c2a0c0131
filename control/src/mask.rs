//! Secrets are write-only: reads show them masked, and a write that sends a masked value back
//! keeps the stored secret it stands for, so a client can read, change one field and write the
//! whole resource back without knowing the secrets.
//!
//! Masked are the tokens and secrets of a source's `auth`, a destination's signing `secrets`,
//! the values of a destination's headers that carry credentials (`Authorization`,
//! `X-Api-Key`, ...), and the password in a destination's `url` (`https://user:…@host/`).

use hookline_runtime::validate::Problem;
use hookline_schemas::{Destination, Resource, Source, SourceAuth};
use url::{Position, Url};

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

/// [`MASK`] as it reads in a parsed URL's userinfo, which the parser percent-encodes.
const MASK_IN_URL: &str = "%E2%80%A6";

/// Where the credential in `url`'s userinfo is: the password; or the username when no password
/// goes with it, because then the username is the credential (`https://<token>@host/`, or an API
/// key as the user name of Basic auth). A username beside a password only names the account, and
/// stays visible so an operator can tell which one is used.
fn credential(url: &Url) -> Option<(Position, Position)> {
    if url.password().is_some_and(|password| !password.is_empty()) {
        Some((Position::BeforePassword, Position::AfterPassword))
    } else if !url.username().is_empty() {
        Some((Position::BeforeUsername, Position::AfterUsername))
    } else {
        None
    }
}

/// `url` with `start..end` replaced by `with`.
fn splice(url: &Url, (start, end): (Position, Position), with: &str) -> String {
    format!("{}{with}{}", &url[..start], &url[end..])
}

/// `url` with the credential in its userinfo masked: `https://user:…@host/hook`. A URL without
/// one is shown as stored; one that does not parse but may hold userinfo is masked whole, since
/// where its credential sits cannot be told.
pub fn mask_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => match credential(&parsed) {
            Some(place) => splice(&parsed, place, &mask(&parsed[place.0..place.1])),
            None => url.to_owned(),
        },
        Err(_) if url.contains('@') => mask(url),
        Err(_) => url.to_owned(),
    }
}

/// What a sent destination URL needs: nothing (its credential, if any, is not masked), the URL
/// with the stored credential back, or a problem (its mask stands for no stored credential).
#[derive(Debug, PartialEq, Eq)]
enum UrlRestore {
    Unmasked,
    Restored(String),
    Unknown,
}

/// Puts the stored credential back into a `sent` URL that carries it masked: the stored URL when
/// its masked form came back unchanged, else the sent URL with the stored credential in place,
/// but only while the credential is masked alike and the URL still goes to the same user, scheme,
/// host and port. A path may change; a host may not, or whoever may write but not read secrets
/// could send the stored password to a host of their choosing.
fn restore_url(sent: &str, stored: Option<&str>) -> UrlRestore {
    if let Some(stored) = stored
        && mask_url(stored) == sent
    {
        return UrlRestore::Restored(stored.to_owned());
    }
    let Ok(url) = Url::parse(sent) else {
        return if is_masked(sent) {
            UrlRestore::Unknown
        } else {
            UrlRestore::Unmasked
        };
    };
    let Some(place) = credential(&url) else {
        return UrlRestore::Unmasked;
    };
    let Some(shown) = url[place.0..place.1].strip_suffix(MASK_IN_URL) else {
        return UrlRestore::Unmasked;
    };
    let shown = format!("{shown}{MASK}");
    let Some(stored) = stored.and_then(|stored| Url::parse(stored).ok()) else {
        return UrlRestore::Unknown;
    };
    let Some(stored_place) = credential(&stored) else {
        return UrlRestore::Unknown;
    };
    let secret = &stored[stored_place.0..stored_place.1];
    // Everything of the authority but the credential: scheme, user (when the password is the
    // credential), host and port.
    let same_place = url[..place.0] == stored[..stored_place.0]
        && url[place.1..Position::BeforePath] == stored[stored_place.1..Position::BeforePath];
    if same_place && mask(secret) == shown {
        UrlRestore::Restored(splice(&url, place, secret))
    } else {
        UrlRestore::Unknown
    }
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
    match restore_url(&destination.url, stored.map(|stored| stored.url.as_str())) {
        UrlRestore::Unmasked => {}
        UrlRestore::Restored(url) => destination.url = url,
        UrlRestore::Unknown => unknown("url".to_owned()),
    }
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
    fn the_mask_reads_the_same_inside_a_parsed_url() {
        let url = Url::parse(&format!("https://user:{MASK}@example.com/")).unwrap();
        assert_eq!(url.password(), Some(MASK_IN_URL));
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
}
