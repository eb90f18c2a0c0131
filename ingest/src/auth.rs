//! Checks a caller's credentials against a source's accepted ways to authenticate, comparing
//! secrets in constant time so timing reveals nothing about them.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use hookline_schemas::SourceAuth;
use subtle::ConstantTimeEq;

/// Whether the request passes any one of the source's `auth` entries. A source with no entries
/// accepts nobody: openness must be explicit (`{ type = "open" }`).
pub fn authorized(auth: &[SourceAuth], headers: &HeaderMap) -> bool {
    auth.iter().any(|scheme| match scheme {
        SourceAuth::Open => true,
        // Signature schemes are being added; until then they accept nobody.
        SourceAuth::SharedSecret { .. }
        | SourceAuth::Github { .. }
        | SourceAuth::Stripe { .. }
        | SourceAuth::Standard { .. }
        | SourceAuth::Hmac { .. } => false,
        SourceAuth::Bearer { tokens } => bearer(headers).is_some_and(|presented| {
            // Check every token so the time taken does not say which one matched.
            tokens.iter().fold(false, |found, token| {
                found | bool::from(token.as_bytes().ct_eq(presented))
            })
        }),
    })
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    fn tokens(tokens: &[&str]) -> Vec<SourceAuth> {
        vec![SourceAuth::Bearer {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        }]
    }

    #[test]
    fn accepts_any_current_bearer_token() {
        let auth = tokens(&["old", "new"]);
        assert!(authorized(&auth, &headers("Bearer old")));
        assert!(authorized(&auth, &headers("bearer new")));
    }

    #[test]
    fn refuses_wrong_missing_and_malformed_credentials() {
        let auth = tokens(&["secret"]);
        assert!(!authorized(&auth, &headers("Bearer secre")));
        assert!(!authorized(&auth, &headers("Bearer secret2")));
        assert!(!authorized(&auth, &headers("Basic secret")));
        assert!(!authorized(&auth, &headers("Bearer ")));
        assert!(!authorized(&auth, &HeaderMap::new()));
        assert!(
            !authorized(&[], &headers("Bearer secret")),
            "no auth entries accept nobody"
        );
    }

    #[test]
    fn open_sources_need_no_credentials() {
        assert!(authorized(&[SourceAuth::Open], &HeaderMap::new()));
    }
}
