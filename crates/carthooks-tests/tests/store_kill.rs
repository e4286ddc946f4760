//! A process saving tokens in a loop is killed with SIGKILL 200 times at random
//! moments; the file must always hold a complete old or new token set.
//!
//! The child is this same test binary, re-run with `child_saver` selected and
//! `CARTHOOKS_STORE_CHILD` naming the file.

use std::process::{Command, Stdio};
use std::time::Duration;

use carthooks_client::{FileTokenStore, TokenStore};
use carthooks_core::{AccessToken, OAuthTokens, RefreshToken};

const CHILD_ENV: &str = "CARTHOOKS_STORE_CHILD";

fn token_set(n: u64) -> OAuthTokens {
    let mut tokens = OAuthTokens::from_access_token(AccessToken::new(format!(
        "at-{n}-{}",
        "x".repeat((n % 7 * 300) as usize)
    )));
    tokens.refresh_token = Some(RefreshToken::new(format!("rt-{n}")));
    tokens.expires_at = Some(1_700_000_000 + n);
    tokens.scope = Some(format!("scope-{n}"));
    tokens
}

/// Not a test on its own: the saver loop, when run as the child.
#[test]
fn child_saver() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = FileTokenStore::new(path);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for n in start.. {
        store.save(&token_set(n % 1_000_000)).unwrap();
    }
}

#[test]
fn sigkill_never_leaves_a_torn_token_file() {
    let dir = std::env::temp_dir().join(format!("carthooks-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let reader = FileTokenStore::new(&path);
    // 2 to 27 ms into each run.
    let mut next_delay =
        carthooks_tests::random_delays(Duration::from_micros(2_000), Duration::from_micros(25_000));
    let mut seen = std::collections::HashSet::new();
    for round in 0..200 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_saver", "--exact", "--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(next_delay());
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        match reader.load() {
            Ok(Some(t)) => {
                // Complete and consistent: every field from the same set.
                let n = t.expires_at.unwrap() - 1_700_000_000;
                let expected = token_set(n);
                assert_eq!(
                    t.access_token.secret(),
                    expected.access_token.secret(),
                    "round {round}"
                );
                assert_eq!(t.refresh_token.unwrap().secret(), format!("rt-{n}"));
                assert_eq!(t.scope.as_deref(), Some(format!("scope-{n}").as_str()));
                seen.insert(n);
            }
            Ok(None) => assert!(seen.is_empty(), "round {round}: the file vanished"),
            Err(e) => panic!("round {round}: torn token file: {e}"),
        }
    }
    assert!(
        seen.len() > 20,
        "the child saved under the kills ({} sets seen)",
        seen.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
