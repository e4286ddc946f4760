//! Answers a hostile or merely different server, proxy or caller can produce:
//! one test per item of the hardening issue, run on both backends. Items that
//! only one backend has (a tokio runtime, the executor) are in `tests/reqwest.rs`;
//! the environment and `log` items have test binaries of their own.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use carthooks_client::{BuildClient, ClientBuilder, Connect, FileTokenStore, StoreOperation};
use carthooks_client::{Clock, SystemClock};
use carthooks_core::{Error, RetryPolicy};
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_COLLECTION_ID, DEFAULT_USER_TOKEN, Fault,
    MockConfig, MockServer,
};
use serde_json::json;

use crate::canned::{Behaviour, CannedServer, http_answer};
use crate::{Sdk, builder, client, client_with_clock, oauth};

fn canned_builder<S: Sdk>(canned: &CannedServer) -> ClientBuilder<S::Client> {
    ClientBuilder::new()
        .without_env()
        .base_url(canned.url())
        .timeout(Duration::from_secs(5))
}

fn json_answer(status: u16, body: &str) -> Behaviour {
    Behaviour::Answer(http_answer(status, "application/json", body.as_bytes()))
}

fn temp_dir(name: &str, backend: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("carthooks-{name}-{backend}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Item 2: a server that echoes the credentials, forges log lines and sends an
/// enormous trace id gets none of it into `Display`, `Debug` or logs.
pub fn server_text_is_cleaned_capped_and_redacted<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let secret = "s3cr3t-client-value";
    let huge = "t".repeat(2 << 20);
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"wrong secret {secret} \u001b[31m\r\nINFO carthooks: forged","traceId":"{huge}"}}"#
    );
    let canned = CannedServer::start(json_answer(401, &body));
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .oauth(carthooks_core::OAuthConfig::new(DEFAULT_CLIENT_ID, secret))
            .build()
            .unwrap(),
    );
    let e = c.initialize_oauth(None).unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_client"), "{e:?}");
    let (display, debug) = (e.to_string(), format!("{e:?}"));
    for text in [&display, &debug] {
        assert!(
            !text.contains(secret),
            "{} echoed secret: {text:.300}",
            S::NAME
        );
        assert!(text.len() < 4_096, "{}: {} bytes", S::NAME, text.len());
    }
    assert!(
        !display.contains(['\u{1b}', '\r', '\n']),
        "{}: {display:?}",
        S::NAME
    );
    assert!(display.contains("[redacted]"), "{display}");
    // An API error echoing the bearer token.
    let bearer = "at-canned-bearer-token";
    let canned = CannedServer::start(json_answer(
        400,
        &format!(
            r#"{{"error":{{"code":"BAD","message":"token {bearer} is wrong"}},"traceId":"{bearer}"}}"#
        ),
    ));
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .access_token(bearer)
            .build()
            .unwrap(),
    );
    let e = c.get_current_user().unwrap_err();
    assert!(!format!("{e} {e:?}").contains(bearer), "{e:?}");
    // A user token that travels in the path and comes back in the message.
    let canned = CannedServer::start(json_answer(
        404,
        r#"{"error":{"code":"NOT_FOUND","message":"no user for user-token-echoed"}}"#,
    ));
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .access_token("at-x")
            .build()
            .unwrap(),
    );
    let e = c.get_user_by_token("user-token-echoed").unwrap_err();
    assert!(!format!("{e} {e:?}").contains("user-token-echoed"), "{e:?}");
}

/// Item 3: `expires_in` as real OAuth servers send it.
pub fn token_lifetimes_as_real_servers_send_them<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let huge: serde_json::Value = serde_json::from_str("18446744073709551616").unwrap();
    let max = carthooks_core::internal::MAX_LIFETIME;
    let cases = [
        (json!("3600"), Some(3_600)),
        (json!(3600.5), Some(3_600)),
        (json!(-5), Some(0)),
        (json!(1e30), Some(max)),
        (huge, Some(max)),
        (serde_json::Value::Null, None),
    ];
    for (advertised, expected) in cases {
        let server = MockServer::start_with(MockConfig {
            advertised_expires_in: Some(advertised.clone()),
            ..MockConfig::default()
        })
        .unwrap();
        let (c, clock): (S, _) = client_with_clock(&server, oauth());
        let t = c
            .initialize_oauth(None)
            .unwrap_or_else(|e| panic!("{} {advertised}: {e}", S::NAME));
        assert_eq!(
            t.expires_at,
            expected.map(|s| clock.now() + s),
            "{advertised}"
        );
        c.get_current_user().unwrap();
    }
    // Absent, with a default lifetime configured: that lifetime.
    let server = MockServer::start_with(MockConfig {
        advertised_expires_in: Some(serde_json::Value::Null),
        ..MockConfig::default()
    })
    .unwrap();
    let (c, clock): (S, _) = client_with_clock(
        &server,
        oauth().with_default_token_lifetime(Duration::from_secs(600)),
    );
    let t = c.initialize_oauth(None).unwrap();
    assert_eq!(t.expires_at, Some(clock.now() + 600));
    // `expires_in: 0` does not cost a token request per call.
    let server = MockServer::start_with(MockConfig {
        advertised_expires_in: Some(json!(0)),
        ..MockConfig::default()
    })
    .unwrap();
    let (c, clock): (S, _) = client_with_clock(&server, oauth());
    c.initialize_oauth(None).unwrap();
    for _ in 0..20 {
        c.get_current_user().unwrap();
    }
    assert_eq!(server.counters().token_requests, 1, "{}", S::NAME);
    clock.advance(Duration::from_secs(31));
    c.get_current_user().unwrap();
    assert_eq!(
        server.counters().token_requests,
        2,
        "one refresh per interval"
    );
}

/// Item 4: tokens that cannot be sent as a bearer header are refused when they
/// arrive, with one clear error, and are never installed or retried.
pub fn unusable_tokens_are_refused_at_receipt<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let long = "x".repeat(16 * 1024 + 1);
    let cases = [
        (
            r#"{"access_token":"at-1","token_type":"MAC"}"#.to_owned(),
            "token_type",
        ),
        (
            r#"{"access_token":"t\u00f6ken"}"#.to_owned(),
            "access_token",
        ),
        (format!(r#"{{"access_token":"{long}"}}"#), "access_token"),
    ];
    for (body, field) in cases {
        let canned = CannedServer::start(json_answer(200, &body));
        let c = S::wrap(canned_builder::<S>(&canned).oauth(oauth()).build().unwrap());
        let e = c.initialize_oauth(None).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnexpectedResponse {
                    status: http::StatusCode::OK,
                    ..
                }
            ),
            "{} {field}: {e:?}",
            S::NAME
        );
        assert!(e.to_string().contains(field), "{e}");
        assert!(c.get_current_tokens().is_none());
        assert_eq!(canned.requests().len(), 1, "asked once, not retried");
    }
}

/// Item 5: a 2xx without a body (204 to a DELETE) is a success.
pub fn empty_success_is_a_success<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    for answer in [
        &b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..],
    ] {
        let canned = CannedServer::start(Behaviour::Answer(answer.to_vec()));
        let c = S::wrap(
            canned_builder::<S>(&canned)
                .access_token("at-x")
                .build()
                .unwrap(),
        );
        let out = c
            .delete_item(1, 2, 3)
            .unwrap_or_else(|e| panic!("{}: {e:?}", S::NAME));
        assert_eq!(out.data, serde_json::Value::Null);
    }
}

/// Item 6: both backends frame requests alike: `Content-Length: 0` on an empty
/// POST, none on GET or DELETE.
pub fn requests_are_framed_alike<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let canned = CannedServer::start(json_answer(200, r#"{"data":{}}"#));
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .access_token("at-x")
            .build()
            .unwrap(),
    );
    c.get_item(1, 2, 3, &[]).unwrap();
    c.delete_item(1, 2, 3).unwrap();
    c.get_upload_token().unwrap();
    c.update_item(1, 2, 3, &json!({"a": 1})).unwrap();
    let heads = canned.requests();
    assert_eq!(heads.len(), 4, "{heads:?}");
    let length = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().to_owned())
    };
    for head in &heads {
        assert!(!head.contains("transfer-encoding"), "{}: {head}", S::NAME);
    }
    assert!(
        heads[0].starts_with("GET ") && length(&heads[0]).is_none(),
        "{}: {}",
        S::NAME,
        heads[0]
    );
    assert!(
        heads[1].starts_with("DELETE ") && length(&heads[1]).is_none(),
        "{}: {}",
        S::NAME,
        heads[1]
    );
    assert!(heads[2].starts_with("POST "), "{}", heads[2]);
    assert_eq!(
        length(&heads[2]).as_deref(),
        Some("0"),
        "{}: {}",
        S::NAME,
        heads[2]
    );
    assert_eq!(
        length(&heads[3]).as_deref(),
        Some("16"),
        "{}: {}",
        S::NAME,
        heads[3]
    );
}

/// Item 8: a transport error says which failure it was; a POST whose
/// connection was refused never left, so it is retried, not `OutcomeUnknown`.
pub fn refused_post_is_retried_and_errors_say_which<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = S::wrap(
        ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(format!("http://{addr}"))
            .access_token("at-seeded")
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
        let server = MockServer::bind(addr, MockConfig::default()).unwrap();
        let now = SystemClock.now();
        server
            .state()
            .add_access_token("at-seeded", None, now, 3_600);
        server
    });
    let created = c.create_item(
        DEFAULT_APP_ID,
        DEFAULT_COLLECTION_ID,
        &json!({"title": "once"}),
    );
    let server = starter.join().unwrap();
    created.unwrap_or_else(|e| panic!("{}: {e:?}", S::NAME));
    assert_eq!(server.counters().items_created, 1);
    // Nothing listening at all: the error says so.
    drop(server);
    let e = S::wrap(
        ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(format!("http://{addr}"))
            .access_token("at-x")
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
    )
    .create_item(1, 2, &json!({}))
    .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "transport failure: connection refused or unreachable"
    );
}

/// Items 9 and 10: impossible settings are a `Config` error at `build()`.
pub fn impossible_settings_are_config_errors<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let base = || {
        ClientBuilder::<S::Client>::new()
            .without_env()
            .access_token("at-x")
    };
    let cases: Vec<(ClientBuilder<S::Client>, &str)> = vec![
        (base().timeout(Duration::MAX), "timeout"),
        (base().connect_timeout(Duration::MAX), "connect_timeout"),
        (base().call_timeout(Duration::MAX), "call_timeout"),
        (
            base().base_url("http://127.0.0.1:99999"),
            "http://127.0.0.1:99999",
        ),
        (base().base_url("http://127.0.0.1:0"), "port"),
    ];
    for (builder, named) in cases {
        let e = builder.build().unwrap_err();
        assert!(
            matches!(e, Error::Config(_)) && e.to_string().contains(named),
            "{}: {e}",
            S::NAME
        );
    }
}

/// Item 11: `.` and `..` as path parameters cannot be sent literally (reqwest's
/// URL parser resolves even `%2E%2E`), so both backends refuse them before
/// sending anything; a base URL with dot segments is resolved once, at build, so
/// both send the same path.
pub fn dot_segments_are_sent_literally<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let canned = CannedServer::start(json_answer(404, r#"{"error":"nope"}"#));
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .access_token("at-x")
            .build()
            .unwrap(),
    );
    for dots in ["..", "."] {
        let e = c.get_user_by_token(dots).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{}: {e:?}", S::NAME);
    }
    let e = c.get_user_by_token("a.b").unwrap_err();
    assert_eq!(
        e.status().map(u16::from),
        Some(404),
        "an ordinary token is sent: {e:?}"
    );
    let c = S::wrap(
        ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(format!("{}/a/../b", canned.url()))
            .access_token("at-x")
            .build()
            .unwrap(),
    );
    assert!(c.get_current_user().is_err());
    let lines: Vec<String> = canned
        .requests()
        .iter()
        .map(|h| h.lines().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        lines,
        ["GET /v1/user-token/a.b HTTP/1.1", "GET /b/v1/me HTTP/1.1"],
        "{}",
        S::NAME
    );
}

/// Item 14: an `on_token_refresh` callback that calls the client (directly, on
/// its own thread) cannot deadlock it.
pub fn callback_that_calls_the_client_does_not_deadlock<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = MockServer::start().unwrap();
        let slot: Arc<OnceLock<S>> = Arc::default();
        let inside = Arc::clone(&slot);
        let outcomes: Arc<Mutex<Vec<bool>>> = Arc::default();
        let sink = Arc::clone(&outcomes);
        let config = oauth().on_token_refresh(move |_| {
            if let Some(c) = inside.get() {
                sink.lock().unwrap().push(c.get_current_user().is_ok());
            }
        });
        let (c, clock): (S, _) = client_with_clock(&server, config);
        let _ = slot.set(c.clone());
        c.initialize_oauth(None).unwrap();
        clock.advance(Duration::from_secs(86_400));
        c.get_current_user().unwrap();
        let _ = done.send(outcomes.lock().unwrap().clone());
    });
    let outcomes = finished
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{}: the client deadlocked", S::NAME));
    assert_eq!(outcomes, [true, true], "{}", S::NAME);
}

/// Item 16: two clients on one token file save concurrently without a failure.
pub fn two_clients_share_one_token_file<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    server.set_rotate_refresh_tokens(false);
    let dir = temp_dir("shared-file", S::NAME);
    let path = dir.join("tokens.json");
    let make = || {
        S::wrap(
            builder::<S>(&server)
                .oauth(oauth())
                .token_store(Arc::new(FileTokenStore::new(&path)))
                .build()
                .unwrap(),
        )
    };
    let (a, b) = (make(), make());
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    c.initialize_oauth(None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(a.store_failure().is_none(), "{:?}", a.store_failure());
    assert!(b.store_failure().is_none(), "{:?}", b.store_failure());
    let stored = carthooks_client::TokenStore::load(&FileTokenStore::new(&path))
        .unwrap()
        .unwrap();
    assert!(stored.access_token.secret().starts_with("at-"));
    // The token file, and the shared store's lock and lease files.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["tokens.json", "tokens.json.lease", "tokens.json.lock"],
        "no temp files left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 17: store failures are visible through the API; an unreadable store
/// does not stop the client and loses nothing.
pub fn store_failures_are_reported_and_bad_files_kept<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let with_store = |store: FileTokenStore| {
        builder::<S>(&server)
            .oauth(oauth())
            .token_store(Arc::new(store))
            .build()
            .map(S::wrap)
    };
    // A save that fails.
    let c = with_store(FileTokenStore::new("/nonexistent-carthooks-dir/t.json")).unwrap();
    assert!(c.store_failure().is_none());
    c.initialize_oauth(None).unwrap();
    // The lease (the store is shared) failed, then the save.
    let f = c.store_failure().expect("the failed save is reported");
    assert_eq!((f.operation, f.failures), (StoreOperation::Save, 2));
    // Empty, truncated and garbage files: set aside, the client starts fresh.
    let dir = temp_dir("bad-store", S::NAME);
    for (i, content) in [&b""[..], b"{\"access_token\":\"at-trunc", b"\x00garbage"]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("tokens-{i}.json"));
        std::fs::write(&path, content).unwrap();
        let c = with_store(FileTokenStore::new(&path)).expect("a bad file does not fail build");
        let f = c.store_failure().expect("reported");
        assert_eq!(f.operation, StoreOperation::Load);
        assert!(!f.message.contains("at-trunc"), "{}", f.message);
        c.initialize_oauth(None).unwrap();
        assert!(
            c.store_failure()
                .is_some_and(|f| f.operation == StoreOperation::Load)
        );
        let saved = carthooks_client::TokenStore::load(&FileTokenStore::new(&path)).unwrap();
        assert!(saved.is_some(), "a fresh set was saved");
    }
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert_eq!(kept, 3, "every bad file was kept aside");
    // A directory where the file should be: build works, the saves fail visibly.
    let c = with_store(FileTokenStore::new(&dir)).expect("a directory does not fail build");
    assert_eq!(c.store_failure().unwrap().operation, StoreOperation::Load);
    c.initialize_oauth(None).unwrap();
    assert_eq!(c.store_failure().unwrap().operation, StoreOperation::Save);
    // A symbolic link is written through.
    #[cfg(unix)]
    {
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("tokens-0.json", &link).unwrap();
        let c = with_store(FileTokenStore::new(&link)).unwrap();
        let t = c.initialize_oauth(None).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let target: carthooks_core::OAuthTokens =
            serde_json::from_slice(&std::fs::read(dir.join("tokens-0.json")).unwrap()).unwrap();
        assert_eq!(target.access_token.secret(), t.access_token.secret());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 18: `call_timeout` bounds every attempt and wait of a call together.
pub fn call_timeout_bounds_the_whole_call<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    // A server that never answers: without a call timeout, 3 attempts of 1 s.
    let canned = CannedServer::start(Behaviour::Silent);
    let c = S::wrap(
        canned_builder::<S>(&canned)
            .access_token("at-x")
            .timeout(Duration::from_secs(1))
            .call_timeout(Duration::from_millis(1_200))
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let e = c.get_current_user().unwrap_err();
    assert!(e.is_timeout(), "{}: {e:?}", S::NAME);
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "{}: {:?}, more than the call timeout and one attempt",
        S::NAME,
        started.elapsed()
    );
    // Independent of the machine's load: the third attempt was never started.
    assert!(
        canned.requests().len() <= 2,
        "{:?}",
        canned.requests().len()
    );
    // A Retry-After longer than what is left is not waited for.
    let server = MockServer::start().unwrap();
    let c = S::wrap(
        builder::<S>(&server)
            .oauth(oauth())
            .call_timeout(Duration::from_secs(3))
            .build()
            .unwrap(),
    );
    c.initialize_oauth(None).unwrap();
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: Some("20".into()),
        },
        1,
        Some("/v1/me"),
    );
    let started = Instant::now();
    let e = c.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(503));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.counters().received_at("/v1/me"), 1);
}

/// Item 19: a refused refresh token of a user is never replaced by the app's
/// own client-credentials grant: the caller is told to re-authorize.
pub fn refused_user_refresh_token_never_falls_back_to_the_app<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let for_user: S = client(&server, oauth());
    let user_set = for_user.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    assert_eq!(
        user_set.identity,
        Some(carthooks_core::TokenIdentity::AppForUser)
    );
    let user_rt = user_set.refresh_token.unwrap().secret().to_owned();
    let (c, clock): (S, _) = client_with_clock(&server, oauth());
    let app = c.initialize_oauth(None).unwrap();
    assert_eq!(app.identity, Some(carthooks_core::TokenIdentity::App));
    let handed_in = c.refresh_oauth_token(Some(&user_rt)).unwrap();
    assert_eq!(
        handed_in.identity, None,
        "whose it is, the client cannot know"
    );
    assert_eq!(c.get_current_user().unwrap().data.username, "alice");
    // The user's tokens are revoked; the access token expires.
    server.revoke_all_tokens();
    clock.advance(Duration::from_secs(86_400));
    let app_grants = server.counters().grant("client_credentials");
    let e = c.get_current_user().unwrap_err();
    assert!(e.needs_reauthorization(), "{}: {e:?}", S::NAME);
    let e = c.get_current_user().unwrap_err();
    assert!(e.needs_reauthorization(), "{e:?}");
    assert_eq!(
        server.counters().grant("client_credentials"),
        app_grants,
        "calls meant for the user were never served as the app"
    );
}

/// Item 20: a token's lifetime counts from when its request was sent, not from
/// when a slow answer arrived.
pub fn lifetime_counts_from_the_request<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c: S = client(&server, oauth());
    server.inject(
        Fault::Delay(Duration::from_millis(2_500)),
        1,
        Some("/oauth/token"),
    );
    let sent = SystemClock.now();
    let t = c.initialize_oauth(None).unwrap();
    let expires_at = t.expires_at.unwrap();
    assert!(
        expires_at <= sent + 86_400 + 1,
        "{}: expires {} s after the request left",
        S::NAME,
        expires_at - sent
    );
}
