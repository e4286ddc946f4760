//! One builder for both clients.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use carthooks_core::{
    AccessToken, CallSettings, ClientConfig, MachineConfig, OAuthConfig, OAuthTokens, Result,
    RetryPolicy,
};

use crate::clock::{Clock, MonotonicClock};
use crate::dns::{DnsCache, Lookup, SystemLookup};
use crate::persistence::{LEASE_TTL, Persistence};
use crate::runtime::{MachineSeed, Parts, Session, Shared, given_or_stored};
use crate::settings::{CLIENT_ENV_VARS, RootCertificate, TransportConfig};
use crate::store::TokenStore;
use crate::telemetry::{Telemetry, TelemetryOptions};
use crate::transport::Connect;

/// Builds a [`Client`](crate::Client) or a [`BlockingClient`](crate::BlockingClient).
///
/// The environment is read only when asked: [`from_env`](Self::from_env) reads
/// the `CARTHOOKS_*` variables of [`CLIENT_ENV_VARS`](crate::settings::CLIENT_ENV_VARS) and
/// [`TransportConfig::ENV_VARS`] at `build()`; settings made here win over them.
/// A malformed variable is an [`Error::Config`](carthooks_core::Error::Config)
/// naming it, unless code sets that value.
#[must_use]
pub struct ClientBuilder<C> {
    /// Changes to the configuration, in order, each with the environment variable
    /// it overrides (that variable is then not read).
    edits: Vec<(Option<&'static str>, ConfigEdit)>,
    oauth: Option<OAuthConfig>,
    tokens: Option<OAuthTokens>,
    clock: Option<Arc<dyn Clock>>,
    jitter_seed: Option<u64>,
    store: Option<Arc<dyn TokenStore>>,
    lease_ttl: Option<Duration>,
    lookup: Option<Arc<dyn Lookup>>,
    use_env: bool,
    telemetry: TelemetryOptions,
    _client: PhantomData<fn() -> C>,
}

type ConfigEdit = Box<dyn FnOnce(&mut ClientConfig, &mut TransportConfig) -> Result<()> + Send>;

impl<C> std::fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let overrides: Vec<&str> = self.edits.iter().filter_map(|(var, _)| *var).collect();
        f.debug_struct("ClientBuilder")
            .field("overrides", &overrides)
            .field("oauth", &self.oauth)
            .field("use_env", &self.use_env)
            .finish_non_exhaustive()
    }
}

/// Implemented by the clients so that one builder serves both.
pub trait BuildClient: Sized {
    /// The transport the client sends through.
    type Transport;
    /// Assembles the client.
    fn from_parts(parts: Parts<Self::Transport>) -> Self;
}

impl<C> Default for ClientBuilder<C> {
    fn default() -> Self {
        Self {
            edits: Vec::new(),
            oauth: None,
            tokens: None,
            clock: None,
            jitter_seed: None,
            store: None,
            lease_ttl: None,
            lookup: None,
            use_env: false,
            telemetry: TelemetryOptions::default(),
            _client: PhantomData,
        }
    }
}

impl<C: BuildClient> ClientBuilder<C> {
    /// A builder with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Base URL of the API (`CARTHOOKS_API_URL`, default `https://api.carthooks.com`).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.edit(Some("CARTHOOKS_API_URL"), move |c, _| {
            c.base_url = carthooks_core::BaseUrl::parse(&url)?;
            Ok(())
        })
    }

    /// Total timeout of one HTTP exchange (`CARTHOOKS_TIMEOUT`, default 30 s).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.edit(Some("CARTHOOKS_TIMEOUT"), move |c, t| {
            c.timeout = timeout;
            t.timeout = timeout;
            Ok(())
        })
    }

    /// Deadline of a whole call: every attempt, every retry wait and any token
    /// request it needs, together (default none). A call that runs out of it
    /// fails with a timeout ([`Error::is_timeout`](carthooks_core::Error::is_timeout)).
    pub fn call_timeout(self, timeout: Duration) -> Self {
        self.edit(None, move |c, _| {
            c.call_timeout = Some(timeout);
            Ok(())
        })
    }

    /// Connect timeout (default 10 s, never above the total timeout).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.edit(None, move |_, t| {
            t.connect_timeout = timeout;
            Ok(())
        })
    }

    /// Direct-access-token mode (`CARTHOOKS_ACCESS_TOKEN`): use this token as it is.
    pub fn access_token(self, token: impl Into<AccessToken>) -> Self {
        let token = token.into();
        self.edit(Some("CARTHOOKS_ACCESS_TOKEN"), move |c, _| {
            c.access_token = Some(token);
            Ok(())
        })
    }

    /// OAuth client settings (client id, secret, refresh token, callback).
    pub fn oauth(mut self, config: OAuthConfig) -> Self {
        self.oauth = Some(config);
        self
    }

    /// Starts from a stored token set (for example one saved by the callback).
    pub fn tokens(mut self, tokens: OAuthTokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The clock used for token expiry (default: [`MonotonicClock`], the system
    /// time at build advanced by the monotonic clock, so a wall-clock jump does
    /// not make tokens look expired or fresh).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seeds the retry jitter (default: 8 bytes from the operating system's
    /// random source). A fixed seed makes the waits between retries the same
    /// every run: for tests that replay a run.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Loads tokens from `store` at build time and saves every new token set to
    /// it before the set is used.
    ///
    /// A store that cannot be read (a truncated, garbage or unreadable file)
    /// does not make `build()` fail: the client starts without stored tokens,
    /// and the failure is reported by the client's `token_store_failure()` (and
    /// a `tracing` warning). [`FileTokenStore`](crate::FileTokenStore) moves such
    /// a file aside first, so nothing is lost. A store must not call the client.
    ///
    /// Takes the store itself or a shared handle to one (`Arc<S>`,
    /// `Arc<dyn TokenStore>`), as [`SessionBuilder::token_store`](crate::session::SessionBuilder::token_store) does.
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How long the refresh lease of a shared store lasts unless renewed
    /// (default 5 s; at least 100 ms). The holder renews it every third of
    /// that while its token request is out, so a slow token endpoint never
    /// lets it lapse; a holder that dies keeps the other processes waiting
    /// for at most this long. Shorter: faster recovery from a crashed holder,
    /// more store traffic during a refresh.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use std::sync::Arc;
    /// use carthooks_client::{BuildClient, ClientBuilder, FileTokenStore};
    ///
    /// fn shared<C: BuildClient>(builder: ClientBuilder<C>) -> ClientBuilder<C> {
    ///     builder
    ///         .token_store(Arc::new(FileTokenStore::new("tokens.json")))
    ///         .refresh_lease_ttl(Duration::from_secs(2))
    /// }
    /// ```
    pub fn refresh_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// When to retry (default: 3 attempts; see [`RetryPolicy`]).
    pub fn retry_policy(self, policy: RetryPolicy) -> Self {
        self.edit(None, move |c, _| {
            c.retry = policy;
            Ok(())
        })
    }

    /// Largest response body accepted (default 16 MiB).
    pub fn max_response_body(self, bytes: usize) -> Self {
        self.edit(None, move |_, t| {
            t.max_response_body = bytes;
            Ok(())
        })
    }

    /// Most requests in flight at once (`CARTHOOKS_MAX_CONNECTIONS`, default
    /// 100), where the backend can bound it (the reqwest backend does).
    pub fn max_connections(self, n: usize) -> Self {
        self.edit(Some("CARTHOOKS_MAX_CONNECTIONS"), move |_, t| {
            t.max_connections = n;
            Ok(())
        })
    }

    /// Most idle connections kept for reuse (`CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS`,
    /// default 100, as many as may be in flight; the Python SDK's 20 makes a
    /// busy client reopen connections).
    pub fn max_keepalive_connections(self, n: usize) -> Self {
        self.edit(Some("CARTHOOKS_MAX_KEEPALIVE_CONNECTIONS"), move |_, t| {
            t.max_keepalive_connections = n;
            Ok(())
        })
    }

    /// Offer HTTP/2 over TLS (default true; `CARTHOOKS_HTTP2_DISABLED`). The ureq
    /// backend speaks HTTP/1.1 only.
    pub fn http2(self, on: bool) -> Self {
        self.edit(Some("CARTHOOKS_HTTP2_DISABLED"), move |_, t| {
            t.http2 = on;
            Ok(())
        })
    }

    /// Cache DNS answers (default true; `CARTHOOKS_DNS_CACHE_DISABLE`).
    pub fn dns_cache(self, on: bool) -> Self {
        self.edit(Some("CARTHOOKS_DNS_CACHE_DISABLE"), move |_, t| {
            t.dns_cache = on;
            Ok(())
        })
    }

    /// How long a DNS answer is cached (`CARTHOOKS_DNS_CACHE_TTL`, default 300 s).
    pub fn dns_cache_ttl(self, ttl: Duration) -> Self {
        self.edit(Some("CARTHOOKS_DNS_CACHE_TTL"), move |_, t| {
            t.dns_cache_ttl = ttl;
            Ok(())
        })
    }

    /// Serve the last good DNS answer when a lookup fails (default true;
    /// `CARTHOOKS_DNS_FALLBACK_DISABLE`).
    pub fn dns_fallback(self, on: bool) -> Self {
        self.edit(Some("CARTHOOKS_DNS_FALLBACK_DISABLE"), move |_, t| {
            t.dns_fallback = on;
            Ok(())
        })
    }

    /// Connect to IPv6 addresses too (`CARTHOOKS_ENABLE_IPV6`; default IPv4 only).
    pub fn enable_ipv6(self, on: bool) -> Self {
        self.edit(Some("CARTHOOKS_ENABLE_IPV6"), move |_, t| {
            t.enable_ipv6 = on;
            Ok(())
        })
    }

    /// Allows `http://` to hosts that are not loopback. Credentials then cross
    /// the network unencrypted: only for trusted networks.
    pub fn allow_insecure_http(self, allow: bool) -> Self {
        self.edit(None, move |c, _| {
            c.allow_insecure_http = allow;
            Ok(())
        })
    }

    /// Trusts `certificate` as a certificate authority for TLS — for a server
    /// whose certificate a private CA issued. Once any is added, only the added
    /// ones are trusted (both backends alike): the default roots (the
    /// platform's for reqwest, Mozilla's for ureq) are no longer used.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), carthooks_client::Error> {
    /// use carthooks_client::{BlockingClient, RootCertificate};
    /// let pem = std::fs::read("company-ca.pem").expect("the CA file");
    /// let mut builder = BlockingClient::<Box<dyn carthooks_client::BlockingTransport>>::builder();
    /// for ca in RootCertificate::from_pem(&pem)? {
    ///     builder = builder.add_root_certificate(ca);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn add_root_certificate(self, certificate: RootCertificate) -> Self {
        self.edit(None, move |_, t| {
            t.root_certificates.push(certificate);
            Ok(())
        })
    }

    /// Resolves host names with `lookup` instead of the system resolver (still
    /// through the DNS cache).
    pub fn dns_lookup(mut self, lookup: Arc<dyn Lookup>) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Replaces every call setting at once with `config` (made with
    /// `ClientConfig::with_*`; its `timeout` is the transport's too). The
    /// environment is not read for them; later setters still win.
    pub fn config(self, config: ClientConfig) -> Self {
        let builder = CLIENT_ENV_VARS
            .iter()
            .fold(self, |b, (var, _)| b.edit(Some(var), |_, _| Ok(())));
        builder.edit(None, move |c, t| {
            t.timeout = config.timeout;
            *c = config;
            Ok(())
        })
    }

    /// Replaces every connection setting at once with `config` (made with
    /// `TransportConfig::with_*`; its `timeout` bounds calls too). The
    /// environment is not read for them; later setters still win.
    pub fn transport_config(self, config: TransportConfig) -> Self {
        let builder = TransportConfig::ENV_VARS
            .iter()
            .fold(self, |b, (var, _)| b.edit(Some(var), |_, _| Ok(())));
        builder.edit(None, move |c, t| {
            c.timeout = config.timeout;
            *t = config;
            Ok(())
        })
    }

    fn edit(
        mut self,
        env_var: Option<&'static str>,
        f: impl FnOnce(&mut ClientConfig, &mut TransportConfig) -> Result<()> + Send + 'static,
    ) -> Self {
        self.edits.push((env_var, Box::new(f)));
        self
    }

    /// Also reads the `CARTHOOKS_*` environment variables at `build()`
    /// ([`CLIENT_ENV_VARS`](crate::settings::CLIENT_ENV_VARS), [`TransportConfig::ENV_VARS`]): settings
    /// made in code still win, and a malformed variable is an error naming it.
    /// Without this call the environment is never read, so a stray
    /// `CARTHOOKS_ACCESS_TOKEN` cannot change how a client authenticates.
    pub fn from_env(mut self) -> Self {
        self.use_env = true;
        self
    }

    /// Ignores the environment (the default; undoes [`from_env`](Self::from_env)).
    pub fn without_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Builds the client with its backend's default transport.
    pub fn build(self) -> Result<C>
    where
        C::Transport: Connect,
    {
        Ok(C::from_parts(self.into_parts(|config, dns| {
            C::Transport::connect(config, Arc::clone(dns))
        })?))
    }

    /// Traces from `provider`'s tracer (scope `carthooks`, the SDK's
    /// version) instead of the global provider's (feature `otel`; see the
    /// [`telemetry`](crate::telemetry) module for the spans).
    ///
    /// Without this the global provider is used, as it is when `build()`
    /// runs: install it before building the client.
    #[cfg(feature = "otel")]
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::trace::TracerProvider<Tracer = T>,
        T: opentelemetry::trace::Tracer<Span = S> + Send + Sync + 'static,
        S: opentelemetry::trace::Span + Send + Sync + 'static,
    {
        self.telemetry
            .otel
            .providers
            .set_tracer(provider, crate::telemetry::instrumentation_scope());
        self
    }

    /// Metrics on `provider`'s meter (scope `carthooks`) instead of the global
    /// provider's (feature `otel`; see the [`telemetry`](crate::telemetry)
    /// module for the instruments).
    ///
    /// Without this the global provider is used, as it is when `build()`
    /// runs: install it before building the client.
    #[cfg(feature = "otel")]
    pub fn meter_provider(mut self, provider: &dyn opentelemetry::metrics::MeterProvider) -> Self {
        self.telemetry
            .otel
            .providers
            .set_meter(provider, crate::telemetry::instrumentation_scope());
        self
    }

    /// Sends W3C trace context (`traceparent`, `tracestate`) with every
    /// request, naming its attempt's span (default off: it tells the server
    /// about your traces). Feature `otel`.
    #[cfg(feature = "otel")]
    pub fn propagate_trace_context(mut self, on: bool) -> Self {
        self.telemetry.otel.propagate = on;
        self
    }

    /// Builds the client over a transport of your own.
    pub fn build_with_transport(self, transport: C::Transport) -> Result<C> {
        Ok(C::from_parts(self.into_parts(|_, _| Ok(transport))?))
    }

    /// Checks and assembles everything, the transport last (`connect`, given
    /// the checked transport settings and the DNS cache).
    fn into_parts(
        self,
        connect: impl FnOnce(&TransportConfig, &Arc<DnsCache>) -> Result<C::Transport>,
    ) -> Result<Parts<C::Transport>> {
        let overridden: Vec<&str> = self.edits.iter().filter_map(|(var, _)| *var).collect();
        let from_env = |name: &str| {
            self.use_env
                && !overridden.contains(&name)
                && std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
        };
        let base_from_env = from_env("CARTHOOKS_API_URL");
        let token_from_env = from_env("CARTHOOKS_ACCESS_TOKEN");
        let env = |name: &str| {
            if overridden.contains(&name) {
                None
            } else {
                std::env::var(name).ok()
            }
        };
        let (mut config, mut transport_config) = if self.use_env {
            (
                crate::env::client_config(env)?,
                TransportConfig::from_lookup(env)?,
            )
        } else {
            (ClientConfig::default(), TransportConfig::default())
        };
        for (_, edit) in self.edits {
            edit(&mut config, &mut transport_config)?;
        }
        if let Err(e) = config.check_base_url() {
            return Err(if base_from_env {
                e.in_variable("CARTHOOKS_API_URL")
            } else {
                e
            });
        }
        config.validate()?;
        transport_config.validate()?;

        let (machine_config, client, callback, refresh_token) = match &self.oauth {
            Some(oauth) => {
                oauth.validate()?;
                (
                    MachineConfig::from_oauth(oauth),
                    Some((oauth.client_id.clone(), oauth.client_secret.clone())),
                    oauth.on_token_refresh.clone(),
                    oauth.refresh_token.clone(),
                )
            }
            None => (MachineConfig::default(), None, None, None),
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(MonotonicClock::new()));
        let identity = self
            .oauth
            .as_ref()
            .map_or_else(String::new, |o| o.client_id.clone());
        let lease_ttl = match self.lease_ttl {
            None => LEASE_TTL,
            Some(ttl) if ttl >= Duration::from_millis(100) => ttl,
            Some(ttl) => {
                return Err(carthooks_core::Error::Config(format!(
                    "refresh_lease_ttl must be at least 100 ms (got {} ms)",
                    ttl.as_millis()
                )));
            }
        };
        let mut settings = CallSettings::new(config.base_url.clone());
        settings.retry = config.retry;
        settings.timeout = config.timeout;
        settings.call_timeout = config.call_timeout;
        settings.jitter_seed = self.jitter_seed.unwrap_or_else(random_seed);
        settings.lease_ttl = lease_ttl;
        let lookup = self.lookup.unwrap_or_else(|| Arc::new(SystemLookup));
        let dns = Arc::new(DnsCache::new(&transport_config, lookup));
        let telemetry = Telemetry::new(self.telemetry, &config.base_url);
        let persistence = Persistence::new(
            self.store,
            callback,
            identity.clone(),
            telemetry.store_failures(),
        );
        let (tokens, version) = given_or_stored(self.tokens, persistence.load());
        let access_token = config.access_token.clone();
        let seed = MachineSeed {
            config: machine_config,
            client,
            clock,
        };
        let machine = seed.machine(
            refresh_token,
            tokens,
            access_token.as_ref().map(|t| (t, token_from_env)),
        )?;
        let shared = Shared {
            transport: connect(&transport_config, &dns)?,
            config,
            transport_config,
            dns,
            seed,
            settings,
            sessions: AtomicU64::new(0),
            identity,
            telemetry,
        };
        Ok(Parts(Session::open(
            Arc::new(shared),
            persistence,
            machine,
            version,
        )))
    }
}

/// A jitter seed from the OS; should the OS refuse, std's per-process random
/// hash keys (jitter needs no secrecy, only spread).
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5EED);
    h.finish()
}
