//! Stripe's signature: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, with
//! several `v1` allowed and the timestamp within a tolerance of the current time.

use axum::http::HeaderMap;
use hookline_schemas::HmacAlgorithm;

use super::headers::single;
use super::mac::{Key, any_matches, hex_exact, keys, tag_len};
use super::timestamp;

/// The header Stripe signs with.
const HEADER: &str = "stripe-signature";

/// A Stripe entry: the endpoint signing secrets (`whsec_…`, used as given, unlike Standard
/// Webhooks) and the tolerance.
#[derive(Clone)]
pub(super) struct Stripe {
    keys: Vec<Key>,
    tolerance: u64,
}

impl Stripe {
    /// Compiles the secrets; the tolerance is 300 s when absent.
    pub(super) fn new(secrets: &[String], tolerance_seconds: Option<u64>) -> Result<Self, String> {
        let keys = keys(secrets, |secret| {
            Key::new(HmacAlgorithm::Sha256, secret.as_bytes())
        })?;
        let tolerance = tolerance_seconds.unwrap_or(timestamp::DEFAULT_TOLERANCE_SECONDS);
        Ok(Self { keys, tolerance })
    }

    /// Whether a fresh timestamp and the body are signed with one of the secrets.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
        let Some(signature) = single(headers, HEADER).and_then(parse) else {
            return false;
        };
        if !timestamp::fresh(signature.unix_time, now, self.tolerance) {
            return false;
        }
        let signed = [signature.timestamp.as_bytes(), b".", body];
        any_matches(&self.keys, &signed, &signature.v1)
    }
}

/// A readable `Stripe-Signature` header.
struct Signature<'a> {
    /// The timestamp as written, which is what was signed.
    timestamp: &'a str,
    /// The timestamp's value.
    unix_time: i64,
    /// The well-formed `v1` signatures.
    v1: Vec<Vec<u8>>,
}

/// Reads `t=…,v1=…[,v1=…]`. Other schemes (`v0`) are ignored, as are `v1` values that are not a
/// 32-byte hex digest, since they can never match; the header is refused when it has no
/// timestamp, two timestamps, an item without `=`, or no well-formed `v1`.
fn parse(header: &str) -> Option<Signature<'_>> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (name, value) = item.trim().split_once('=')?;
        match name {
            "t" if timestamp.is_some() => return None,
            "t" => timestamp = Some(value),
            "v1" => v1.extend(hex_exact(value, tag_len(HmacAlgorithm::Sha256))),
            _ => {}
        }
    }
    let timestamp = timestamp?;
    let unix_time = timestamp::parse(timestamp)?;
    (!v1.is_empty()).then_some(Signature {
        timestamp,
        unix_time,
        v1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_400_000;
    const BODY: &[u8] = br#"{"event":"ping"}"#;
    // Produced with Python's hmac, for t in (1795400000, 1795399700, 1795400300, 1795399699,
    // 1795400301): hmac.new(b"whsec_stripe_rotation_a", f"{t}.".encode() + BODY,
    // hashlib.sha256).hexdigest()
    const A_AT_NOW: &str = "a444a2602f29cdd3e938bd88f6f4d6aeda1d43e01311fe1a8e08bc3cbb7b9718";
    const A_300_OLD: &str = "c792801756dd0ec066eee727a5597e4732bf4e3bed8115ff9e7bec399ebf7763";
    const A_300_AHEAD: &str = "26a2667e1c1dd5438f1adc73fca4849038c3840c8aedda6ead831e47b42893da";
    const A_301_OLD: &str = "187259fe6db5ca5e4215bf41669ad1005acf790e0b948e17685dd7283d67d5de";
    const A_301_AHEAD: &str = "6fee12fbb871200f8815ab85c2c315e405fa5aad414269e84caf31bc840f342f";
    // The same at t=1795400000 with b"whsec_stripe_rotation_b".
    const B_AT_NOW: &str = "c74b55b67fe5915cbe3edaa9fb60c5f2e11edf68ee9c6963b974cf442e802647";

    fn with_secrets(secrets: &[&str]) -> Stripe {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Stripe::new(&secrets, None).unwrap()
    }

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn accepts_timestamps_exactly_300_seconds_old_or_ahead() {
        let stripe = with_secrets(&["whsec_stripe_rotation_a"]);
        let old = signed(&format!("t={},v1={A_300_OLD}", NOW - 300));
        let ahead = signed(&format!("t={},v1={A_300_AHEAD}", NOW + 300));
        assert!(stripe.verify(&old, BODY, NOW));
        assert!(stripe.verify(&ahead, BODY, NOW));
    }

    #[test]
    fn refuses_timestamps_301_seconds_old_or_ahead() {
        let stripe = with_secrets(&["whsec_stripe_rotation_a"]);
        let old = signed(&format!("t={},v1={A_301_OLD}", NOW - 301));
        let ahead = signed(&format!("t={},v1={A_301_AHEAD}", NOW + 301));
        assert!(!stripe.verify(&old, BODY, NOW));
        assert!(!stripe.verify(&ahead, BODY, NOW));
    }

    #[test]
    fn honours_a_configured_tolerance() {
        let secrets = ["whsec_stripe_rotation_a".to_owned()];
        let strict = Stripe::new(&secrets, Some(299)).unwrap();
        let old = signed(&format!("t={},v1={A_300_OLD}", NOW - 300));
        assert!(!strict.verify(&old, BODY, NOW));
    }

    #[test]
    fn accepts_any_of_several_v1_signatures_and_secrets() {
        let stripe = with_secrets(&["whsec_stripe_rotation_a", "whsec_stripe_rotation_b"]);
        let zeros = "0".repeat(64);
        let header = signed(&format!("t={NOW},v1={zeros},v1={B_AT_NOW}"));
        assert!(stripe.verify(&header, BODY, NOW));
        let header = signed(&format!("t={NOW}, v1={A_AT_NOW}, v0=abc"));
        assert!(stripe.verify(&header, BODY, NOW));
        let retired = with_secrets(&["whsec_stripe_rotation_a"]);
        assert!(!retired.verify(&signed(&format!("t={NOW},v1={B_AT_NOW}")), BODY, NOW));
    }

    #[test]
    fn refuses_empty_truncated_and_odd_length_v1() {
        let stripe = with_secrets(&["whsec_stripe_rotation_a"]);
        for v1 in [
            "",
            &A_AT_NOW[..62],
            &A_AT_NOW[..63],
            &format!("{A_AT_NOW}00"),
        ] {
            let header = signed(&format!("t={NOW},v1={v1}"));
            assert!(!stripe.verify(&header, BODY, NOW), "{v1:?}");
        }
    }

    #[test]
    fn refuses_missing_repeated_and_non_numeric_timestamps() {
        let stripe = with_secrets(&["whsec_stripe_rotation_a"]);
        for value in [
            format!("v1={A_AT_NOW}"),
            format!("t=,v1={A_AT_NOW}"),
            format!("t=now,v1={A_AT_NOW}"),
            format!("t=+{NOW},v1={A_AT_NOW}"),
            format!("t={NOW}.0,v1={A_AT_NOW}"),
            format!("t={NOW},t={NOW},v1={A_AT_NOW}"),
            format!("t={NOW},v1"),
            format!("t={NOW}"),
        ] {
            assert!(!stripe.verify(&signed(&value), BODY, NOW), "{value:?}");
        }
        assert!(!stripe.verify(&HeaderMap::new(), BODY, NOW));
    }
}
