//! A web app's sign-in, as two steps: the user's session asks for an
//! authorization code bound to a PKCE challenge (in a real app the user's
//! browser goes to the redirect URL), then the app's redirect handler checks
//! `state` and exchanges the code, with the challenge's verifier, in a new
//! session of the app's client. `web_login` is the same as a web app in a
//! browser.
//!
//! `cargo run --example authorization_code` runs against an embedded fake
//! Carthooks server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, for the user whose token is
//! `CARTHOOKS_USER_TOKEN`, with the redirect URI `CARTHOOKS_REDIRECT_URI`.

use carthooks::{Client, OAuthAuthorizeCodeRequest, OAuthConfig, Pkce, csrf};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    // The app's one client: its credentials, its connection pool.
    let app = match &fake {
        Some(server) => Client::builder()
            .base_url(server.url())
            .oauth(OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            )),
        None => Client::builder().from_env().oauth(OAuthConfig::from_env()?),
    }
    .build()?;
    let user_token = match &fake {
        Some(_) => carthooks_mock::DEFAULT_USER_TOKEN.to_owned(),
        None => std::env::var("CARTHOOKS_USER_TOKEN")
            .map_err(|_| "set CARTHOOKS_USER_TOKEN to a user's access token")?,
    };
    let redirect_uri = std::env::var("CARTHOOKS_REDIRECT_URI")
        .unwrap_or_else(|_| "https://app.example/callback".to_owned());

    // 1. The user's session asks for a code; `state` is unguessable and is kept
    //    in the user's session (a cookie) until the redirect comes back. The
    //    PKCE verifier stays on the server; only its challenge travels, so a
    //    code intercepted on the way back cannot be exchanged by anyone else.
    let state = csrf::generate_state()?;
    let pkce = Pkce::new()?;
    let session = app.session();
    let client_id = match &fake {
        Some(_) => carthooks_mock::DEFAULT_CLIENT_ID.to_owned(),
        None => std::env::var("CARTHOOKS_CLIENT_ID")?,
    };
    session.initialize_oauth(Some(&user_token)).await?;
    let answer = session
        .get_oauth_authorize_code(
            &OAuthAuthorizeCodeRequest::new(client_id, redirect_uri.as_str(), state.as_str())
                .pkce(pkce.challenge()),
        )
        .await?;
    println!("1. a code was issued for the user; the browser would now follow the redirect");

    // 2. The redirect handler: the state must be the one in the session.
    let returned_state = answer.data.state().unwrap_or_default();
    if !csrf::verify_state(&state, &returned_state) {
        return Err("the redirect's state does not match the session's: refused".into());
    }
    let code = answer.data.code().ok_or("the redirect carries no code")?;
    // A new session for the signed-in user, over the app's connection pool.
    let user = app.session();
    let tokens = user
        .exchange_authorization_code(code, &redirect_uri, Some(pkce.verifier()))
        .await?;
    println!(
        "2. code exchanged for the user's tokens ({})",
        if tokens.refresh_token.is_some() {
            "refreshable"
        } else {
            "no refresh token"
        }
    );
    let me = user.get_current_user().await?;
    println!(
        "3. signed in as {} (user id {})",
        me.data.username, me.data.user_id
    );
    Ok(())
}
