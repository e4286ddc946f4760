//! Machine to machine: the client-credentials grant, then a call as the app.
//!
//! `cargo run --example client_credentials` runs against an embedded fake
//! Carthooks server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`.

use carthooks::{Client, OAuthConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    let client = match &fake {
        Some(server) => Client::builder()
            .base_url(server.url())
            .oauth(OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            )),
        None => Client::builder().from_env().oauth(OAuthConfig::from_env()?),
    }
    .build()?;

    let tokens = client.initialize_oauth(None).await?;
    println!(
        "client credentials: a {} token for the app ({})",
        tokens.token_type,
        if tokens.refresh_token.is_some() {
            "refreshable"
        } else {
            "no refresh token"
        }
    );
    let me = client.get_current_user().await?;
    println!(
        "acting as {} (user id {})",
        me.data.username, me.data.user_id
    );
    Ok(())
}
