//! All pages of the items list: an `Iterator` on the blocking client, a `Stream`
//! on the async client. Both only execute the sans-IO [`Pager`] through [`Walk`]:
//! pages are fetched lazily, one at a time, and an error is yielded as an item,
//! after which the walk ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use carthooks_core::{ApiResponse, AppId, CollectionId, ItemsQuery, Pager, Result};
use futures_core::Stream;
use serde::de::DeserializeOwned;

use crate::transport::{BlockingTransport, BoxFuture, Transport};
use crate::{BlockingClient, Client};

/// The state both walkers share: the pager, the current page, and whether the
/// walk is over.
struct Walk<I> {
    pager: Pager,
    buffer: std::vec::IntoIter<I>,
    done: bool,
}

enum Next<I> {
    Item(I),
    Fetch(ItemsQuery),
    End,
}

impl<I> Walk<I> {
    fn new(query: ItemsQuery) -> Self {
        Self {
            pager: Pager::new(query),
            buffer: Vec::new().into_iter(),
            done: false,
        }
    }

    fn next(&mut self) -> Next<I> {
        if let Some(item) = self.buffer.next() {
            return Next::Item(item);
        }
        match self.pager.next_query() {
            Some(query) if !self.done => Next::Fetch(query.clone()),
            _ => {
                self.done = true;
                Next::End
            }
        }
    }

    /// Takes a fetched page; an error ends the walk and is handed back.
    fn feed(&mut self, page: Result<ApiResponse<Vec<I>>>) -> Option<Result<I>> {
        match page {
            Ok(page) => {
                let total = page.total();
                self.pager.advance(page.data.len(), total);
                self.buffer = page.data.into_iter();
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Every item of a collection, page by page (blocking). From
/// [`BlockingClient::all_items`].
pub struct ItemIter<T, I> {
    client: BlockingClient<T>,
    app_id: AppId,
    collection_id: CollectionId,
    walk: Walk<I>,
}

impl<T, I> ItemIter<T, I> {
    pub(crate) fn new(
        client: BlockingClient<T>,
        app_id: AppId,
        collection_id: CollectionId,
        query: ItemsQuery,
    ) -> Self {
        Self {
            client,
            app_id,
            collection_id,
            walk: Walk::new(query),
        }
    }
}

impl<T: BlockingTransport, I: DeserializeOwned> Iterator for ItemIter<T, I> {
    type Item = Result<I>;

    fn next(&mut self) -> Option<Result<I>> {
        loop {
            match self.walk.next() {
                Next::Item(item) => return Some(Ok(item)),
                Next::End => return None,
                Next::Fetch(query) => {
                    let page = self
                        .client
                        .get_items_as(self.app_id, self.collection_id, &query);
                    if let Some(err) = self.walk.feed(page) {
                        return Some(err);
                    }
                }
            }
        }
    }
}

type PageFuture<I> = BoxFuture<'static, Result<ApiResponse<Vec<I>>>>;

/// Every item of a collection, page by page (async `Stream`). From
/// [`Client::all_items`]. Without a `StreamExt` at hand, loop with
/// [`next_item`](Self::next_item).
pub struct ItemStream<T, I> {
    client: Client<T>,
    app_id: AppId,
    collection_id: CollectionId,
    walk: Walk<I>,
    pending: Option<PageFuture<I>>,
}

// No field is structurally pinned: the page future is boxed.
impl<T, I> Unpin for ItemStream<T, I> {}

impl<T, I> ItemStream<T, I> {
    pub(crate) fn new(
        client: Client<T>,
        app_id: AppId,
        collection_id: CollectionId,
        query: ItemsQuery,
    ) -> Self {
        Self {
            client,
            app_id,
            collection_id,
            walk: Walk::new(query),
            pending: None,
        }
    }
}

impl<T: Transport, I: DeserializeOwned + Send + 'static> ItemStream<T, I> {
    /// The next item, or `None` at the end.
    pub async fn next_item(&mut self) -> Option<Result<I>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: Transport, I: DeserializeOwned + Send + 'static> Stream for ItemStream<T, I> {
    type Item = Result<I>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<I>>> {
        let this = self.get_mut();
        loop {
            let pending = match &mut this.pending {
                Some(pending) => pending,
                None => match this.walk.next() {
                    Next::Item(item) => return Poll::Ready(Some(Ok(item))),
                    Next::End => return Poll::Ready(None),
                    Next::Fetch(query) => {
                        let client = this.client.clone();
                        let (app, coll) = (this.app_id, this.collection_id);
                        this.pending.insert(Box::pin(async move {
                            client.get_items_as(app, coll, &query).await
                        }))
                    }
                },
            };
            let Poll::Ready(page) = pending.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.pending = None;
            if let Some(err) = this.walk.feed(page) {
                return Poll::Ready(Some(err));
            }
        }
    }
}
