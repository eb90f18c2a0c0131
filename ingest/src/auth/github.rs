//! GitHub's signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.

use axum::http::HeaderMap;
use hookline_schemas::HmacAlgorithm;

use super::headers::single;
use super::mac::{Key, any_matches, hex_exact, keys, tag_len};

/// The header GitHub signs with. The older SHA-1 `X-Hub-Signature` is deliberately not read.
const HEADER: &str = "x-hub-signature-256";
/// What precedes the hex digest in the header.
const PREFIX: &str = "sha256=";

/// A GitHub entry: the webhook secrets configured at GitHub, used as given.
#[derive(Clone)]
pub(super) struct Github {
    keys: Vec<Key>,
}

impl Github {
    /// Compiles the secrets.
    pub(super) fn new(secrets: &[String]) -> Result<Self, String> {
        let keys = keys(secrets, |secret| {
            Key::new(HmacAlgorithm::Sha256, secret.as_bytes())
        })?;
        Ok(Self { keys })
    }

    /// Whether the body is signed with one of the secrets.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        signature(headers).is_some_and(|tag| any_matches(&self.keys, &[body], &[tag]))
    }
}

/// The digest in the header, if it is exactly a SHA-256 digest in hex.
fn signature(headers: &HeaderMap) -> Option<Vec<u8>> {
    let digest = single(headers, HEADER)?.strip_prefix(PREFIX)?;
    hex_exact(digest, tag_len(HmacAlgorithm::Sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"event":"ping"}"#;
    // Produced with Python's hmac:
    // hmac.new(b"generic-secret-one", b'{"event":"ping"}', hashlib.sha256).hexdigest()
    const SIGNED_BY_ONE: &str = "05bca1a9b616e5da1d83d22d6b703581f88567d5b6118e9e4b3f846ad017ed27";
    // The same with b"generic-secret-two".
    const SIGNED_BY_TWO: &str = "7b8134df065e3674bc2ca4a1522dd7f7c5bcbf20e3a2e497e678092f78965f4b";

    fn with_secrets(secrets: &[&str]) -> Github {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Github::new(&secrets).unwrap()
    }

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn accepts_a_body_signed_with_any_of_several_secrets() {
        let github = with_secrets(&["generic-secret-one", "generic-secret-two"]);
        assert!(github.verify(&signed(&format!("sha256={SIGNED_BY_ONE}")), BODY));
        assert!(github.verify(&signed(&format!("sha256={SIGNED_BY_TWO}")), BODY));
        let retired = with_secrets(&["generic-secret-two"]);
        assert!(!retired.verify(&signed(&format!("sha256={SIGNED_BY_ONE}")), BODY));
    }

    #[test]
    fn refuses_empty_truncated_odd_length_and_overlong_digests() {
        let github = with_secrets(&["generic-secret-one"]);
        for value in [
            "sha256=".to_owned(),
            format!("sha256={}", &SIGNED_BY_ONE[..62]),
            format!("sha256={}", &SIGNED_BY_ONE[..63]),
            format!("sha256={SIGNED_BY_ONE}00"),
            format!("sha256= {SIGNED_BY_ONE}"),
            format!("SHA256={SIGNED_BY_ONE}"),
            format!("sha1={SIGNED_BY_ONE}"),
            SIGNED_BY_ONE.to_owned(),
        ] {
            assert!(!github.verify(&signed(&value), BODY), "{value:?}");
        }
    }

    #[test]
    fn refuses_a_missing_header_and_a_changed_body() {
        let github = with_secrets(&["generic-secret-one"]);
        assert!(!github.verify(&HeaderMap::new(), BODY));
        let header = signed(&format!("sha256={SIGNED_BY_ONE}"));
        assert!(!github.verify(&header, br#"{"event":"pong"}"#));
    }
}
