//! Moving whole collections: [`export`](crate::Client::export), a stream of
//! every item, several pages at a time, and [`import`](crate::Client::import),
//! rows created at the pace the server takes, resumable without duplicates.
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
//! watch the changes from before the first page on: `carthooks_watch`'s
//! `Watcher::sync` does (and copies again when a deletion moved the pages).
//!
//! ## Resuming
//!
//! [`Export::checkpoint`] is the offset after the last item handed out
//! (serializable); an export of the same query started with
//! [`resume_from`](Export::resume_from) it goes on from there.
//!
//! # Import
//!
//! Each row is the `data` of one `create_item`. Up to `concurrency` requests
//! (default 8) are in flight; how many, and how fast, adapts to the server:
//!
//! - a 429 or 503 answer means the server did not act: the row is sent
//!   again (first, before new rows), every sender waits out its
//!   `Retry-After` (200 ms doubling when it gave none), the concurrency
//!   window halves (it grows back by one per window of successes), and a
//!   rate is learned: 90 % of what went through in the second before the
//!   throttle, growing 2 % a second while none comes;
//! - [`rate_limit`](Import::rate_limit) caps it: never more requests than
//!   that in any one-second window.
//!
//! Each row ends as one [`RowOutcome`]; the [`ImportReport`] lists them all,
//! in input order (Salesforce's successful / failed / unprocessed split:
//! created, updated or unchanged / failed / not started, plus unknown).
//! [`ImportReport::write_problems`] writes the rows that need attention as
//! NDJSON.
//!
//! ## Unknown outcomes: never created twice
//!
//! A create whose connection broke after sending
//! ([`Error::OutcomeUnknown`](carthooks_core::Error::OutcomeUnknown)), or that a gateway answered 502
//! or 504, may have taken effect. Without a key it is reported `unknown` and
//! never sent again. With [`upsert_by`](Import::upsert_by) it is looked up by
//! that field (`filters[field][$eq]`, after the failed attempt's connection
//! is gone): not there, created; there and the same, left (`unchanged`);
//! there and different, updated; more than one there, failed. (A server that
//! applies a request after it dropped the connection, later than the lookup,
//! could still make a second item; carthooks-mock and ordinary servers act
//! before they answer.)
//!
//! ## Resuming
//!
//! With a [`checkpoint`](Import::checkpoint) ([`FileCheckpoint`], or any
//! [`ImportCheckpoint`]) each row is recorded `started` (with a digest of
//! its JSON) before its first request and again when it finishes. A run
//! given the same checkpoint and the same input skips the finished rows
//! (`done_before`), sends the failed ones again, and treats the started but
//! unfinished ones — in flight when the earlier run died — as unknown
//! outcomes (looked up with `upsert_by`, reported without). A row whose
//! digest differs stops the run: the input is not the one the checkpoint
//! saw. A checkpoint that cannot be written stops the run before any row it
//! could not record (the rest are `not_started`).
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
//! - `import::Importer`: which row goes next (retries and next steps first),
//!   what each answer means for its row, the checkpoint records. Runners:
//!   [`Import::run`] on the async client (one task polling its requests and
//!   one timer, the transport's `sleep`) and on the blocking client
//!   (`concurrency` threads around the importer under a mutex).
//! - `pace`: how fast a job may send (concurrency window, rate, pause). Time
//!   enters as `now` only, so the tests replay a run exactly.
//!
//! Every request a bulk job sends is an ordinary client call: tokens,
//! retries, telemetry and the 401 replay are the client's.

mod checkpoint;
mod export;
mod import;
pub(crate) mod pace;

pub use checkpoint::{FileCheckpoint, Finished, ImportCheckpoint, Record};
pub use export::{
    DEFAULT_EXPORT_CONCURRENCY, DEFAULT_EXPORT_PAGE, Export, ExportCheckpoint, ExportIter,
    ExportStats,
};
pub use import::{
    DEFAULT_IMPORT_CONCURRENCY, Import, ImportReport, ImportStats, ImportStop, RowOutcome,
    RowReport, STOPPED_ON_REQUEST,
};
pub use pace::SharedRateLimit;
