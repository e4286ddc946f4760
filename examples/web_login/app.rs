//! The `web_login` app: "Sign in with Carthooks" for a web site, with one
//! Carthooks session per signed-in user over one shared client.
//!
//! | route | does |
//! |---|---|
//! | `GET /` | home: a "Sign in with Carthooks" link, or who is signed in |
//! | `GET /login` | a new sign-in attempt: a CSRF `state` (in a cookie of its own) and a PKCE verifier (kept here, by state); redirect to Carthooks' sign-in page with the PKCE challenge |
//! | `GET /callback?code&state` | find the attempt `state` names (its cookie must be in this browser), spend it, exchange the code with its verifier in a new session, set the session cookie |
//! | `GET /items` | the signed-in user's items (the user's session calls Carthooks; it refreshes its token by itself) |
//! | `GET /logout` | a page with the sign-out button |
//! | `POST /logout` | end the session: forget it, close it, clear the cookie — same-origin requests only |
//!
//! # What it defends against
//!
//! - **Forged or stray callbacks.** Each sign-in attempt has its own `state`
//!   and its own cookie (`login_` and the state's first 16 characters, path
//!   `/callback`, ten minutes), so several may be pending — two tabs — and a
//!   callback spends only its own. A callback whose state matches no attempt
//!   of this browser is refused and changes nothing, not even a cookie.
//! - **Stolen codes.** The code is exchanged with the attempt's PKCE verifier,
//!   which never left this server: a code seen on its way back (a log, a
//!   referrer) is useless to whoever saw it.
//! - **Cross-site requests.** The one state-changing request, `POST /logout`,
//!   is refused unless the browser says it came from this origin
//!   (`Sec-Fetch-Site: same-origin`, or an `Origin` header equal to ours), and
//!   the refusal changes nothing. A request with neither header comes from no
//!   current browser (every one sends `Origin` on a POST) and so from no
//!   victim's cookie jar; it is let through. Cookies are also `SameSite=Lax`.
//! - **Sessions that never end.** A session ends after
//!   [`Config::idle_timeout`] without a request and [`Config::max_lifetime`]
//!   after sign-in whatever happens, and the next page says so; signing in
//!   again ends the browser's old session on the server too. Sessions whose
//!   browser never comes back are swept at each sign-in and at most every ten
//!   seconds by any request. The session cookie itself has no `Max-Age` (the
//!   browser drops it when it closes): the server decides when a session ends.
//! - **Script access and fixation.** Cookies are `HttpOnly` (and `Secure` when
//!   the app is served over HTTPS); the session cookie carries only a new
//!   random id, made at sign-in; the user's tokens stay on the server, in the
//!   session's [`carthooks::Client`].
//!
//! # What people see
//!
//! Every problem gets a page in plain words — what happened and what to do —
//! with Carthooks' trace id small below it for support, never the SDK's error
//! text (that goes to the server's log). Carthooks being down is said as such
//! on the page the person was on; `/login` checks that Carthooks' sign-in page
//! can be reached before sending the browser there, so sign-in with Carthooks
//! down ends on this app's page, not on the browser's own error. 404 and 405
//! get pages too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use carthooks::{ItemsQuery, Pkce, PkceVerifier, csrf};

/// The name of the cookie that holds the signed-in user's session id.
pub const SESSION_COOKIE: &str = "session";
/// The start of the name of each sign-in attempt's cookie.
pub const STATE_COOKIE_PREFIX: &str = "login_";
/// How long a sign-in attempt may take.
pub const SIGN_IN_TIME: Duration = Duration::from_secs(600);
/// Default of [`Config::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default of [`Config::max_lifetime`].
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sign-in attempts kept at most; past it the oldest is dropped.
const MAX_PENDING: usize = 10_000;
/// How often, at most, a request sweeps ended sessions and old attempts.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the app needs to know.
pub struct Config {
    /// The app's Carthooks client (its OAuth credentials, its connection pool).
    pub carthooks: carthooks::Client,
    /// The app's OAuth client id.
    pub client_id: String,
    /// Carthooks' sign-in page (`…/oauth/authorize`).
    pub authorize_page: String,
    /// Where this app is reached, e.g. `http://127.0.0.1:3000` (no trailing `/`).
    pub public_url: String,
    /// Whose items the items page lists.
    pub app_id: u64,
    /// … in which collection.
    pub collection_id: u64,
    /// A session not used for this long ends ([`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not
    /// ([`DEFAULT_MAX_LIFETIME`]).
    pub max_lifetime: Duration,
}

/// A signed-in user.
struct SignedIn {
    carthooks: carthooks::Client,
    username: String,
    started: Instant,
    last_seen: Mutex<Instant>,
}

/// A sign-in attempt on its way through Carthooks' sign-in page.
struct Pending {
    verifier: PkceVerifier,
    started: Instant,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Idle,
    Lifetime,
}

/// Whether a session started at `started` and last used at `last_seen` has
/// ended by `now`: the absolute lifetime first, then the idle time.
fn session_end(
    started: Instant,
    last_seen: Instant,
    now: Instant,
    idle: Duration,
    lifetime: Duration,
) -> Option<Ended> {
    if now.saturating_duration_since(started) >= lifetime {
        Some(Ended::Lifetime)
    } else if now.saturating_duration_since(last_seen) >= idle {
        Some(Ended::Idle)
    } else {
        None
    }
}

struct App {
    config: Config,
    /// `scheme://host[:port]` of `public_url`: what a same-origin request's
    /// `Origin` header says.
    origin: String,
    secure: bool,
    sessions: Mutex<HashMap<String, Arc<SignedIn>>>,
    pending: Mutex<HashMap<String, Pending>>,
    last_sweep: Mutex<Instant>,
}

impl App {
    fn redirect_uri(&self) -> String {
        format!("{}/callback", self.config.public_url)
    }

    /// A `Set-Cookie` value; without `max_age` the browser keeps it until it
    /// closes.
    fn cookie(&self, name: &str, value: &str, path: &str, max_age: Option<Duration>) -> String {
        let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if let Some(max_age) = max_age {
            cookie.push_str(&format!("; Max-Age={}", max_age.as_secs()));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }

    fn clear_session_cookie(&self) -> String {
        self.cookie(SESSION_COOKIE, "", "/", Some(Duration::ZERO))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SignedIn>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session the request's cookie names, if it is live: then it counts
    /// as used now. One that ended is removed and closed, and said so.
    fn signed_in(&self, headers: &HeaderMap) -> Result<Option<(String, Arc<SignedIn>)>, Ended> {
        self.sweep_now_and_then();
        let Some(id) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(session) = self.sessions().get(&id).cloned() else {
            return Ok(None);
        };
        let now = Instant::now();
        let mut last_seen = session
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let end = session_end(
            session.started,
            *last_seen,
            now,
            self.config.idle_timeout,
            self.config.max_lifetime,
        );
        if let Some(end) = end {
            drop(last_seen);
            self.end_session(&id);
            return Err(end);
        }
        *last_seen = now;
        drop(last_seen);
        Ok(Some((id, session)))
    }

    /// Forgets session `id` and closes its client: any of its requests still
    /// running gets `Error::Closed`.
    fn end_session(&self, id: &str) {
        if let Some(session) = self.sessions().remove(id) {
            session.carthooks.close();
        }
    }

    /// [`sweep`](Self::sweep), at most every [`SWEEP_EVERY`]: sessions whose
    /// browser never comes back end on the server all the same.
    fn sweep_now_and_then(&self) {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= SWEEP_EVERY {
            *last = Instant::now();
            drop(last);
            self.sweep();
        }
    }

    /// Ends every session that ran out, and forgets sign-in attempts older
    /// than [`SIGN_IN_TIME`].
    fn sweep(&self) {
        let now = Instant::now();
        let ended: Vec<String> = self
            .sessions()
            .iter()
            .filter(|(_, s)| {
                let last_seen = *s.last_seen.lock().unwrap_or_else(PoisonError::into_inner);
                session_end(
                    s.started,
                    last_seen,
                    now,
                    self.config.idle_timeout,
                    self.config.max_lifetime,
                )
                .is_some()
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            self.end_session(&id);
        }
        self.pending()
            .retain(|_, p| now.saturating_duration_since(p.started) < SIGN_IN_TIME);
    }

    /// A request that changes something came from a page of another origin
    /// (see the module docs).
    fn cross_origin(&self, headers: &HeaderMap) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            return site.as_bytes() != b"same-origin";
        }
        headers
            .get(header::ORIGIN)
            .is_some_and(|origin| origin.as_bytes() != self.origin.as_bytes())
    }
}

/// A view of the app's state, for tests and monitoring.
#[derive(Clone)]
pub struct Handle(Arc<App>);

#[cfg_attr(not(test), allow(dead_code))]
impl Handle {
    /// Sessions kept on the server (ended ones are swept at each sign-in).
    pub fn sessions(&self) -> usize {
        self.0.sessions().len()
    }

    /// Sign-in attempts waiting for their callback.
    pub fn pending_sign_ins(&self) -> usize {
        self.0.pending().len()
    }
}

/// The app's routes.
pub fn router(config: Config) -> (axum::Router, Handle) {
    let origin = config
        .public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| Some(format!("{}://{}", uri.scheme()?, uri.authority()?)))
        .unwrap_or_else(|| config.public_url.clone());
    let app = Arc::new(App {
        secure: config.public_url.starts_with("https://"),
        origin,
        config,
        sessions: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashMap::new()),
        last_sweep: Mutex::new(Instant::now()),
    });
    let router = axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/items", get(items))
        .route("/logout", get(logout_page).post(logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&app));
    (router, Handle(app))
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.signed_in(&headers) {
        Ok(Some((_, user))) => page(
            StatusCode::OK,
            "Home",
            &format!(
                r#"<p id="who">Signed in as <strong>{}</strong>.</p>
<p><a id="items" href="/items">Your items</a></p>{SIGN_OUT}"#,
                escape(&user.username),
            ),
        ),
        Ok(None) => page(
            StatusCode::OK,
            "Home",
            r#"<p id="who">You are not signed in.</p>
<p><a id="sign-in" class="button" href="/login">Sign in with Carthooks</a></p>"#,
        ),
        Err(end) => session_ended(&app, end),
    }
}

async fn login(State(app): State<Arc<App>>) -> Response {
    app.sweep_now_and_then();
    if !reachable(&app.config.authorize_page).await {
        return trouble(Trouble::unreachable("you can't sign in"), "/login", None);
    }
    let (state, pkce) = match (csrf::generate_state(), Pkce::new()) {
        (Ok(state), Ok(pkce)) => (state, pkce),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("web_login: no randomness for a sign-in: {e}");
            return trouble(Trouble::ours(), "/", None);
        }
    };
    let url = carthooks::authorize_url(
        &app.config.authorize_page,
        &app.config.client_id,
        &app.redirect_uri(),
        &state,
        pkce.challenge(),
    );
    {
        let mut pending = app.pending();
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(s, _)| s.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier: pkce.into_verifier(),
                started: Instant::now(),
            },
        );
    }
    // Only the callback ever needs the cookie.
    let cookie = app.cookie(
        &state_cookie_name(&state),
        &state,
        "/callback",
        Some(SIGN_IN_TIME),
    );
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(&url),
    )
        .into_response()
}

/// The cookie of the sign-in attempt whose state is `state`.
fn state_cookie_name(state: &str) -> String {
    let key: String = state.chars().take(16).collect();
    format!("{STATE_COOKIE_PREFIX}{key}")
}

async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let received = query.get("state").map(String::as_str).unwrap_or_default();
    let name = state_cookie_name(received);
    // The attempt must have been started in this browser (its cookie) and
    // still be waiting here (its verifier). Anything else changes nothing.
    let expected = cookie(&headers, &name).unwrap_or_default();
    let attempt = if received.len() >= 16 && csrf::verify_state(&expected, received) {
        app.pending().remove(received)
    } else {
        None
    };
    let Some(attempt) = attempt.filter(|p| p.started.elapsed() < SIGN_IN_TIME) else {
        return trouble(Trouble::stray_callback(), "/login", None);
    };
    // From here on the attempt is spent, whatever happens: so is its cookie.
    let spent = app.cookie(&name, "", "/callback", Some(Duration::ZERO));
    let refuse = |trouble_page: Response| {
        (
            AppendHeaders([(header::SET_COOKIE, spent.clone())]),
            trouble_page,
        )
            .into_response()
    };
    if let Some(error) = query.get("error") {
        let trouble_page = if error == "access_denied" {
            trouble(Trouble::declined(), "/", None)
        } else {
            eprintln!("web_login: the sign-in page answered error={error}");
            trouble(Trouble::refused_request(), "/login", None)
        };
        return refuse(trouble_page);
    }
    let Some(code) = query.get("code") else {
        return refuse(trouble(Trouble::refused_request(), "/login", None));
    };
    // A new session of the app's client: no connection, the app's own
    // tokens untouched. The code is single-use and bound to the verifier: a
    // reused, expired or stolen one is refused by Carthooks, and no session
    // is made.
    let user = app.config.carthooks.session();
    if let Err(e) = user
        .exchange_authorization_code(code.as_str(), &app.redirect_uri(), Some(&attempt.verifier))
        .await
    {
        eprintln!("web_login: code exchange failed: {e}");
        let said = Trouble::from_carthooks(&e, "you can't sign in");
        return refuse(trouble(said, "/login", e.trace_id()));
    }
    let username = match user.get_current_user().await {
        Ok(me) => me.data.username,
        Err(e) => {
            eprintln!("web_login: /v1/me after sign-in failed: {e}");
            user.close();
            let said = Trouble::from_carthooks(&e, "you can't sign in");
            return refuse(trouble(said, "/login", e.trace_id()));
        }
    };
    let id = match csrf::generate_state() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("web_login: no randomness for a session id: {e}");
            user.close();
            return refuse(trouble(Trouble::ours(), "/", None));
        }
    };
    // A sign-in replaces the browser's old session: that one ends here too.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        app.end_session(&old);
    }
    app.sweep();
    let now = Instant::now();
    app.sessions().insert(
        id.clone(),
        Arc::new(SignedIn {
            carthooks: user,
            username,
            started: now,
            last_seen: Mutex::new(now),
        }),
    );
    (
        AppendHeaders([
            (header::SET_COOKIE, spent),
            (
                header::SET_COOKIE,
                app.cookie(SESSION_COOKIE, &id, "/", None),
            ),
        ]),
        Redirect::to("/items"),
    )
        .into_response()
}

async fn items(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (id, user) = match app.signed_in(&headers) {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return Redirect::to("/").into_response(),
        Err(end) => return session_ended(&app, end),
    };
    let answer = user
        .carthooks
        .get_items(
            app.config.app_id,
            app.config.collection_id,
            &ItemsQuery::new(),
        )
        .await;
    let items = match answer {
        Ok(answer) => answer.data,
        Err(e) if e.needs_reauthorization() => {
            // The user's sign-in at Carthooks has ended: so has this session.
            app.end_session(&id);
            return (
                AppendHeaders([(header::SET_COOKIE, app.clear_session_cookie())]),
                trouble(Trouble::signed_out_at_carthooks(), "/login", e.trace_id()),
            )
                .into_response();
        }
        Err(e) => {
            eprintln!("web_login: listing items failed: {e}");
            let mut said = Trouble::from_carthooks(&e, "your items can't be shown");
            said.title = "Your items";
            // Still signed in: the way out stays on the page.
            return trouble_page(said, "/items", e.trace_id(), SIGN_OUT);
        }
    };
    let rows: String = items
        .iter()
        .map(|item| {
            let title = item["title"].as_str().unwrap_or("(untitled)");
            let id = item["id"].as_u64().unwrap_or_default();
            format!(
                r#"<tr class="item"><td>{id}</td><td>{}</td></tr>"#,
                escape(title)
            )
        })
        .collect();
    let body = format!(
        r#"<p id="who">Signed in as <strong>{}</strong>. <a href="/">Home</a></p>
<h2>{} items, yours only</h2>
<table id="items"><tr><th>Id</th><th>Title</th></tr>{rows}</table>{SIGN_OUT}"#,
        escape(&user.username),
        items.len(),
    );
    page(StatusCode::OK, "Your items", &body)
}

async fn logout_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.signed_in(&headers) {
        Ok(Some((_, user))) => page(
            StatusCode::OK,
            "Sign out",
            &format!(
                r#"<p id="who">You are signed in as <strong>{}</strong>. To sign out, use the button.</p>{SIGN_OUT}"#,
                escape(&user.username)
            ),
        ),
        Ok(None) => Redirect::to("/").into_response(),
        Err(end) => session_ended(&app, end),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.cross_origin(&headers) {
        // No Set-Cookie, no session touched: as if it never came.
        return trouble(Trouble::cross_site(), "/", None);
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        app.end_session(&id);
    }
    (
        AppendHeaders([(header::SET_COOKIE, app.clear_session_cookie())]),
        Redirect::to("/"),
    )
        .into_response()
}

async fn not_found() -> Response {
    trouble(
        Trouble {
            status: StatusCode::NOT_FOUND,
            title: "Page not found",
            message: "There is no page at this address. It may have moved, or the link may be \
                      mistyped."
                .into(),
            action: "Go to the home page",
        },
        "/",
        None,
    )
}

async fn method_not_allowed() -> Response {
    trouble(
        Trouble {
            status: StatusCode::METHOD_NOT_ALLOWED,
            title: "This page can't be used that way",
            message: "This address exists, but not for what your browser asked of it. Start again \
                      from the home page."
                .into(),
            action: "Go to the home page",
        },
        "/",
        None,
    )
}

/// The session ended on its own (idle, or too old): its cookie goes too.
fn session_ended(app: &App, end: Ended) -> Response {
    let message = match end {
        Ended::Idle => format!(
            "You were signed out after {} without using this site. Sign in again to continue.",
            minutes(app.config.idle_timeout)
        ),
        Ended::Lifetime => format!(
            "Sign-ins last at most {}, and yours has ended. Sign in again to continue.",
            minutes(app.config.max_lifetime)
        ),
    };
    (
        AppendHeaders([(header::SET_COOKIE, app.clear_session_cookie())]),
        trouble(
            Trouble {
                status: StatusCode::UNAUTHORIZED,
                title: "Your session has ended",
                message,
                action: "Sign in again",
            },
            "/login",
            None,
        ),
    )
        .into_response()
}

fn minutes(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 7200 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// What went wrong, said for the person who sees it.
struct Trouble {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// The words of the page's one button.
    action: &'static str,
}

impl Trouble {
    fn unreachable(consequence: &str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Carthooks is not reachable",
            message: format!(
                "Carthooks is not reachable right now, so {consequence}. Please try again in a \
                 few minutes."
            ),
            action: "Try again",
        }
    }

    fn stray_callback() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "This sign-in link can't be used",
            message: "This sign-in link was not started in this browser, or it is more than ten \
                      minutes old. Nothing was changed. Sign in again from here."
                .into(),
            action: "Sign in",
        }
    }

    fn declined() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "Not signed in",
            message: "You declined at Carthooks, so this site was not given access to your \
                      account and you are not signed in."
                .into(),
            action: "Go to the home page",
        }
    }

    fn refused_request() -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            title: "Sign-in didn't work",
            message: "Carthooks did not accept this site's sign-in request. Please try again; if \
                      it keeps happening, the people who run this site need to look at it."
                .into(),
            action: "Try again",
        }
    }

    fn signed_out_at_carthooks() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            title: "Your session has ended",
            message: "Your Carthooks sign-in has ended (it was revoked or ran out). Please sign \
                      in again."
                .into(),
            action: "Sign in again",
        }
    }

    fn cross_site() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "Request refused",
            message: "A page on another site tried to sign you out. That was refused: nothing \
                      was changed, and if you were signed in, you still are."
                .into(),
            action: "Go to the home page",
        }
    }

    fn ours() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: "Something went wrong on this site. Please try again in a moment.".into(),
            action: "Go to the home page",
        }
    }

    /// A failed call to Carthooks; `consequence` says what it means for the
    /// person ("you can't sign in").
    fn from_carthooks(e: &carthooks::Error, consequence: &str) -> Self {
        if e.oauth_error_code() == Some("invalid_grant") {
            return Self {
                status: StatusCode::BAD_REQUEST,
                title: "This sign-in link can't be used",
                message: "This sign-in link was already used or has expired. Sign in again to \
                          continue."
                    .into(),
                action: "Sign in again",
            };
        }
        let status = e.status().map(|s| s.as_u16());
        if e.transport_error().is_some() || matches!(status, Some(502..=504)) {
            return Self::unreachable(consequence);
        }
        if matches!(status, Some(429 | 500..=599)) {
            return Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Carthooks is having trouble",
                message: format!(
                    "Carthooks is having trouble right now, so {consequence}. Please try again \
                     in a few minutes."
                ),
                action: "Try again",
            };
        }
        Self {
            status: StatusCode::BAD_GATEWAY,
            title: "Something went wrong",
            message: format!(
                "Carthooks did not accept this site's request, so {consequence}. Please try \
                 again; if it keeps happening, the people who run this site need to look at it."
            ),
            action: "Try again",
        }
    }
}

/// The page for `trouble`, whose button leads to `next`; Carthooks' trace id
/// small below it when there is one.
fn trouble(trouble: Trouble, next: &str, trace_id: Option<&str>) -> Response {
    trouble_page(trouble, next, trace_id, "")
}

/// [`trouble`] with `extra` HTML after the button (the sign-out form).
fn trouble_page(trouble: Trouble, next: &str, trace_id: Option<&str>, extra: &str) -> Response {
    let reference = trace_id.map_or_else(String::new, |t| {
        format!(
            r#"<p id="reference" class="reference">Reference for support: {}</p>"#,
            escape(t)
        )
    });
    let home = if next == "/" {
        String::new()
    } else {
        r#" <a id="home" href="/">Home</a>"#.to_owned()
    };
    page(
        trouble.status,
        trouble.title,
        &format!(
            r#"<p id="error" class="error">{}</p>
<p><a id="next" class="button" href="{}">{}</a>{home}</p>{extra}{reference}"#,
            escape(&trouble.message),
            escape(next),
            escape(trouble.action),
        ),
    )
}

/// Whether a TCP connection to `url`'s host and port opens within 3 s: what
/// the browser is about to need.
async fn reachable(url: &str) -> bool {
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let connect = tokio::net::TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(Duration::from_secs(3), connect).await,
        Ok(Ok(_))
    )
}

const SIGN_OUT: &str = r#"<form method="post" action="/logout"><button id="sign-out" type="submit">Sign out</button></form>"#;

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · web_login</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:3rem auto;color:#222}}
h1{{color:#333}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}
.button,button{{display:inline-block;padding:.4rem 1rem;background:#0b5394;color:#fff;border:0;
border-radius:4px;text-decoration:none}}.error{{font-size:1.1rem}}
.reference{{margin-top:2.5rem;font-size:.75rem;color:#777}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"#,
        title = escape(title),
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// Escapes text for HTML content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_too_old_whichever_comes_first() {
        let t0 = Instant::now();
        let (idle, life) = (Duration::from_secs(60), Duration::from_secs(300));
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(session_end(t0, t0, at(59), idle, life), None);
        assert_eq!(session_end(t0, t0, at(60), idle, life), Some(Ended::Idle));
        // Used every 50 s: never idle, but over at 300 s.
        assert_eq!(session_end(t0, at(250), at(299), idle, life), None);
        assert_eq!(
            session_end(t0, at(290), at(300), idle, life),
            Some(Ended::Lifetime)
        );
        // Both at once: the lifetime is what is said.
        assert_eq!(
            session_end(t0, t0, at(400), idle, life),
            Some(Ended::Lifetime)
        );
        // A clock reading older than the session does not end it.
        assert_eq!(session_end(at(10), at(10), t0, idle, life), None);
    }

    #[test]
    fn each_attempt_has_a_cookie_of_its_own() {
        let a = state_cookie_name("0123456789abcdef0123");
        assert_eq!(a, "login_0123456789abcdef");
        assert_ne!(a, state_cookie_name("fedcba9876543210"));
        assert_eq!(minutes(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(minutes(Duration::from_secs(12 * 3600)), "12 hours");
        assert_eq!(minutes(Duration::from_secs(3)), "3 seconds");
    }
}
