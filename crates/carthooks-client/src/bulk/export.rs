//! Export: the sans-IO [`Plan`] and its two runners. What it promises is in
//! the [bulk docs](super).

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};

use carthooks_core::{ApiResponse, AppId, CollectionId, Error, ItemsQuery, Result};
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transport::{BlockingTransport, BoxFuture, Transport};
use crate::{BlockingClient, Client};

/// Pages in flight at once by default.
pub const DEFAULT_EXPORT_CONCURRENCY: usize = 4;
/// Page size when the query asks for the default (20): bigger pages, fewer
/// round trips. The server allows up to 1,000.
pub const DEFAULT_EXPORT_PAGE: u64 = 100;

/// Where an export is: the offset after the last item it handed out.
/// Serializable, to be kept between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    /// `pagination[start]` of the next item.
    pub offset: u64,
}

/// What an export saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Pages received.
    pub pages: u64,
    /// Items handed out.
    pub items: u64,
    /// Items seen a second time (moved into a later page by a change) and
    /// skipped.
    pub duplicates: u64,
    /// The total of the first page, when the server said.
    pub first_total: Option<u64>,
    /// A later page said another total: the collection changed during the
    /// export (an item may have been missed; see the module docs).
    pub total_changed: bool,
}

type PageAnswer = Result<ApiResponse<Vec<Value>>>;

struct Slot {
    start: u64,
    answer: Option<PageAnswer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// The last page is in the buffer.
    Ending,
    Done,
}

/// The next thing an export has to hand out.
pub(crate) enum Step {
    Item(Value),
    Error(Error),
    /// A page is missing: start what [`Plan::next_request`] says, then feed
    /// the answers.
    Wait,
    End,
}

/// The sans-IO export: which pages to fetch, and the items in order.
pub(crate) struct Plan {
    query: ItemsQuery,
    first_start: u64,
    page: u64,
    concurrency: usize,
    max_items: Option<u64>,
    slots: VecDeque<Slot>,
    next_start: u64,
    /// Pages starting before this may be fetched ahead (`None` until the first
    /// page, or when the server gives no total: one page after another).
    planned_end: Option<u64>,
    first_answered: bool,
    buffer: std::vec::IntoIter<Value>,
    buffer_offset: u64,
    cursor: u64,
    seen: VecDeque<u64>,
    seen_set: HashSet<u64>,
    phase: Phase,
    stats: ExportStats,
}

impl Plan {
    pub(crate) fn new(query: ItemsQuery) -> Self {
        let page = match query.get_limit() {
            0 | ItemsQuery::DEFAULT_LIMIT => DEFAULT_EXPORT_PAGE,
            n => n,
        };
        let start = query.get_start();
        Self {
            query: query.limit(page),
            first_start: start,
            page,
            concurrency: DEFAULT_EXPORT_CONCURRENCY,
            max_items: None,
            slots: VecDeque::new(),
            next_start: start,
            planned_end: None,
            first_answered: false,
            buffer: Vec::new().into_iter(),
            buffer_offset: start,
            cursor: start,
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            phase: Phase::Running,
            stats: ExportStats::default(),
        }
    }

    fn untouched(&self) -> bool {
        self.slots.is_empty() && !self.first_answered
    }

    pub(crate) fn set_concurrency(&mut self, n: usize) {
        self.concurrency = n.max(1);
    }

    pub(crate) fn set_max_items(&mut self, n: u64) {
        self.max_items = Some(n);
    }

    pub(crate) fn resume_from(&mut self, at: ExportCheckpoint) {
        if self.untouched() {
            self.first_start = at.offset;
            self.next_start = at.offset;
            self.buffer_offset = at.offset;
            self.cursor = at.offset;
        }
    }

    pub(crate) fn checkpoint(&self) -> ExportCheckpoint {
        ExportCheckpoint {
            offset: self.cursor,
        }
    }

    pub(crate) fn stats(&self) -> ExportStats {
        self.stats
    }

    /// Where pages ahead stop: the total, or enough for `max_items`.
    fn cap(&self, end: u64) -> u64 {
        match self.max_items {
            Some(max) => end.min(self.first_start.saturating_add(max)),
            None => end,
        }
    }

    /// The query of a page to fetch now, if one may start.
    pub(crate) fn next_request(&mut self) -> Option<(u64, ItemsQuery)> {
        if self.phase != Phase::Running || self.max_reached() {
            return None;
        }
        let in_flight = self.slots.iter().filter(|s| s.answer.is_none()).count();
        if in_flight >= self.concurrency || self.slots.len() >= self.concurrency {
            return None;
        }
        let may = match self.planned_end {
            Some(end) => self.next_start < end,
            // First page, or no total: one at a time.
            None => self.slots.is_empty(),
        };
        if !may {
            return None;
        }
        let start = self.next_start;
        self.next_start = start.saturating_add(self.page);
        self.slots.push_back(Slot {
            start,
            answer: None,
        });
        Some((start, self.query.clone().start(start)))
    }

    /// The answer for the page at `start` (one no longer wanted is dropped).
    pub(crate) fn page_done(&mut self, start: u64, answer: PageAnswer) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.start == start) {
            slot.answer = Some(answer);
        }
    }

    fn max_reached(&self) -> bool {
        self.max_items.is_some_and(|m| self.stats.items >= m)
    }

    pub(crate) fn next_item(&mut self) -> Step {
        loop {
            if self.phase == Phase::Done || self.max_reached() {
                self.phase = Phase::Done;
                return Step::End;
            }
            if let Some(item) = self.buffer.next() {
                self.cursor = self.buffer_offset + 1;
                self.buffer_offset += 1;
                if let Some(id) = item.get("id").and_then(Value::as_u64) {
                    if self.seen_set.contains(&id) {
                        self.stats.duplicates += 1;
                        continue;
                    }
                    self.remember(id);
                }
                self.stats.items += 1;
                return Step::Item(item);
            }
            if self.phase == Phase::Ending {
                self.phase = Phase::Done;
                return Step::End;
            }
            let Some(front) = self.slots.front() else {
                return Step::Wait;
            };
            if front.answer.is_none() {
                return Step::Wait;
            }
            let Some(Slot {
                start,
                answer: Some(answer),
            }) = self.slots.pop_front()
            else {
                return Step::Wait;
            };
            let page = match answer {
                Ok(page) => page,
                Err(e) => {
                    self.phase = Phase::Done;
                    self.slots.clear();
                    return Step::Error(e);
                }
            };
            self.take(start, page);
        }
    }

    fn take(&mut self, start: u64, page: ApiResponse<Vec<Value>>) {
        self.stats.pages += 1;
        let len = page.data.len() as u64;
        let total = page.total();
        if !self.first_answered {
            self.first_answered = true;
            self.stats.first_total = total;
            self.planned_end = total.map(|t| self.cap(t));
        } else if total != self.stats.first_total {
            self.stats.total_changed = true;
        }
        if let (Some(t), Some(end)) = (total, self.planned_end) {
            self.planned_end = Some(end.max(self.cap(t)));
        }
        let end = start.saturating_add(len);
        let last = len < self.page || total.is_some_and(|t| end >= t);
        self.buffer = page.data.into_iter();
        self.buffer_offset = start;
        if last {
            self.phase = Phase::Ending;
            self.slots.clear();
        } else if self.slots.is_empty() && self.next_start <= end {
            // Nothing asked beyond this page (the plan ended here, or no
            // total): one more, so that a full page is never the end.
            self.next_start = end;
            if let Some(planned) = self.planned_end {
                self.planned_end = Some(planned.max(end.saturating_add(1)));
            }
        }
    }

    fn remember(&mut self, id: u64) {
        let window = (self.concurrency as u64 + 1).saturating_mul(self.page) as usize;
        self.seen.push_back(id);
        self.seen_set.insert(id);
        while self.seen.len() > window {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
    }
}

macro_rules! export_options {
    () => {
        /// Pages in flight at once (default 4, at least 1).
        pub fn concurrency(mut self, pages: usize) -> Self {
            self.plan.set_concurrency(pages);
            self
        }

        /// Hands out at most `n` items (and fetches no page beyond them).
        pub fn max_items(mut self, n: u64) -> Self {
            self.plan.set_max_items(n);
            self
        }

        /// Goes on from a checkpoint of an earlier export of the same query.
        /// Only before the first item is asked for.
        pub fn resume_from(mut self, checkpoint: ExportCheckpoint) -> Self {
            self.plan.resume_from(checkpoint);
            self
        }

        /// The offset after the last item handed out: where a later export
        /// resumes.
        pub fn checkpoint(&self) -> ExportCheckpoint {
            self.plan.checkpoint()
        }

        /// What the export saw so far.
        pub fn stats(&self) -> ExportStats {
            self.plan.stats()
        }
    };
}

/// Every item of a collection, several pages at once (async `Stream` of JSON
/// values). From [`Client::export`]; an error is yielded once and ends it.
/// Without a `StreamExt` at hand, loop with [`next_item`](Self::next_item).
pub struct Export<T> {
    client: Client<T>,
    app_id: AppId,
    collection_id: CollectionId,
    plan: Plan,
    in_flight: Vec<(u64, BoxFuture<'static, PageAnswer>)>,
}

// No field is structurally pinned: the page futures are boxed.
impl<T> Unpin for Export<T> {}

impl<T: Transport> Export<T> {
    export_options!();

    /// The next item, or `None` at the end.
    pub async fn next_item(&mut self) -> Option<Result<Value>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: Transport> Stream for Export<T> {
    type Item = Result<Value>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Value>>> {
        let this = self.get_mut();
        loop {
            match this.plan.next_item() {
                Step::Item(item) => return Poll::Ready(Some(Ok(item))),
                Step::Error(e) => {
                    this.in_flight.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                Step::End => {
                    this.in_flight.clear();
                    return Poll::Ready(None);
                }
                Step::Wait => {}
            }
            while let Some((start, query)) = this.plan.next_request() {
                let client = this.client.clone();
                let (app, coll) = (this.app_id, this.collection_id);
                this.in_flight.push((
                    start,
                    Box::pin(async move { client.get_items(app, coll, &query).await }),
                ));
            }
            if this.in_flight.is_empty() {
                // The plan waits for a page it did not ask for: a bug, not a
                // hang.
                return Poll::Ready(Some(Err(Error::InvalidState(
                    "the export waits with no page in flight",
                ))));
            }
            let mut answered = false;
            let mut i = 0;
            while i < this.in_flight.len() {
                if let Poll::Ready(answer) = this.in_flight[i].1.as_mut().poll(cx) {
                    let (start, _) = this.in_flight.swap_remove(i);
                    this.plan.page_done(start, answer);
                    answered = true;
                } else {
                    i += 1;
                }
            }
            if !answered {
                return Poll::Pending;
            }
        }
    }
}

/// Every item of a collection, several pages at once (blocking `Iterator` of
/// JSON values; each page in flight on a thread of its own). From
/// [`BlockingClient::export`]; an error is yielded once and ends it.
pub struct ExportIter<T> {
    client: BlockingClient<T>,
    app_id: AppId,
    collection_id: CollectionId,
    plan: Plan,
    in_flight: VecDeque<(u64, std::thread::JoinHandle<PageAnswer>)>,
}

impl<T: BlockingTransport> ExportIter<T> {
    export_options!();
}

impl<T: BlockingTransport> Iterator for ExportIter<T> {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        loop {
            match self.plan.next_item() {
                Step::Item(item) => return Some(Ok(item)),
                Step::Error(e) => {
                    self.in_flight.clear();
                    return Some(Err(e));
                }
                Step::End => {
                    self.in_flight.clear();
                    return None;
                }
                Step::Wait => {}
            }
            let mut fetched_here = false;
            while let Some((start, query)) = self.plan.next_request() {
                let client = self.client.clone();
                let (app, coll) = (self.app_id, self.collection_id);
                let on_thread = query.clone();
                let page = std::thread::Builder::new()
                    .name("carthooks-export".into())
                    .spawn(move || client.get_items(app, coll, &on_thread));
                match page {
                    Ok(handle) => self.in_flight.push_back((start, handle)),
                    // No thread to be had: fetch it here.
                    Err(_) => {
                        let answer = self.client.get_items(app, coll, &query);
                        self.plan.page_done(start, answer);
                        fetched_here = true;
                    }
                }
            }
            if fetched_here && self.in_flight.is_empty() {
                continue;
            }
            // The oldest page is the one the items wait for.
            let Some((start, handle)) = self.in_flight.pop_front() else {
                // Waiting for a page it did not ask for: a bug, not a spin.
                return Some(Err(Error::InvalidState(
                    "the export waits with no page in flight",
                )));
            };
            let answer = handle
                .join()
                .unwrap_or(Err(Error::InvalidState("an export page's thread panicked")));
            self.plan.page_done(start, answer);
        }
    }
}

impl<T: Transport> Client<T> {
    /// Every item matching `query`, as JSON values in the server's order,
    /// several pages at once (4 by default); see [the bulk docs](crate::bulk).
    /// A query with the default page size (20) is fetched 100 at a time.
    ///
    /// ```no_run
    /// # async fn run(client: carthooks_client::Client<impl carthooks_client::Transport>) -> carthooks_client::Result<()> {
    /// use carthooks_client::ItemsQuery;
    /// let mut items = client.export(1, 2, &ItemsQuery::new()).concurrency(8);
    /// while let Some(item) = items.next_item().await {
    ///     println!("{}", item?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn export(
        &self,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
        query: &ItemsQuery,
    ) -> Export<T> {
        Export {
            client: self.clone(),
            app_id: app_id.into(),
            collection_id: collection_id.into(),
            plan: Plan::new(query.clone()),
            in_flight: Vec::new(),
        }
    }
}

impl<T: BlockingTransport> BlockingClient<T> {
    /// Every item matching `query`, as JSON values in the server's order,
    /// several pages at once (4 by default, each on a thread); see
    /// [the bulk docs](crate::bulk).
    pub fn export(
        &self,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
        query: &ItemsQuery,
    ) -> ExportIter<T> {
        ExportIter {
            client: self.clone(),
            app_id: app_id.into(),
            collection_id: collection_id.into(),
            plan: Plan::new(query.clone()),
            in_flight: VecDeque::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A page answer as the server sends it.
    fn answer_of(data: Vec<Value>, total: Option<u64>) -> PageAnswer {
        let mut body = json!({ "data": data });
        if let Some(t) = total {
            body["meta"] = json!({ "total": t });
        }
        carthooks_core::parse_api_response(&http::Response::new(body.to_string().into_bytes()))
    }

    fn page(ids: std::ops::Range<u64>, total: Option<u64>) -> PageAnswer {
        answer_of(ids.map(|id| json!({"id": id})).collect(), total)
    }

    /// Drives a plan against a collection of `ids` (what each page answers is
    /// `answer(start)`), answering the requests in the order `order` picks,
    /// and returns the ids handed out and the starts asked for.
    fn drive(
        mut plan: Plan,
        mut answer: impl FnMut(u64, u64) -> PageAnswer,
        reverse: bool,
    ) -> (Vec<u64>, Vec<u64>, Option<Error>) {
        let mut out = Vec::new();
        let mut asked = Vec::new();
        let mut pending: Vec<(u64, u64)> = Vec::new();
        loop {
            match plan.next_item() {
                Step::Item(v) => out.push(v["id"].as_u64().unwrap()),
                Step::Error(e) => return (out, asked, Some(e)),
                Step::End => return (out, asked, None),
                Step::Wait => {
                    while let Some((start, q)) = plan.next_request() {
                        asked.push(start);
                        pending.push((start, q.get_limit()));
                    }
                    assert!(!pending.is_empty(), "waiting with nothing in flight");
                    let (start, limit) = if reverse {
                        pending.pop().unwrap()
                    } else {
                        pending.remove(0)
                    };
                    plan.page_done(start, answer(start, limit));
                }
            }
            assert!(asked.len() < 10_000, "runaway");
        }
    }

    fn collection(n: u64) -> impl FnMut(u64, u64) -> PageAnswer {
        move |start, limit| page(start + 1..(start + limit).min(n) + 1, Some(n))
    }

    /// Every item once, in order, whatever order the pages come back in; the
    /// first page alone, then at most `concurrency` ahead.
    #[test]
    fn every_item_once_in_order_whatever_order_pages_arrive() {
        for reverse in [false, true] {
            for n in [0, 1, 99, 100, 101, 1_005] {
                let (out, asked, err) = drive(Plan::new(ItemsQuery::new()), collection(n), reverse);
                assert!(err.is_none());
                assert_eq!(out, (1..=n).collect::<Vec<_>>(), "n={n}");
                let pages = n.div_ceil(100).max(1);
                assert_eq!(asked.len() as u64, pages, "n={n}: {asked:?}");
            }
        }
    }

    /// At most `concurrency` pages requested and not handed out.
    #[test]
    fn no_more_than_concurrency_pages_are_held() {
        let mut plan = Plan::new(ItemsQuery::new().limit(10));
        plan.set_concurrency(3);
        let first = plan.next_request().unwrap();
        assert!(plan.next_request().is_none(), "the first page alone");
        plan.page_done(first.0, page(1..11, Some(1_000)));
        assert!(matches!(plan.next_item(), Step::Item(_)));
        let mut ahead = Vec::new();
        while let Some((s, _)) = plan.next_request() {
            ahead.push(s);
        }
        assert_eq!(ahead, [10, 20, 30]);
        // Answered but not yet handed out still counts.
        plan.page_done(20, page(21..31, Some(1_000)));
        plan.page_done(30, page(31..41, Some(1_000)));
        assert!(plan.next_request().is_none());
    }

    /// Without a total: one page after another until a short one.
    #[test]
    fn without_a_total_pages_come_one_at_a_time() {
        let (out, asked, _) = drive(
            Plan::new(ItemsQuery::new().limit(10)),
            |start, limit| page(start + 1..(start + limit).min(35) + 1, None),
            false,
        );
        assert_eq!(out.len(), 35);
        assert_eq!(asked, [0, 10, 20, 30]);
    }

    /// max_items: no more handed out, no page asked beyond them.
    #[test]
    fn max_items_bounds_items_and_pages() {
        let mut plan = Plan::new(ItemsQuery::new().limit(10));
        plan.set_max_items(25);
        let (out, asked, _) = drive(plan, collection(1_000), false);
        assert_eq!(out, (1..=25).collect::<Vec<_>>());
        assert_eq!(asked, [0, 10, 20]);
    }

    /// A collection that grew during the export: the pages beyond the first
    /// total are fetched too.
    #[test]
    fn items_added_during_the_export_are_fetched() {
        let mut calls = 0;
        let (out, _, _) = drive(
            Plan::new(ItemsQuery::new().limit(10)),
            |start, limit| {
                calls += 1;
                let n = if calls == 1 { 30 } else { 45 };
                page(start + 1..(start + limit).min(n) + 1, Some(n))
            },
            false,
        );
        assert_eq!(out, (1..=45).collect::<Vec<_>>());
    }

    /// Items created before the cursor push items into later pages: they are
    /// handed out once, counted as duplicates, and the total's change is told.
    #[test]
    fn items_pushed_into_the_next_page_are_handed_out_once() {
        let mut plan = Plan::new(ItemsQuery::new().limit(10));
        plan.set_concurrency(1);
        let mut items: Vec<u64> = (1..=50).collect();
        let mut calls = 0;
        let (out, _, err) = drive_ref(&mut plan, |start, limit| {
            calls += 1;
            if calls == 2 {
                // Three items created at the front after the first page.
                items.splice(0..0, [1_001, 1_002, 1_003]);
            }
            let data = items
                .iter()
                .skip(start as usize)
                .take(limit as usize)
                .map(|id| json!({"id": id}))
                .collect();
            answer_of(data, Some(items.len() as u64))
        });
        assert!(err.is_none());
        assert_eq!(out, (1..=50).collect::<Vec<_>>());
        assert_eq!(plan.stats().duplicates, 3);
        assert!(plan.stats().total_changed);
        assert_eq!(plan.stats().first_total, Some(50));
    }

    fn drive_ref(
        plan: &mut Plan,
        mut answer: impl FnMut(u64, u64) -> PageAnswer,
    ) -> (Vec<u64>, Vec<u64>, Option<Error>) {
        let mut out = Vec::new();
        let mut asked = Vec::new();
        loop {
            match plan.next_item() {
                Step::Item(v) => out.push(v["id"].as_u64().unwrap()),
                Step::Error(e) => return (out, asked, Some(e)),
                Step::End => return (out, asked, None),
                Step::Wait => {
                    let (start, q) = plan.next_request().expect("a page to fetch");
                    asked.push(start);
                    plan.page_done(start, answer(start, q.get_limit()));
                }
            }
            assert!(asked.len() < 1_000, "runaway");
        }
    }

    /// A failed page ends the export with its error; the checkpoint is the
    /// offset after the last item handed out, and resuming from it hands out
    /// the rest.
    #[test]
    fn a_failed_page_ends_it_and_the_checkpoint_resumes_after_the_last_item() {
        let mut plan = Plan::new(ItemsQuery::new().limit(10));
        let (out, _, err) = drive_ref(&mut plan, |start, limit| {
            if start == 30 {
                Err(Error::Closed)
            } else {
                page(start + 1..(start + limit).min(50) + 1, Some(50))
            }
        });
        assert_eq!(out, (1..=30).collect::<Vec<_>>());
        assert!(matches!(err, Some(Error::Closed)));
        assert!(matches!(plan.next_item(), Step::End), "ended");
        let at = plan.checkpoint();
        assert_eq!(at, ExportCheckpoint { offset: 30 });
        let mut resumed = Plan::new(ItemsQuery::new().limit(10));
        resumed.resume_from(at);
        let (rest, asked, err) = drive_ref(&mut resumed, collection_of(50));
        assert!(err.is_none());
        assert_eq!(rest, (31..=50).collect::<Vec<_>>());
        assert_eq!(asked, [30, 40]);
        assert_eq!(
            serde_json::to_string(&at).unwrap(),
            r#"{"offset":30}"#,
            "the checkpoint as kept"
        );
    }

    fn collection_of(n: u64) -> impl FnMut(u64, u64) -> PageAnswer {
        move |start, limit| page(start + 1..(start + limit).min(n) + 1, Some(n))
    }
}
