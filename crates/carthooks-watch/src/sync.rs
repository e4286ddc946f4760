//! A replica kept equal to a collection: the snapshot, then every change.
//!
//! [`Watcher::sync`] keeps a [`Replica`] of your own (a SQLite table, a
//! search index, a cache) equal to the watcher's collection:
//!
//! 1. **The watch first.** The watch is registered before the first page is
//!    read, and the watcher runs from then on, so every change made during
//!    the snapshot is in the queue. While the snapshot is being copied, a
//!    change only notes its item (and acks).
//! 2. **The snapshot.** Every item, through
//!    [`export`](carthooks_client::Client::export) (pages four at a time),
//!    upserted into the replica. Offset pages move when an item before the
//!    current page is deleted: an item that never changed can then be
//!    skipped (see [`carthooks_client::bulk`]). So when the pass saw the
//!    total move, or a deletion arrived during it (or within `settle` after
//!    it), the snapshot is copied again — at most three passes — upserting
//!    every item once more (harmless: each is the server's state then).
//! 3. **The changes.** Every item noted during the snapshot, then every
//!    change as it comes, is read again from the server (`get_item`) and
//!    upserted, or deleted from the replica if the server says 404. Reading
//!    again, rather than applying the message's payload, makes the order and
//!    the duplicates of a standard queue harmless: whatever order changes
//!    arrive in, the last one applied for an item is read after the item's
//!    last change. Two changes of one item are applied one after the other
//!    (a lock per item), never at once.
//!
//! A sync stopped (or killed) before its snapshot is done starts over with
//! the snapshot next time: the changes it noted were acked, but the next
//! snapshot reads every item again. A shutdown during the snapshot stops it
//! at once.
//!
//! A replica is assumed to start empty (or to hold only items of the
//! collection): an item it holds that was deleted before the sync started is
//! not removed. A deletion that shifted an unchanged item across a page
//! boundary, and whose change message arrives later than `settle` (2 s) after
//! a pass, can leave that item out until it next changes.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use carthooks_client::{ItemId, ItemsQuery};
use serde_json::Value;

use crate::{BoxError, Change, ChangeKind, Client, Stats, WatchError, Watcher};

/// Passes over the snapshot at most.
const MAX_PASSES: u32 = 3;
/// How long after a pass a deletion made during it may still arrive.
const SETTLE: Duration = Duration::from_secs(2);

/// Where [`Watcher::sync`] writes: yours. Called from the watcher's handler
/// tasks, at most one call per item at a time; keep each call short (a
/// SQLite statement is).
pub trait Replica: Send + Sync + 'static {
    /// The item (as the API answers it: `id`, `title`, `fields`, …) is now
    /// this: insert it or replace it.
    fn upsert(&self, item: &Value) -> Result<(), BoxError>;
    /// The item is gone: remove it (if it is there).
    fn delete(&self, id: ItemId) -> Result<(), BoxError>;
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Passes over the snapshot (more than one when it moved under the
    /// export).
    pub passes: u32,
    /// Items upserted by the snapshot passes.
    pub snapshot_items: u64,
    /// Changes noted during the snapshot, applied after it.
    pub noted: u64,
    /// Items read again and upserted because they changed.
    pub upserted: u64,
    /// Items deleted from the replica because the server no longer has them.
    pub deleted: u64,
    /// The watcher's own counts.
    pub watch: Stats,
}

/// What the handler and the snapshot share.
struct Shared {
    client: Client,
    app: carthooks_client::AppId,
    coll: carthooks_client::CollectionId,
    /// `Some`: the snapshot is being copied, and these items changed.
    noted: Mutex<Option<BTreeSet<u64>>>,
    deletion_seen: AtomicBool,
    locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    passes: AtomicU32,
    snapshot_items: AtomicU64,
    noted_count: AtomicU64,
    upserted: AtomicU64,
    deleted: AtomicU64,
}

impl Shared {
    /// Reads the item again and writes what the server says, under the
    /// item's lock.
    async fn apply<R: Replica>(&self, replica: &R, id: u64) -> Result<(), BoxError> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_default(),
        );
        let held = lock.lock().await;
        let result = match self.client.get_item(self.app, self.coll, id, &[]).await {
            Ok(item) => {
                self.upserted.fetch_add(1, Ordering::Relaxed);
                replica.upsert(&item.data)
            }
            Err(e) if e.status() == Some(carthooks_client::http::StatusCode::NOT_FOUND) => {
                self.deleted.fetch_add(1, Ordering::Relaxed);
                replica.delete(ItemId::new(id))
            }
            Err(e) => Err(e.into()),
        };
        drop(held);
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: nobody waits for it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&id);
        }
        result
    }
}

impl Watcher {
    /// Keeps `replica` equal to the watcher's collection until `shutdown`
    /// completes: the watch registered first, a snapshot of every item, then
    /// every change (see [the module docs](crate::sync)). Do not give the
    /// watcher `filters`: the replica would miss the changes they leave out.
    ///
    /// Fails if the watch cannot be registered, the snapshot cannot be read,
    /// or the replica refuses a snapshot item (or, four times, an item noted
    /// during the snapshot); a change the replica (or the server) refuses
    /// later is nacked and comes again.
    pub async fn sync<R: Replica>(
        &self,
        replica: Arc<R>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<SyncStats, WatchError> {
        let client = self.shared.client.clone();
        let (app, coll) = (self.shared.app_id, self.shared.collection_id);
        // 1. The watch, before the first page.
        client
            .start_watch_data(&self.registration)
            .await
            .map_err(WatchError::Register)?;
        let shared = Arc::new(Shared {
            client: client.clone(),
            app,
            coll,
            noted: Mutex::new(Some(BTreeSet::new())),
            deletion_seen: AtomicBool::new(false),
            locks: Mutex::new(HashMap::new()),
            passes: AtomicU32::new(0),
            snapshot_items: AtomicU64::new(0),
            noted_count: AtomicU64::new(0),
            upserted: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
        });
        let handler = {
            let shared = Arc::clone(&shared);
            let replica = Arc::clone(&replica);
            move |change: Change| {
                let shared = Arc::clone(&shared);
                let replica = Arc::clone(&replica);
                async move {
                    let id = change.item_id().get();
                    {
                        let mut noted = shared.noted.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(noted) = noted.as_mut() {
                            if change.event().kind() == ChangeKind::Deleted {
                                shared.deletion_seen.store(true, Ordering::SeqCst);
                            }
                            noted.insert(id);
                            return Ok::<(), BoxError>(());
                        }
                    }
                    shared.apply(&*replica, id).await
                }
            }
        };
        // Stops the watcher and the snapshot: the caller's shutdown, or the
        // snapshot failing.
        let stop = tokio::sync::watch::Sender::new(false);
        let stopped = |stop: &tokio::sync::watch::Sender<bool>| {
            let mut rx = stop.subscribe();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let copying = async {
            tokio::select! {
                result = snapshot(&shared, &*replica) => {
                    if result.is_err() {
                        stop.send_replace(true);
                    }
                    Some(result)
                }
                () = stopped(&stop) => None,
            }
        };
        let both = async { tokio::join!(self.run_until(handler, stopped(&stop)), copying) };
        tokio::pin!(both, shutdown);
        let (watch, snapshot) = tokio::select! {
            out = &mut both => out,
            () = &mut shutdown => {
                stop.send_replace(true);
                both.await
            }
        };
        // `None`: stopped during the snapshot (the counts say how far it got).
        snapshot.transpose()?;
        let watch = watch?;
        Ok(SyncStats {
            passes: shared.passes.load(Ordering::Relaxed),
            snapshot_items: shared.snapshot_items.load(Ordering::Relaxed),
            noted: shared.noted_count.load(Ordering::Relaxed),
            upserted: shared.upserted.load(Ordering::Relaxed),
            deleted: shared.deleted.load(Ordering::Relaxed),
            watch,
        })
    }
}

/// Steps 2 and 3's start: the passes, then the items noted meanwhile.
async fn snapshot<R: Replica>(shared: &Shared, replica: &R) -> Result<(), WatchError> {
    let mut passes = 0;
    loop {
        passes += 1;
        shared.passes.store(passes, Ordering::Relaxed);
        shared.deletion_seen.store(false, Ordering::SeqCst);
        let mut export = shared
            .client
            .export(shared.app, shared.coll, &ItemsQuery::new());
        while let Some(item) = export.next_item().await {
            let item = item?;
            replica.upsert(&item).map_err(WatchError::Replica)?;
            shared.snapshot_items.fetch_add(1, Ordering::Relaxed);
        }
        let moved = export.stats().total_changed;
        if !moved {
            tokio::time::sleep(SETTLE).await;
        }
        let again = moved || shared.deletion_seen.load(Ordering::SeqCst);
        if !again || passes >= MAX_PASSES {
            break;
        }
    }
    // Changes from now on are applied as they come; those noted so far, here.
    let noted = shared
        .noted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default();
    shared
        .noted_count
        .store(noted.len() as u64, Ordering::Relaxed);
    for id in noted {
        // Its change was acked when noted: it must be applied here.
        let mut wait = Duration::from_millis(200);
        let mut tries = 0;
        while let Err(e) = shared.apply(replica, id).await {
            tries += 1;
            if tries == 4 {
                return Err(WatchError::Replica(e));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Ok(())
}
