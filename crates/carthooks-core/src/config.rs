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
///
/// Cheap to clone (one `Arc`); its `Debug` says only that there is one, so the
/// configurations holding it derive theirs.
///
/// ```
/// let seen = carthooks_core::TokenCallback::new(|tokens| {
///     let _ = tokens.expires_at;
/// });
/// assert_eq!(format!("{seen:?}"), "TokenCallback(..)");
/// ```
#[derive(Clone)]
pub struct TokenCallback(Arc<dyn Fn(&OAuthTokens) + Send + Sync>);

impl TokenCallback {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&OAuthTokens) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Calls it with `tokens`.
    pub fn call(&self, tokens: &OAuthTokens) {
        (self.0)(tokens)
    }
}

impl std::fmt::Debug for TokenCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCallback(..)")
    }
}

/// What every call needs, whatever sends it: where, how long, with which
/// credentials and retry policy. Connection settings (pool, DNS, TLS roots,
/// body limit) belong to the transport: `carthooks_client::TransportConfig`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL of the API (`CARTHOOKS_API_URL`, default `https://api.carthooks.com`).
    pub base_url: BaseUrl,
    /// Total timeout of one HTTP exchange (`CARTHOOKS_TIMEOUT`, seconds, default 30).
    pub timeout: Duration,
    /// Deadline of a whole call: every attempt, every retry wait and any token
    /// request it needs, together (default none: each attempt is bounded by
    /// `timeout`, and the retry policy bounds the rest).
    pub call_timeout: Option<Duration>,
    /// A ready access token for direct-access-token mode (`CARTHOOKS_ACCESS_TOKEN`).
    pub access_token: Option<AccessToken>,
    /// When to retry (default: 3 attempts, see [`RetryPolicy`]).
    pub retry: RetryPolicy,
    /// Allow `http://` to a host that is not loopback (default false: credentials
    /// would cross the network in clear text).
    pub allow_insecure_http: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: BaseUrl::default(),
            timeout: Duration::from_secs(30),
            call_timeout: None,
            access_token: None,
            retry: RetryPolicy::default(),
            allow_insecure_http: false,
        }
    }
}

impl ClientConfig {
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

    /// Uses a ready access token instead of an OAuth grant.
    pub fn with_access_token(mut self, token: impl Into<AccessToken>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Allows (or refuses) `http://` to hosts that are not loopback.
    pub fn with_allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Sets the deadline of a whole call.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
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
        check_timeout("timeout", self.timeout)?;
        if let Some(t) = self.call_timeout {
            check_timeout("call_timeout", t)?;
        }
        self.check_base_url()?;
        if self.retry.max_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Checks a timeout: above zero and at most [`ClientConfig::MAX_TIMEOUT`]; the
/// error names the setting.
pub fn check_timeout(name: &str, value: Duration) -> Result<()> {
    if value.is_zero() {
        return Err(Error::Config(format!("{name} must be greater than zero")));
    }
    if value > ClientConfig::MAX_TIMEOUT {
        return Err(Error::Config(format!(
            "{name} must be at most one day (86400 s); got {} s",
            value.as_secs()
        )));
    }
    Ok(())
}

/// A variable's value, trimmed; `None` when unset or blank.
fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// OAuth client settings: who the client is and how tokens are managed.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
        self.on_token_refresh = Some(TokenCallback::new(f));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = OAuthConfig::from_lookup(|name| match name {
            "CARTHOOKS_CLIENT_ID" => Some("id-1".into()),
            "CARTHOOKS_CLIENT_SECRET" => Some(" sec-1 ".into()),
            _ => None,
        })
        .unwrap()
        .with_refresh_token("rt-1")
        .on_token_refresh(|_| {});
        assert!(c.auto_refresh);
        assert_eq!(c.refresh_window, Duration::from_secs(300));
        assert_eq!(c.client_secret.secret(), "sec-1", "trimmed");
        let dbg = format!("{c:?}");
        assert!(
            dbg.contains("id-1") && !dbg.contains("sec-1") && !dbg.contains("rt-1"),
            "{dbg}"
        );
        let e =
            OAuthConfig::from_lookup(|name| (name == "CARTHOOKS_CLIENT_ID").then(|| "x".into()))
                .unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_CLIENT_SECRET"));
        assert!(OAuthConfig::new("", "s").validate().is_err());
    }
}
