//! The API methods, written once for both clients.
//!
//! Each method only picks an [`Endpoint`](carthooks_core::Endpoint) and hands it
//! to the client's `execute`; the macro stamps the list out as `async fn`s on
//! [`Client`](crate::Client) and as plain `fn`s on
//! [`BlockingClient`](crate::BlockingClient), so the two cannot drift apart.
//!
//! The engine — get a bearer token (refreshing single-flight), send, replay once
//! after a 401 — is stamped out the same way by `engine_methods!`: the two
//! clients differ only in `.await` versus nothing after a send, and `.await`
//! versus `.wait()` when waiting for a token request in flight.

macro_rules! engine_methods {
    ($($async:ident)?; [$($await:tt)*]) => {
        /// Executes any endpoint description: authorizes (refreshing first if the
        /// token machine says so), sends, and on a 401 invalidates the token,
        /// refreshes and replays once.
        pub $($async)? fn execute<R: DeserializeOwned>(
            &self,
            endpoint: &Endpoint<R>,
        ) -> Result<ApiResponse<R>> {
            self.check_open()?;
            let deadline = self.deadline();
            let span = CallSpan::new(endpoint.operation(), endpoint.method(), endpoint.path_template());
            let mut replayed = false;
            let mut attempts = 0;
            loop {
                let bearer = match self.bearer(deadline) $($await)* {
                    Ok(bearer) => bearer,
                    Err(e) => return Err(endpoint.redact(e)),
                };
                let base = self.inner.auth.base();
                let kind = RequestKind::Api { idempotent: endpoint.is_idempotent() };
                // Built afresh for each attempt: no copy on the common path.
                let make = || endpoint.to_request(base, Some(bearer.header()));
                let (response, n) = self.send_with_retry(make, kind, deadline) $($await)*;
                attempts += n;
                span.attempts(attempts);
                let response = match response {
                    Ok(response) => response,
                    Err(e) => return Err(endpoint.redact(self.inner.auth.redact(e))),
                };
                if response.status() == http::StatusCode::UNAUTHORIZED
                    && !replayed
                    && self.inner.auth.unauthorized(&bearer)
                {
                    replayed = true;
                    continue;
                }
                let parsed = endpoint
                    .parse_response(&response)
                    .map_err(|e| endpoint.redact(self.inner.auth.redact(e)));
                let trace_id = match &parsed {
                    Ok(ok) => ok.trace_id.as_deref(),
                    Err(e) => e.trace_id(),
                };
                span.outcome(response.status().as_u16(), trace_id);
                return parsed;
            }
        }

        /// When the call must be over, if `call_timeout` is set.
        fn deadline(&self) -> Option<Instant> {
            self.inner.config.call_timeout.and_then(|t| Instant::now().checked_add(t))
        }

        /// Sends `request`, again while the retry policy (and the call's deadline)
        /// allow; a failure after a non-idempotent request may have arrived is
        /// `Error::OutcomeUnknown`. Also returns how many attempts were made.
        $($async)? fn send_with_retry(
            &self,
            make: impl Fn() -> Result<HttpRequest>,
            kind: RequestKind,
            deadline: Option<Instant>,
        ) -> (Result<HttpResponse>, u32) {
            let policy = self.inner.config.retry;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut request = match make() {
                    Ok(request) => request,
                    Err(e) => return (Err(e), attempt - 1),
                };
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return (Err(call_timeout_error()), attempt - 1);
                    }
                    request
                        .extensions_mut()
                        .insert(RequestTimeout(left.min(self.inner.config.timeout)));
                }
                let result = match self.inner.transport.send(request) $($await)* {
                    // Success is never retried: skip the policy (and its clock and
                    // random number) on the common path.
                    Ok(response) if response.status().is_success() => return (Ok(response), attempt),
                    other => other,
                };
                let outcome = match &result {
                    Ok(response) => Attempt::Answered(response),
                    Err(e) => Attempt::Failed(e),
                };
                let now = self.inner.auth.now();
                let delay = match policy.decide(attempt, kind, outcome, now, self.inner.jitter.next()) {
                    // A wait that would end past the deadline is not started.
                    RetryDecision::RetryAfter(delay)
                        if deadline.is_none_or(|d| Instant::now() + delay < d) => Some(delay),
                    _ => None,
                };
                match delay {
                    Some(delay) => {
                        event!(
                            debug,
                            attempt,
                            delay_ms = delay.as_millis() as u64,
                            status = result.as_ref().ok().map(|r| r.status().as_u16()),
                            "retrying"
                        );
                        self.inner.transport.sleep(delay) $($await)*;
                    }
                    None => {
                        let result = result.map_err(|e| {
                            if carthooks_core::retry::outcome_unknown(kind, &e) {
                                Error::OutcomeUnknown(e)
                            } else {
                                Error::Transport(e)
                            }
                        });
                        return (result, attempt);
                    }
                }
            }
        }

        /// The token for the next call, after any refresh the machine asks for.
        $($async)? fn bearer(&self, deadline: Option<Instant>) -> Result<Bearer> {
            let mut waited = None;
            loop {
                match self.inner.auth.poll(waited)? {
                    Step::Ready(bearer) => return Ok(bearer),
                    Step::Fetch { ticket, flight, request, fallback } => {
                        let make = || Ok(clone_request(&request));
                        let (answer, _) = self.send_with_retry(make, RequestKind::Token, deadline) $($await)*;
                        match (self.finish_grant(flight, answer) $($await)*, fallback) {
                            (Ok((bearer, _)), _) => return Ok(bearer),
                            // The refresh failed but the current token is still valid.
                            (Err(_), Some(bearer)) => return Ok(bearer),
                            // Poll as a waiter of our own flight: the failure comes
                            // back, unless another grant can take over.
                            (Err(_), None) => waited = Some(ticket),
                        }
                    }
                    Step::Wait(listener, ticket) => {
                        if !self.wait_until(listener, deadline) $($await)* {
                            return Err(call_timeout_error());
                        }
                        waited = Some(ticket);
                    }
                }
            }
        }

        /// Ends a flight: the answer to the machine, the tokens to the store
        /// (blocking work, off the executor), then into use, then to the callback
        /// (outside every lock: it may call the client).
        $($async)? fn finish_grant(
            &self,
            flight: Flight<'_>,
            answer: Result<HttpResponse>,
        ) -> Result<(Bearer, OAuthTokens)> {
            let pending = self.inner.auth.handle(flight, answer)?;
            if let Some(job) = self.inner.auth.save_job(&pending) {
                self.run_blocking(job) $($await)*;
            }
            let committed = self.inner.auth.commit(pending)?;
            if let Some(job) = self.inner.auth.deliver_job() {
                self.run_blocking(job) $($await)*;
            }
            Ok(committed)
        }

        /// Runs an explicit grant, after any token request already in flight.
        $($async)? fn grant(&self, grant: Grant) -> Result<OAuthTokens> {
            self.check_open()?;
            let deadline = self.deadline();
            loop {
                match self.inner.auth.begin_grant(grant.clone())? {
                    GrantStep::Fetch { flight, request } => {
                        let make = || Ok(clone_request(&request));
                        let (answer, _) = self.send_with_retry(make, RequestKind::Token, deadline) $($await)*;
                        return self.finish_grant(flight, answer) $($await)*.map(|(_, tokens)| tokens);
                    }
                    GrantStep::Wait(listener) => {
                        if !self.wait_until(listener, deadline) $($await)* {
                            return Err(call_timeout_error());
                        }
                    }
                }
            }
        }
    };
}

/// The error of a call whose `call_timeout` ran out before (another) attempt.
pub(crate) fn call_timeout_error() -> carthooks_core::Error {
    carthooks_core::Error::Transport(
        carthooks_core::TransportError::new(carthooks_core::TransportErrorKind::Timeout)
            .with_detail("call_timeout elapsed before the call could complete")
            .mark_never_sent(),
    )
}

pub(crate) use engine_methods;

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

        /// Authorization-code grant: exchanges the `code` from the redirect for tokens.
        pub $($async)? fn exchange_authorization_code(
            &self,
            code: impl Into<AuthorizationCode>,
            redirect_uri: &str,
        ) -> Result<OAuthTokens> {
            self.grant(Grant::AuthorizationCode {
                code: code.into(),
                redirect_uri: redirect_uri.to_owned(),
            })
            $($await)*
        }

        /// Refresh grant, with `refresh_token` if given, else the latest known one
        /// (the configured one until the server issues a new one).
        pub $($async)? fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens> {
            let grant = self.inner.auth.refresh_grant(refresh_token)?;
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
            self.inner.auth.ready_bearer().map(Bearer::into_header)
        }

        /// The last failure of the token store (a save that failed, or a store
        /// that could not be read at build), if any. The tokens were kept in
        /// memory either way.
        pub fn token_store_failure(&self) -> Option<crate::store::TokenStoreFailure> {
            self.inner.auth.store_failure()
        }

        /// Counters of the client's DNS cache (hits, lookups, failures, stale
        /// answers served, entries).
        pub fn dns_cache_stats(&self) -> crate::dns::DnsCacheStats {
            self.inner.dns.stats()
        }

        /// Forgets every cached DNS answer.
        pub fn clear_dns_cache(&self) {
            self.inner.dns.clear();
        }

        /// The current token set, if any.
        pub fn get_current_tokens(&self) -> Option<OAuthTokens> {
            self.inner.auth.current_tokens()
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
            app_id: u64,
            collection_id: u64,
            query: &ItemsQuery,
        ) -> Result<ApiResponse<Vec<serde_json::Value>>> {
            self.get_items_as(app_id, collection_id, query) $($await)*
        }

        /// One page of items, decoded as `T`.
        pub $($async)? fn get_items_as<I: DeserializeOwned>(
            &self,
            app_id: u64,
            collection_id: u64,
            query: &ItemsQuery,
        ) -> Result<ApiResponse<Vec<I>>> {
            self.execute(&Endpoint::get_items(app_id, collection_id, query)) $($await)*
        }

        /// Creates an item from `data` (sent as `{"data": data}`).
        pub $($async)? fn create_item<D: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.create_item_as(app_id, collection_id, data) $($await)*
        }

        /// Creates an item, decoding the answer as `T`.
        pub $($async)? fn create_item_as<I: DeserializeOwned, D: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            data: &D,
        ) -> Result<ApiResponse<I>> {
            self.execute(&Endpoint::create_item(app_id, collection_id, data)?) $($await)*
        }

        /// Every item matching `query`, fetched lazily page by page (the page
        /// size is the query's limit), as JSON values. Errors are yielded as
        /// items and end the walk.
        pub fn all_items(
            &self,
            app_id: u64,
            collection_id: u64,
            query: &ItemsQuery,
        ) -> $pages<T, serde_json::Value> {
            $pages::new(self.clone(), app_id, collection_id, query.clone())
        }

        /// Like [`all_items`](Self::all_items), decoding each item as `I`.
        pub fn all_items_as<I: DeserializeOwned>(
            &self,
            app_id: u64,
            collection_id: u64,
            query: &ItemsQuery,
        ) -> $pages<T, I> {
            $pages::new(self.clone(), app_id, collection_id, query.clone())
        }

        /// One item, as a JSON value; `fields` limits the fields returned
        /// (empty: all).
        pub $($async)? fn get_item(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            fields: &[&str],
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.get_item_as(app_id, collection_id, item_id, fields) $($await)*
        }

        /// One item, decoded as `I`.
        pub $($async)? fn get_item_as<I: DeserializeOwned>(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            fields: &[&str],
        ) -> Result<ApiResponse<I>> {
            self.execute(&Endpoint::get_item(app_id, collection_id, item_id, fields)) $($await)*
        }

        /// Updates an item's fields from `data` (sent as `{"data": data}`).
        pub $($async)? fn update_item<D: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::update_item(app_id, collection_id, item_id, data)?) $($await)*
        }

        /// Deletes an item.
        pub $($async)? fn delete_item(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::delete_item(app_id, collection_id, item_id)) $($await)*
        }

        /// Locks an item (default timeout 600 s); others cannot lock, update or
        /// delete it until it is unlocked or the lock lapses.
        pub $($async)? fn lock_item(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            options: &LockOptions,
        ) -> Result<ApiResponse<ItemLock>> {
            self.execute(&Endpoint::lock_item(app_id, collection_id, item_id, options)?) $($await)*
        }

        /// Releases the lock `lock_id` of an item.
        pub $($async)? fn unlock_item(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            lock_id: &str,
        ) -> Result<ApiResponse<ItemLock>> {
            self.execute(&Endpoint::unlock_item(app_id, collection_id, item_id, lock_id)?) $($await)*
        }

        /// Adds a row to a sub-form field of an item.
        pub $($async)? fn create_sub_item<D: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            field_id: u64,
            data: &D,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::create_sub_item(app_id, collection_id, item_id, field_id, data)?)
                $($await)*
        }

        /// Updates a row of a sub-form field.
        pub $($async)? fn update_sub_item<D: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            field_id: u64,
            sub_item_id: u64,
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
            app_id: u64,
            collection_id: u64,
            item_id: u64,
            field_id: u64,
            sub_item_id: u64,
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
            app_id: u64,
            collection_id: u64,
            options: &O,
        ) -> Result<ApiResponse<serde_json::Value>> {
            self.execute(&Endpoint::get_submission_token(app_id, collection_id, options)?) $($await)*
        }

        /// A token with which an anonymous form can update one item.
        pub $($async)? fn update_submission_token<O: Serialize + ?Sized>(
            &self,
            app_id: u64,
            collection_id: u64,
            item_id: u64,
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
        pub $($async)? fn get_user(&self, user_id: u64) -> Result<ApiResponse<UserInfo>> {
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

        /// Marks the client closed: every later call fails with [`Error::Closed`].
        /// Connections are released when the last clone is dropped.
        pub fn close(&self) {
            self.inner.closed.store(true, Ordering::Release);
        }

        /// True after [`close`](Self::close).
        pub fn is_closed(&self) -> bool {
            self.inner.closed.load(Ordering::Acquire)
        }

        /// The client configuration in use.
        pub fn config(&self) -> &ClientConfig {
            &self.inner.config
        }

        fn check_open(&self) -> Result<()> {
            if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
        }
    };
}

pub(crate) use api_methods;
