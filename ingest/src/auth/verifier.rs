//! The [`Verifier`]: a source's `auth` entries compiled once, and the rule that a request passing
//! any one of them is accepted.

use std::fmt;

use axum::http::HeaderMap;
use hookline_schemas::SourceAuth;

use super::generic::Generic;
use super::github::Github;
use super::standard::Standard;
use super::stripe::Stripe;
use super::token::Tokens;

/// A source's auth entries, compiled once (secrets decoded), checked per request.
///
/// Its `Debug` output names the schemes only, never a secret.
#[derive(Clone)]
pub struct Verifier {
    checks: Vec<Check>,
}

/// One compiled entry.
#[derive(Clone)]
enum Check {
    Open,
    /// The tokens, and when they stop being accepted (unix seconds).
    Bearer(Tokens, Option<i64>),
    SharedSecret(Tokens),
    Github(Github),
    Stripe(Stripe),
    Standard(Standard),
    Hmac(Generic),
}

impl Verifier {
    /// Compiles the entries. Errors name the entry, e.g. "auth[1].secrets[0]: ..." (a whsec
    /// secret that does not decode). An empty list compiles to a verifier that accepts nobody.
    pub fn new(auth: &[SourceAuth]) -> Result<Self, String> {
        let checks = auth
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                Check::new(entry).map_err(|error| format!("auth[{index}].{error}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { checks })
    }

    /// Whether the request passes ANY entry. `now` = current unix time in seconds (injected so
    /// tests are deterministic). `body` must be the raw bytes as received: signatures cover them,
    /// not any parsed form.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
        // Every entry is checked even after one passed (`|`, not `||`), so the time taken does not
        // say which entry, and so which secret, a request matched.
        self.checks.iter().fold(false, |passed, check| {
            passed | check.verify(headers, body, now)
        })
    }
}

impl Check {
    fn new(entry: &SourceAuth) -> Result<Self, String> {
        Ok(match entry {
            SourceAuth::Open => Self::Open,
            SourceAuth::Bearer { tokens, expires_at } => {
                let until = expires_at
                    .as_deref()
                    .map(|at| {
                        hookline_runtime::time::parse_rfc3339(at)
                            .map(time::OffsetDateTime::unix_timestamp)
                            .ok_or_else(|| format!("expires_at: {at:?} is not an RFC 3339 time"))
                    })
                    .transpose()?;
                Self::Bearer(Tokens::new("tokens", tokens)?, until)
            }
            SourceAuth::SharedSecret { secrets } => {
                Self::SharedSecret(Tokens::new("secrets", secrets)?)
            }
            SourceAuth::Github { secrets } => Self::Github(Github::new(secrets)?),
            SourceAuth::Stripe {
                secrets,
                tolerance_seconds,
            } => Self::Stripe(Stripe::new(secrets, *tolerance_seconds)?),
            SourceAuth::Standard {
                secrets,
                tolerance_seconds,
            } => Self::Standard(Standard::new(secrets, *tolerance_seconds)?),
            SourceAuth::Hmac {
                header,
                algorithm,
                encoding,
                prefix,
                secrets,
            } => Self::Hmac(Generic::new(
                header, *algorithm, *encoding, prefix, secrets,
            )?),
        })
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
        match self {
            Self::Open => true,
            // An expired entry is still compared, so the time taken does not tell it apart.
            Self::Bearer(tokens, until) => {
                tokens.verify_bearer(headers) & until.is_none_or(|until| now < until)
            }
            Self::SharedSecret(secrets) => secrets.verify_shared_secret(headers),
            Self::Github(github) => github.verify(headers, body),
            Self::Stripe(stripe) => stripe.verify(headers, body, now),
            Self::Standard(standard) => standard.verify(headers, body, now),
            Self::Hmac(hmac) => hmac.verify(headers, body),
        }
    }

    /// The entry's `type`, for `Debug`.
    fn kind(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Bearer(..) => "bearer",
            Self::SharedSecret(_) => "shared_secret",
            Self::Github(_) => "github",
            Self::Stripe(_) => "stripe",
            Self::Standard(_) => "standard",
            Self::Hmac(_) => "hmac",
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<_> = self.checks.iter().map(Check::kind).collect();
        f.debug_struct("Verifier").field("schemes", &kinds).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::AUTHORIZATION;

    const NOW: i64 = 1_795_400_000;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn tokens(tokens: &[&str]) -> SourceAuth {
        SourceAuth::Bearer {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            expires_at: None,
        }
    }

    #[test]
    fn an_empty_auth_list_accepts_nobody() {
        let verifier = Verifier::new(&[]).unwrap();
        assert!(!verifier.verify(&HeaderMap::new(), b"{}", NOW));
        assert!(!verifier.verify(&bearer("Bearer anything"), b"{}", NOW));
    }

    #[test]
    fn an_open_entry_accepts_everyone() {
        let verifier = Verifier::new(&[SourceAuth::Open]).unwrap();
        assert!(verifier.verify(&HeaderMap::new(), b"", NOW));
        assert!(verifier.verify(&bearer("Bearer wrong"), b"{}", NOW));
    }

    #[test]
    fn a_request_passing_any_one_entry_is_accepted() {
        let auth = [
            SourceAuth::Github {
                secrets: vec!["gh".into()],
            },
            tokens(&["old", "new"]),
            SourceAuth::SharedSecret {
                secrets: vec!["shared".into()],
            },
        ];
        let verifier = Verifier::new(&auth).unwrap();
        assert!(verifier.verify(&bearer("Bearer new"), b"{}", NOW));
        let mut shared = HeaderMap::new();
        shared.insert("x-webhook-secret", "shared".parse().unwrap());
        assert!(verifier.verify(&shared, b"{}", NOW));
        assert!(!verifier.verify(&bearer("Bearer shared"), b"{}", NOW));
        assert!(!verifier.verify(&HeaderMap::new(), b"{}", NOW));
    }

    #[test]
    fn tokens_with_an_expiry_are_accepted_until_it_and_refused_from_it() {
        let until = time::OffsetDateTime::from_unix_timestamp(NOW + 60).unwrap();
        let auth = [
            tokens(&["new"]),
            SourceAuth::Bearer {
                tokens: vec!["old".into()],
                expires_at: Some(hookline_runtime::time::rfc3339(until)),
            },
        ];
        let verifier = Verifier::new(&auth).unwrap();
        assert!(verifier.verify(&bearer("Bearer old"), b"{}", NOW + 59));
        assert!(!verifier.verify(&bearer("Bearer old"), b"{}", NOW + 60));
        assert!(verifier.verify(&bearer("Bearer new"), b"{}", NOW + 60));
        let bad = SourceAuth::Bearer {
            tokens: vec!["old".into()],
            expires_at: Some("tomorrow".into()),
        };
        let error = Verifier::new(&[bad]).unwrap_err();
        assert!(error.contains("auth[0].expires_at"), "{error}");
    }

    #[test]
    fn errors_name_the_entry_and_the_secret() {
        let auth = [
            tokens(&["t"]),
            SourceAuth::Standard {
                secrets: vec!["whsec_not base64!".into()],
                tolerance_seconds: None,
            },
        ];
        let error = Verifier::new(&auth).unwrap_err();
        assert!(error.starts_with("auth[1].secrets[0]: "), "{error}");

        let error = Verifier::new(&[tokens(&[])]).unwrap_err();
        assert!(error.starts_with("auth[0].tokens: "), "{error}");
        let hmac = SourceAuth::Hmac {
            header: "bad header".into(),
            algorithm: hookline_schemas::HmacAlgorithm::Sha256,
            encoding: hookline_schemas::SignatureEncoding::Hex,
            prefix: String::new(),
            secrets: vec!["s".into()],
        };
        let error = Verifier::new(&[SourceAuth::Open, hmac]).unwrap_err();
        assert!(error.starts_with("auth[1].header: "), "{error}");
    }

    #[test]
    fn debug_output_names_schemes_but_no_secret() {
        let verifier = Verifier::new(&[tokens(&["very-secret-token"]), SourceAuth::Open]).unwrap();
        let debug = format!("{verifier:?}");
        assert_eq!(debug, r#"Verifier { schemes: ["bearer", "open"] }"#);
    }
}
