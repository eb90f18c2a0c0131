//! The request headers a destination or a trigger action cannot set, because the dispatcher sets
//! or drops them: one list that validation refuses on write and the dispatcher drops at delivery.

/// Headers only the dispatcher writes, lower-cased. The first nine frame the request or describe
/// one connection, not the message: the HTTP client derives `host` and `content-length` from the
/// URL and body, the hop-by-hop ones are its own (and HTTP/2 forbids them), and a wrong value
/// breaks or smuggles requests. The last three are the Standard Webhooks signature, always the
/// dispatcher's own so a receiver can trust it.
///
/// `Proxy-Authorization` is not here: the dispatcher uses no proxy and sends it like any other
/// header, so it is not dropped and there is nothing to refuse.
pub const RESERVED_HEADERS: [&str; 12] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Whether `name` is one of [`RESERVED_HEADERS`], in any letter case (header names are
/// case-insensitive, and an operator writes `Host` as often as `host`).
pub fn is_reserved(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_match_in_any_case_and_nothing_else() {
        for name in RESERVED_HEADERS {
            assert_eq!(name, name.to_ascii_lowercase(), "listed lower-cased");
            assert!(is_reserved(name), "{name}");
            assert!(is_reserved(&name.to_ascii_uppercase()), "{name}");
        }
        assert!(is_reserved("Webhook-Signature"));
        for name in [
            "content-type",
            "authorization",
            "user-agent",
            "x-host",
            "hosts",
            "",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }
}
