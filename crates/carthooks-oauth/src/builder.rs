//! One builder for both clients.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use carthooks_core::{
    AccessToken, ClientConfig, Clock, Error, MachineConfig, OAuthConfig, OAuthTokens, Result,
    RetryPolicy, TokenMachine,
};

use crate::auth::Auth;
use crate::clock::CoarseClock;
use crate::store::TokenStore;
use crate::transport::{Connect, Jitter};

/// Builds a [`Client`](crate::Client) or a [`BlockingClient`](crate::BlockingClient).
///
/// Settings made here win over the environment (`CARTHOOKS_API_URL`,
/// `CARTHOOKS_ACCESS_TOKEN`, `CARTHOOKS_TIMEOUT`), which is read at `build()`
/// unless [`without_env`](Self::without_env) was called.
#[must_use]
pub struct ClientBuilder<C> {
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    access_token: Option<AccessToken>,
    oauth: Option<OAuthConfig>,
    tokens: Option<OAuthTokens>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn TokenStore>>,
    retry: Option<RetryPolicy>,
    max_response_body: Option<usize>,
    max_connections: Option<usize>,
    allow_insecure_http: bool,
    use_env: bool,
    _client: PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("access_token", &self.access_token)
            .field("oauth", &self.oauth)
            .field("use_env", &self.use_env)
            .finish_non_exhaustive()
    }
}

/// What a client is made of; produced by [`ClientBuilder`]. Opaque.
pub struct Parts {
    pub(crate) config: ClientConfig,
    pub(crate) auth: Auth,
}

/// The shared state behind both clients (each holds an `Arc` of it).
pub(crate) struct Inner<T> {
    pub(crate) transport: T,
    pub(crate) auth: Auth,
    pub(crate) config: ClientConfig,
    pub(crate) closed: AtomicBool,
    pub(crate) jitter: Jitter,
}

impl Parts {
    pub(crate) fn into_inner<T>(self, transport: T) -> Arc<Inner<T>> {
        Arc::new(Inner {
            transport,
            auth: self.auth,
            config: self.config,
            closed: AtomicBool::new(false),
            jitter: Jitter::new(),
        })
    }
}

/// Implemented by the clients so that one builder serves both.
pub trait BuildClient: Sized {
    /// The transport the client sends through.
    type Transport;
    /// Assembles the client.
    fn from_parts(parts: Parts, transport: Self::Transport) -> Self;
}

impl<C> Default for ClientBuilder<C> {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout: None,
            connect_timeout: None,
            access_token: None,
            oauth: None,
            tokens: None,
            clock: None,
            store: None,
            retry: None,
            max_response_body: None,
            max_connections: None,
            allow_insecure_http: false,
            use_env: true,
            _client: PhantomData,
        }
    }
}

impl<C: BuildClient> ClientBuilder<C> {
    /// A builder with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Base URL of the API (default `https://api.carthooks.com`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Total timeout of one HTTP exchange (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Connect timeout (default 10 s, never above the total timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Direct-access-token mode: use this token as it is.
    pub fn access_token(mut self, token: impl Into<AccessToken>) -> Self {
        self.access_token = Some(token.into());
        self
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

    /// The clock used for token expiry (default: [`CoarseClock`], the system time
    /// at build advanced by the coarse monotonic clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Loads tokens from `store` at build time and saves every new token set to
    /// it before the set is used.
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// When to retry (default: 3 attempts; see [`RetryPolicy`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Largest response body accepted (default 16 MiB).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = Some(bytes);
        self
    }

    /// Most requests in flight at once (default 100), where the backend can
    /// bound it (the reqwest backend does).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Allows `http://` to hosts that are not loopback. Credentials then cross
    /// the network unencrypted: only for trusted networks.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Ignores the `CARTHOOKS_*` environment variables.
    pub fn without_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Builds the client with its backend's default transport.
    pub fn build(self) -> Result<C>
    where
        C::Transport: Connect,
    {
        let parts = self.into_parts()?;
        let transport = C::Transport::connect(&parts.config)?;
        Ok(C::from_parts(parts, transport))
    }

    /// Builds the client over a transport of your own.
    pub fn build_with_transport(self, transport: C::Transport) -> Result<C> {
        Ok(C::from_parts(self.into_parts()?, transport))
    }

    fn into_parts(self) -> Result<Parts> {
        let overridden = |name: &str| match name {
            "CARTHOOKS_API_URL" => self.base_url.is_some(),
            "CARTHOOKS_ACCESS_TOKEN" => self.access_token.is_some(),
            "CARTHOOKS_TIMEOUT" => self.timeout.is_some(),
            _ => false,
        };
        let mut config = if self.use_env {
            ClientConfig::from_lookup(|name| {
                if overridden(name) {
                    None
                } else {
                    std::env::var(name).ok()
                }
            })?
        } else {
            ClientConfig::default()
        };
        if let Some(url) = &self.base_url {
            config = config.with_base_url(url)?;
        }
        if let Some(t) = self.timeout {
            config.timeout = t;
        }
        if let Some(t) = self.connect_timeout {
            config.connect_timeout = t;
        }
        if let Some(t) = self.access_token {
            config.access_token = Some(t);
        }
        if let Some(policy) = self.retry {
            config.retry = policy;
        }
        if let Some(n) = self.max_response_body {
            config.max_response_body = n;
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        config.allow_insecure_http = self.allow_insecure_http;
        config.validate()?;

        let (machine_config, client, callback, refresh_token) = match &self.oauth {
            Some(oauth) => {
                oauth.validate()?;
                (
                    MachineConfig {
                        auto_refresh: oauth.auto_refresh,
                        refresh_window: oauth.refresh_window.as_secs(),
                        min_refresh_interval: oauth.min_refresh_interval.as_secs(),
                    },
                    Some((oauth.client_id.clone(), oauth.client_secret.clone())),
                    oauth.on_token_refresh.clone(),
                    oauth.refresh_token.clone(),
                )
            }
            None => (MachineConfig::default(), None, None, None),
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(CoarseClock::new()));
        let now = clock.now();
        let mut machine = TokenMachine::new(machine_config, client);
        if let Some(rt) = refresh_token {
            machine.set_refresh_token(rt);
        }
        let stored = match &self.store {
            Some(store) => store.load().map_err(|e| {
                Error::Config(format!("cannot load tokens from the token store: {e}"))
            })?,
            None => None,
        };
        if let Some(tokens) = self.tokens.or(stored) {
            machine.install(tokens, now)?;
        } else if let Some(token) = &config.access_token {
            machine.install(OAuthTokens::from_access_token(token.clone()), now)?;
        }
        let auth = Auth::new(
            machine,
            clock,
            callback,
            self.store,
            config.base_url.clone(),
        );
        Ok(Parts { config, auth })
    }
}
