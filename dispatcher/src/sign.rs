//! Standard Webhooks signatures for outbound deliveries: the `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers a receiver checks with any Standard Webhooks library.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use hookline_runtime::secrets::standard_key;
use sha2::Sha256;

/// The header carrying the message id, which receivers use to drop duplicates.
pub const WEBHOOK_ID: &str = "webhook-id";

/// The header carrying the signing time in Unix seconds, which receivers use to refuse replays.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";

/// The header carrying the signatures, `v1,<base64>` separated by spaces.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Signs deliveries with every secret of a destination, so a receiver that is rotating its
/// secret accepts the message under the old secret and the new one alike.
#[derive(Clone)]
pub struct Signer {
    /// One keyed HMAC per secret, in the order given. The key schedule is computed once here
    /// rather than per message, and keeping the MAC instead of the raw bytes leaves signing with
    /// nothing that can fail.
    keys: Vec<Hmac<Sha256>>,
}

impl Signer {
    /// A signer for `secrets` (`whsec_<base64>`, the prefix optional). The error names the
    /// malformed entry by position (`secrets[1]: ...`) and never repeats the secret; an empty
    /// list is refused, because a message signed by no key passes no receiver.
    pub fn new(secrets: &[String]) -> Result<Self, String> {
        if secrets.is_empty() {
            return Err("secrets: is empty; list at least one secret".to_owned());
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                let key =
                    standard_key(secret).map_err(|error| format!("secrets[{index}]: {error}"))?;
                Hmac::<Sha256>::new_from_slice(&key)
                    .map_err(|error| format!("secrets[{index}]: is not a usable HMAC key: {error}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// The `webhook-signature` header value for a message: `v1,<base64 HMAC-SHA256 of
    /// "{id}.{timestamp}.{body}">` for each secret, separated by single spaces. The receiver
    /// accepts the message when any one of them matches its secret.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        // "v1," and 44 base64 characters per signature, and a space between them.
        let mut header = String::with_capacity(self.keys.len() * 48);
        for key in &self.keys {
            // The signed content is fed in pieces so a large body is never copied.
            let mut mac = key.clone();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !header.is_empty() {
                header.push(' ');
            }
            header.push_str("v1,");
            STANDARD.encode_string(mac.finalize().into_bytes(), &mut header);
        }
        header
    }
}

impl fmt::Debug for Signer {
    /// Shows how many keys there are, never the keys: a signer ends up in logs with its config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_count", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    /// Vectors made by the official `standardwebhooks` Python library, shared with ingest.
    const FIXTURE: &str = include_str!("../../tests/fixtures/signatures.json");

    #[derive(Deserialize)]
    struct Fixture {
        tolerance_seconds: i64,
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        scheme: String,
        secret: String,
        headers: HashMap<String, String>,
        body: String,
        now: i64,
        expect: String,
        why: String,
    }

    impl Vector {
        fn header(&self, name: &str) -> &str {
            self.headers.get(name).map_or("", String::as_str)
        }

        fn timestamp(&self) -> i64 {
            self.header(WEBHOOK_TIMESTAMP).parse().unwrap()
        }

        /// Our signature of this vector's id, timestamp and body under its secret.
        fn our_signature(&self) -> String {
            Signer::new(std::slice::from_ref(&self.secret))
                .unwrap()
                .signature(
                    self.header(WEBHOOK_ID),
                    self.timestamp(),
                    self.body.as_bytes(),
                )
        }

        fn presented(&self) -> Vec<&str> {
            self.header(WEBHOOK_SIGNATURE).split(' ').collect()
        }
    }

    fn standard_vectors(expect: &str) -> (Fixture, Vec<usize>) {
        let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap();
        let indices = (0..fixture.vectors.len())
            .filter(|&i| fixture.vectors[i].scheme == "standard")
            .filter(|&i| fixture.vectors[i].expect == expect)
            .collect();
        (fixture, indices)
    }

    const SECRET_A: &str = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi";
    const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn reproduces_the_signatures_of_the_official_library() {
        let (fixture, valid) = standard_vectors("valid");
        assert!(
            valid.len() >= 2,
            "the fixture lost its valid standard vectors"
        );
        for vector in valid.iter().map(|&i| &fixture.vectors[i]) {
            let ours = vector.our_signature();
            assert!(
                vector.presented().contains(&ours.as_str()),
                "{}: we signed {ours}, the library sent {}",
                vector.why,
                vector.header(WEBHOOK_SIGNATURE)
            );
        }
    }

    #[test]
    fn does_not_reproduce_the_tampered_signatures_of_the_fixture() {
        // Vectors refused for their clock rather than their signature are left out: their
        // signatures are genuine.
        let (fixture, invalid) = standard_vectors("invalid");
        let tampered: Vec<&Vector> = invalid
            .iter()
            .map(|&i| &fixture.vectors[i])
            .filter(|v| (v.timestamp() - v.now).abs() <= fixture.tolerance_seconds)
            .collect();
        assert!(tampered.len() >= 4, "the fixture lost its tampered vectors");
        for vector in tampered {
            let ours = vector.our_signature();
            assert!(
                !vector.presented().contains(&ours.as_str()),
                "{}: {ours} should not match",
                vector.why
            );
        }
    }

    #[test]
    fn signs_with_every_secret_so_receivers_can_rotate() {
        let both = Signer::new(&[SECRET_A.to_owned(), SECRET_B.to_owned()]).unwrap();
        let header = both.signature("msg_1", 1_795_400_000, br#"{"a":1}"#);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert_ne!(parts[0], parts[1]);
        let alone = |secret: &str| {
            Signer::new(&[secret.to_owned()]).unwrap().signature(
                "msg_1",
                1_795_400_000,
                br#"{"a":1}"#,
            )
        };
        assert_eq!(parts[0], alone(SECRET_A));
        assert_eq!(parts[1], alone(SECRET_B));
    }

    #[test]
    fn signature_is_v1_and_base64_of_a_sha256_tag() {
        let signer = Signer::new(&[SECRET_A.to_owned()]).unwrap();
        let header = signer.signature("msg_1", 0, b"");
        let tag = header.strip_prefix("v1,").unwrap();
        assert_eq!(STANDARD.decode(tag).unwrap().len(), 32);
    }

    #[test]
    fn names_a_malformed_secret_by_position_without_repeating_it() {
        let malformed = "whsec_this-is-not-base64 but secret!";
        let error = Signer::new(&[SECRET_A.to_owned(), malformed.to_owned()]).unwrap_err();
        assert!(error.starts_with("secrets[1]: "), "{error}");
        assert!(!error.contains(malformed), "{error}");
        assert!(!error.contains("this-is-not-base64"), "{error}");

        let error = Signer::new(&["whsec_".to_owned()]).unwrap_err();
        assert!(error.starts_with("secrets[0]: "), "{error}");
        let error = Signer::new(&[]).unwrap_err();
        assert!(error.starts_with("secrets: "), "{error}");
    }

    #[test]
    fn debug_output_shows_no_key() {
        let signer = Signer::new(&[SECRET_A.to_owned()]).unwrap();
        assert_eq!(format!("{signer:?}"), "Signer { key_count: 1, .. }");
    }

    #[test]
    fn header_names_are_the_standard_ones() {
        assert_eq!(WEBHOOK_ID, "webhook-id");
        assert_eq!(WEBHOOK_TIMESTAMP, "webhook-timestamp");
        assert_eq!(WEBHOOK_SIGNATURE, "webhook-signature");
    }
}
