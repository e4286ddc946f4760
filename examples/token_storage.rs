//! Tokens that survive a restart: a `FileTokenStore` saves every new token set
//! (private file, written atomically, before the set is used) and the next
//! process starts from it, without a new grant.
//!
//! `cargo run --example token_storage` runs against an embedded fake Carthooks
//! server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`.

use std::sync::Arc;

use carthooks::{Client, FileTokenStore, OAuthConfig, TokenStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => Some(carthooks_mock::MockServer::start()?),
    };
    let builder = || -> Result<_, carthooks::Error> {
        Ok(match &fake {
            Some(server) => Client::builder()
                .base_url(server.url())
                .oauth(OAuthConfig::new(
                    carthooks_mock::DEFAULT_CLIENT_ID,
                    carthooks_mock::DEFAULT_CLIENT_SECRET,
                )),
            None => Client::builder().from_env().oauth(OAuthConfig::from_env()?),
        })
    };
    let dir = std::env::temp_dir().join(format!("carthooks-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(FileTokenStore::new(dir.join("tokens.json")));

    // First run: no stored tokens, so a grant; the store gets the new set.
    let first = builder()?.token_store(store.clone()).build()?;
    first.initialize_oauth(None).await?;
    first.close();
    let saved = store.load()?.ok_or("nothing was saved")?;
    println!(
        "1. first run: signed in; the store now holds a token set ({})",
        if saved.refresh_token.is_some() {
            "with a refresh token"
        } else {
            "no refresh token"
        }
    );

    // Second run: the store's set is loaded at build, so no grant is needed.
    let second = builder()?.token_store(store.clone()).build()?;
    let me = second.get_current_user().await?;
    println!(
        "2. restarted from the stored tokens, acting as {}",
        me.data.username
    );
    if let Some(failure) = second.token_store_failure() {
        println!("   (the store reported: {failure})");
    }

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
