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
//! 4. **Handles** each message in its own task: parses it into a
//!    [`ChangeEvent`] (malformed ones — not JSON, no `payload.id` — are reported
//!    and left in the queue for its redrive policy, never deleted), then calls
//!    your handler with a [`Change`]. While the handler runs, a heartbeat extends
//!    the message's visibility every half visibility timeout.
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
//! long poll cut short by shutdown, SQS itself), so handlers must be
//! idempotent; [`Change::receive_count`] says when a message is a redelivery.
//! Nothing is printed: events go to `tracing` and to [`WatcherBuilder::on_problem`].
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

mod event;
mod sqs;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use carthooks_client::{
    ApiResponse, AppId, CollectionId, ItemId, ItemLock, LockOptions, WatchDataRequest,
};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

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
    /// Messages released at shutdown (visibility 0).
    pub released: u64,
    /// Messages that were not change events.
    pub malformed: u64,
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

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    released: AtomicU64,
    malformed: AtomicU64,
    extended: AtomicU64,
    registrations: AtomicU64,
    renewal_failures: AtomicU64,
    receive_failures: AtomicU64,
    settle_failures: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            received: get(&self.received),
            handled: get(&self.handled),
            failed: get(&self.failed),
            acked: get(&self.acked),
            nacked: get(&self.nacked),
            released: get(&self.released),
            malformed: get(&self.malformed),
            extended: get(&self.extended),
            registrations: get(&self.registrations),
            renewal_failures: get(&self.renewal_failures),
            receive_failures: get(&self.receive_failures),
            settle_failures: get(&self.settle_failures),
        }
    }
}

type ProblemHook = Arc<dyn Fn(&Problem) + Send + Sync>;

/// Builds a [`Watcher`]; see the crate docs for what each setting does.
#[must_use]
pub struct WatcherBuilder {
    client: Client,
    queue_url: String,
    app_id: AppId,
    collection_id: CollectionId,
    filters: Option<serde_json::Value>,
    watch_name: Option<String>,
    age: Duration,
    renewal_interval: Duration,
    watcher_id: Option<String>,
    concurrency: usize,
    batch_size: i32,
    long_poll: Duration,
    visibility_timeout: Option<Duration>,
    ack_mode: AckMode,
    nack_backoff: (Duration, Duration),
    shutdown_grace: Duration,
    sqs: Option<aws_sdk_sqs::Client>,
    on_problem: Option<ProblemHook>,
}

impl std::fmt::Debug for WatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherBuilder")
            .field("queue_url", &self.queue_url)
            .field("app_id", &self.app_id)
            .field("collection_id", &self.collection_id)
            .field("concurrency", &self.concurrency)
            .field("ack_mode", &self.ack_mode)
            .finish_non_exhaustive()
    }
}

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

impl WatcherBuilder {
    /// Only changes of items matching these filters, in the Python SDK's form
    /// (`{"f_1009": {"$eq": 1}}`), passed through to `start_watch_data`.
    pub fn filters(mut self, filters: serde_json::Value) -> Self {
        self.filters = Some(filters);
        self
    }

    /// The watch's name (default `watch-{app}-{collection}`); registering the
    /// same name again renews it.
    pub fn watch_name(mut self, name: impl Into<String>) -> Self {
        self.watch_name = Some(name.into());
        self
    }

    /// How long a registration lives (default 5 days, whole seconds).
    pub fn age(mut self, age: Duration) -> Self {
        self.age = age;
        self
    }

    /// How often the watch is registered again (default 1 hour); must be
    /// shorter than the age.
    pub fn renewal_interval(mut self, interval: Duration) -> Self {
        self.renewal_interval = interval;
        self
    }

    /// This worker's id, the `lock_id` of [`Change::lock`] (default: the host
    /// name, as in the Python SDK).
    pub fn watcher_id(mut self, id: impl Into<String>) -> Self {
        self.watcher_id = Some(id.into());
        self
    }

    /// Handlers running at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Most messages asked for per poll, 1 to 10 (default 10).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = i32::try_from(n).unwrap_or(i32::MAX);
        self
    }

    /// How long a poll waits for messages, up to 20 s (default 20 s).
    pub fn long_poll(mut self, wait: Duration) -> Self {
        self.long_poll = wait;
        self
    }

    /// Visibility timeout asked for on receive (whole seconds, 1 s to 12 h);
    /// default: the queue's own.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self
    }

    /// Who settles messages (default [`AckMode::Auto`]).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Auto mode's nack delay: `first` on the first receive, doubling with
    /// each redelivery, never above `max` (defaults 1 s and 5 min).
    pub fn nack_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.nack_backoff = (first, max);
        self
    }

    /// How long handlers in hand may finish after a shutdown signal before
    /// their messages are released (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The SQS client to use; default [`sqs_client_from_env`].
    pub fn sqs_client(mut self, sqs: aws_sdk_sqs::Client) -> Self {
        self.sqs = Some(sqs);
        self
    }

    /// Called for every [`Problem`] (on the watcher's tasks: keep it quick).
    pub fn on_problem(mut self, hook: impl Fn(&Problem) + Send + Sync + 'static) -> Self {
        self.on_problem = Some(Arc::new(hook));
        self
    }

    /// Checks the settings, makes the SQS client if none was given, and checks
    /// that the queue exists (reading its visibility timeout if none was set).
    /// Registers nothing yet: [`Watcher::run`] does.
    pub async fn build(self) -> Result<Watcher, WatchError> {
        let config = |m: String| Err(WatchError::Config(m));
        if self.concurrency == 0 {
            return config("concurrency must be at least 1".into());
        }
        if !(1..=SQS_BATCH as i32).contains(&self.batch_size) {
            return config("batch_size must be 1 to 10".into());
        }
        if self.long_poll > MAX_LONG_POLL {
            return config("long_poll must be at most 20 s".into());
        }
        if self.age.as_secs() == 0 {
            return config("age must be at least 1 s".into());
        }
        if self.renewal_interval.is_zero() || self.renewal_interval >= self.age {
            return config("renewal_interval must be above zero and shorter than age".into());
        }
        if self
            .visibility_timeout
            .is_some_and(|v| v < Duration::from_secs(1) || v > MAX_VISIBILITY)
        {
            return config("visibility_timeout must be 1 s to 12 h".into());
        }
        if self.nack_backoff.0 > self.nack_backoff.1 || self.nack_backoff.1 > MAX_VISIBILITY {
            return config("nack_backoff: first ≤ max ≤ 12 h".into());
        }
        if self.queue_url.is_empty() {
            return config("the queue URL is empty".into());
        }
        let sqs = match self.sqs {
            Some(sqs) => sqs,
            None => sqs_client_from_env().await,
        };
        let queue_visibility = sqs::queue_visibility(&sqs, &self.queue_url).await?;
        let visibility = self
            .visibility_timeout
            .unwrap_or(queue_visibility)
            .max(Duration::from_secs(1));
        let watcher_id = self.watcher_id.unwrap_or_else(host_name);
        let watch_name = self
            .watch_name
            .unwrap_or_else(|| format!("watch-{}-{}", self.app_id, self.collection_id));
        let mut registration = WatchDataRequest::new(
            self.queue_url.clone(),
            watch_name,
            self.app_id.get(),
            self.collection_id.get(),
        );
        registration.age = self.age.as_secs();
        registration.filters = self.filters;
        Ok(Watcher {
            shared: Arc::new(Shared {
                client: self.client,
                sqs,
                queue_url: self.queue_url,
                app_id: self.app_id,
                collection_id: self.collection_id,
                watcher_id,
                counters: Counters::default(),
                on_problem: self.on_problem,
            }),
            registration,
            renewal_interval: self.renewal_interval,
            concurrency: self.concurrency,
            batch_size: self.batch_size,
            long_poll: self.long_poll,
            visibility,
            ack_mode: self.ack_mode,
            nack_backoff: self.nack_backoff,
            shutdown_grace: self.shutdown_grace,
        })
    }
}

/// The machine's host name (`HOSTNAME`, then `/etc/hostname`), or `watcher`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "watcher".to_owned())
}

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
        if let Some(hook) = &self.on_problem {
            hook(&problem);
        }
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
}

/// One message's receipt, settled at most once.
struct Receipt {
    message_id: String,
    handle: String,
    settled: AtomicBool,
}

impl Receipt {
    /// True for the one caller that settles it.
    fn settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }

    fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }
}

/// An ack for the acker: delete `receipt`, then say how it went to whoever
/// waits ([`Change::ack`]; auto mode does not wait).
struct AckJob {
    receipt: Arc<Receipt>,
    done: Option<oneshot::Sender<Result<(), WatchError>>>,
}

impl Watcher {
    /// Starts building a watcher of `app_id`/`collection_id` whose changes go
    /// to `queue_url`.
    pub fn builder(
        client: Client,
        queue_url: impl Into<String>,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
    ) -> WatcherBuilder {
        WatcherBuilder {
            client,
            queue_url: queue_url.into(),
            app_id: app_id.into(),
            collection_id: collection_id.into(),
            filters: None,
            watch_name: None,
            age: Duration::from_secs(WatchDataRequest::DEFAULT_AGE),
            renewal_interval: Duration::from_secs(3600),
            watcher_id: None,
            concurrency: 8,
            batch_size: SQS_BATCH as i32,
            long_poll: MAX_LONG_POLL,
            visibility_timeout: None,
            ack_mode: AckMode::Auto,
            nack_backoff: (Duration::from_secs(1), Duration::from_secs(300)),
            shutdown_grace: Duration::from_secs(30),
            sqs: None,
            on_problem: None,
        }
    }

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

    /// Runs until Ctrl-C or (on Unix) SIGTERM; see [`run_until`](Self::run_until).
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<Stats, WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.run_until(handler, shutdown_signal()).await
    }

    /// Registers the watch, then receives and handles changes until `shutdown`
    /// completes; then drains (see the crate docs) and returns the counts.
    /// Fails at once if the registration fails, and later only if the queue
    /// disappears; every other failure is retried and reported.
    pub async fn run_until<F, Fut, E>(
        &self,
        handler: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stats, WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let shared = &self.shared;
        shared
            .client
            .start_watch_data(&self.registration)
            .await
            .map_err(WatchError::Register)?;
        Counters::bump(&shared.counters.registrations, 1);
        tracing::info!(watch = %self.registration.name, "watch registered");

        let (phase_tx, phase) = watch::channel(Phase::Running);
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let run = Arc::new(Run {
            shared: Arc::clone(shared),
            handler_slots: Arc::new(Semaphore::new(self.concurrency)),
            acks,
            visibility: self.visibility,
            ack_mode: self.ack_mode,
            nack_backoff: self.nack_backoff,
            phase: phase.clone(),
            polls: watch::Sender::new(0),
            long_poll: self.long_poll,
            handover: std::sync::Mutex::new(()),
        });
        let acker = tokio::spawn(acker(
            Arc::clone(shared),
            ack_rx,
            phase,
            self.in_hand().min(SQS_BATCH),
        ));
        let renewal = tokio::spawn(renew(
            Arc::clone(shared),
            self.registration.clone(),
            self.renewal_interval,
        ));
        let handler = Arc::new(handler);
        let mut handlers = JoinSet::new();
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
        let outcome = {
            let receiving = self.receive(&run, &handler, &mut handlers, &inbox_tx, &mut inbox);
            tokio::pin!(receiving);
            tokio::pin!(shutdown);
            tokio::select! {
                outcome = &mut receiving => outcome,
                () = &mut shutdown => Ok(()),
            }
        };
        // Drain: no more receives; handlers in hand get the grace period. A
        // poll task still out releases what it brings from now on.
        {
            let _handover = run
                .handover
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = phase_tx.send(Phase::Draining);
        }
        // Handed over just before, never turned into message tasks.
        let mut unheld = Vec::new();
        while let Ok(received) = inbox.try_recv() {
            unheld.extend(received.unwrap_or_default());
        }
        if !unheld.is_empty() {
            run.quiet().await;
            release_received(&run, unheld).await;
        }
        renewal.abort();
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while handlers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Grace over: every handler still running releases its message.
            let _ = phase_tx.send(Phase::Releasing);
            while handlers.join_next().await.is_some() {}
        }
        // A `Change` kept by the handler past its return keeps `run` alive:
        // the acker stops on the phase, not when the last sender is gone.
        let _ = phase_tx.send(Phase::Closed);
        drop(run);
        let _ = acker.await;
        tracing::info!(stats = ?self.stats(), "watcher stopped");
        outcome.map(|()| self.stats())
    }

    /// Most messages in hand: those being handled, and one batch received
    /// ahead, waiting for a handler (their visibility is kept too).
    fn in_hand(&self) -> usize {
        self.concurrency + self.batch_size as usize
    }

    /// The receive loop: waits for room in hand, then asks for as many
    /// messages as there is room for (a batch at most); each message goes to
    /// its own task, which waits for a handler slot.
    async fn receive<F, Fut, E>(
        &self,
        run: &Arc<Run>,
        handler: &Arc<F>,
        handlers: &mut JoinSet<()>,
        inbox_tx: &mpsc::UnboundedSender<Result<Vec<sqs::Received>, WatchError>>,
        inbox: &mut mpsc::UnboundedReceiver<Result<Vec<sqs::Received>, WatchError>>,
    ) -> Result<(), WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let room = Arc::new(Semaphore::new(self.in_hand()));
        let batch = self.batch_size as usize;
        let mut failures = 0u32;
        loop {
            // Reap finished handler tasks as we go.
            while handlers.try_join_next().is_some() {}
            // Room for one at least, for a batch at most.
            let Ok(mut permits) = Arc::clone(&room).acquire_owned().await else {
                return Ok(());
            };
            while permits.num_permits() < batch {
                match Arc::clone(&room).try_acquire_owned() {
                    Ok(more) => permits.merge(more),
                    Err(_) => break,
                }
            }
            run.polls.send_modify(|n| *n += 1);
            tokio::spawn(poll(
                Arc::clone(run),
                permits.num_permits() as i32,
                self.long_poll,
                inbox_tx.clone(),
            ));
            let Some(received) = inbox.recv().await else {
                return Ok(());
            };
            let messages = match received {
                Ok(messages) => {
                    failures = 0;
                    messages
                }
                Err(WatchError::QueueNotFound) => return Err(WatchError::QueueNotFound),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    Counters::bump(&self.shared.counters.receive_failures, 1);
                    self.shared.report(Problem::ReceiveFailed {
                        error: e.to_string(),
                    });
                    let delay = backoff(
                        Duration::from_millis(100),
                        Duration::from_secs(10),
                        failures,
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            Counters::bump(&self.shared.counters.received, messages.len() as u64);
            for message in messages {
                // One place in hand per message; what is not used is freed
                // when `permits` drops.
                let Some(permit) = permits.split(1) else {
                    break;
                };
                let run = Arc::clone(run);
                let handler = Arc::clone(handler);
                handlers.spawn(async move {
                    process(run, message, handler.as_ref()).await;
                    drop(permit);
                });
            }
        }
    }
}

/// `first × 2^(n-1)`, capped at `max`.
fn backoff(first: Duration, max: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(max)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One message: parse, hand to the handler under a visibility heartbeat, settle.
async fn process<F, Fut, E>(run: Arc<Run>, message: sqs::Received, handler: &F)
where
    F: Fn(Change) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let shared = &run.shared;
    let event = match ChangeEvent::parse(&message.body) {
        Ok(event) => event,
        Err(reason) => {
            // Left alone: it comes back after the visibility timeout until the
            // queue's redrive policy moves it to the dead-letter queue.
            Counters::bump(&shared.counters.malformed, 1);
            shared.report(Problem::Malformed {
                message_id: message.message_id,
                reason,
            });
            return;
        }
    };
    let receipt = Arc::new(Receipt {
        message_id: message.message_id,
        handle: message.receipt_handle,
        settled: AtomicBool::new(false),
    });
    let change = Change {
        event: Arc::new(event),
        receipt: Arc::clone(&receipt),
        receive_count: message.receive_count,
        run: Arc::clone(&run),
    };
    let item_id = change.event.item_id();
    let receive_count = message.receive_count;
    let guard = PanicGuard {
        run: &run,
        receipt: &receipt,
        receive_count,
        item_id,
    };
    let work = async {
        // Received ahead: wait for a handler slot, unless the watcher stops.
        let mut phase = run.phase.clone();
        let slot = tokio::select! {
            slot = Arc::clone(&run.handler_slots).acquire_owned() => slot.ok(),
            _ = phase.wait_for(|p| *p != Phase::Running) => None,
        };
        let Some(_slot) = slot else {
            return Work::Unstarted;
        };
        let result = handler(change).await.map_err(Into::into);
        match &result {
            Ok(()) => Counters::bump(&shared.counters.handled, 1),
            Err(error) => {
                Counters::bump(&shared.counters.failed, 1);
                shared.report(Problem::HandlerFailed {
                    message_id: receipt.message_id.clone(),
                    item_id,
                    error: error.to_string(),
                });
            }
        }
        if run.ack_mode == AckMode::Auto {
            match result {
                Ok(()) => queue_ack(&run, &receipt),
                Err(_) => {
                    let _ = nack(&run, &receipt, run.nack_delay(receive_count)).await;
                }
            }
        }
        Work::Done
    };
    heartbeat(&run, &receipt, message.received_at, work).await;
    std::mem::forget(guard);
}

/// Nacks the message of a handler that panicked (the task unwinds through it).
struct PanicGuard<'a> {
    run: &'a Arc<Run>,
    receipt: &'a Arc<Receipt>,
    receive_count: u32,
    item_id: ItemId,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.receipt.is_settled() {
            return;
        }
        let shared = &self.run.shared;
        Counters::bump(&shared.counters.failed, 1);
        shared.report(Problem::HandlerFailed {
            message_id: self.receipt.message_id.clone(),
            item_id: self.item_id,
            error: "panicked".into(),
        });
        if self.run.ack_mode == AckMode::Auto {
            let (run, receipt) = (Arc::clone(self.run), Arc::clone(self.receipt));
            let delay = run.nack_delay(self.receive_count);
            tokio::spawn(async move {
                let _ = nack(&run, &receipt, delay).await;
            });
        }
    }
}

impl Run {
    fn nack_delay(&self, receive_count: u32) -> Duration {
        let (first, max) = self.nack_backoff;
        backoff(first, max, receive_count.max(1))
    }
}

/// Runs `work` while extending the message's visibility every half timeout
/// (counted from when it was received); when the shutdown grace runs out,
/// drops `work` and releases the message.
async fn heartbeat(
    run: &Arc<Run>,
    receipt: &Arc<Receipt>,
    received_at: Instant,
    work: impl Future<Output = Work>,
) {
    let shared = &run.shared;
    let period = run.visibility / 2;
    let mut next = received_at + period;
    let mut phase = run.phase.clone();
    let unstarted = tokio::sync::Notify::new();
    // The one release of this message: when the grace is over or the work
    // ended unstarted. One future for the whole loop, so that its wait for a
    // receive still out (in `release`) goes on across extensions, and a
    // release under way is never dropped halfway.
    let releasing = async {
        let over = async { phase.wait_for(|p| *p >= Phase::Releasing).await.is_ok() };
        let release_now = tokio::select! {
            over = over => over,
            () = unstarted.notified() => true,
        };
        if !release_now {
            // The run is gone without a release (it cannot be): nothing to do.
            return std::future::pending::<()>().await;
        }
        release(run, receipt).await;
    };
    tokio::pin!(work);
    tokio::pin!(releasing);
    let mut working = true;
    loop {
        tokio::select! {
            done = &mut work, if working => match done {
                Work::Done => return,
                Work::Unstarted => {
                    working = false;
                    unstarted.notify_one();
                }
            },
            () = &mut releasing => return,
            () = tokio::time::sleep_until(next) => {
                next += period;
                if receipt.is_settled() {
                    continue;
                }
                let _ = set_visibility(run, receipt, run.visibility, &shared.counters.extended).await;
            }
        }
    }
}

/// How a message's work ended.
enum Work {
    /// Handled (and settled, or left to the handler).
    Done,
    /// Never handed to a handler: the watcher stops. The heartbeat releases it.
    Unstarted,
}

/// One `ReceiveMessage`, in a task of its own so that stopping the receiver
/// never abandons it: while the run is `Running` it hands the answer to the
/// receiver, after that it releases what it brought itself. Either way it is
/// no longer counted in `polls` once done.
async fn poll(
    run: Arc<Run>,
    max: i32,
    wait: Duration,
    inbox: mpsc::UnboundedSender<Result<Vec<sqs::Received>, WatchError>>,
) {
    let shared = &run.shared;
    let received = sqs::receive(&shared.sqs, &shared.queue_url, max, wait, run.visibility).await;
    let late = {
        let _handover = run
            .handover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *run.phase.borrow() == Phase::Running {
            // The receiver waits for exactly this answer.
            inbox.send(received).err().map(|e| e.0)
        } else {
            Some(received)
        }
    };
    if let Some(Ok(messages)) = late {
        release_received(&run, messages).await;
    }
    run.polls.send_modify(|n| *n -= 1);
}

/// Releases messages received after the receiver stopped (no task holds
/// them), counting them as received and released.
async fn release_received(run: &Run, messages: Vec<sqs::Received>) {
    Counters::bump(&run.shared.counters.received, messages.len() as u64);
    for message in messages {
        let receipt = Receipt {
            message_id: message.message_id,
            handle: message.receipt_handle,
            settled: AtomicBool::new(true),
        };
        let _ = set_visibility(run, &receipt, Duration::ZERO, &run.shared.counters.released).await;
    }
}

impl Run {
    /// Until no receive of this run is out at SQS: one answered there after
    /// its caller stopped would take a message made visible meanwhile. A
    /// receive SQS leaves unanswered past its long poll (and a margin) is
    /// waited for no longer.
    async fn quiet(&self) {
        let mut polls = self.polls.subscribe();
        let _ =
            tokio::time::timeout(self.long_poll + QUIET_MARGIN, polls.wait_for(|n| *n == 0)).await;
    }
}

/// Makes an unsettled message visible again at once (shutdown), so that
/// another worker takes it without waiting out its visibility timeout —
/// once no receive of this run is out to take it back. Until then it stays
/// unsettled, so the heartbeat keeps it hidden.
async fn release(run: &Run, receipt: &Receipt) {
    run.quiet().await;
    if receipt.settle() {
        let _ = set_visibility(run, receipt, Duration::ZERO, &run.shared.counters.released).await;
    }
}

/// Sets a message's visibility timeout; counts the success in `done`, or
/// counts and reports the failure.
async fn set_visibility(
    run: &Run,
    receipt: &Receipt,
    timeout: Duration,
    done: &AtomicU64,
) -> Result<(), WatchError> {
    let shared = &run.shared;
    let result =
        sqs::change_visibility(&shared.sqs, &shared.queue_url, &receipt.handle, timeout).await;
    match &result {
        Ok(()) => Counters::bump(done, 1),
        Err(e) => shared.settle_failed(&receipt.message_id, "ChangeMessageVisibility", e),
    }
    result
}

/// Queues an ack for the acker and waits until SQS deleted the message.
async fn ack(run: &Run, receipt: &Arc<Receipt>) -> Result<(), WatchError> {
    if !receipt.settle() {
        return Err(WatchError::AlreadySettled);
    }
    let (done, result) = oneshot::channel();
    run.acks
        .send(AckJob {
            receipt: Arc::clone(receipt),
            done: Some(done),
        })
        .map_err(|_| WatchError::Stopped)?;
    result.await.unwrap_or(Err(WatchError::Stopped))
}

/// Queues an ack without waiting for it (auto mode): the handler's slot is
/// free at once, and the acker reports a failure itself. The message stays
/// hidden meanwhile: the acker sends within [`ACK_LINGER`], and the heartbeat
/// left at least half a visibility timeout.
fn queue_ack(run: &Run, receipt: &Arc<Receipt>) {
    if receipt.settle() {
        let _ = run.acks.send(AckJob {
            receipt: Arc::clone(receipt),
            done: None,
        });
    }
}

/// Makes the message visible again after `delay`.
async fn nack(run: &Run, receipt: &Receipt, delay: Duration) -> Result<(), WatchError> {
    if !receipt.settle() {
        return Err(WatchError::AlreadySettled);
    }
    set_visibility(
        run,
        receipt,
        delay.min(MAX_VISIBILITY),
        &run.shared.counters.nacked,
    )
    .await
}

/// Collects acks into `DeleteMessageBatch` calls, each sent once it holds
/// `flush_at` acks (10, or fewer when fewer can be in hand) or after at most
/// [`ACK_LINGER`]; up to 4 batches in flight. When the run is closed it sends
/// what it holds and stops; an ack asked for later fails with
/// [`WatchError::Stopped`].
async fn acker(
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<AckJob>,
    mut phase: watch::Receiver<Phase>,
    flush_at: usize,
) {
    let in_flight = Arc::new(Semaphore::new(4));
    let mut sends = JoinSet::new();
    let mut send = |batch: Vec<AckJob>, permit| {
        let shared = Arc::clone(&shared);
        sends.spawn(async move {
            delete_batch(&shared, batch).await;
            drop(permit);
        });
    };
    loop {
        let first = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = phase.wait_for(|p| *p == Phase::Closed) => break,
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + ACK_LINGER;
        while batch.len() < flush_at {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        send(batch, permit);
    }
    // Closed: what is queued goes out; later acks find the channel closed.
    jobs.close();
    let mut rest = Vec::new();
    while let Ok(job) = jobs.try_recv() {
        rest.push(job);
    }
    while !rest.is_empty() {
        let batch: Vec<AckJob> = rest.drain(..rest.len().min(SQS_BATCH)).collect();
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        send(batch, permit);
    }
    while sends.join_next().await.is_some() {}
}

/// One `DeleteMessageBatch`; entries that failed are retried once on their own
/// batch, then reported.
async fn delete_batch(shared: &Shared, batch: Vec<AckJob>) {
    let mut pending = batch;
    for attempt in 0..2 {
        let handles: Vec<&str> = pending.iter().map(|j| j.receipt.handle.as_str()).collect();
        let outcome = sqs::delete_batch(&shared.sqs, &shared.queue_url, &handles).await;
        let mut retry = Vec::new();
        for (job, result) in pending.into_iter().zip(outcome) {
            match result {
                Ok(()) => {
                    Counters::bump(&shared.counters.acked, 1);
                    if let Some(done) = job.done {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "ack failed; retrying once");
                    retry.push(job);
                }
                Err(e) => {
                    shared.settle_failed(&job.receipt.message_id, "DeleteMessageBatch", &e);
                    if let Some(done) = job.done {
                        let _ = done.send(Err(e));
                    }
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        pending = retry;
    }
}

/// Registers the watch again every `interval`; a failure is retried with a
/// backoff from 1 s up to a tenth of the age (at most 60 s).
async fn renew(shared: Arc<Shared>, registration: WatchDataRequest, interval: Duration) {
    let cap = Duration::from_secs((registration.age / 10).clamp(1, 60));
    loop {
        tokio::time::sleep(interval).await;
        let mut attempt = 0u32;
        loop {
            match shared.client.start_watch_data(&registration).await {
                Ok(_) => {
                    Counters::bump(&shared.counters.registrations, 1);
                    tracing::debug!(watch = %registration.name, "watch renewed");
                    break;
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    Counters::bump(&shared.counters.renewal_failures, 1);
                    let retry_in = backoff(Duration::from_secs(1), cap, attempt);
                    shared.report(Problem::RenewalFailed {
                        attempt,
                        error: e.to_string(),
                        retry_in,
                    });
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
    }
}

/// One received change, handed to your handler: the event, and what you can
/// do with it.
pub struct Change {
    event: Arc<ChangeEvent>,
    receipt: Arc<Receipt>,
    receive_count: u32,
    run: Arc<Run>,
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
        ack(&self.run, &self.receipt).await
    }

    /// Makes the message visible again after `delay` (0 to 12 h).
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
    fn a_receipt_settles_once() {
        let r = Receipt {
            message_id: "m".into(),
            handle: "h".into(),
            settled: AtomicBool::new(false),
        };
        assert!(r.settle());
        assert!(!r.settle());
        assert!(r.is_settled());
    }
}
