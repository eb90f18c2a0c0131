//! HMAC signatures, shared by every signature scheme: keys compiled once, the encodings a tag is
//! written in, and the constant-time match of presented tags against the keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use hookline_schemas::HmacAlgorithm;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq as _};

/// A keyed HMAC, ready to sign. The key schedule is computed once at compile time; each request
/// signs with a copy.
#[derive(Clone)]
pub(super) enum Key {
    /// HMAC-SHA256.
    Sha256(Hmac<Sha256>),
    /// HMAC-SHA512.
    Sha512(Hmac<Sha512>),
}

impl Key {
    /// A key from a secret's bytes. An empty secret is refused: anyone can sign with it.
    pub(super) fn new(algorithm: HmacAlgorithm, secret: &[u8]) -> Result<Self, String> {
        if secret.is_empty() {
            return Err("is empty, and anyone could sign with an empty key".to_owned());
        }
        let key = match algorithm {
            HmacAlgorithm::Sha256 => Hmac::<Sha256>::new_from_slice(secret).map(Self::Sha256),
            HmacAlgorithm::Sha512 => Hmac::<Sha512>::new_from_slice(secret).map(Self::Sha512),
        };
        key.map_err(|error| format!("is not a usable HMAC key: {error}"))
    }

    /// The tag of the concatenated `parts`, which spares callers building the signed content.
    fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256(key) => {
                let mut mac = key.clone();
                parts.iter().for_each(|part| mac.update(part));
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha512(key) => {
                let mut mac = key.clone();
                parts.iter().for_each(|part| mac.update(part));
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// The length in bytes of a tag of `algorithm`, which every presented signature must have.
pub(super) fn tag_len(algorithm: HmacAlgorithm) -> usize {
    match algorithm {
        HmacAlgorithm::Sha256 => 32,
        HmacAlgorithm::Sha512 => 64,
    }
}

/// Compiles a scheme's `secrets` with `key`, naming the failing entry (`secrets[1]: ...`). An
/// empty list is refused: an entry that nobody can pass is a mistake, not a policy.
pub(super) fn keys(
    secrets: &[String],
    key: impl Fn(&str) -> Result<Key, String>,
) -> Result<Vec<Key>, String> {
    if secrets.is_empty() {
        return Err("secrets: is empty; list at least one secret".to_owned());
    }
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| key(secret).map_err(|error| format!("secrets[{index}]: {error}")))
        .collect()
}

/// Whether any `candidate` is the tag of `parts` under any of `keys`. Every key meets every
/// candidate and the results are combined without branching, so the time taken says nothing
/// about which key or which candidate matched, nor how many bytes of a wrong tag were right.
pub(super) fn any_matches(keys: &[Key], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    let mut found = Choice::from(0);
    for key in keys {
        let tag = key.sign(parts);
        for candidate in candidates {
            found |= tag.as_slice().ct_eq(candidate);
        }
    }
    found.into()
}

/// Hexadecimal (either case) that decodes to exactly `len` bytes; anything shorter, longer or
/// odd-length is not a signature.
pub(super) fn hex_exact(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != len * 2 {
        return None;
    }
    hex::decode(text).ok()
}

/// Standard base64 with padding that decodes to exactly `len` bytes.
pub(super) fn base64_exact(text: &str, len: usize) -> Option<Vec<u8>> {
    // Checking the length first keeps a huge header from being decoded for nothing.
    if text.len() != len.div_ceil(3) * 4 {
        return None;
    }
    STANDARD
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() == len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_empty_secret() {
        assert!(Key::new(HmacAlgorithm::Sha256, b"").is_err());
        assert!(Key::new(HmacAlgorithm::Sha512, b"").is_err());
    }

    #[test]
    fn names_the_secret_that_does_not_compile() {
        let secrets = ["good".to_owned(), String::new()];
        let error = keys(&secrets, |s| Key::new(HmacAlgorithm::Sha256, s.as_bytes()))
            .err()
            .unwrap();
        assert!(error.starts_with("secrets[1]: "), "{error}");
        let error = keys(&[], |s| Key::new(HmacAlgorithm::Sha256, s.as_bytes()))
            .err()
            .unwrap();
        assert!(error.starts_with("secrets: "), "{error}");
    }

    #[test]
    fn hex_signatures_must_have_exactly_the_tag_length() {
        assert_eq!(hex_exact("00ff", 2), Some(vec![0, 255]));
        assert_eq!(hex_exact("00FF", 2), Some(vec![0, 255]));
        assert_eq!(hex_exact("", 2), None);
        assert_eq!(hex_exact("00f", 2), None, "odd length");
        assert_eq!(hex_exact("00", 2), None, "truncated");
        assert_eq!(hex_exact("00ff00", 2), None, "too long");
        assert_eq!(hex_exact("zzzz", 2), None, "not hex");
    }

    #[test]
    fn base64_signatures_must_decode_to_exactly_the_tag_length() {
        assert_eq!(base64_exact("AAAA", 3), Some(vec![0, 0, 0]));
        assert_eq!(base64_exact("AAE=", 2), Some(vec![0, 1]));
        assert_eq!(base64_exact("", 2), None);
        assert_eq!(base64_exact("AAE", 2), None, "missing padding");
        assert_eq!(base64_exact("AA==", 2), None, "decodes to one byte");
        assert_eq!(base64_exact("AA!=", 2), None, "not base64");
    }
}
