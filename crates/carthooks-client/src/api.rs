//! The API methods, written once for both clients.
//!
//! Each method only picks an [`Endpoint`](carthooks_core::Endpoint) and hands it
//! to the client's `execute`; the macro stamps the list out as `async fn`s on
//! [`Client`](crate::Client) and as plain `fn`s on
//! [`BlockingClient`](crate::BlockingClient), so the two cannot drift apart. It
//! carries no logic: every decision is made by the sans-IO driver
//! ([`carthooks_core::Call`]), which each client runs in a short loop (`drive`).

macro_rules! api_methods {
    ($($async:ident)?; $pages:ident; $($await:tt)*) => {
        /// Client-credentials grant. With `user_token`, the new token acts for the
        /// user that token belongs to. The new tokens become current and are
        /// passed to the `on_token_refresh` callback first.
        pub $($async)? fn initialize_oauth(&self, user_token: Option<&str>) -> Result<OAuthTokens> {
            self.grant(Grant::ClientCredentials {
                user_access_token: user_token.map(UserAccessToken::new),
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
            code: impl Into<AuthorizationCode>,
            redirect_uri: &str,
            code_verifier: Option<&crate::PkceVerifier>,
        ) -> Result<OAuthTokens> {
            self.grant(Grant::AuthorizationCode {
                code: code.into(),
                redirect_uri: redirect_uri.to_owned(),
                code_verifier: code_verifier.cloned(),
            })
            $($await)*
        }

        /// Refresh grant, with `refresh_token` if given, else the latest known one
        /// (the configured one until the server issues a new one).
        pub $($async)? fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens> {
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
        pub fn current_authorization(&self) -> Option<http::HeaderValue> {
            self.inner
                .engine
                .ready_bearer(self.inner.now().unix)
                .map(Bearer::into_header)
        }

        /// The last failure of the token store (a save that failed, or a store
        /// that could not be read at build), if any. The tokens were kept in
        /// memory either way.
        pub fn token_store_failure(&self) -> Option<crate::store::TokenStoreFailure> {
            self.inner.persistence.failure()
        }

        /// Counters of the client's DNS cache (hits, lookups, failures, stale
        /// answers served, entries).
        pub fn dns_cache_stats(&self) -> crate::dns::DnsCacheStats {
            self.inner.shared.dns.stats()
        }

        /// Forgets every cached DNS answer.
        pub fn clear_dns_cache(&self) {
            self.inner.shared.dns.clear();
        }

        /// The current token set, if any.
        pub fn get_current_tokens(&self) -> Option<OAuthTokens> {
            self.inner.engine.current_tokens()
        }

        /// Asks for an authorization code on behalf of the user the current token
        /// acts for (`POST /api/oauth/get-authorize-code`).
        pub $($async)? fn get_oauth_authorize_code(
            &self,
            request: &OAuthAuthorizeCodeRequest,
        ) -> Result<ApiResponse<AuthorizeCodeResponse>> {
            self.execute(&Endpoint::get_oauth_authorize_code(request)?) $($await)*
        }

        /// The user the current token acts for (`GET /v1/me`).
        pub $($async)? fn get_current_user(&self) -> Result<ApiResponse<UserInfo>> {
            self.execute(&Endpoint::get_current_user()) $($await)*
        }

        /// One page of items, as JSON values.
        pub $($async)? fn get_items(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            query: &ItemsQuery,
        ) -> Result<ApiResponse<Vec<serde_json::Value>>> {
            self.get_items_as(app_id, collection_id, query) $($await)*
        }

        /// One page of items, decoded as `T`.
        pub $($async)? fn get_items_as<I: DeserializeOwned>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            query: &ItemsQuery,
        ) -> Result<ApiResponse<Vec<I>>> {
            self.execute(&Endpoint::get_items(app_id, collection_id, query)) $($await)*
        }

        /// Creates an item from `data` (sent as `{"data": data}`).
        pub $($async)? fn create_item<D: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.create_item_as(app_id, collection_id, data) $($await)*
        }

        /// Creates an item, decoding the answer as `T`.
        pub $($async)? fn create_item_as<I: DeserializeOwned, D: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            data: &D,
        ) -> Result<ApiResponse<I>> {
            self.execute(&Endpoint::create_item(app_id, collection_id, data)?) $($await)*
        }

        /// Every item matching `query`, fetched lazily page by page (the page
        /// size is the query's limit), as JSON values. Errors are yielded as
        /// items and end the walk.
        pub fn all_items(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            query: &ItemsQuery,
        ) -> $pages<T, serde_json::Value> {
            $pages::new(self.clone(), app_id.into(), collection_id.into(), query.clone())
        }

        /// Like [`all_items`](Self::all_items), decoding each item as `I`.
        pub fn all_items_as<I: DeserializeOwned>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            query: &ItemsQuery,
        ) -> $pages<T, I> {
            $pages::new(self.clone(), app_id.into(), collection_id.into(), query.clone())
        }

        /// One item, as a JSON value; `fields` limits the fields returned
        /// (empty: all).
        pub $($async)? fn get_item(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            fields: &[&str],
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.get_item_as(app_id, collection_id, item_id, fields) $($await)*
        }

        /// One item, decoded as `I`.
        pub $($async)? fn get_item_as<I: DeserializeOwned>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            fields: &[&str],
        ) -> Result<ApiResponse<I>> {
            self.execute(&Endpoint::get_item(app_id, collection_id, item_id, fields)) $($await)*
        }

        /// Updates an item's fields from `data` (sent as `{"data": data}`).
        pub $($async)? fn update_item<D: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::update_item(app_id, collection_id, item_id, data)?) $($await)*
        }

        /// Deletes an item.
        pub $($async)? fn delete_item(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::delete_item(app_id, collection_id, item_id)) $($await)*
        }

        /// Locks an item (default timeout 600 s); others cannot lock, update or
        /// delete it until it is unlocked or the lock lapses.
        pub $($async)? fn lock_item(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            options: &LockOptions,
        ) -> Result<ApiResponse<ItemLock>> {
            self.execute(&Endpoint::lock_item(app_id, collection_id, item_id, options)?) $($await)*
        }

        /// Releases the lock `lock_id` of an item.
        pub $($async)? fn unlock_item(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            lock_id: &str,
        ) -> Result<ApiResponse<ItemLock>> {
            self.execute(&Endpoint::unlock_item(app_id, collection_id, item_id, lock_id)?) $($await)*
        }

        /// Adds a row to a sub-form field of an item.
        pub $($async)? fn create_sub_item<D: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            field_id: impl Into<FieldId>,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::create_sub_item(app_id, collection_id, item_id, field_id, data)?)
                $($await)*
        }

        /// Updates a row of a sub-form field.
        pub $($async)? fn update_sub_item<D: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            field_id: impl Into<FieldId>,
            sub_item_id: impl Into<SubItemId>,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::update_sub_item(
                app_id, collection_id, item_id, field_id, sub_item_id, data,
            )?)
            $($await)*
        }

        /// Deletes a row of a sub-form field.
        pub $($async)? fn delete_sub_item(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            field_id: impl Into<FieldId>,
            sub_item_id: impl Into<SubItemId>,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::delete_sub_item(
                app_id, collection_id, item_id, field_id, sub_item_id,
            ))
            $($await)*
        }

        /// A token with which an anonymous form can submit one item to the
        /// collection; `options` is sent as the body (e.g. `{"expire": 3600}`).
        pub $($async)? fn get_submission_token<O: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            options: &O,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::get_submission_token(app_id, collection_id, options)?) $($await)*
        }

        /// A token with which an anonymous form can update one item.
        pub $($async)? fn update_submission_token<O: Serialize + ?Sized>(
            &self,
            app_id: impl Into<AppId>,
            collection_id: impl Into<CollectionId>,
            item_id: impl Into<ItemId>,
            options: &O,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::update_submission_token(app_id, collection_id, item_id, options)?)
                $($await)*
        }

        /// Credentials for uploading a file.
        pub $($async)? fn get_upload_token(&self) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::get_upload_token()) $($await)*
        }

        /// A user by id (`GET /v1/users/{id}`).
        pub $($async)? fn get_user(&self, user_id: impl Into<UserId>) -> Result<ApiResponse<UserInfo>> {
            self.execute(&Endpoint::get_user(user_id)) $($await)*
        }

        /// The user a user access token belongs to (`GET /v1/user-token/{token}`).
        pub $($async)? fn get_user_by_token(&self, user_token: &str) -> Result<ApiResponse<UserInfo>> {
            self.execute(&Endpoint::get_user_by_token(&UserAccessToken::new(user_token))) $($await)*
        }

        /// Starts delivering a collection's changes to an SQS queue.
        pub $($async)? fn start_watch_data(
            &self,
            request: &WatchDataRequest,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::start_watch_data(request)?) $($await)*
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
        pub fn session_builder(&self) -> SessionBuilder<Self> {
            SessionBuilder::new(self.clone())
        }

        /// Marks the client (this session) closed: every later call fails with
        /// [`Error::Closed`]. Other sessions of the same client stay open.
        /// Connections are released when the last clone of the last session is
        /// dropped.
        pub fn close(&self) {
            self.inner.closed.store(true, Ordering::Release);
        }

        /// True after [`close`](Self::close).
        pub fn is_closed(&self) -> bool {
            self.inner.closed.load(Ordering::Acquire)
        }

        /// The call settings in use.
        pub fn config(&self) -> &ClientConfig {
            &self.inner.shared.config
        }

        /// The connection settings the transport was built with (or would have
        /// been: a transport of your own has its own).
        pub fn transport_config(&self) -> &crate::TransportConfig {
            &self.inner.shared.transport_config
        }

        fn check_open(&self) -> Result<()> {
            if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
        }
    };
}

pub(crate) use api_methods;
