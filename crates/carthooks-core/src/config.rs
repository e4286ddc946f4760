//! Client and OAuth configuration, settable in code or from the environment.
//!
//! Code wins over environment: `from_env()` gives a starting point, the `with_*`
//! methods override it. A malformed variable is an [`Error::Config`] naming it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::secret::{AccessToken, ClientSecret, RefreshToken};
use crate::tokens::OAuthTokens;
use crate::url::BaseUrl;

/// Called with every new token set right after it became current: in order,
/// never twice at once, outside every lock of the client (so it may call the
/// client). A token store, not this callback, is saved before the set is used.
pub type TokenCallback = Arc<dyn Fn(&OAuthTokens) + Send + Sync>;

/// Transport-independent client settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the API (`CARTHOOKS_API_URL`, default `https://api.carthooks.com`).
    pub base_url: BaseUrl,
    /// Total timeout of one HTTP exchange (`CARTHOOKS_TIMEOUT`, seconds, default 30).
    pub timeout: Duration,
    /// Timeout for establishing a connection (default 10 s, never above `timeout`).
    pub connect_timeout: Duration,
    /// Deadline of a whole call: every attempt, every retry wait and any token
    /// request it needs, together (default none: each attempt is bounded by
    /// `timeout`, and the retry policy bounds the rest).
    pub call_timeout: Option<Duration>,
    /// A ready access token for direct-access-token mode (`CARTHOOKS_ACCESS_TOKEN`).
    pub access_token: Option<AccessToken>,
    /// Largest response body accepted (default 16 MiB); larger is an error.
    pub max_response_body: usize,
    /// Most requests in flight at once through one client
    /// (`CARTHOOKS_MAX_CONNECTIONS`, default 100), where the backend can bound it.
    pub max_connections: usize,
    /// Most idle connections kept open for reuse
    /// (`CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS`, default 20).
    pub max_keepalive_connections: usize,
    /// Offer HTTP/2 (ALPN over TLS) where the backend can (default true;
    /// `CARTHOOKS_HTTP2_DISABLED` turns it off).
    pub http2: bool,
    /// Cache DNS answers (default true; `CARTHOOKS_DNS_CACHE_DISABLE` turns it off).
    pub dns_cache: bool,
    /// How long a cached DNS answer is used (`CARTHOOKS_DNS_CACHE_TTL`, default 300 s).
    pub dns_cache_ttl: Duration,
    /// When a lookup fails, use the last good answer even if it is older than the
    /// TTL (default true; `CARTHOOKS_DNS_FALLBACK_DISABLE` turns it off).
    pub dns_fallback: bool,
    /// Connect to IPv6 addresses too (`CARTHOOKS_ENABLE_IPV6`; default false:
    /// IPv4 only, as in the Python SDK).
    pub enable_ipv6: bool,
    /// When to retry (default: 3 attempts, see [`RetryPolicy`]).
    pub retry: RetryPolicy,
    /// Allow `http://` to a host that is not loopback (default false: credentials
    /// would cross the network in clear text).
    pub allow_insecure_http: bool,
    /// The only certificate authorities trusted for TLS, when set (a private
    /// CA); empty (the default) trusts the backend's usual roots: the
    /// platform's for reqwest, Mozilla's (webpki-roots) for ureq.
    pub root_certificates: Vec<RootCertificate>,
}

/// A trusted root certificate (a certificate authority), DER-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct RootCertificate(Vec<u8>);

impl std::fmt::Debug for RootCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootCertificate({} bytes)", self.0.len())
    }
}

impl RootCertificate {
    /// A certificate in DER form.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Self {
        Self(der.into())
    }

    /// Every `CERTIFICATE` block of a PEM file (other blocks are skipped). An
    /// error when there is none or one cannot be decoded.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>> {
        let bad = |why: &str| Error::Config(format!("root certificate PEM: {why}"));
        let text = std::str::from_utf8(pem).map_err(|_| bad("not text"))?;
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let body = &rest[start + "-----BEGIN CERTIFICATE-----".len()..];
            let end = body
                .find("-----END CERTIFICATE-----")
                .ok_or_else(|| bad("a CERTIFICATE block has no END line"))?;
            let der = decode_base64(&body[..end]).ok_or_else(|| bad("invalid base64"))?;
            out.push(Self(der));
            rest = &body[end..];
        }
        if out.is_empty() {
            return Err(bad("no CERTIFICATE block"));
        }
        Ok(out)
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

/// Standard base64 with padding, whitespace ignored.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("access_token", &self.access_token)
            .field("max_response_body", &self.max_response_body)
            .field("max_connections", &self.max_connections)
            .field("max_keepalive_connections", &self.max_keepalive_connections)
            .field("http2", &self.http2)
            .field("dns_cache", &self.dns_cache)
            .field("dns_cache_ttl", &self.dns_cache_ttl)
            .field("dns_fallback", &self.dns_fallback)
            .field("enable_ipv6", &self.enable_ipv6)
            .field("retry", &self.retry)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("root_certificates", &self.root_certificates.len())
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: BaseUrl::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            call_timeout: None,
            access_token: None,
            max_response_body: 16 << 20,
            max_connections: 100,
            max_keepalive_connections: 20,
            http2: true,
            dns_cache: true,
            dns_cache_ttl: Duration::from_secs(300),
            dns_fallback: true,
            enable_ipv6: false,
            retry: RetryPolicy::default(),
            allow_insecure_http: false,
            root_certificates: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Every environment variable this configuration reads, with what it sets.
    pub const ENV_VARS: &'static [(&'static str, &'static str)] = &[
        (
            "CARTHOOKS_API_URL",
            "base URL (default https://api.carthooks.com)",
        ),
        (
            "CARTHOOKS_ACCESS_TOKEN",
            "access token to use directly, without an OAuth grant",
        ),
        (
            "CARTHOOKS_TIMEOUT",
            "seconds per HTTP exchange (default 30)",
        ),
        (
            "CARTHOOKS_MAX_CONNECTIONS",
            "most requests in flight (default 100)",
        ),
        (
            "CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS",
            "most idle connections kept (default 20)",
        ),
        ("CARTHOOKS_HTTP2_DISABLED", "true: HTTP/1.1 only"),
        ("CARTHOOKS_DNS_CACHE_DISABLE", "true: no DNS cache"),
        (
            "CARTHOOKS_DNS_CACHE_TTL",
            "seconds a DNS answer is cached (default 300)",
        ),
        (
            "CARTHOOKS_DNS_FALLBACK_DISABLE",
            "true: no stale DNS answer when a lookup fails",
        ),
        (
            "CARTHOOKS_ENABLE_IPV6",
            "true: IPv6 addresses too (default IPv4 only)",
        ),
    ];

    /// Defaults overridden by the `CARTHOOKS_*` variables of
    /// [`ENV_VARS`](Self::ENV_VARS) that are set.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = Self::default();
        if let Some(url) = non_empty(lookup("CARTHOOKS_API_URL")) {
            config.base_url =
                BaseUrl::parse(&url).map_err(|e| e.in_variable("CARTHOOKS_API_URL"))?;
        }
        if let Some(token) = non_empty(lookup("CARTHOOKS_ACCESS_TOKEN")) {
            config.access_token = Some(AccessToken::new(token));
        }
        if let Some(t) = non_empty(lookup("CARTHOOKS_TIMEOUT")) {
            config.timeout = parse_seconds("CARTHOOKS_TIMEOUT", &t)?;
        }
        let count = |name: &str, into: &mut usize| -> Result<()> {
            if let Some(v) = non_empty(lookup(name)) {
                *into = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::Config(format!("{name} must be a whole number above 0"))
                })?;
            }
            Ok(())
        };
        count("CARTHOOKS_MAX_CONNECTIONS", &mut config.max_connections)?;
        count(
            "CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS",
            &mut config.max_keepalive_connections,
        )?;
        let flag = |name: &str| -> Result<Option<bool>> {
            non_empty(lookup(name))
                .map(|v| parse_bool(name, &v))
                .transpose()
        };
        if let Some(off) = flag("CARTHOOKS_HTTP2_DISABLED")? {
            config.http2 = !off;
        }
        if let Some(off) = flag("CARTHOOKS_DNS_CACHE_DISABLE")? {
            config.dns_cache = !off;
        }
        if let Some(off) = flag("CARTHOOKS_DNS_FALLBACK_DISABLE")? {
            config.dns_fallback = !off;
        }
        if let Some(on) = flag("CARTHOOKS_ENABLE_IPV6")? {
            config.enable_ipv6 = on;
        }
        if let Some(t) = non_empty(lookup("CARTHOOKS_DNS_CACHE_TTL")) {
            config.dns_cache_ttl = parse_seconds("CARTHOOKS_DNS_CACHE_TTL", &t)?;
        }
        Ok(config)
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, url: &str) -> Result<Self> {
        self.base_url = BaseUrl::parse(url)?;
        Ok(self)
    }

    /// Sets the total timeout of one HTTP exchange.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses a ready access token instead of an OAuth grant.
    pub fn with_access_token(mut self, token: impl Into<AccessToken>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// The connect timeout actually used: never longer than the total timeout.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.min(self.timeout)
    }

    /// Longest timeout accepted (one day): longer ones are surely a mistake, and
    /// `Duration::MAX` would overflow the deadline arithmetic of HTTP clients.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

    /// Checks that the base URL may carry credentials: https, or http to a
    /// loopback host, or http anywhere with `allow_insecure_http`.
    pub fn check_base_url(&self) -> Result<()> {
        if !self.base_url.is_https() && !self.base_url.is_loopback() && !self.allow_insecure_http {
            return Err(Error::Config(format!(
                "refusing plain http to {}: credentials would travel unencrypted \
                 (use https, or allow_insecure_http for a trusted network)",
                self.base_url
            )));
        }
        Ok(())
    }

    /// Checks the settings for values no client can work with.
    pub fn validate(&self) -> Result<()> {
        let timeouts = [
            ("timeout", Some(self.timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("call_timeout", self.call_timeout),
        ];
        for (name, value) in timeouts {
            match value {
                Some(t) if t.is_zero() => {
                    return Err(Error::Config(format!("{name} must be greater than zero")));
                }
                Some(t) if t > Self::MAX_TIMEOUT => {
                    return Err(Error::Config(format!(
                        "{name} must be at most one day (86400 s); got {} s",
                        t.as_secs()
                    )));
                }
                _ => {}
            }
        }
        self.check_base_url()?;
        if self.max_response_body == 0 || self.max_connections == 0 {
            return Err(Error::Config(
                "max_response_body and max_connections must be greater than zero".into(),
            ));
        }
        if self.dns_cache && self.dns_cache_ttl.is_zero() {
            return Err(Error::Config(
                "dns_cache_ttl must be greater than zero".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name} must be true or false (1/0, yes/no, on/off)"
        ))),
    }
}

fn parse_seconds(name: &str, value: &str) -> Result<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{name} must be a number of seconds greater than 0 and at most 86400"
            ))
        })
}

/// OAuth client settings: who the client is and how tokens are managed.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: ClientSecret,
    /// A stored refresh token to start from (e.g. after a restart).
    pub refresh_token: Option<RefreshToken>,
    /// Refresh tokens automatically before they expire (default true).
    pub auto_refresh: bool,
    /// Called with every new token set, in order, right after it became current.
    pub on_token_refresh: Option<TokenCallback>,
    /// How long before expiry a token counts as stale and is refreshed (default 5 min).
    pub refresh_window: Duration,
    /// Least time between two refreshes of a still-valid token (default 30 s); keeps
    /// a server with lifetimes shorter than the window from being asked on every call.
    pub min_refresh_interval: Duration,
    /// Lifetime assumed for a token whose answer has no `expires_in` (default
    /// none: such a token is used until a 401 says it expired, then refreshed).
    pub default_token_lifetime: Option<Duration>,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .field("auto_refresh", &self.auto_refresh)
            .field("on_token_refresh", &self.on_token_refresh.is_some())
            .field("refresh_window", &self.refresh_window)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("default_token_lifetime", &self.default_token_lifetime)
            .finish_non_exhaustive()
    }
}

impl OAuthConfig {
    /// Default refresh window: five minutes before expiry.
    pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(300);

    /// A configuration for `client_id` / `client_secret` with the defaults.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<ClientSecret>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: None,
            auto_refresh: true,
            on_token_refresh: None,
            refresh_window: Self::DEFAULT_REFRESH_WINDOW,
            min_refresh_interval: Duration::from_secs(30),
            default_token_lifetime: None,
        }
    }

    /// From `CARTHOOKS_CLIENT_ID` and `CARTHOOKS_CLIENT_SECRET`.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let id = non_empty(lookup("CARTHOOKS_CLIENT_ID"))
            .ok_or_else(|| Error::Config("CARTHOOKS_CLIENT_ID is not set".into()))?;
        let secret = non_empty(lookup("CARTHOOKS_CLIENT_SECRET"))
            .ok_or_else(|| Error::Config("CARTHOOKS_CLIENT_SECRET is not set".into()))?;
        Ok(Self::new(id, ClientSecret::new(secret)))
    }

    /// Starts from a stored refresh token.
    pub fn with_refresh_token(mut self, token: impl Into<RefreshToken>) -> Self {
        self.refresh_token = Some(token.into());
        self
    }

    /// Turns automatic refresh on or off.
    pub fn with_auto_refresh(mut self, on: bool) -> Self {
        self.auto_refresh = on;
        self
    }

    /// Sets the callback that is called with every new token set, in order, right
    /// after it became current (see [`TokenCallback`]). To persist tokens before
    /// any call uses them, use a token store.
    pub fn on_token_refresh(mut self, f: impl Fn(&OAuthTokens) + Send + Sync + 'static) -> Self {
        self.on_token_refresh = Some(Arc::new(f));
        self
    }

    /// Sets the refresh window.
    pub fn with_refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = window;
        self
    }

    /// Sets the least time between two refreshes of a still-valid token.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Assumes `lifetime` for tokens whose answer has no `expires_in`.
    pub fn with_default_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_token_lifetime = Some(lifetime);
        self
    }

    /// Checks for values no client can work with.
    pub fn validate(&self) -> Result<()> {
        if self.default_token_lifetime.is_some_and(|d| d.is_zero()) {
            return Err(Error::Config(
                "default_token_lifetime must be greater than zero".into(),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::Config("client_id is empty".into()));
        }
        if self.client_secret.secret().is_empty() {
            return Err(Error::Config("client_secret is empty".into()));
        }
        Ok(())
    }
}

/// A source of wall-clock time in Unix seconds. Injectable so that expiry rules can
/// be tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The clients' default clock: the wall-clock time when it was made, advanced by
/// the monotonic clock. Reading it costs about a third less than
/// [`SystemClock`] (no epoch subtraction), and a wall-clock step (an NTP jump)
/// cannot make tokens look expired or fresh all of a sudden.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    base_unix: u64,
    base: std::time::Instant,
}

impl MonotonicClock {
    /// A clock reading the system time now and counting on from there.
    pub fn new() -> Self {
        Self {
            base_unix: SystemClock.now(),
            base: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> u64 {
        self.base_unix + self.base.elapsed().as_secs()
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(now))
    }

    /// A clock reading the system time now, then moving only when told.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_secs(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: u64) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::DEFAULT_BASE_URL;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn env_config() {
        let c = ClientConfig::from_lookup(env(&[
            ("CARTHOOKS_API_URL", "http://127.0.0.1:9000"),
            ("CARTHOOKS_TIMEOUT", "2.5"),
            ("CARTHOOKS_ACCESS_TOKEN", "tok-123"),
        ]))
        .unwrap();
        assert_eq!(c.base_url.to_string(), "http://127.0.0.1:9000");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert!(!format!("{c:?}").contains("tok-123"));
        let d = ClientConfig::from_lookup(env(&[])).unwrap();
        assert_eq!(d.base_url.to_string(), DEFAULT_BASE_URL);
        assert_eq!(d.timeout, Duration::from_secs(30));
        for bad in ["abc", "-1", "0", "NaN", "inf"] {
            let e = ClientConfig::from_lookup(env(&[("CARTHOOKS_TIMEOUT", bad)])).unwrap_err();
            assert!(e.to_string().contains("CARTHOOKS_TIMEOUT"), "{e}");
        }
        let e = ClientConfig::from_lookup(env(&[("CARTHOOKS_API_URL", "nope")])).unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_API_URL"));
        assert_eq!(
            e.to_string().matches("invalid configuration").count(),
            1,
            "said once: {e}"
        );
        let e = ClientConfig::from_lookup(env(&[("CARTHOOKS_TIMEOUT", "0")])).unwrap_err();
        assert!(e.to_string().contains("greater than 0"), "{e}");
        let e =
            ClientConfig::from_lookup(env(&[("CARTHOOKS_TIMEOUT", "0.0000000001")])).unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_TIMEOUT"), "{e}");
    }

    #[test]
    fn transport_knobs_from_env() {
        let d = ClientConfig::from_lookup(env(&[])).unwrap();
        assert_eq!(
            (
                d.max_connections,
                d.max_keepalive_connections,
                d.http2,
                d.dns_cache
            ),
            (100, 20, true, true)
        );
        assert_eq!(
            (d.dns_cache_ttl.as_secs(), d.dns_fallback, d.enable_ipv6),
            (300, true, false)
        );
        let c = ClientConfig::from_lookup(env(&[
            ("CARTHOOKS_MAX_CONNECTIONS", "8"),
            ("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS", "2"),
            ("CARTHOOKS_HTTP2_DISABLED", "true"),
            ("CARTHOOKS_DNS_CACHE_DISABLE", "1"),
            ("CARTHOOKS_DNS_CACHE_TTL", "60"),
            ("CARTHOOKS_DNS_FALLBACK_DISABLE", "yes"),
            ("CARTHOOKS_ENABLE_IPV6", "on"),
        ]))
        .unwrap();
        assert_eq!((c.max_connections, c.max_keepalive_connections), (8, 2));
        assert!(!c.http2 && !c.dns_cache && !c.dns_fallback && c.enable_ipv6);
        assert_eq!(c.dns_cache_ttl.as_secs(), 60);
        for (name, bad) in [
            ("CARTHOOKS_MAX_CONNECTIONS", "0"),
            ("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS", "-3"),
            ("CARTHOOKS_HTTP2_DISABLED", "maybe"),
            ("CARTHOOKS_ENABLE_IPV6", "2"),
            ("CARTHOOKS_DNS_CACHE_TTL", "soon"),
        ] {
            let e = ClientConfig::from_lookup(env(&[(name, bad)])).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        assert_eq!(ClientConfig::ENV_VARS.len(), 10);
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let remote = ClientConfig::default()
            .with_base_url("http://api.example.com")
            .unwrap();
        let e = remote.validate().unwrap_err();
        assert!(e.to_string().contains("refusing plain http"), "{e}");
        let allowed = ClientConfig {
            allow_insecure_http: true,
            ..remote
        };
        allowed.validate().unwrap();
        for ok in [
            "http://127.0.0.1:9",
            "http://localhost:1",
            "http://[::1]:2",
            "https://api.example.com",
        ] {
            ClientConfig::default()
                .with_base_url(ok)
                .unwrap()
                .validate()
                .unwrap();
        }
    }

    #[test]
    fn oauth_config() {
        let c = OAuthConfig::from_lookup(env(&[
            ("CARTHOOKS_CLIENT_ID", "id-1"),
            ("CARTHOOKS_CLIENT_SECRET", "sec-1"),
        ]))
        .unwrap()
        .with_refresh_token("rt-1")
        .on_token_refresh(|_| {});
        assert!(c.auto_refresh);
        assert_eq!(c.refresh_window, Duration::from_secs(300));
        let dbg = format!("{c:?}");
        assert!(
            dbg.contains("id-1") && !dbg.contains("sec-1") && !dbg.contains("rt-1"),
            "{dbg}"
        );
        let e = OAuthConfig::from_lookup(env(&[("CARTHOOKS_CLIENT_ID", "x")])).unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_CLIENT_SECRET"));
        assert!(OAuthConfig::new("", "s").validate().is_err());
    }

    #[test]
    fn root_certificates_from_pem() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\n/w==\n-----END CERTIFICATE-----\n";
        let certs = RootCertificate::from_pem(pem).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].der(), &[0, 1, 2, 3]);
        assert_eq!(certs[1].der(), &[255]);
        for bad in [
            &b"no blocks"[..],
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\nAA",
        ] {
            assert!(matches!(
                RootCertificate::from_pem(bad),
                Err(Error::Config(_))
            ));
        }
    }

    #[test]
    fn manual_clock() {
        let c = ManualClock::new(10);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), 15);
        assert!(SystemClock.now() > 1_600_000_000);
        let m = MonotonicClock::new();
        assert!(m.now().abs_diff(SystemClock.now()) <= 1);
    }
}
