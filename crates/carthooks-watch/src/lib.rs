//! React to Carthooks collection changes delivered over Amazon SQS — the Rust
//! counterpart of the Python SDK's `carthooks.watcher`, built for fleets.
//!
//! ```no_run
//! use std::time::Duration;
//! use carthooks_watch::{Change, Watcher};
//!
//! # async fn run(client: carthooks_reqwest::Client) -> Result<(), carthooks_watch::WatchError> {
//! let watcher = Watcher::builder(client, "https://sqs.ap-southeast-1.amazonaws.com/123/orders", 1, 2)
//!     .filters(serde_json::json!({"f_1009": {"$eq": 1}}))
//!     .concurrency(8)
//!     .build()
//!     .await?;
//! // Runs until Ctrl-C or SIGTERM, then finishes (or releases) what it holds.
//! let stats = watcher
//!     .run(|change: Change| async move {
//!         change.lock().await?;
//!         change.update(&serde_json::json!({"f_1010": "seen"})).await?;
//!         change.unlock().await?;
//!         Ok::<(), carthooks_watch::BoxError>(())
//!     })
//!     .await?;
//! println!("handled {} changes", stats.handled);
//! # Ok(()) }
//! ```
//!
//! # What it does
//!
//! 1. **Registers the watch** (`start_watch_data`: Carthooks sends the
//!    collection's changes to your queue) and checks that the queue exists,
//!    reading its visibility timeout when you did not set one.
//! 2. **Renews the watch** every `renewal_interval` (default 1 h) so that it
//!    never reaches its `age` (default 5 days). A failed renewal is retried with
//!    a backoff that starts at 1 s and never exceeds a tenth of the age (at most
//!    60 s), and each failure is reported ([`Problem::RenewalFailed`]).
//! 3. **Receives** with long polls (20 s), up to a batch (`batch_size`, up to
//!    10) at a time, holding at most `concurrency` (default 8) + one batch:
//!    messages received ahead wait for a free handler with their visibility
//!    kept, so handlers do not wait for polls and polls are not half empty.
//!    One receive is out at a time, or up to [`WatcherBuilder::pollers`] at
//!    once, each asking for the room left in hand: 64 handlers are not kept
//!    busy by one round trip of 10 messages at a time.
//! 4. **Handles** each message in its own task: parses it into a
//!    [`ChangeEvent`] (malformed ones — not JSON, no `payload.id` — are reported
//!    and left in the queue for its redrive policy, never deleted), then calls
//!    your handler with a [`Change`]. While the handler runs, a heartbeat extends
//!    the message's visibility every half visibility timeout.
//!
//!    **Per-item order**: changes of one item never run at once — a change
//!    waits, visibility kept, for the one of its item in hand, without taking
//!    a handler slot — and one whose `version` is not newer than the last one
//!    handled for its item is acked without calling the handler
//!    ([`Stats::stale`]; [`WatcherBuilder::skip_stale`],
//!    [`WatcherBuilder::item_memory`]). So per item the versions handled only
//!    grow, in this process; the rules and their limits are in the `order`
//!    module's source docs.
//!
//!    **FIFO queues** (a queue URL ending in `.fifo`): SQS hands out a
//!    group's (`MessageGroupId`'s) messages in order and no later one while
//!    one is in flight; the watcher runs the groups in hand in parallel (up
//!    to `concurrency`) and each group's messages one after another in the
//!    order received. A message not acked (a failure, a nack, a malformed
//!    body) stops its group for what is in hand: the group's messages behind
//!    it are released at once, in order, unhandled ([`Stats::released`]),
//!    so SQS hands the group out again from the failed message on, after its
//!    nack delay — nothing overtakes it — while other groups go on. The
//!    messages released behind a failure come back with it, so they count
//!    its receives too: a redrive policy's `maxReceiveCount` moves them to
//!    the dead-letter queue with it, in order (so does every FIFO consumer;
//!    give the count room). A FIFO queue's acks are sent at once and
//!    waited for: a group's next message runs only once SQS has deleted
//!    the one before, so a process dying in between cannot bring an older
//!    change back after a newer one was handled. Receives
//!    carry a `ReceiveRequestAttemptId`, so a receive the AWS SDK retries
//!    gets its messages back. carthooks-mock publishes with `MessageGroupId`
//!    = the item's id and `MessageDeduplicationId` = item + revision.
//! 5. **Settles**: in [`AckMode::Auto`], `Ok` acks and `Err` (or a panic) nacks
//!    with an exponential delay by receive count (1 s, 2 s, 4 s … 5 min); in
//!    [`AckMode::Manual`] the handler calls [`Change::ack`] /
//!    [`Change::nack`]. Acks are batched (`DeleteMessageBatch` of up to 10 —
//!    of up to `concurrency` when that is smaller — sent after at most 50 ms,
//!    far inside the visibility the heartbeat keeps). Auto mode frees the
//!    handler's slot as soon as it returns; [`Change::ack`] returns once SQS
//!    has deleted the message.
//! 6. **Stops gracefully** on Ctrl-C / SIGTERM ([`Watcher::run`]) or any
//!    future you give ([`Watcher::run_until`]): stops receiving, lets the
//!    handlers in hand finish for up to `shutdown_grace` (30 s), releases the
//!    rest (visibility 0, so another worker takes them at once), sends the last
//!    acks, and returns the [`Stats`]. A release waits for the watcher's
//!    receive still out at SQS (a long poll, at most `long_poll`): SQS answers
//!    a receive whose caller is gone too, and would hand it the released
//!    messages — hidden from every worker for a whole visibility timeout.
//!    What that last receive brings is released at once. A watcher with
//!    nothing to release stops without waiting for it.
//!
//! Delivery is at least once: a message can come twice (a slow ack, a crash, a
//! long poll cut short by shutdown, SQS itself) — a duplicate of a change
//! already handled is stale and skipped, but one handled by another process
//! is not known here — so handlers must be idempotent; [`Change::receive_count`] says when a message is a redelivery.
//! Nothing is printed: events go to `tracing` and to [`WatcherBuilder::on_problem`].
//!
//! # Telemetry (feature `otel`)
//!
//! | span | kind | attributes |
//! |---|---|---|
//! | `process {queue}` | consumer | `messaging.system` (`aws_sqs`), `messaging.operation.type` / `.name` (`process`), `messaging.destination.name` (the queue's name), `messaging.message.id`, `carthooks.item.id`, `carthooks.watch.event` (`item.updated`, …), `carthooks.watch.receive_count`; `error.type` (`handler`, `malformed`) and status error when the handler failed or the message is no change |
//!
//! One span per message handed to a handler, a root linked to the producer's
//! context when the message carries one: the `traceparent` (and
//! `tracestate`) message attribute, else SQS's `AWSTraceHeader` (X-Ray's
//! `Root=1-…;Parent=…;Sampled=…`). The handler runs inside it: the client
//! calls it makes (`Change::lock`, `update`, …) are its children.
//!
//! | metric | kind | unit | attributes |
//! |---|---|---|---|
//! | `messaging.client.consumed.messages` | counter | `{message}` | `messaging.system`, `messaging.destination.name`, `messaging.operation.name` (`receive`) |
//! | `messaging.process.duration` (the handler's time) | histogram | `s` | as the span's messaging attributes, `error.type` |
//! | `carthooks.watch.messages` | counter | `{message}` | `carthooks.watch.outcome`: `handled`, `failed`, `malformed`, `stale`, `released` |
//! | `carthooks.watch.settled` | counter | `{message}` | `carthooks.watch.settle`: `ack`, `nack` |
//! | `carthooks.watch.in_hand` | up-down counter | `{message}` | — |
//! | `carthooks.watch.visibility.extensions` | counter | `{extension}` | — |
//! | `carthooks.watch.renewals` | counter | `{registration}` | `carthooks.watch.outcome`: `registered`, `failed` |
//! | `carthooks.watch.failures` | counter | `{failure}` | `carthooks.watch.operation`: `receive`, `settle` |
//! | `carthooks.watch.change.lag` | histogram | `s` | now minus the change's `updated_at` |
//! | `carthooks.watch.queue.lag` | histogram | `s` | now minus SQS's `SentTimestamp` |
//!
//! Every [`Stats`] count is one of these counters too. The providers are the
//! builder's (`WatcherBuilder::tracer_provider`, `meter_provider`), else the
//! global ones when the watcher is built; give the watcher's client the same
//! providers to see its calls inside the message spans.
//!
//! # Design
//!
//! Tasks, for one [`Watcher::run_until`]:
//!
//! ```text
//!   receiver ──(room + message)──> message task ──(handler slot)──> handler ──ack──> acker ──> DeleteMessageBatch
//!      │  poll task: ReceiveMessage(batch_size)│ heartbeat: ChangeMessageVisibility
//!      │                                       │ nack: ChangeMessageVisibility(delay)
//!   renewal: start_watch_data every interval, retried with backoff on failure
//!   phase (watch channel): Running → Draining (stop receiving) → Releasing (grace over)
//! ```
//!
//! Each `ReceiveMessage` runs in a poll task of its own that hands its
//! messages over (under one lock with the change of phase) only while the
//! run is `Running`, and releases them itself after: stopping the receiver
//! never abandons a batch in hand. `polls` counts the receives out at SQS;
//! every shutdown release waits until it is 0, extending visibility meanwhile.
//!
//! Two semaphores bound the work: room in hand (`concurrency + batch_size`;
//! the receiver takes up to a batch's worth before each poll, each message
//! keeps one) and handler slots (`concurrency`). Each message's settle state is one
//! atomic, so an ack, a nack, the heartbeat and the shutdown release never
//! act twice on a message.
//!
//! The modules follow that picture: `builder` (settings, checked once),
//! `receive` (the receive loop, its poll tasks, the end of a run), `settle`
//! (one message from hand-over to settled: handler, heartbeat, acks, nacks,
//! releases, the acker), `renew` (the watch's registration), `change` (what a
//! handler gets), `event` (parsing a message) and `sqs` (the SQS calls). What
//! they share — the settings of a run, a message's receipt, the counters, the
//! limits SQS sets — stays here.

mod builder;
mod change;
mod event;
#[cfg(feature = "lambda")]
pub mod lambda;
mod order;
mod receive;
mod renew;
mod settle;
mod sqs;
pub mod sync;
mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use carthooks_client::{AppId, CollectionId, ItemId, WatchDataRequest};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use telemetry::{Count, Counted, Telemetry};

pub use builder::WatcherBuilder;
pub use change::Change;
pub use event::{ChangeEvent, ChangeKind, EventMeta, Malformed, Payload};
pub use sqs::{aws_config_loader, sqs_client_from_env};

/// The AWS crates the watcher is built on, for clients and settings of your own.
pub use {aws_config, aws_sdk_sqs};

/// The async Carthooks client the watcher registers with and the record
/// helpers call.
pub type Client = carthooks_reqwest::Client;

/// What a handler may fail with (anything that converts, `anyhow` included).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the watcher could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A setting is out of range.
    #[error("invalid watcher configuration: {0}")]
    Config(String),
    /// `start_watch_data` failed when the watcher started.
    #[error("cannot register the watch")]
    Register(#[source] carthooks_client::Error),
    /// The queue URL names no queue.
    #[error("the SQS queue does not exist")]
    QueueNotFound,
    /// An SQS call failed.
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        /// The SQS operation (`ReceiveMessage`, `DeleteMessageBatch`, …).
        operation: &'static str,
        /// What SQS or the connection said.
        message: String,
    },
    /// The message was already acked or nacked (or released at shutdown).
    #[error("the message was already acked or nacked")]
    AlreadySettled,
    /// The watcher stopped before the ack could be sent.
    #[error("the watcher stopped before the ack was sent")]
    Stopped,
    /// A Carthooks API call of a record helper failed.
    #[error(transparent)]
    Api(#[from] carthooks_client::Error),
    /// A sync's replica refused an item ([`sync::Replica`]).
    #[error("the replica refused an item")]
    Replica(#[source] BoxError),
    /// The Lambda runtime stopped ([`lambda::LambdaWatcher::run`]).
    #[cfg(feature = "lambda")]
    #[error("the Lambda runtime stopped: {0}")]
    Lambda(String),
}

/// Who settles a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AckMode {
    /// The handler's `Ok` acks, `Err` or a panic nacks (with a delay growing
    /// with the receive count), unless the handler settled it itself.
    #[default]
    Auto,
    /// The handler calls [`Change::ack`] or [`Change::nack`]; a message left
    /// unsettled comes back when its visibility timeout runs out.
    Manual,
}

/// Something that went wrong without stopping the watcher; each is also a
/// `tracing` warning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A message that is not a change event; left in the queue, not deleted.
    Malformed {
        /// SQS message id.
        message_id: String,
        /// What is wrong with it.
        reason: Malformed,
    },
    /// A handler returned an error or panicked (auto mode nacks the message).
    HandlerFailed {
        /// SQS message id.
        message_id: String,
        /// The changed item.
        item_id: ItemId,
        /// The handler's error (`"panicked"` for a panic).
        error: String,
    },
    /// Renewing the watch failed; retried after `retry_in`.
    RenewalFailed {
        /// Consecutive failures so far.
        attempt: u32,
        /// The API error.
        error: String,
        /// When the next attempt goes out.
        retry_in: Duration,
    },
    /// A `ReceiveMessage` failed; retried after a backoff.
    ReceiveFailed {
        /// The SQS error.
        error: String,
    },
    /// An ack, nack, visibility extension or release failed; the message will
    /// come back when its visibility runs out.
    SettleFailed {
        /// SQS message id.
        message_id: String,
        /// The SQS operation.
        operation: &'static str,
        /// The SQS error.
        error: String,
    },
}

/// Counts since the watcher was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages received.
    pub received: u64,
    /// Handler calls that returned `Ok`.
    pub handled: u64,
    /// Handler calls that returned `Err` or panicked.
    pub failed: u64,
    /// Messages deleted from the queue.
    pub acked: u64,
    /// Messages made visible again after a delay (nacks).
    pub nacked: u64,
    /// Messages made visible again at once, unhandled: at shutdown, and on
    /// a FIFO queue those behind a message of their group that was not
    /// acked.
    pub released: u64,
    /// Messages that were not change events.
    pub malformed: u64,
    /// Changes not newer than the last one handled for their item, acked
    /// without calling the handler (see [`WatcherBuilder::skip_stale`]).
    pub stale: u64,
    /// Visibility extensions sent by the heartbeat.
    pub extended: u64,
    /// Watch registrations that succeeded, the first included.
    pub registrations: u64,
    /// Renewals that failed.
    pub renewal_failures: u64,
    /// `ReceiveMessage` calls that failed.
    pub receive_failures: u64,
    /// Acks, nacks, extensions or releases that failed.
    pub settle_failures: u64,
}

/// The counts behind [`Stats`], each also a metric (feature `otel`).
#[derive(Debug, Default)]
struct Counters {
    received: Count,
    handled: Count,
    failed: Count,
    acked: Count,
    nacked: Count,
    released: Count,
    malformed: Count,
    stale: Count,
    extended: Count,
    registrations: Count,
    renewal_failures: Count,
    receive_failures: Count,
    settle_failures: Count,
}

impl Counters {
    /// Counts whose metrics are `telemetry`'s.
    fn new(telemetry: &Telemetry) -> Self {
        let count = |what| telemetry.count(what);
        Self {
            received: count(Counted::Received),
            handled: count(Counted::Outcome("handled")),
            failed: count(Counted::Outcome("failed")),
            acked: count(Counted::Settled("ack")),
            nacked: count(Counted::Settled("nack")),
            released: count(Counted::Outcome("released")),
            malformed: count(Counted::Outcome("malformed")),
            stale: count(Counted::Outcome("stale")),
            extended: count(Counted::Extended),
            registrations: count(Counted::Renewal("registered")),
            renewal_failures: count(Counted::Renewal("failed")),
            receive_failures: count(Counted::Failure("receive")),
            settle_failures: count(Counted::Failure("settle")),
        }
    }

    fn bump(counter: &Count, n: u64) {
        counter.bump(n);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            received: self.received.get(),
            handled: self.handled.get(),
            failed: self.failed.get(),
            acked: self.acked.get(),
            nacked: self.nacked.get(),
            released: self.released.get(),
            malformed: self.malformed.get(),
            stale: self.stale.get(),
            extended: self.extended.get(),
            registrations: self.registrations.get(),
            renewal_failures: self.renewal_failures.get(),
            receive_failures: self.receive_failures.get(),
            settle_failures: self.settle_failures.get(),
        }
    }
}

type ProblemHook = Arc<dyn Fn(&Problem) + Send + Sync>;

/// Largest `MaxNumberOfMessages` and batch size SQS accepts.
const SQS_BATCH: usize = 10;
/// How long past its long poll a receive still out is waited for before a
/// release.
const QUIET_MARGIN: Duration = Duration::from_secs(5);

/// Longest SQS long poll.
const MAX_LONG_POLL: Duration = Duration::from_secs(20);
/// Longest visibility timeout (and nack delay) SQS accepts: 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);
/// How long an ack waits for others to share its `DeleteMessageBatch`.
const ACK_LINGER: Duration = Duration::from_millis(50);

/// What every task of a watcher shares.
struct Shared {
    client: Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    app_id: AppId,
    collection_id: CollectionId,
    watcher_id: String,
    counters: Counters,
    on_problem: Option<ProblemHook>,
    /// Spans and metrics (nothing without the `otel` feature).
    telemetry: Telemetry,
}

impl Shared {
    /// Counts and reports a failed ack, nack, extension or release.
    fn settle_failed(&self, message_id: &str, operation: &'static str, error: &WatchError) {
        Counters::bump(&self.counters.settle_failures, 1);
        self.report(Problem::SettleFailed {
            message_id: message_id.to_owned(),
            operation,
            error: error.to_string(),
        });
    }

    fn report(&self, problem: Problem) {
        report(self.on_problem.as_ref(), problem);
    }
}

/// A problem as a `tracing` warning, and to the hook if there is one.
fn report(hook: Option<&ProblemHook>, problem: Problem) {
    match &problem {
        Problem::Malformed { message_id, reason } => {
            tracing::warn!(%message_id, %reason, "malformed message left in the queue");
        }
        Problem::HandlerFailed {
            message_id,
            item_id,
            error,
        } => tracing::warn!(%message_id, %item_id, %error, "handler failed"),
        Problem::RenewalFailed {
            attempt,
            error,
            retry_in,
        } => tracing::warn!(attempt, %error, ?retry_in, "watch renewal failed"),
        Problem::ReceiveFailed { error } => tracing::warn!(%error, "receive failed"),
        Problem::SettleFailed {
            message_id,
            operation,
            error,
        } => tracing::warn!(%message_id, operation, %error, "settling a message failed"),
    }
    if let Some(hook) = hook {
        hook(&problem);
    }
}

/// A configured watcher; [`run`](Self::run) it.
pub struct Watcher {
    shared: Arc<Shared>,
    registration: WatchDataRequest,
    renewal_interval: Duration,
    concurrency: usize,
    batch_size: i32,
    long_poll: Duration,
    visibility: Duration,
    ack_mode: AckMode,
    nack_backoff: (Duration, Duration),
    shutdown_grace: Duration,
    item_memory: usize,
    skip_stale: bool,
    pollers: usize,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("queue_url", &self.shared.queue_url)
            .field("watch_name", &self.registration.name)
            .field("watcher_id", &self.shared.watcher_id)
            .field("concurrency", &self.concurrency)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

/// Where a run is: receiving, draining (handlers finish), releasing (grace
/// over), closed (every handler task ended; the acker sends what it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Draining,
    Releasing,
    Closed,
}

/// What the tasks of one run share.
struct Run {
    shared: Arc<Shared>,
    /// Handlers running at once (`concurrency`).
    handler_slots: Arc<Semaphore>,
    acks: mpsc::UnboundedSender<AckJob>,
    visibility: Duration,
    ack_mode: AckMode,
    nack_backoff: (Duration, Duration),
    phase: watch::Receiver<Phase>,
    /// Receives of this run still out at SQS (see the crate docs' design).
    polls: watch::Sender<usize>,
    /// How long one may wait for its first message.
    long_poll: Duration,
    /// Held while a poll task hands its messages over and while the phase
    /// leaves `Running`: a batch is either handed over or released by its
    /// poll task, never dropped between the two.
    handover: std::sync::Mutex<()>,
    /// Per-item gates and the last version handled (see `order`).
    items: Arc<order::Items>,
    /// A FIFO queue (`.fifo`): each group's messages in hand run in the
    /// order received, and stop at the first not acked (see `order`).
    fifo: Option<Fifo>,
}

/// What a run on a FIFO queue keeps.
struct Fifo {
    groups: Arc<order::Groups>,
    /// Names this run's receives (`ReceiveRequestAttemptId`): a prefix
    /// unique to the run, and a count.
    attempt_prefix: String,
    attempts: std::sync::atomic::AtomicU64,
}

impl Fifo {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            groups: Arc::default(),
            attempt_prefix: format!("{:x}-{nanos:x}", std::process::id()),
            attempts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A new `ReceiveRequestAttemptId`.
    fn attempt(&self) -> String {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.attempt_prefix)
    }
}

/// Whether `queue_url` names a FIFO queue (SQS requires `.fifo` at the end
/// of their names).
fn is_fifo(queue_url: &str) -> bool {
    queue_url.trim_end_matches('/').ends_with(".fifo")
}

/// One message's receipt, settled at most once.
struct Receipt {
    message_id: String,
    handle: String,
    settled: AtomicBool,
    /// Gone from the queue for good: deleted (SQS confirmed it), or, under
    /// Lambda, to be answered as done. A FIFO group goes on only after it.
    done: AtomicBool,
}

impl Receipt {
    fn new(message_id: String, handle: String, settled: bool) -> Self {
        Self {
            message_id,
            handle,
            settled: AtomicBool::new(settled),
            done: AtomicBool::new(false),
        }
    }

    /// True for the one caller that settles it.
    fn settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }

    fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Records that the message is done (see `done`).
    fn mark_done(&self) {
        self.done.store(true, Ordering::Release);
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// An ack for the acker: delete `receipt`, then say how it went to whoever
/// waits ([`Change::ack`]; auto mode does not wait).
struct AckJob {
    receipt: Arc<Receipt>,
    done: Option<oneshot::Sender<Result<(), WatchError>>>,
    /// Sent at once, not held back for others to share the call: a FIFO
    /// group waits for it.
    urgent: bool,
}

impl Watcher {
    /// The counts so far (also while it runs, from another task).
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// This worker's id (the lock id of [`Change::lock`]).
    pub fn watcher_id(&self) -> &str {
        &self.shared.watcher_id
    }

    /// The visibility timeout in use.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility
    }
}

/// `first × 2^(n-1)`, capped at `max`.
fn backoff(first: Duration, max: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), s(300), 1), s(1));
        assert_eq!(backoff(s(1), s(300), 2), s(2));
        assert_eq!(backoff(s(1), s(300), 9), s(256));
        assert_eq!(backoff(s(1), s(300), 10), s(300));
        assert_eq!(backoff(s(1), s(300), u32::MAX), s(300));
        assert_eq!(backoff(s(1), s(300), 0), s(1));
    }

    #[test]
    fn fifo_queues_are_known_by_name() {
        assert!(is_fifo("https://sqs.us-east-1.amazonaws.com/1/orders.fifo"));
        assert!(is_fifo("http://127.0.0.1:5000/123/q.fifo/"));
        assert!(!is_fifo("https://sqs.us-east-1.amazonaws.com/1/orders"));
        assert!(!is_fifo("https://sqs.us-east-1.amazonaws.com/1/fifo"));
    }

    #[test]
    fn receive_attempt_ids_differ_and_are_what_sqs_accepts() {
        let fifo = Fifo::new();
        let (a, b) = (fifo.attempt(), fifo.attempt());
        assert_ne!(a, b);
        assert!(a.len() <= 128 && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }

    #[test]
    fn a_receipt_settles_once() {
        let r = Receipt::new("m".into(), "h".into(), false);
        assert!(!r.is_settled());
        assert!(r.settle());
        assert!(!r.settle());
        assert!(r.is_settled());
        assert!(!r.is_done(), "settled is not yet deleted");
        r.mark_done();
        assert!(r.is_done());
    }
}
