//! The same handler under AWS Lambda's SQS event source (feature `lambda`).
//!
//! ```no_run
//! use carthooks_watch::lambda::LambdaWatcher;
//! use carthooks_watch::{BoxError, Change};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), carthooks_watch::WatchError> {
//!     // CARTHOOKS_API_URL, CARTHOOKS_CLIENT_ID, CARTHOOKS_CLIENT_SECRET from
//!     // the function's configuration.
//!     let client = carthooks_reqwest::Client::builder()
//!         .from_env()
//!         .oauth(carthooks_client::OAuthConfig::from_env()?)
//!         .build()?;
//!     // Once per cold start; the client keeps and renews the token after.
//!     client.initialize_oauth(None).await?;
//!     LambdaWatcher::builder(client, 1, 2)
//!         .build()
//!         .run(|change: Change| async move {
//!             change.update(&serde_json::json!({"f_1010": "seen"})).await?;
//!             Ok::<(), BoxError>(())
//!         })
//!         .await
//! }
//! ```
//!
//! Lambda polls the queue and invokes the function with a batch of messages
//! (an [`SqsEvent`]); the function answers which of them failed (an
//! [`SqsBatchResponse`], for an event source mapping with
//! `ReportBatchItemFailures` on). Lambda deletes the others and leaves the
//! failed ones to come back after the queue's visibility timeout (and to its
//! redrive policy). So here, unlike in [`Watcher`](crate::Watcher), there is
//! no polling, heartbeat, ack batching or watch renewal: the event source
//! does the first three, and the watch must be registered and renewed by
//! something that runs on a schedule (`carthooks watch-data`, or a
//! [`Watcher`](crate::Watcher) elsewhere).
//!
//! What stays the same is the handler and what it gets: a [`Change`] with
//! its record helpers (`lock`, `update`, `unlock`, `client`), and how a batch
//! is worked through:
//!
//! - **Groups**: on a FIFO queue (an `eventSourceARN` ending in `.fifo`, or
//!   records with a `MessageGroupId`) a group is a `MessageGroupId`; on a
//!   standard queue, an item. Groups run in parallel, up to `concurrency`
//!   handlers at once (default 8); a group's messages one after another, in
//!   the batch's order. Changes of one item never run at once either way.
//! - **Stale changes**: a change whose `version` is not newer than the last
//!   one handled for its item (in this batch or an earlier one on this
//!   instance, as remembered by [`LambdaWatcherBuilder::item_memory`]) is
//!   done without calling the handler (`Stats::stale`);
//!   [`LambdaWatcherBuilder::skip_stale`] turns that off.
//! - **Failures**: a handler's `Err` or panic, a [`Change::nack`], a message
//!   that is not a change event, or (in [`AckMode::Manual`]) a message the
//!   handler did not [`Change::ack`]: its message id goes in
//!   `batchItemFailures`. A malformed message is never reported done. On a
//!   FIFO queue a failure also fails the rest of its group in the batch,
//!   unhandled, as Lambda requires (a later message must not overtake it);
//!   other groups go on. A record without a `messageId` that fails is
//!   reported with an empty id, which Lambda takes as the whole batch
//!   failing — the one answer that loses nothing.
//!
//! - **Telemetry** (feature `otel`): what the queue watcher emits — a
//!   `process {queue}` consumer span per message, linked to the producer's
//!   `traceparent` message attribute or `AWSTraceHeader`, the handler's
//!   client calls inside it, and the same metrics and outcome counts — the
//!   queue named by the event source's ARN (the first batch's).
//!
//! [`LambdaWatcher::handle`] works one batch and returns the answer (for a
//! runtime of your own, or a test); [`LambdaWatcher::run`] runs it under
//! `lambda_runtime`.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use carthooks_client::{AppId, CollectionId};
use futures_util::FutureExt;
use tokio::sync::Semaphore;

pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
/// The crates underneath, for a runtime or events of your own.
pub use {aws_lambda_events, lambda_runtime};

use crate::change::Origin;
use crate::order::{DEFAULT_ITEM_MEMORY, Items};
use crate::sqs::Received;
use crate::telemetry::Telemetry;
use crate::{
    AckMode, BoxError, Change, ChangeEvent, Client, Counters, Problem, ProblemHook, Receipt, Stats,
    WatchError,
};

/// Builds a [`LambdaWatcher`].
#[must_use]
pub struct LambdaWatcherBuilder {
    client: Client,
    app_id: AppId,
    collection_id: CollectionId,
    watcher_id: Option<String>,
    concurrency: usize,
    ack_mode: AckMode,
    item_memory: usize,
    skip_stale: bool,
    on_problem: Option<ProblemHook>,
    #[cfg(feature = "otel")]
    telemetry: crate::telemetry::Options,
}

impl std::fmt::Debug for LambdaWatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaWatcherBuilder")
            .field("app_id", &self.app_id)
            .field("collection_id", &self.collection_id)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl LambdaWatcherBuilder {
    /// Handlers running at once (default 8, at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Who settles messages (default [`AckMode::Auto`]: `Ok` is done, `Err`
    /// a failure).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// The lock id of [`Change::lock`] (default: the function's name,
    /// `AWS_LAMBDA_FUNCTION_NAME`, else `lambda`).
    pub fn watcher_id(mut self, id: impl Into<String>) -> Self {
        self.watcher_id = Some(id.into());
        self
    }

    /// Items whose last handled version is remembered across the batches of
    /// one instance (default 10,000, at least 1).
    pub fn item_memory(mut self, items: usize) -> Self {
        self.item_memory = items.max(1);
        self
    }

    /// Whether changes not newer than the last one handled for their item
    /// are skipped (default true).
    pub fn skip_stale(mut self, on: bool) -> Self {
        self.skip_stale = on;
        self
    }

    /// Called with each problem (a malformed message, a failed handler), as
    /// well as the `tracing` warning.
    pub fn on_problem(mut self, hook: impl Fn(&Problem) + Send + Sync + 'static) -> Self {
        self.on_problem = Some(Arc::new(hook));
        self
    }

    /// A span per message from `provider`'s tracer (scope `carthooks-watch`)
    /// instead of the global provider's (feature `otel`), as the queue
    /// watcher's.
    #[cfg(feature = "otel")]
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::trace::TracerProvider<Tracer = T>,
        T: opentelemetry::trace::Tracer<Span = S> + Send + Sync + 'static,
        S: opentelemetry::trace::Span + Send + Sync + 'static,
    {
        self.telemetry
            .set_tracer(provider, crate::telemetry::scope());
        self
    }

    /// The watcher's metrics on `provider` instead of the global one
    /// (feature `otel`).
    #[cfg(feature = "otel")]
    pub fn meter_provider(mut self, provider: &dyn opentelemetry::metrics::MeterProvider) -> Self {
        self.telemetry
            .set_meter(provider, crate::telemetry::scope());
        self
    }

    /// The watcher.
    pub fn build(self) -> LambdaWatcher {
        let watcher_id = self.watcher_id.unwrap_or_else(|| {
            std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "lambda".into())
        });
        LambdaWatcher {
            inner: Arc::new(Inner {
                client: self.client,
                app_id: self.app_id,
                collection_id: self.collection_id,
                watcher_id,
                concurrency: self.concurrency,
                ack_mode: self.ack_mode,
                items: Arc::new(Items::new(self.item_memory, self.skip_stale)),
                on_problem: self.on_problem,
                #[cfg(feature = "otel")]
                providers: std::sync::Mutex::new(Some(self.telemetry)),
                measures: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// Handles Lambda's SQS batches with a [`Watcher`](crate::Watcher)'s
/// handler; see the module docs.
#[derive(Clone)]
pub struct LambdaWatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LambdaWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaWatcher")
            .field("watcher_id", &self.inner.watcher_id)
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

/// What every change of a [`LambdaWatcher`] shares.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) app_id: AppId,
    pub(crate) collection_id: CollectionId,
    pub(crate) watcher_id: String,
    concurrency: usize,
    ack_mode: AckMode,
    pub(crate) items: Arc<Items>,
    on_problem: Option<ProblemHook>,
    /// The builder's providers, until the first batch names the queue.
    #[cfg(feature = "otel")]
    providers: std::sync::Mutex<Option<crate::telemetry::Options>>,
    /// Spans and metrics for the queue of the first batch, and the counts
    /// (each also a metric with `otel`).
    measures: std::sync::OnceLock<(Telemetry, Counters)>,
}

impl Inner {
    /// The spans, metrics and counts; made for `queue` the first time.
    fn measures(&self, queue: &str) -> &(Telemetry, Counters) {
        self.measures.get_or_init(|| {
            let telemetry = Telemetry {
                #[cfg(feature = "otel")]
                inner: Some(crate::telemetry::Instruments::new(
                    self.providers
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take()
                        .unwrap_or_default(),
                    &format!("/{queue}"),
                )),
            };
            #[cfg(not(feature = "otel"))]
            let _ = queue;
            let counters = Counters::new(&telemetry);
            (telemetry, counters)
        })
    }
}

/// One record of a batch, read.
struct Entry {
    message_id: Option<String>,
    receive_count: u32,
    event: Result<ChangeEvent, crate::Malformed>,
    /// What the telemetry reads of it (its body is in `event`).
    received: Received,
}

impl LambdaWatcher {
    /// A builder for changes of `app_id`'s `collection_id`, acted on with
    /// `client`.
    pub fn builder(
        client: Client,
        app_id: impl Into<AppId>,
        collection_id: impl Into<CollectionId>,
    ) -> LambdaWatcherBuilder {
        LambdaWatcherBuilder {
            client,
            app_id: app_id.into(),
            collection_id: collection_id.into(),
            watcher_id: None,
            concurrency: 8,
            ack_mode: AckMode::Auto,
            item_memory: DEFAULT_ITEM_MEMORY,
            skip_stale: true,
            on_problem: None,
            #[cfg(feature = "otel")]
            telemetry: Default::default(),
        }
    }

    /// The counts since it was built: `received`, `handled`, `failed`,
    /// `malformed`, `stale`; `acked` for the messages answered done and
    /// `nacked` for those answered failed.
    pub fn stats(&self) -> Stats {
        self.inner
            .measures
            .get()
            .map_or_else(Stats::default, |(_, counters)| counters.snapshot())
    }

    /// Works through one batch (see the module docs) and returns Lambda's
    /// answer: the ids of the messages that failed.
    pub async fn handle<F, Fut, E>(&self, event: SqsEvent, handler: &F) -> SqsBatchResponse
    where
        F: Fn(Change) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let records = event.records;
        // The queue's name: the event source's ARN ends with it.
        let queue = records
            .iter()
            .find_map(|r| r.event_source_arn.as_deref())
            .and_then(|arn| arn.rsplit(':').next())
            .unwrap_or("sqs");
        let measures = inner.measures(queue);
        let counters = &measures.1;
        Counters::bump(&counters.received, records.len() as u64);
        let fifo = records.iter().any(|r| {
            r.attributes.contains_key("MessageGroupId")
                || r.event_source_arn
                    .as_deref()
                    .is_some_and(|arn| arn.ends_with(".fifo"))
        });
        // Groups in the order they first appear, each in the batch's order.
        let mut groups: Vec<Vec<Entry>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (n, record) in records.into_iter().enumerate() {
            let event = ChangeEvent::parse(record.body.as_deref().unwrap_or_default());
            let key = if fifo {
                record.attributes.get("MessageGroupId").cloned()
            } else {
                event.as_ref().ok().map(|e| format!("item {}", e.item_id()))
            }
            // No group to keep: a group of its own.
            .unwrap_or_else(|| format!("record {n}"));
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let entry = Entry {
                received: received(&record, receive_count),
                receive_count,
                message_id: record.message_id,
                event,
            };
            match index.get(&key) {
                Some(&at) => groups[at].push(entry),
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![entry]);
                }
            }
        }
        let slots = Semaphore::new(inner.concurrency);
        let outcomes = futures_util::future::join_all(
            groups
                .into_iter()
                .map(|group| self.group(group, fifo, &slots, measures, handler)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for failed in outcomes.into_iter().flatten() {
            Counters::bump(&counters.nacked, 1);
            response.add_failure(failed.unwrap_or_default());
        }
        response
    }

    /// One group's messages in order; returns the ids of those that failed.
    async fn group<F, Fut, E>(
        &self,
        group: Vec<Entry>,
        fifo: bool,
        slots: &Semaphore,
        measures: &(Telemetry, Counters),
        handler: &F,
    ) -> Vec<Option<String>>
    where
        F: Fn(Change) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let mut failed = Vec::new();
        let mut stopped = false;
        for entry in group {
            let message_id = entry.message_id.clone();
            // On a FIFO queue nothing after a failure runs: it fails too.
            let done = !stopped && self.one(entry, slots, measures, handler).await;
            if done {
                Counters::bump(&measures.1.acked, 1);
            } else {
                stopped = fifo;
                failed.push(message_id);
            }
        }
        failed
    }

    /// One message; true if it is done (handled, or stale).
    async fn one<F, Fut, E>(
        &self,
        entry: Entry,
        slots: &Semaphore,
        (telemetry, counters): &(Telemetry, Counters),
        handler: &F,
    ) -> bool
    where
        F: Fn(Change) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let mut scope = telemetry.message(&entry.received);
        let message_id = entry.message_id.unwrap_or_default();
        let event = match entry.event {
            Ok(event) => event,
            Err(reason) => {
                // A failure: it comes back until the redrive policy moves it.
                Counters::bump(&counters.malformed, 1);
                scope.malformed();
                crate::report(
                    inner.on_problem.as_ref(),
                    Problem::Malformed { message_id, reason },
                );
                return false;
            }
        };
        scope.parsed(&event);
        let (item_id, version) = (event.item_id(), event.revision());
        let _held = inner.items.hold(item_id).await;
        if inner.items.is_stale(item_id, version) {
            Counters::bump(&counters.stale, 1);
            return true;
        }
        let Ok(_slot) = slots.acquire().await else {
            return false;
        };
        let receipt = Arc::new(Receipt::new(message_id.clone(), String::new(), false));
        let change = Change {
            event: Arc::new(event),
            receipt: Arc::clone(&receipt),
            receive_count: entry.receive_count,
            origin: Origin::Lambda(Arc::clone(inner)),
        };
        // A panic, in the call or the future, is this message's failure.
        let started = std::time::Instant::now();
        let result = match scope
            .run(AssertUnwindSafe(async { handler(change).await }).catch_unwind())
            .await
        {
            Ok(result) => result.map_err(|e| e.into().to_string()),
            Err(_) => Err("panicked".to_owned()),
        };
        scope.handled(result.is_ok(), started.elapsed());
        match result {
            Ok(()) => {
                Counters::bump(&counters.handled, 1);
                if inner.ack_mode == AckMode::Auto && receipt.settle() {
                    receipt.mark_done();
                    inner.items.handled(item_id, version);
                }
            }
            Err(error) => {
                Counters::bump(&counters.failed, 1);
                crate::report(
                    inner.on_problem.as_ref(),
                    Problem::HandlerFailed {
                        message_id,
                        item_id,
                        error,
                    },
                );
            }
        }
        receipt.is_done()
    }

    /// Runs under the Lambda runtime (`lambda_runtime`): each invocation's
    /// batch through [`handle`](Self::handle), its answer sent back; returns
    /// only if the runtime stops. Outside Lambda (its environment variables
    /// missing) it fails at once with [`WatchError::Config`].
    pub async fn run<F, Fut, E>(self, handler: F) -> Result<(), WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        check_environment(|name| std::env::var(name).ok())?;
        let handler = Arc::new(handler);
        let service =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
                let (watcher, handler) = (self.clone(), Arc::clone(&handler));
                async move {
                    Ok::<_, lambda_runtime::Error>(
                        watcher.handle(event.payload, handler.as_ref()).await,
                    )
                }
            });
        lambda_runtime::run(service)
            .await
            .map_err(|e| WatchError::Lambda(e.to_string()))
    }
}

/// What the telemetry reads of a record: its ids, receive count, when SQS
/// got it, and the producer's trace context (`traceparent` / `tracestate`
/// message attributes, X-Ray's `AWSTraceHeader`).
fn received(record: &SqsMessage, receive_count: u32) -> Received {
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    };
    Received {
        message_id: record.message_id.clone().unwrap_or_default(),
        receipt_handle: String::new(),
        body: String::new(),
        receive_count,
        received_at: tokio::time::Instant::now(),
        sent_at: record
            .attributes
            .get("SentTimestamp")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
        traceparent: attribute("traceparent"),
        tracestate: attribute("tracestate"),
        aws_trace_header: record.attributes.get("AWSTraceHeader").cloned(),
        group_id: record.attributes.get("MessageGroupId").cloned(),
    }
}

/// What `lambda_runtime` reads from the environment (and would panic
/// without), checked first.
fn check_environment(var: impl Fn(&str) -> Option<String>) -> Result<(), WatchError> {
    let present = |name: &str| {
        var(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            WatchError::Config(format!("not running under AWS Lambda: {name} is not set"))
        })
    };
    let api = present("AWS_LAMBDA_RUNTIME_API")?;
    if http::Uri::try_from(api.as_str()).map_or(true, |uri| uri.authority().is_none()) {
        return Err(WatchError::Config(
            "AWS_LAMBDA_RUNTIME_API is not a host:port".into(),
        ));
    }
    present("AWS_LAMBDA_FUNCTION_NAME")?;
    present("AWS_LAMBDA_FUNCTION_VERSION")?;
    if present("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?
        .parse::<i32>()
        .is_err()
    {
        return Err(WatchError::Config(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_lambda_the_environment_is_refused_not_a_panic() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let err = check_environment(env(&[])).unwrap_err().to_string();
        assert!(err.contains("AWS_LAMBDA_RUNTIME_API is not set"), "{err}");
        let full: &[(&str, &str)] = &[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ];
        assert!(check_environment(env(full)).is_ok());
        let bad_memory: &[(&str, &str)] = &[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
        ];
        assert!(check_environment(env(bad_memory)).is_err());
        let bad_api: &[(&str, &str)] = &[("AWS_LAMBDA_RUNTIME_API", "not a host")];
        assert!(check_environment(env(bad_api)).is_err());
    }
}
