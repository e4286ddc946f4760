//! Items end to end: create, get, update, lock, unlock, find with a filter,
//! walk every page, delete — with items decoded into a type of your own.
//!
//! `cargo run --example items_crud` runs against an embedded fake Carthooks
//! server; with `CARTHOOKS_API_URL` set, against that server as
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, on
//! `CARTHOOKS_APP_ID` / `CARTHOOKS_COLLECTION_ID` (it creates and deletes one item).

use carthooks::http::StatusCode;
use carthooks::{Client, FilterOp, ItemId, ItemsQuery, LockOptions, OAuthConfig};
use serde_json::json;

/// An item as this program wants it.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: ItemId,
    title: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    client.initialize_oauth(None).await?;
    let marker = format!("rust-example-{}", std::process::id());

    let order: Order = client
        .create_item_as(
            app,
            collection,
            &json!({"title": "Example order", "f_1001": marker}),
        )
        .await?
        .data;
    println!("1. created {} ({})", order.id, order.title);

    let got = client
        .get_item(app, collection, order.id, &["title", "f_1001"])
        .await?;
    println!(
        "2. got it back with fields title, f_1001: {}",
        got.data["fields"]
    );

    client
        .update_item(
            app,
            collection,
            order.id,
            &json!({"title": "Example order (paid)"}),
        )
        .await?;
    let order: Order = client
        .get_item_as(app, collection, order.id, &[])
        .await?
        .data;
    println!("3. updated: now \"{}\"", order.title);

    let lock_id = format!("lock-{}", std::process::id());
    let options = LockOptions::new(&lock_id).subject("invoicing").timeout(60);
    let lock = client
        .lock_item(app, collection, order.id, &options)
        .await?;
    println!("4. locked for invoicing: {}", lock.data.locked);
    let unlock = client
        .unlock_item(app, collection, order.id, &lock_id)
        .await?;
    println!("5. unlocked: {}", !unlock.data.locked);

    let query = ItemsQuery::new()
        .limit(10)
        .filter("f_1001", FilterOp::Eq, &marker);
    let found = client
        .get_items_as::<Order>(app, collection, &query)
        .await?;
    println!(
        "6. the filter f_1001 = {marker} finds {} item(s)",
        found.data.len()
    );

    let mut pages = client.all_items_as::<Order>(app, collection, &ItemsQuery::new().limit(2));
    let mut count = 0;
    while let Some(order) = pages.next_item().await {
        order?;
        count += 1;
    }
    println!("7. walked every page, two items a request: {count} items");

    client.delete_item(app, collection, order.id).await?;
    match client.get_item(app, collection, order.id, &[]).await {
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            println!("8. deleted; asking for it again is a typed 404");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the deleted item is still there".into()),
    }
    Ok(())
}
