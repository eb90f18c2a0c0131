//! Signed Unix timestamps (Stripe's `t=`, Standard Webhooks' `webhook-timestamp`) and the window
//! around the current time in which they are accepted.

/// The tolerance of Stripe and Standard Webhooks when a source sets none, in seconds, as both
/// senders document it.
pub(super) const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// Unix seconds written as ASCII digits only. A sign, spaces or a fraction are refused: the text
/// is part of what was signed, so anything other than the digits a sender writes is suspect.
pub(super) fn parse(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether `timestamp` lies within `tolerance` seconds of `now`, in the past or the future. The
/// future is bounded too, so a signature made with a clock set ahead cannot be replayed later.
pub(super) fn fresh(timestamp: i64, now: i64, tolerance: u64) -> bool {
    now.abs_diff(timestamp) <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plain_digits() {
        assert_eq!(parse("1795400000"), Some(1_795_400_000));
        for text in [
            "",
            "-5",
            "+5",
            " 5",
            "5 ",
            "1.5",
            "1e9",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn accepts_exactly_the_tolerance_on_either_side() {
        let now = 1_795_400_000;
        assert!(fresh(now - 300, now, 300));
        assert!(fresh(now + 300, now, 300));
        assert!(!fresh(now - 301, now, 300));
        assert!(!fresh(now + 301, now, 300));
        assert!(fresh(now, now, 0));
    }
}
