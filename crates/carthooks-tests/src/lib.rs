//! The SDK's behavioural suite, written once and run once per backend.
//!
//! Every test is a generic function over [`Sdk`], an adapter that gives the async
//! client (reqwest, driven on a tokio runtime) and the blocking client (ureq) the
//! same shape. `tests/reqwest.rs` and `tests/ureq.rs` instantiate the whole list
//! with [`suite!`]; the functions talk to a [`MockServer`] started on `127.0.0.1:0`
//! by the test itself, over real sockets.

#![allow(missing_docs)]

pub mod canned;
pub mod suite;

use std::sync::{Arc, Mutex};

use carthooks_core::{
    ApiResponse, AuthorizeCodeResponse, ItemsQuery, ManualClock, OAuthAuthorizeCodeRequest,
    OAuthConfig, OAuthTokens, Result, UserInfo,
};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, MockServer};
use carthooks_oauth::ClientBuilder;

/// The client operations the suite uses, in blocking form.
pub trait Sdk: Clone + Send + Sync + Sized + 'static {
    /// Backend name, for messages.
    const NAME: &'static str;
    /// The client type the builder makes.
    type Client: carthooks_oauth::BuildClient + std::fmt::Debug;
    /// Wraps a built client.
    fn wrap(client: Self::Client) -> Self;

    fn initialize_oauth(&self, user_token: Option<&str>) -> Result<OAuthTokens>;
    fn exchange_authorization_code(&self, code: &str, redirect_uri: &str) -> Result<OAuthTokens>;
    fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens>;
    fn get_oauth_authorize_code(
        &self,
        request: &OAuthAuthorizeCodeRequest,
    ) -> Result<ApiResponse<AuthorizeCodeResponse>>;
    fn get_current_user(&self) -> Result<ApiResponse<UserInfo>>;
    fn get_current_tokens(&self) -> Option<OAuthTokens>;
    fn get_items(
        &self,
        app: u64,
        coll: u64,
        query: &ItemsQuery,
    ) -> Result<ApiResponse<Vec<serde_json::Value>>>;
    fn create_item(
        &self,
        app: u64,
        coll: u64,
        data: &serde_json::Value,
    ) -> Result<ApiResponse<serde_json::Value>>;
    fn close(&self);
    /// `n` concurrent `get_current_user` calls (tasks or threads), all results.
    fn concurrent_current_user(&self, n: usize) -> Vec<Result<ApiResponse<UserInfo>>>;
}

/// The async client over reqwest, each call driven to completion on a runtime.
#[derive(Clone)]
pub struct ReqwestSdk {
    client: carthooks_reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Sdk for ReqwestSdk {
    const NAME: &'static str = "reqwest";
    type Client = carthooks_reqwest::Client;

    fn wrap(client: Self::Client) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        Self {
            client,
            runtime: Arc::new(runtime),
        }
    }

    fn initialize_oauth(&self, user_token: Option<&str>) -> Result<OAuthTokens> {
        self.runtime
            .block_on(self.client.initialize_oauth(user_token))
    }
    fn exchange_authorization_code(&self, code: &str, redirect_uri: &str) -> Result<OAuthTokens> {
        self.runtime
            .block_on(self.client.exchange_authorization_code(code, redirect_uri))
    }
    fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens> {
        self.runtime
            .block_on(self.client.refresh_oauth_token(refresh_token))
    }
    fn get_oauth_authorize_code(
        &self,
        request: &OAuthAuthorizeCodeRequest,
    ) -> Result<ApiResponse<AuthorizeCodeResponse>> {
        self.runtime
            .block_on(self.client.get_oauth_authorize_code(request))
    }
    fn get_current_user(&self) -> Result<ApiResponse<UserInfo>> {
        self.runtime.block_on(self.client.get_current_user())
    }
    fn get_current_tokens(&self) -> Option<OAuthTokens> {
        self.client.get_current_tokens()
    }
    fn get_items(
        &self,
        app: u64,
        coll: u64,
        query: &ItemsQuery,
    ) -> Result<ApiResponse<Vec<serde_json::Value>>> {
        self.runtime
            .block_on(self.client.get_items(app, coll, query))
    }
    fn create_item(
        &self,
        app: u64,
        coll: u64,
        data: &serde_json::Value,
    ) -> Result<ApiResponse<serde_json::Value>> {
        self.runtime
            .block_on(self.client.create_item(app, coll, data))
    }
    fn close(&self) {
        self.client.close();
    }
    fn concurrent_current_user(&self, n: usize) -> Vec<Result<ApiResponse<UserInfo>>> {
        self.runtime.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let c = self.client.clone();
                    tokio::spawn(async move { c.get_current_user().await })
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for t in tasks {
                out.push(t.await.expect("task panicked"));
            }
            out
        })
    }
}

/// The blocking client over ureq.
#[derive(Clone)]
pub struct UreqSdk(carthooks_ureq::Client);

impl Sdk for UreqSdk {
    const NAME: &'static str = "ureq";
    type Client = carthooks_ureq::Client;

    fn wrap(client: Self::Client) -> Self {
        Self(client)
    }
    fn initialize_oauth(&self, user_token: Option<&str>) -> Result<OAuthTokens> {
        self.0.initialize_oauth(user_token)
    }
    fn exchange_authorization_code(&self, code: &str, redirect_uri: &str) -> Result<OAuthTokens> {
        self.0.exchange_authorization_code(code, redirect_uri)
    }
    fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens> {
        self.0.refresh_oauth_token(refresh_token)
    }
    fn get_oauth_authorize_code(
        &self,
        request: &OAuthAuthorizeCodeRequest,
    ) -> Result<ApiResponse<AuthorizeCodeResponse>> {
        self.0.get_oauth_authorize_code(request)
    }
    fn get_current_user(&self) -> Result<ApiResponse<UserInfo>> {
        self.0.get_current_user()
    }
    fn get_current_tokens(&self) -> Option<OAuthTokens> {
        self.0.get_current_tokens()
    }
    fn get_items(
        &self,
        app: u64,
        coll: u64,
        query: &ItemsQuery,
    ) -> Result<ApiResponse<Vec<serde_json::Value>>> {
        self.0.get_items(app, coll, query)
    }
    fn create_item(
        &self,
        app: u64,
        coll: u64,
        data: &serde_json::Value,
    ) -> Result<ApiResponse<serde_json::Value>> {
        self.0.create_item(app, coll, data)
    }
    fn close(&self) {
        self.0.close();
    }
    fn concurrent_current_user(&self, n: usize) -> Vec<Result<ApiResponse<UserInfo>>> {
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let c = self.0.clone();
                let b = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    b.wait();
                    c.get_current_user()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread panicked"))
            .collect()
    }
}

/// The default OAuth configuration of the mock's registered client.
pub fn oauth() -> OAuthConfig {
    OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
}

/// A builder pointed at `server`, ignoring the environment.
pub fn builder<S: Sdk>(server: &MockServer) -> ClientBuilder<S::Client> {
    ClientBuilder::new().without_env().base_url(server.url())
}

/// A client of backend `S` for `server` with `oauth`.
pub fn client<S: Sdk>(server: &MockServer, oauth: OAuthConfig) -> S
where
    <S::Client as carthooks_oauth::BuildClient>::Transport: carthooks_oauth::Connect,
{
    S::wrap(
        builder::<S>(server)
            .oauth(oauth)
            .build()
            .expect("client builds"),
    )
}

/// A client with a manual clock, for expiry tests.
pub fn client_with_clock<S: Sdk>(server: &MockServer, oauth: OAuthConfig) -> (S, Arc<ManualClock>)
where
    <S::Client as carthooks_oauth::BuildClient>::Transport: carthooks_oauth::Connect,
{
    let clock = Arc::new(ManualClock::starting_now());
    let c = builder::<S>(server)
        .oauth(oauth)
        .clock(clock.clone())
        .build()
        .expect("client builds");
    (S::wrap(c), clock)
}

/// Collects every token set the callback sees.
pub fn recording_callback(config: OAuthConfig) -> (OAuthConfig, Arc<Mutex<Vec<OAuthTokens>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let config = config.on_token_refresh(move |t| sink.lock().unwrap().push(t.clone()));
    (config, seen)
}

/// Instantiates every suite test for one adapter type.
#[macro_export]
macro_rules! suite {
    ($sdk:ty) => {
        $crate::suite!(@tests $sdk;
            client_credentials,
            client_credentials_acting_for_a_user,
            unknown_user_token_is_invalid_grant,
            authorization_code_flow,
            authorization_code_is_single_use_and_bound_to_redirect_uri,
            manual_refresh_explicit_configured_and_current,
            auto_refresh_inside_the_window,
            expired_token_refreshes_before_the_call,
            callback_sees_rotated_refresh_token_before_use,
            used_refresh_token_is_rejected_with_typed_error,
            kept_refresh_token_when_server_omits_it,
            wrong_client_secret_is_typed_error_with_status_and_trace_id,
            concurrent_callers_on_expired_token_share_one_refresh,
            revoked_token_is_refreshed_and_the_call_replayed_once,
            direct_access_token_mode,
            no_credentials_is_a_clear_error,
            items_list_filter_and_create,
            closed_client_refuses_calls,
            hostile_answers_are_typed_errors,
            timeout_is_a_typed_error,
            connection_refused_is_a_typed_error,
            no_secret_in_debug_or_errors,
        );
    };
    (@tests $sdk:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::$name::<$sdk>();
            }
        )*
    };
}
