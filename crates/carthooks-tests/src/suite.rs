//! The behavioural tests. Each is generic over the backend adapter.

use std::time::Duration;

use carthooks_client::{BuildClient, Connect};
use carthooks_core::{Error, FilterOp, ItemsQuery, OAuthAuthorizeCodeRequest, TransportErrorKind};
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID,
    DEFAULT_USER_TOKEN, MockServer,
};

use crate::canned::{Behaviour, CannedServer, http_answer};
use crate::{Sdk, builder, client, client_with_clock, oauth, recording_callback};

fn server() -> MockServer {
    MockServer::start().expect("mock server starts")
}

fn rt(tokens: &carthooks_core::OAuthTokens) -> String {
    tokens
        .refresh_token
        .as_ref()
        .expect("refresh token issued")
        .secret()
        .to_owned()
}

fn at(tokens: &carthooks_core::OAuthTokens) -> String {
    tokens.access_token.secret().to_owned()
}

const REDIRECT: &str = "https://app.example/cb";

pub fn client_credentials<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    let tokens = c.initialize_oauth(None).unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert!(
        tokens.expires_at.unwrap() > carthooks_client::Clock::now(&carthooks_client::SystemClock)
    );
    let me = c.get_current_user().unwrap();
    assert_eq!(me.data.username, format!("service:{DEFAULT_CLIENT_ID}"));
    assert!(me.trace_id.unwrap().starts_with("mock-trace-"));
    assert_eq!(server.counters().grant("client_credentials"), 1);
    // The token endpoint got only what the grant needs: no bearer token, no refresh token.
    let state = server.state();
    let token_request = state
        .log()
        .iter()
        .find(|r| r.path == "/oauth/token")
        .unwrap();
    assert!(token_request.header("authorization").is_none());
    let body = String::from_utf8_lossy(&token_request.body);
    assert_eq!(
        body,
        format!(
            "grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}"
        )
    );
}

pub fn client_credentials_acting_for_a_user<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    c.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    let me = c.get_current_user().unwrap().data;
    assert_eq!((me.user_id, me.username.as_str()), (7, "alice"));
    assert_eq!(me.tenant_id, 123);
}

pub fn unknown_user_token_is_invalid_grant<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    let e = c.initialize_oauth(Some("not-a-user-token")).unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_grant"), "{e:?}");
    assert_eq!(e.status().map(u16::from), Some(400));
    assert!(c.get_current_tokens().is_none());
}

/// A user-acting client asks for a code; a second client exchanges it.
fn obtain_code<S: Sdk>(server: &MockServer, state: &str) -> String
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let user_client: S = client(server, oauth());
    user_client
        .initialize_oauth(Some(DEFAULT_USER_TOKEN))
        .unwrap();
    let answer = user_client
        .get_oauth_authorize_code(
            &OAuthAuthorizeCodeRequest::new(DEFAULT_CLIENT_ID, REDIRECT, state).target_tenant(123),
        )
        .unwrap();
    assert!(answer.data.redirect_url.starts_with(REDIRECT));
    assert_eq!(answer.data.state().as_deref(), Some(state));
    answer.data.code().unwrap().secret().to_owned()
}

pub fn authorization_code_flow<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let code = obtain_code::<S>(&server, "csrf-state-1");
    let web: S = client(&server, oauth());
    let tokens = web
        .exchange_authorization_code(&code, REDIRECT, None)
        .unwrap();
    assert!(tokens.refresh_token.is_some());
    assert_eq!(web.get_current_user().unwrap().data.username, "alice");
    assert_eq!(server.counters().grant("authorization_code"), 1);
}

pub fn authorization_code_is_single_use_and_bound_to_redirect_uri<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let code = obtain_code::<S>(&server, "s");
    let web: S = client(&server, oauth());
    let e = web
        .exchange_authorization_code(&code, "https://evil.example/cb", None)
        .unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
    web.exchange_authorization_code(&code, REDIRECT, None)
        .unwrap();
    let e = web
        .exchange_authorization_code(&code, REDIRECT, None)
        .unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
    assert!(e.trace_id().is_some());
}

pub fn manual_refresh_explicit_configured_and_current<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let first: S = client(&server, oauth());
    let t0 = first.initialize_oauth(None).unwrap();

    // Current: no argument, no configured token.
    let t1 = first.refresh_oauth_token(None).unwrap();
    assert_ne!(rt(&t1), rt(&t0));
    assert_ne!(at(&t1), at(&t0));
    assert_eq!(at(&first.get_current_tokens().unwrap()), at(&t1));

    // Explicit: a refresh token handed in.
    let other: S = client(&server, oauth());
    let t2 = other.refresh_oauth_token(Some(&rt(&t1))).unwrap();
    assert_eq!(
        other.get_current_user().unwrap().data.username,
        format!("service:{DEFAULT_CLIENT_ID}")
    );

    // Configured: a stored refresh token in OAuthConfig, used by the first call.
    let restarted: S = client(&server, oauth().with_refresh_token(rt(&t2)));
    let t3 = restarted.refresh_oauth_token(None).unwrap();
    assert_ne!(rt(&t3), rt(&t2));
    // …and again after a rotation: the newest one, not the configured (spent) one.
    restarted.refresh_oauth_token(None).unwrap();
    assert_eq!(server.counters().grant("refresh_token"), 4);

    // Without any refresh token: a clear error, nothing sent.
    let empty: S = client(&server, oauth());
    let before = server.counters().requests;
    assert!(matches!(
        empty.refresh_oauth_token(None),
        Err(Error::NotAuthenticated(_))
    ));
    assert_eq!(server.counters().requests, before);
}

pub fn auto_refresh_inside_the_window<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let (config, seen) = recording_callback(oauth());
    let (c, clock): (S, _) = client_with_clock(&server, config);
    let t0 = c.initialize_oauth(None).unwrap();
    // 10 minutes before expiry: fresh, no refresh.
    clock.advance(Duration::from_secs(86_400 - 600));
    c.get_current_user().unwrap();
    assert_eq!(server.counters().grant("refresh_token"), 0);
    // 4 minutes before expiry: inside the 5-minute window.
    clock.advance(Duration::from_secs(360));
    c.get_current_user().unwrap();
    assert_eq!(server.counters().grant("refresh_token"), 1);
    let now = c.get_current_tokens().unwrap();
    assert_ne!(at(&now), at(&t0));
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "initial grant and the refresh"
    );
    // The new token is fresh: the next call does not refresh again.
    c.get_current_user().unwrap();
    assert_eq!(server.counters().grant("refresh_token"), 1);
}

pub fn expired_token_refreshes_before_the_call<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let (c, clock): (S, _) = client_with_clock(&server, oauth());
    c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(86_400 + 1));
    let items = c
        .get_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &ItemsQuery::new())
        .unwrap();
    assert_eq!(items.data.len(), 3);
    assert_eq!(server.counters().grant("refresh_token"), 1);
    assert_eq!(
        server.counters().unauthorized,
        0,
        "no call went out with the expired token"
    );
}

pub fn callback_sees_rotated_refresh_token_before_use<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let (config, seen) = recording_callback(oauth());
    let (c, clock): (S, _) = client_with_clock(&server, config);
    let t0 = c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(86_400));
    c.get_current_user().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(rt(&seen[0]), rt(&t0));
    assert_ne!(
        rt(&seen[1]),
        rt(&t0),
        "the rotated refresh token reached the callback"
    );
    // The /v1/me call that followed used exactly the token the callback saw.
    let state = server.state();
    let last_me = state
        .log()
        .iter()
        .rev()
        .find(|r| r.path == "/v1/me")
        .unwrap();
    assert_eq!(
        last_me.header("authorization"),
        Some(format!("Bearer {}", at(&seen[1])).as_str())
    );
}

pub fn used_refresh_token_is_rejected_with_typed_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    let t0 = c.initialize_oauth(None).unwrap();
    c.refresh_oauth_token(None).unwrap();
    let e = c.refresh_oauth_token(Some(&rt(&t0))).unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_refresh_token"));
    assert_eq!(e.status().map(u16::from), Some(400));
    assert!(e.trace_id().is_some());
    assert!(matches!(e, Error::OAuth(_)));
    // The refusal of a token that is not the current one leaves the client working.
    c.get_current_user().unwrap();
}

pub fn kept_refresh_token_when_server_omits_it<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    server.set_rotate_refresh_tokens(false);
    let c: S = client(&server, oauth());
    let t0 = c.initialize_oauth(None).unwrap();
    let t1 = c.refresh_oauth_token(None).unwrap();
    assert_eq!(rt(&t1), rt(&t0), "the old refresh token is kept");
    c.refresh_oauth_token(None).unwrap();
    assert_eq!(server.counters().grant("refresh_token"), 2);
}

pub fn wrong_client_secret_is_typed_error_with_status_and_trace_id<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(
        &server,
        carthooks_core::OAuthConfig::new(DEFAULT_CLIENT_ID, "wrong-secret"),
    );
    let e = c.initialize_oauth(None).unwrap_err();
    assert!(matches!(e, Error::OAuth(_)), "{e:?}");
    assert_eq!(e.status().map(u16::from), Some(401));
    assert_eq!(e.oauth_error_code(), Some("invalid_client"));
    assert!(e.trace_id().unwrap().starts_with("mock-trace-"));
    assert!(e.is_permanent_oauth_error());
    let text = format!("{e} {e:?}");
    assert!(!text.contains("wrong-secret"), "{text}");
}

pub fn concurrent_callers_on_expired_token_share_one_refresh<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let (config, seen) = recording_callback(oauth());
    let (c, clock): (S, _) = client_with_clock(&server, config);
    c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(2 * 86_400));
    let results = c.concurrent_current_user(64);
    assert_eq!(results.len(), 64);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let counters = server.counters();
    assert_eq!(
        counters.token_requests, 2,
        "one grant, then exactly one refresh for 64 callers"
    );
    assert_eq!(counters.grant("refresh_token"), 1);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

pub fn revoked_token_is_refreshed_and_the_call_replayed_once<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    let t0 = c.initialize_oauth(None).unwrap();
    server.revoke_access_tokens();
    let me = c.get_current_user().unwrap();
    assert_eq!(me.data.user_id, 1000);
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.grant("refresh_token"), 1);
    assert_ne!(at(&c.get_current_tokens().unwrap()), at(&t0));

    // Everything revoked: the refresh token is refused, so the client-credentials
    // grant runs again and the call is replayed: one 401, two token requests.
    server.revoke_all_tokens();
    let before = server.counters();
    assert_eq!(c.get_current_user().unwrap().data.user_id, 1000);
    let after = server.counters();
    assert_eq!(after.unauthorized - before.unauthorized, 1);
    assert_eq!(
        after.grant("refresh_token") - before.grant("refresh_token"),
        1
    );
    assert_eq!(
        after.grant("client_credentials") - before.grant("client_credentials"),
        1
    );

    // A client that cannot re-run its grant (authorization code): one 401, one
    // refused refresh, then the typed error; no loop.
    let code = obtain_code::<S>(&server, "s");
    let web: S = client(&server, oauth());
    web.exchange_authorization_code(&code, REDIRECT, None)
        .unwrap();
    server.revoke_all_tokens();
    let before = server.counters();
    let e = web.get_current_user().unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_refresh_token"), "{e:?}");
    let after = server.counters();
    assert_eq!(after.unauthorized - before.unauthorized, 1);
    assert_eq!(after.token_requests - before.token_requests, 1);
    // The refused refresh token is not sent again.
    let e = web.get_current_user().unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_refresh_token"));
    assert_eq!(server.counters().token_requests, after.token_requests);
}

pub fn direct_access_token_mode<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let issuer: S = client(&server, oauth());
    let token = at(&issuer.initialize_oauth(None).unwrap());
    let before = server.counters().token_requests;
    let direct = S::wrap(
        builder::<S>(&server)
            .access_token(token.as_str())
            .build()
            .unwrap(),
    );
    assert_eq!(direct.get_current_user().unwrap().data.user_id, 1000);
    assert_eq!(server.counters().token_requests, before);
    // A rejected direct token is the server's 401, typed, not a refresh attempt.
    server.revoke_all_tokens();
    let e = direct.get_current_user().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(401));
    assert!(matches!(e, Error::Api(_)));
    assert_eq!(server.counters().token_requests, before);
}

pub fn no_credentials_is_a_clear_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c = S::wrap(builder::<S>(&server).build().unwrap());
    assert!(matches!(
        c.get_current_user(),
        Err(Error::NotAuthenticated(_))
    ));
    assert!(matches!(c.initialize_oauth(None), Err(Error::Config(_))));
    assert_eq!(server.counters().requests, 0);
    // Bad configuration is refused at build time.
    let e = builder::<S>(&server)
        .base_url("ftp://x")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    let e = builder::<S>(&server)
        .oauth(carthooks_core::OAuthConfig::new("id", ""))
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)));
}

pub fn items_list_filter_and_create<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    c.initialize_oauth(None).unwrap();
    let q = ItemsQuery::new()
        .limit(1)
        .start(0)
        .filter("f_1001", FilterOp::Eq, "EF250920962519");
    let page = c
        .get_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &q)
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.total(), Some(1));
    assert_eq!(page.data[0]["fields"]["f_1001"], "EF250920962519");
    let created = c
        .create_item(
            DEFAULT_APP_ID,
            DEFAULT_COLLECTION_ID,
            &serde_json::json!({"title": "New Item", "status": "active"}),
        )
        .unwrap();
    assert_eq!(created.data["title"], "New Item");
    assert!(created.data["id"].as_u64().is_some());
    let all = c
        .get_items(
            DEFAULT_APP_ID,
            DEFAULT_COLLECTION_ID,
            &ItemsQuery::new().limit(2),
        )
        .unwrap();
    assert_eq!(all.total(), Some(4));
    assert_eq!(all.data.len(), 2);
    assert_eq!(
        server
            .state()
            .item_count(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID),
        4
    );
}

pub fn closed_client_refuses_calls<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let c: S = client(&server, oauth());
    c.initialize_oauth(None).unwrap();
    let clone = c.clone();
    c.close();
    let before = server.counters().requests;
    assert!(matches!(clone.get_current_user(), Err(Error::Closed)));
    assert!(matches!(clone.initialize_oauth(None), Err(Error::Closed)));
    assert_eq!(server.counters().requests, before);
}

fn canned_client<S: Sdk>(canned: &CannedServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c = carthooks_client::ClientBuilder::<S::Client>::new()
        .without_env()
        .base_url(canned.url())
        .access_token("at-canned")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    S::wrap(c)
}

pub fn hostile_answers_are_typed_errors<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            http_answer(
                502,
                "text/html",
                b"<html><body>502 Bad Gateway</body></html>",
            ),
            502,
        ),
        (
            http_answer(200, "application/json", br#"{"data":{"user_id":1,"user"#),
            200,
        ),
        (
            http_answer(
                200,
                "application/json",
                br#"{"data":{"user_id":"at-canned"}}"#,
            ),
            200,
        ),
        (http_answer(200, "application/json", b"[1,2,3]"), 200),
        (http_answer(200, "application/json", b""), 200),
        (
            http_answer(200, "application/json", b"\xff\xfe\x00garbage"),
            200,
        ),
    ];
    for (answer, status) in cases {
        let canned = CannedServer::start(Behaviour::Answer(answer));
        let c: S = canned_client(&canned);
        let e = c.get_current_user().unwrap_err();
        assert!(
            matches!(e, Error::UnexpectedResponse { .. }),
            "{} {e:?}",
            S::NAME
        );
        assert_eq!(e.status().map(u16::from), Some(status));
        assert!(!format!("{e} {e:?}").contains("at-canned"));
    }
    // A redirect is never followed: it comes back as an error, not as the target's answer.
    let canned = CannedServer::start(Behaviour::Answer(
        b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    ));
    let c: S = canned_client(&canned);
    let e = c.get_current_user().unwrap_err();
    let t = e.transport_error().expect("a transport error");
    assert_eq!(t.kind(), TransportErrorKind::Redirect, "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("redirected to host 127.0.0.1") && !text.contains("steal"),
        "{text}"
    );
    // A token endpoint answering garbage: typed error, no tokens installed.
    let canned = CannedServer::start(Behaviour::Answer(http_answer(
        200,
        "application/json",
        br#"{"data":{"refresh_token":"rt-x"}}"#,
    )));
    let c = S::wrap(
        carthooks_client::ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(canned.url())
            .oauth(oauth())
            .build()
            .unwrap(),
    );
    let e = c.initialize_oauth(None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnexpectedResponse {
                status: http::StatusCode::OK,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(c.get_current_tokens().is_none());
}

pub fn timeout_is_a_typed_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let canned = CannedServer::start(Behaviour::Silent);
    let c = S::wrap(
        carthooks_client::ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(canned.url())
            .access_token("at-canned")
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let e = c.get_current_user().unwrap_err();
    assert!(e.is_timeout(), "{} {e:?}", S::NAME);
}

pub fn connection_refused_is_a_typed_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = S::wrap(
        carthooks_client::ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(format!("http://127.0.0.1:{port}"))
            .oauth(oauth())
            .build()
            .unwrap(),
    );
    let e = c.initialize_oauth(None).unwrap_err();
    match &e {
        Error::Transport(t) => {
            assert_eq!(t.kind(), TransportErrorKind::Connect, "{e:?}");
            assert!(e.to_string().contains("connection refused"), "{e}");
            assert!(t.never_sent());
        }
        other => panic!("{}: expected a transport error, got {other:?}", S::NAME),
    }
}

pub fn no_secret_in_debug_or_errors<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let (config, _seen) = recording_callback(oauth().with_refresh_token("rt-configured-secret"));
    let code = obtain_code::<S>(&server, "st");
    let built = builder::<S>(&server).oauth(config.clone());
    let builder_debug = format!("{built:?}");
    let raw_client = builder::<S>(&server)
        .oauth(config.clone())
        .access_token("at-direct-secret")
        .build()
        .unwrap();
    let client_debug = format!("{raw_client:?}");
    let c = S::wrap(built.build().unwrap());
    let tokens = c
        .exchange_authorization_code(&code, REDIRECT, None)
        .unwrap();
    let e1 = c
        .refresh_oauth_token(Some("rt-configured-secret"))
        .unwrap_err();
    let e2 = S::wrap(builder::<S>(&server).oauth(oauth()).build().unwrap())
        .initialize_oauth(Some(DEFAULT_USER_TOKEN))
        .map(|t| format!("{t:?}"))
        .unwrap();
    let text = format!(
        "{config:?} {builder_debug} {client_debug} {tokens:?} {:?} {e1} {e1:?} {e2} {:?} {:?}",
        c.get_current_tokens(),
        carthooks_core::OAuthTokenRequest {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            grant: carthooks_core::Grant::AuthorizationCode {
                code: code.as_str().into(),
                redirect_uri: REDIRECT.into(),
                code_verifier: Some(carthooks_core::PkceVerifier::new("verifier-in-debug")),
            }
        },
        carthooks_core::ClientConfig::default().with_access_token(at(&tokens)),
    );
    for secret in [
        DEFAULT_CLIENT_SECRET,
        DEFAULT_USER_TOKEN,
        "rt-configured-secret",
        "at-direct-secret",
        "verifier-in-debug",
        code.as_str(),
        at(&tokens).as_str(),
        rt(&tokens).as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{} leaked {secret:?} in {text}",
            S::NAME
        );
    }
}

/// Counts lookups and answers with the given addresses.
struct CountingLookup {
    calls: std::sync::atomic::AtomicU64,
    ips: Vec<std::net::IpAddr>,
}

impl carthooks_client::Lookup for CountingLookup {
    fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .ips
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, port))
            .collect())
    }
}

pub fn dns_goes_through_the_cache_ipv4_only<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = server();
    let url = format!("http://localhost:{}", server.addr().port());
    let v6: std::net::IpAddr = "::1".parse().unwrap();
    let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // The mock listens on 127.0.0.1 only: the client must skip the IPv6 answer.
    let both = std::sync::Arc::new(CountingLookup {
        calls: Default::default(),
        ips: vec![v6, v4],
    });
    let built = carthooks_client::ClientBuilder::<S::Client>::new()
        .without_env()
        .base_url(url.as_str())
        .oauth(oauth())
        .dns_lookup(both.clone())
        .build()
        .unwrap();
    let c = S::wrap(built);
    c.initialize_oauth(None).unwrap();
    c.get_current_user().unwrap();
    assert!(both.calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let stats = c.dns_stats();
    assert!(stats.lookups >= 1 && stats.failures == 0, "{stats:?}");
    // Only an IPv6 answer, IPv6 off: a typed connection error, nothing sent.
    let only_v6 = std::sync::Arc::new(CountingLookup {
        calls: Default::default(),
        ips: vec![v6],
    });
    let before = server.counters().received;
    let c = S::wrap(
        carthooks_client::ClientBuilder::<S::Client>::new()
            .without_env()
            .base_url(url.as_str())
            .oauth(oauth())
            .retry_policy(carthooks_core::RetryPolicy::none())
            .dns_lookup(only_v6.clone())
            .build()
            .unwrap(),
    );
    let e = c.initialize_oauth(None).unwrap_err();
    match &e {
        Error::Transport(t) => {
            assert_eq!(t.kind(), TransportErrorKind::Dns, "{e:?}");
            assert!(t.never_sent());
        }
        other => panic!("{}: {other:?}", S::NAME),
    }
    assert!(only_v6.calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(
        c.dns_stats().failures >= 1,
        "the IPv6-only answer was refused by the filter"
    );
    assert_eq!(server.counters().received, before);
}
