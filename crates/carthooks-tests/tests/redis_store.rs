//! The Redis token store's contract, against a real `redis-server`.

use std::time::Duration;

use carthooks_client::{LeaseAttempt, SaveAttempt, TokenStore};
use carthooks_core::{AccessToken, OAuthTokens, RefreshToken};
use carthooks_redis::RedisTokenStore;
use carthooks_tests::redis_server::RedisServer;

fn set(n: u64) -> OAuthTokens {
    let mut tokens = OAuthTokens::from_access_token(AccessToken::new(format!("at-secret-{n}")));
    tokens.refresh_token = Some(RefreshToken::new(format!("rt-secret-{n}")));
    tokens
}

#[test]
fn one_lease_at_a_time_fenced_saves_and_identities() {
    let redis = RedisServer::start();
    let (a, b) = (
        RedisTokenStore::open(&redis.url(), "client-1").unwrap(),
        RedisTokenStore::open(&redis.url(), "client-1").unwrap(),
    );
    assert!(a.coordinates());
    assert!(a.load_stored("client-1").unwrap().is_none());
    let ttl = Duration::from_secs(30);
    let LeaseAttempt::Granted(first) = a.try_lease("a", ttl).unwrap() else {
        panic!("granted");
    };
    assert!(
        matches!(b.try_lease("b", ttl).unwrap(), LeaseAttempt::Held { remaining } if remaining > Duration::from_secs(25))
    );
    // Its holder asking again keeps it.
    assert_eq!(
        a.try_lease("a", ttl).unwrap(),
        LeaseAttempt::Granted(first.clone())
    );
    let SaveAttempt::Saved { version: v1 } =
        a.save_fenced(&set(1), "client-1/app", &first).unwrap()
    else {
        panic!("saved");
    };
    assert!(a.renew_lease(&first, ttl).unwrap());
    a.release_lease(&first).unwrap();
    let LeaseAttempt::Granted(second) = b.try_lease("b", ttl).unwrap() else {
        panic!("granted after release");
    };
    assert!(second.fence > first.fence);
    // The old holder's late save is refused; its lease is gone.
    assert_eq!(
        a.save_fenced(&set(9), "client-1/app", &first).unwrap(),
        SaveAttempt::Fenced
    );
    assert!(!a.renew_lease(&first, ttl).unwrap());
    let SaveAttempt::Saved { version: v2 } =
        b.save_fenced(&set(2), "client-1/app", &second).unwrap()
    else {
        panic!("saved");
    };
    assert!(v2 > v1);
    let stored = b.load_stored("client-1/app").unwrap().unwrap();
    assert_eq!(
        (stored.tokens.access_token.secret(), stored.version),
        ("at-secret-2", v2)
    );
    assert!(
        b.load_stored("client-2/app").unwrap().is_none(),
        "another identity's set"
    );
    // Another namespace is another store.
    let other = RedisTokenStore::open(&redis.url(), "client-2").unwrap();
    assert!(other.load().unwrap().is_none());
}

#[test]
fn a_lease_that_lapses_goes_to_the_next_holder() {
    let redis = RedisServer::start();
    let store = RedisTokenStore::open(&redis.url(), "lapse").unwrap();
    let LeaseAttempt::Granted(slow) = store.try_lease("slow", Duration::from_millis(100)).unwrap()
    else {
        panic!("granted");
    };
    std::thread::sleep(Duration::from_millis(250));
    // Neither saved under nor given back: the next holder is told.
    let LeaseAttempt::Lapsed(next) = store.try_lease("next", Duration::from_secs(5)).unwrap()
    else {
        panic!("a lapsed lease is granted to the next, as lapsed");
    };
    assert!(next.fence > slow.fence);
    assert_eq!(
        store.save_fenced(&set(1), "id", &slow).unwrap(),
        SaveAttempt::Fenced
    );
    // Saved under, then left to lapse: settled, so the next is a plain grant.
    store.save_fenced(&set(2), "id", &next).unwrap();
    assert!(store.renew_lease(&next, Duration::from_millis(10)).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    let LeaseAttempt::Granted(third) = store.try_lease("third", Duration::from_millis(10)).unwrap()
    else {
        panic!("a lease saved under is settled");
    };
    // Left to lapse without a save or a release: the next is told.
    std::thread::sleep(Duration::from_millis(50));
    let LeaseAttempt::Lapsed(fourth) = store.try_lease("fourth", Duration::from_secs(5)).unwrap()
    else {
        panic!("lapsed");
    };
    assert!(fourth.fence > third.fence);
    // Given back: settled too.
    store.release_lease(&fourth).unwrap();
    assert!(matches!(
        store.try_lease("fifth", Duration::from_secs(5)).unwrap(),
        LeaseAttempt::Granted(_)
    ));
}

#[test]
fn redis_down_is_a_clear_error_without_secrets_and_a_restart_is_picked_up() {
    let mut redis = RedisServer::start();
    let store = RedisTokenStore::open(&redis.url(), "restart").unwrap();
    let LeaseAttempt::Granted(lease) = store.try_lease("a", Duration::from_secs(5)).unwrap() else {
        panic!("granted");
    };
    let SaveAttempt::Saved { version: before } = store.save_fenced(&set(1), "id", &lease).unwrap()
    else {
        panic!("saved");
    };
    redis.kill();
    let e = store.load_stored("id").unwrap_err();
    assert!(!e.to_string().contains("secret"), "{e}");
    let e = store.save_fenced(&set(2), "id", &lease).unwrap_err();
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(
        !format!("{store:?}").contains("127.0.0.1"),
        "no URL (it may hold a password)"
    );
    // Back, empty (no persistence): the store reconnects by itself.
    redis.restart();
    assert!(store.load_stored("id").unwrap().is_none());
    let LeaseAttempt::Granted(after) = store.try_lease("b", Duration::from_secs(5)).unwrap() else {
        panic!("granted");
    };
    // Counting did not start again: the first set saved after the restart is
    // newer than every set a client took from the lost one.
    assert!(after.fence > lease.fence);
    let SaveAttempt::Saved { version } = store.save_fenced(&set(3), "id", &after).unwrap() else {
        panic!("saved");
    };
    assert!(version > before, "{version} > {before}");
    // A bad URL is refused at open, without echoing it.
    let e = RedisTokenStore::open("redis://:hunter2@[bad", "x").unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn the_first_call_after_a_restart_reconnects_instead_of_failing() {
    let mut redis = RedisServer::start();
    let store = RedisTokenStore::open(&redis.url(), "stale").unwrap();
    assert!(store.load_stored("id").unwrap().is_none());
    // Restarted between two calls: the kept connection is dead, and nothing
    // has noticed yet. A refresh that failed here would go uncoordinated.
    redis.restart();
    assert!(matches!(
        store.try_lease("a", Duration::from_secs(5)).unwrap(),
        LeaseAttempt::Granted(_)
    ));
}

#[test]
fn a_client_whose_redis_is_down_at_start_works_alone_and_says_so() {
    use carthooks_client::StoreOperation;
    use std::sync::Arc;
    // A port nothing listens on: Redis is down when the client starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = carthooks_mock::MockServer::start().unwrap();
    let store = RedisTokenStore::open(&format!("redis://127.0.0.1:{port}/"), "down").unwrap();
    let client = carthooks_ureq::Client::builder()
        .base_url(server.url())
        .oauth(carthooks_client::OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .token_store(Arc::new(store))
        .build()
        .expect("a store that is down does not fail build");
    let failure = client
        .token_store_failure()
        .expect("the load failure is reported");
    assert_eq!(failure.operation, StoreOperation::Load);
    // It signs in and calls on its own (no lease to take, nothing saved).
    client.initialize_oauth(None).unwrap();
    assert!(client.get_current_user().is_ok());
    let failure = client.token_store_failure().unwrap();
    assert_eq!(failure.operation, StoreOperation::Save);
    assert!(
        failure.failures >= 3,
        "load, lease and save: {}",
        failure.failures
    );
    assert!(!failure.message.contains("secret"), "{}", failure.message);
}
