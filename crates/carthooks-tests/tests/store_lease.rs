//! The file store as a coordination point, across processes: 4 processes × 2
//! threads (each thread its own `FileTokenStore` on one path) take turns by the
//! refresh lease to read the stored set and save its successor. If two ever
//! held the lease at once, an update would be lost and the count would come
//! out short; each fenced save must come out with a version larger than the
//! set it replaced.
//!
//! The children are this test binary, re-run with `child_incrementer`
//! selected and `CARTHOOKS_LEASE_CHILD` naming the file.

use std::process::{Command, Stdio};
use std::time::Duration;

use carthooks_client::{FileTokenStore, LeaseAttempt, SaveAttempt, TokenStore};
use carthooks_core::{AccessToken, OAuthTokens};

const CHILD_ENV: &str = "CARTHOOKS_LEASE_CHILD";
const PROCESSES: u64 = 4;
const THREADS: u64 = 2;
const ROUNDS: u64 = 40;
const IDENTITY: &str = "client-1/app";

fn set(n: u64) -> OAuthTokens {
    OAuthTokens::from_access_token(AccessToken::new(format!("at-{n}")))
}

fn count(tokens: &OAuthTokens) -> u64 {
    tokens
        .access_token
        .secret()
        .trim_start_matches("at-")
        .parse()
        .unwrap()
}

/// Not a test on its own: the incrementing loop, when run as a child.
#[test]
fn child_incrementer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = FileTokenStore::new(path);
                let holder = format!("{}-{t}", std::process::id());
                let mut done = 0;
                while done < ROUNDS {
                    match store.try_lease(&holder, Duration::from_secs(10)).unwrap() {
                        LeaseAttempt::Granted(lease) => {
                            let (n, before) = store
                                .load_stored(IDENTITY)
                                .unwrap()
                                .map_or((0, 0), |s| (count(&s.tokens), s.version));
                            let saved = store.save_fenced(&set(n + 1), IDENTITY, &lease).unwrap();
                            assert!(
                                matches!(saved, SaveAttempt::Saved { version } if version > before),
                                "{saved:?} after {before}"
                            );
                            store.release_lease(&lease).unwrap();
                            done += 1;
                        }
                        _ => std::thread::sleep(Duration::from_micros(200)),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn processes_sharing_a_file_store_take_turns_by_the_lease() {
    let dir = std::env::temp_dir().join(format!("carthooks-lease-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_incrementer", "--exact", "--nocapture"])
                .env(CHILD_ENV, &path)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }
    let stored = FileTokenStore::new(&path)
        .load_stored(IDENTITY)
        .unwrap()
        .unwrap();
    let total = PROCESSES * THREADS * ROUNDS;
    assert_eq!(count(&stored.tokens), total, "no update lost");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refresh_lease_too_short_to_renew_is_a_config_error() {
    let built = carthooks_ureq::Client::builder()
        .refresh_lease_ttl(Duration::from_millis(10))
        .build();
    let e = built.unwrap_err();
    assert!(
        matches!(&e, carthooks_core::Error::Config(m) if m.contains("refresh_lease_ttl")),
        "{e}"
    );
}

#[test]
fn a_set_that_acts_for_someone_else_is_never_adopted() {
    use carthooks_core::TokenIdentity;
    use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USER_TOKEN};
    let server = carthooks_mock::MockServer::start_with(carthooks_mock::MockConfig {
        access_token_ttl: 2,
        ..carthooks_mock::MockConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("carthooks-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let client = || {
        carthooks_ureq::Client::builder()
            .base_url(server.url())
            .oauth(carthooks_client::OAuthConfig::new(
                DEFAULT_CLIENT_ID,
                DEFAULT_CLIENT_SECRET,
            ))
            .token_store(std::sync::Arc::new(FileTokenStore::new(&path)))
            .build()
            .unwrap()
    };
    // One process acts as the app; another, of the same OAuth client and
    // (wrongly) on the same store, acts for a user and stores that set last.
    let app = client();
    app.initialize_oauth(None).unwrap();
    let for_user = client();
    for_user.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    std::thread::sleep(Duration::from_millis(2_100));
    // The app's token expired: before refreshing it reads the store, finds a
    // newer set — the user's — and does not take it.
    app.get_current_user().unwrap();
    let identity = app.get_current_tokens().unwrap().identity;
    assert_eq!(identity, Some(TokenIdentity::App), "still the app");
    let failure = app.token_store_failure().expect("the mix-up is reported");
    assert!(
        failure.message.contains("another identity"),
        "{}",
        failure.message
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
