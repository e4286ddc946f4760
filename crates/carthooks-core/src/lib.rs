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
//!            +-------------------- carthooks-core -------------------+
//!  intent -> | Endpoint::to_request   TokenMachine::poll_authorize    | -> http::Request
//!            | Endpoint::parse_resp.  TokenMachine::handle_token_resp.| <- http::Response
//!            +-------------------------------------------------------+
//!                        ^ now (Unix seconds, from an injectable Clock)
//! ```
//!
//! # The loop a transport runs
//!
//! 1. Ask the [`TokenMachine`] what it needs: `poll_authorize(now, None)`.
//! 2. If it answers [`Authorize::Refresh`], send the token request, feed the answer
//!    to `handle_token_response`, persist the tokens, `commit`.
//! 3. Build the call with [`Endpoint::to_request`] and the bearer header; send it.
//! 4. Parse the answer with [`Endpoint::parse_response`]; on a 401, `invalidate`
//!    the token's generation and go to 1, once.
//!
//! ```
//! use carthooks_core::*;
//!
//! let mut machine = TokenMachine::new(
//!     MachineConfig::default(),
//!     Some(("my-client".into(), ClientSecret::new("my-secret"))),
//! );
//! let now = 1_700_000_000;
//! // 1. The first call needs a token: a client-credentials grant.
//! let GrantStart::Go(ticket, token_request) = machine
//!     .begin_grant(Grant::ClientCredentials { user_access_token: None }, now)?
//! else { unreachable!("nothing in flight yet") };
//! let _to_send = token_request.to_http(&BaseUrl::default());
//! // 2. The transport sends it; here is the server's answer.
//! let answer = http::Response::builder()
//!     .status(200)
//!     .body(br#"{"data":{"access_token":"at-1","refresh_token":"rt-1","expires_in":86400}}"#.to_vec())?;
//! let tokens = machine.handle_token_response(&ticket, now, &answer)?;
//! assert_eq!(tokens.expires_at, Some(now + 86_400)); // persist `tokens` here
//! machine.commit(ticket, now)?;
//! // 3. Build the API call with the current token.
//! let Authorize::Ready(bearer) = machine.poll_authorize(now, None)? else { unreachable!() };
//! let request = Endpoint::get_current_user().to_request(&BaseUrl::default(), Some(bearer.header()))?;
//! assert_eq!(request.uri(), "https://api.carthooks.com/v1/me");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Secrets live in newtypes ([`ClientSecret`], [`AccessToken`], [`RefreshToken`],
//! [`UserAccessToken`], [`AuthorizationCode`]) whose `Debug` is redacted; errors never
//! carry a response body.

pub mod config;
pub mod endpoint;
pub mod envelope;
pub mod error;
pub mod httpdate;
pub mod machine;
pub mod models;
pub mod pager;
pub mod retry;
pub mod secret;
pub mod tokens;
pub mod url;

pub use config::{
    ClientConfig, Clock, ManualClock, MonotonicClock, OAuthConfig, RootCertificate, SystemClock,
    TokenCallback,
};
pub use endpoint::Endpoint;
pub use envelope::{ApiResponse, parse_api_response, parse_token_response};
pub use error::{Error, Result, ServiceError, TransportError, TransportErrorKind};
pub use machine::{
    Authorize, Bearer, FlightTicket, GrantStart, MachineConfig, TokenMachine, WaitTicket,
};
pub use models::{
    AuthorizeCodeResponse, FilterOp, ItemLock, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest,
    UserInfo, WatchDataRequest,
};
pub use pager::Pager;
pub use retry::{Attempt, RequestKind, RequestTimeout, RetryDecision, RetryPolicy};
pub use secret::{AccessToken, AuthorizationCode, ClientSecret, RefreshToken, UserAccessToken};
pub use tokens::{Grant, OAuthTokenRequest, OAuthTokens, TokenIdentity};
pub use url::BaseUrl;

/// `http::Request` with an owned body, as the transports send it.
pub type HttpRequest = http::Request<Vec<u8>>;
/// `http::Response` with an owned body, as the transports return it.
pub type HttpResponse = http::Response<Vec<u8>>;
