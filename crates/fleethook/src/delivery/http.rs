//! The one HTTP client every delivery goes through, and the SSRF guard that keeps callbacks off
//! loopback, private, link-local and metadata addresses.
//!
//! The guard has two halves because hyper's connector skips the resolver for IP-literal hosts:
//! [`GuardedResolver`] judges every address a host name resolves to, at connect time, so a
//! name that resolves to a public address at create time and to 127.0.0.1 later (DNS
//! rebinding) is still refused; [`check_target`] judges IP literals and the scheme before each
//! attempt.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Url};

/// Total time one attempt may take, connect to last body byte, in real time (SPEC 8: 2xx
/// within 15 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Time allowed to open the TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("fleethook/", env!("CARGO_PKG_VERSION"));

/// The shared, pooled client for every delivery. `allow_private` turns the SSRF guard off
/// (`FLEETHOOK_ALLOW_PRIVATE_CALLBACKS`).
pub fn build_client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        // A proxy from the environment would resolve names itself and bypass the guard.
        .no_proxy()
        // A 3xx is a failure (SPEC 8); following it could also lead to a forbidden address.
        .redirect(redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(USER_AGENT)
        // Keep connections to busy receivers open between deliveries. No cap on idle
        // connections per host: the dispatcher's concurrency already bounds how many can be
        // open, and a cap below it (it was 64) closed and reopened connections whenever more
        // than that many attempts to one host finished together; reconnecting was 6 % of the
        // throughput drain's profile.
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .tcp_nodelay(true)
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
        // Only fails when the TLS backend cannot start, which no configuration can fix.
        .expect("the HTTP client (rustls) must initialise")
}

/// The resolver of the delivery client: resolves with tokio and refuses a name when any of its
/// addresses is forbidden, so the addresses actually connected to are the ones judged.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Accept every address (the guard is off).
    pub allow_private: bool,
}

/// A host resolved to an address that deliveries may not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenAddress {
    /// The host name as given.
    pub host: String,
    /// The forbidden address it resolved to.
    pub ip: IpAddr,
}

impl fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "callback host {} resolves to {}, a loopback, private, link-local or otherwise \
             non-public address (set FLEETHOOK_ALLOW_PRIVATE_CALLBACKS to allow it)",
            self.host, self.ip
        )
    }
}

impl std::error::Error for ForbiddenAddress {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in afterwards.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| is_forbidden_ip(a.ip())) {
                    // Refuse the whole name, not just the bad address: a name that mixes public
                    // and private answers is a rebinding attempt or a misconfiguration.
                    return Err(Box::new(ForbiddenAddress { host, ip: bad.ip() })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether deliveries may never reach `ip` (unless private callbacks are allowed): loopback,
/// unspecified, private, link-local (cloud metadata), CGNAT, `0/8`, broadcast, multicast,
/// reserved, unique-local and link-local IPv6; IPv6 forms that embed an IPv4 address are judged
/// by that address.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    ip.is_loopback() // 127/8
        || ip.is_unspecified()
        || a == 0 // 0/8: "this network", reaches the local host on Linux
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, cloud metadata 169.254.169.254
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 carrier-grade NAT
        || ip.is_broadcast()
        || ip.is_multicast() // 224/4
        || a >= 240 // 240/4 reserved, never routed
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d connects to a.b.c.d.
        return is_forbidden_v4(v4);
    }
    let seg = ip.segments();
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d (IPv4-compatible, deprecated but still routed by some stacks); covers :: and
        // ::1 too, which map to 0.0.0.0 and 0.0.0.1.
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return ip.is_loopback() || ip.is_unspecified() || is_forbidden_v4(v4);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96 NAT64: a gateway would translate to the embedded IPv4 address.
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return is_forbidden_v4(v4);
    }
    ip.is_multicast() // ff00::/8
        || (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        || (seg[0] & 0xffc0) == 0xfec0 // fec0::/10 site local (deprecated, still private)
}

/// Checks a delivery target before every attempt: the scheme is http or https and an IP-literal
/// host is not forbidden (names are judged by [`GuardedResolver`] when connecting).
pub fn check_target(url: &Url, allow_private: bool) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("callback scheme {other} is not http or https")),
    }
    let Some(ip) = host_ip(url)? else {
        // A name: judged by the resolver, on the addresses actually connected to.
        return Ok(());
    };
    if !allow_private && is_forbidden_ip(ip) {
        return Err(format!(
            "callback address {ip} is a loopback, private, link-local or otherwise non-public \
             address (set FLEETHOOK_ALLOW_PRIVATE_CALLBACKS to allow it)"
        ));
    }
    Ok(())
}

/// The host of `url` as an IP address when it is an IP literal, `None` when it is a name. The URL
/// parser has already normalised odd IPv4 spellings (`2130706433`, `0x7f.1`) to dotted form.
fn host_ip(url: &Url) -> Result<Option<IpAddr>, String> {
    let host = url
        .host_str()
        .ok_or_else(|| "callback URI has no host".to_string())?;
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok(literal.parse::<IpAddr>().ok())
}

/// Validates a `callbackUri` when a webhook is created or changed. See [`validate_uri_field`].
pub fn validate_callback_uri(uri: &str, allow_private: bool) -> Result<Url, String> {
    validate_uri_field("callbackUri", uri, allow_private)
}

/// Validates a callback URI named `field` (`callbackUri`, `errorCallbackUri`): an absolute
/// http or https URL with a host and no credentials, not on a forbidden IP literal or
/// `localhost` unless `allow_private`. Returns the parsed URL or a reason naming the field.
pub fn validate_uri_field(field: &str, uri: &str, allow_private: bool) -> Result<Url, String> {
    let uri = uri.trim();
    let url = Url::parse(uri).map_err(|_| format!("{field} must be an http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{field} must be an http or https URL"));
    }
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host.to_string(),
        _ => return Err(format!("{field} must name a host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{field} must not contain a user name or password"));
    }
    if !allow_private {
        // Always loopback (RFC 6761); refusing it here gives a clear error at create time rather
        // than failed deliveries later.
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(format!(
                "{field} points to localhost; private callbacks are not allowed \
                 (FLEETHOOK_ALLOW_PRIVATE_CALLBACKS)"
            ));
        }
        check_target(&url, false).map_err(|_| {
            format!(
                "{field} points to a loopback, private or link-local address; private callbacks \
                 are not allowed (FLEETHOOK_ALLOW_PRIVATE_CALLBACKS)"
            )
        })?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forbidden_ipv4_ranges() {
        for s in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
        ] {
            assert!(is_forbidden_ip(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4_is_allowed() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "11.0.0.1",
            "192.169.0.1",
            "93.184.216.34",
        ] {
            assert!(!is_forbidden_ip(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6_ranges() {
        for s in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(is_forbidden_ip(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6_is_allowed() {
        for s in [
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_forbidden_ip(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn check_target_judges_ip_literals_and_scheme() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(check_target(&url("http://127.0.0.1:8080/hook"), false)
            .unwrap_err()
            .contains("127.0.0.1"));
        assert!(check_target(&url("http://[::1]/"), false).is_err());
        assert!(check_target(&url("http://[::ffff:7f00:1]/"), false).is_err());
        assert!(check_target(&url("http://169.254.169.254/latest/meta-data"), false).is_err());
        // The URL parser normalises odd spellings of IPv4, which must not slip through.
        assert!(check_target(&url("http://2130706433/"), false).is_err());
        assert!(check_target(&url("http://0x7f.1/"), false).is_err());
        assert!(check_target(&url("ftp://8.8.8.8/"), false).is_err());
        assert!(check_target(&url("https://8.8.8.8/hook"), false).is_ok());
        assert!(check_target(&url("https://example.com/hook"), false).is_ok());
        assert!(check_target(&url("http://127.0.0.1:8080/hook"), true).is_ok());
        assert!(check_target(&url("ftp://127.0.0.1/"), true).is_err());
    }

    #[test]
    fn validate_callback_uri_reasons() {
        let reason = |s: &str| validate_callback_uri(s, false).unwrap_err();
        assert_eq!(
            reason("not a url"),
            "callbackUri must be an http or https URL"
        );
        assert_eq!(
            reason("/relative/path"),
            "callbackUri must be an http or https URL"
        );
        assert_eq!(
            reason("ftp://example.com/x"),
            "callbackUri must be an http or https URL"
        );
        assert_eq!(
            reason("mailto:someone@example.com"),
            "callbackUri must be an http or https URL"
        );
        assert!(reason("https://user:pw@example.com/x").contains("user name or password"));
        assert!(reason("https://user@example.com/x").contains("user name or password"));
        assert!(reason("http://127.0.0.1/x").contains("private"));
        assert!(reason("http://[::1]:9000/x").contains("private"));
        assert!(reason("http://10.0.0.5/x").contains("private"));
        assert!(reason("http://169.254.169.254/").contains("private"));
        assert!(reason("http://localhost:8080/x").contains("localhost"));
        assert!(reason("http://api.localhost/x").contains("localhost"));
        let ok = validate_callback_uri("https://example.com/hooks?x=1", false).unwrap();
        assert_eq!(ok.host_str(), Some("example.com"));
        assert!(validate_callback_uri("http://127.0.0.1:9000/x", true).is_ok());
        assert!(validate_callback_uri("http://localhost:9000/x", true).is_ok());
        assert_eq!(
            validate_uri_field("errorCallbackUri", "gopher://x", true).unwrap_err(),
            "errorCallbackUri must be an http or https URL"
        );
    }

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(
            USER_AGENT,
            format!("fleethook/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let name: Name = "localhost".parse().unwrap();
        let err = match (GuardedResolver {
            allow_private: false,
        })
        .resolve(name)
        .await
        {
            Ok(_) => panic!("localhost must be refused"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("localhost resolves to"), "{err}");
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<_> = (GuardedResolver {
            allow_private: true,
        })
        .resolve(name)
        .await
        .unwrap()
        .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn client_refuses_to_connect_to_a_name_resolving_to_loopback() {
        // Nothing listens there and nothing is sent: the resolver refuses before connecting.
        let client = build_client(false);
        let err = client.post("http://localhost:9/").send().await.unwrap_err();
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        let mut found = false;
        while let Some(e) = source {
            found |= e.downcast_ref::<ForbiddenAddress>().is_some();
            source = e.source();
        }
        assert!(found, "{err:?}");
    }
}
