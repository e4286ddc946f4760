//! The fault suite: one test per fault, each with its expected outcome.

use std::time::{Duration, Instant};

use carthooks_client::{BuildClient, ClientBuilder, Connect};
use carthooks_core::{Error, ItemsQuery, RetryPolicy, TransportErrorKind};
use carthooks_mock::{DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, Fault, MockServer};
use serde_json::json;

use crate::{Sdk, builder, client_with_clock, oauth, recording_callback};

/// Short delays so that retries do not slow the suite down.
fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_base_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(100))
}

fn fast<S: Sdk>(server: &MockServer) -> ClientBuilder<S::Client> {
    builder::<S>(server)
        .oauth(oauth())
        .retry_policy(fast_retry())
}

fn ready<S: Sdk>(server: &MockServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c = S::wrap(fast::<S>(server).build().unwrap());
    c.initialize_oauth(None).unwrap();
    c
}

fn status(status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: None,
    }
}

fn create_body() -> serde_json::Value {
    json!({"title": "once"})
}

fn items(server: &MockServer) -> usize {
    server
        .state()
        .item_count(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID)
}

pub fn get_503_twice_then_success<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(status(503), 2, Some("/v1/me"));
    assert_eq!(c.get_current_user().unwrap().data.user_id, 1000);
    assert_eq!(server.counters().received_at("/v1/me"), 3);
}

/// The mock's rate limit (a bucket of 5 requests, 5 a second, per token):
/// a call beyond it is answered 429 with `Retry-After`, which the SDK waits
/// for; without retries the 429 is the error, with its status.
pub fn rate_limited_calls_wait_as_told<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.set_rate_limit(Some(5));
    let started = Instant::now();
    // More than the burst, quickly enough even on a loaded machine.
    for _ in 0..15 {
        c.get_current_user().unwrap();
    }
    let counters = server.counters();
    assert!(counters.rate_limited >= 1, "the limit was met");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the call beyond the burst waited for Retry-After (1 s): {:?}",
        started.elapsed()
    );
    let strict = S::wrap(
        fast::<S>(&server)
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
    );
    strict.initialize_oauth(None).unwrap();
    let refused = (0..30)
        .find_map(|_| strict.get_current_user().err())
        .expect("a call beyond the burst is refused");
    assert_eq!(refused.status().map(u16::from), Some(429), "{refused:?}");
    server.set_rate_limit(None);
    c.get_current_user().unwrap();
}

pub fn retries_are_bounded<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(status(502), 10, Some("/v1/me"));
    let e = c.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(502), "{e:?}");
    assert_eq!(
        server.counters().received_at("/v1/me"),
        3,
        "max_attempts = 3"
    );
}

pub fn retry_after_seconds_is_honoured<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(
        Fault::Status {
            status: 429,
            retry_after: Some("1".into()),
        },
        1,
        Some("/v1/me"),
    );
    let started = Instant::now();
    c.get_current_user().unwrap();
    // A lower bound only: the client waited at least what the server asked.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.counters().received_at("/v1/me"), 2);
}

pub fn retry_after_http_date_is_honoured<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    let now = carthooks_client::Clock::now(&carthooks_client::SystemClock);
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: Some(httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(now + 1),
            )),
        },
        1,
        Some("/v1/me"),
    );
    c.get_current_user().unwrap();
    assert_eq!(server.counters().received_at("/v1/me"), 2);
}

pub fn too_long_retry_after_is_not_waited_for<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: Some("86400".into()),
        },
        1,
        Some("/v1/me"),
    );
    let e = c.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(503));
    assert_eq!(server.counters().received_at("/v1/me"), 1);
}

pub fn post_is_not_retried_on_503<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    let before = items(&server);
    server.inject(status(503), 5, Some("/v1/apps"));
    let e = c
        .create_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &create_body())
        .unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(503));
    assert_eq!(server.counters().faults, 1, "sent once");
    assert_eq!(items(&server), before);
}

pub fn post_dropped_after_handling_is_outcome_unknown_and_not_resent<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    let before = items(&server);
    server.inject(Fault::DropAfterHandling, 1, Some("/v1/apps"));
    let e = c
        .create_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &create_body())
        .unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown(_)), "{} {e:?}", S::NAME);
    assert!(e.to_string().contains("outcome is unknown"));
    assert_eq!(items(&server), before + 1, "it did arrive, exactly once");
    assert_eq!(server.counters().items_created, 1);
}

pub fn get_dropped_after_read_is_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(Fault::DropAfterRead, 1, Some("/v1/me"));
    c.get_current_user().unwrap();
    assert_eq!(server.counters().received_at("/v1/me"), 2);
}

pub fn put_dropped_after_handling_is_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    let id = c
        .create_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &create_body())
        .unwrap()
        .data["id"]
        .as_u64()
        .unwrap();
    server.inject(Fault::DropAfterHandling, 1, Some("/v1/apps"));
    let updated = c
        .update_item(
            DEFAULT_APP_ID,
            DEFAULT_COLLECTION_ID,
            id,
            &json!({"title": "twice is fine"}),
        )
        .unwrap();
    assert_eq!(updated.data["title"], "twice is fine");
    assert_eq!(
        server.counters().operation("update_item"),
        2,
        "PUT is idempotent"
    );
}

pub fn dropped_connection_before_read_is_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(fast::<S>(&server).build().unwrap());
    c.initialize_oauth(None).unwrap();
    // A fresh client has no pooled connection: its first call opens one.
    let token = c
        .get_current_tokens()
        .unwrap()
        .access_token
        .secret()
        .to_owned();
    let fresh = S::wrap(
        builder::<S>(&server)
            .access_token(token.as_str())
            .retry_policy(fast_retry())
            .build()
            .unwrap(),
    );
    server.drop_next_connections(1);
    fresh.get_current_user().unwrap();
    assert_eq!(server.counters().dropped_connections, 1);
}

pub fn connection_refused_then_server_up_is_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = S::wrap(
        carthooks_client::ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(format!("http://{addr}"))
            .oauth(oauth())
            .retry_policy(
                RetryPolicy::default()
                    .with_base_delay(Duration::from_millis(600))
                    .with_max_delay(Duration::from_secs(2)),
            )
            .build()
            .unwrap(),
    );
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        MockServer::bind(addr, carthooks_mock::MockConfig::default()).unwrap()
    });
    // The first attempt is refused (nothing listens yet); the retry, at least
    // 300 ms later, finds the server. Token requests may be retried then too.
    let tokens = c.initialize_oauth(None);
    let server = starter.join().unwrap();
    tokens.unwrap();
    assert_eq!(server.counters().token_requests, 1);
}

pub fn token_request_429_is_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(fast::<S>(&server).build().unwrap());
    server.inject(status(429), 1, Some("/oauth/token"));
    c.initialize_oauth(None).unwrap();
    assert_eq!(server.counters().received_at("/oauth/token"), 2);
}

pub fn token_request_502_is_not_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(fast::<S>(&server).build().unwrap());
    server.inject(status(502), 3, Some("/oauth/token"));
    let e = c.initialize_oauth(None).unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(502));
    assert_eq!(server.counters().received_at("/oauth/token"), 1);
}

pub fn token_request_dropped_is_outcome_unknown<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(fast::<S>(&server).build().unwrap());
    server.inject(Fault::DropAfterHandling, 1, Some("/oauth/token"));
    let e = c.initialize_oauth(None).unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown(_)), "{e:?}");
    assert_eq!(server.counters().token_requests, 1);
    // The next call simply starts a new grant.
    c.initialize_oauth(None).unwrap();
}

pub fn permanent_oauth_errors_are_never_retried<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(fast::<S>(&server).build().unwrap());
    let e = c.refresh_oauth_token(Some("rt-unknown")).unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_refresh_token"));
    let bad = S::wrap(
        builder::<S>(&server)
            .oauth(carthooks_core::OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                "nope",
            ))
            .retry_policy(fast_retry())
            .build()
            .unwrap(),
    );
    assert_eq!(
        bad.initialize_oauth(None).unwrap_err().oauth_error_code(),
        Some("invalid_client")
    );
    assert_eq!(server.counters().token_requests, 2, "one request each");
}

pub fn malformed_answers_are_typed_errors<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    for (fault, expected_status) in [
        (Fault::TruncatedBody, 200),
        (Fault::MalformedBody, 200),
        (Fault::HtmlErrorPage, 502),
    ] {
        server.inject(fault.clone(), 1, Some("/v1/me"));
        let e = c.get_current_user();
        match (&fault, e) {
            // A 502 is retried, and the retry succeeds.
            (Fault::HtmlErrorPage, Ok(_)) => {}
            (_, Err(e)) => {
                assert!(
                    matches!(e, Error::UnexpectedResponse { .. }),
                    "{fault:?}: {e:?}"
                );
                assert_eq!(e.status().map(u16::from), Some(expected_status));
            }
            (_, Ok(_)) => panic!("{fault:?} was accepted"),
        }
    }
    // An HTML page on every attempt: a typed error with the status.
    server.inject(Fault::HtmlErrorPage, 3, Some("/v1/me"));
    let e = c.get_current_user().unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnexpectedResponse {
                status: http::StatusCode::BAD_GATEWAY,
                ..
            }
        ),
        "{e:?}"
    );
}

pub fn latency_beyond_the_timeout<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = S::wrap(
        fast::<S>(&server)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    c.initialize_oauth(None).unwrap();
    let before = items(&server);
    server.inject(
        Fault::Delay(Duration::from_millis(900)),
        1,
        Some("/v1/apps"),
    );
    let e = c
        .create_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &create_body())
        .unwrap_err();
    assert!(
        e.is_timeout() && matches!(e, Error::OutcomeUnknown(_)),
        "{e:?}"
    );
    // The server finishes the late request on its own: the item exists once.
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(items(&server), before + 1);
    // An idempotent call is retried past one slow answer.
    server.inject(Fault::Delay(Duration::from_millis(900)), 1, Some("/v1/me"));
    c.get_current_user().unwrap();
    assert_eq!(server.counters().received_at("/v1/me"), 2);
}

pub fn second_401_is_a_typed_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.inject(status(401), 2, Some("/v1/me"));
    let e = c.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(401));
    assert!(matches!(e, Error::Api(_)));
    let counters = server.counters();
    assert_eq!(counters.received_at("/v1/me"), 2, "one replay, no loop");
    assert_eq!(counters.grant("refresh_token"), 1);
}

pub fn stale_token_is_used_while_refresh_fails<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let (config, seen) = recording_callback(oauth().with_min_refresh_interval(Duration::ZERO));
    let (c, clock): (S, _) = client_with_clock(&server, config);
    let t0 = c.initialize_oauth(None).unwrap();
    // Inside the window: the refresh fails (502, not retried for tokens), the call
    // goes out with the still-valid token.
    clock.advance(Duration::from_secs(86_400 - 120));
    server.inject(status(502), 1, Some("/oauth/token"));
    c.get_current_user().unwrap();
    assert_eq!(
        c.get_current_tokens().unwrap().access_token.secret(),
        t0.access_token.secret()
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "no new tokens");
    // Expired: a failing refresh fails the call.
    clock.advance(Duration::from_secs(200));
    server.inject(status(502), 1, Some("/oauth/token"));
    let e = c.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(502), "{e:?}");
    // …and once the token endpoint recovers, calls succeed again.
    c.get_current_user().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

pub fn response_body_is_capped<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    server.state().seed_items(5, 6, 200);
    let c = S::wrap(fast::<S>(&server).max_response_body(4096).build().unwrap());
    c.initialize_oauth(None).unwrap();
    let e = c
        .get_items(5, 6, &ItemsQuery::new().limit(200))
        .unwrap_err();
    match &e {
        Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::BodyTooLarge, "{e:?}"),
        other => panic!("{}: {other:?}", S::NAME),
    }
    c.get_items(5, 6, &ItemsQuery::new().limit(2)).unwrap();
}

pub fn plain_http_to_a_remote_host_is_refused<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let e = ClientBuilder::<S::Client>::new()
        .without_env()
        .base_url("http://api.carthooks.example")
        .oauth(oauth())
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("plain http"),
        "{e}"
    );
    ClientBuilder::<S::Client>::new()
        .without_env()
        .base_url("http://api.carthooks.example")
        .allow_insecure_http(true)
        .build()
        .unwrap();
}

pub fn many_callers_across_an_expiry_share_one_refresh<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let (c, clock): (S, _) = client_with_clock(&server, oauth());
    c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(86_400));
    let results = c.concurrent_current_user(S::MANY);
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(results.len(), S::MANY);
    assert_eq!(
        server.counters().token_requests,
        2,
        "the grant and one refresh"
    );
}

pub fn two_hundred_401s_share_one_refresh<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = ready::<S>(&server);
    server.revoke_access_tokens();
    let results = c.concurrent_current_user(200);
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let counters = server.counters();
    assert_eq!(
        counters.grant("refresh_token"),
        1,
        "one refresh for every 401"
    );
    assert!(counters.unauthorized >= 1 && counters.unauthorized <= 200);
}

pub fn failing_token_store_loses_nothing<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let store = std::sync::Arc::new(carthooks_client::FileTokenStore::new(
        "/nonexistent-carthooks-dir/tokens.json",
    ));
    let (config, seen) = recording_callback(oauth());
    let c = S::wrap(
        builder::<S>(&server)
            .oauth(config)
            .token_store(store)
            .build()
            .unwrap(),
    );
    let t = c.initialize_oauth(None).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "the callback still ran");
    c.refresh_oauth_token(None).unwrap();
    c.get_current_user().unwrap();
    assert_ne!(
        c.get_current_tokens().unwrap().access_token.secret(),
        t.access_token.secret()
    );
}

pub fn token_store_is_loaded_and_saved_before_use<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "carthooks-store-suite-{}-{}",
        S::NAME,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let store = std::sync::Arc::new(carthooks_client::FileTokenStore::new(&path));
    let first = S::wrap(
        builder::<S>(&server)
            .oauth(oauth())
            .token_store(store.clone())
            .build()
            .unwrap(),
    );
    let t = first.initialize_oauth(None).unwrap();
    let saved = carthooks_client::TokenStore::load(store.as_ref())
        .unwrap()
        .unwrap();
    assert_eq!(saved.access_token.secret(), t.access_token.secret());
    assert_eq!(saved.expires_at, t.expires_at);
    // A restart loads the stored set: no token request needed.
    let before = server.counters().token_requests;
    let second = S::wrap(
        builder::<S>(&server)
            .oauth(oauth())
            .token_store(store.clone())
            .build()
            .unwrap(),
    );
    second.get_current_user().unwrap();
    assert_eq!(server.counters().token_requests, before);
    // A rotation is saved before the rotated token is used.
    second.refresh_oauth_token(None).unwrap();
    let saved = carthooks_client::TokenStore::load(store.as_ref())
        .unwrap()
        .unwrap();
    assert_eq!(
        saved.refresh_token.unwrap().secret(),
        second
            .get_current_tokens()
            .unwrap()
            .refresh_token
            .unwrap()
            .secret()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
