//! Connection settings: what the provided transports (reqwest, ureq) are built
//! with. They are transport settings, not call settings — a transport of your
//! own has its own — so they live here, beside the transports' traits, and not
//! in the sans-IO core.
//!
//! [`ClientBuilder`](crate::ClientBuilder) fills one from its setters and the
//! `CARTHOOKS_*` variables; a transport can also be built from one directly
//! (`ReqwestTransport::new(&config)`, `UreqTransport::new(&config)`), for
//! instance to wrap it in a transport of your own.

use std::time::Duration;

use carthooks_core::internal::check_timeout;

use crate::env::{env_count, env_flag, env_seconds, non_empty};
use carthooks_core::{Error, Result};

/// Every environment variable of the call settings that
/// [`ClientBuilder::from_env`](crate::ClientBuilder::from_env) reads, with
/// what it sets (the connection settings' are [`TransportConfig::ENV_VARS`]).
pub const CLIENT_ENV_VARS: &[(&str, &str)] = &[
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
];

/// Settings of the provided transports: timeouts, connection pool, DNS cache,
/// TLS roots and the answer size limit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Total timeout of one HTTP exchange (`CARTHOOKS_TIMEOUT`, default 30 s).
    pub timeout: Duration,
    /// Timeout for establishing a connection (default 10 s, never above `timeout`).
    pub connect_timeout: Duration,
    /// Largest response body accepted (default 16 MiB); larger is an error.
    pub max_response_body: usize,
    /// Most requests in flight at once through one client
    /// (`CARTHOOKS_MAX_CONNECTIONS`, default 100), where the backend can bound it.
    pub max_connections: usize,
    /// Most idle connections kept open for reuse
    /// (`CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS`, default 100: as many as may be in
    /// flight). The Python SDK keeps 20; at more than 20 calls in flight that
    /// closes and reopens connections all the time (measured at 64 in flight:
    /// 3,412 connections for 4,000 calls, against 77 for raw reqwest).
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
    /// The only certificate authorities trusted for TLS, when set (a private
    /// CA); empty (the default) trusts the backend's usual roots: the
    /// platform's for reqwest, Mozilla's (webpki-roots) for ureq.
    pub root_certificates: Vec<RootCertificate>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_body: 16 << 20,
            max_connections: 100,
            max_keepalive_connections: 100,
            http2: true,
            dns_cache: true,
            dns_cache_ttl: Duration::from_secs(300),
            dns_fallback: true,
            enable_ipv6: false,
            root_certificates: Vec::new(),
        }
    }
}

impl TransportConfig {
    /// Every environment variable this configuration reads, with what it sets.
    pub const ENV_VARS: &'static [(&'static str, &'static str)] = &[
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
            "most idle connections kept (default 100)",
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
        let read = |name: &str| non_empty(lookup(name)).map(|v| (name.to_owned(), v));
        if let Some((n, v)) = read("CARTHOOKS_TIMEOUT") {
            config.timeout = env_seconds(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_MAX_CONNECTIONS") {
            config.max_connections = env_count(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS") {
            config.max_keepalive_connections = env_count(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_HTTP2_DISABLED") {
            config.http2 = !env_flag(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_DNS_CACHE_DISABLE") {
            config.dns_cache = !env_flag(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_DNS_FALLBACK_DISABLE") {
            config.dns_fallback = !env_flag(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_ENABLE_IPV6") {
            config.enable_ipv6 = env_flag(&n, &v)?;
        }
        if let Some((n, v)) = read("CARTHOOKS_DNS_CACHE_TTL") {
            config.dns_cache_ttl = env_seconds(&n, &v)?;
        }
        Ok(config)
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

    /// Sets the most requests in flight at once.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the most idle connections kept for reuse.
    pub fn with_max_keepalive_connections(mut self, n: usize) -> Self {
        self.max_keepalive_connections = n;
        self
    }

    /// Offers HTTP/2 or not.
    pub fn with_http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }

    /// Sets the largest response body accepted.
    pub fn with_max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Trusts `certificate` (only the added ones, once any is).
    pub fn with_root_certificate(mut self, certificate: RootCertificate) -> Self {
        self.root_certificates.push(certificate);
        self
    }

    /// The connect timeout actually used: never longer than the total timeout.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.min(self.timeout)
    }

    /// Checks the settings for values no transport can work with.
    pub fn validate(&self) -> Result<()> {
        check_timeout("timeout", self.timeout)?;
        check_timeout("connect_timeout", self.connect_timeout)?;
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
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::tests::env;

    #[test]
    fn transport_knobs_from_env() {
        let d = TransportConfig::from_lookup(env(&[])).unwrap();
        assert_eq!(
            (
                d.max_connections,
                d.max_keepalive_connections,
                d.http2,
                d.dns_cache
            ),
            (100, 100, true, true)
        );
        assert_eq!(
            (d.dns_cache_ttl.as_secs(), d.dns_fallback, d.enable_ipv6),
            (300, true, false)
        );
        let c = TransportConfig::from_lookup(env(&[
            ("CARTHOOKS_MAX_CONNECTIONS", "8"),
            ("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS", "2"),
            ("CARTHOOKS_HTTP2_DISABLED", "true"),
            ("CARTHOOKS_DNS_CACHE_DISABLE", "1"),
            ("CARTHOOKS_DNS_CACHE_TTL", "60"),
            ("CARTHOOKS_DNS_FALLBACK_DISABLE", "yes"),
            ("CARTHOOKS_ENABLE_IPV6", "on"),
            ("CARTHOOKS_TIMEOUT", "2.5"),
        ]))
        .unwrap();
        assert_eq!((c.max_connections, c.max_keepalive_connections), (8, 2));
        assert!(!c.http2 && !c.dns_cache && !c.dns_fallback && c.enable_ipv6);
        assert_eq!(c.dns_cache_ttl.as_secs(), 60);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        for (name, bad) in [
            ("CARTHOOKS_MAX_CONNECTIONS", "0"),
            ("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS", "-3"),
            ("CARTHOOKS_HTTP2_DISABLED", "maybe"),
            ("CARTHOOKS_ENABLE_IPV6", "2"),
            ("CARTHOOKS_DNS_CACHE_TTL", "soon"),
        ] {
            let e = TransportConfig::from_lookup(env(&[(name, bad)])).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        assert_eq!(TransportConfig::ENV_VARS.len(), 8);
        assert!(
            TransportConfig::default()
                .with_max_connections(0)
                .validate()
                .is_err()
        );
        assert!(TransportConfig::default().validate().is_ok());
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
}
