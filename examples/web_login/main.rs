//! "Sign in with Carthooks": a web app (axum) whose users sign in with the
//! authorization-code flow, each getting a Carthooks session of their own over
//! the app's one client. The routes and cookies are described in `app.rs`.
//!
//! `cargo run --example web_login` serves it against an embedded fake
//! Carthooks server (with its sign-in page; users `alice` / `alice-password`
//! and `bob` / `bob-password`, each with items of their own) and prints the URL
//! to open. `WEB_LOGIN_ADDR` picks the address (default `127.0.0.1:3000`; `:0`
//! for any free port). With `CARTHOOKS_API_URL` set it talks to that server
//! instead, as `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, sending users
//! to the sign-in page `CARTHOOKS_AUTHORIZE_URL` and listing the collection
//! `CARTHOOKS_APP_ID` / `CARTHOOKS_COLLECTION_ID`; register
//! `http://ADDR/callback` (or `WEB_LOGIN_PUBLIC_URL/callback`) as the
//! redirect URI (the embedded server has `http://127.0.0.1/callback`
//! registered, any port). Sessions end after 30 minutes unused and 12 hours
//! after sign-in. Ctrl-C stops it.

mod app;

use carthooks::{Client, OAuthConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start_with(
            carthooks_mock::MockConfig {
                per_user_items: true,
                ..Default::default()
            },
        )?),
    };
    let (builder, oauth, authorize_page, app_id, collection_id) = match &fake {
        Some(server) => (
            Client::builder().base_url(server.url()),
            OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            ),
            server.authorize_page(),
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
        ),
        None => (
            Client::builder().from_env(),
            OAuthConfig::from_env()?,
            std::env::var("CARTHOOKS_AUTHORIZE_URL")
                .map_err(|_| "set CARTHOOKS_AUTHORIZE_URL to Carthooks' sign-in page")?,
            std::env::var("CARTHOOKS_APP_ID")?.parse()?,
            std::env::var("CARTHOOKS_COLLECTION_ID")?.parse()?,
        ),
    };
    let client_id = oauth.client_id.clone();
    let carthooks = builder.oauth(oauth).build()?;

    let addr = std::env::var("WEB_LOGIN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (set WEB_LOGIN_ADDR): {e}"))?;
    let public_url = match std::env::var("WEB_LOGIN_PUBLIC_URL") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(_) => format!("http://{}", listener.local_addr()?),
    };
    if let Some(server) = &fake {
        println!("fake Carthooks at {} (users: alice, bob)", server.url());
    }
    println!("web_login: open {public_url}/ in a browser (Ctrl-C stops)");
    let (router, _) = app::router(app::Config {
        carthooks,
        client_id,
        authorize_page,
        public_url,
        app_id,
        collection_id,
        idle_timeout: app::DEFAULT_IDLE_TIMEOUT,
        max_lifetime: app::DEFAULT_MAX_LIFETIME,
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
