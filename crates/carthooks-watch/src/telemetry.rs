//! OpenTelemetry for the watcher (feature `otel`): a span per message,
//! linked to the producer's trace, and metrics on the messaging conventions.
//! Without the feature every hook here is a counter increment or nothing.
//!
//! What is emitted is listed in the crate docs (Telemetry). Every count of
//! [`Stats`](crate::Stats) is a [`Count`]: the atomic the stats read, and the
//! counter of its metric with its labels, made once when the watcher is built.

use std::sync::atomic::{AtomicU64, Ordering};

/// One count of [`Stats`](crate::Stats), and the metric it is also added to.
#[derive(Debug, Default)]
pub(crate) struct Count {
    n: AtomicU64,
    #[cfg(feature = "otel")]
    metric: Option<otel::Metric>,
}

impl Count {
    pub(crate) fn bump(&self, n: u64) {
        self.n.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "otel")]
        if let Some(metric) = &self.metric {
            metric.add(n);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

/// The watcher's instruments (nothing without `otel`).
#[derive(Default)]
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    pub(crate) inner: Option<otel::Instruments>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// What a count is, for its metric (the labels are read only with `otel`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) enum Counted {
    Received,
    Outcome(&'static str),
    Settled(&'static str),
    Extended,
    Renewal(&'static str),
    Failure(&'static str),
}

impl Telemetry {
    /// A count of `what`.
    pub(crate) fn count(&self, _what: Counted) -> Count {
        Count {
            n: AtomicU64::new(0),
            #[cfg(feature = "otel")]
            metric: self.inner.as_ref().and_then(|i| i.metric(_what)),
        }
    }

    /// A message is in hand: its scope (span, lag, time in hand).
    pub(crate) fn message(&self, _message: &crate::sqs::Received) -> MessageScope<'_> {
        MessageScope {
            #[cfg(feature = "otel")]
            inner: self.inner.as_ref().map(|i| i.message(_message)),
            _life: std::marker::PhantomData,
        }
    }
}

/// One message's span and measures, from hand-over to its handler's end.
pub(crate) struct MessageScope<'a> {
    #[cfg(feature = "otel")]
    inner: Option<otel::Message<'a>>,
    _life: std::marker::PhantomData<&'a ()>,
}

impl MessageScope<'_> {
    /// The change parsed from it (lag, attributes).
    pub(crate) fn parsed(&mut self, _event: &crate::ChangeEvent) {
        #[cfg(feature = "otel")]
        if let Some(inner) = &mut self.inner {
            inner.parsed(_event);
        }
    }

    /// The message is not a change event.
    pub(crate) fn malformed(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(inner) = &mut self.inner {
            inner.failed("malformed", "not a change event");
        }
    }

    /// Runs the handler's future inside the message's span.
    pub(crate) async fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        #[cfg(feature = "otel")]
        if let Some(inner) = &self.inner {
            return inner.run(future).await;
        }
        future.await
    }

    /// The handler is done: `ok` or failed, after `took`.
    pub(crate) fn handled(&mut self, _ok: bool, _took: std::time::Duration) {
        #[cfg(feature = "otel")]
        if let Some(inner) = &mut self.inner {
            inner.handled(_ok, _took);
        }
    }
}

#[cfg(feature = "otel")]
pub(crate) use otel::{Instruments, Options, scope};

#[cfg(feature = "otel")]
mod otel {
    use std::borrow::Cow;
    use std::time::{Duration, SystemTime};

    use opentelemetry::global::BoxedTracer;
    use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};
    use opentelemetry::trace::{
        FutureExt as _, Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
        TraceFlags, TraceId, TraceState, Tracer as _,
    };
    use opentelemetry::{Context, InstrumentationScope, KeyValue};

    use super::Counted;
    use crate::sqs::Received;

    const LAG_BOUNDARIES: [f64; 12] = [
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ];

    /// The instrumentation scope of the watcher: `carthooks-watch`, its version.
    pub(crate) fn scope() -> InstrumentationScope {
        InstrumentationScope::builder("carthooks-watch")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    }

    /// What the builder was told: its providers.
    pub(crate) use carthooks_client::telemetry::Providers as Options;

    /// One counter and the labels a count adds to it with.
    #[derive(Debug)]
    pub(crate) struct Metric {
        counter: Counter<u64>,
        labels: Vec<KeyValue>,
    }

    impl Metric {
        pub(crate) fn add(&self, n: u64) {
            self.counter.add(n, &self.labels);
        }
    }

    pub(crate) struct Instruments {
        tracer: BoxedTracer,
        /// The queue's name (the URL's last segment).
        queue: String,
        consumed: Counter<u64>,
        messages: Counter<u64>,
        settled: Counter<u64>,
        extensions: Counter<u64>,
        renewals: Counter<u64>,
        failures: Counter<u64>,
        process_duration: Histogram<f64>,
        in_hand: UpDownCounter<i64>,
        change_lag: Histogram<f64>,
        queue_lag: Histogram<f64>,
    }

    impl Instruments {
        pub(crate) fn new(options: Options, queue_url: &str) -> Self {
            let tracer = options
                .tracer
                .unwrap_or_else(|| opentelemetry::global::tracer_with_scope(scope()));
            let meter = options
                .meter
                .unwrap_or_else(|| opentelemetry::global::meter_with_scope(scope()));
            let counter = |name: &'static str, unit: &'static str, description: &'static str| {
                meter
                    .u64_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build()
            };
            let histogram = |name: &'static str, description: &'static str, bounds: &[f64]| {
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(description)
                    .with_boundaries(bounds.to_vec())
                    .build()
            };
            Self {
                tracer,
                queue: queue_url
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                consumed: counter(
                    "messaging.client.consumed.messages",
                    "{message}",
                    "Messages received from the queue.",
                ),
                messages: counter(
                    "carthooks.watch.messages",
                    "{message}",
                    "Messages by what became of them.",
                ),
                settled: counter(
                    "carthooks.watch.settled",
                    "{message}",
                    "Messages acked (deleted) or nacked (made visible after a delay).",
                ),
                extensions: counter(
                    "carthooks.watch.visibility.extensions",
                    "{extension}",
                    "Visibility extensions sent by the heartbeat.",
                ),
                renewals: counter(
                    "carthooks.watch.renewals",
                    "{registration}",
                    "Watch registrations, the first included, and failed renewals.",
                ),
                failures: counter(
                    "carthooks.watch.failures",
                    "{failure}",
                    "SQS calls that failed: receives, and acks, nacks, extensions or releases.",
                ),
                process_duration: histogram(
                    "messaging.process.duration",
                    "Duration of the handler, per message.",
                    &carthooks_client::telemetry::DURATION_BOUNDARIES,
                ),
                in_hand: meter
                    .i64_up_down_counter("carthooks.watch.in_hand")
                    .with_unit("{message}")
                    .with_description("Messages in hand: being handled, or received ahead.")
                    .build(),
                change_lag: histogram(
                    "carthooks.watch.change.lag",
                    "Time from the change (its updated_at) to its handling.",
                    &LAG_BOUNDARIES,
                ),
                queue_lag: histogram(
                    "carthooks.watch.queue.lag",
                    "Time from the message's arrival in the queue (SentTimestamp) to its handling.",
                    &LAG_BOUNDARIES,
                ),
            }
        }

        fn messaging(&self, operation: &'static str) -> [KeyValue; 3] {
            [
                KeyValue::new("messaging.system", "aws_sqs"),
                KeyValue::new("messaging.destination.name", self.queue.clone()),
                KeyValue::new("messaging.operation.name", operation),
            ]
        }

        pub(crate) fn metric(&self, what: Counted) -> Option<Metric> {
            let (counter, labels) = match what {
                Counted::Received => (&self.consumed, self.messaging("receive").to_vec()),
                Counted::Outcome(o) => (
                    &self.messages,
                    vec![KeyValue::new("carthooks.watch.outcome", o)],
                ),
                Counted::Settled(s) => (
                    &self.settled,
                    vec![KeyValue::new("carthooks.watch.settle", s)],
                ),
                Counted::Extended => (&self.extensions, Vec::new()),
                Counted::Renewal(o) => (
                    &self.renewals,
                    vec![KeyValue::new("carthooks.watch.outcome", o)],
                ),
                Counted::Failure(op) => (
                    &self.failures,
                    vec![KeyValue::new("carthooks.watch.operation", op)],
                ),
            };
            Some(Metric {
                counter: counter.clone(),
                labels,
            })
        }

        pub(crate) fn message(&self, message: &Received) -> Message<'_> {
            self.in_hand.add(1, &[]);
            if let Some(sent) = message.sent_at {
                self.queue_lag.record(lag(sent), &[]);
            }
            let links: Vec<Link> = producer(message)
                .map(Link::with_context)
                .into_iter()
                .collect();
            let [system, destination, _] = self.messaging("process");
            let span = self
                .tracer
                .span_builder(format!("process {}", self.queue))
                .with_kind(SpanKind::Consumer)
                .with_links(links)
                .with_attributes([
                    system,
                    destination,
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.operation.name", "process"),
                    KeyValue::new("messaging.message.id", message.message_id.clone()),
                    KeyValue::new(
                        "carthooks.watch.receive_count",
                        i64::from(message.receive_count),
                    ),
                ])
                .start_with_context(&self.tracer, &Context::new());
            Message {
                t: self,
                cx: Context::new().with_span(span),
            }
        }
    }

    /// Seconds from `then` to now; 0 for a time in the future (clocks differ).
    fn lag(then: SystemTime) -> f64 {
        SystemTime::now()
            .duration_since(then)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    /// The producer's context a message carries: W3C `traceparent` (and
    /// `tracestate`), else SQS's `AWSTraceHeader`.
    fn producer(message: &Received) -> Option<SpanContext> {
        if let Some(parent) = message.traceparent.as_deref()
            && let Some(cx) = parse_traceparent(parent, message.tracestate.as_deref())
        {
            return Some(cx);
        }
        message.aws_trace_header.as_deref().and_then(parse_xray)
    }

    /// `00-{32 hex}-{16 hex}-{2 hex}`.
    pub(crate) fn parse_traceparent(value: &str, state: Option<&str>) -> Option<SpanContext> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace = TraceId::from_hex(trace).ok()?;
        let span = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        let state = state
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        valid(SpanContext::new(
            trace,
            span,
            TraceFlags::new(flags & 1),
            true,
            state,
        ))
    }

    /// X-Ray's `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}`.
    pub(crate) fn parse_xray(value: &str) -> Option<SpanContext> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for field in value.split(';') {
            match field.trim().split_once('=')? {
                ("Root", r) => root = Some(r),
                ("Parent", p) => parent = Some(p),
                ("Sampled", s) => sampled = s == "1",
                _ => {}
            }
        }
        let mut root = root?.split('-');
        let (one, time, rest) = (root.next()?, root.next()?, root.next()?);
        if one != "1" || time.len() != 8 || rest.len() != 24 {
            return None;
        }
        let trace = TraceId::from_hex(&format!("{time}{rest}")).ok()?;
        let span = SpanId::from_hex(parent?).ok()?;
        valid(SpanContext::new(
            trace,
            span,
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        ))
    }

    fn valid(cx: SpanContext) -> Option<SpanContext> {
        cx.is_valid().then_some(cx)
    }

    /// One message in hand.
    pub(crate) struct Message<'a> {
        t: &'a Instruments,
        /// With the message's span.
        cx: Context,
    }

    impl Message<'_> {
        pub(crate) fn parsed(&mut self, event: &crate::ChangeEvent) {
            if let Some(updated) = event.payload.updated_at.and_then(|s| u64::try_from(s).ok()) {
                self.t.change_lag.record(
                    lag(SystemTime::UNIX_EPOCH + Duration::from_secs(updated)),
                    &[],
                );
            }
            let span = self.cx.span();
            span.set_attribute(KeyValue::new(
                "carthooks.item.id",
                i64::try_from(event.item_id().get()).unwrap_or(i64::MAX),
            ));
            if !event.meta.event.is_empty() {
                span.set_attribute(KeyValue::new(
                    "carthooks.watch.event",
                    event.meta.event.clone(),
                ));
            }
        }

        pub(crate) async fn run<F: std::future::Future>(&self, future: F) -> F::Output {
            future.with_context(self.cx.clone()).await
        }

        pub(crate) fn handled(&mut self, ok: bool, took: Duration) {
            let [system, destination, operation] = self.t.messaging("process");
            if ok {
                self.t
                    .process_duration
                    .record(took.as_secs_f64(), &[system, destination, operation]);
            } else {
                self.t.process_duration.record(
                    took.as_secs_f64(),
                    &[
                        system,
                        destination,
                        operation,
                        KeyValue::new("error.type", "handler"),
                    ],
                );
                self.failed("handler", "the handler failed");
            }
        }

        pub(crate) fn failed(&mut self, error: &'static str, description: &'static str) {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new("error.type", error));
            span.set_status(Status::Error {
                description: Cow::Borrowed(description),
            });
        }
    }

    impl Drop for Message<'_> {
        fn drop(&mut self) {
            self.t.in_hand.add(-1, &[]);
            self.cx.span().end();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn producer_contexts_are_read_from_both_headers() {
            let w3c = parse_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("vendor=v1"),
            )
            .unwrap();
            assert_eq!(
                format!("{:032x}", w3c.trace_id()),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert!(w3c.is_sampled() && w3c.is_remote());
            assert_eq!(w3c.trace_state().header(), "vendor=v1");
            let xray = parse_xray(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            )
            .unwrap();
            assert_eq!(
                format!("{:032x}", xray.trace_id()),
                "5759e988bd862e3fe1be46a994272793"
            );
            assert_eq!(format!("{:016x}", xray.span_id()), "53995c3f42cd8ad8");
            for bad in [
                "",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ] {
                assert!(parse_traceparent(bad, None).is_none(), "{bad}");
            }
            assert!(
                parse_xray("Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")
                    .is_none()
            );
            assert!(parse_xray("Root=1-5759e988-bd862e3fe1be46a994272793").is_none());
        }
    }
}
