//! Secrets presented as they are: bearer tokens (`Authorization: Bearer <token>`) and the shared
//! secret in `X-Webhook-Secret`, several accepted at once so they can be rotated.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use super::headers::single;

/// The header that carries a shared secret.
const SHARED_SECRET_HEADER: &str = "x-webhook-secret";

/// Accepted tokens, kept as SHA-256 digests. Comparing fixed-length digests takes the same time
/// whatever the presented token's length, so timing reveals neither a token's length nor how many
/// of its leading bytes a guess got right.
#[derive(Clone)]
pub(super) struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// Compiles the accepted `values`; `field` names the list in errors (`tokens[0]: is empty`).
    pub(super) fn new(field: &str, values: &[String]) -> Result<Self, String> {
        if values.is_empty() {
            return Err(format!("{field}: is empty; list at least one"));
        }
        let digests = values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                if value.is_empty() {
                    Err(format!("{field}[{index}]: is empty"))
                } else {
                    Ok(Sha256::digest(value.as_bytes()).into())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { digests })
    }

    /// Whether `presented` is one of the tokens. Every token is compared, so the time taken does
    /// not say which one matched.
    fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let found = self.digests.iter().fold(Choice::from(0), |found, digest| {
            found | digest.ct_eq(&presented)
        });
        found.into()
    }

    /// Whether the request carries one of the tokens as `Authorization: Bearer <token>`.
    pub(super) fn verify_bearer(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|token| self.matches(token.as_bytes()))
    }

    /// Whether the request carries one of the secrets in `X-Webhook-Secret`.
    pub(super) fn verify_shared_secret(&self, headers: &HeaderMap) -> bool {
        single(headers, SHARED_SECRET_HEADER)
            .filter(|secret| !secret.is_empty())
            .is_some_and(|secret| self.matches(secret.as_bytes()))
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive and may
/// be followed by several spaces (RFC 7235's `1*SP`).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = single(headers, AUTHORIZATION)?;
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(values: &[&str]) -> Tokens {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        Tokens::new("tokens", &values).unwrap()
    }

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    }

    #[test]
    fn accepts_any_current_bearer_token_with_any_scheme_case() {
        let accepted = tokens(&["old", "new"]);
        assert!(accepted.verify_bearer(&with("authorization", "Bearer old")));
        assert!(accepted.verify_bearer(&with("authorization", "bearer new")));
        assert!(accepted.verify_bearer(&with("authorization", "BEARER  new")));
    }

    #[test]
    fn refuses_wrong_missing_and_malformed_bearer_credentials() {
        let accepted = tokens(&["secret"]);
        for value in [
            "Bearer secre",
            "Bearer secret2",
            "Bearer Secret",
            "Basic secret",
            "Bearersecret",
            "Bearer ",
            "Bearer",
            "secret",
        ] {
            assert!(
                !accepted.verify_bearer(&with("authorization", value)),
                "{value:?}"
            );
        }
        assert!(!accepted.verify_bearer(&HeaderMap::new()));
        assert!(
            !accepted.verify_bearer(&with("x-webhook-secret", "secret")),
            "a shared-secret header is not a bearer token"
        );
    }

    #[test]
    fn refuses_a_repeated_authorization_header() {
        let accepted = tokens(&["secret"]);
        let mut headers = with("authorization", "Bearer secret");
        headers.append(AUTHORIZATION, "Bearer other".parse().unwrap());
        assert!(!accepted.verify_bearer(&headers));
    }

    #[test]
    fn accepts_any_current_shared_secret_and_refuses_others() {
        let accepted = tokens(&["s3cret-a", "s3cret-b"]);
        assert!(accepted.verify_shared_secret(&with("x-webhook-secret", "s3cret-a")));
        assert!(accepted.verify_shared_secret(&with("X-Webhook-Secret", "s3cret-b")));
        assert!(!accepted.verify_shared_secret(&with("x-webhook-secret", "s3cret")));
        assert!(!accepted.verify_shared_secret(&with("x-webhook-secret", "")));
        assert!(!accepted.verify_shared_secret(&with("authorization", "Bearer s3cret-a")));
        assert!(!accepted.verify_shared_secret(&HeaderMap::new()));
    }

    #[test]
    fn refuses_empty_token_lists_and_empty_tokens() {
        assert!(Tokens::new("tokens", &[]).is_err());
        let error = Tokens::new("secrets", &["a".to_owned(), String::new()])
            .err()
            .unwrap();
        assert_eq!(error, "secrets[1]: is empty");
    }
}
