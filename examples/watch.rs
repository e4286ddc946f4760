//! React to changes: a watcher takes each new order from an SQS queue, locks
//! it, marks it done and unlocks it; Ctrl-C stops it gracefully.
//!
//! Needs an SQS queue: `CARTHOOKS_WATCH_QUEUE_URL`, with AWS credentials and
//! region from the usual places (`AWS_ENDPOINT_URL` for a local server such as
//! `moto_server`). Carthooks is the embedded fake server, which delivers its
//! changes to that queue, unless `CARTHOOKS_API_URL` is set (then
//! `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET`, `CARTHOOKS_APP_ID` /
//! `CARTHOOKS_COLLECTION_ID`). With the fake server the example adds three
//! orders itself and stops once they are done.
//!
//! ```text
//! python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]'
//! /tmp/moto/bin/moto_server -p 5000 &
//! export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x
//! aws sqs create-queue --queue-name orders   # or any SQS client
//! CARTHOOKS_WATCH_QUEUE_URL=http://127.0.0.1:5000/123456789012/orders cargo run --example watch
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use carthooks::watch::{BoxError, Change, ChangeKind, Watcher};
use carthooks::{Client, OAuthConfig};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(queue_url) = std::env::var("CARTHOOKS_WATCH_QUEUE_URL") else {
        println!(
            "set CARTHOOKS_WATCH_QUEUE_URL to an SQS queue (and AWS_ENDPOINT_URL for a local one, e.g. moto_server) to run this example"
        );
        return Ok(());
    };
    let sqs = carthooks::watch::sqs_client_from_env().await;

    // A real Carthooks from the environment, or the fake one delivering to the queue.
    let fake = match std::env::var("CARTHOOKS_API_URL") {
        Ok(_) => None,
        Err(_) => {
            let server = carthooks_mock::MockServer::start()?;
            server.deliver_changes_to(sqs.clone());
            Some(server)
        }
    };
    let (builder, oauth, app, collection) = match &fake {
        Some(server) => (
            Client::builder().base_url(server.url()),
            OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            ),
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
        ),
        None => (
            Client::builder().from_env(),
            OAuthConfig::from_env()?,
            std::env::var("CARTHOOKS_APP_ID")?.parse()?,
            std::env::var("CARTHOOKS_COLLECTION_ID")?.parse()?,
        ),
    };
    let client = builder.oauth(oauth).build()?;
    client.initialize_oauth(None).await?;

    // Only new orders: marking one done changes it, and a watch of every change
    // would hand that change back to us.
    let watcher = Watcher::builder(client.clone(), &queue_url, app, collection)
        .filters(json!({"status": {"$eq": "new"}}))
        .sqs_client(sqs)
        .on_problem(|problem| eprintln!("problem: {problem:?}"))
        .build()
        .await?;
    println!(
        "watching app {app} collection {collection} as {:?}; Ctrl-C stops",
        watcher.watcher_id()
    );

    let done = Arc::new(AtomicUsize::new(0));
    let handler = {
        let done = Arc::clone(&done);
        move |change: Change| {
            let done = Arc::clone(&done);
            async move {
                let event = change.event();
                if event.kind() != ChangeKind::Created {
                    return Ok(());
                }
                let title = event.payload.title.as_deref().unwrap_or("(untitled)");
                // Lock with the watcher id, so that another worker of the fleet
                // (or a person in the UI) does not change it meanwhile.
                change.lock().await?;
                change.update(&json!({"status": "done"})).await?;
                change.unlock().await?;
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                println!(
                    "  done: item {} {title:?} (delivery #{}), {n} so far",
                    change.item_id(),
                    change.receive_count()
                );
                Ok::<(), BoxError>(())
            }
        }
    };

    let stats = match &fake {
        // The fake server: add three orders, stop when they are done.
        Some(_) => {
            let adding = {
                let client = client.clone();
                async move {
                    // The watch must be registered before the orders are made.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    for n in 1..=3 {
                        let order = json!({"title": format!("Order {n}"), "status": "new"});
                        let _ = client.create_item(app, collection, &order).await;
                    }
                    while done.load(Ordering::SeqCst) < 3 {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            };
            watcher
                .run_until(handler, async {
                    tokio::select! {
                        () = adding => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                })
                .await?
        }
        None => watcher.run(handler).await?,
    };
    println!(
        "stopped: {} handled, {} failed, {} acked, {} malformed",
        stats.handled, stats.failed, stats.acked, stats.malformed
    );
    Ok(())
}
