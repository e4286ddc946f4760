//! The SDK's behavioural suite, written once and run once per backend.
//!
//! Every test is a generic function over [`Sdk`], an adapter that gives the async
//! client (reqwest, driven on a tokio runtime) and the blocking client (ureq) the
//! same shape. `tests/reqwest.rs` and `tests/ureq.rs` instantiate the whole list
//! with [`suite!`]; the functions talk to a [`MockServer`] started on `127.0.0.1:0`
//! by the test itself, over real sockets.

#![allow(missing_docs)]

pub mod api;
pub mod bulk;
pub mod canned;
pub mod faults;
pub mod hardening;
#[cfg(feature = "lambda")]
pub mod lambda_api;
#[cfg(feature = "otel")]
pub mod otlp;
pub mod redis_server;
pub mod sessions;
pub mod signin;
pub mod suite;

use std::sync::{Arc, Mutex};

use carthooks_client::{ClientBuilder, ManualClock};
use carthooks_core::{
    ApiResponse, AuthorizeCodeResponse, ItemLock, ItemsQuery, LockOptions,
    OAuthAuthorizeCodeRequest, OAuthConfig, OAuthTokens, PkceVerifier, Result, UserInfo,
    WatchDataRequest,
};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, MockServer};

/// Declares the client calls the suite uses once, and forwards them from both
/// adapters: the async client's future is driven on the adapter's runtime, the
/// blocking client is called as it is.
macro_rules! calls {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        /// The client calls, in blocking form.
        pub trait Calls {
            $( fn $name(&self $(, $arg: $ty)*) -> $ret; )*
        }
        impl Calls for ReqwestSdk {
            $( fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.runtime.block_on(self.client.$name($($arg),*))
            } )*
        }
        impl Calls for UreqSdk {
            $( fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.0.$name($($arg),*)
            } )*
        }
    };
}

type Json = serde_json::Value;

calls! {
    fn initialize_oauth(&self, user_token: Option<&str>) -> Result<OAuthTokens>;
    fn exchange_authorization_code(&self, code: &str, redirect_uri: &str, code_verifier: Option<&PkceVerifier>) -> Result<OAuthTokens>;
    fn refresh_oauth_token(&self, refresh_token: Option<&str>) -> Result<OAuthTokens>;
    fn get_oauth_authorize_code(&self, request: &OAuthAuthorizeCodeRequest) -> Result<ApiResponse<AuthorizeCodeResponse>>;
    fn get_current_user(&self) -> Result<ApiResponse<UserInfo>>;
    fn get_items(&self, app: u64, coll: u64, query: &ItemsQuery) -> Result<ApiResponse<Vec<Json>>>;
    fn create_item(&self, app: u64, coll: u64, data: &Json) -> Result<ApiResponse<Json>>;
    fn get_item(&self, app: u64, coll: u64, id: u64, fields: &[&str]) -> Result<ApiResponse<Json>>;
    fn update_item(&self, app: u64, coll: u64, id: u64, data: &Json) -> Result<ApiResponse<Json>>;
    fn delete_item(&self, app: u64, coll: u64, id: u64) -> Result<ApiResponse<Json>>;
    fn lock_item(&self, app: u64, coll: u64, id: u64, options: &LockOptions) -> Result<ApiResponse<ItemLock>>;
    fn unlock_item(&self, app: u64, coll: u64, id: u64, lock_id: &str) -> Result<ApiResponse<ItemLock>>;
    fn create_sub_item(&self, app: u64, coll: u64, id: u64, field: u64, data: &Json) -> Result<ApiResponse<Json>>;
    fn update_sub_item(&self, app: u64, coll: u64, id: u64, field: u64, sub: u64, data: &Json) -> Result<ApiResponse<Json>>;
    fn delete_sub_item(&self, app: u64, coll: u64, id: u64, field: u64, sub: u64) -> Result<ApiResponse<Json>>;
    fn get_submission_token(&self, app: u64, coll: u64, options: &Json) -> Result<ApiResponse<Json>>;
    fn update_submission_token(&self, app: u64, coll: u64, id: u64, options: &Json) -> Result<ApiResponse<Json>>;
    fn get_upload_token(&self) -> Result<ApiResponse<Json>>;
    fn get_user(&self, user_id: u64) -> Result<ApiResponse<UserInfo>>;
    fn get_user_by_token(&self, user_token: &str) -> Result<ApiResponse<UserInfo>>;
    fn start_watch_data(&self, request: &WatchDataRequest) -> Result<ApiResponse<Json>>;
    fn execute(&self, endpoint: &carthooks_core::Endpoint<Json>) -> Result<ApiResponse<Json>>;
}

fn session_builder<C>(
    mut builder: carthooks_client::SessionBuilder<C>,
    tokens: Option<OAuthTokens>,
    callback: Option<carthooks_core::TokenCallback>,
    store: Option<Arc<dyn carthooks_client::TokenStore>>,
) -> carthooks_client::SessionBuilder<C> {
    if let Some(tokens) = tokens {
        builder = builder.tokens(tokens);
    }
    if let Some(store) = store {
        builder = builder.token_store(store);
    }
    if let Some(callback) = callback {
        builder = builder.on_token_refresh(move |t| callback.call(t));
    }
    builder
}

/// A backend adapter: the calls plus what cannot be forwarded one to one.
pub trait Sdk: Calls + Clone + Send + Sync + Sized + 'static {
    /// Backend name, for messages.
    const NAME: &'static str;
    /// How many concurrent callers the concurrency tests use: tasks or threads.
    const MANY: usize;
    /// The client type the builder makes.
    type Client: carthooks_client::BuildClient + std::fmt::Debug;
    /// Wraps a built client.
    fn wrap(client: Self::Client) -> Self;
    fn get_current_tokens(&self) -> Option<OAuthTokens>;
    fn dns_stats(&self) -> carthooks_client::DnsCacheStats;
    fn store_failure(&self) -> Option<carthooks_client::TokenStoreFailure>;
    fn close(&self);
    fn is_closed(&self) -> bool;
    /// A new session of this client, without tokens (`session()`).
    fn session(&self) -> Self;
    /// A session made with `session_builder()`, from `tokens`, handing each
    /// new set to `callback` and saving it to `store`.
    fn session_from(
        &self,
        tokens: Option<OAuthTokens>,
        callback: Option<carthooks_core::TokenCallback>,
        store: Option<Arc<dyn carthooks_client::TokenStore>>,
    ) -> Result<Self>;
    /// `n` concurrent `get_current_user` calls (tasks or threads), all results.
    fn concurrent_current_user(&self, n: usize) -> Vec<Result<ApiResponse<UserInfo>>>;
    /// The first `n` items of `all_items` (Stream or Iterator).
    fn take_items(&self, app: u64, coll: u64, query: &ItemsQuery, n: usize) -> Vec<Result<Json>>;
    /// A whole `export` (Stream or Iterator) as `options` set it up: every
    /// item or error, what it saw, and its checkpoint at the end.
    fn export(&self, app: u64, coll: u64, query: &ItemsQuery, options: ExportOptions) -> ExportRun;
    /// An `import` of `rows` as `options` set it up, run to its end.
    fn import(
        &self,
        app: u64,
        coll: u64,
        rows: Vec<Json>,
        options: ImportOptions,
    ) -> Result<carthooks_client::bulk::ImportReport>;
}

/// How a test sets up an import.
#[derive(Clone, Default)]
pub struct ImportOptions {
    pub concurrency: Option<usize>,
    pub rate_limit: Option<u32>,
    pub upsert_by: Option<String>,
    pub checkpoint: Option<std::path::PathBuf>,
    pub stop: Option<carthooks_client::bulk::ImportStop>,
    pub progress: Option<ImportProgress>,
}

/// A progress callback of [`ImportOptions`].
pub type ImportProgress = Arc<dyn Fn(&carthooks_client::bulk::ImportStats) + Send + Sync>;

macro_rules! import_with {
    ($import:expr, $options:expr) => {{
        let options = $options;
        let mut import = $import;
        if let Some(n) = options.concurrency {
            import = import.concurrency(n);
        }
        if let Some(n) = options.rate_limit {
            import = import.rate_limit(n);
        }
        if let Some(field) = options.upsert_by {
            import = import.upsert_by(field);
        }
        if let Some(path) = options.checkpoint {
            import = import.checkpoint(
                carthooks_client::bulk::FileCheckpoint::open(path).expect("checkpoint opens"),
            );
        }
        if let Some(stop) = options.stop {
            import = import.stop_on(stop);
        }
        if let Some(progress) = options.progress {
            import = import.on_progress(move |stats| progress(stats));
        }
        import
    }};
}

/// How a test sets up an export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    pub concurrency: Option<usize>,
    pub max_items: Option<u64>,
    pub resume_from: Option<carthooks_client::bulk::ExportCheckpoint>,
}

/// What an export handed out.
#[derive(Debug)]
pub struct ExportRun {
    pub items: Vec<Result<Json>>,
    pub stats: carthooks_client::bulk::ExportStats,
    pub checkpoint: carthooks_client::bulk::ExportCheckpoint,
}

macro_rules! export_with {
    ($export:expr, $options:expr) => {{
        let mut export = $export;
        if let Some(n) = $options.concurrency {
            export = export.concurrency(n);
        }
        if let Some(n) = $options.max_items {
            export = export.max_items(n);
        }
        if let Some(at) = $options.resume_from {
            export = export.resume_from(at);
        }
        export
    }};
}

/// The async client over reqwest, each call driven to completion on a runtime.
#[derive(Clone)]
pub struct ReqwestSdk {
    client: carthooks_reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Sdk for ReqwestSdk {
    const NAME: &'static str = "reqwest";
    const MANY: usize = 1000;
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
    fn get_current_tokens(&self) -> Option<OAuthTokens> {
        self.client.get_current_tokens()
    }
    fn dns_stats(&self) -> carthooks_client::DnsCacheStats {
        self.client.dns_cache_stats()
    }
    fn store_failure(&self) -> Option<carthooks_client::TokenStoreFailure> {
        self.client.token_store_failure()
    }
    fn close(&self) {
        self.client.close();
    }
    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
    fn session(&self) -> Self {
        Self {
            client: self.client.session(),
            runtime: Arc::clone(&self.runtime),
        }
    }
    fn session_from(
        &self,
        tokens: Option<OAuthTokens>,
        callback: Option<carthooks_core::TokenCallback>,
        store: Option<Arc<dyn carthooks_client::TokenStore>>,
    ) -> Result<Self> {
        Ok(Self {
            client: session_builder(self.client.session_builder(), tokens, callback, store)
                .build()?,
            runtime: Arc::clone(&self.runtime),
        })
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
    fn take_items(&self, app: u64, coll: u64, query: &ItemsQuery, n: usize) -> Vec<Result<Json>> {
        self.runtime.block_on(async {
            let mut stream = self.client.all_items(app, coll, query);
            let mut out = Vec::new();
            while out.len() < n {
                match stream.next_item().await {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
            out
        })
    }
    fn export(&self, app: u64, coll: u64, query: &ItemsQuery, options: ExportOptions) -> ExportRun {
        self.runtime.block_on(async {
            let mut export = export_with!(self.client.export(app, coll, query), options);
            let mut items = Vec::new();
            while let Some(item) = export.next_item().await {
                items.push(item);
            }
            ExportRun {
                items,
                stats: export.stats(),
                checkpoint: export.checkpoint(),
            }
        })
    }
    fn import(
        &self,
        app: u64,
        coll: u64,
        rows: Vec<Json>,
        options: ImportOptions,
    ) -> Result<carthooks_client::bulk::ImportReport> {
        self.runtime
            .block_on(import_with!(self.client.import(app, coll, rows), options).run())
    }
}

/// The blocking client over ureq.
#[derive(Clone)]
pub struct UreqSdk(carthooks_ureq::Client);

impl Sdk for UreqSdk {
    const NAME: &'static str = "ureq";
    const MANY: usize = 32;
    type Client = carthooks_ureq::Client;

    fn wrap(client: Self::Client) -> Self {
        Self(client)
    }
    fn get_current_tokens(&self) -> Option<OAuthTokens> {
        self.0.get_current_tokens()
    }
    fn dns_stats(&self) -> carthooks_client::DnsCacheStats {
        self.0.dns_cache_stats()
    }
    fn store_failure(&self) -> Option<carthooks_client::TokenStoreFailure> {
        self.0.token_store_failure()
    }
    fn close(&self) {
        self.0.close();
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
    fn session(&self) -> Self {
        Self(self.0.session())
    }
    fn session_from(
        &self,
        tokens: Option<OAuthTokens>,
        callback: Option<carthooks_core::TokenCallback>,
        store: Option<Arc<dyn carthooks_client::TokenStore>>,
    ) -> Result<Self> {
        Ok(Self(
            session_builder(self.0.session_builder(), tokens, callback, store).build()?,
        ))
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
    fn take_items(&self, app: u64, coll: u64, query: &ItemsQuery, n: usize) -> Vec<Result<Json>> {
        self.0.all_items(app, coll, query).take(n).collect()
    }
    fn export(&self, app: u64, coll: u64, query: &ItemsQuery, options: ExportOptions) -> ExportRun {
        let mut export = export_with!(self.0.export(app, coll, query), options);
        let items = export.by_ref().collect();
        ExportRun {
            items,
            stats: export.stats(),
            checkpoint: export.checkpoint(),
        }
    }
    fn import(
        &self,
        app: u64,
        coll: u64,
        rows: Vec<Json>,
        options: ImportOptions,
    ) -> Result<carthooks_client::bulk::ImportReport> {
        import_with!(self.0.import(app, coll, rows), options).run()
    }
}

/// Random delays for the kill tests: `min` plus up to `spread`, from a
/// xorshift seeded by the clock (other moments each run). Not for secrets.
pub fn random_delays(
    min: std::time::Duration,
    spread: std::time::Duration,
) -> impl FnMut() -> std::time::Duration {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        | 1;
    let spread = (spread.as_micros() as u64).max(1);
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        min + std::time::Duration::from_micros(x % spread)
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
    <S::Client as carthooks_client::BuildClient>::Transport: carthooks_client::Connect,
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
    <S::Client as carthooks_client::BuildClient>::Transport: carthooks_client::Connect,
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
        $crate::suite!(@tests $sdk; api;
            wire_conformance_with_the_python_sdk,
            endpoints_the_sdk_has_no_method_for,
            item_lifecycle_and_not_found,
            locks_refuse_other_holders,
            sub_form_rows,
            form_and_upload_tokens,
            users_and_watches,
            query_filters,
            all_pages_each_item_once,
            all_pages_surface_errors_as_items,
        );
        $crate::suite!(@tests $sdk; bulk;
            export_hands_out_every_item_once_in_order_pages_at_once,
            export_max_items_then_resume_from_the_checkpoint,
            export_retries_each_page_on_its_own_and_ends_on_an_error,
            import_creates_each_row_once_and_reports_each,
            import_never_resends_an_unknown_outcome_without_a_key,
            import_with_a_key_settles_unknown_outcomes_without_duplicates,
            import_under_a_rate_limit_slows_down_and_finishes,
            import_resumes_from_a_file_checkpoint,
            import_stopped_from_outside_finishes_what_it_sent_and_resumes,
        );
        $crate::suite!(@tests $sdk; faults;
            get_503_twice_then_success,
            rate_limited_calls_wait_as_told,
            retries_are_bounded,
            retry_after_seconds_is_honoured,
            retry_after_http_date_is_honoured,
            too_long_retry_after_is_not_waited_for,
            post_is_not_retried_on_503,
            post_dropped_after_handling_is_outcome_unknown_and_not_resent,
            get_dropped_after_read_is_retried,
            put_dropped_after_handling_is_retried,
            dropped_connection_before_read_is_retried,
            connection_refused_then_server_up_is_retried,
            token_request_429_is_retried,
            token_request_502_is_not_retried,
            token_request_dropped_is_outcome_unknown,
            permanent_oauth_errors_are_never_retried,
            malformed_answers_are_typed_errors,
            latency_beyond_the_timeout,
            second_401_is_a_typed_error,
            stale_token_is_used_while_refresh_fails,
            response_body_is_capped,
            plain_http_to_a_remote_host_is_refused,
            many_callers_across_an_expiry_share_one_refresh,
            two_hundred_401s_share_one_refresh,
            failing_token_store_loses_nothing,
            token_store_is_loaded_and_saved_before_use,
        );
        $crate::suite!(@tests $sdk; hardening;
            server_text_is_cleaned_capped_and_redacted,
            token_lifetimes_as_real_servers_send_them,
            unusable_tokens_are_refused_at_receipt,
            empty_success_is_a_success,
            requests_are_framed_alike,
            refused_post_is_retried_and_errors_say_which,
            impossible_settings_are_config_errors,
            dot_segments_are_sent_literally,
            callback_that_calls_the_client_does_not_deadlock,
            two_clients_share_one_token_file,
            store_failures_are_reported_and_bad_files_kept,
            call_timeout_bounds_the_whole_call,
            refused_user_refresh_token_never_falls_back_to_the_app,
            lifetime_counts_from_the_request,
        );
        $crate::suite!(@tests $sdk; sessions;
            sessions_act_for_their_own_users_over_one_connection,
            a_session_never_borrows_the_app_identity,
            each_session_refreshes_once_for_its_own_callers,
            restored_sessions_and_their_callbacks,
            closing_a_session_closes_only_it,
            sessions_keep_their_tokens_in_stores_of_their_own,
            a_users_session_cannot_touch_another_users_item,
        );
        $crate::suite!(@tests $sdk; signin;
            pkce_binds_the_code_to_its_verifier,
            a_verifier_for_a_code_without_a_challenge_is_refused,
            plain_malformed_or_missing_challenges_get_no_code,
            codes_only_for_registered_redirect_uris,
        );
        $crate::suite!(@tests $sdk; suite;
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
            dns_goes_through_the_cache_ipv4_only,
        );
    };
    (@tests $sdk:ty; $module:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::$module::$name::<$sdk>();
            }
        )*
    };
}
