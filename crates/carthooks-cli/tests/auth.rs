//! Signing in without a browser (`login --client-credentials`), where the
//! tokens go and what the user is told first, profiles, `auth status`,
//! `logout`, and two commands at once on one profile's tokens.

mod support;

use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use support::{APP, COLL, Setup, assert_no_secret};

fn login_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "login",
        "--client-credentials",
        "--client-id",
        DEFAULT_CLIENT_ID,
    ];
    args.extend(extra);
    args
}

#[test]
fn without_a_keyring_nothing_is_written_until_the_user_agrees() {
    let s = Setup::signed_out(0);
    // Not a terminal, no --insecure-storage: refused, and nothing written.
    let refused = s.run_with_input(
        &login_args(&["--client-secret-stdin"]),
        &format!("{DEFAULT_CLIENT_SECRET}\n"),
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("No OS keyring") && refused.stderr.contains("--insecure-storage"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("Nothing was written"));
    assert!(
        !s.config_dir.join("tokens").exists() && !s.config_dir.join("config.toml").exists(),
        "nothing written before the user agreed"
    );
    assert_eq!(
        s.server.counters().grant("client_credentials"),
        0,
        "not even a token request"
    );
    // Agreed: told where, before; the file is the user's only.
    let ok = s
        .run_with_input(
            &login_args(&["--client-secret-stdin", "--insecure-storage"]),
            &format!("{DEFAULT_CLIENT_SECRET}\n"),
        )
        .ok();
    let notice = ok.stderr.find("No OS keyring").expect("told");
    let done = ok.stderr.find("Signed in").expect("signed in");
    assert!(notice < done, "told before, not after: {}", ok.stderr);
    let tokens = s.config_dir.join("tokens/default.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for path in [&tokens, &s.config_dir.join("tokens/default.secret")] {
            let mode = std::fs::metadata(path).expect("kept").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is the user's only", path.display());
        }
    }
    let config = std::fs::read_to_string(s.config_dir.join("config.toml")).unwrap();
    assert!(config.contains("storage = \"file\"") && !config.contains(DEFAULT_CLIENT_SECRET));
    assert_no_secret(&s.secrets(), &[&refused, &ok]);
}

#[test]
fn a_profile_signed_in_once_serves_every_command_until_logout() {
    let mut s = Setup::signed_out(0);
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    let login = s
        .run(&login_args(&["--insecure-storage", "--profile", "work"]))
        .ok();
    assert!(login.stderr.contains("profile work"), "{}", login.stderr);
    // From now on no credentials in the environment: the profile's.
    s.env.retain(|(k, _)| k != "CARTHOOKS_CLIENT_SECRET");
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let list = s
        .run(&["--profile", "work", "items", "list", &app, &coll])
        .ok();
    assert_eq!(list.json().as_array().map(Vec::len), Some(3));
    let status = s.run(&["auth", "status", "--profile", "work"]).ok().json();
    assert_eq!(status["profile"], "work");
    assert_eq!(status["user"], "service:demo-client");
    assert_eq!(status["signed_in_with"], "carthooks login");
    assert!(
        status["tokens_kept_in"]
            .as_str()
            .unwrap()
            .contains("tokens/work.json"),
        "{status}"
    );
    assert!(status["access_token_expires_in_seconds"].as_u64().unwrap() > 0);
    let table = s
        .run(&["auth", "status", "--profile", "work", "-o", "table"])
        .ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("profile") && l.ends_with("work"))
    );
    // The default profile is not signed in; CARTHOOKS_PROFILE picks one.
    assert_eq!(s.run(&["items", "list", &app, &coll]).code, 4);
    s.env.push(("CARTHOOKS_PROFILE".into(), "work".into()));
    s.run(&["users", "me"]).ok();
    let grants = s.server.counters().grant("client_credentials");
    assert_eq!(
        grants, 1,
        "the stored token is used, not a new one each time"
    );
    let logout = s.run(&["logout"]).ok();
    assert!(
        logout.stderr.contains("Signed out of profile work"),
        "{}",
        logout.stderr
    );
    assert!(!s.config_dir.join("tokens/work.json").exists());
    assert!(!s.config_dir.join("tokens/work.secret").exists());
    let after = s.run(&["users", "me"]);
    assert_eq!(after.code, 4, "{after:?}");
    assert_no_secret(&s.secrets(), &[&login, &list, &table, &logout, &after]);
}

#[test]
fn commands_at_once_refresh_a_profiles_tokens_once() {
    let mut s = Setup::signed_out(0);
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    s.run(&login_args(&["--insecure-storage"])).ok();
    s.env.retain(|(k, _)| k != "CARTHOOKS_CLIENT_SECRET");
    // The stored token is refused from now on: every command must renew
    // it, and with rotating refresh tokens and reuse detection on, two
    // renewals with one refresh token would revoke the family (and fail
    // every command).
    s.server.set_rotate_refresh_tokens(true);
    s.server.set_reuse_detection(true);
    s.server.revoke_access_tokens();
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let children: Vec<_> = (0..4)
        .map(|_| s.spawn(&["items", "list", &app, &coll]))
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("ends");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let c = s.server.counters();
    assert_eq!(
        c.grant("refresh_token") + c.grant("client_credentials"),
        1 + 1,
        "the login's token, then one renewal for the four commands"
    );
}

#[test]
fn a_busy_redirect_port_and_a_sign_in_that_never_comes_are_plain_errors() {
    let mut s = Setup::signed_out(0);
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let busy = s.run(&support::browser_login(&["--redirect-port", &port]));
    assert_eq!(busy.code, 1, "{busy:?}");
    assert!(
        busy.stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        busy.stderr
    );
    drop(taken);
    let late = s.run(&support::browser_login(&["--timeout", "1"]));
    assert_eq!(late.code, 4, "{late:?}");
    assert!(
        late.stderr.contains("no sign-in within 1 s"),
        "{}",
        late.stderr
    );
    assert!(late.stderr.contains("Open this address to sign in"));
    assert_eq!(s.server.counters().grant("authorization_code"), 0);
}

#[test]
fn config_sets_a_profiles_default_app_and_collection() {
    let s = Setup::with_env_credentials(0);
    let (app, coll) = (APP.to_string(), COLL.to_string());
    s.run(&["config", "set", "app", &app]).ok();
    s.run(&["config", "set", "collection", &coll]).ok();
    assert_eq!(
        s.run(&["config", "get", "app"]).ok().stdout,
        format!("{app}\n")
    );
    // Now ITEM alone is enough, and APP COLL may be left out.
    assert_eq!(s.run(&["items", "get", "2"]).ok().json()["id"], 2);
    assert_eq!(
        s.run(&["items", "list"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let bad = s.run(&["config", "set", "app", "not-a-number"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let unknown = s.run(&["config", "set", "colour", "blue"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("the settings are"),
        "{}",
        unknown.stderr
    );
    s.run(&["config", "unset", "collection"]).ok();
    assert_eq!(s.run(&["items", "list"]).code, 2);
    assert_eq!(s.run(&["config", "get", "collection"]).code, 1);
    // Another profile, made the default.
    s.run(&["config", "set", "app", "42", "--profile", "work"])
        .ok();
    s.run(&["config", "set", "default_profile", "work"]).ok();
    assert_eq!(s.run(&["config", "get", "app"]).ok().stdout, "42\n");
    let all = s.run(&["config", "list", "-o", "json"]).ok().json();
    assert_eq!(all["default_profile"], "work");
    assert_eq!(all["profiles"]["default"]["app"], APP);
    assert_eq!(all["profiles"]["work"]["app"], 42);
}
