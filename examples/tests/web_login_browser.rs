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
    /// `None` once [`stop_carthooks`](Self::stop_carthooks) ran.
    server: Option<MockServer>,
    authorize_page: String,
    url: String,
    app: app::Handle,
    runtime: tokio::runtime::Runtime,
}

impl Site {
    /// Serves the app with the app client's `oauth` settings.
    fn start(oauth: OAuthConfig) -> Self {
        Self::serve(oauth, |_| {})
    }

    /// … with the app's config changed by `tweak` (by default it is reached
    /// where it is served, sessions last the app's defaults).
    fn serve(oauth: OAuthConfig, tweak: impl FnOnce(&mut app::Config)) -> Self {
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
        let mut config = app::Config {
            carthooks,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            authorize_page: server.authorize_page(),
            public_url: url.clone(),
            app_id: DEFAULT_APP_ID,
            collection_id: DEFAULT_COLLECTION_ID,
            idle_timeout: app::DEFAULT_IDLE_TIMEOUT,
            max_lifetime: app::DEFAULT_MAX_LIFETIME,
        };
        tweak(&mut config);
        let (router, handle) = app::router(config);
        runtime.spawn(async move { axum::serve(listener, router).await });
        Self {
            authorize_page: server.authorize_page(),
            server: Some(server),
            url,
            app: handle,
            runtime,
        }
    }

    fn page(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn server(&self) -> &MockServer {
        self.server.as_ref().expect("Carthooks is running")
    }

    fn token_requests(&self, grant: &str) -> u64 {
        self.server().counters().grant(grant)
    }

    /// Stops the fake Carthooks: its port refuses connections from now on.
    fn stop_carthooks(&mut self) {
        self.server = None;
    }

    /// Serves `html` at `/` on `host` (a loopback address), as another site
    /// would; its URL.
    fn other_site(&self, host: &str, html: &'static str) -> String {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind((host, 0)))
            .unwrap_or_else(|e| panic!("another site on {host}: {e}"));
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(html) }),
        );
        self.runtime
            .spawn(async move { axum::serve(listener, router).await });
        url
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

/// On the sign-in page (after "Sign in with Carthooks"), fills in `user` and
/// clicks Allow, then waits for the items page.
fn allow_as(b: &Browser<'_>, site: &Site, (user, password): (&str, &str)) -> Result<(), String> {
    b.type_into("#username", user)?;
    b.type_into("#password", password)?;
    let url = b.url()?;
    check(
        b,
        url.starts_with(&site.authorize_page),
        "the sign-in link leads to Carthooks' sign-in page",
    )?;
    check(
        b,
        url.contains("&code_challenge=") && url.contains("&code_challenge_method=S256"),
        "the sign-in link carries a PKCE challenge",
    )?;
    b.click("#allow")?;
    // The redirects (sign-in page → callback → items) may still be under way.
    b.text("table#items").map(drop)
}

/// Home → "Sign in with Carthooks" → the sign-in page, filled in as `user`
/// → Allow, until the items page is shown. Screenshots of the pages on the
/// way when `shots` names them.
fn sign_in(
    b: &Browser<'_>,
    site: &Site,
    user: (&str, &str),
    shots: Option<[&str; 2]>,
) -> Result<(), String> {
    b.goto(&site.page("/"))?;
    if let Some([home, _]) = shots {
        b.screenshot(&shot(home))?;
    }
    b.click("#sign-in")?;
    b.text("#username")?;
    if let Some([_, consent]) = shots {
        b.screenshot(&shot(consent))?;
    }
    allow_as(b, site, user)
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

/// The page's heading.
fn heading(b: &Browser<'_>) -> Result<String, String> {
    b.text("h1")
}

fn capitalized(name: &str) -> String {
    name[..1].to_uppercase() + &name[1..]
}

/// The form of the last code exchange the fake server received.
fn last_exchange(site: &Site) -> Vec<(String, String)> {
    let state = site.server().state();
    state
        .log()
        .iter()
        .rev()
        .find(|r| r.path == "/oauth/token")
        .map(|r| carthooks_mock::decode_form(&String::from_utf8_lossy(&r.body)))
        .unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The session id in the browser's cookie, if any (read on an app page).
fn session_id(b: &Browser<'_>) -> Result<Option<String>, String> {
    Ok(b.cookies()?
        .into_iter()
        .find(|c| c["name"] == app::SESSION_COOKIE)
        .and_then(|c| c["value"].as_str().map(str::to_owned)))
}

/// The whole happy path: home, sign-in page, the user's items; the code is
/// exchanged with a PKCE verifier; the cookies are HttpOnly and SameSite=Lax,
/// the attempt's state cookie is spent.
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
        let exchange = last_exchange(&site);
        check(
            &b,
            field(&exchange, "code_verifier").is_some_and(|v| v.len() == 43),
            "the code was exchanged with a 43-character PKCE verifier",
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
            site.token_requests("authorization_code") == 1 && site.app.pending_sign_ins() == 0,
            "one code exchanged, no sign-in left pending",
        )
    });
}

/// A `state` changed on the way, a code used twice and an expired code each
/// get a page that says so in plain words (with Carthooks' trace id small
/// below), and no session.
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
            said.contains("not started in this browser"),
            &format!("a tampered state is refused in plain words: {said}"),
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
        let used = field(&last_exchange(&site), "code")
            .ok_or("the exchange carried a code")?
            .to_owned();
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
        check(
            &b,
            b.text("#reference")?.contains("mock-trace-"),
            "Carthooks' trace id is on the page, for support",
        )?;
        check(
            &b,
            !b.text("body")?.contains("invalid_grant"),
            "no developer text on the page",
        )?;

        // 3. A code the server issued two minutes ago (60 s lifetime).
        let now = carthooks::Clock::now(&carthooks::SystemClock);
        let expired = site.server().state().issue_code(
            DEFAULT_CLIENT_ID,
            8,
            &site.page("/callback"),
            None,
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
/// browser): HttpOnly, SameSite=Lax, scoped and short-lived for each sign-in
/// attempt; `Secure` exactly when the app is reached over HTTPS.
#[test]
fn cookies_are_http_only_lax_and_secure_over_https() {
    for (public, secure) in [(None, false), (Some("https://app.example"), true)] {
        let site = Site::serve(oauth(), |config| {
            if let Some(url) = public {
                config.public_url = url.to_owned();
            }
        });
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
        assert!(location.starts_with(&site.authorize_page), "{location}");
        let cookie = answer
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(cookie.starts_with(app::STATE_COOKIE_PREFIX), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/callback", "Max-Age=600"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}

/// Starts a sign-in (the app sets the attempt's cookie) and returns the
/// `state` the sign-in page was given.
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
            site.token_requests("authorization_code") == 2 && site.app.sessions() == 2,
            "one code exchanged and one session per user",
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
        site.server().set_access_token_ttl(4);
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
            site.server().counters().unauthorized == 0,
            "the expired token was never sent",
        )
    });
}

/// Sign-out ends the session: the cookie is cleared, the session is gone
/// from the server, and the old session id replayed by hand is not signed in
/// any more.
#[test]
fn sign_out_ends_the_session() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "sign-out")?;
        sign_in(&b, &site, SIGN_IN_USERS[1], None)?;
        let old = session_id(&b)?.ok_or("signed in")?;
        // Typed by hand, /logout asks for the button rather than acting.
        b.goto(&site.page("/logout"))?;
        b.screenshot(&shot("12-sign-out-page"))?;
        check(&b, site.app.sessions() == 1, "GET /logout changes nothing")?;
        sign_out(&b)?;
        b.screenshot(&shot("10-signed-out"))?;
        check(&b, b.url()? == site.page("/"), "back home")?;
        check(
            &b,
            b.text("#who")?.contains("not signed in"),
            "home says: not signed in",
        )?;
        check(&b, session_id(&b)?.is_none(), "the session cookie is gone")?;
        check(
            &b,
            site.app.sessions() == 0,
            "the session is gone from the server",
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

/// A page that auto-submits a sign-out form to the app, served from another
/// site (127.0.0.2) and from another port of the same host (same site, other
/// origin).
const CROSS_SITE_SIGN_OUT: &str = r#"<!doctype html><html><body>
<form id="f" method="post" action="APP/logout"></form>
<script>document.getElementById('f').submit()</script></body></html>"#;

/// Item 5: a page of another origin that posts to `/logout` is refused with
/// a page that says so; the browser's cookie and the server's session both
/// survive, and the user is still signed in.
#[test]
fn a_page_on_another_origin_cannot_sign_the_user_out() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "cross-site")?;
        sign_in(&b, &site, SIGN_IN_USERS[0], None)?;
        let id = session_id(&b)?.ok_or("signed in")?;
        let html: &'static str = Box::leak(
            CROSS_SITE_SIGN_OUT
                .replace("APP", &site.url)
                .into_boxed_str(),
        );
        for (host, name) in [
            ("127.0.0.2", "13-cross-site-sign-out-refused"),
            ("127.0.0.1", "14-same-site-other-origin-refused"),
        ] {
            let evil = site.other_site(host, html);
            b.goto(&evil)?;
            let said = b.text("#error")?;
            b.screenshot(&shot(name))?;
            check(
                &b,
                b.url()? == site.page("/logout") && said.contains("another site"),
                &format!("the cross-origin sign-out from {host} is refused: {said}"),
            )?;
            check(
                &b,
                site.app.sessions() == 1,
                "the session is alive on the server",
            )?;
            b.goto(&site.page("/items"))?;
            check(
                &b,
                session_id(&b)? == Some(id.clone()) && b.text("#who")?.contains("alice"),
                "the browser keeps its cookie and alice is still signed in",
            )?;
        }
        // The app's own button still works.
        sign_out(&b)?;
        check(&b, site.app.sessions() == 0, "the real sign-out ends it")
    });
}

/// Item 6: a session unused for longer than the idle timeout ends, on the
/// server too, with a page that says why; so does one older than its
/// lifetime however busy; and signing in again ends the old session.
#[test]
fn sessions_end_when_idle_too_old_or_replaced() {
    with_driver(|driver| {
        // Idle: 2 s without a request.
        let site = Site::serve(oauth(), |c| c.idle_timeout = Duration::from_secs(2));
        let b = browser(driver, "idle")?;
        sign_in(&b, &site, SIGN_IN_USERS[0], None)?;
        // The session's last use was before `sign_in` returned.
        std::thread::sleep(Duration::from_secs(3));
        b.goto(&site.page("/items"))?;
        let said = b.text("#error")?;
        b.screenshot(&shot("15-session-ended-idle"))?;
        check(
            &b,
            heading(&b)? == "Your session has ended" && said.contains("without using this site"),
            &format!("an idle session ends, and the page says why: {said}"),
        )?;
        check(&b, site.app.sessions() == 0, "it is gone from the server")?;
        check(&b, session_id(&b)?.is_none(), "and from the browser")?;

        // Lifetime: 5 s, however recently used: a request every second until
        // a page says the session ended, which must not come before 5 s.
        let site = Site::serve(oauth(), |c| c.max_lifetime = Duration::from_secs(5));
        let before = std::time::Instant::now(); // before the session began
        sign_in(&b, &site, SIGN_IN_USERS[1], None)?;
        let ended = loop {
            std::thread::sleep(Duration::from_secs(1));
            b.goto(&site.page("/items"))?;
            if heading(&b)? == "Your session has ended" {
                break before.elapsed();
            }
            check(
                &b,
                before.elapsed() < Duration::from_secs(60),
                "the session ends within a minute",
            )?;
        };
        let said = b.text("#error")?;
        b.screenshot(&shot("16-session-ended-lifetime"))?;
        check(
            &b,
            said.contains("at most 5 seconds") && ended >= Duration::from_secs(5),
            &format!("an old session ends however busy, not before 5 s ({ended:?}): {said}"),
        )?;
        check(&b, site.app.sessions() == 0, "it is gone from the server")?;

        // Replaced: alice, then bob in the same browser without signing out.
        let site = Site::start(oauth());
        sign_in(&b, &site, SIGN_IN_USERS[0], None)?;
        let alice = session_id(&b)?.ok_or("alice signed in")?;
        b.goto(&site.page("/login"))?; // while still signed in as alice
        allow_as(&b, &site, SIGN_IN_USERS[1])?;
        check(
            &b,
            site.app.sessions() == 1 && b.text("#who")?.contains("bob"),
            "bob's sign-in ended alice's session on the server",
        )?;
        b.add_cookie(app::SESSION_COOKIE, &alice)?;
        b.goto(&site.page("/items"))?;
        check(
            &b,
            b.url()? == site.page("/"),
            "alice's old session id signs nobody in",
        )
    });
}

/// Item 7: sign-in started in two tabs; a stray callback in between; both
/// attempts still work, each with its own state.
#[test]
fn two_tabs_each_keep_their_own_sign_in() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "tabs")?;
        let first = b.current_tab()?;
        b.goto(&site.page("/login"))?;
        b.text("#username")?;
        let second = b.new_tab()?;
        b.switch_to(&second)?;
        b.goto(&site.page("/login"))?;
        b.text("#username")?;
        check(&b, site.app.pending_sign_ins() == 2, "two attempts pending")?;

        // Something stray reaches the callback: refused, nothing changed.
        b.goto(&site.page("/callback?state=x&code=y"))?;
        let said = b.text("#error")?;
        b.screenshot(&shot("17-stray-callback"))?;
        check(
            &b,
            said.contains("not started in this browser"),
            &format!("a stray callback is refused: {said}"),
        )?;
        let attempts = b
            .cookies()?
            .iter()
            .filter(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(app::STATE_COOKIE_PREFIX))
            })
            .count();
        check(
            &b,
            attempts == 2 && site.app.pending_sign_ins() == 2,
            &format!("both attempts' cookies and verifiers are kept (saw {attempts})"),
        )?;

        // The first tab, started first, completes first.
        b.switch_to(&first)?;
        allow_as(&b, &site, SIGN_IN_USERS[0])?;
        b.screenshot(&shot("18-first-tab-signed-in"))?;
        check(
            &b,
            b.text("#who")?.contains("alice"),
            "the first tab signs alice in",
        )?;
        // The second tab's attempt is still good (and replaces the session).
        b.switch_to(&second)?;
        b.go_back()?;
        b.text("#username")?;
        allow_as(&b, &site, SIGN_IN_USERS[1])?;
        check(
            &b,
            b.text("#who")?.contains("bob")
                && site.app.pending_sign_ins() == 0
                && site.app.sessions() == 1,
            "the second tab signs bob in; nothing is left pending",
        )
    });
}

/// Item 8: 404 and 405 get pages for people; with Carthooks down, a signed-in
/// user's items page says so under its own title, and sign-in ends on this
/// app's page, not the browser's error.
#[test]
fn pages_say_in_plain_words_what_happened_and_what_to_do() {
    with_driver(|driver| {
        let mut site = Site::start(oauth());
        let b = browser(driver, "pages")?;
        b.goto(&site.page("/no-such-page"))?;
        b.screenshot(&shot("19-not-found"))?;
        check(
            &b,
            b.title()?.starts_with("Page not found") && b.text("#next")?.contains("home page"),
            "404 has a page with a way home",
        )?;
        b.run_script(
            "document.body.innerHTML = '<form id=f method=post action=/items></form>';\
             document.getElementById('f').submit()",
        )?;
        let said = b.text("#error")?;
        b.screenshot(&shot("20-method-not-allowed"))?;
        check(
            &b,
            heading(&b)? == "This page can't be used that way" && said.contains("home page"),
            &format!("405 has a page: {said}"),
        )?;

        sign_in(&b, &site, SIGN_IN_USERS[0], None)?;
        site.stop_carthooks();
        b.goto(&site.page("/items"))?;
        let said = b.text("#error")?;
        b.screenshot(&shot("21-items-carthooks-down"))?;
        check(
            &b,
            heading(&b)? == "Your items"
                && said.contains("Carthooks is not reachable right now")
                && !said.contains("transport"),
            &format!("the items page says Carthooks is down: {said}"),
        )?;
        sign_out(&b)?;
        b.click("#sign-in")?;
        let said = b.text("#error")?;
        b.screenshot(&shot("22-sign-in-carthooks-down"))?;
        check(
            &b,
            b.url()? == site.page("/login") && said.contains("you can't sign in"),
            &format!("sign-in with Carthooks down ends on the app's page: {said}"),
        )
    });
}

/// Item 1 in a browser: the sign-in page with a redirect URI the client did
/// not register shows Carthooks' error page and offers nothing to click.
#[test]
fn the_sign_in_page_never_sends_a_browser_to_an_unregistered_address() {
    with_driver(|driver| {
        let site = Site::start(oauth());
        let b = browser(driver, "open-redirect")?;
        let thief = site.other_site("127.0.0.2", "<p id=stolen>stolen</p>");
        let challenge = carthooks::Pkce::new().map_err(|e| e.to_string())?;
        let url = carthooks::authorize_url(
            &site.authorize_page,
            DEFAULT_CLIENT_ID,
            &format!("{thief}/steal"),
            "s",
            challenge.challenge(),
        );
        b.goto(&url)?;
        let said = b.text("#problem")?;
        b.screenshot(&shot("23-unregistered-redirect-uri"))?;
        check(
            &b,
            said.contains("has not registered") && b.texts("#allow, #deny")?.is_empty(),
            &format!("an error page with no form: {said}"),
        )?;
        check(
            &b,
            b.url()?.starts_with(&site.authorize_page),
            "the browser stays on Carthooks",
        )
    });
}
