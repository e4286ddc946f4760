//! A back end acting for a user: the client-credentials grant with the user's
//! own access token, then calls as that user.
//!
//! `cargo run --example user_token` runs against an embedded fake Carthooks
//! server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, for the user whose token is
//! `CARTHOOKS_USER_TOKEN`.

use carthooks::{Client, OAuthConfig, TokenIdentity};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    let (builder, user_token) = match &fake {
        Some(server) => (
            Client::builder()
                .base_url(server.url())
                .oauth(OAuthConfig::new(
                    carthooks_mock::DEFAULT_CLIENT_ID,
                    carthooks_mock::DEFAULT_CLIENT_SECRET,
                )),
            carthooks_mock::DEFAULT_USER_TOKEN.to_owned(),
        ),
        None => (
            Client::builder().from_env().oauth(OAuthConfig::from_env()?),
            std::env::var("CARTHOOKS_USER_TOKEN")
                .map_err(|_| "set CARTHOOKS_USER_TOKEN to a user's access token")?,
        ),
    };
    let client = builder.build()?;

    let tokens = client.initialize_oauth(Some(&user_token)).await?;
    if tokens.identity == Some(TokenIdentity::AppForUser) {
        println!("signed in as the app, acting for the user");
    }
    let me = client.get_current_user().await?;
    println!(
        "acting as {} (user id {}, {})",
        me.data.username,
        me.data.user_id,
        if me.data.is_admin {
            "an admin"
        } else {
            "not an admin"
        }
    );
    Ok(())
}
