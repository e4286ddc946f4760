//! Moving whole collections: [`export`](crate::Client::export), a stream of
//! every item, several pages at a time (import and sync follow).
//!
//! # Export
//!
//! The first page is fetched alone: its `meta.total` says how many pages
//! there are. Then up to `concurrency` pages (default 4) are in flight at
//! once, each an ordinary `get_items` call, retried on its own by the
//! client's retry policy. Items are handed out in the server's order, so at
//! most `concurrency` pages are held, whatever the collection's size.
//! Without a total in the answers pages are fetched one after another, as
//! [`all_items`](crate::Client::all_items) does. A query with the default
//! page size (20) is fetched [`DEFAULT_EXPORT_PAGE`] at a time. An error
//! (after the client's retries) is handed out once and ends the export.
//!
//! ## A collection that changes during the export
//!
//! Pages are offsets (`pagination[start]`), so a change during the export
//! moves the items behind it: an item created before the current page pushes
//! one item into the next page (it would be seen twice); one deleted pulls
//! one back (an item that never changed can then be missed). Items seen twice
//! are handed out once: the ids of the last `concurrency + 1` pages are kept
//! (the reach of a shift while those pages are in flight), and
//! [`ExportStats::duplicates`] counts what was skipped. A missed item cannot
//! be seen in the pages; [`ExportStats::total_changed`] says the total moved
//! during the export, which is when it can happen. To keep a copy exact,
//! watch the changes from before the first page on.
//!
//! ## Resuming
//!
//! [`Export::checkpoint`] is the offset after the last item handed out
//! (serializable); an export of the same query started with
//! [`resume_from`](Export::resume_from) it goes on from there.
//!
//! # Design
//!
//! Each bulk job is a sans-IO plan with a thin runner per client, as the
//! calls are ([`carthooks_core::Call`] and the two `drive` loops):
//!
//! - `export::Plan`: which pages to fetch (the first alone, then up to
//!   `concurrency` ahead), the items in order, duplicates skipped, the
//!   checkpoint. Runners: [`Export`] (a `Stream` polling its page futures)
//!   and [`ExportIter`] (an `Iterator`, a thread per page in flight).
//!
//! Every request a bulk job sends is an ordinary client call: tokens,
//! retries, telemetry and the 401 replay are the client's.

mod export;

pub use export::{
    DEFAULT_EXPORT_CONCURRENCY, DEFAULT_EXPORT_PAGE, Export, ExportCheckpoint, ExportIter,
    ExportStats,
};
