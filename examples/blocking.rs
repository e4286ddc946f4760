//! The blocking client (ureq, no async runtime): client credentials, the
//! current user, every item of a collection page by page.
//!
//! `cargo run --example blocking` runs against an embedded fake Carthooks
//! server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, on
//! `CARTHOOKS_APP_ID` / `CARTHOOKS_COLLECTION_ID`. Needs the `ureq` feature of
//! `carthooks`.

use carthooks::blocking::Client;
use carthooks::{ItemsQuery, OAuthConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    let (builder, app, collection) = match &fake {
        Some(server) => (
            Client::builder()
                .base_url(server.url())
                .oauth(OAuthConfig::new(
                    carthooks_mock::DEFAULT_CLIENT_ID,
                    carthooks_mock::DEFAULT_CLIENT_SECRET,
                )),
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
        ),
        None => (
            Client::builder().from_env().oauth(OAuthConfig::from_env()?),
            std::env::var("CARTHOOKS_APP_ID")?.parse()?,
            std::env::var("CARTHOOKS_COLLECTION_ID")?.parse()?,
        ),
    };
    let client = builder.build()?;

    client.initialize_oauth(None)?;
    let me = client.get_current_user()?;
    println!("1. signed in; acting as {}", me.data.username);

    // Every item, two per request; an error ends the walk as an item.
    let mut titles = Vec::new();
    for item in client.all_items(app, collection, &ItemsQuery::new().limit(2)) {
        let item = item?;
        titles.push(item["title"].as_str().unwrap_or("(untitled)").to_owned());
    }
    println!("2. {} items: {}", titles.len(), titles.join(", "));
    Ok(())
}
