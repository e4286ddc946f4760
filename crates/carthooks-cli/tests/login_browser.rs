//! `carthooks login` end to end in headless Chromium (Debian's `chromium`
//! and `chromium-driver`, driven over WebDriver with the web_login tests'
//! client): the CLI's loopback redirect, carthooks-mock's sign-in page, the
//! code exchanged with the PKCE verifier. And what must be refused: a
//! redirect with a wrong `state` (the CLI ignores it and keeps waiting), a
//! code intercepted by another loopback listener and exchanged without the
//! verifier (the server refuses it).
//!
//! Screenshots go to `target/cli-screens/`. A missing browser fails the
//! test and says what to install: it never skips.

mod support;
#[allow(dead_code)]
#[path = "../../../examples/tests/browser/webdriver.rs"]
mod webdriver;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SIGN_IN_USERS};
use support::{Setup, assert_no_secret};

fn shot(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cli-screens");
    std::fs::create_dir_all(&dir).expect("screens dir");
    dir.join(format!("{name}.png"))
}

/// The decoded value of `name` in `url`'s query.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    carthooks_mock::decode_form(query)
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A listener of "another app" on loopback that answers whatever it is sent.
fn other_listener() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body><h1 id=\"outcome\">captured</h1></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, handle)
}

/// Starts `carthooks login --no-browser`; the sign-in address it prints,
/// and a thread that gathers the rest of its stderr.
fn start_login(s: &Setup) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    let mut child = s.spawn(&support::browser_login(&["--timeout", "120"]));
    let stderr = child.stderr.take().expect("stderr");
    let (url_tx, url_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.trim_start().starts_with("http") {
                let _ = url_tx.send(line.trim().to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("login prints the sign-in address");
    (child, url, reader)
}

#[test]
fn login_in_a_real_browser_and_what_it_refuses() {
    let driver =
        webdriver::Driver::start().unwrap_or_else(|e| panic!("the login test needs Chromium: {e}"));
    let mut s = Setup::signed_out(0);
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    let (mut child, url, reader) = start_login(&s);
    let redirect = query_param(&url, "redirect_uri").expect("a redirect_uri");
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "RFC 8252 loopback redirect: {redirect}"
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&url, "code_challenge").map(|c| c.len()),
        Some(43)
    );
    let state = query_param(&url, "state").expect("a state");
    assert!(state.len() >= 32, "an unguessable state");

    let profile = std::env::temp_dir().join(format!("carthooks-cli-login-{}", std::process::id()));
    let b = driver.browser(&profile).expect("a browser");

    // 1. A forged redirect (another site sends the browser to the CLI's
    //    callback with a code of its own): refused, and the CLI waits on.
    b.goto(&format!("{redirect}?code=forged-code&state=not-the-state"))
        .unwrap();
    let refused = b.text("#message").unwrap();
    assert!(
        refused.contains("not the one this terminal started"),
        "{refused}"
    );
    b.screenshot(&shot("login-forged-redirect-refused"))
        .unwrap();
    assert_eq!(
        s.server.counters().grant("authorization_code"),
        0,
        "nothing exchanged"
    );

    // 2. A code sent to another loopback listener (any port of a loopback
    //    redirect is allowed, RFC 8252 §7.3): useless without the verifier.
    let (other, listener) = other_listener();
    let encoded_redirect = url
        .split('&')
        .find(|p| p.starts_with("redirect_uri="))
        .expect("redirect_uri in the address")
        .to_owned();
    let enc = |s: &str| s.replace(':', "%3A").replace('/', "%2F");
    let hijacked = url.replace(&encoded_redirect, &format!("redirect_uri={}", enc(&other)));
    assert_ne!(hijacked, url);
    b.goto(&hijacked).unwrap();
    let (user, password) = SIGN_IN_USERS[0];
    b.type_into("#username", user).unwrap();
    b.type_into("#password", password).unwrap();
    b.screenshot(&shot("login-sign-in-page-other-port"))
        .unwrap();
    b.click("#allow").unwrap();
    assert_eq!(b.text("#outcome").unwrap(), "captured");
    let captured = b.url().unwrap();
    listener.join().unwrap();
    let code = query_param(&captured, "code").expect("the other listener got a code");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let attacker = carthooks::Client::builder()
        .base_url(s.server.url())
        .oauth(carthooks::OAuthConfig::new(
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
        ))
        .build()
        .unwrap();
    let e = runtime
        .block_on(attacker.exchange_authorization_code(code.as_str(), &other, None))
        .expect_err("a code bound to a PKCE challenge needs its verifier");
    assert_eq!(e.oauth_error_code(), Some("invalid_grant"), "{e}");

    // 3. The real sign-in: the CLI's own address, alice, Allow.
    b.goto(&url).unwrap();
    b.type_into("#username", user).unwrap();
    b.type_into("#password", password).unwrap();
    b.screenshot(&shot("login-sign-in-page")).unwrap();
    b.click("#allow").unwrap();
    assert_eq!(b.text("#outcome").unwrap(), "Signed in");
    b.screenshot(&shot("login-signed-in")).unwrap();
    let status = child.wait().expect("login ends");
    let stderr = reader.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("wrong state was refused") && stderr.contains("as alice"),
        "{stderr}"
    );
    // The profile acts for alice from now on.
    s.env.retain(|(k, _)| k != "CARTHOOKS_CLIENT_SECRET");
    let me = s.run(&["users", "me"]).ok();
    assert_eq!(me.json()["username"], "alice");
    let run = support::Run {
        code: 0,
        stdout: String::new(),
        stderr,
    };
    assert_no_secret(&s.secrets(), &[&run, &me]);

    // 4. Deny on the sign-in page: the CLI says so, and keeps alice's tokens.
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    let (mut child, url, reader) = start_login(&s);
    b.goto(&url).unwrap();
    b.type_into("#username", user).unwrap();
    b.type_into("#password", password).unwrap();
    b.click("#deny").unwrap();
    assert_eq!(b.text("#outcome").unwrap(), "Not signed in");
    b.screenshot(&shot("login-denied")).unwrap();
    let status = child.wait().unwrap();
    let rest = reader.join().unwrap();
    assert_eq!(status.code(), Some(4), "{rest}");
    assert!(rest.contains("access_denied"), "{rest}");
    s.env.retain(|(k, _)| k != "CARTHOOKS_CLIENT_SECRET");
    assert_eq!(s.run(&["users", "me"]).ok().json()["username"], "alice");
    let _ = std::fs::remove_dir_all(&profile);
}
