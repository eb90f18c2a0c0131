//! The credential in a destination URL's userinfo: masked on read, restored on write only while
//! the URL still goes to the same place, and the rule of what "the same place" is for the other
//! secrets of a destination.

use url::{Position, Url};

use super::secret::{MASK, is_masked, mask};

/// [`MASK`] as it reads in a parsed URL's userinfo, which the parser percent-encodes.
const MASK_IN_URL: &str = "%E2%80%A6";

/// Where the credential in `url`'s userinfo is: the password; or the username when no password
/// goes with it, because then the username is the credential (`https://<token>@host/`, or an API
/// key as the user name of Basic auth). A username beside a password only names the account, and
/// stays visible so an operator can tell which one is used.
fn credential(url: &Url) -> Option<(Position, Position)> {
    if url.password().is_some_and(|password| !password.is_empty()) {
        Some((Position::BeforePassword, Position::AfterPassword))
    } else if !url.username().is_empty() {
        Some((Position::BeforeUsername, Position::AfterUsername))
    } else {
        None
    }
}

/// `url` with `start..end` replaced by `with`.
fn splice(url: &Url, (start, end): (Position, Position), with: &str) -> String {
    format!("{}{with}{}", &url[..start], &url[end..])
}

/// `url` with the credential in its userinfo masked: `https://user:…@host/hook`. A URL without
/// one is shown as stored; one that does not parse but may hold userinfo is masked whole, since
/// where its credential sits cannot be told.
pub fn mask_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => match credential(&parsed) {
            Some(place) => splice(&parsed, place, &mask(&parsed[place.0..place.1])),
            None => url.to_owned(),
        },
        Err(_) if url.contains('@') => mask(url),
        Err(_) => url.to_owned(),
    }
}

/// What a sent destination URL needs: nothing (its credential, if any, is not masked), the URL
/// with the stored credential back, or a problem (its mask stands for no stored credential).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum UrlRestore {
    Unmasked,
    Restored(String),
    Unknown,
}

/// Puts the stored credential back into a `sent` URL that carries it masked: the stored URL when
/// its masked form came back unchanged, else the sent URL with the stored credential in place,
/// but only while the credential is masked alike and the URL still goes to the same user, scheme,
/// host and port. A path may change; a host may not, or whoever may write but not read secrets
/// could send the stored password to a host of their choosing.
pub(super) fn restore_url(sent: &str, stored: Option<&str>) -> UrlRestore {
    if let Some(stored) = stored
        && mask_url(stored) == sent
    {
        return UrlRestore::Restored(stored.to_owned());
    }
    let Ok(url) = Url::parse(sent) else {
        return if is_masked(sent) {
            UrlRestore::Unknown
        } else {
            UrlRestore::Unmasked
        };
    };
    let Some(place) = credential(&url) else {
        return UrlRestore::Unmasked;
    };
    let Some(shown) = url[place.0..place.1].strip_suffix(MASK_IN_URL) else {
        return UrlRestore::Unmasked;
    };
    let shown = format!("{shown}{MASK}");
    let Some(stored) = stored.and_then(|stored| Url::parse(stored).ok()) else {
        return UrlRestore::Unknown;
    };
    let Some(stored_place) = credential(&stored) else {
        return UrlRestore::Unknown;
    };
    let secret = &stored[stored_place.0..stored_place.1];
    // Everything of the authority but the credential: scheme, user (when the password is the
    // credential), host and port.
    let same_place = url[..place.0] == stored[..stored_place.0]
        && url[place.1..Position::BeforePath] == stored[stored_place.1..Position::BeforePath];
    if same_place && mask(secret) == shown {
        UrlRestore::Restored(splice(&url, place, secret))
    } else {
        UrlRestore::Unknown
    }
}

/// Whether a destination URL `sent` still goes where `stored` goes: the same scheme, host and
/// port (a default port written out or left off is the same port). Path, query and userinfo may
/// differ. A URL that does not parse goes to the same place only as the very same text, since
/// where it goes cannot be told.
pub(super) fn same_origin(sent: &str, stored: &str) -> bool {
    if sent == stored {
        return true;
    }
    let (Ok(sent), Ok(stored)) = (Url::parse(sent), Url::parse(stored)) else {
        return false;
    };
    sent.scheme() == stored.scheme()
        && sent.host() == stored.host()
        && sent.port_or_known_default() == stored.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_reads_the_same_inside_a_parsed_url() {
        let url = Url::parse(&format!("https://user:{MASK}@example.com/")).unwrap();
        assert_eq!(url.password(), Some(MASK_IN_URL));
    }

    #[test]
    fn the_same_origin_is_scheme_host_and_port_whatever_the_path_or_user() {
        let stored = "https://user:pass@Example.com/hook";
        for sent in [
            stored,
            "https://example.com/hook",
            "https://example.com:443/v2?x=1",
            "https://other:…@example.com/",
        ] {
            assert!(same_origin(sent, stored), "{sent}");
        }
        for sent in [
            "http://example.com/hook",
            "https://example.com:8443/hook",
            "https://attacker.example/hook",
            "https://example.com.attacker.example/hook",
            "https://exa mple.com/hook",
        ] {
            assert!(!same_origin(sent, stored), "{sent}");
        }
        // Broken text goes to the same place only as itself.
        assert!(same_origin(
            "https://exa mple.com/",
            "https://exa mple.com/"
        ));
        assert!(!same_origin(
            "https://exa mple.com/x",
            "https://exa mple.com/"
        ));
    }
}
