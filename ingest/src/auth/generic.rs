//! Any other HMAC scheme: an HMAC-SHA256 or HMAC-SHA512 of the body, in hex or base64, after an
//! optional prefix, in a header the source names.

use axum::http::{HeaderMap, HeaderName};
use hookline_schemas::{HmacAlgorithm, SignatureEncoding};

use super::headers::single;
use super::mac::{Key, any_matches, base64_exact, hex_exact, keys, tag_len};

/// A generic HMAC entry, with its header name validated once.
#[derive(Clone)]
pub(super) struct Generic {
    header: HeaderName,
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    prefix: String,
    keys: Vec<Key>,
}

impl Generic {
    /// Validates the header name and compiles the secrets (used as given).
    pub(super) fn new(
        header: &str,
        algorithm: HmacAlgorithm,
        encoding: SignatureEncoding,
        prefix: &str,
        secrets: &[String],
    ) -> Result<Self, String> {
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|error| format!("header: {header:?} is not a header name: {error}"))?;
        let keys = keys(secrets, |secret| Key::new(algorithm, secret.as_bytes()))?;
        Ok(Self {
            header,
            algorithm,
            encoding,
            prefix: prefix.to_owned(),
            keys,
        })
    }

    /// Whether the body is signed with one of the secrets.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        self.signature(headers)
            .is_some_and(|tag| any_matches(&self.keys, &[body], &[tag]))
    }

    /// The tag in the header, if it follows the prefix and has exactly the algorithm's length.
    fn signature(&self, headers: &HeaderMap) -> Option<Vec<u8>> {
        let encoded = single(headers, &self.header)?.strip_prefix(self.prefix.as_str())?;
        let len = tag_len(self.algorithm);
        match self.encoding {
            SignatureEncoding::Hex => hex_exact(encoded, len),
            SignatureEncoding::Base64 => base64_exact(encoded, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"event":"ping"}"#;
    // Produced once with Python's hmac, independently of this code:
    //   python3 -c 'import hmac, hashlib, base64; body = b"{\"event\":\"ping\"}"
    //     for s in (b"generic-secret-one", b"generic-secret-two"):
    //       print(hmac.new(s, body, hashlib.sha256).hexdigest(),
    //             base64.b64encode(hmac.new(s, body, hashlib.sha512).digest()).decode())'
    const SHA256_HEX_ONE: &str = "05bca1a9b616e5da1d83d22d6b703581f88567d5b6118e9e4b3f846ad017ed27";
    const SHA256_HEX_TWO: &str = "7b8134df065e3674bc2ca4a1522dd7f7c5bcbf20e3a2e497e678092f78965f4b";
    const SHA512_BASE64_ONE: &str =
        "LpesFIlI9CLTAZK4VYJJAOCWjYvJId3tBzZCL8yuumGfG+S+GWmPkpnHSNIIs1qwmBKskikU9GryQhBVIpXhWg==";
    const SHA512_BASE64_TWO: &str =
        "4zS76BphiLSF0se63d9JeY0iCpJoYOuqao4Ob4y/1RQbEgKS6/WpA1Luj88Qm9iNs2LQw8MsPYaBtN0XGd8h2A==";
    // base64 of the HMAC-SHA256 with b"generic-secret-one" (a 32-byte tag in base64).
    const SHA256_BASE64_ONE: &str = "BbyhqbYW5dodg9Ita3A1gfiFZ9W2EY6eSz+EatAX7Sc=";

    fn generic(algorithm: HmacAlgorithm, encoding: SignatureEncoding, prefix: &str) -> Generic {
        let secrets = [
            "generic-secret-one".to_owned(),
            "generic-secret-two".to_owned(),
        ];
        Generic::new("X-Signature", algorithm, encoding, prefix, &secrets).unwrap()
    }

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-signature", value.parse().unwrap());
        headers
    }

    #[test]
    fn accepts_sha256_hex_after_its_prefix() {
        let hmac = generic(HmacAlgorithm::Sha256, SignatureEncoding::Hex, "sha256=");
        assert!(hmac.verify(&signed(&format!("sha256={SHA256_HEX_ONE}")), BODY));
        assert!(hmac.verify(&signed(&format!("sha256={SHA256_HEX_TWO}")), BODY));
        let upper = SHA256_HEX_ONE.to_ascii_uppercase();
        assert!(hmac.verify(&signed(&format!("sha256={upper}")), BODY));
    }

    #[test]
    fn refuses_sha256_hex_without_its_prefix_or_with_the_wrong_length() {
        let hmac = generic(HmacAlgorithm::Sha256, SignatureEncoding::Hex, "sha256=");
        for value in [
            SHA256_HEX_ONE.to_owned(),
            "sha256=".to_owned(),
            format!("sha256={}", &SHA256_HEX_ONE[..63]),
            format!("sha256={}", &SHA256_HEX_ONE[..62]),
            format!("sha256={SHA256_HEX_ONE}0"),
            format!("sha512={SHA256_HEX_ONE}"),
        ] {
            assert!(!hmac.verify(&signed(&value), BODY), "{value:?}");
        }
        assert!(!hmac.verify(&HeaderMap::new(), BODY));
        let header = signed(&format!("sha256={SHA256_HEX_ONE}"));
        assert!(!hmac.verify(&header, br#"{"event":"pong"}"#));
    }

    #[test]
    fn accepts_sha512_base64_from_either_secret() {
        let hmac = generic(HmacAlgorithm::Sha512, SignatureEncoding::Base64, "");
        assert!(hmac.verify(&signed(SHA512_BASE64_ONE), BODY));
        assert!(hmac.verify(&signed(SHA512_BASE64_TWO), BODY));
    }

    #[test]
    fn refuses_base64_that_decodes_to_the_wrong_length() {
        let hmac = generic(HmacAlgorithm::Sha512, SignatureEncoding::Base64, "");
        let truncated = &SHA512_BASE64_ONE[..84];
        let unpadded = SHA512_BASE64_ONE.trim_end_matches('=');
        for value in ["", SHA256_BASE64_ONE, truncated, unpadded, SHA256_HEX_ONE] {
            assert!(!hmac.verify(&signed(value), BODY), "{value:?}");
        }
    }

    #[test]
    fn refuses_a_header_name_that_is_not_one() {
        let secrets = ["s".to_owned()];
        let error = Generic::new(
            "X Signature",
            HmacAlgorithm::Sha256,
            SignatureEncoding::Hex,
            "",
            &secrets,
        )
        .err()
        .unwrap();
        assert!(error.starts_with("header: "), "{error}");
    }
}
