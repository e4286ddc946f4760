//! Carthooks platform SDK with first-class OAuth 2.0.
//!
//! Three grant flows (client credentials, optionally acting for a user;
//! authorization code; refresh), automatic single-flight token refresh, a
//! persistence callback, and a choice of HTTP backend by cargo feature:
//!
//! | feature | client | backend |
//! |---|---|---|
//! | `reqwest` (default) | [`Client`] (async) | reqwest, rustls with ring |
//! | `ureq` | [`blocking::Client`] | ureq 3, rustls with ring, no async runtime |
//! | `tracing` (default) | events and one span per API call, never a secret | `tracing` |
//! | `otel` | OpenTelemetry spans per call and attempt, and metrics, on the HTTP client conventions (`telemetry`) | `opentelemetry` (the API only) |
//! | `watch` | [`watch::Watcher`]: collection changes over Amazon SQS | aws-sdk-sqs, on the async client |
//! | `lambda` | `watch::lambda::LambdaWatcher`: the same handler under AWS Lambda's SQS event source | `watch`, lambda_runtime, aws_lambda_events |
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run() -> Result<(), carthooks::Error> {
//! use carthooks::{Client, ItemsQuery, OAuthConfig};
//!
//! let oauth = OAuthConfig::from_env()? // CARTHOOKS_CLIENT_ID / CARTHOOKS_CLIENT_SECRET
//!     .on_token_refresh(|tokens| println!("new tokens, expire at {:?}", tokens.expires_at));
//! let client = Client::builder().from_env().oauth(oauth).build()?; // CARTHOOKS_API_URL, …
//! client.initialize_oauth(None).await?;
//! let me = client.get_current_user().await?;
//! println!("acting as {} (trace {:?})", me.data.username, me.trace_id);
//! let items = client.get_items(3883548539, 3883549661, &ItemsQuery::new().limit(10)).await?;
//! println!("{} items of {:?}", items.data.len(), items.total());
//! # Ok(()) }
//! ```
//!
//! # The flows
//!
//! A back end acting for a user (client credentials plus the user's own token):
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run(user_token: &str) -> Result<(), carthooks::Error> {
//! let client = carthooks::Client::builder()
//!     .oauth(carthooks::OAuthConfig::from_env()?)
//!     .build()?;
//! client.initialize_oauth(Some(user_token)).await?;
//! assert!(!client.get_current_user().await?.data.username.is_empty());
//! # Ok(()) }
//! ```
//!
//! A web app (authorization code with PKCE): one client for the app, one
//! [session](mod@crate::session) per signed-in user over its connection pool, an
//! unguessable `state` bound to the user's browser and a PKCE verifier kept on
//! the server for each sign-in attempt (`examples/web_login/` is the whole app):
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run(app: &carthooks::Client, code_from_redirect: &str, state_from_redirect: &str,
//! #     state_in_cookie: &str) -> Result<(), carthooks::Error> {
//! let state = carthooks::csrf::generate_state()?; // set it as a cookie
//! let pkce = carthooks::Pkce::new()?; // keep pkce.verifier() on the server, by state
//! let _sign_in_page = carthooks::authorize_url( // then redirect the browser here:
//!     "https://carthooks.example/oauth/authorize", // the authorization server's page
//!     "my-client-id",
//!     "https://app.example/callback",
//!     &state,
//!     pkce.challenge(),
//! );
//! // … the user signs in there; the redirect brings `code` and `state` back …
//! if !carthooks::csrf::verify_state(state_in_cookie, state_from_redirect) {
//!     return Ok(()); // reject: forged or stale redirect
//! }
//! let user = app.session(); // no connection opened; the app's tokens untouched
//! user.exchange_authorization_code(
//!     code_from_redirect,
//!     "https://app.example/callback",
//!     Some(pkce.verifier()), // an intercepted code is useless without it
//! )
//! .await?;
//! // keep `user` in the web session: its calls act for the user, refreshing on their own
//! # Ok(()) }
//! ```
//!
//! A server that does not know PKCE ignores the challenge and the verifier
//! (RFC 6749 §3.1, §3.2), so they are always safe to send.
//!
//! Tokens that survive a restart (saved atomically before each new set is used;
//! loaded at build):
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # fn run() -> Result<(), carthooks::Error> {
//! use std::sync::Arc;
//! let client = carthooks::Client::builder()
//!     .oauth(carthooks::OAuthConfig::from_env()?)
//!     .token_store(Arc::new(carthooks::FileTokenStore::new("/var/lib/app/carthooks-tokens.json")))
//!     .build()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! Blocking, without an async runtime (feature `ureq`):
//!
//! ```no_run
//! # #[cfg(feature = "ureq")]
//! # fn run() -> Result<(), carthooks::Error> {
//! let client = carthooks::blocking::Client::builder()
//!     .oauth(carthooks::OAuthConfig::from_env()?)
//!     .build()?;
//! client.initialize_oauth(None)?;
//! for item in client.all_items(3883548539, 3883549661, &carthooks::ItemsQuery::new().limit(100)) {
//!     println!("{}", item?["id"]);
//! }
//! # Ok(()) }
//! ```
//!
//! # Your own transport
//!
//! Everything needed to send through another HTTP stack is here: implement
//! [`Transport`] for [`AsyncClient`] (or [`BlockingTransport`] for
//! [`BlockingClient`]) and build with [`ClientBuilder::build_with_transport`].
//! `examples/custom_transport.rs` wraps the default transport to add a header
//! and time each exchange.
//!
//! The layers underneath are usable on their own: `carthooks-core` (sans-IO:
//! models, errors, endpoint descriptions, the token machine and the per-call
//! driver), `carthooks-client` (the clients, generic over a transport, their
//! builder and token stores), `carthooks-reqwest` and `carthooks-ureq` (the
//! transports).

// The clients, their builder, the transport traits and everything needed to
// implement them (`BoxFuture`, `HttpRequest`, `TransportError`, `Connect`,
// `DnsCache`, `Lookup`, `http`), the models, errors and token stores: one list,
// kept in `carthooks-client`.
pub use carthooks_client::*;

/// The sans-IO core, for embedding: the per-call driver ([`core::Call`]), the
/// token machine, endpoint descriptions.
pub use carthooks_core as core;

/// The async client, generic over its [`Transport`] (a transport of your own,
/// `Box<dyn Transport>`, …). [`Client`] is the one over reqwest.
pub use carthooks_client::Client as AsyncClient;

/// The async client over reqwest (feature `reqwest`): [`AsyncClient`] with
/// [`ReqwestTransport`]. An alias, not a new type: `carthooks::Client` *is*
/// `carthooks_client::Client<ReqwestTransport>`, so code written against the
/// lower crates takes it as it is. Its methods, all documented on
/// [`AsyncClient`]:
///
/// | | methods |
/// |---|---|
/// | Tokens (OAuth) | [`initialize_oauth`](AsyncClient::initialize_oauth), [`exchange_authorization_code`](AsyncClient::exchange_authorization_code), [`refresh_oauth_token`](AsyncClient::refresh_oauth_token), [`get_oauth_authorize_code`](AsyncClient::get_oauth_authorize_code), [`get_current_tokens`](AsyncClient::get_current_tokens), [`current_authorization`](AsyncClient::current_authorization), [`token_store_failure`](AsyncClient::token_store_failure) |
/// | Users | [`get_current_user`](AsyncClient::get_current_user), [`get_user`](AsyncClient::get_user), [`get_user_by_token`](AsyncClient::get_user_by_token) |
/// | Items | [`get_items`](AsyncClient::get_items), [`get_items_as`](AsyncClient::get_items_as), [`all_items`](AsyncClient::all_items), [`all_items_as`](AsyncClient::all_items_as), [`get_item`](AsyncClient::get_item), [`get_item_as`](AsyncClient::get_item_as), [`create_item`](AsyncClient::create_item), [`create_item_as`](AsyncClient::create_item_as), [`update_item`](AsyncClient::update_item), [`delete_item`](AsyncClient::delete_item), [`lock_item`](AsyncClient::lock_item), [`unlock_item`](AsyncClient::unlock_item) |
/// | Sub-form rows | [`create_sub_item`](AsyncClient::create_sub_item), [`update_sub_item`](AsyncClient::update_sub_item), [`delete_sub_item`](AsyncClient::delete_sub_item) |
/// | Forms, uploads, watches | [`get_submission_token`](AsyncClient::get_submission_token), [`update_submission_token`](AsyncClient::update_submission_token), [`get_upload_token`](AsyncClient::get_upload_token), [`start_watch_data`](AsyncClient::start_watch_data) |
/// | Many users, one pool ([sessions](crate::session)) | [`session`](AsyncClient::session), [`session_builder`](AsyncClient::session_builder) |
/// | Any endpoint | [`execute`](AsyncClient::execute) |
/// | The client | [`builder`](AsyncClient::builder), [`config`](AsyncClient::config), [`transport_config`](AsyncClient::transport_config), [`dns_cache_stats`](AsyncClient::dns_cache_stats), [`clear_dns_cache`](AsyncClient::clear_dns_cache), [`close`](AsyncClient::close), [`is_closed`](AsyncClient::is_closed) |
#[cfg(feature = "reqwest")]
pub type Client = AsyncClient<carthooks_reqwest::ReqwestTransport>;

#[cfg(feature = "reqwest")]
pub use carthooks_reqwest::ReqwestTransport;

/// The blocking client over ureq (feature `ureq`). [`BlockingClient`]
/// is the same client generic over its transport.
#[cfg(feature = "ureq")]
pub mod blocking {
    /// The blocking client over ureq: [`BlockingClient`](crate::BlockingClient)
    /// with [`UreqTransport`]. It has the methods of
    /// [`AsyncClient`](crate::AsyncClient) (the table on
    /// [`Client`](crate::Client)), returning their results instead of futures;
    /// `all_items` is an `Iterator` instead of a `Stream`.
    pub type Client = crate::BlockingClient<carthooks_ureq::UreqTransport>;
    pub use carthooks_ureq::UreqTransport;
}

/// React to collection changes delivered over Amazon SQS (feature `watch`):
/// the crate [`carthooks_watch`], re-exported.
#[cfg(feature = "watch")]
pub use carthooks_watch as watch;

#[cfg(test)]
mod tests {
    use std::any::TypeId;

    /// The facade's clients are the client crate's types, not wrappers.
    #[cfg(feature = "reqwest")]
    #[test]
    fn the_facade_clients_are_the_client_crates_types() {
        type Reqwest = carthooks_client::Client<carthooks_reqwest::ReqwestTransport>;
        assert_eq!(TypeId::of::<crate::Client>(), TypeId::of::<Reqwest>());
        #[cfg(feature = "ureq")]
        {
            type Ureq = carthooks_client::BlockingClient<carthooks_ureq::UreqTransport>;
            assert_eq!(
                TypeId::of::<crate::blocking::Client>(),
                TypeId::of::<Ureq>()
            );
        }
    }

    /// Every public method of the clients appears in the table on `Client`,
    /// so a reader of the alias's page finds them all.
    #[test]
    fn the_client_page_lists_every_method() {
        let api = include_str!("../../carthooks-client/src/api.rs");
        let async_client = include_str!("../../carthooks-client/src/client.rs");
        let this = include_str!("lib.rs");
        let methods: Vec<&str> = api
            .lines()
            .chain(async_client.lines())
            .map(str::trim_start)
            .filter(|l| l.starts_with("pub ") && l.contains("fn "))
            .filter_map(|l| l.split("fn ").nth(1)?.split(['(', '<']).next())
            .collect();
        assert!(methods.len() > 30, "{methods:?}");
        for m in methods {
            assert!(
                this.contains(&format!("(AsyncClient::{m})")),
                "`{m}` is missing from the table on carthooks::Client"
            );
        }
    }
}

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
