//! Reading a credential header strictly: exactly one value, as text.

use axum::http::HeaderMap;
use axum::http::header::AsHeaderName;

/// The value of a header that must appear exactly once. A repeated credential header is refused
/// rather than resolved: a proxy and this check could pick different copies, and a sender never
/// needs two.
pub(super) fn single<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_header_that_appears_once() {
        let mut headers = HeaderMap::new();
        headers.insert("x-signature", "abc".parse().unwrap());
        assert_eq!(single(&headers, "x-signature"), Some("abc"));
        assert_eq!(single(&headers, "X-Signature"), Some("abc"));
    }

    #[test]
    fn refuses_a_missing_or_repeated_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(single(&headers, "x-signature"), None);
        headers.append("x-signature", "abc".parse().unwrap());
        headers.append("x-signature", "def".parse().unwrap());
        assert_eq!(single(&headers, "x-signature"), None);
    }
}
