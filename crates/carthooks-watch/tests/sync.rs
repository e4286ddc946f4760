//! `Watcher::sync` against moto's SQS and carthooks-mock delivering its
//! changes there: items are updated, deleted (before the export's cursor,
//! shifting its pages) and created while the snapshot is being copied and
//! after; at the end the replica equals the collection — nothing missing,
//! nothing stale, nothing that should be gone.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carthooks_client::ItemId;
use carthooks_mock::{DEFAULT_APP_ID as APP, DEFAULT_COLLECTION_ID as COLL};
use carthooks_watch::sync::Replica;
use carthooks_watch::{BoxError, Watcher};
use serde_json::{Value, json};
use support::{eventually, fixture};

/// A replica in memory: id → item.
#[derive(Default)]
struct Memory(Mutex<HashMap<u64, Value>>);

impl Replica for Memory {
    fn upsert(&self, item: &Value) -> Result<(), BoxError> {
        let id = item["id"].as_u64().ok_or("an item without an id")?;
        self.0.lock().unwrap().insert(id, item.clone());
        Ok(())
    }
    fn delete(&self, id: ItemId) -> Result<(), BoxError> {
        self.0.lock().unwrap().remove(&id.get());
        Ok(())
    }
}

/// The collection as the server holds it: id → item.
fn collection(server: &carthooks_mock::MockServer) -> HashMap<u64, Value> {
    server
        .state()
        .items(APP, COLL)
        .iter()
        .map(|item| (item["id"].as_u64().unwrap(), item.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_equals_the_collection_after_changes_during_and_after_the_snapshot() {
    let f = fixture("sync", 30).await;
    f.server.state().seed_items(APP, COLL, 3_000);
    // Pages take a while, so that changes land while they are read.
    f.server.set_latency(Some(Duration::from_millis(15)));
    let watcher = Watcher::builder(f.client.clone(), &f.queue_url, APP, COLL)
        .sqs_client(f.sqs.clone())
        .long_poll(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let replica = Arc::new(Memory::default());
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
    // Wait for the watch: changes from now on are delivered.
    eventually(
        Duration::from_secs(10),
        "the watch is registered",
        || async { f.server.counters().operation("watch_data") >= 1 },
    )
    .await;
    // 120 changes, one after another, from during the snapshot to after it:
    // updates across the collection, deletes of early items (every later
    // page shifts), creates, and an item updated then deleted.
    let ids: Vec<u64> = f.server.state().item_ids(APP, COLL);
    for i in 0..40u64 {
        let early = ids[(i * 7) as usize];
        let anywhere = ids[(i * 71 % ids.len() as u64) as usize + 1];
        f.client
            .update_item(APP, COLL, anywhere, &json!({"n": -1, "round": i}))
            .await
            .unwrap();
        f.client.delete_item(APP, COLL, early).await.unwrap();
        f.client
            .create_item(APP, COLL, &json!({"title": format!("new {i}"), "round": i}))
            .await
            .unwrap();
    }
    let last = ids[ids.len() - 1];
    f.client
        .update_item(APP, COLL, last, &json!({"n": -2}))
        .await
        .unwrap();
    f.client.delete_item(APP, COLL, last).await.unwrap();
    let expected = collection(&f.server);
    eventually(
        Duration::from_secs(60),
        "the replica equals the collection",
        || async { *replica.0.lock().unwrap() == expected },
    )
    .await;
    let _ = stop.send(());
    let stats = sync.await.unwrap().unwrap();
    eprintln!("{stats:?}");
    let held = replica.0.lock().unwrap();
    assert_eq!(held.len(), expected.len());
    let missing = expected.keys().filter(|id| !held.contains_key(id)).count();
    let stale = expected
        .iter()
        .filter(|(id, item)| held.get(id).is_some_and(|h| h != *item))
        .count();
    assert_eq!((missing, stale), (0, 0));
    assert!(
        stats.passes >= 1 && stats.snapshot_items >= 3_000,
        "{stats:?}"
    );
    assert!(
        stats.upserted + stats.deleted > 0,
        "changes applied after the snapshot"
    );
}
