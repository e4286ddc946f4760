//! What a handler gets: one change, and the record helpers that act on its item.

use std::sync::Arc;
use std::time::Duration;

use carthooks_client::{ApiResponse, ItemId, ItemLock, LockOptions};
use serde::Serialize;

use crate::settle::{ack, nack};
use crate::{ChangeEvent, Client, Receipt, Run, WatchError};

/// One received change, handed to your handler: the event, and what you can
/// do with it.
pub struct Change {
    pub(crate) event: Arc<ChangeEvent>,
    pub(crate) receipt: Arc<Receipt>,
    pub(crate) receive_count: u32,
    pub(crate) run: Arc<Run>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("message_id", &self.receipt.message_id)
            .field("item_id", &self.event.item_id())
            .field("event", &self.event.meta.event)
            .field("receive_count", &self.receive_count)
            .finish_non_exhaustive()
    }
}

impl Change {
    /// The change event.
    pub fn event(&self) -> &ChangeEvent {
        &self.event
    }

    /// The changed item's id.
    pub fn item_id(&self) -> ItemId {
        self.event.item_id()
    }

    /// The SQS message id.
    pub fn message_id(&self) -> &str {
        &self.receipt.message_id
    }

    /// How many times SQS has handed this message out (1 the first time).
    pub fn receive_count(&self) -> u32 {
        self.receive_count
    }

    /// The Carthooks client, for calls of your own.
    pub fn client(&self) -> &Client {
        &self.run.shared.client
    }

    /// The watcher's id (the lock id of [`lock`](Self::lock)).
    pub fn watcher_id(&self) -> &str {
        &self.run.shared.watcher_id
    }

    /// Deletes the message from the queue; returns once SQS did.
    pub async fn ack(&self) -> Result<(), WatchError> {
        ack(&self.run, &self.receipt).await?;
        // Handled: an older change of the item that comes later is stale.
        self.run
            .items
            .handled(self.item_id(), self.event.revision());
        Ok(())
    }

    /// Makes the message visible again after `delay` (0 to 12 h). SQS counts
    /// whole seconds: a delay with a fraction is rounded up (500 ms → 1 s),
    /// never down.
    pub async fn nack(&self, delay: Duration) -> Result<(), WatchError> {
        nack(&self.run, &self.receipt, delay).await
    }

    /// Locks the item for 600 s with the watcher id as lock id.
    pub async fn lock(&self) -> Result<ApiResponse<ItemLock>, WatchError> {
        self.lock_with(LockOptions::new(self.watcher_id())).await
    }

    /// Locks the item with your own options.
    pub async fn lock_with(
        &self,
        options: LockOptions,
    ) -> Result<ApiResponse<ItemLock>, WatchError> {
        let shared = &self.run.shared;
        Ok(shared
            .client
            .lock_item(
                shared.app_id,
                shared.collection_id,
                self.item_id(),
                &options,
            )
            .await?)
    }

    /// Releases the watcher's lock on the item.
    pub async fn unlock(&self) -> Result<ApiResponse<ItemLock>, WatchError> {
        let shared = &self.run.shared;
        Ok(shared
            .client
            .unlock_item(
                shared.app_id,
                shared.collection_id,
                self.item_id(),
                &shared.watcher_id,
            )
            .await?)
    }

    /// Updates the item's fields from `data`.
    pub async fn update<D: Serialize + ?Sized>(
        &self,
        data: &D,
    ) -> Result<ApiResponse<serde_json::Value>, WatchError> {
        let shared = &self.run.shared;
        Ok(shared
            .client
            .update_item(shared.app_id, shared.collection_id, self.item_id(), data)
            .await?)
    }
}
