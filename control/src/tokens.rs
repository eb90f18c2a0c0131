//! The accepted tokens and what each allows: admin tokens read and write, read-only tokens only
//! read.
//!
//! Tokens are compared as SHA-256 digests in constant time, every token every time, so neither
//! the time of an answer nor its size says how much of a guess was right.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    Admin,
    /// Read only (secrets masked, as for everyone).
    ReadOnly,
}

/// Who is calling, as the token check decided: what they may do, and how records name them.
/// [`crate::auth`] puts it in every authenticated request's extensions; the console puts its
/// session's in the requests it makes of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What the caller may do.
    pub access: Access,
    /// How records name the caller ([`fingerprint`]; `console:` before it from the console).
    pub by: String,
}

/// The accepted tokens, kept as digests.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: Vec<([u8; 32], Access)>,
}

impl Tokens {
    /// Admin and read-only tokens; empty ones are ignored.
    pub fn new(admin: &[String], read_only: &[String]) -> Self {
        let tokens = admin
            .iter()
            .map(|token| (token, Access::Admin))
            .chain(read_only.iter().map(|token| (token, Access::ReadOnly)))
            .filter(|(token, _)| !token.is_empty())
            .map(|(token, access)| (digest(token.as_bytes()), access))
            .collect();
        Self { tokens }
    }

    /// Whether no token is accepted at all.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// What the `Authorization` header allows, if anything. An admin token wins over a
    /// read-only one that happens to be equal.
    pub fn check(&self, headers: &HeaderMap) -> Option<Access> {
        let presented = bearer(headers)?;
        let presented = digest(presented);
        let mut admin = subtle::Choice::from(0);
        let mut read_only = subtle::Choice::from(0);
        for (token, access) in &self.tokens {
            let matches = token.ct_eq(&presented);
            match access {
                Access::Admin => admin |= matches,
                Access::ReadOnly => read_only |= matches,
            }
        }
        if bool::from(admin) {
            Some(Access::Admin)
        } else if bool::from(read_only) {
            Some(Access::ReadOnly)
        } else {
            None
        }
    }
}

impl Tokens {
    /// The digest and access of every accepted token: the console keys its sessions with them,
    /// so a session ends when its token is no longer accepted.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&[u8; 32], Access)> {
        self.tokens.iter().map(|(key, access)| (key, *access))
    }
}

/// The SHA-256 digest of a token.
pub(crate) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Who made a request, as a replay records it: `token:` and the first eight hex digits of the
/// SHA-256 of the bearer token (`printf %s "$TOKEN" | sha256sum | cut -c1-8`), so a record
/// names the token without holding it.
pub fn fingerprint(headers: &HeaderMap) -> String {
    match bearer(headers) {
        Some(token) => token_name(&digest(token)),
        None => "anonymous".to_owned(),
    }
}

/// `token:` and the first eight hex digits of a token's digest.
pub(crate) fn token_name(digest: &[u8; 32]) -> String {
    format!("token:{}", &hex::encode(digest)[..8])
}

/// The credentials of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(space);
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn tells_admin_read_only_and_unknown_tokens_apart() {
        let tokens = Tokens::new(&["admin".into(), String::new()], &["viewer".into()]);
        assert_eq!(tokens.check(&with("Bearer admin")), Some(Access::Admin));
        assert_eq!(
            tokens.check(&with("bearer  viewer ")),
            Some(Access::ReadOnly)
        );
        assert_eq!(tokens.check(&with("Bearer admi")), None);
        assert_eq!(tokens.check(&with("Basic admin")), None);
        assert_eq!(tokens.check(&with("Bearer ")), None);
        assert_eq!(tokens.check(&HeaderMap::new()), None);
    }

    #[test]
    fn an_empty_token_is_never_accepted() {
        let tokens = Tokens::new(&[String::new()], &[]);
        assert!(tokens.is_empty());
        assert_eq!(tokens.check(&with("Bearer ")), None);
    }
}
