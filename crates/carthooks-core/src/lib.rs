//! Sans-IO core of the Carthooks SDK: models, errors, endpoint descriptions and the
//! OAuth token state machine.
//!
//! This crate does not hold any I/O objects, start no runtime and read no clock.
//! It turns intent into `http::Request<Vec<u8>>` values and answers
//! (`http::Response<Vec<u8>>`) into typed results, so that any HTTP stack — the
//! SDK's own reqwest and ureq backends, or another SDK embedding this one — can
//! drive it:
//!
//! ```text
//!            +------------------------- carthooks-core --------------------------+
//!  intent -> | Call::api(&engine, &endpoint, now) / Call::grant(&engine, grant, now)|
//!            |   poll(now) -> Send(request) | Sleep | WaitFlight | Deliver      | -> http::Request
//!            |     (a token store) Save | TryLease | SendRenewing | ReleaseLease |
//!            |   handle(answer, now), handle_saved, handle_lease                 | <- http::Response
//!            |   ... poll(now) -> Done(result)                                   |
//!            |  Engine: TokenMachine (single-flight tokens), retry policy, jitter |
//!            +-------------------------------------------------------------------+
//! ```
//!
//! Time enters only as `now` ([`Now`]: an `Instant` and Unix seconds, read by
//! the loop), randomness only as the settings' jitter seed.
//!
//! # The loop a client runs
//!
//! An [`Engine`] is the state one client's calls share; a [`Call`] is the
//! per-call driver ([`Call`]'s docs have its state diagram). The whole client
//! is a loop around it — this one sends through a closure:
//!
//! ```
//! use carthooks_core::*;
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//!
//! let machine = TokenMachine::new(
//!     MachineConfig::default(),
//!     Some(("my-client".into(), ClientSecret::new("my-secret"))),
//! );
//! let engine = Engine::new(machine, CallSettings::new(BaseUrl::default()));
//! // The clocks, read by the loop.
//! fn now() -> Now {
//!     let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
//!     Now::new(Instant::now(), unix)
//! }
//! // The "transport": a token answer for the token endpoint, a user for the rest.
//! let send = |request: HttpRequest| -> std::result::Result<HttpResponse, TransportError> {
//!     let body: &[u8] = if request.uri().path() == "/oauth/token" {
//!         br#"{"data":{"access_token":"at-1","refresh_token":"rt-1","expires_in":86400}}"#
//!     } else {
//!         assert_eq!(request.headers()["authorization"], "Bearer at-1");
//!         br#"{"data":{"user_id":7,"username":"ada"},"traceId":"t-1"}"#
//!     };
//!     Ok(http::Response::new(body.to_vec()))
//! };
//! fn drive<T>(mut call: Call<'_, T>, send: impl Fn(HttpRequest) -> std::result::Result<HttpResponse, TransportError>) -> Result<T> {
//!     loop {
//!         match call.poll(now()) {
//!             Output::Send(request) => call.handle(send(request), now()),
//!             Output::Sleep { until } => std::thread::sleep(until - Instant::now()),
//!             Output::WaitFlight { .. } => unreachable!("one caller only"),
//!             Output::Deliver => {} // no callback
//!             // A token store only (and a store shared with other processes).
//!             Output::Save { .. } | Output::TryLease { .. } | Output::SendRenewing { .. }
//!             | Output::ReleaseLease(_) => unreachable!("no store"),
//!             Output::Done(result) => return result,
//!         }
//!     }
//! }
//! // 1. The first grant is explicit: client credentials.
//! let grant = Grant::ClientCredentials { user_access_token: None };
//! let tokens = drive(Call::grant(&engine, grant, now()), &send)?;
//! assert!(tokens.expires_at.is_some());
//! // 2. Calls then carry the token (and refresh it when it goes stale).
//! let me = drive(Call::api(&engine, &Endpoint::get_current_user(), now()), &send)?;
//! assert_eq!(me.data.username, "ada");
//! assert_eq!(me.trace_id.as_deref(), Some("t-1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts are usable on their own too: [`Endpoint::to_request`] and
//! [`Endpoint::parse_response`] turn a call into bytes and back, and the
//! [`TokenMachine`] decides about tokens ([`TokenMachine::authorize`]).
//!
//! Secrets live in newtypes ([`ClientSecret`], [`AccessToken`], [`RefreshToken`],
//! [`UserAccessToken`], [`AuthorizationCode`], [`PkceVerifier`]) whose `Debug` is redacted; errors never
//! carry a response body.
//!
//! # One path per item
//!
//! Every public item is re-exported here, at the crate root, and only here:
//! the modules are private (their `//!` docs are for the crate's
//! maintainers; the design users need is on the items: [`Call`], [`Engine`],
//! [`TokenMachine`], [`Lease`], [`RetryPolicy`], [`Pager`]). The endpoint table
//! is [`spec`] and [`ENDPOINTS`]. What the SDK's own crates, tests and fuzz
//! targets share beyond that sits in a hidden `internal` module, outside the
//! API and its semver promise.
//!
//! # Modules
//!
//! The modules import one way, each only from those on its left (tests aside);
//! no two import each other:
//!
//! ```text
//! sanitize, secret, ids, httpdate → pkce, error → url, retry → tokens, models
//!   → envelope, machine, pager, config, lease → endpoint, engine → call
//! ```
//!
//! `sanitize` cleans the text a server chose (used by errors, the envelope and
//! the token parser); `tokens` holds the token types and their wire form, and
//! `envelope` every parser of answers, the token endpoint's included.

mod call;
mod config;
mod endpoint;
mod engine;
mod envelope;
mod error;
mod httpdate;
mod ids;
mod lease;
mod machine;
mod models;
mod pager;
mod pkce;
mod retry;
mod sanitize;
mod secret;
mod time;
mod tokens;
mod url;

pub use call::{Call, Exchange, Output, STORE_GRACE};
pub use config::{ClientConfig, OAuthConfig, TokenCallback};
pub use endpoint::{ENDPOINTS, Endpoint, Spec, spec};
pub use engine::{CallSettings, Engine, Note};
pub use envelope::{ApiResponse, parse_api_response, parse_token_response};
pub use error::{Error, Result, ServiceError, TransportError, TransportErrorKind};
pub use ids::{AppId, CollectionId, FieldId, ItemId, SubItemId, UserId};
pub use lease::{Lease, LeaseAnswer, LeaseAttempt, LeaseOutcome, Renewal, SaveAttempt, Stored};
pub use machine::{
    Bearer, FlightTicket, MachineConfig, PendingTokens, Step, TokenMachine, WaitTicket, Want,
};
pub use models::{
    AuthorizeCodeResponse, FilterOp, ItemLock, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest,
    UserInfo, WatchDataRequest,
};
pub use pager::Pager;
pub use pkce::PkceChallenge;
pub use retry::{Attempt, RequestKind, RequestTimeout, RetryDecision, RetryPolicy};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, PkceVerifier, RefreshToken, UserAccessToken,
};
pub use time::Now;
pub use tokens::{Grant, OAuthTokenRequest, OAuthTokens, TokenIdentity};
pub use url::{BaseUrl, authorize_url};

/// Not part of the API: helpers for the SDK's own crates (the client, the
/// mock server), its tests and its fuzz targets. They may change in any
/// release; do not use them.
#[doc(hidden)]
pub mod internal {
    pub use crate::config::check_timeout;
    pub use crate::httpdate::parse_http_date;
    pub use crate::pkce::{S256, base64url, is_valid_s256_challenge, is_valid_verifier};
    pub use crate::secret::constant_time_eq;
    pub use crate::tokens::MAX_LIFETIME;
    pub use crate::url::{
        append_query, decode_form, encode_form, encode_path_segment, encode_query,
    };
}

/// The `User-Agent` every request carries: `carthooks-rust/<version>`. A
/// transport may replace it (set the header before sending).
pub const USER_AGENT: &str = concat!("carthooks-rust/", env!("CARGO_PKG_VERSION"));

/// `http::Request` with an owned body, as the transports send it.
pub type HttpRequest = http::Request<Vec<u8>>;
/// `http::Response` with an owned body, as the transports return it.
pub type HttpResponse = http::Response<Vec<u8>>;
