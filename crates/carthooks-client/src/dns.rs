//! DNS with a cache, a stale fallback and IPv4-only filtering, shared by both
//! backends through their resolver hooks (reqwest's `dns_resolver`, ureq's
//! `Resolver`).
//!
//! - A fresh cached answer (younger than the TTL, 300 s by default) is used
//!   without a lookup.
//! - When a lookup fails and `fallback` is on, the last good answer is used even if
//!   it is older than the TTL (a resolver outage does not take the client down).
//! - Unless IPv6 is enabled, only IPv4 addresses are kept (as the Python SDK does);
//!   a name with no IPv4 address is an error.
//!
//! Lookups go through a [`Lookup`] (the system resolver by default), which tests
//! replace with a counting, failable one. Statistics and
//! [`clear`](DnsCache::clear) are on the clients too
//! (`dns_cache_stats()`, `clear_dns_cache()`).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::settings::TransportConfig;

/// Resolves a host name (blocking).
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host`, with `port` set.
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`getaddrinfo`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        (host, port).to_socket_addrs().map(Iterator::collect)
    }
}

/// Counters of a [`DnsCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsCacheStats {
    /// Answers served from the cache while fresh.
    pub hits: u64,
    /// Lookups made (cache empty, stale, or disabled).
    pub lookups: u64,
    /// Lookups that failed.
    pub failures: u64,
    /// Stale answers served because a lookup failed.
    pub stale_served: u64,
    /// Names cached now.
    pub entries: usize,
}

struct Entry {
    addrs: Vec<SocketAddr>,
    at: Instant,
}

/// The cache. See the [module docs](self).
pub struct DnsCache {
    lookup: Arc<dyn Lookup>,
    enabled: bool,
    ttl: Duration,
    fallback: bool,
    ipv6: bool,
    entries: Mutex<HashMap<(String, u16), Entry>>,
    hits: AtomicU64,
    lookups: AtomicU64,
    failures: AtomicU64,
    stale_served: AtomicU64,
}

impl std::fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCache")
            .field("enabled", &self.enabled)
            .field("ttl", &self.ttl)
            .field("fallback", &self.fallback)
            .field("ipv6", &self.ipv6)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DnsCache {
    /// A cache configured from `config` (`dns_cache`, `dns_cache_ttl`,
    /// `dns_fallback`, `enable_ipv6`) over `lookup`.
    pub fn new(config: &TransportConfig, lookup: Arc<dyn Lookup>) -> Self {
        Self {
            lookup,
            enabled: config.dns_cache,
            ttl: config.dns_cache_ttl,
            fallback: config.dns_fallback,
            ipv6: config.enable_ipv6,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
        }
    }

    /// True when IPv6 addresses are used.
    pub fn ipv6(&self) -> bool {
        self.ipv6
    }

    /// The addresses to connect to for `host:port` (blocking when a lookup is
    /// needed).
    pub fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.resolve_at(host, port, Instant::now())
    }

    fn resolve_at(&self, host: &str, port: u16, now: Instant) -> io::Result<Vec<SocketAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return self.keep_family(vec![SocketAddr::new(ip, port)], host);
        }
        let key = (host.to_ascii_lowercase(), port);
        if self.enabled {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = entries.get(&key)
                && now.duration_since(e.at) < self.ttl
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(e.addrs.clone());
            }
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        match self
            .lookup
            .lookup(host, port)
            .and_then(|addrs| self.keep_family(addrs, host))
        {
            Ok(addrs) => {
                if self.enabled || self.fallback {
                    self.entries
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            key,
                            Entry {
                                addrs: addrs.clone(),
                                at: now,
                            },
                        );
                }
                Ok(addrs)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if self.fallback {
                    let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(stale) = entries.get(&key) {
                        self.stale_served.fetch_add(1, Ordering::Relaxed);
                        return Ok(stale.addrs.clone());
                    }
                }
                Err(e)
            }
        }
    }

    fn keep_family(&self, mut addrs: Vec<SocketAddr>, host: &str) -> io::Result<Vec<SocketAddr>> {
        if !self.ipv6 {
            addrs.retain(SocketAddr::is_ipv4);
        }
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                if self.ipv6 {
                    format!("{host} has no address")
                } else {
                    format!("{host} has no IPv4 address (IPv6 is off: enable_ipv6)")
                },
            ));
        }
        Ok(addrs)
    }

    /// The counters.
    pub fn stats(&self) -> DnsCacheStats {
        DnsCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            lookups: self.lookups.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            stale_served: self.stale_served.load(Ordering::Relaxed),
            entries: self
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
        }
    }

    /// Forgets every cached answer.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Counts lookups; fails while told to; answers `[::1]` and `127.0.0.1`.
    #[derive(Default)]
    struct Fake {
        calls: AtomicU64,
        failing: AtomicBool,
    }

    impl Lookup for Fake {
        fn lookup(&self, _: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(io::Error::other("resolver down"));
            }
            Ok(vec![
                SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)),
                SocketAddr::from(([127, 0, 0, 1], port)),
            ])
        }
    }

    fn cache(edit: impl FnOnce(&mut TransportConfig)) -> (DnsCache, Arc<Fake>) {
        let fake = Arc::new(Fake::default());
        let mut config = TransportConfig::default();
        edit(&mut config);
        (DnsCache::new(&config, fake.clone()), fake)
    }

    #[test]
    fn ttl_and_ipv4_only() {
        let (c, fake) = cache(|_| {});
        let t0 = Instant::now();
        let a = c.resolve_at("API.example.com", 443, t0).unwrap();
        assert_eq!(
            a,
            vec![SocketAddr::from(([127, 0, 0, 1], 443))],
            "IPv4 only"
        );
        c.resolve_at("api.example.com", 443, t0 + Duration::from_secs(299))
            .unwrap();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "cached for the TTL");
        c.resolve_at("api.example.com", 443, t0 + Duration::from_secs(300))
            .unwrap();
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            2,
            "looked up again after it"
        );
        let s = c.stats();
        assert_eq!((s.hits, s.lookups, s.entries), (1, 2, 1));
        c.clear();
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn stale_fallback_when_the_resolver_fails() {
        let (c, fake) = cache(|_| {});
        let t0 = Instant::now();
        c.resolve_at("h", 80, t0).unwrap();
        fake.failing.store(true, Ordering::SeqCst);
        let late = t0 + Duration::from_secs(3600);
        assert_eq!(
            c.resolve_at("h", 80, late).unwrap().len(),
            1,
            "stale answer served"
        );
        assert_eq!(c.stats().stale_served, 1);
        assert!(
            c.resolve_at("other", 80, late).is_err(),
            "nothing to fall back on"
        );
        let (no_fallback, fake) = cache(|c| c.dns_fallback = false);
        no_fallback.resolve_at("h", 80, t0).unwrap();
        fake.failing.store(true, Ordering::SeqCst);
        assert!(no_fallback.resolve_at("h", 80, late).is_err());
        assert_eq!(no_fallback.stats().failures, 1);
    }

    #[test]
    fn disabled_cache_and_ipv6() {
        let (c, fake) = cache(|c| {
            c.dns_cache = false;
            c.enable_ipv6 = true;
        });
        let t0 = Instant::now();
        assert_eq!(c.resolve_at("h", 1, t0).unwrap().len(), 2, "both families");
        c.resolve_at("h", 1, t0).unwrap();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "no caching");
        // IP literals are never looked up; a v6 literal with IPv6 off is refused.
        let (v4, fake) = cache(|_| {});
        assert_eq!(v4.resolve_at("127.0.0.1", 8, t0).unwrap().len(), 1);
        let e = v4.resolve_at("[::1]", 8, t0).unwrap_err();
        assert!(e.to_string().contains("IPv4"), "{e}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    }
}
