//! The one HTTP client every delivery goes through, and the SSRF guard that keeps callbacks off
//! loopback, private, link-local and metadata addresses.
//!
//! The guard has two halves because hyper's connector skips the resolver for IP-literal hosts:
//! [`GuardedResolver`] judges every address a host name resolves to, at connect time, so a
//! name that resolves to a public address at create time and to 127.0.0.1 later (DNS
//! rebinding) is still refused; [`check_target`] judges IP literals and the scheme before each
//! attempt.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, USER_AGENT as USER_AGENT_HEADER};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::Url;

/// Total time one attempt may take, connect to last body byte, in real time (SPEC 8: 2xx
/// within 15 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Time allowed to open a connection: resolving the name, TCP and the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("fleethook/", env!("CARGO_PKG_VERSION"));

/// The shared, pooled HTTP client every delivery is sent with, over hyper's pooled client
/// directly: HTTP/1.1, rustls with the webpki roots, no proxy and no redirects (a 3xx is a
/// failure, SPEC 8, and following one could lead to a forbidden address), names resolved by
/// the [`GuardedResolver`].
///
/// It replaced `reqwest::Client`, whose layers cost about 10 µs of CPU per delivery in the
/// end-to-end profile of `bench throughput` (the URL converted and parsed again for every
/// request, default headers merged, a boxed timer and a body decoder per request), for
/// nothing a delivery uses. Cloning it is cheap and shares the pool.
#[derive(Clone)]
pub struct DeliveryClient {
    client: Client<ConnectWithin<HttpsConnector<HttpConnector<GuardedResolver>>>, Full<Bytes>>,
}

/// What a receiver answered: the status, the headers and at most the first bytes of the body
/// that were asked for.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum SendError {
    /// No status line within [`ATTEMPT_TIMEOUT`].
    TimedOut,
    /// Not sent, or no answer read: a refused or guarded address, a reset, a TLS failure.
    Failed(hyper_util::client::legacy::Error),
}

impl DeliveryClient {
    /// The client; `allow_private` turns the SSRF guard off
    /// (`FLEETHOOK_ALLOW_PRIVATE_CALLBACKS`).
    pub fn new(allow_private: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        // https URLs pass through this connector to the TLS layer around it.
        http.enforce_http(false);
        // Per address tried; `ConnectWithin` bounds the whole connection, TLS included.
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // A pooled connection to a receiver that vanished is given up within two minutes
        // (probes after 60 s idle, three of them 15 s apart), not Linux's default of twelve.
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        http.set_tcp_user_timeout(Some(Duration::from_secs(30)));
        http.set_nodelay(true);
        // The provider is named rather than taken from the process default, which panics when
        // more than one crypto backend is compiled in.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // Only fails when the provider lacks every safe protocol version, which ring does not.
        .expect("rustls with ring supports TLS 1.2 and 1.3")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // Keep connections to busy receivers open between deliveries. No cap on idle
        // connections per host: the dispatcher's concurrency already bounds how many can be
        // open, and a cap below it (it was 64) closed and reopened connections whenever more
        // than that many attempts to one host finished together; reconnecting was 6 % of the
        // throughput drain's profile.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(ConnectWithin(https));
        DeliveryClient { client }
    }

    /// POSTs `body` to `uri` with `headers` (and the `User-Agent`), and reads at most `limit`
    /// bytes of the answer's body, all within [`ATTEMPT_TIMEOUT`]. A body that breaks off or
    /// runs past the time keeps what arrived: the status has decided already.
    pub async fn post(
        &self,
        uri: Uri,
        mut headers: HeaderMap,
        body: Bytes,
        limit: usize,
    ) -> Result<Answer, SendError> {
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT;
        headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Err(_) => return Err(SendError::TimedOut),
            Ok(Err(err)) => return Err(SendError::Failed(err)),
            Ok(Ok(response)) => response,
        };
        let (parts, mut incoming) = response.into_parts();
        let mut body = Vec::new();
        while body.len() < limit {
            match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let take = data.len().min(limit - body.len());
                        body.extend_from_slice(&data[..take]);
                    }
                }
                // The end, a broken body or the deadline.
                _ => break,
            }
        }
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A connector that gives up on a connection not open within [`CONNECT_TIMEOUT`]: name, TCP
/// and TLS together. The client may also go on opening a connection in the background after
/// the request that asked for it was served by another (to pool it); this bounds that too.
#[derive(Clone)]
struct ConnectWithin<C>(C);

/// A connection was not open within [`CONNECT_TIMEOUT`].
#[derive(Debug)]
struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection timed out after {} s",
            CONNECT_TIMEOUT.as_secs()
        )
    }
}

impl std::error::Error for ConnectTimedOut {}

impl<C> tower::Service<Uri> for ConnectWithin<C>
where
    C: tower::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

impl SendError {
    /// A log-friendly reason, naming the forbidden address when the guard refused.
    pub fn describe(&self) -> String {
        let err = match self {
            SendError::TimedOut => {
                return format!("timed out after {} s", ATTEMPT_TIMEOUT.as_secs())
            }
            SendError::Failed(err) => err,
        };
        let mut deepest = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = source {
            if let Some(forbidden) = e.downcast_ref::<ForbiddenAddress>() {
                return forbidden.to_string();
            }
            if let Some(timed_out) = e.downcast_ref::<ConnectTimedOut>() {
                return timed_out.to_string();
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // The TLS layer wraps the socket's own error in another, which `source` skips.
                let io = io
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                    .unwrap_or(io);
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return "connection refused".to_string()
                    }
                    std::io::ErrorKind::ConnectionReset => {
                        return "connection reset by the receiver".to_string()
                    }
                    // hyper's own timeout, per address tried.
                    std::io::ErrorKind::TimedOut if err.is_connect() => {
                        return ConnectTimedOut.to_string()
                    }
                    _ => {}
                }
            }
            deepest = Some(e.to_string());
            source = e.source();
        }
        let detail = deepest.unwrap_or_else(|| err.to_string());
        if err.is_connect() {
            format!("connection failed: {detail}")
        } else {
            format!("request failed: {detail}")
        }
    }
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

/// Resolving a name: its addresses, or the reason it may not be connected to.
type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
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
                    return Err(Box::new(ForbiddenAddress { host, ip: bad.ip() }) as BoxError);
                }
            }
            Ok(addrs.into_iter())
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

    async fn resolve(allow_private: bool, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let name: Name = host.parse().unwrap();
        let mut resolver = GuardedResolver { allow_private };
        tower::Service::call(&mut resolver, name)
            .await
            .map(Iterator::collect)
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let err = resolve(false, "localhost").await.unwrap_err().to_string();
        assert!(err.contains("localhost resolves to"), "{err}");
        let addrs = resolve(true, "localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    /// A receiver on 127.0.0.1 that reads one request, answers it with `answer` (raw bytes),
    /// then holds the connection open until the client closes it; the handle gives the
    /// request's text. Until the answer is written the receiver runs as a blocking task, so a
    /// paused clock does not move on while the client waits for an answer that is coming
    /// (tokio holds auto-advance back while a blocking task runs; `#[tokio::test]`'s
    /// current-thread runtime, which these tests use, is where paused time is allowed).
    fn one_shot_receiver(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::task::spawn_blocking(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body its Content-Length announces.
            loop {
                let n = conn.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                assert!(n > 0, "the client hung up before sending its request");
            }
            conn.write_all(answer).unwrap();
            std::thread::spawn(move || {
                let _ = conn.read(&mut buf);
            });
            String::from_utf8(request).unwrap()
        });
        (port, handle)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[tokio::test]
    async fn posts_the_body_and_headers_and_reads_the_answer() {
        let (port, receiver) = one_shot_receiver(
            b"HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-Seen: yes\r\n\r\nhello world",
        );
        let client = DeliveryClient::new(true);
        let uri: Uri = format!("http://127.0.0.1:{port}/hook?x=1").parse().unwrap();
        let answer = client
            .post(
                uri,
                headers(&[
                    ("content-type", "application/json"),
                    ("sc-signature", "abc"),
                ]),
                Bytes::from_static(b"{\"a\":1}"),
                1024,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.headers["x-seen"], "yes");
        assert_eq!(answer.body, b"hello world");
        let request = receiver.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("post /hook?x=1 http/1.1\r\n"),
            "{request}"
        );
        for line in [
            format!("host: 127.0.0.1:{port}"),
            format!("user-agent: {}", USER_AGENT.to_ascii_lowercase()),
            "content-type: application/json".to_string(),
            "sc-signature: abc".to_string(),
            "content-length: 7".to_string(),
        ] {
            assert!(
                request.contains(&format!("{line}\r\n")),
                "{line} in {request}"
            );
        }
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    }

    #[tokio::test]
    async fn does_not_follow_redirects_and_keeps_only_the_limit() {
        let (port, receiver) = one_shot_receiver(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 10\r\n\r\n0123456789",
        );
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let answer = DeliveryClient::new(true)
            .post(uri, HeaderMap::new(), Bytes::new(), 4)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(answer.headers["location"], "http://127.0.0.1:9/x");
        assert_eq!(answer.body, b"0123");
        assert!(receiver.await.unwrap().starts_with("POST / HTTP/1.1"));
    }

    // The clock is paused, so tokio moves it past the deadline as soon as nothing else can
    // happen: the receiver has read the request and stays silent.
    #[tokio::test(start_paused = true)]
    async fn a_silent_receiver_times_out() {
        let (port, receiver) = one_shot_receiver(b"");
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let client = DeliveryClient::new(true);
        let err = client
            .post(uri, HeaderMap::new(), Bytes::from_static(b"{}"), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::TimedOut), "{err:?}");
        assert_eq!(err.describe(), "timed out after 15 s");
        assert!(receiver.await.unwrap().ends_with("\r\n\r\n{}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_cut_short_by_the_deadline_keeps_what_arrived() {
        let (port, receiver) =
            one_shot_receiver(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let client = DeliveryClient::new(true);
        let answer = client
            .post(uri, HeaderMap::new(), Bytes::new(), 1024)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, b"partial");
        assert!(receiver.await.is_ok());
    }

    #[tokio::test]
    async fn https_urls_are_spoken_to_in_tls() {
        use std::io::Read;
        // A plain TCP listener: it records the first byte the client sends, then hangs up.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_byte = tokio::task::spawn_blocking(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte).unwrap();
            byte[0]
        });
        let uri: Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
        let err = DeliveryClient::new(true)
            .post(uri, HeaderMap::new(), Bytes::new(), 1024)
            .await
            .unwrap_err();
        // 0x16: a TLS handshake record, the ClientHello.
        assert_eq!(first_byte.await.unwrap(), 0x16);
        assert!(
            matches!(&err, SendError::Failed(e) if e.is_connect()),
            "{err:?}"
        );
    }

    // Paused clock, as above: once the receiver has accepted and gone silent, tokio moves the
    // clock on, and the handshake must give up at 5 s, before the attempt's 15 s.
    #[tokio::test(start_paused = true)]
    async fn a_tls_handshake_that_hangs_times_out_as_a_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::task::spawn_blocking(move || {
            let (conn, _) = listener.accept().unwrap();
            // Held open and silent until the client gives up.
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = std::io::Read::read_to_end(&mut conn, &mut Vec::new());
            });
        });
        let uri: Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
        let started = tokio::time::Instant::now();
        let err = DeliveryClient::new(true)
            .post(uri, HeaderMap::new(), Bytes::new(), 1024)
            .await
            .unwrap_err();
        accepted.await.unwrap();
        assert_eq!(err.describe(), "connection timed out after 5 s");
        assert_eq!(started.elapsed(), CONNECT_TIMEOUT);
    }

    #[tokio::test]
    async fn keeps_the_connection_for_the_next_request() {
        use std::io::{Read, Write};
        // One connection, two requests on it: a second connection would never be accepted.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            for _ in 0..2 {
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "the client closed the connection");
                    request.extend_from_slice(&buf[..n]);
                }
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
            }
            let _ = conn.read(&mut buf);
        });
        let client = DeliveryClient::new(true);
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        for _ in 0..2 {
            // Bodiless, so the receiver's end of headers is the end of the request.
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                client.post(uri.clone(), HeaderMap::new(), Bytes::new(), 1024),
            )
            .await
            .expect("answered on the pooled connection")
            .unwrap();
            assert_eq!(
                (answer.status, answer.body.as_slice()),
                (StatusCode::OK, &b"ok"[..])
            );
        }
    }

    #[tokio::test]
    async fn unreachable_receivers_are_described() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let err = DeliveryClient::new(true)
            .post(uri, HeaderMap::new(), Bytes::new(), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.describe(), "connection refused");
    }

    #[tokio::test]
    async fn client_refuses_to_connect_to_a_name_resolving_to_loopback() {
        // Nothing listens there and nothing is sent: the resolver refuses before connecting.
        let uri: Uri = "http://localhost:9/".parse().unwrap();
        let err = DeliveryClient::new(false)
            .post(uri, HeaderMap::new(), Bytes::new(), 1024)
            .await
            .unwrap_err();
        let reason = err.describe();
        assert!(
            reason.starts_with("callback host localhost resolves to"),
            "{reason}"
        );
    }
}
