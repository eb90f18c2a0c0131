//! Who is logged in to the console: a session cookie made at login from a control token, and the
//! token that protects every change against cross-site requests.
//!
//! The cookie holds no token. It says which access it grants and until when, and carries an
//! HMAC-SHA256 of that, keyed with the digest of the token the operator logged in with (which only
//! the server knows): every control instance with the same tokens accepts it, and it stops working
//! as soon as its token is no longer accepted. It is `HttpOnly`, `SameSite=Strict`, limited to
//! `/ui`, and `Secure` when the request came over TLS (`X-Forwarded-Proto: https` from a proxy
//! in front of control). Logging out clears it in the browser; a copy taken before stays valid
//! until it expires ([`LIFETIME`]), so revoking means removing the token.
//!
//! The cross-site request token of a session is another HMAC of the cookie under the same key:
//! every form carries it and every change checks it, besides `SameSite` and the `Origin` check of
//! [`same_origin`].

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::tokens::{Access, Caller, Tokens, digest, token_name};

/// The cookie's name.
pub const COOKIE: &str = "hookline-session";

/// How long a session lasts after login.
pub const LIFETIME: time::Duration = time::Duration::hours(12);

/// The path the cookie is sent to.
const PATH: &str = "/ui";

/// A logged-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who calls the API on the operator's behalf.
    pub caller: Caller,
    /// The token every change must carry.
    pub csrf: String,
}

impl Session {
    /// Whether the operator may change things.
    pub fn can_write(&self) -> bool {
        self.caller.access == Access::Admin
    }

    /// Whether `presented` is this session's cross-site request token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Whether a form was posted from one of this session's console pages: from the console's
    /// own origin ([`same_origin`]) and with the session's token `csrf`.
    pub fn posted_here(&self, headers: &HeaderMap, csrf: &str) -> bool {
        same_origin(headers) && self.csrf_matches(csrf)
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn access_code(access: Access) -> &'static str {
    match access {
        Access::Admin => "a",
        Access::ReadOnly => "r",
    }
}

/// The access and key of `token`, if it is accepted (an admin token wins, as for the API).
pub fn log_in(tokens: &Tokens, token: &str) -> Option<(Access, [u8; 32])> {
    let presented = digest(token.trim().as_bytes());
    let mut found = None;
    for (key, access) in tokens.keys() {
        if bool::from(key.ct_eq(&presented)) && found != Some(Access::Admin) {
            found = Some(access);
        }
    }
    found.map(|access| (access, presented))
}

/// The cookie value of a new session for the token with digest `key`.
pub fn issue(key: &[u8; 32], access: Access, now: time::OffsetDateTime) -> String {
    let mut nonce = [0u8; 12];
    // Without randomness, two logins in one second share a value, which is harmless.
    let _ = getrandom::fill(&mut nonce);
    let expires = (now + LIFETIME).unix_timestamp();
    let payload = format!("1.{}.{expires}.{}", access_code(access), hex::encode(nonce));
    let signature = hex::encode(mac(key, &[payload.as_bytes()]));
    format!("{payload}.{signature}")
}

/// The session a cookie value stands for, if it is one of ours, unexpired, and its token is
/// still accepted.
pub fn open(tokens: &Tokens, value: &str, now: time::OffsetDateTime) -> Option<Session> {
    let (payload, signature) = value.rsplit_once('.')?;
    let signature = hex::decode(signature).ok()?;
    let mut parts = payload.split('.');
    let (Some("1"), Some(code), Some(expires), Some(_nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if expires.parse::<i64>().ok()? <= now.unix_timestamp() {
        return None;
    }
    let (key, access) = tokens.keys().find(|(key, access)| {
        access_code(*access) == code
            && bool::from(mac(key, &[payload.as_bytes()]).ct_eq(signature.as_slice()))
    })?;
    let csrf = hex::encode(&mac(key, &[b"csrf.", payload.as_bytes()])[..16]);
    Some(Session {
        caller: Caller {
            access,
            by: format!("console:{}", token_name(key)),
        },
        csrf,
    })
}

/// The session of a request, from its cookie.
pub fn from_headers(tokens: &Tokens, headers: &HeaderMap) -> Option<Session> {
    let now = time::OffsetDateTime::now_utc();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == COOKIE)
        .find_map(|cookie| open(tokens, cookie.value(), now))
}

/// Whether the request came to control over TLS, as the proxy in front of it says.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` that starts a session with cookie value `value`.
pub fn set_cookie(value: String, request: &HeaderMap) -> HeaderValue {
    let cookie = Cookie::build((COOKIE, value))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_tls(request))
        .max_age(LIFETIME)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a cookie of hex digits and dots")
}

/// The `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(request: &HeaderMap) -> HeaderValue {
    let cookie = Cookie::build((COOKIE, ""))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_tls(request))
        .max_age(time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("an empty cookie")
}

/// Whether a change request comes from the console's own pages: its `Origin` (or, without one,
/// `Sec-Fetch-Site`) must name the host the browser asked for: `X-Forwarded-Host` when a proxy
/// in front of control sets it, else `Host` (default ports aside). Browsers send one of them with
/// every form post; the per-session CSRF token is checked besides.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.split(',').next())
        .map(str::trim);
    // `Origin: null` (a privacy setting, a sandboxed frame) says nothing: the fetch metadata
    // decides.
    if let Some(origin) = headers
        .get(header::ORIGIN)
        .filter(|origin| *origin != "null")
    {
        let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
            return false;
        };
        let Some(origin_host) = origin.host_str() else {
            return false;
        };
        // `port()` is None for the scheme's default port, so compare without it.
        let default_port = match origin.scheme() {
            "https" => ":443",
            _ => ":80",
        };
        let authority = match origin.port() {
            Some(port) => format!("{origin_host}:{port}"),
            None => origin_host.to_owned(),
        };
        return host.is_some_and(|host| {
            let host = host.strip_suffix(default_port).unwrap_or(host);
            host.eq_ignore_ascii_case(&authority)
        });
    }
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(site) => site == b"same-origin" || site == b"none",
        // Neither header: not a browser's cross-site request (scripts and tests).
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn a_session_opens_until_it_expires_or_its_token_is_gone() {
        let tokens = Tokens::new(&["admin-token".into()], &["viewer-token".into()]);
        let (access, key) = log_in(&tokens, "admin-token").unwrap();
        assert_eq!(access, Access::Admin);
        let value = issue(&key, access, at(1_000));
        let session = open(&tokens, &value, at(1_001)).unwrap();
        assert!(session.can_write());
        assert_eq!(
            session.caller.by,
            format!("console:{}", token_name(&digest(b"admin-token")))
        );
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("0123"));
        // Expired.
        assert!(open(&tokens, &value, at(1_000 + LIFETIME.whole_seconds())).is_none());
        // Its token removed from the configuration.
        let without = Tokens::new(&["other".into()], &["viewer-token".into()]);
        assert!(open(&without, &value, at(1_001)).is_none());
        // A read-only login stays read-only, and cannot be turned into an admin one.
        let (access, key) = log_in(&tokens, "viewer-token").unwrap();
        let value = issue(&key, access, at(1_000));
        assert!(!open(&tokens, &value, at(1_001)).unwrap().can_write());
        let forged = value.replacen("1.r.", "1.a.", 1);
        assert!(open(&tokens, &forged, at(1_001)).is_none());
        assert!(log_in(&tokens, "wrong").is_none());
        assert!(open(&tokens, "garbage", at(1_001)).is_none());
    }

    #[test]
    fn changes_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8081"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8081"),
        );
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(!same_origin(&headers));
        // Behind a proxy that says which host the browser asked for, default ports aside.
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://hooks.example.com"),
        );
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("hooks.example.com:443"),
        );
        assert!(same_origin(&headers));
        headers.insert("x-forwarded-host", HeaderValue::from_static("other.test"));
        assert!(!same_origin(&headers));
        headers.remove("x-forwarded-host");
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }
}
