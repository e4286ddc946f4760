//! The `web_login` example in a real browser: headless Chromium, driven over
//! WebDriver by `chromedriver` (Debian's `chromium` and `chromium-driver`;
//! `.ci/run` installs them). Each test serves the app and the fake Carthooks
//! (with its sign-in page and items per user) on loopback ports of its own,
//! and signs users in the way a person would: click, type, click.
//!
//! Screenshots of every page a test reaches are saved under
//! `target/web_login-screenshots/` for a reviewer to look at.
//!
//! A missing browser or driver fails the test and says what to install: in
//! CI these tests run, never skip.

#[path = "../web_login/app.rs"]
mod app;
mod browser {
    pub mod webdriver;
}

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use browser::webdriver::{Browser, Driver};
use carthooks::{Client, OAuthConfig};
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockConfig,
    MockServer, SIGN_IN_USERS,
};

/// One Chromium at a time: two would fight over this machine's two cores.
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The fake Carthooks and the app, served on loopback until dropped.
struct Site {
    server: MockServer,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl Site {
    /// Serves the app with the app client's `oauth` settings.
    fn start(oauth: OAuthConfig) -> Self {
        Self::serve(oauth, None)
    }

    /// … telling the app it is reached at `public_url` (default: where it is
    /// served).
    fn serve(oauth: OAuthConfig, public_url: Option<&str>) -> Self {
        let server = MockServer::start_with(MockConfig {
            per_user_items: true,
            ..MockConfig::default()
        })
        .expect("the fake Carthooks starts");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let carthooks = Client::builder()
            .without_env()
            .base_url(server.url())
            .oauth(oauth)
            .build()
            .expect("the app's client builds");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("the app gets a port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let router = app::router(app::Config {
            carthooks,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            authorize_page: server.authorize_page(),
            public_url: public_url.unwrap_or(&url).to_owned(),
            app_id: DEFAULT_APP_ID,
            collection_id: DEFAULT_COLLECTION_ID,
        });
        runtime.spawn(async move { axum::serve(listener, router).await });
        Self {
            server,
            url,
            _runtime: runtime,
        }
    }

    fn page(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn token_requests(&self, grant: &str) -> u64 {
        self.server.counters().grant(grant)
    }
}

fn oauth() -> OAuthConfig {
    OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
}

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/web_login-screenshots")
        .join(format!("{name}.png"))
}

/// Runs `test` with a running chromedriver, one test at a time.
fn with_driver(test: impl FnOnce(&Driver) -> Result<(), String>) {
    let _turn = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let driver = Driver::start().unwrap_or_else(|e| panic!("browser tests need Chromium: {e}"));
    if let Err(e) = test(&driver) {
        panic!("{e}");
    }
}

/// A browser with a fresh profile of its own (its own cookies).
fn browser<'d>(driver: &'d Driver, name: &str) -> Result<Browser<'d>, String> {
    let profile =
        std::env::temp_dir().join(format!("carthooks-web-login-{}-{name}", std::process::id()));
    driver.browser(&profile)
}

/// Asserts `condition`, or fails with `what` and the page's address.
fn check(browser: &Browser<'_>, condition: bool, what: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("{what} (at {})", browser.url().unwrap_or_default()))
    }
}

/// Home → "Sign in with Carthooks" → the sign-in page, filled in as `user`
/// → Allow, until the items page is shown. Screenshots of the pages on the
/// way when `shots` names them.
fn sign_in(
    b: &Browser<'_>,
    site: &Site,
    (user, password): (&str, &str),
    shots: Option<[&str; 2]>,
) -> Result<(), String> {
    b.goto(&site.page("/"))?;
    if let Some([home, _]) = shots {
        b.screenshot(&shot(home))?;
    }
    b.click("#sign-in")?;
    b.type_into("#username", user)?;
    b.type_into("#password", password)?;
    check(
        b,
        b.url()?.starts_with(&site.server.authorize_page()),
        "the sign-in link leads to Carthooks' sign-in page",
    )?;
    if let Some([_, consent]) = shots {
        b.screenshot(&shot(consent))?;
    }
    b.click("#allow")?;
    // The redirects (sign-in page → callback → items) may still be under way.
    b.text("table#items").map(drop)
}

/// Clicks "Sign out" and waits for the home page's sign-in link.
fn sign_out(b: &Browser<'_>) -> Result<(), String> {
    b.click("#sign-out")?;
    b.text("#sign-in").map(drop)
}

/// The titles on the items page.
fn item_titles(b: &Browser<'_>) -> Result<Vec<String>, String> {
    b.texts("tr.item td:nth-child(2)")
}

fn capitalized(name: &str) -> String {
    name[..1].to_uppercase() + &name[1..]
}

/// The whole happy path: home, sign-in page, the user's items; the cookies
/// are HttpOnly and SameSite=Lax, the state cookie is spent.
#[test]
fn sign_in_and_see_the_items() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "happy")?;
        sign_in(
            &b,
            &site,
            SIGN_IN_USERS[0],
            Some(["01-home", "02-sign-in-page"]),
        )?;
        check(
            &b,
            b.url()? == site.page("/items"),
            "signed in, on the items page",
        )?;
        b.screenshot(&shot("03-items-alice"))?;
        check(
            &b,
            b.text("#who")?.contains("alice"),
            "the page names alice",
        )?;
        let titles = item_titles(&b)?;
        check(
            &b,
            titles.len() == 2 && titles.iter().all(|t| t.starts_with("Alice's")),
            &format!("alice sees her two items, and only hers: {titles:?}"),
        )?;
        let cookies = b.cookies()?;
        let session = cookies
            .iter()
            .find(|c| c["name"] == app::SESSION_COOKIE)
            .ok_or("a session cookie is set")?;
        check(
            &b,
            session["httpOnly"] == true && session["sameSite"] == "Lax",
            &format!("the session cookie is HttpOnly and SameSite=Lax: {session}"),
        )?;
        check(
            &b,
            session["value"].as_str().is_some_and(|v| v.len() == 64),
            "the session cookie is a random id",
        )?;
        // Page scripts cannot read it.
        let visible = b.run_script("return document.cookie")?;
        check(
            &b,
            !visible
                .as_str()
                .unwrap_or_default()
                .contains(app::SESSION_COOKIE),
            "document.cookie does not show the session cookie",
        )?;
        check(
            &b,
            site.token_requests("authorization_code") == 1,
            "one code exchanged",
        )
    });
}

/// A `state` changed on the way, a code used twice and an expired code each
/// get an error page, and no session.
#[test]
fn a_tampered_state_and_reused_or_expired_codes_get_an_error_page() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "refused")?;

        // 1. The state in the sign-in form is changed before it goes back.
        b.goto(&site.page("/login"))?;
        b.type_into("#username", SIGN_IN_USERS[0].0)?;
        b.type_into("#password", SIGN_IN_USERS[0].1)?;
        b.run_script("document.querySelector('input[name=state]').value = 'forged-state'")?;
        b.click("#allow")?;
        // The error page may still be on its way: wait for it, then look.
        let said = b.text("#error")?;
        b.screenshot(&shot("04-tampered-state"))?;
        check(
            &b,
            said.contains("state does not match"),
            "a tampered state is refused",
        )?;
        check(
            &b,
            site.token_requests("authorization_code") == 0,
            "no code was exchanged for a forged state",
        )?;
        b.goto(&site.page("/items"))?;
        check(
            &b,
            b.url()? == site.page("/"),
            "no session: /items goes home",
        )?;

        // 2. A real sign-in; its code, taken from the fake server's log.
        sign_in(&b, &site, SIGN_IN_USERS[1], None)?;
        check(&b, b.url()? == site.page("/items"), "bob signed in")?;
        let used = {
            let state = site.server.state();
            let exchange = state
                .log()
                .iter()
                .rev()
                .find(|r| r.path == "/oauth/token")
                .map(|r| carthooks_mock::decode_form(&String::from_utf8_lossy(&r.body)))
                .unwrap_or_default();
            exchange
                .into_iter()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v)
                .ok_or("the exchange carried a code")?
        };
        sign_out(&b)?;

        // A new sign-in in this browser (a valid state cookie), answered with
        // the code that was already used.
        let state = new_sign_in_state(&b, &site)?;
        b.goto(&site.page(&format!("/callback?code={used}&state={state}")))?;
        b.screenshot(&shot("05-reused-code"))?;
        check(
            &b,
            b.text("#error")?.contains("already used"),
            "a reused code is refused",
        )?;

        // 3. A code the server issued two minutes ago (60 s lifetime).
        let now = carthooks::Clock::now(&carthooks::SystemClock);
        let expired = site.server.state().issue_code(
            DEFAULT_CLIENT_ID,
            8,
            &site.page("/callback"),
            now - 120,
        );
        let state = new_sign_in_state(&b, &site)?;
        b.goto(&site.page(&format!("/callback?code={expired}&state={state}")))?;
        b.screenshot(&shot("06-expired-code"))?;
        check(
            &b,
            b.text("#error")?.contains("expired"),
            "an expired code is refused",
        )?;
        b.goto(&site.page("/items"))?;
        check(
            &b,
            b.url()? == site.page("/"),
            "no session after refused codes",
        )?;

        // 4. The user says no on the sign-in page.
        b.goto(&site.page("/login"))?;
        b.click("#deny")?;
        let said = b.text("#error")?;
        b.screenshot(&shot("11-declined"))?;
        check(&b, said.contains("declined"), "Deny gets an error page")?;
        b.goto(&site.page("/items"))?;
        check(&b, b.url()? == site.page("/"), "no session after Deny")
    });
}

/// The cookies' attributes as the app sets them, read off the wire (no
/// browser): HttpOnly, SameSite=Lax, scoped and short-lived for the state;
/// `Secure` exactly when the app is reached over HTTPS.
#[test]
fn cookies_are_http_only_lax_and_secure_over_https() {
    for (public, secure) in [(None, false), (Some("https://app.example"), true)] {
        let site = Site::serve(oauth(), public);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let answer = agent
            .get(&site.page("/login"))
            .call()
            .expect("the app answers");
        assert_eq!(answer.status(), 303);
        let location = answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            location.starts_with(&site.server.authorize_page()),
            "{location}"
        );
        let cookie = answer
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            cookie.starts_with(&format!("{}=", app::STATE_COOKIE)),
            "{cookie}"
        );
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/callback", "Max-Age=600"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}

/// Starts a sign-in (the app sets a state cookie) and returns the `state` the
/// sign-in page was given.
fn new_sign_in_state(b: &Browser<'_>, site: &Site) -> Result<String, String> {
    b.goto(&site.page("/login"))?;
    let url = b.url()?;
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    carthooks_mock::decode_form(query)
        .into_iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v)
        .ok_or_else(|| format!("the sign-in page was given a state: {url}"))
}

/// Alice and Bob, each in a browser of their own, signed in at the same
/// time: each sees only their own items, before and after the other signs in.
#[test]
fn two_users_in_two_browsers_see_only_their_own_items() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let alice = browser(driver, "alice")?;
        let bob = browser(driver, "bob")?;
        sign_in(&alice, &site, SIGN_IN_USERS[0], None)?;
        sign_in(&bob, &site, SIGN_IN_USERS[1], None)?;
        alice.goto(&site.page("/items"))?;
        for (b, (user, _), name) in [
            (&alice, SIGN_IN_USERS[0], "07-two-users-alice"),
            (&bob, SIGN_IN_USERS[1], "08-two-users-bob"),
        ] {
            b.screenshot(&shot(name))?;
            let titles = item_titles(b)?;
            let own = format!("{}'s", capitalized(user));
            check(
                b,
                titles.len() == 2 && titles.iter().all(|t| t.starts_with(&own)),
                &format!("{user} sees only their own items: {titles:?}"),
            )?;
            check(b, b.text("#who")?.contains(user), "the page names its user")?;
        }
        check(
            &alice,
            site.token_requests("authorization_code") == 2,
            "one code exchanged per user",
        )
    });
}

/// Tokens that live 4 s: a user who comes back after theirs expired sees the page
/// as before, and the app refreshed the session's token once.
#[test]
fn an_expired_session_token_is_refreshed_without_the_user_noticing() {
    with_driver(|driver| {
        let mut oauth = oauth();
        oauth.refresh_window = Duration::from_secs(1);
        oauth.min_refresh_interval = Duration::ZERO;
        let site = Site::start(oauth);
        site.server.set_access_token_ttl(4);
        let b = browser(driver, "expiry")?;
        sign_in(&b, &site, SIGN_IN_USERS[0], None)?;
        let before = item_titles(&b)?;
        check(&b, before.len() == 2, "signed in with items")?;
        std::thread::sleep(Duration::from_millis(4500));
        b.goto(&site.page("/items"))?;
        b.screenshot(&shot("09-items-after-token-refresh"))?;
        check(
            &b,
            item_titles(&b)? == before,
            "the same items after the token expired",
        )?;
        check(
            &b,
            site.token_requests("refresh_token") == 1,
            &format!(
                "one refresh for the session (saw {})",
                site.token_requests("refresh_token")
            ),
        )?;
        check(
            &b,
            site.server.counters().unauthorized == 0,
            "the expired token was never sent",
        )
    });
}

/// Sign-out ends the session: the cookie is cleared, and the old session id
/// replayed by hand is not signed in any more.
#[test]
fn sign_out_ends_the_session() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "sign-out")?;
        sign_in(&b, &site, SIGN_IN_USERS[1], None)?;
        let old = b
            .cookies()?
            .into_iter()
            .find(|c| c["name"] == app::SESSION_COOKIE)
            .and_then(|c| c["value"].as_str().map(str::to_owned))
            .ok_or("signed in")?;
        sign_out(&b)?;
        b.screenshot(&shot("10-signed-out"))?;
        check(&b, b.url()? == site.page("/"), "back home")?;
        check(
            &b,
            b.text("#who")?.contains("not signed in"),
            "home says: not signed in",
        )?;
        check(
            &b,
            !b.cookies()?
                .iter()
                .any(|c| c["name"] == app::SESSION_COOKIE),
            "the session cookie is gone",
        )?;
        b.add_cookie(app::SESSION_COOKIE, &old)?;
        b.goto(&site.page("/items"))?;
        check(
            &b,
            b.url()? == site.page("/"),
            "the old session id no longer signs anyone in",
        )
    });
}
