//! Import: the sans-IO [`Importer`] and its two runners. What it promises is
//! in the [bulk docs](super).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::Poll;
use std::time::Instant;

use carthooks_core::{
    ApiResponse, AppId, CollectionId, Error, FilterOp, ItemId, ItemsQuery, Result, TransportError,
    TransportErrorKind,
};
use serde_json::Value;

use super::checkpoint::{Finished, ImportCheckpoint, Record, digest};
use super::pace::{Admit, Ended, Pace, SharedRateLimit};
use crate::transport::{BlockingTransport, BoxFuture, Transport};
use crate::{BlockingClient, Client};

/// Requests in flight at once by default (the most: the window adapts).
pub const DEFAULT_IMPORT_CONCURRENCY: usize = 8;

/// Stops an import from outside, e.g. from a Ctrl-C handler: once
/// [`stop`](Self::stop)ped, no further row starts; the requests in flight
/// are answered and recorded, and the report says why it stopped (the rows
/// not reached are `not_started`, sent by a run resumed from the checkpoint).
///
/// ```
/// let stop = carthooks_client::bulk::ImportStop::new();
/// let for_the_handler = stop.clone();
/// for_the_handler.stop();
/// assert!(stop.is_stopped());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ImportStop(Arc<AtomicBool>);

impl ImportStop {
    /// Not stopped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the import to start no further row.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The reason in [`ImportReport::stopped`] after [`ImportStop::stop`].
pub const STOPPED_ON_REQUEST: &str = "stopped on request";

type Progress = Arc<dyn Fn(&ImportStats) + Send + Sync>;

/// Throttled answers one row may meet before it is given up as failed.
const MAX_THROTTLES: u32 = 20;

/// How one input row ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RowOutcome {
    /// Created (with the id the server gave).
    Created {
        /// The new item's id, when the answer had one.
        id: Option<ItemId>,
    },
    /// Found by its `upsert_by` key and updated to the row.
    Updated {
        /// The item's id.
        id: ItemId,
    },
    /// Found by its `upsert_by` key, already as the row says: not written.
    Unchanged {
        /// The item's id.
        id: ItemId,
    },
    /// Finished by an earlier run (from the checkpoint): not sent again.
    DoneBefore {
        /// The item's id, as the earlier run recorded it.
        id: Option<ItemId>,
    },
    /// Refused; nothing was created. Safe to send again (a resumed run does).
    Failed {
        /// Why.
        error: Error,
    },
    /// Sent, and whether it took effect is unknown (the connection broke
    /// after sending, a gateway timed out). Never resent without an
    /// `upsert_by` key to look it up by: check it by hand.
    Unknown {
        /// What happened.
        error: Error,
    },
    /// Not sent: the import stopped before it ([`ImportReport::stopped`]).
    NotStarted,
}

impl RowOutcome {
    /// `created`, `updated`, `unchanged`, `done_before`, `failed`, `unknown`
    /// or `not_started` (the report's `outcome`).
    pub fn as_str(&self) -> &'static str {
        match self {
            RowOutcome::Created { .. } => "created",
            RowOutcome::Updated { .. } => "updated",
            RowOutcome::Unchanged { .. } => "unchanged",
            RowOutcome::DoneBefore { .. } => "done_before",
            RowOutcome::Failed { .. } => "failed",
            RowOutcome::Unknown { .. } => "unknown",
            RowOutcome::NotStarted => "not_started",
        }
    }

    /// The item the row is now, when known.
    pub fn id(&self) -> Option<ItemId> {
        match self {
            RowOutcome::Created { id } | RowOutcome::DoneBefore { id } => *id,
            RowOutcome::Updated { id } | RowOutcome::Unchanged { id } => Some(*id),
            _ => None,
        }
    }

    /// Failed, unknown or not started: a row that needs attention.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            RowOutcome::Failed { .. } | RowOutcome::Unknown { .. } | RowOutcome::NotStarted
        )
    }

    fn error(&self) -> Option<&Error> {
        match self {
            RowOutcome::Failed { error } | RowOutcome::Unknown { error } => Some(error),
            _ => None,
        }
    }
}

/// One input row's outcome.
#[derive(Debug, Clone)]
pub struct RowReport {
    /// The row's place in the input (0-based).
    pub row: u64,
    /// How it ended.
    pub outcome: RowOutcome,
}

/// Counts of an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportStats {
    /// Rows created.
    pub created: u64,
    /// Rows found by key and updated.
    pub updated: u64,
    /// Rows found by key, already as given.
    pub unchanged: u64,
    /// Rows an earlier run finished.
    pub done_before: u64,
    /// Rows refused.
    pub failed: u64,
    /// Rows whose outcome is unknown.
    pub unknown: u64,
    /// Rows not sent because the import stopped.
    pub not_started: u64,
    /// Requests sent (creates, lookups, updates, resends after a throttle).
    pub requests: u64,
    /// Of them, answered 429 or 503 (and sent again).
    pub throttled: u64,
    /// Lookups by the `upsert_by` key.
    pub lookups: u64,
    /// Times the learned rate was lowered.
    pub rate_decreases: u64,
    /// Times the shared rate limit could not be asked (the request went at
    /// the import's own pace).
    pub shared_limit_failures: u64,
}

impl ImportStats {
    /// Rows settled so far, whatever their outcome (not counting
    /// `not_started`): what a progress bar shows as done.
    pub fn finished(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.done_before + self.failed + self.unknown
    }
}

/// What an import did, row by row (in input order).
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Every input row's outcome, by row.
    pub rows: Vec<RowReport>,
    /// Counts.
    pub stats: ImportStats,
    /// Why the import stopped before the end, if it did (the checkpoint could
    /// not be written, or the input is not the one the checkpoint saw).
    pub stopped: Option<String>,
}

impl ImportReport {
    /// The rows that need attention: failed, unknown, not started.
    pub fn problems(&self) -> impl Iterator<Item = &RowReport> {
        self.rows.iter().filter(|r| r.outcome.is_problem())
    }

    /// Writes [`problems`](Self::problems) as NDJSON, one object a line:
    /// `{"row":3,"outcome":"failed","status":400,"code":"BAD_REQUEST",
    /// "error":"…","trace_id":"…"}` (`status`, `code` and `trace_id` when the
    /// server answered). Never a secret: errors are the SDK's, redacted.
    pub fn write_problems(&self, mut out: impl Write) -> io::Result<()> {
        for r in self.problems() {
            let mut line = serde_json::json!({"row": r.row, "outcome": r.outcome.as_str()});
            if let Some(e) = r.outcome.error() {
                if let Some(status) = e.status() {
                    line["status"] = status.as_u16().into();
                }
                if let Error::Api(s) | Error::OAuth(s) = e
                    && let Some(code) = &s.code
                {
                    line["code"] = code.clone().into();
                }
                line["error"] = e.to_string().into();
                if let Some(trace) = e.trace_id() {
                    line["trace_id"] = trace.into();
                }
            }
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Create,
    Lookup,
    Update(ItemId),
}

/// A row on its way: what to send next for it.
pub(crate) struct Job {
    row: u64,
    data: Arc<Value>,
    stage: Stage,
    throttles: u32,
    sent: Instant,
}

/// What a runner sends for a job.
pub(crate) enum Request {
    Create(Arc<Value>),
    Lookup(ItemsQuery),
    Update(ItemId, Arc<Value>),
}

/// The answer to a [`Request`], by kind.
pub(crate) enum Answer {
    Item(Result<ApiResponse<Value>>),
    Page(Result<ApiResponse<Vec<Value>>>),
}

/// What a runner does next.
pub(crate) enum Start {
    Send(Job, Request),
    Until(Instant),
    Busy,
    Done,
}

/// What an earlier run left for a row.
#[derive(Debug, Clone, Copy)]
struct Earlier {
    digest: Option<u64>,
    finished: Option<Finished>,
}

type Rows = Box<dyn Iterator<Item = Value> + Send>;

/// The sans-IO import: which row goes next, at what pace, and what each
/// answer means for its row.
pub(crate) struct Importer {
    rows: Rows,
    next_row: u64,
    rows_done: bool,
    ready: VecDeque<Job>,
    earlier: HashMap<u64, Earlier>,
    checkpoint: Option<Box<dyn ImportCheckpoint>>,
    pace: Pace,
    shared: Option<Arc<dyn SharedRateLimit>>,
    upsert_by: Option<String>,
    report: Vec<RowReport>,
    stats: ImportStats,
    stopped: Option<String>,
    stop: Option<ImportStop>,
    progress: Option<Progress>,
}

impl Importer {
    pub(crate) fn new(
        rows: Rows,
        concurrency: usize,
        rate_limit: Option<u32>,
        upsert_by: Option<String>,
        mut checkpoint: Option<Box<dyn ImportCheckpoint>>,
    ) -> Result<Self> {
        let mut earlier: HashMap<u64, Earlier> = HashMap::new();
        if let Some(cp) = checkpoint.as_mut() {
            let records = cp
                .load()
                .map_err(|e| Error::Config(format!("cannot read the import checkpoint: {e}")))?;
            for record in records {
                match record {
                    Record::Started { row, digest } => {
                        earlier.insert(
                            row,
                            Earlier {
                                digest: Some(digest),
                                finished: None,
                            },
                        );
                    }
                    Record::Finished { row, outcome } => {
                        let e = earlier.entry(row).or_insert(Earlier {
                            digest: None,
                            finished: None,
                        });
                        e.finished = Some(outcome);
                    }
                }
            }
        }
        Ok(Self {
            rows,
            next_row: 0,
            rows_done: false,
            ready: VecDeque::new(),
            earlier,
            checkpoint,
            pace: Pace::new(concurrency, rate_limit),
            shared: None,
            upsert_by,
            report: Vec::new(),
            stats: ImportStats::default(),
            stopped: None,
            stop: None,
            progress: None,
        })
    }

    /// The next request to send at `now`, or why none may go.
    pub(crate) fn poll_start(&mut self, now: Instant) -> Start {
        if self.ready.is_empty()
            && let Some(job) = self.pull_row()
        {
            self.ready.push_back(job);
        }
        if self.ready.is_empty() {
            return if self.pace.in_flight() == 0 {
                Start::Done
            } else {
                Start::Busy
            };
        }
        match self.pace.admit(now) {
            Admit::Go => {}
            Admit::Until(t) => return Start::Until(t),
            Admit::Busy => return Start::Busy,
        }
        if let Some(shared) = &self.shared {
            match shared.try_acquire() {
                Ok(None) => {}
                Ok(Some(wait)) => {
                    self.pace.unsend();
                    return Start::Until(now + wait);
                }
                Err(_) => self.stats.shared_limit_failures += 1,
            }
        }
        let Some(mut job) = self.ready.pop_front() else {
            return Start::Busy;
        };
        job.sent = now;
        let request = match job.stage {
            Stage::Create => Request::Create(Arc::clone(&job.data)),
            Stage::Update(id) => Request::Update(id, Arc::clone(&job.data)),
            Stage::Lookup => match self.lookup_query(&job.data) {
                Some(query) => {
                    self.stats.lookups += 1;
                    Request::Lookup(query)
                }
                None => Request::Create(Arc::clone(&job.data)),
            },
        };
        Start::Send(job, request)
    }

    /// The query that finds a row's item by the `upsert_by` key, if the row
    /// has a value for it.
    fn lookup_query(&self, data: &Value) -> Option<ItemsQuery> {
        let field = self.upsert_by.as_deref()?;
        let text = match data.get(field)? {
            Value::String(s) => s.clone(),
            v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
            _ => return None,
        };
        Some(ItemsQuery::new().filter(field, FilterOp::Eq, text).limit(2))
    }

    /// The next input row that needs a request, settling on the way the rows
    /// the checkpoint says are done (or cannot be sent again).
    fn pull_row(&mut self) -> Option<Job> {
        while self.stopped.is_none() && !self.rows_done {
            if self.stop.as_ref().is_some_and(ImportStop::is_stopped) {
                self.stopped = Some(STOPPED_ON_REQUEST.to_owned());
                break;
            }
            let Some(data) = self.rows.next() else {
                self.rows_done = true;
                break;
            };
            let row = self.next_row;
            self.next_row += 1;
            let bytes = serde_json::to_vec(&data).unwrap_or_default();
            let row_digest = digest(&bytes);
            let earlier = self.earlier.remove(&row);
            if let Some(Earlier {
                digest: Some(d), ..
            }) = earlier
                && d != row_digest
            {
                self.stopped = Some(format!(
                    "row {row} is not the row the checkpoint recorded: resume with the same input, in the same order"
                ));
                self.settle(row, RowOutcome::NotStarted, false);
                break;
            }
            let data = Arc::new(data);
            let job = |stage| Job {
                row,
                data: Arc::clone(&data),
                stage,
                throttles: 0,
                sent: Instant::now(),
            };
            match earlier.and_then(|e| e.finished.map(|f| (f, e.digest))) {
                Some((Finished::Created(id), _)) => {
                    self.settle(row, RowOutcome::DoneBefore { id }, false);
                }
                Some((Finished::Updated(id) | Finished::Unchanged(id), _)) => {
                    self.settle(row, RowOutcome::DoneBefore { id: Some(id) }, false);
                }
                // Sent by an earlier run, outcome unknown (recorded so, or
                // started and never finished: in flight when it stopped).
                Some((Finished::Unknown, _)) | None if earlier.is_some() => {
                    if self.lookup_query(&data).is_some() {
                        return Some(job(Stage::Lookup));
                    }
                    let error = Error::OutcomeUnknown(
                        TransportError::new(TransportErrorKind::Other).with_detail(
                            "an earlier run sent this row and did not learn its outcome",
                        ),
                    );
                    self.settle(row, RowOutcome::Unknown { error }, true);
                }
                // New, or refused before (nothing was created): sent now.
                _ => {
                    let started = Record::Started {
                        row,
                        digest: row_digest,
                    };
                    if let Some(cp) = self.checkpoint.as_mut()
                        && let Err(e) = cp.record(&started)
                    {
                        self.stopped = Some(format!("cannot write the import checkpoint: {e}"));
                        self.settle(row, RowOutcome::NotStarted, false);
                        break;
                    }
                    return Some(job(Stage::Create));
                }
            }
        }
        None
    }

    /// The answer to `job`'s request, at `now`.
    pub(crate) fn answer(&mut self, mut job: Job, answer: Answer, now: Instant) {
        let throttled = match &answer {
            Answer::Item(Err(e)) | Answer::Page(Err(e)) => throttle_of(e),
            _ => None,
        };
        let ended = match throttled {
            Some(retry_after) => Ended::Throttled { retry_after },
            None => Ended::Done,
        };
        self.pace.ended(job.sent, ended, now);
        if throttled.is_some() {
            job.throttles += 1;
            if job.throttles <= MAX_THROTTLES {
                // Refused before it was acted on: sent again, first.
                self.ready.push_front(job);
                return;
            }
        }
        let outcome = match (job.stage, answer) {
            (Stage::Create | Stage::Lookup, Answer::Item(Ok(created))) => RowOutcome::Created {
                id: created
                    .data
                    .get("id")
                    .and_then(Value::as_u64)
                    .map(ItemId::new),
            },
            (Stage::Create | Stage::Lookup, Answer::Item(Err(error))) => {
                if !outcome_unknown(&error) {
                    RowOutcome::Failed { error }
                } else if self.lookup_query(&job.data).is_some() {
                    job.stage = Stage::Lookup;
                    self.ready.push_front(job);
                    return;
                } else {
                    RowOutcome::Unknown { error }
                }
            }
            (_, Answer::Page(Ok(page))) => match page.data.as_slice() {
                [] => {
                    // Not there: the earlier attempt did not take effect.
                    job.stage = Stage::Create;
                    self.ready.push_front(job);
                    return;
                }
                [item] => match item.get("id").and_then(Value::as_u64).map(ItemId::new) {
                    Some(id) if same(item, &job.data) => RowOutcome::Unchanged { id },
                    Some(id) => {
                        job.stage = Stage::Update(id);
                        self.ready.push_front(job);
                        return;
                    }
                    None => RowOutcome::Unknown {
                        error: Error::InvalidInput(
                            "the item found by the upsert_by key has no id".into(),
                        ),
                    },
                },
                _ => RowOutcome::Failed {
                    error: Error::InvalidInput(
                        "more than one item has this row's upsert_by value; none was changed"
                            .into(),
                    ),
                },
            },
            // The lookup failed: still unknown.
            (_, Answer::Page(Err(error))) => RowOutcome::Unknown { error },
            (Stage::Update(id), Answer::Item(Ok(_))) => RowOutcome::Updated { id },
            (Stage::Update(_), Answer::Item(Err(error))) => RowOutcome::Failed { error },
        };
        let record = !matches!(outcome, RowOutcome::NotStarted);
        self.settle(job.row, outcome, record);
    }

    /// Files a row's outcome (and records it when `record`).
    fn settle(&mut self, row: u64, outcome: RowOutcome, record: bool) {
        let finished = match &outcome {
            RowOutcome::Created { id } => Some(Finished::Created(*id)),
            RowOutcome::Updated { id } => Some(Finished::Updated(*id)),
            RowOutcome::Unchanged { id } => Some(Finished::Unchanged(*id)),
            RowOutcome::Failed { .. } => Some(Finished::Failed),
            RowOutcome::Unknown { .. } => Some(Finished::Unknown),
            RowOutcome::DoneBefore { .. } | RowOutcome::NotStarted => None,
        };
        if record
            && let (Some(outcome), Some(cp)) = (finished, self.checkpoint.as_mut())
            && let Err(e) = cp.record(&Record::Finished { row, outcome })
            && self.stopped.is_none()
        {
            self.stopped = Some(format!("cannot write the import checkpoint: {e}"));
        }
        let s = &mut self.stats;
        match outcome {
            RowOutcome::Created { .. } => s.created += 1,
            RowOutcome::Updated { .. } => s.updated += 1,
            RowOutcome::Unchanged { .. } => s.unchanged += 1,
            RowOutcome::DoneBefore { .. } => s.done_before += 1,
            RowOutcome::Failed { .. } => s.failed += 1,
            RowOutcome::Unknown { .. } => s.unknown += 1,
            RowOutcome::NotStarted => s.not_started += 1,
        }
        self.report.push(RowReport { row, outcome });
        if let Some(progress) = &self.progress {
            progress(&self.stats);
        }
    }

    /// The report; rows the import never reached (it stopped) are listed as
    /// not started.
    pub(crate) fn into_report(mut self) -> ImportReport {
        if self.stopped.is_some() {
            while let Some(_row) = self.rows.next() {
                let row = self.next_row;
                self.next_row += 1;
                self.settle(row, RowOutcome::NotStarted, false);
            }
        }
        let pace = self.pace.stats();
        self.stats.requests = pace.requests;
        self.stats.throttled = pace.throttled;
        self.stats.rate_decreases = pace.decreases;
        self.report.sort_by_key(|r| r.row);
        ImportReport {
            rows: self.report,
            stats: self.stats,
            stopped: self.stopped,
        }
    }
}

/// A 429 or 503: the server refused before acting; its `Retry-After`.
fn throttle_of(error: &Error) -> Option<Option<std::time::Duration>> {
    match error {
        Error::Api(s) if matches!(s.status.as_u16(), 429 | 503) => Some(s.retry_after),
        _ => None,
    }
}

/// A create whose effect is unknown: the request may have arrived (the
/// connection broke after sending), or a gateway answered for a server that
/// may have acted (502, 504).
fn outcome_unknown(error: &Error) -> bool {
    matches!(error, Error::OutcomeUnknown(_))
        || matches!(error.status().map(|s| s.as_u16()), Some(502 | 504))
}

/// The item already holds every field of the row.
fn same(item: &Value, data: &Value) -> bool {
    let Value::Object(data) = data else {
        return false;
    };
    data.iter().all(|(k, v)| {
        item.get("fields").and_then(|f| f.get(k)) == Some(v)
            || (k == "title" && item.get("title") == Some(v))
    })
}

/// An import being set up: from [`Client::import`] or
/// [`BlockingClient::import`]; [`run`](Import::run) it.
pub struct Import<C> {
    client: C,
    app_id: AppId,
    collection_id: CollectionId,
    rows: Rows,
    concurrency: usize,
    rate_limit: Option<u32>,
    upsert_by: Option<String>,
    checkpoint: Option<Box<dyn ImportCheckpoint>>,
    shared: Option<Arc<dyn SharedRateLimit>>,
    stop: Option<ImportStop>,
    progress: Option<Progress>,
}

impl<C> std::fmt::Debug for Import<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("app_id", &self.app_id)
            .field("collection_id", &self.collection_id)
            .field("concurrency", &self.concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("upsert_by", &self.upsert_by)
            .finish_non_exhaustive()
    }
}

impl<C> Import<C> {
    fn new(client: C, app_id: AppId, collection_id: CollectionId, rows: Rows) -> Self {
        Self {
            client,
            app_id,
            collection_id,
            rows,
            concurrency: DEFAULT_IMPORT_CONCURRENCY,
            rate_limit: None,
            upsert_by: None,
            checkpoint: None,
            shared: None,
            stop: None,
            progress: None,
        }
    }

    /// At most this many requests in flight (default 8, at least 1); fewer
    /// while the server throttles.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Never more than `per_second` requests in any one second (at least 1).
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second.max(1));
        self
    }

    /// The field that identifies a row's item (e.g. an order number). A row
    /// whose create's outcome is unknown, or that an earlier run left so, is
    /// first looked up by it (`filters[field][$eq]`): updated if found and
    /// different, left if the same, created if absent — never created twice.
    pub fn upsert_by(mut self, field: impl Into<String>) -> Self {
        self.upsert_by = Some(field.into());
        self
    }

    /// Records progress in `checkpoint`, and skips what it says earlier runs
    /// finished (see [`FileCheckpoint`](super::FileCheckpoint)).
    pub fn checkpoint(mut self, checkpoint: impl ImportCheckpoint + 'static) -> Self {
        self.checkpoint = Some(Box::new(checkpoint));
        self
    }

    /// Also asks `limit` before each request: a rate limit shared with the
    /// other processes that import into the same account (see
    /// [`SharedRateLimit`](super::SharedRateLimit)).
    pub fn shared_rate_limit(mut self, limit: Arc<dyn SharedRateLimit>) -> Self {
        self.shared = Some(limit);
        self
    }

    /// Stops starting rows once `stop` is [stopped](ImportStop::stop).
    pub fn stop_on(mut self, stop: ImportStop) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Calls `progress` with the counts each time a row settles (from the
    /// thread or task that settled it; keep it short: a progress bar's
    /// update).
    pub fn on_progress(mut self, progress: impl Fn(&ImportStats) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    fn importer(&mut self) -> Result<Importer> {
        let rows = std::mem::replace(&mut self.rows, Box::new(std::iter::empty()));
        let mut importer = Importer::new(
            rows,
            self.concurrency,
            self.rate_limit,
            self.upsert_by.take(),
            self.checkpoint.take(),
        )?;
        importer.shared = self.shared.take();
        importer.stop = self.stop.take();
        importer.progress = self.progress.take();
        Ok(importer)
    }
}

type Flight = Pin<Box<dyn std::future::Future<Output = (Job, Answer)> + Send>>;

impl<T: Transport> Import<Client<T>> {
    /// Runs the import to its end. `Err` only when nothing could start (the
    /// checkpoint cannot be read); everything else is in the report.
    pub async fn run(mut self) -> Result<ImportReport> {
        let mut importer = self.importer()?;
        let client = self.client;
        let (app, coll) = (self.app_id, self.collection_id);
        let mut flights: Vec<Flight> = Vec::new();
        let mut sleep: Option<(Instant, BoxFuture<'_, ()>)> = None;
        std::future::poll_fn(|cx| {
            loop {
                let mut until = None;
                loop {
                    match importer.poll_start(Instant::now()) {
                        Start::Send(job, request) => {
                            let client = client.clone();
                            flights.push(Box::pin(async move {
                                let answer = match request {
                                    Request::Create(data) => {
                                        Answer::Item(client.create_item(app, coll, &*data).await)
                                    }
                                    Request::Update(id, data) => Answer::Item(
                                        client.update_item(app, coll, id, &*data).await,
                                    ),
                                    Request::Lookup(query) => {
                                        Answer::Page(client.get_items(app, coll, &query).await)
                                    }
                                };
                                (job, answer)
                            }));
                        }
                        Start::Until(t) => {
                            until = Some(t);
                            break;
                        }
                        Start::Busy => break,
                        Start::Done => return Poll::Ready(()),
                    }
                }
                let mut answered = false;
                let mut i = 0;
                while i < flights.len() {
                    if let Poll::Ready((job, answer)) = flights[i].as_mut().poll(cx) {
                        drop(flights.swap_remove(i));
                        importer.answer(job, answer, Instant::now());
                        answered = true;
                    } else {
                        i += 1;
                    }
                }
                if answered {
                    continue;
                }
                let Some(until) = until else {
                    sleep = None;
                    return Poll::Pending;
                };
                if sleep.as_ref().is_none_or(|(at, _)| *at != until) {
                    let wait = until.saturating_duration_since(Instant::now());
                    sleep = Some((until, client.inner.shared.transport.sleep(wait)));
                }
                match sleep.as_mut().map(|(_, s)| s.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => sleep = None,
                    _ => return Poll::Pending,
                }
            }
        })
        .await;
        Ok(importer.into_report())
    }
}

impl<T: BlockingTransport> Import<BlockingClient<T>> {
    /// Runs the import to its end on `concurrency` threads. `Err` only when
    /// nothing could start (the checkpoint cannot be read); everything else
    /// is in the report.
    pub fn run(mut self) -> Result<ImportReport> {
        let importer = Mutex::new(self.importer()?);
        let changed = Condvar::new();
        let (app, coll) = (self.app_id, self.collection_id);
        let client = &self.client;
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency {
                scope.spawn(|| {
                    let lock = || importer.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut guard = lock();
                    loop {
                        match guard.poll_start(Instant::now()) {
                            Start::Send(job, request) => {
                                drop(guard);
                                let answer = match request {
                                    Request::Create(data) => {
                                        Answer::Item(client.create_item(app, coll, &*data))
                                    }
                                    Request::Update(id, data) => {
                                        Answer::Item(client.update_item(app, coll, id, &*data))
                                    }
                                    Request::Lookup(query) => {
                                        Answer::Page(client.get_items(app, coll, &query))
                                    }
                                };
                                guard = lock();
                                guard.answer(job, answer, Instant::now());
                                changed.notify_all();
                            }
                            Start::Until(t) => {
                                let wait = t.saturating_duration_since(Instant::now());
                                guard = changed
                                    .wait_timeout(guard, wait)
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .0;
                            }
                            Start::Busy => {
                                guard = changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
                            }
                            Start::Done => {
                                changed.notify_all();
                                return;
                            }
                        }
                    }
                });
            }
        });
        Ok(importer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_report())
    }
}

impl<T: Transport> Client<T> {
    /// Creates an item from each row (the JSON `data` of `create_item`),
    /// several at once at a pace the server can take; see
    /// [the bulk docs](crate::bulk). Set it up, then `run().await`.
    ///
    /// ```no_run
    /// # async fn run(client: carthooks_client::Client<impl carthooks_client::Transport>) -> Result<(), Box<dyn std::error::Error>> {
    /// use carthooks_client::bulk::FileCheckpoint;
    /// let rows = (0..10_000).map(|n| serde_json::json!({"f_1001": format!("EF{n}"), "title": "order"}));
    /// let report = client
    ///     .import(1, 2, rows)
    ///     .upsert_by("f_1001")
    ///     .rate_limit(200)
    ///     .checkpoint(FileCheckpoint::open("import.checkpoint")?)
    ///     .run()
    ///     .await?;
    /// report.write_problems(std::fs::File::create("problems.ndjson")?)?;
    /// # Ok(()) }
    /// ```
    pub fn import<R>(
        &self,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
        rows: R,
    ) -> Import<Self>
    where
        R: IntoIterator<Item = Value>,
        R::IntoIter: Send + 'static,
    {
        Import::new(
            self.clone(),
            app_id.into(),
            collection_id.into(),
            Box::new(rows.into_iter()),
        )
    }
}

impl<T: BlockingTransport> BlockingClient<T> {
    /// Creates an item from each row, several at once (one thread per
    /// request in flight) at a pace the server can take; see
    /// [the bulk docs](crate::bulk). Set it up, then `run()`.
    pub fn import<R>(
        &self,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
        rows: R,
    ) -> Import<Self>
    where
        R: IntoIterator<Item = Value>,
        R::IntoIter: Send + 'static,
    {
        Import::new(
            self.clone(),
            app_id.into(),
            collection_id.into(),
            Box::new(rows.into_iter()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    /// A checkpoint in memory, shared with the test.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<Record>>>);

    impl ImportCheckpoint for Memory {
        fn load(&mut self) -> io::Result<Vec<Record>> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn record(&mut self, record: &Record) -> io::Result<()> {
            self.0.lock().unwrap().push(*record);
            Ok(())
        }
    }

    fn parsed<T: serde::de::DeserializeOwned>(
        status: u16,
        body: Value,
        retry_after: Option<&str>,
    ) -> Result<ApiResponse<T>> {
        let mut response = http::Response::builder().status(status);
        if let Some(r) = retry_after {
            response = response.header("retry-after", r);
        }
        let response = response.body(body.to_string().into_bytes()).unwrap();
        let parsed = carthooks_core::parse_api_response(&response);
        // The driver adds the Retry-After to a 429's error; do as it does.
        parsed.map_err(|e| match e {
            Error::Api(mut s) => {
                s.retry_after = retry_after
                    .and_then(|r| r.parse().ok())
                    .map(Duration::from_secs);
                Error::Api(s)
            }
            e => e,
        })
    }

    fn created(id: u64) -> Answer {
        Answer::Item(parsed(200, json!({"data": {"id": id}}), None))
    }

    fn unknown() -> Answer {
        Answer::Item(Err(Error::OutcomeUnknown(TransportError::new(
            TransportErrorKind::Io,
        ))))
    }

    fn rows(n: u64) -> Rows {
        Box::new((0..n).map(|i| json!({"code": format!("c{i}"), "title": "t"})))
    }

    /// Drives an importer, answering each request with `server`; returns the
    /// report and every request sent, as text.
    fn drive(
        mut importer: Importer,
        mut server: impl FnMut(&Request) -> Answer,
    ) -> (ImportReport, Vec<String>) {
        let mut now = Instant::now();
        let mut sent = Vec::new();
        let mut flights: VecDeque<(Job, Answer)> = VecDeque::new();
        loop {
            match importer.poll_start(now) {
                Start::Send(job, request) => {
                    sent.push(match &request {
                        Request::Create(d) => {
                            format!("create {}", d["code"].as_str().unwrap_or("?"))
                        }
                        Request::Lookup(q) => format!("lookup {}", q.to_pairs()[0].1),
                        Request::Update(id, _) => format!("update {}", id.get()),
                    });
                    let answer = server(&request);
                    flights.push_back((job, answer));
                }
                Start::Until(t) => now = t,
                Start::Busy => {
                    let (job, answer) = flights.pop_front().expect("busy with nothing in flight");
                    importer.answer(job, answer, now);
                }
                Start::Done => break,
            }
            assert!(sent.len() < 10_000, "runaway");
        }
        (importer.into_report(), sent)
    }

    fn importer(n: u64, upsert_by: Option<&str>, cp: Option<Memory>) -> Importer {
        Importer::new(
            rows(n),
            4,
            None,
            upsert_by.map(str::to_owned),
            cp.map(|c| Box::new(c) as Box<dyn ImportCheckpoint>),
        )
        .unwrap()
    }

    /// Every row created once; a throttled create is sent again (and paced);
    /// a refused one is failed, not resent.
    #[test]
    fn rows_are_created_throttled_ones_resent_refused_ones_failed() {
        let mut calls = 0;
        let (report, sent) = drive(importer(5, None, None), |r| {
            calls += 1;
            match (calls, r) {
                (2, _) => Answer::Item(parsed(429, json!({"error": "RATE_LIMITED"}), Some("1"))),
                (_, Request::Create(d)) if d["code"] == "c3" => Answer::Item(parsed(
                    400,
                    json!({"error": {"code": "BAD_REQUEST", "message": "no"}}),
                    None,
                )),
                _ => created(100 + calls),
            }
        });
        assert_eq!(sent.len(), 6, "{sent:?}");
        assert_eq!(
            sent.iter().filter(|s| *s == "create c1").count(),
            2,
            "{sent:?}"
        );
        assert_eq!(report.stats.created, 4);
        assert_eq!(report.stats.failed, 1);
        assert_eq!(report.stats.throttled, 1);
        assert_eq!(
            report.rows.iter().map(|r| r.row).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(matches!(report.rows[3].outcome, RowOutcome::Failed { .. }));
        let mut out = Vec::new();
        report.write_problems(&mut out).unwrap();
        let line: Value = serde_json::from_slice(out.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(line["row"], 3);
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["status"], 400);
        assert_eq!(line["code"], "BAD_REQUEST");
    }

    /// Without a key, an unknown outcome is reported, never resent.
    #[test]
    fn without_a_key_an_unknown_outcome_is_reported_and_not_resent() {
        let (report, sent) = drive(importer(3, None, None), |r| match r {
            Request::Create(d) if d["code"] == "c1" => unknown(),
            _ => created(7),
        });
        assert_eq!(sent.len(), 3);
        assert!(matches!(report.rows[1].outcome, RowOutcome::Unknown { .. }));
        assert_eq!(report.problems().count(), 1);
    }

    /// With a key: looked up, then created if absent, left if the same,
    /// updated if different, failed if ambiguous.
    #[test]
    fn with_a_key_an_unknown_outcome_is_looked_up_then_settled() {
        for (found, expect, requests) in [
            (
                json!([]),
                "created",
                vec!["create c0", "lookup c0", "create c0"],
            ),
            (
                json!([{"id": 9, "title": "t", "fields": {"code": "c0", "title": "t"}}]),
                "unchanged",
                vec!["create c0", "lookup c0"],
            ),
            (
                json!([{"id": 9, "fields": {"code": "c0", "title": "old"}}]),
                "updated",
                vec!["create c0", "lookup c0", "update 9"],
            ),
            (
                json!([{"id": 9}, {"id": 10}]),
                "failed",
                vec!["create c0", "lookup c0"],
            ),
        ] {
            let mut creates = 0;
            let (report, sent) = drive(importer(1, Some("code"), None), |r| match r {
                Request::Create(_) => {
                    creates += 1;
                    if creates == 1 { unknown() } else { created(5) }
                }
                Request::Lookup(_) => Answer::Page(parsed(200, json!({"data": found}), None)),
                Request::Update(id, _) => {
                    Answer::Item(parsed(200, json!({"data": {"id": id.get()}}), None))
                }
            });
            assert_eq!(sent, requests, "{expect}");
            assert_eq!(report.rows[0].outcome.as_str(), expect);
            assert_eq!(report.stats.lookups, 1);
        }
    }

    /// A resumed run skips what is finished, sends again what was refused,
    /// looks up (or reports) what was in flight, and refuses other input.
    #[test]
    fn a_resumed_run_skips_finished_rows_and_never_creates_one_twice() {
        let cp = Memory::default();
        // Run 1: rows 0..3 created, row 3 refused, row 4 in flight at the crash.
        let (_, _) = drive(importer(4, Some("code"), Some(cp.clone())), |r| match r {
            Request::Create(d) if d["code"] == "c3" => {
                Answer::Item(parsed(400, json!({"error": "BAD"}), None))
            }
            _ => created(1),
        });
        let digest4 = digest(&serde_json::to_vec(&json!({"code": "c4", "title": "t"})).unwrap());
        cp.0.lock().unwrap().push(Record::Started {
            row: 4,
            digest: digest4,
        });
        for (key, expect_sent, row4) in [
            (
                Some("code"),
                vec!["create c3", "lookup c4", "create c5"],
                "unchanged",
            ),
            (None, vec!["create c3", "create c5"], "unknown"),
        ] {
            // Each from the records run 1 left.
            let left = Memory(Arc::new(Mutex::new(cp.0.lock().unwrap().clone())));
            let (report, sent) = drive(importer(6, key, Some(left)), |r| match r {
                Request::Lookup(_) => Answer::Page(parsed(
                    200,
                    json!({"data": [{"id": 44, "title": "t", "fields": {"code": "c4", "title": "t"}}]}),
                    None,
                )),
                _ => created(2),
            });
            assert_eq!(sent, expect_sent, "{key:?}");
            assert_eq!(report.stats.done_before, 3);
            assert_eq!(report.rows[4].outcome.as_str(), row4);
            assert_eq!(report.rows.len(), 6);
        }
        // Another input: stopped at the first row that differs.
        let other = Importer::new(
            Box::new((0..6).map(|i| json!({"code": format!("x{i}")}))),
            4,
            None,
            None,
            Some(Box::new(cp.clone())),
        )
        .unwrap();
        let (report, sent) = drive(other, |_| created(3));
        assert!(sent.is_empty());
        assert!(
            report.stopped.as_deref().unwrap().contains("row 0"),
            "{:?}",
            report.stopped
        );
        assert_eq!(report.stats.not_started, 6);
    }

    /// A checkpoint that cannot be written stops the import before the row
    /// it could not record (rows already recorded as started still go); the
    /// rest are listed as not started.
    #[test]
    fn a_checkpoint_that_fails_stops_before_the_row() {
        struct Full(u32);
        impl ImportCheckpoint for Full {
            fn load(&mut self) -> io::Result<Vec<Record>> {
                Ok(Vec::new())
            }
            fn record(&mut self, _: &Record) -> io::Result<()> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk full"));
                }
                self.0 -= 1;
                Ok(())
            }
        }
        let importer = Importer::new(rows(5), 1, None, None, Some(Box::new(Full(3)))).unwrap();
        let (report, sent) = drive(importer, |_| created(1));
        assert_eq!(sent, ["create c0", "create c1"]);
        assert_eq!(report.stats.created, 2);
        assert_eq!(report.stats.not_started, 3);
        assert!(report.stopped.unwrap().contains("disk full"));
    }
}
