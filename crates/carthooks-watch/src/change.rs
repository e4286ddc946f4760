//! What a handler gets: one change, and the record helpers that act on its item.

use std::sync::Arc;
use std::time::Duration;

use carthooks_client::{ApiResponse, AppId, CollectionId, ItemId, ItemLock, LockOptions};
use serde::Serialize;

use crate::settle::{ack, nack};
use crate::{ChangeEvent, Client, Receipt, Run, WatchError};

/// One received change, handed to your handler: the event, and what you can
/// do with it.
pub struct Change {
    pub(crate) event: Arc<ChangeEvent>,
    pub(crate) receipt: Arc<Receipt>,
    pub(crate) receive_count: u32,
    pub(crate) origin: Origin,
}

/// Who delivered a change, and so what an ack or a nack does.
pub(crate) enum Origin {
    /// A [`Watcher`](crate::Watcher)'s run: acks delete from the queue.
    Queue(Arc<Run>),
    /// A Lambda invocation: acks and nacks decide the batch's answer.
    #[cfg(feature = "lambda")]
    Lambda(Arc<crate::lambda::Inner>),
}

/// What the record helpers act on.
struct Target<'a> {
    client: &'a Client,
    app_id: AppId,
    collection_id: CollectionId,
    watcher_id: &'a str,
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

    fn target(&self) -> Target<'_> {
        match &self.origin {
            Origin::Queue(run) => Target {
                client: &run.shared.client,
                app_id: run.shared.app_id,
                collection_id: run.shared.collection_id,
                watcher_id: &run.shared.watcher_id,
            },
            #[cfg(feature = "lambda")]
            Origin::Lambda(inner) => Target {
                client: &inner.client,
                app_id: inner.app_id,
                collection_id: inner.collection_id,
                watcher_id: &inner.watcher_id,
            },
        }
    }

    /// The Carthooks client, for calls of your own.
    pub fn client(&self) -> &Client {
        self.target().client
    }

    /// The watcher's id (the lock id of [`lock`](Self::lock)).
    pub fn watcher_id(&self) -> &str {
        self.target().watcher_id
    }

    /// Deletes the message from the queue; returns once SQS did. Under
    /// Lambda ([`LambdaWatcher`](crate::lambda::LambdaWatcher)): marks the
    /// message done, so it is not in the batch's failures.
    pub async fn ack(&self) -> Result<(), WatchError> {
        let items = match &self.origin {
            Origin::Queue(run) => {
                ack(run, &self.receipt).await?;
                &run.items
            }
            #[cfg(feature = "lambda")]
            Origin::Lambda(inner) => {
                if !self.receipt.settle() {
                    return Err(WatchError::AlreadySettled);
                }
                self.receipt.mark_done();
                &inner.items
            }
        };
        // Handled: an older change of the item that comes later is stale.
        items.handled(self.item_id(), self.event.revision());
        Ok(())
    }

    /// Makes the message visible again after `delay` (0 to 12 h). SQS counts
    /// whole seconds: a delay with a fraction is rounded up (500 ms → 1 s),
    /// never down. Under Lambda: puts the message in the batch's failures;
    /// it comes back after the queue's visibility timeout (Lambda's answer
    /// has no delay), and `delay` is not used.
    pub async fn nack(&self, delay: Duration) -> Result<(), WatchError> {
        match &self.origin {
            Origin::Queue(run) => nack(run, &self.receipt, delay).await,
            #[cfg(feature = "lambda")]
            Origin::Lambda(_) => {
                let _ = delay;
                if self.receipt.settle() {
                    Ok(())
                } else {
                    Err(WatchError::AlreadySettled)
                }
            }
        }
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
        let t = self.target();
        Ok(t.client
            .lock_item(t.app_id, t.collection_id, self.item_id(), &options)
            .await?)
    }

    /// Releases the watcher's lock on the item.
    pub async fn unlock(&self) -> Result<ApiResponse<ItemLock>, WatchError> {
        let t = self.target();
        Ok(t.client
            .unlock_item(t.app_id, t.collection_id, self.item_id(), t.watcher_id)
            .await?)
    }

    /// Updates the item's fields from `data`.
    pub async fn update<D: Serialize + ?Sized>(
        &self,
        data: &D,
    ) -> Result<ApiResponse<serde_json::Value>, WatchError> {
        let t = self.target();
        Ok(t.client
            .update_item(t.app_id, t.collection_id, self.item_id(), data)
            .await?)
    }
}
