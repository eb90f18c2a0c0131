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

mod secret;
mod url;

use hookline_runtime::validate::Problem;
use hookline_schemas::{Destination, Resource, Source, SourceAuth};

use self::secret::is_masked;
pub use self::secret::{MASK, mask};
pub use self::url::mask_url;
use self::url::{UrlRestore, restore_url, same_origin};

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
mod tests;
