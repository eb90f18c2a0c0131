//! Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature` (space-separated
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), keyed by the base64 after `whsec_`.

use axum::http::HeaderMap;
use hookline_runtime::secrets::standard_key;
use hookline_schemas::HmacAlgorithm;

use super::headers::single;
use super::mac::{Key, any_matches, base64_exact, keys, tag_len};
use super::timestamp;

/// The message id header, part of what is signed.
const ID: &str = "webhook-id";
/// The signing time header, part of what is signed.
const TIMESTAMP: &str = "webhook-timestamp";
/// The signatures header.
const SIGNATURE: &str = "webhook-signature";
/// The only signature version this verifier knows; `v1a` (asymmetric) and others are skipped.
const VERSION: &str = "v1";

/// A Standard Webhooks entry: the decoded `whsec_` keys and the tolerance.
#[derive(Clone)]
pub(super) struct Standard {
    keys: Vec<Key>,
    tolerance: u64,
}

impl Standard {
    /// Decodes and compiles the secrets; the tolerance is 300 s when absent.
    pub(super) fn new(secrets: &[String], tolerance_seconds: Option<u64>) -> Result<Self, String> {
        let keys = keys(secrets, |secret| {
            Key::new(HmacAlgorithm::Sha256, &standard_key(secret)?)
        })?;
        let tolerance = tolerance_seconds.unwrap_or(timestamp::DEFAULT_TOLERANCE_SECONDS);
        Ok(Self { keys, tolerance })
    }

    /// Whether the id, a fresh timestamp and the body are signed with one of the keys.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
        let Some(id) = single(headers, ID).filter(|id| !id.is_empty()) else {
            return false;
        };
        let Some(sent_at) = single(headers, TIMESTAMP) else {
            return false;
        };
        let fresh = timestamp::parse(sent_at)
            .is_some_and(|unix_time| timestamp::fresh(unix_time, now, self.tolerance));
        if !fresh {
            return false;
        }
        let Some(signatures) = single(headers, SIGNATURE).and_then(parse) else {
            return false;
        };
        let signed = [id.as_bytes(), b".", sent_at.as_bytes(), b".", body];
        any_matches(&self.keys, &signed, &signatures)
    }
}

/// The well-formed `v1` signatures of the header; `None` when there is none. Entries of other
/// versions, and `v1` entries that are empty (`v1,`), truncated or decode to anything but 32
/// bytes, are skipped: they can never match, and one bad entry must not hide a good one during a
/// rotation.
fn parse(header: &str) -> Option<Vec<Vec<u8>>> {
    let signatures: Vec<Vec<u8>> = header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, signature)| base64_exact(signature, tag_len(HmacAlgorithm::Sha256)))
        .collect();
    (!signatures.is_empty()).then_some(signatures)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_400_000;
    const BODY: &[u8] = br#"{"event":"ping"}"#;
    /// base64 of b"hookline-test-secret-0123456789ab".
    const SECRET_A: &str = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi";
    /// base64 of b"second-standard-key-0123456789ab".
    const SECRET_B: &str = "whsec_c2Vjb25kLXN0YW5kYXJkLWtleS0wMTIzNDU2Nzg5YWI=";
    // Produced with Python's hmac, for t in (1795400000, 1795399700, 1795400300, 1795399699,
    // 1795400301): base64.b64encode(hmac.new(base64.b64decode(SECRET_A[6:]),
    // f"msg_1.{t}.".encode() + BODY, hashlib.sha256).digest())
    const A_AT_NOW: &str = "MG2w9EELy0ip43w8pQxyEMYNXi9jTsEigLQ+vlCBBgM=";
    const A_300_OLD: &str = "C4oMEMK9/57MOJ1m4vkRIqFTcYyvX4BCOu92MBE9rzc=";
    const A_300_AHEAD: &str = "Mf0LYATqnXMHzmw3IBPmUJgAsyMI754hWFsaPAYqHeA=";
    const A_301_OLD: &str = "jjF7yCK924UaLeglUfCHZcbI9thWYtI7Hh5N7ZApLyM=";
    const A_301_AHEAD: &str = "Tq8u1kMzMnCeAkAZON/mGJCoT1xuc8DlggsojyMhmO0=";
    // The same at t=1795400000 with SECRET_B's key.
    const B_AT_NOW: &str = "linXQ4KNI2dpEU2E4DHWULBsD0MaLwprcviweL8lYEQ=";

    fn with_secrets(secrets: &[&str]) -> Standard {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Standard::new(&secrets, None).unwrap()
    }

    fn signed(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ID, id.parse().unwrap());
        headers.insert(TIMESTAMP, timestamp.to_string().parse().unwrap());
        headers.insert(SIGNATURE, signature.parse().unwrap());
        headers
    }

    #[test]
    fn refuses_an_empty_v1_signature_which_the_reference_library_once_accepted() {
        let standard = with_secrets(&[SECRET_A]);
        assert!(!standard.verify(&signed("msg_1", NOW, "v1,"), BODY, NOW));
        assert!(!standard.verify(&signed("msg_1", NOW, "v1, v1,"), BODY, NOW));
        assert_eq!(parse("v1,"), None);
    }

    #[test]
    fn accepts_a_signature_from_any_of_several_secrets() {
        let standard = with_secrets(&[SECRET_A, SECRET_B]);
        assert!(standard.verify(&signed("msg_1", NOW, &format!("v1,{A_AT_NOW}")), BODY, NOW));
        assert!(standard.verify(&signed("msg_1", NOW, &format!("v1,{B_AT_NOW}")), BODY, NOW));
        let retired = with_secrets(&[SECRET_A]);
        assert!(!retired.verify(&signed("msg_1", NOW, &format!("v1,{B_AT_NOW}")), BODY, NOW));
    }

    #[test]
    fn accepts_one_valid_signature_among_several_and_skips_other_versions() {
        let standard = with_secrets(&[SECRET_A]);
        let header = format!("v1a,{A_AT_NOW} v1, v1,AAAA v1,{B_AT_NOW}  v1,{A_AT_NOW}");
        assert!(standard.verify(&signed("msg_1", NOW, &header), BODY, NOW));
        let other_versions = format!("v2,{A_AT_NOW} v1a,{A_AT_NOW} {A_AT_NOW}");
        assert!(!standard.verify(&signed("msg_1", NOW, &other_versions), BODY, NOW));
    }

    #[test]
    fn refuses_truncated_and_wrong_length_signatures() {
        let standard = with_secrets(&[SECRET_A]);
        for signature in [
            format!("v1,{}", &A_AT_NOW[..40]),
            format!("v1,{}", &A_AT_NOW[..43]),
            format!("v1,{A_AT_NOW}AAAA"),
            "v1,bm90LXRoZS1zaWduYXR1cmU=".to_owned(),
            format!("v1;{A_AT_NOW}"),
        ] {
            assert!(
                !standard.verify(&signed("msg_1", NOW, &signature), BODY, NOW),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn accepts_timestamps_exactly_300_seconds_old_or_ahead() {
        let standard = with_secrets(&[SECRET_A]);
        let old = signed("msg_1", NOW - 300, &format!("v1,{A_300_OLD}"));
        let ahead = signed("msg_1", NOW + 300, &format!("v1,{A_300_AHEAD}"));
        assert!(standard.verify(&old, BODY, NOW));
        assert!(standard.verify(&ahead, BODY, NOW));
    }

    #[test]
    fn refuses_timestamps_301_seconds_old_or_ahead() {
        let standard = with_secrets(&[SECRET_A]);
        let old = signed("msg_1", NOW - 301, &format!("v1,{A_301_OLD}"));
        let ahead = signed("msg_1", NOW + 301, &format!("v1,{A_301_AHEAD}"));
        assert!(!standard.verify(&old, BODY, NOW));
        assert!(!standard.verify(&ahead, BODY, NOW));
    }

    #[test]
    fn refuses_non_numeric_timestamps_and_missing_headers() {
        let standard = with_secrets(&[SECRET_A]);
        let signature = format!("v1,{A_AT_NOW}");
        let mut headers = signed("msg_1", NOW, &signature);
        headers.insert(TIMESTAMP, format!("{NOW}.0").parse().unwrap());
        assert!(!standard.verify(&headers, BODY, NOW));
        headers.insert(TIMESTAMP, "soon".parse().unwrap());
        assert!(!standard.verify(&headers, BODY, NOW));
        for missing in [ID, TIMESTAMP, SIGNATURE] {
            let mut headers = signed("msg_1", NOW, &signature);
            headers.remove(missing);
            assert!(!standard.verify(&headers, BODY, NOW), "without {missing}");
        }
        let mut empty_id = signed("msg_1", NOW, &signature);
        empty_id.insert(ID, "".parse().unwrap());
        assert!(!standard.verify(&empty_id, BODY, NOW));
    }

    #[test]
    fn refuses_secrets_that_do_not_decode() {
        let error = Standard::new(&["whsec_not base64!".to_owned()], None)
            .err()
            .unwrap();
        assert!(error.starts_with("secrets[0]: "), "{error}");
        assert!(Standard::new(&["whsec_".to_owned()], None).is_err());
    }
}
