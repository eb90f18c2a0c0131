//! The SSRF guard: outbound deliveries may not reach loopback, private, link-local, CGNAT and
//! other special-purpose addresses unless an allow-list opens them.
//!
//! The check runs where the address is final. Domain names are judged in [`GuardedResolver`],
//! the client's DNS resolver, and the client connects only to the addresses it returns, so a
//! DNS answer that changes between a check and the connect cannot slip through. IP literals
//! never reach a resolver, so [`Guard::check_url`] judges them before the request is sent.
//! [`connector`] puts the resolver in place; the client built on it uses no proxy and follows
//! no redirect, which would go around both.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls_platform_verifier::Verifier;
use tower_service::Service;
use url::Url;

/// How the guard treats an address in one of the [`REFUSED_RANGES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Every address in the range is refused.
    Refuse,
    /// The address is another spelling of the IPv4 address in its last 32 bits (IPv4-mapped
    /// and IPv4-compatible forms): it is judged as that address, allow-list included.
    Alias,
    /// The address reaches the IPv4 address in its last 32 bits through a NAT64 gateway: it is
    /// refused if that address is.
    Nat64,
    /// The address reaches the IPv4 address in its bits 16..48 through a 6to4 relay: it is
    /// refused if that address is.
    SixToFour,
}

/// One row of the policy table: a named special-purpose range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedRange {
    /// What the range is for, as the IANA special-purpose registries name it.
    pub name: &'static str,
    /// The range.
    pub net: IpNet,
    /// What the guard does with an address in it.
    pub treatment: Treatment,
}

impl fmt::Display for RefusedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.net)
    }
}

const fn v4(name: &'static str, octets: [u8; 4], prefix: u8) -> RefusedRange {
    let [a, b, c, d] = octets;
    RefusedRange {
        name,
        net: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)),
        treatment: Treatment::Refuse,
    }
}

const fn v6(
    name: &'static str,
    segments: [u16; 8],
    prefix: u8,
    treatment: Treatment,
) -> RefusedRange {
    let [a, b, c, d, e, f, g, h] = segments;
    RefusedRange {
        name,
        net: IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(a, b, c, d, e, f, g, h),
            prefix,
        )),
        treatment,
    }
}

/// The special-purpose ranges a delivery may not reach unless the allow-list opens them
/// (RFC 6890 and the IANA IPv4 and IPv6 special-purpose address registries). Where ranges
/// nest, the most specific one decides.
// One row per range reads as the policy table it is; rustfmt would spread each over lines.
#[rustfmt::skip]
pub const REFUSED_RANGES: &[RefusedRange] = &[
    v4("this network", [0, 0, 0, 0], 8),
    v4("private", [10, 0, 0, 0], 8),
    v4("shared address space (CGNAT)", [100, 64, 0, 0], 10),
    v4("loopback", [127, 0, 0, 0], 8),
    v4("link-local", [169, 254, 0, 0], 16),
    v4("private", [172, 16, 0, 0], 12),
    v4("IETF protocol assignments", [192, 0, 0, 0], 24),
    v4("documentation", [192, 0, 2, 0], 24),
    v4("6to4 relay anycast", [192, 88, 99, 0], 24),
    v4("private", [192, 168, 0, 0], 16),
    v4("benchmarking", [198, 18, 0, 0], 15),
    v4("documentation", [198, 51, 100, 0], 24),
    v4("documentation", [203, 0, 113, 0], 24),
    v4("multicast", [224, 0, 0, 0], 4),
    v4("reserved", [240, 0, 0, 0], 4),
    v4("broadcast", [255, 255, 255, 255], 32),
    v6("unspecified", [0, 0, 0, 0, 0, 0, 0, 0], 128, Treatment::Refuse),
    v6("loopback", [0, 0, 0, 0, 0, 0, 0, 1], 128, Treatment::Refuse),
    v6("IPv4-compatible", [0, 0, 0, 0, 0, 0, 0, 0], 96, Treatment::Alias),
    v6("IPv4-mapped", [0, 0, 0, 0, 0, 0xffff, 0, 0], 96, Treatment::Alias),
    v6("NAT64", [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, Treatment::Nat64),
    v6("local-use NAT64", [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Treatment::Refuse),
    v6("discard-only", [0x100, 0, 0, 0, 0, 0, 0, 0], 64, Treatment::Refuse),
    v6("Teredo", [0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Treatment::Refuse),
    v6("benchmarking", [0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Treatment::Refuse),
    v6("ORCHID", [0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, Treatment::Refuse),
    v6("ORCHIDv2", [0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, Treatment::Refuse),
    v6("documentation", [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Treatment::Refuse),
    v6("6to4", [0x2002, 0, 0, 0, 0, 0, 0, 0], 16, Treatment::SixToFour),
    v6("documentation", [0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Treatment::Refuse),
    v6("unique local", [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Treatment::Refuse),
    v6("link-local", [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Treatment::Refuse),
    v6("site-local", [0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Treatment::Refuse),
    v6("multicast", [0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Treatment::Refuse),
];

/// The most specific refused range holding `ip`.
fn refused_range(ip: IpAddr) -> Option<&'static RefusedRange> {
    REFUSED_RANGES
        .iter()
        .filter(|range| range.net.contains(&ip))
        .max_by_key(|range| range.net.prefix_len())
}

/// Decides which addresses a delivery may connect to.
#[derive(Clone, Debug)]
pub struct Guard {
    /// Ranges opened on purpose, for receivers on a private network or, in `hookline dev` and
    /// tests, on loopback. They win over [`REFUSED_RANGES`].
    allow: Vec<IpNet>,
    /// False only after an explicit opt-out.
    enabled: bool,
}

impl Default for Guard {
    /// On, with nothing allowed.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Guard {
    /// A guard that refuses the [`REFUSED_RANGES`] except what `allow` opens.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow,
            enabled: true,
        }
    }

    /// A guard that allows every address, for an operator who opted out explicitly.
    pub fn disabled() -> Self {
        Self {
            allow: Vec::new(),
            enabled: false,
        }
    }

    /// The ranges opened on purpose.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether a delivery may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        if !self.enabled || self.is_allowed(ip) {
            return Ok(());
        }
        let Some(range) = refused_range(ip) else {
            return Ok(());
        };
        let embedded = match (range.treatment, ip) {
            (Treatment::Refuse, _) | (_, IpAddr::V4(_)) => {
                return Err(Blocked {
                    ip,
                    embedded: None,
                    range,
                });
            }
            (Treatment::Alias, IpAddr::V6(v6)) => {
                let v4 = last_32_bits(v6);
                // The same host under another spelling, so what opens one opens the other.
                if self.is_allowed(IpAddr::V4(v4)) {
                    return Ok(());
                }
                v4
            }
            // These reach the IPv4 address through a gateway or relay; only an allow-list entry
            // for the IPv6 address itself opens them.
            (Treatment::Nat64, IpAddr::V6(v6)) => last_32_bits(v6),
            (Treatment::SixToFour, IpAddr::V6(v6)) => six_to_four_ipv4(v6),
        };
        match refused_range(IpAddr::V4(embedded)) {
            Some(range) => Err(Blocked {
                ip,
                embedded: Some(embedded),
                range,
            }),
            None => Ok(()),
        }
    }

    /// Whether a delivery may go to `url` as far as its host is an IP literal. The `url` crate
    /// has already turned decimal, octal, hex and shortened IPv4 forms into the address they
    /// mean. Domain names are left to [`GuardedResolver`], which judges what they resolve to.
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        // An IPv6 host is written in brackets. The connector reads any host that parses as an
        // address as that address, whatever the scheme, so judge exactly those.
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

fn last_32_bits(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

fn six_to_four_ipv4(ip: Ipv6Addr) -> Ipv4Addr {
    let [_, _, a, b, c, d, ..] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

/// A delivery refused because its target address is in a refused range. Not worth retrying:
/// the same address is refused again until the allow-list changes.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused {ip}{via}: {range}; add it to --dispatcher-allow-cidr to allow it",
    via = Via(*.embedded)
)]
pub struct Blocked {
    ip: IpAddr,
    embedded: Option<Ipv4Addr>,
    range: &'static RefusedRange,
}

impl Blocked {
    /// The address the delivery would have connected to.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The IPv4 address that `ip` embeds and that was refused, when `ip` is an IPv4-mapped,
    /// IPv4-compatible, NAT64 or 6to4 address.
    pub fn embedded(&self) -> Option<Ipv4Addr> {
        self.embedded
    }

    /// The refused range the address (or the IPv4 address it embeds) is in.
    pub fn range(&self) -> &'static RefusedRange {
        self.range
    }
}

/// Names the embedded IPv4 address in a [`Blocked`] message, if there is one.
struct Via(Option<Ipv4Addr>);

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, " (via {ip})"),
            None => Ok(()),
        }
    }
}

/// `error` and its causes, outermost first.
pub fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&error| error.source())
}

/// The [`Blocked`] error somewhere in `error`'s chain of causes, such as the client's error
/// for a connect the [`GuardedResolver`] refused.
pub fn blocked_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Blocked> {
    chain(error).find_map(|error| {
        error.downcast_ref::<Blocked>().or_else(|| {
            // `io::Error::source` skips the error it wraps and goes to that error's source.
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Blocked>())
        })
    })
}

/// What resolving a name can fail with: the [`Blocked`] error, or the system resolver's.
pub type ResolveError = Box<dyn StdError + Send + Sync>;

/// The client's DNS resolver: resolves with the system resolver and hands the client only the
/// addresses the guard allows, so the check holds for the address actually connected to.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
}

impl GuardedResolver {
    /// A resolver that filters through `guard`.
    pub fn new(guard: Guard) -> Self {
        Self {
            guard: Arc::new(guard),
        }
    }

    /// The addresses of `host` the guard allows (with port 0, which the connector sets).
    /// Fails with the [`Blocked`] error for the first address when every address is refused,
    /// or with the resolver's error when resolution fails.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved = tokio::net::lookup_host((host, 0)).await?;
        let mut first_refusal = None;
        let allowed: Vec<SocketAddr> = resolved
            .filter(|address| match self.guard.check(address.ip()) {
                Ok(()) => true,
                Err(blocked) => {
                    tracing::debug!(host, %blocked, "Dropped a refused address.");
                    first_refusal.get_or_insert(blocked);
                    false
                }
            })
            .collect();
        match first_refusal {
            Some(blocked) if allowed.is_empty() => Err(blocked.into()),
            Some(_) | None => Ok(allowed),
        }
    }
}

/// The resolver as the connector calls it.
impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move { Ok(resolver.resolve(name.as_str()).await?.into_iter()) })
    }
}

/// How the dispatcher's client connects: TCP to the addresses a [`GuardedResolver`] allows,
/// then TLS (HTTP/2 when the server offers it) for `https` URLs.
pub type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// A connector that enforces `guard` (a disabled guard lets every address through) and speaks
/// TLS with `tls` to `https` URLs, offering HTTP/2 and HTTP/1.1 (ALPN; `tls` must set no ALPN
/// protocols of its own, as [`tls_config`]'s do not). It opens
/// no proxy connection: one would connect on the client's behalf, past the guard. Every
/// caller must still judge the request URL with [`Guard::check_url`], since IP literals never
/// reach the resolver, and follow no redirect it has not judged the same way.
pub fn connector(guard: &Guard, tls: ClientConfig) -> Connector {
    let mut tcp = HttpConnector::new_with_resolver(GuardedResolver::new(guard.clone()));
    // The TLS layer above handles `https`.
    tcp.enforce_http(false);
    // A request is one write; waiting to coalesce it only adds latency.
    tcp.set_nodelay(true);
    // A pooled connection whose peer vanished without a word is found out and dropped, instead
    // of taking the next delivery's whole deadline.
    tcp.set_keepalive(Some(Duration::from_secs(15)));
    tcp.set_keepalive_interval(Some(Duration::from_secs(15)));
    tcp.set_keepalive_retries(Some(3));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    tcp.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp)
}

/// TLS for deliveries: certificates are verified as the system verifies them (its roots, and on
/// Linux webpki against them), with `extra_roots` trusted as well.
pub fn tls_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder();
    let verifier = Verifier::new_with_extra_roots(extra_roots, builder.crypto_provider().clone())?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn loopback_allowed() -> Guard {
        Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    #[test]
    fn every_range_is_written_as_its_network_address() {
        for range in REFUSED_RANGES {
            assert_eq!(range.net, range.net.trunc(), "{range}");
        }
    }

    #[test]
    fn refuses_a_representative_of_every_refused_range() {
        let cases = [
            ("0.1.2.3", "0.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.255.254", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.254", "172.16.0.0/12"),
            ("192.0.0.170", "192.0.0.0/24"),
            ("192.0.2.1", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.254", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.251", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("::ffff:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:169.254.169.254", "169.254.0.0/16"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("::127.0.0.1", "127.0.0.0/8"),
            ("::10.0.0.1", "10.0.0.0/8"),
            ("64:ff9b::7f00:1", "127.0.0.0/8"),
            ("64:ff9b::a9fe:a9fe", "169.254.0.0/16"),
            ("64:ff9b:1::808:808", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("2001::1", "2001::/32"),
            ("2001:2::1", "2001:2::/48"),
            ("2001:10::1", "2001:10::/28"),
            ("2001:20::1", "2001:20::/28"),
            ("2001:db8::1", "2001:db8::/32"),
            ("2002:7f00:1::", "127.0.0.0/8"),
            ("2002:a9fe:a9fe::1", "169.254.0.0/16"),
            ("2002:c0a8:101::", "192.168.0.0/16"),
            ("3fff::1", "3fff::/20"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
        ];
        let guard = Guard::default();
        for (address, net) in cases {
            let blocked = guard
                .check(ip(address))
                .expect_err(&format!("{address} should be refused"));
            assert_eq!(blocked.ip(), ip(address));
            assert_eq!(
                blocked.range().net,
                net.parse::<IpNet>().unwrap(),
                "{address}"
            );
        }
        // Every row of the table is exercised above.
        for range in REFUSED_RANGES {
            let net = range.net.to_string();
            assert!(
                cases.iter().any(|(_, case)| *case == net) || range.treatment != Treatment::Refuse,
                "no case for {range}"
            );
        }
    }

    #[test]
    fn allows_public_addresses_in_every_form() {
        let guard = Guard::default();
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::",
            "2002:0808:0808::1",
        ] {
            assert!(
                guard.check(ip(address)).is_ok(),
                "{address} should be allowed"
            );
        }
    }

    #[test]
    fn names_the_range_and_the_way_out() {
        let guard = Guard::default();
        let blocked = guard.check(ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            blocked.to_string(),
            "refused 169.254.169.254: link-local (169.254.0.0/16); \
             add it to --dispatcher-allow-cidr to allow it"
        );
        let blocked = guard.check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert_eq!(blocked.embedded(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            blocked.to_string(),
            "refused ::ffff:127.0.0.1 (via 127.0.0.1): loopback (127.0.0.0/8); \
             add it to --dispatcher-allow-cidr to allow it"
        );
        let blocked = guard.check(ip("::1")).unwrap_err();
        assert_eq!(blocked.range().name, "loopback");
        assert_eq!(blocked.embedded(), None);
    }

    #[test]
    fn the_allow_list_opens_loopback_and_nothing_else() {
        let guard = loopback_allowed();
        for address in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(
                guard.check(ip(address)).is_ok(),
                "{address} should be allowed"
            );
        }
        for address in [
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "0.0.0.0",
            "::",
            "fe80::1",
            "fc00::1",
            "::ffff:169.254.169.254",
            // Through a NAT64 gateway or 6to4 relay, not this host's loopback.
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(
                guard.check(ip(address)).is_err(),
                "{address} should be refused"
            );
        }
    }

    #[test]
    fn a_disabled_guard_allows_everything() {
        let guard = Guard::disabled();
        for address in ["127.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1"] {
            assert!(guard.check(ip(address)).is_ok(), "{address}");
        }
    }

    #[test]
    fn check_url_refuses_every_spelling_of_loopback_and_metadata() {
        let guard = Guard::default();
        for (url, refused) in [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("https://127.0.0.1:8443/hook", "127.0.0.1"),
            ("http://[::1]/", "::1"),
            ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
            ("http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://0xa9fea9fe/", "169.254.169.254"),
        ] {
            let url = Url::parse(url).unwrap();
            let blocked = guard
                .check_url(&url)
                .expect_err(&format!("{url} should be refused"));
            assert_eq!(blocked.ip(), ip(refused), "{url}");
        }
    }

    #[test]
    fn check_url_leaves_names_to_the_resolver_and_allows_public_literals() {
        let guard = Guard::default();
        for url in [
            "http://localhost/",
            "https://example.com/hook",
            "http://8.8.8.8/",
            "http://[2606:4700:4700::1111]/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(guard.check_url(&url).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_localhost() {
        let resolver = GuardedResolver::new(Guard::default());
        let error = match resolver.resolve("localhost").await {
            Ok(addrs) => panic!("resolved to {addrs:?}"),
            Err(error) => error,
        };
        let blocked = blocked_in(&*error).expect("a Blocked error");
        assert_eq!(blocked.range().name, "loopback");
    }

    #[tokio::test]
    async fn the_resolver_allows_localhost_when_loopback_is_allowed() {
        let resolver = GuardedResolver::new(loopback_allowed());
        let addrs = resolver.resolve("localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|addr| addr.ip().is_loopback()),
            "{addrs:?}"
        );
    }

    #[tokio::test]
    async fn the_resolver_passes_resolution_errors_through() {
        let resolver = GuardedResolver::new(Guard::default());
        // A NUL byte fails resolution on this host, without asking a DNS server.
        let error = match resolver.resolve("bad\0name").await {
            Ok(addrs) => panic!("resolved to {addrs:?}"),
            Err(error) => error,
        };
        assert!(blocked_in(&*error).is_none(), "{error}");
    }

    /// Answers each HTTP/1.1 request with `200 ok`, without tokio's io-util.
    async fn serve(listener: tokio::net::TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    if stream.readable().await.is_err() {
                        return;
                    }
                    match stream.try_read(&mut buffer) {
                        Ok(0) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
                let mut answer: &[u8] =
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                while !answer.is_empty() {
                    if stream.writable().await.is_err() {
                        return;
                    }
                    match stream.try_write(answer) {
                        Ok(written) => answer = &answer[written..],
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            });
        }
    }

    /// A GET of `url` with a client on [`connector`]`(guard)`: the status and body, or the
    /// error.
    async fn get(guard: &Guard, url: &str) -> Result<(u16, Bytes), Box<dyn StdError>> {
        let client = Client::builder(TokioExecutor::new())
            .build(connector(guard, tls_config(Vec::new()).unwrap()));
        let request = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    #[tokio::test]
    async fn a_client_refuses_localhost_before_connecting_unless_allowed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!(
            "http://localhost:{}/",
            listener.local_addr().unwrap().port()
        );

        let error = get(&Guard::default(), &url).await.unwrap_err();
        let blocked = blocked_in(&*error).expect("a Blocked error in the chain");
        assert!(blocked.ip().is_loopback(), "{blocked}");
        // The request failed, so a connection it had made would be queued by now.
        let accepted = listener.accept();
        assert!(
            matches!(&accepted, Err(error) if error.kind() == ErrorKind::WouldBlock),
            "the listener got a connection: {accepted:?}"
        );

        let server = tokio::spawn(serve(tokio::net::TcpListener::from_std(listener).unwrap()));
        let (status, body) = get(&loopback_allowed(), &url).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "ok");
        server.abort();
    }

    #[tokio::test]
    async fn a_disabled_guard_lets_the_client_reach_localhost() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://localhost:{}/",
            listener.local_addr().unwrap().port()
        );
        let server = tokio::spawn(serve(listener));
        let (status, _) = get(&Guard::disabled(), &url).await.unwrap();
        assert_eq!(status, 200);
        server.abort();
    }
}
