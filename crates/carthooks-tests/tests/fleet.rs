//! A fleet on one identity: processes share one `FileTokenStore` against a
//! server that rotates refresh tokens and revokes the whole token family when
//! a used one is presented again (carthooks-mock's reuse detection), with
//! 2-second access tokens; each worker starts from the empty file with a grant
//! of its own. Before any token request a client takes the
//! store's refresh lease and reads the store again, adopting a set another
//! process stored; so each expiry costs the fleet one token request, no
//! refresh token is ever presented twice, and no call fails.
//!
//! The workers are this test binary, re-run with `child_worker` selected and
//! `CARTHOOKS_FLEET_CHILD` naming the server and the file.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carthooks_client::{FileTokenStore, OAuthConfig};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, MockConfig, MockServer};

const CHILD_ENV: &str = "CARTHOOKS_FLEET_CHILD";
const PROCESSES: usize = 8;
const TASKS: usize = 16;
const RUN: Duration = Duration::from_secs(10);
const TOKEN_TTL: u64 = 2;

/// Not a test on its own: a worker, when run as a child. Prints
/// `RESULT <calls> <failures>`.
#[test]
fn child_worker() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = config.split('\n');
    let (url, path, sign_in) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next() == Some("sign-in"),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (calls, failures) = runtime.block_on(async {
        let client = carthooks_reqwest::Client::builder()
            .base_url(url)
            .oauth(OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
            .token_store(Arc::new(FileTokenStore::new(path)))
            .build()
            .unwrap();
        // From an empty file each worker signs in on its own (a grant is a new
        // token family: nothing is replayed); from a stored set they all start
        // with the same refresh token.
        if sign_in {
            client.initialize_oauth(None).await.unwrap();
        }
        let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let end = Instant::now() + RUN;
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (client, calls, failures) =
                    (client.clone(), Arc::clone(&calls), Arc::clone(&failures));
                tokio::spawn(async move {
                    while Instant::now() < end {
                        calls.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = client.get_current_user().await {
                            eprintln!("call failed: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        if let Some(failure) = client.token_store_failure() {
            eprintln!("store: {failure}");
        }
        (
            calls.load(Ordering::Relaxed),
            failures.load(Ordering::Relaxed),
        )
    });
    println!("RESULT {calls} {failures}");
}

/// Runs the fleet against a fresh server; returns (calls, failures,
/// elapsed ms, the server's counters).
fn fleet(seeded: bool) -> (u64, u64, u64, carthooks_mock::Counters) {
    let server = MockServer::start_with(MockConfig {
        access_token_ttl: TOKEN_TTL,
        reuse_detection: true,
        ..MockConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("carthooks-fleet-{}-{seeded}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    if seeded {
        // One sign-in, stored: every worker loads the same token set.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client = carthooks_reqwest::Client::builder()
                .base_url(server.url())
                .oauth(OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
                .token_store(Arc::new(FileTokenStore::new(&path)))
                .build()
                .unwrap();
            client.initialize_oauth(None).await.unwrap();
        });
    }
    let mode = if seeded { "stored" } else { "sign-in" };
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_worker", "--exact", "--nocapture"])
                .env(
                    CHILD_ENV,
                    format!("{}\n{}\n{mode}", server.url(), path.display()),
                )
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut calls, mut failures) = (0, 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let result = text
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .expect("a worker's result");
        let mut numbers = result.split(' ').map(|n| n.parse::<u64>().unwrap());
        calls += numbers.next().unwrap();
        failures += numbers.next().unwrap();
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let counters = server.counters();
    eprintln!(
        "{PROCESSES} processes x {TASKS} tasks ({mode}), {elapsed_ms} ms, {TOKEN_TTL} s tokens: \
         {calls} calls, {failures} failed, {} token requests ({:?}), {} refresh-token reuses",
        counters.token_requests, counters.grants, counters.refresh_token_reuses
    );
    std::fs::remove_dir_all(&dir).unwrap();
    (calls, failures, elapsed_ms, counters)
}

/// Not more often than the tokens expire: the client counts expiry in whole
/// seconds, so a set may be renewed up to 1 s early. Uncoordinated, every
/// process would refresh at every expiry.
fn assert_one_refresh_per_expiry(counters: &carthooks_mock::Counters, elapsed_ms: u64) {
    let at_most = elapsed_ms / ((TOKEN_TTL - 1) * 1000) + 1;
    let refreshes = counters.grant("refresh_token");
    assert!(
        (1..=at_most).contains(&refreshes),
        "{refreshes} refreshes in {elapsed_ms} ms (at most {at_most})"
    );
}

#[test]
fn a_fleet_starting_from_one_stored_set_never_replays_its_refresh_token() {
    // Every worker loads the same refresh token: uncoordinated, all of them
    // present it at the first expiry and the server revokes the family.
    let (calls, failures, elapsed_ms, counters) = fleet(true);
    assert_eq!(
        counters.refresh_token_reuses, 0,
        "no refresh token replayed"
    );
    assert_eq!(failures, 0, "no call failed");
    assert!(calls > 1000, "the workers made calls: {calls}");
    assert_eq!(
        counters.grant("client_credentials"),
        1,
        "the seeding sign-in only"
    );
    assert_one_refresh_per_expiry(&counters, elapsed_ms);
}

#[test]
fn a_fleet_signing_in_from_an_empty_file_shares_one_set_after() {
    let (calls, failures, elapsed_ms, counters) = fleet(false);
    assert_eq!(
        counters.refresh_token_reuses, 0,
        "no refresh token replayed"
    );
    assert_eq!(failures, 0, "no call failed");
    assert!(calls > 1000, "the workers made calls: {calls}");
    // One grant per worker at start (a grant is a family of its own).
    assert_eq!(counters.grant("client_credentials"), PROCESSES as u64);
    assert_one_refresh_per_expiry(&counters, elapsed_ms);
}
