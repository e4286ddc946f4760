//! The tour: client credentials, the current user, a page of items, a new item.
//!
//! `cargo run --example quickstart` runs against an embedded fake Carthooks
//! server. With `CARTHOOKS_API_URL` set it talks to that server instead, as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, on the app and collection
//! `CARTHOOKS_APP_ID` / `CARTHOOKS_COLLECTION_ID`.

use carthooks::Clock as _;
use carthooks::{Client, ItemsQuery, OAuthConfig, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real server from the environment, or the fake one (carthooks-mock).
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    let (builder, oauth, app, collection) = match &fake {
        Some(server) => {
            println!(
                "using the embedded fake Carthooks server at {}",
                server.url()
            );
            (
                Client::builder().base_url(server.url()),
                OAuthConfig::new(
                    carthooks_mock::DEFAULT_CLIENT_ID,
                    carthooks_mock::DEFAULT_CLIENT_SECRET,
                ),
                carthooks_mock::DEFAULT_APP_ID,
                carthooks_mock::DEFAULT_COLLECTION_ID,
            )
        }
        None => (
            Client::builder().from_env(),
            OAuthConfig::from_env()?,
            std::env::var("CARTHOOKS_APP_ID")?.parse()?,
            std::env::var("CARTHOOKS_COLLECTION_ID")?.parse()?,
        ),
    };
    // Called with every new token set: this is where you would persist it.
    let oauth = oauth.on_token_refresh(|tokens| {
        println!(
            "  (new tokens; refresh token issued: {})",
            tokens.refresh_token.is_some()
        );
    });
    let client = builder.oauth(oauth).build()?;

    let tokens = client.initialize_oauth(None).await?;
    match tokens.expires_in(SystemClock.now()) {
        Some(seconds) => println!(
            "1. signed in as the app; the token is valid for {} h",
            seconds / 3600
        ),
        None => println!("1. signed in as the app; the server gave no lifetime"),
    }

    let me = client.get_current_user().await?;
    println!(
        "2. acting as {} (tenant {}); trace id {}",
        me.data.username,
        me.data.tenant_name,
        me.trace_id.as_deref().unwrap_or("none")
    );

    let page = client
        .get_items(app, collection, &ItemsQuery::new().limit(5))
        .await?;
    let total = page
        .total()
        .map_or("an unknown number of".to_owned(), |t| t.to_string());
    println!(
        "3. {} items on the first page, {total} in all",
        page.data.len()
    );

    let created = client
        .create_item(
            app,
            collection,
            &serde_json::json!({"title": "Created by the Rust quickstart", "status": "active"}),
        )
        .await?;
    println!("4. created item {}", created.data["id"]);
    Ok(())
}
