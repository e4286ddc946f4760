//! Sessions: many users acting through one client's connection pool.
//!
//! Each user signs in by the authorization-code flow (a code the mock issues
//! as its sign-in page does) into a session of one app client; the mock keeps
//! items per user ([`MockConfig::per_user_items`]), so what a session lists
//! shows whom it acts for.

use std::sync::{Arc, Mutex};

use carthooks_client::{BuildClient, Connect};
use carthooks_core::{Error, ItemsQuery, OAuthTokens, TokenIdentity};
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_COLLECTION_ID, MockConfig, MockServer, SIGN_IN_USERS,
};

use crate::{Sdk, client, oauth};

const REDIRECT: &str = "https://app.example/cb";

/// The users of the sign-in page: (user id, name).
const USERS: [(u64, &str); 2] = [(7, SIGN_IN_USERS[0].0), (8, SIGN_IN_USERS[1].0)];

fn per_user_server() -> MockServer {
    MockServer::start_with(MockConfig {
        per_user_items: true,
        ..MockConfig::default()
    })
    .expect("mock server starts")
}

/// A new session of `app`, signed in as `user` with a fresh code.
fn signed_in<S: Sdk>(server: &MockServer, app: &S, user: u64) -> S {
    let now = carthooks_client::Clock::now(&carthooks_client::SystemClock);
    let code = server
        .state()
        .issue_code(DEFAULT_CLIENT_ID, user, REDIRECT, None, now);
    let session = app.session();
    let tokens = session
        .exchange_authorization_code(&code, REDIRECT, None)
        .expect("the code is exchanged");
    assert_eq!(tokens.identity, Some(TokenIdentity::User));
    session
}

fn titles<S: Sdk>(session: &S) -> Vec<String> {
    session
        .get_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &ItemsQuery::new())
        .expect("items listed")
        .data
        .iter()
        .map(|item| item["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn capitalized(name: &str) -> String {
    name[..1].to_uppercase() + &name[1..]
}

/// Two users signed in to two sessions of one client each see their own
/// items and name; the client's own (app) token is untouched; and all of it
/// went over the one connection the client's pool opened.
pub fn sessions_act_for_their_own_users_over_one_connection<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let app: S = client(&server, oauth());
    let app_tokens = app.initialize_oauth(None).unwrap();
    for (id, name) in USERS {
        let session = signed_in(&server, &app, id);
        assert_eq!(session.get_current_user().unwrap().data.username, name);
        let seen = titles(&session);
        assert_eq!(seen.len(), 2, "{name} sees {seen:?}");
        let own = format!("{}'s ", capitalized(name));
        assert!(seen.iter().all(|t| t.starts_with(&own)), "{name}: {seen:?}");
    }
    assert_eq!(
        app.get_current_tokens()
            .map(|t| t.access_token.secret().to_owned()),
        Some(app_tokens.access_token.secret().to_owned()),
        "a session's sign-in does not touch the client's own tokens"
    );
    assert!(
        app.get_current_user()
            .unwrap()
            .data
            .username
            .starts_with("service:")
    );
    assert_eq!(titles(&app).len(), 3 + 4, "the app sees every item");
    // One pool serves them all: a client per identity would open one
    // connection each (three). Usually it is one; async pools hand a
    // connection back from a task of their own, so on a loaded machine a
    // request that starts before that task ran opens a second one.
    let connections = server.counters().connections;
    assert!(
        (1..3).contains(&connections),
        "sessions share the client's connection pool: {connections} connections for 3 identities"
    );
}

/// A session starts with no identity: it never borrows the client's tokens
/// or obtains some with the client's credentials on its own.
pub fn a_session_never_borrows_the_app_identity<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let app: S = client(&server, oauth());
    app.initialize_oauth(None).unwrap();
    let before = server.counters().token_requests;
    let session = app.session();
    assert!(session.get_current_tokens().is_none());
    let e = session.get_current_user().unwrap_err();
    assert!(matches!(e, Error::NotAuthenticated(_)), "{e:?}");
    assert_eq!(server.counters().token_requests, before, "no token request");
}

/// Twenty signed-in sessions whose access tokens the server revoked, each
/// with several callers at once: one refresh per session, every call answered
/// for the session's own user.
pub fn each_session_refreshes_once_for_its_own_callers<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    const SESSIONS: usize = 20;
    let server = per_user_server();
    let app: S = client(&server, oauth());
    let sessions: Vec<(S, &str)> = (0..SESSIONS)
        .map(|i| {
            let (id, name) = USERS[i % 2];
            (signed_in(&server, &app, id), name)
        })
        .collect();
    server.state().revoke_access_tokens();
    let refreshes = server.counters().grant("refresh_token");
    let callers = (S::MANY / SESSIONS).clamp(4, 16);
    std::thread::scope(|scope| {
        for (session, name) in &sessions {
            scope.spawn(move || {
                for answer in session.concurrent_current_user(callers) {
                    assert_eq!(answer.expect("call answered").data.username, *name);
                }
            });
        }
    });
    assert_eq!(
        server.counters().grant("refresh_token") - refreshes,
        SESSIONS as u64,
        "one refresh per session"
    );
}

/// A session restored from a kept token set acts as that user; its callback
/// sees its new sets, and the client's own callback does not.
pub fn restored_sessions_and_their_callbacks<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let (config, app_seen) = crate::recording_callback(oauth());
    let app: S = client(&server, config);
    let kept = signed_in(&server, &app, 8).get_current_tokens().unwrap();
    let seen: Arc<Mutex<Vec<OAuthTokens>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let restored = app
        .session_from(
            Some(kept),
            Some(carthooks_core::TokenCallback::new(move |t| {
                sink.lock().unwrap().push(t.clone())
            })),
            None,
        )
        .unwrap();
    assert_eq!(restored.get_current_user().unwrap().data.username, "bob");
    let new = restored.refresh_oauth_token(None).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].access_token.secret(),
        new.access_token.secret(),
        "the callback saw the session's new set"
    );
    assert!(
        app_seen.lock().unwrap().is_empty(),
        "the client's callback is the client's"
    );
    assert!(titles(&restored).iter().all(|t| t.starts_with("Bob's")));

    let mut bad = new.clone();
    bad.access_token = carthooks_core::AccessToken::new("two\nlines");
    let e = app
        .session_from(Some(bad), None, None)
        .err()
        .expect("refused");
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(!e.to_string().contains("two"), "{e}");
}

/// `close` ends one session: the client and the other sessions go on.
pub fn closing_a_session_closes_only_it<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let app: S = client(&server, oauth());
    let (alice, bob) = (signed_in(&server, &app, 7), signed_in(&server, &app, 8));
    alice.close();
    assert!(matches!(alice.get_current_user(), Err(Error::Closed)));
    assert_eq!(bob.get_current_user().unwrap().data.username, "bob");
    app.close();
    assert!(app.is_closed() && !bob.is_closed());
    assert_eq!(bob.get_current_user().unwrap().data.username, "bob");
}

/// Each session saves its user's sets to a store of its own before using
/// them; after a restart (a new client), a session made on that store acts
/// for the same user without a token request.
pub fn sessions_keep_their_tokens_in_stores_of_their_own<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let app: S = client(&server, oauth());
    let stores: Vec<Arc<carthooks_client::MemoryTokenStore>> =
        USERS.iter().map(|_| Arc::default()).collect();
    for ((id, _), store) in USERS.into_iter().zip(&stores) {
        let session = app
            .session_from(None, None, Some(store.clone()))
            .expect("session builds");
        let now = carthooks_client::Clock::now(&carthooks_client::SystemClock);
        let code = server
            .state()
            .issue_code(DEFAULT_CLIENT_ID, id, REDIRECT, None, now);
        let tokens = session
            .exchange_authorization_code(&code, REDIRECT, None)
            .unwrap();
        let saved = carthooks_client::TokenStore::load(store.as_ref())
            .unwrap()
            .expect("saved before use");
        assert_eq!(saved.access_token.secret(), tokens.access_token.secret());
        assert_eq!(saved.identity, Some(TokenIdentity::User));
    }
    let restarted: S = client(&server, oauth());
    let before = server.counters().token_requests;
    for ((_, name), store) in USERS.into_iter().zip(&stores) {
        let session = restarted
            .session_from(None, None, Some(store.clone()))
            .expect("session builds");
        assert_eq!(session.get_current_user().unwrap().data.username, name);
    }
    assert_eq!(
        server.counters().token_requests,
        before,
        "the stored sets were used"
    );
}

/// With items per user, a user's session cannot read, change, lock or delete
/// another user's item (404, as if it were not there); the item is untouched.
pub fn a_users_session_cannot_touch_another_users_item<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = per_user_server();
    let app: S = client(&server, oauth());
    app.initialize_oauth(None).unwrap();
    let (alice, bob) = (signed_in(&server, &app, 7), signed_in(&server, &app, 8));
    let (a, c) = (DEFAULT_APP_ID, DEFAULT_COLLECTION_ID);
    let bobs = bob
        .get_items(a, c, &ItemsQuery::new())
        .unwrap()
        .data
        .first()
        .and_then(|item| item["id"].as_u64())
        .expect("bob has an item");
    let not_found = |result: Result<_, Error>| {
        let e = result.expect_err("refused");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e:?}");
    };
    not_found(alice.get_item(a, c, bobs, &[]).map(drop));
    not_found(
        alice
            .update_item(a, c, bobs, &serde_json::json!({"title": "mine now"}))
            .map(drop),
    );
    not_found(
        alice
            .lock_item(a, c, bobs, &carthooks_core::LockOptions::default())
            .map(drop),
    );
    not_found(alice.delete_item(a, c, bobs).map(drop));
    let item = app.get_item(a, c, bobs, &[]).unwrap().data;
    assert!(
        item["title"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Bob's"),
        "{item}"
    );
    assert_eq!(bob.get_item(a, c, bobs, &[]).unwrap().data["id"], bobs);
}
