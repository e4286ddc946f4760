//! Sessions: many identities over one connection pool.
//!
//! A web app acts for many signed-in users at once. Building a client per user
//! would give each its own connection pool, DNS cache and TLS set-up; a
//! *session* instead is a client value that shares all of that with the client
//! it was made from, and has only its identity of its own.
//!
//! # What a session shares, what it owns
//!
//! | shared with every session of the client | a session's own |
//! |---|---|
//! | the transport and its connection pool, TLS and DNS cache | the token machine (its tokens, refresh token, single flight, 401 replay) |
//! | the settings: base URL, timeouts, retry policy | the token store and the `on_token_refresh` callback, if given |
//! | the OAuth client's id and secret, the refresh tuning, the clock | [`close`](crate::Client::close) |
//!
//! A session is the client type itself (`Client<T>` or `BlockingClient<T>`),
//! so every API method works on it unchanged, and its clones share its tokens
//! as a client's clones do. Making one opens no connection and costs about
//! 1.5 KiB (the token machine and its lock, the call settings, an event for its
//! waiters, a lease-holder name; `carthooks-bench --bin sessions` measures it);
//! nothing of it outlives the last clone. The client it was made from
//! is a session like the others: its own tokens are never touched by a
//! session's sign-in or refresh, and a session never falls back to them.
//!
//! ```text
//!   ClientBuilder::build ──> Shared { transport (pool), settings, client id/secret, clock }
//!                                 ▲                ▲                ▲
//!                         Session{engine₀}   Session{engine₁}   Session{engine₂}   ← one per session
//!                            the app           user A           user B
//! ```
//!
//! (`Shared` and `Session` are the crate's `runtime` module.)
//!
//! # The authorization-code flow with sessions
//!
//! ```no_run
//! # async fn sign_in<T: carthooks_client::Transport>(app: carthooks_client::Client<T>, code: &str,
//! #     verifier: carthooks_client::PkceVerifier) -> carthooks_client::Result<()> {
//! // In the redirect handler, after `csrf::verify_state`, with the PKCE
//! // verifier kept for this sign-in attempt:
//! let user = app.session();
//! user.exchange_authorization_code(code, "https://app.example/callback", Some(&verifier))
//!     .await?;
//! let me = user.get_current_user().await?; // acts for the user, not the app
//! // Keep `user` in the web session; every call refreshes its own tokens.
//! # let _ = me; Ok(()) }
//! ```
//!
//! A session restored from where the app kept its tokens (a database, an
//! encrypted cookie) starts from them with [`SessionBuilder::tokens`]; one that
//! should persist each new set names a store or a callback for it. A stored
//! set that belongs to another kind of identity is refused as it is for a
//! client (see the store docs), and a user's session never obtains tokens with
//! the client's own credentials: when its refresh token is refused, its calls
//! fail with an error that asks for a new sign-in.

use std::sync::Arc;

use carthooks_core::{OAuthTokens, Result, TokenCallback};

use crate::runtime::{Session, SessionOptions};
use crate::store::TokenStore;
use crate::{BlockingClient, Client};

/// Builds a session of a client: see the [module docs](self). Made by
/// `session_builder()` on [`Client`] or
/// [`BlockingClient`].
#[must_use]
pub struct SessionBuilder<C> {
    parent: C,
    options: SessionOptions,
}

impl<C> std::fmt::Debug for SessionBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("tokens", &self.options.tokens)
            .field("token_store", &self.options.store.is_some())
            .field("on_token_refresh", &self.options.callback)
            .finish()
    }
}

/// The clients sessions are made of (both clients).
pub(crate) trait SessionHost<T>: Sized {
    fn inner(&self) -> &Arc<Session<T>>;
    fn from_inner(inner: Arc<Session<T>>) -> Self;
}

impl<C> SessionBuilder<C> {
    pub(crate) fn new(parent: C) -> Self {
        Self {
            parent,
            options: SessionOptions::default(),
        }
    }

    /// Starts from `tokens` (a set the app kept for this user). Without it
    /// the session has no tokens until a grant (`exchange_authorization_code`,
    /// `initialize_oauth`) or its store gives it some.
    pub fn tokens(mut self, tokens: OAuthTokens) -> Self {
        self.options.tokens = Some(tokens);
        self
    }

    /// Saves every new token set of this session to `store` before it is used,
    /// and starts from the set stored there (unless [`tokens`](Self::tokens)
    /// are given). One store per session: a store holds one identity's set.
    /// Takes the store itself or a shared handle to one (`Arc<S>`,
    /// `Arc<dyn TokenStore>`).
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.options.store = Some(Arc::new(store));
        self
    }

    /// Calls `callback` with every new token set of this session, in order,
    /// right after it became current (the client's own callback is not called
    /// for a session's tokens).
    pub fn on_token_refresh(
        mut self,
        callback: impl Fn(&OAuthTokens) + Send + Sync + 'static,
    ) -> Self {
        self.options.callback = Some(TokenCallback::new(callback));
        self
    }

    fn open<T>(self) -> Result<C>
    where
        C: SessionHost<T>,
    {
        let inner = self.parent.inner().session(self.options)?;
        Ok(C::from_inner(inner))
    }
}

impl<T> SessionBuilder<Client<T>> {
    /// Makes the session. Fails only when the given or stored access token
    /// cannot be sent as a header ([`Error::Config`](carthooks_core::Error::Config)).
    pub fn build(self) -> Result<Client<T>> {
        self.open()
    }
}

impl<T> SessionBuilder<BlockingClient<T>> {
    /// Makes the session. Fails only when the given or stored access token
    /// cannot be sent as a header ([`Error::Config`](carthooks_core::Error::Config)).
    pub fn build(self) -> Result<BlockingClient<T>> {
        self.open()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use carthooks_core::{AccessToken, Error, OAuthConfig, OAuthTokens, RefreshToken};

    use crate::{BlockingClient, HttpRequest, transport_fn};

    /// One transport shared by the client and its sessions; every request's
    /// bearer recorded.
    fn client(
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        sends: Arc<AtomicU32>,
    ) -> BlockingClient<impl crate::BlockingTransport> {
        let transport = transport_fn(move |req: HttpRequest| {
            sends.fetch_add(1, Ordering::SeqCst);
            let bearer = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(bearer);
            Ok(http::Response::new(
                br#"{"data":{"user_id":7,"username":"ada"}}"#.to_vec(),
            ))
        });
        BlockingClient::builder()
            .without_env()
            .access_token("the-apps-token")
            .oauth(OAuthConfig::new("id", "the-client-secret"))
            .build_with_transport(transport)
            .unwrap()
    }

    #[test]
    fn a_session_sends_its_own_token_through_the_clients_transport() {
        let (seen, sends) = (Arc::default(), Arc::new(AtomicU32::new(0)));
        let app = client(Arc::clone(&seen), Arc::clone(&sends));
        let mut set = OAuthTokens::from_access_token(AccessToken::new("the-users-token"));
        set.refresh_token = Some(RefreshToken::new("the-users-refresh-token"));
        let builder = app.session_builder().tokens(set);
        let shown = format!("{builder:?}");
        let user = builder.build().unwrap();
        let empty = app.session();
        for text in [shown, format!("{user:?}"), format!("{empty:?}")] {
            for secret in ["the-users", "the-apps-token", "the-client-secret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        user.get_current_user().unwrap();
        app.get_current_user().unwrap();
        assert!(matches!(
            empty.get_current_user(),
            Err(Error::NotAuthenticated(_))
        ));
        assert_eq!(
            *seen.lock().unwrap(),
            ["Bearer the-users-token", "Bearer the-apps-token"],
            "each identity's own token, through the one transport"
        );
        assert_eq!(sends.load(Ordering::SeqCst), 2);
    }
}
