//! The `web_login` app: "Sign in with Carthooks" for a web site, with one
//! Carthooks session per signed-in user over one shared client.
//!
//! | route | does |
//! |---|---|
//! | `GET /` | home: a "Sign in with Carthooks" link, or who is signed in |
//! | `GET /login` | a new CSRF `state`, kept in a short-lived cookie; redirect to Carthooks' sign-in page |
//! | `GET /callback?code&state` | check `state` against the cookie (`csrf::verify_state`), exchange the code in a new session, set the session cookie |
//! | `GET /items` | the signed-in user's items (the user's session calls Carthooks; it refreshes its token by itself) |
//! | `POST /logout` | end the session: forget it, close it, clear the cookie |
//!
//! Cookies are `HttpOnly` and `SameSite=Lax` (and `Secure` when the app is
//! served over HTTPS): page scripts cannot read them, and other sites cannot
//! post with them. The session cookie carries only a random id; the user's
//! tokens stay on the server, in the session's [`carthooks::Client`].
//! Sessions live in memory until sign-out (a real app would also expire idle
//! ones, and keep tokens across restarts with a per-session token store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use carthooks::{ItemsQuery, csrf};

/// The name of the cookie that holds the signed-in user's session id.
pub const SESSION_COOKIE: &str = "session";
/// The name of the cookie that holds the `state` of a sign-in in progress.
pub const STATE_COOKIE: &str = "login_state";

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
}

/// A signed-in user.
struct SignedIn {
    carthooks: carthooks::Client,
    username: String,
}

struct App {
    config: Config,
    secure: bool,
    sessions: Mutex<HashMap<String, Arc<SignedIn>>>,
}

impl App {
    fn redirect_uri(&self) -> String {
        format!("{}/callback", self.config.public_url)
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: Option<u32>) -> String {
        let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SignedIn>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session the request's cookie names, with its id.
    fn signed_in(&self, headers: &HeaderMap) -> Option<(String, Arc<SignedIn>)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let session = self.sessions().get(&id).cloned()?;
        Some((id, session))
    }
}

/// The app's routes.
pub fn router(config: Config) -> axum::Router {
    let app = Arc::new(App {
        secure: config.public_url.starts_with("https://"),
        config,
        sessions: Mutex::new(HashMap::new()),
    });
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/items", get(items))
        .route("/logout", post(logout))
        .with_state(app)
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let body = match app.signed_in(&headers) {
        Some((_, user)) => format!(
            r#"<p id="who">Signed in as <strong>{}</strong>.</p>
<p><a id="items" href="/items">Your items</a></p>{}"#,
            escape(&user.username),
            SIGN_OUT
        ),
        None => r#"<p id="who">You are not signed in.</p>
<p><a id="sign-in" class="button" href="/login">Sign in with Carthooks</a></p>"#
            .to_owned(),
    };
    page(StatusCode::OK, "Home", &body)
}

async fn login(State(app): State<Arc<App>>) -> Response {
    let state = match csrf::generate_state() {
        Ok(state) => state,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let url = carthooks::authorize_url(
        &app.config.authorize_page,
        &app.config.client_id,
        &app.redirect_uri(),
        &state,
    );
    // Ten minutes to sign in; only the callback ever needs the cookie.
    let cookie = app.cookie(STATE_COOKIE, &state, "/callback", Some(600));
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(&url),
    )
        .into_response()
}

async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The state cookie is spent whatever happens next.
    let clear_state = app.cookie(STATE_COOKIE, "", "/callback", Some(0));
    let refuse = |status: StatusCode, message: &str| {
        (
            AppendHeaders([(header::SET_COOKIE, clear_state.clone())]),
            error(status, message),
        )
            .into_response()
    };
    let expected = cookie(&headers, STATE_COOKIE).unwrap_or_default();
    let received = query.get("state").map(String::as_str).unwrap_or_default();
    if !csrf::verify_state(&expected, received) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not the one this browser started (its state does not match). \
             Nothing was signed in.",
        );
    }
    if query.contains_key("error") {
        return refuse(StatusCode::FORBIDDEN, "Sign-in was declined at Carthooks.");
    }
    let Some(code) = query.get("code") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in answer carries no code.",
        );
    };
    // A new session of the app's client: no connection, the app's own
    // tokens untouched. The code is single-use: a reused or expired one is
    // refused by Carthooks, and no session is made.
    let user = app.config.carthooks.session();
    if let Err(e) = user
        .exchange_authorization_code(code.as_str(), &app.redirect_uri())
        .await
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("Carthooks refused the sign-in code: {e}"),
        );
    }
    let username = match user.get_current_user().await {
        Ok(me) => me.data.username,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let id = match csrf::generate_state() {
        Ok(id) => id,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    app.sessions().insert(
        id.clone(),
        Arc::new(SignedIn {
            carthooks: user,
            username,
        }),
    );
    (
        AppendHeaders([
            (header::SET_COOKIE, clear_state),
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
    let Some((id, user)) = app.signed_in(&headers) else {
        return Redirect::to("/").into_response();
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
            app.sessions().remove(&id);
            user.carthooks.close();
            return (
                AppendHeaders([(
                    header::SET_COOKIE,
                    app.cookie(SESSION_COOKIE, "", "/", Some(0)),
                )]),
                error(
                    StatusCode::UNAUTHORIZED,
                    "Your Carthooks sign-in has ended: please sign in again.",
                ),
            )
                .into_response();
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e.to_string()),
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
<table id="items"><tr><th>Id</th><th>Title</th></tr>{rows}</table>{}"#,
        escape(&user.username),
        items.len(),
        SIGN_OUT
    );
    page(StatusCode::OK, "Your items", &body)
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some((id, user)) = app.signed_in(&headers) {
        app.sessions().remove(&id);
        // Any request of this user still running gets `Error::Closed`.
        user.carthooks.close();
    }
    (
        AppendHeaders([(
            header::SET_COOKIE,
            app.cookie(SESSION_COOKIE, "", "/", Some(0)),
        )]),
        Redirect::to("/"),
    )
        .into_response()
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

fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in problem",
        &format!(
            r#"<p id="error" class="error">{}</p><p><a id="home" href="/">Back to the home page</a></p>"#,
            escape(message)
        ),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · web_login</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:3rem auto;color:#222}}
h1{{color:#333}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}
.button,button{{display:inline-block;padding:.4rem 1rem;background:#0b5394;color:#fff;border:0;
border-radius:4px;text-decoration:none}}.error{{color:#b00}}</style></head>
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
