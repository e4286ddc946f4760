//! Carthooks SDK: the OAuth grant flows and the authenticated API clients, generic
//! over an HTTP transport.
//!
//! [`Client`] (async, over a [`Transport`]) and [`BlockingClient`] (over a
//! [`BlockingTransport`]) have the same methods with the same semantics; both are
//! stamped out from one list (see the `api` module), and every decision — tokens,
//! retries, 401 replays, deadlines — is made by the sans-IO call driver
//! ([`carthooks_core::Call`]): each client is a short loop that sends, sleeps and
//! waits as the driver asks.
//! Pick a ready-made transport from `carthooks-reqwest` or `carthooks-ureq`, or
//! use the `carthooks` facade crate.
//!
//! ```
//! use carthooks_client::{BlockingClient, OAuthConfig};
//! // A transport is anything that turns a request into a response.
//! let transport = carthooks_client::transport_fn(|req| {
//!     let body = if req.uri().path() == "/oauth/token" {
//!         r#"{"data":{"access_token":"at","refresh_token":"rt","expires_in":86400}}"#
//!     } else {
//!         r#"{"data":{"user_id":7,"username":"ada"},"traceId":"t-1"}"#
//!     };
//!     Ok(http::Response::new(body.as_bytes().to_vec()))
//! });
//! let client = BlockingClient::builder()
//!     .oauth(OAuthConfig::new("my-client", "my-secret"))
//!     .build_with_transport(transport)?;
//! client.initialize_oauth(None)?;
//! let me = client.get_current_user()?;
//! assert_eq!(me.data.username, "ada");
//! assert_eq!(me.trace_id.as_deref(), Some("t-1"));
//! # Ok::<(), carthooks_client::Error>(())
//! ```
//!
//! # Tokens
//!
//! With `auto_refresh` (the default) every call asks the token machine first. A
//! token inside the refresh window is refreshed by one caller while the others
//! keep using it; an expired one is refreshed by one caller while the others wait
//! (single-flight: one token request however many callers). The
//! token store saves every new token set — including a rotated refresh token —
//! before any call uses it; the `on_token_refresh` callback is then called with
//! it, in order and outside every lock (it may call the client). A 401 invalidates the token it was
//! sent with (only if that is still the current one), refreshes and replays the
//! call once.

mod api;
mod blocking;
mod builder;
pub mod bulk;
mod client;
mod clock;
pub mod csrf;
pub mod dns;
mod env;
mod log;
mod pages;
mod persistence;
mod pkce;
mod runtime;
pub mod session;
pub mod settings;
pub mod store;
#[cfg(feature = "otel")]
pub mod telemetry;
#[cfg(not(feature = "otel"))]
mod telemetry;
mod transport;

pub use blocking::BlockingClient;
pub use builder::{BuildClient, ClientBuilder};
pub use client::Client;
pub use clock::{Clock, ManualClock, MonotonicClock, SystemClock};
pub use dns::{DnsCache, DnsCacheStats, Lookup, SystemLookup};
pub use pages::{ItemIter, ItemStream};
pub use pkce::Pkce;
pub use runtime::Parts;
pub use session::SessionBuilder;
pub use settings::{RootCertificate, TransportConfig};
pub use store::{
    FileTokenStore, Lease, LeaseAttempt, MemoryTokenStore, SaveAttempt, StoreOperation, Stored,
    TokenStore, TokenStoreFailure, TokenVault, next_stamp,
};
pub use transport::{
    BlockingTransport, BoxFuture, Connect, FnTransport, Transport, frames_body, transport_fn,
};

// The one list of what a user of the clients needs from the core; the
// `carthooks` facade re-exports this crate whole.
pub use carthooks_core::authorize_url;
pub use carthooks_core::{
    AccessToken, ApiResponse, AppId, AuthorizationCode, AuthorizeCodeResponse, BaseUrl,
    ClientConfig, ClientSecret, CollectionId, Endpoint, Error, FieldId, FilterOp, HttpRequest,
    HttpResponse, ItemId, ItemLock, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest,
    OAuthConfig, OAuthTokenRequest, OAuthTokens, Pager, PkceChallenge, PkceVerifier, RefreshToken,
    RequestTimeout, Result, RetryPolicy, ServiceError, SubItemId, TokenCallback, TokenIdentity,
    TransportError, TransportErrorKind, UserAccessToken, UserId, UserInfo, WatchDataRequest,
};
/// The `http` crate, whose `Request` and `Response` transports exchange.
pub use http;
/// The OpenTelemetry API the `otel` feature is built on (the same version the
/// builder's `tracer_provider` and `meter_provider` take).
#[cfg(feature = "otel")]
pub use opentelemetry;

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Clone + Send + Sync + 'static>() {}

    /// A POST whose connection timed out never left: it is sent again. One that
    /// timed out after sending is not: its outcome is unknown.
    #[test]
    fn only_a_post_that_never_left_is_retried() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        for (never_sent, expect_ok, expect_sends) in [(true, true, 2), (false, false, 1)] {
            let sends = Arc::new(AtomicU32::new(0));
            let counter = Arc::clone(&sends);
            let transport = transport_fn(move |req: HttpRequest| {
                if req.method() == http::Method::POST && counter.fetch_add(1, Ordering::SeqCst) == 0
                {
                    let e = TransportError::new(TransportErrorKind::Timeout);
                    return Err(if never_sent { e.mark_never_sent() } else { e });
                }
                Ok(http::Response::new(br#"{"data":{"id":1}}"#.to_vec()))
            });
            let client = BlockingClient::builder()
                .without_env()
                .access_token("at")
                .retry_policy(
                    RetryPolicy::default().with_base_delay(std::time::Duration::from_millis(1)),
                )
                .build_with_transport(transport)
                .unwrap();
            let out = client.create_item(1, 2, &serde_json::json!({}));
            assert_eq!(out.is_ok(), expect_ok, "{out:?}");
            if !expect_ok {
                assert!(matches!(out, Err(Error::OutcomeUnknown(_))));
            }
            assert_eq!(sends.load(Ordering::SeqCst), expect_sends);
        }
    }

    /// A `ClientConfig` made with its `with_*` methods reaches the builder whole;
    /// so does a `TransportConfig`, and later setters still win.
    #[test]
    fn whole_configs_reach_the_builder() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let transport = transport_fn(move |req: HttpRequest| {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            log.lock().unwrap().push(format!("{} {auth}", req.uri()));
            Ok(http::Response::new(
                br#"{"data":{"user_id":1,"username":"u"}}"#.to_vec(),
            ))
        });
        let config = ClientConfig::default()
            .with_base_url("http://127.0.0.1:9")
            .unwrap()
            .with_access_token("at-config")
            .with_timeout(std::time::Duration::from_secs(7));
        let client = BlockingClient::builder()
            .without_env()
            .config(config)
            .transport_config(TransportConfig::default().with_max_connections(3))
            .max_keepalive_connections(2)
            .build_with_transport(transport)
            .unwrap();
        client.get_current_user().unwrap();
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["http://127.0.0.1:9/v1/me Bearer at-config"]
        );
        let t = client.transport_config();
        assert_eq!((t.max_connections, t.max_keepalive_connections), (3, 2));
        assert_eq!(client.config().timeout, std::time::Duration::from_secs(30));
        assert_eq!(t.timeout, client.config().timeout, "one timeout for both");
    }

    #[test]
    fn clients_are_clone_send_sync() {
        shareable::<Client<Box<dyn Transport>>>();
        shareable::<Client<std::sync::Arc<dyn Transport>>>();
        type Fake =
            FnTransport<fn(HttpRequest) -> std::result::Result<HttpResponse, TransportError>>;
        shareable::<BlockingClient<Fake>>();
        shareable::<BlockingClient<Box<dyn BlockingTransport>>>();
        shareable::<BlockingClient<std::sync::Arc<dyn BlockingTransport>>>();
    }
}
