//! Pagination. Its design is documented on [`Pager`].

use crate::models::ItemsQuery;

/// Walking all pages of the items list, sans-IO.
///
/// [`Pager`] says which query to send next and, given each page's length and
/// `meta.total`, when to stop: after a short or empty page, or once `total` items
/// have been seen. The clients' `all_items` iterator (blocking) and stream (async)
/// only execute it.
///
/// ```
/// use carthooks_core::{ItemsQuery, Pager};
/// let mut pager = Pager::new(ItemsQuery::new().limit(100));
/// let mut pages = 0;
/// while let Some(query) = pager.next_query() {
///     let start = query.get_start();
///     let len = 100.min(250 - start as usize); // a server holding 250 items
///     pager.advance(len, Some(250));
///     pages += 1;
/// }
/// assert_eq!(pages, 3);
/// ```
#[derive(Debug, Clone)]
pub struct Pager {
    next: Option<ItemsQuery>,
    seen: u64,
}

impl Pager {
    /// Starts at `query`'s offset with its limit as the page size. A limit of 0
    /// is taken as the default page size.
    pub fn new(query: ItemsQuery) -> Self {
        let query = if query.get_limit() == 0 {
            query.limit(ItemsQuery::DEFAULT_LIMIT)
        } else {
            query
        };
        Self {
            next: Some(query),
            seen: 0,
        }
    }

    /// The query of the next page, or `None` when done.
    pub fn next_query(&self) -> Option<&ItemsQuery> {
        self.next.as_ref()
    }

    /// Items seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Records the page just fetched: its length and the server's `meta.total`.
    pub fn advance(&mut self, page_len: usize, total: Option<u64>) {
        let Some(query) = self.next.take() else {
            return;
        };
        let len = page_len as u64;
        self.seen += len;
        let start = query.get_start().saturating_add(len);
        let short = len < query.get_limit();
        let reached_total = total.is_some_and(|t| start >= t);
        if len > 0 && !short && !reached_total {
            self.next = Some(query.start(start));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(items: u64, page: u64, report_total: bool) -> Vec<u64> {
        let mut pager = Pager::new(ItemsQuery::new().limit(page));
        let mut starts = Vec::new();
        while let Some(q) = pager.next_query() {
            let start = q.get_start();
            starts.push(start);
            let len = page.min(items.saturating_sub(start));
            pager.advance(len as usize, report_total.then_some(items));
            assert!(starts.len() < 1000, "runaway");
        }
        starts
    }

    #[test]
    fn stops_on_total_short_or_empty_page() {
        assert_eq!(walk(1005, 100, true).len(), 11);
        assert_eq!(walk(1005, 100, false).len(), 11, "short last page");
        assert_eq!(
            walk(1000, 100, true).len(),
            10,
            "total reached on a full page"
        );
        assert_eq!(
            walk(1000, 100, false).len(),
            11,
            "without total, one empty page"
        );
        assert_eq!(walk(0, 100, true), vec![0]);
        let mut p = Pager::new(ItemsQuery::new().limit(0));
        assert_eq!(p.next_query().unwrap().get_limit(), 20);
        p.advance(20, Some(25));
        assert_eq!(p.next_query().unwrap().get_start(), 20);
        assert_eq!(p.seen(), 20);
    }
}
