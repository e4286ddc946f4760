//! Keep a SQLite table equal to a collection: `Watcher::sync` registers the
//! watch, copies every item, then applies every change as it comes.
//!
//! Needs an SQS queue, as the `watch` example does: `CARTHOOKS_WATCH_QUEUE_URL`
//! (and `AWS_ENDPOINT_URL` for a local server such as `moto_server`).
//! Carthooks is the embedded fake server unless `CARTHOOKS_API_URL` is set
//! (then `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, `CARTHOOKS_APP_ID` /
//! `CARTHOOKS_COLLECTION_ID`). The database is `CARTHOOKS_SQLITE` (default
//! `items.sqlite3` in the temporary directory). With the fake server the
//! example seeds 1,000 items, changes some while the copy runs, and stops once
//! the table equals the collection; with a real one it runs until Ctrl-C.
//!
//! ```text
//! CARTHOOKS_WATCH_QUEUE_URL=http://127.0.0.1:5000/123456789012/orders \
//!   cargo run --example sync_sqlite --features sqlite
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carthooks::watch::sync::Replica;
use carthooks::watch::{BoxError, Watcher};
use carthooks::{Client, ItemId, OAuthConfig};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// The replica: one row per item, its JSON as the API gives it.
struct Sqlite(Mutex<Connection>);

impl Sqlite {
    fn open(path: &str) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             DROP TABLE IF EXISTS items;
             CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT, item TEXT NOT NULL);",
        )?;
        Ok(Self(Mutex::new(db)))
    }

    fn count(&self) -> rusqlite::Result<u64> {
        let db = self.0.lock().unwrap_or_else(|e| e.into_inner());
        db.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
    }

    fn all(&self) -> rusqlite::Result<Vec<(u64, Value)>> {
        let db = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows = db.prepare("SELECT id, item FROM items ORDER BY id")?;
        let rows = rows.query_map([], |r| {
            let json: String = r.get(1)?;
            Ok((
                r.get(0)?,
                serde_json::from_str(&json).unwrap_or(Value::Null),
            ))
        })?;
        rows.collect()
    }
}

impl Replica for Sqlite {
    fn upsert(&self, item: &Value) -> Result<(), BoxError> {
        let id = item["id"].as_u64().ok_or("an item without an id")?;
        let db = self.0.lock().unwrap_or_else(|e| e.into_inner());
        db.execute(
            "INSERT INTO items (id, title, item) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET title = excluded.title, item = excluded.item",
            params![id as i64, item["title"].as_str(), item.to_string()],
        )?;
        Ok(())
    }

    fn delete(&self, id: ItemId) -> Result<(), BoxError> {
        let db = self.0.lock().unwrap_or_else(|e| e.into_inner());
        db.execute("DELETE FROM items WHERE id = ?1", params![id.get() as i64])?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(queue_url) = std::env::var("CARTHOOKS_WATCH_QUEUE_URL") else {
        println!(
            "set CARTHOOKS_WATCH_QUEUE_URL to an SQS queue (and AWS_ENDPOINT_URL for a local one, e.g. moto_server) to run this example"
        );
        return Ok(());
    };
    let sqs = carthooks::watch::sqs_client_from_env().await;
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => {
            let server = carthooks_mock::MockServer::start()?;
            server.deliver_changes_to(sqs.clone());
            let (app, coll) = (
                carthooks_mock::DEFAULT_APP_ID,
                carthooks_mock::DEFAULT_COLLECTION_ID,
            );
            server.state().seed_items(app, coll, 1_000);
            // A little distance, so that changes land while pages are read.
            server.set_latency(Some(Duration::from_millis(5)));
            Some(server)
        }
    };
    let (client, app, collection) = match &fake {
        Some(server) => (
            Client::builder()
                .base_url(server.url())
                .oauth(OAuthConfig::new(
                    carthooks_mock::DEFAULT_CLIENT_ID,
                    carthooks_mock::DEFAULT_CLIENT_SECRET,
                ))
                .build()?,
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
        ),
        None => (
            Client::builder().oauth(OAuthConfig::from_env()?).build()?,
            std::env::var("CARTHOOKS_APP_ID")?.parse()?,
            std::env::var("CARTHOOKS_COLLECTION_ID")?.parse()?,
        ),
    };
    client.initialize_oauth(None).await?;
    let path = std::env::var("CARTHOOKS_SQLITE").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("items.sqlite3")
            .to_string_lossy()
            .into_owned()
    });
    let replica = Arc::new(Sqlite::open(&path)?);
    let watcher = Watcher::builder(client.clone(), &queue_url, app, collection)
        .sqs_client(sqs)
        .long_poll(Duration::from_secs(2))
        .build()
        .await?;

    let Some(server) = fake else {
        // A real Carthooks: in step until Ctrl-C.
        let stats = watcher
            .sync(Arc::clone(&replica), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        println!("stopped: {stats:?}");
        return Ok(());
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sync = {
        let replica = Arc::clone(&replica);
        tokio::spawn(async move {
            watcher
                .sync(replica, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    // Changes while the copy runs: an update, a delete and a create, ten times.
    let ids = server.state().item_ids(app, collection);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..10 {
        client
            .update_item(
                app,
                collection,
                ids[i * 90 + 5],
                &json!({"status": "changed"}),
            )
            .await?;
        client.delete_item(app, collection, ids[i * 3]).await?;
        client
            .create_item(app, collection, &json!({"title": format!("order {i}")}))
            .await?;
    }
    let wanted: Vec<(u64, Value)> = server
        .state()
        .items(app, collection)
        .iter()
        .map(|item| (item["id"].as_u64().unwrap_or(0), item.clone()))
        .collect();
    for _ in 0..600 {
        if replica.all()? == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    let stats = sync.await??;
    let equal = replica.all()? == wanted;
    println!(
        "{path}: {} rows, {} items in the collection, equal: {equal} ({} passes, {} changes applied)",
        replica.count()?,
        wanted.len(),
        stats.passes,
        stats.upserted + stats.deleted
    );
    if !equal {
        return Err("the table is not the collection".into());
    }
    Ok(())
}
