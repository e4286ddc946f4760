//! The API methods, written once for both clients.
//!
//! Each method only picks an [`Endpoint`](carthooks_core::Endpoint) and hands it
//! to the client's `execute`; the macro stamps the list out as `async fn`s on
//! [`Client`](crate::Client) and as plain `fn`s on
//! [`BlockingClient`](crate::BlockingClient), so the two cannot drift apart. It
//! carries no logic: every decision is made by the sans-IO driver
//! ([`carthooks_core::Call`]), which each client runs in a short loop (`drive`).
//!
//! Names: a method the Python SDK has keeps its name (`get_items`,
//! `get_current_tokens`, …); one it lacks follows Rust's conventions, without
//! `get_` (`current_authorization`, `token_store_failure`, `dns_cache_stats`).
//!
//! The macro's inputs are all in its invocation; its body names every type by
//! its full path, so a call site needs no imports for it:
//!
//! ```text
//! impl<T: Transport> Client<T> {
//!     api_methods!(transport: T, pages: ItemStream, calls: async .await);
//! }
//! impl<T: BlockingTransport> BlockingClient<T> {
//!     api_methods!(transport: T, pages: ItemIter, calls: blocking);
//! }
//! ```
//!
//! - `transport`: the client's transport type parameter (for `pages`);
//! - `pages`: the type `all_items` answers with, generic over the transport
//!   and the item type, made by `new(client, app, collection, query)`;
//! - `calls`: `async .await` (each method an `async fn`, each inner call
//!   awaited) or `blocking`.
//!
//! What the methods call on `self` is the client's own: `execute`, `grant`
//! and the `inner` session state ([`runtime`](crate::runtime)).

macro_rules! api_methods {
    (transport: $transport:ident, pages: $pages:ident, calls: async .await) => {
        $crate::api::api_methods!(@methods $transport, $pages, async; .await);
    };
    (transport: $transport:ident, pages: $pages:ident, calls: blocking) => {
        $crate::api::api_methods!(@methods $transport, $pages, ;);
    };
    (@methods $transport:ident, $pages:ident, $($async:ident)?; $($await:tt)*) => {
        /// Client-credentials grant. With `user_token`, the new token acts for the
        /// user that token belongs to. The new tokens become current and are
        /// passed to the `on_token_refresh` callback first.
        pub $($async)? fn initialize_oauth(&self, user_token: Option<&str>) -> ::carthooks_core::Result<::carthooks_core::OAuthTokens> {
            self.grant(::carthooks_core::Grant::ClientCredentials {
                user_access_token: user_token.map(::carthooks_core::UserAccessToken::new),
            })
            $($await)*
        }

        /// Authorization-code grant: exchanges the `code` from the redirect for
        /// tokens. `code_verifier` is the [`Pkce`](crate::Pkce) verifier whose
        /// challenge went to the sign-in page (`None` when none did: then the
        /// request is the Python SDK's). A server that does not know PKCE
        /// ignores it.
        pub $($async)? fn exchange_authorization_code(
            &self,
            code: impl Into<::carthooks_core::AuthorizationCode>,
            redirect_uri: &str,
            code_verifier: Option<&$crate::PkceVerifier>,
        ) -> ::carthooks_core::Result<::carthooks_core::OAuthTokens> {
            self.grant(::carthooks_core::Grant::AuthorizationCode {
                code: code.into(),
                redirect_uri: redirect_uri.to_owned(),
                code_verifier: code_verifier.cloned(),
            })
            $($await)*
        }

        /// Refresh grant, with `refresh_token` if given, else the latest known one
        /// (the configured one until the server issues a new one).
        pub $($async)? fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> ::carthooks_core::Result<::carthooks_core::OAuthTokens> {
            let grant = self.inner.engine.refresh_grant(refresh_token)?;
            self.grant(grant) $($await)*
        }

        /// The `Authorization` header value the next call would carry, when the
        /// current token is fresh (no refresh due); `None` otherwise. For callers
        /// that must authenticate a request of their own with the same token.
        ///
        /// # Security warning
        ///
        /// The value grants access; it is marked sensitive (hidden from `Debug`).
        /// Do not log it.
        pub fn current_authorization(&self) -> Option<::http::HeaderValue> {
            self.inner
                .engine
                .ready_bearer(self.inner.now().unix)
                .map(::carthooks_core::Bearer::into_header)
        }

        /// The last failure of the token store (a save that failed, or a store
        /// that could not be read at build), if any. The tokens were kept in
        /// memory either way.
        pub fn token_store_failure(&self) -> Option<$crate::store::TokenStoreFailure> {
            self.inner.persistence.failure()
        }

        /// Counters of the client's DNS cache (hits, lookups, failures, stale
        /// answers served, entries).
        pub fn dns_cache_stats(&self) -> $crate::dns::DnsCacheStats {
            self.inner.shared.dns.stats()
        }

        /// Forgets every cached DNS answer.
        pub fn clear_dns_cache(&self) {
            self.inner.shared.dns.clear();
        }

        /// The current token set, if any.
        pub fn get_current_tokens(&self) -> Option<::carthooks_core::OAuthTokens> {
            self.inner.engine.current_tokens()
        }

        /// Asks for an authorization code on behalf of the user the current token
        /// acts for (`POST /api/oauth/get-authorize-code`).
        pub $($async)? fn get_oauth_authorize_code(
            &self,
            request: &::carthooks_core::OAuthAuthorizeCodeRequest,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::AuthorizeCodeResponse>> {
            self.execute(&::carthooks_core::Endpoint::get_oauth_authorize_code(request)?) $($await)*
        }

        /// The user the current token acts for (`GET /v1/me`).
        pub $($async)? fn get_current_user(&self) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::UserInfo>> {
            self.execute(&::carthooks_core::Endpoint::get_current_user()) $($await)*
        }

        /// One page of items, as JSON values.
        pub $($async)? fn get_items(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            query: &::carthooks_core::ItemsQuery,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<Vec<::serde_json::Value>>> {
            // `execute` itself, not `get_items_as`: an async layer more would
            // hold (and move) the call's whole future once more.
            self.execute(&::carthooks_core::Endpoint::get_items(app_id, collection_id, query)) $($await)*
        }

        /// One page of items, decoded as `T`.
        pub $($async)? fn get_items_as<I: ::serde::de::DeserializeOwned>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            query: &::carthooks_core::ItemsQuery,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<Vec<I>>> {
            self.execute(&::carthooks_core::Endpoint::get_items(app_id, collection_id, query)) $($await)*
        }

        /// Creates an item from `data` (sent as `{"data": data}`).
        pub $($async)? fn create_item<D: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            data: &D,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::create_item(app_id, collection_id, data)?) $($await)*
        }

        /// Creates an item, decoding the answer as `T`.
        pub $($async)? fn create_item_as<I: ::serde::de::DeserializeOwned, D: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            data: &D,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<I>> {
            self.execute(&::carthooks_core::Endpoint::create_item(app_id, collection_id, data)?) $($await)*
        }

        /// Every item matching `query`, fetched lazily page by page (the page
        /// size is the query's limit), as JSON values. Errors are yielded as
        /// items and end the walk.
        pub fn all_items(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            query: &::carthooks_core::ItemsQuery,
        ) -> $pages<$transport, ::serde_json::Value> {
            $pages::new(self.clone(), app_id.into(), collection_id.into(), query.clone())
        }

        /// Like [`all_items`](Self::all_items), decoding each item as `I`.
        pub fn all_items_as<I: ::serde::de::DeserializeOwned>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            query: &::carthooks_core::ItemsQuery,
        ) -> $pages<$transport, I> {
            $pages::new(self.clone(), app_id.into(), collection_id.into(), query.clone())
        }

        /// One item, as a JSON value; `fields` limits the fields returned
        /// (empty: all).
        pub $($async)? fn get_item(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            fields: &[&str],
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::get_item(app_id, collection_id, item_id, fields)) $($await)*
        }

        /// One item, decoded as `I`.
        pub $($async)? fn get_item_as<I: ::serde::de::DeserializeOwned>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            fields: &[&str],
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<I>> {
            self.execute(&::carthooks_core::Endpoint::get_item(app_id, collection_id, item_id, fields)) $($await)*
        }

        /// Updates an item's fields from `data` (sent as `{"data": data}`).
        pub $($async)? fn update_item<D: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            data: &D,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::update_item(app_id, collection_id, item_id, data)?) $($await)*
        }

        /// Deletes an item.
        pub $($async)? fn delete_item(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::delete_item(app_id, collection_id, item_id)) $($await)*
        }

        /// Locks an item (default timeout 600 s); others cannot lock, update or
        /// delete it until it is unlocked or the lock lapses.
        pub $($async)? fn lock_item(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            options: &::carthooks_core::LockOptions,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::ItemLock>> {
            self.execute(&::carthooks_core::Endpoint::lock_item(app_id, collection_id, item_id, options)?) $($await)*
        }

        /// Releases the lock `lock_id` of an item.
        pub $($async)? fn unlock_item(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            lock_id: &str,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::ItemLock>> {
            self.execute(&::carthooks_core::Endpoint::unlock_item(app_id, collection_id, item_id, lock_id)?) $($await)*
        }

        /// Adds a row to a sub-form field of an item.
        pub $($async)? fn create_sub_item<D: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            field_id: impl Into<::carthooks_core::FieldId>,
            data: &D,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::create_sub_item(app_id, collection_id, item_id, field_id, data)?)
                $($await)*
        }

        /// Updates a row of a sub-form field.
        pub $($async)? fn update_sub_item<D: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            field_id: impl Into<::carthooks_core::FieldId>,
            sub_item_id: impl Into<::carthooks_core::SubItemId>,
            data: &D,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::update_sub_item(
                app_id, collection_id, item_id, field_id, sub_item_id, data,
            )?)
            $($await)*
        }

        /// Deletes a row of a sub-form field.
        pub $($async)? fn delete_sub_item(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            field_id: impl Into<::carthooks_core::FieldId>,
            sub_item_id: impl Into<::carthooks_core::SubItemId>,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::delete_sub_item(
                app_id, collection_id, item_id, field_id, sub_item_id,
            ))
            $($await)*
        }

        /// A token with which an anonymous form can submit one item to the
        /// collection; `options` is sent as the body (e.g. `{"expire": 3600}`).
        pub $($async)? fn get_submission_token<O: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            options: &O,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::get_submission_token(app_id, collection_id, options)?) $($await)*
        }

        /// A token with which an anonymous form can update one item.
        pub $($async)? fn update_submission_token<O: ::serde::Serialize + ?Sized>(
            &self,
            app_id: impl Into<::carthooks_core::AppId>,
            collection_id: impl Into<::carthooks_core::CollectionId>,
            item_id: impl Into<::carthooks_core::ItemId>,
            options: &O,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::update_submission_token(app_id, collection_id, item_id, options)?)
                $($await)*
        }

        /// Credentials for uploading a file.
        pub $($async)? fn get_upload_token(&self) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::get_upload_token()) $($await)*
        }

        /// A user by id (`GET /v1/users/{id}`).
        pub $($async)? fn get_user(&self, user_id: impl Into<::carthooks_core::UserId>) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::UserInfo>> {
            self.execute(&::carthooks_core::Endpoint::get_user(user_id)) $($await)*
        }

        /// The user a user access token belongs to (`GET /v1/user-token/{token}`).
        pub $($async)? fn get_user_by_token(&self, user_token: &str) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::carthooks_core::UserInfo>> {
            self.execute(&::carthooks_core::Endpoint::get_user_by_token(&::carthooks_core::UserAccessToken::new(user_token))) $($await)*
        }

        /// Starts delivering a collection's changes to an SQS queue.
        pub $($async)? fn start_watch_data(
            &self,
            request: &::carthooks_core::WatchDataRequest,
        ) -> ::carthooks_core::Result<::carthooks_core::ApiResponse<::serde_json::Value>> {
            self.execute(&::carthooks_core::Endpoint::start_watch_data(request)?) $($await)*
        }

        /// A new session: a client value acting for an identity of its own (no
        /// tokens yet) over this client's transport and connection pool. Sign
        /// it in with a grant, e.g. `exchange_authorization_code`; this
        /// client's tokens are not touched. Opens no connection. See
        /// [the session docs](crate::session).
        pub fn session(&self) -> Self {
            Self { inner: self.inner.empty_session() }
        }

        /// Builds a session that starts from tokens kept elsewhere, or saves
        /// its tokens to a store or hands them to a callback. See
        /// [the session docs](crate::session).
        pub fn session_builder(&self) -> $crate::session::SessionBuilder<Self> {
            $crate::session::SessionBuilder::new(self.clone())
        }

        /// Marks the client (this session) closed: every later call fails with
        /// [`Error::Closed`](carthooks_core::Error::Closed). Other sessions of the same client stay open.
        /// Connections are released when the last clone of the last session is
        /// dropped.
        pub fn close(&self) {
            self.inner.closed.store(true, ::std::sync::atomic::Ordering::Release);
        }

        /// True after [`close`](Self::close).
        pub fn is_closed(&self) -> bool {
            self.inner.closed.load(::std::sync::atomic::Ordering::Acquire)
        }

        /// The call settings in use.
        pub fn config(&self) -> &::carthooks_core::ClientConfig {
            &self.inner.shared.config
        }

        /// The connection settings the transport was built with (or would have
        /// been: a transport of your own has its own).
        pub fn transport_config(&self) -> &$crate::TransportConfig {
            &self.inner.shared.transport_config
        }

        fn check_open(&self) -> ::carthooks_core::Result<()> {
            if self.is_closed() { Err(::carthooks_core::Error::Closed) } else { Ok(()) }
        }
    };
}

/// The impls both clients have alike, for `$client<T>` with its transport
/// bound: `Clone` (one `Arc`), `Debug` (the call settings only),
/// [`BuildClient`](crate::BuildClient) and the sessions' access to the state.
macro_rules! client_impls {
    (client: $client:ident, transport: $bound:path) => {
        impl<T> ::std::clone::Clone for $client<T> {
            fn clone(&self) -> Self {
                Self {
                    inner: ::std::sync::Arc::clone(&self.inner),
                }
            }
        }

        impl<T> ::std::fmt::Debug for $client<T> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($client))
                    .field("config", &self.inner.shared.config)
                    .finish_non_exhaustive()
            }
        }

        impl<T: $bound> $crate::BuildClient for $client<T> {
            type Transport = T;
            fn from_parts(parts: $crate::Parts<T>) -> Self {
                Self { inner: parts.0 }
            }
        }

        impl<T> $crate::session::SessionHost<T> for $client<T> {
            fn inner(&self) -> &::std::sync::Arc<$crate::runtime::Session<T>> {
                &self.inner
            }
            fn from_inner(inner: ::std::sync::Arc<$crate::runtime::Session<T>>) -> Self {
                Self { inner }
            }
        }
    };
}

pub(crate) use {api_methods, client_impls};
