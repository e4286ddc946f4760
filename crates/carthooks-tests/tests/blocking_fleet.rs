//! The blocking client coordinates through a shared store too: two blocking
//! clients in one process on one `FileTokenStore` (two lease holders), against
//! a server that revokes the token family on reuse, with 2-second tokens; the
//! first refresh takes the server 6 s, longer than the 5 s lease, which the
//! blocking client renews from a second thread meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carthooks_client::{FileTokenStore, OAuthConfig};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, MockConfig, MockServer};

#[test]
fn two_blocking_clients_on_one_file_store_never_replay_a_refresh_token() {
    let server = MockServer::start_with(MockConfig {
        access_token_ttl: 2,
        reuse_detection: true,
        ..MockConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("carthooks-blocking-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let client = || {
        carthooks_ureq::Client::builder()
            .base_url(server.url())
            .oauth(OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
            .token_store(Arc::new(FileTokenStore::new(&path)))
            .build()
            .unwrap()
    };
    // One sign-in, stored; both clients start from it (one refresh token).
    client().initialize_oauth(None).unwrap();
    let (a, b) = (client(), client());
    server.inject(
        Fault::SlowStart(Duration::from_secs(6)),
        1,
        Some("/oauth/token"),
    );
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + Duration::from_secs(11);
    let threads: Vec<_> = [a, b]
        .into_iter()
        .flat_map(|c| [c.clone(), c])
        .map(|c| {
            let (calls, failures) = (Arc::clone(&calls), Arc::clone(&failures));
            std::thread::spawn(move || {
                while Instant::now() < end {
                    calls.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = c.get_current_user() {
                        eprintln!("call failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let counters = server.counters();
    eprintln!(
        "{} calls, {} failed, {:?}, {} reuses",
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        counters.grants,
        counters.refresh_token_reuses
    );
    assert_eq!(counters.refresh_token_reuses, 0, "the lease was renewed");
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(
        counters.grant("refresh_token") >= 2,
        "refreshed after the slow one"
    );
    assert!(calls.load(Ordering::Relaxed) > 100);
    std::fs::remove_dir_all(&dir).unwrap();
}
