//! Building a watcher: its settings, checked once, and the queue checked to exist.

use std::sync::Arc;
use std::time::Duration;

use carthooks_client::{AppId, CollectionId, WatchDataRequest};

use crate::telemetry::Telemetry;
use crate::{
    AckMode, Client, Counters, MAX_LONG_POLL, MAX_VISIBILITY, Problem, ProblemHook, SQS_BATCH,
    Shared, WatchError, Watcher, sqs, sqs_client_from_env,
};

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
    item_memory: usize,
    skip_stale: bool,
    pollers: usize,
    sqs: Option<aws_sdk_sqs::Client>,
    on_problem: Option<ProblemHook>,
    #[cfg(feature = "otel")]
    telemetry: crate::telemetry::Options,
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

    /// This worker's id, the `lock_id` of [`Change::lock`](crate::Change::lock) (default: the host
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

    /// `ReceiveMessage` calls out at once (default 1, at least 1), each for
    /// the room left in hand: with many handlers (`concurrency` well above a
    /// batch of 10) one long poll at a time cannot keep them busy. Shutdown
    /// still waits for, and releases what comes back from, every one of them.
    pub fn pollers(mut self, n: usize) -> Self {
        self.pollers = n.max(1);
        self
    }

    /// Skips stale changes (default on): a change whose `version` is not
    /// newer than the last one handled for its item is acked without calling
    /// the handler, and counted in [`Stats::stale`](crate::Stats::stale). Off,
    /// every delivery is handled; changes of one item still never run at
    /// once (see the crate docs' "Per-item order").
    pub fn skip_stale(mut self, on: bool) -> Self {
        self.skip_stale = on;
        self
    }

    /// How many items the last handled version is remembered for (default
    /// 10,000, at least 1); the item remembered longest ago is forgotten
    /// first, and a change of a forgotten item is handled.
    pub fn item_memory(mut self, items: usize) -> Self {
        self.item_memory = items.max(1);
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

    /// A span per message from `provider`'s tracer (scope `carthooks-watch`)
    /// instead of the global provider's (feature `otel`). Give the watcher's
    /// client the same provider to see its calls inside those spans.
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

    /// The watcher's metrics on `provider`'s meter (scope `carthooks-watch`)
    /// instead of the global provider's (feature `otel`).
    #[cfg(feature = "otel")]
    pub fn meter_provider(mut self, provider: &dyn opentelemetry::metrics::MeterProvider) -> Self {
        self.telemetry
            .set_meter(provider, crate::telemetry::scope());
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
        let telemetry = Telemetry {
            #[cfg(feature = "otel")]
            inner: Some(crate::telemetry::Instruments::new(
                self.telemetry,
                &self.queue_url,
            )),
        };
        Ok(Watcher {
            shared: Arc::new(Shared {
                client: self.client,
                sqs,
                queue_url: self.queue_url,
                app_id: self.app_id,
                collection_id: self.collection_id,
                watcher_id,
                counters: Counters::new(&telemetry),
                on_problem: self.on_problem,
                telemetry,
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
            item_memory: self.item_memory,
            skip_stale: self.skip_stale,
            pollers: self.pollers,
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
            item_memory: crate::order::DEFAULT_ITEM_MEMORY,
            skip_stale: true,
            pollers: 1,
            sqs: None,
            on_problem: None,
            #[cfg(feature = "otel")]
            telemetry: Default::default(),
        }
    }
}
