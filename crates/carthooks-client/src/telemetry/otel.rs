//! The hooks' `otel` implementation (see the parent module for what they emit).

use std::borrow::Cow;
use std::time::Instant;

use carthooks_core::{
    BaseUrl, Endpoint, Error, Exchange, HttpRequest, HttpResponse, LeaseOutcome, TransportError,
    TransportErrorKind,
};
use http::Method;
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, StringValue};

use super::Wait;

/// Per-attempt duration of HTTP requests (histogram, seconds).
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// HTTP requests in flight (up-down counter).
pub const HTTP_CLIENT_ACTIVE_REQUESTS: &str = "http.client.active_requests";
/// Duration of whole calls: every attempt, wait and token request (histogram, seconds).
pub const CALL_DURATION: &str = "carthooks.client.call.duration";
/// API requests sent per call (histogram).
pub const CALL_ATTEMPTS: &str = "carthooks.client.call.attempts";
/// Token requests sent, by grant and failure (counter).
pub const TOKEN_REQUESTS: &str = "carthooks.client.token.requests";
/// Time spent waiting for another caller's token request (histogram, seconds).
pub const TOKEN_WAIT_DURATION: &str = "carthooks.client.token.wait.duration";
/// Answers of a shared store to refresh-lease requests, by outcome (counter).
pub const LEASE_OUTCOMES: &str = "carthooks.client.lease.outcomes";
/// Failures of the token store, by operation (counter).
pub const STORE_FAILURES: &str = "carthooks.client.store.failures";

/// The HTTP conventions' advice for `http.client.request.duration`, used for
/// every duration here (and by the watcher).
pub const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The token endpoint's template (what `url.template` says of token requests).
const TOKEN_TEMPLATE: &str = "/oauth/token";

/// The instrumentation scope of everything the SDK emits: `carthooks`, the
/// SDK's version.
pub fn instrumentation_scope() -> InstrumentationScope {
    InstrumentationScope::builder("carthooks")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The providers a builder was given, as a tracer and a meter of one
/// instrumentation scope; `None`: the global provider's, when built. For the
/// SDK's crates' builders (the client's, the watcher's).
#[doc(hidden)]
#[derive(Default)]
pub struct Providers {
    /// The given tracer provider's tracer.
    pub tracer: Option<BoxedTracer>,
    /// The given meter provider's meter.
    pub meter: Option<Meter>,
}

impl Providers {
    /// Takes `provider`'s tracer for `scope`.
    pub fn set_tracer<P, T, S>(&mut self, provider: &P, scope: InstrumentationScope)
    where
        P: opentelemetry::trace::TracerProvider<Tracer = T>,
        T: opentelemetry::trace::Tracer<Span = S> + Send + Sync + 'static,
        S: opentelemetry::trace::Span + Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope),
        )));
    }

    /// Takes `provider`'s meter for `scope`.
    pub fn set_meter(
        &mut self,
        provider: &dyn opentelemetry::metrics::MeterProvider,
        scope: InstrumentationScope,
    ) {
        self.meter = Some(provider.meter_with_scope(scope));
    }
}

/// What the builder was told.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) providers: Providers,
    pub(crate) propagate: bool,
}

/// One client's tracer and instruments.
pub(crate) struct Instruments {
    tracer: BoxedTracer,
    /// False for a tracer that makes no spans (the no-op one of an
    /// application that installed no provider): none is asked for.
    spans: bool,
    /// False for the global no-op meter provider: nothing is measured.
    metrics: bool,
    propagate: bool,
    address: StringValue,
    port: i64,
    request_duration: Histogram<f64>,
    active_requests: UpDownCounter<i64>,
    call_duration: Histogram<f64>,
    call_attempts: Histogram<u64>,
    token_requests: Counter<u64>,
    token_wait: Histogram<f64>,
    leases: Counter<u64>,
    store_failures: Counter<u64>,
}

/// True for the API's no-op meter provider, the global one until an
/// application installs its own. The API offers no way to ask, and the no-op
/// provider is the one provider that holds nothing: its size is zero, a
/// provider that records anything holds at least a pointer to where. (A
/// provider given to the builder is never asked: it is used.)
fn is_noop(provider: &(dyn opentelemetry::metrics::MeterProvider + Send + Sync)) -> bool {
    std::mem::size_of_val(provider) == 0
}

/// True when `tracer` makes spans of its own: asked with a parent that is
/// not sampled, so an SDK's default (parent-based) sampler records nothing,
/// while the no-op tracer hands the parent's context back.
fn makes_spans(tracer: &BoxedTracer) -> bool {
    let parent = SpanId::from(1_u64);
    let cx = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(1_u128),
        parent,
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    let mut probe = tracer.start_with_context("carthooks.probe", &cx);
    let makes = probe.span_context().span_id() != parent;
    probe.end();
    makes
}

impl Instruments {
    pub(crate) fn new(options: Options, base: &BaseUrl) -> Self {
        let tracer = options
            .providers
            .tracer
            .unwrap_or_else(|| opentelemetry::global::tracer_with_scope(instrumentation_scope()));
        let (meter, metrics) = match options.providers.meter {
            Some(meter) => (meter, true),
            None => {
                let global = opentelemetry::global::meter_provider();
                let metrics = !is_noop(&*global);
                (global.meter_with_scope(instrumentation_scope()), metrics)
            }
        };
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Self {
            spans: makes_spans(&tracer),
            metrics,
            tracer,
            propagate: options.propagate,
            // Shared, not copied, by every attribute that names it.
            address: StringValue::from(std::sync::Arc::<str>::from(base.host())),
            port: i64::from(base.port()),
            request_duration: duration(
                HTTP_CLIENT_REQUEST_DURATION,
                "Duration of HTTP client requests.",
            ),
            active_requests: meter
                .i64_up_down_counter(HTTP_CLIENT_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of outbound HTTP requests that are currently active.")
                .build(),
            call_duration: duration(
                CALL_DURATION,
                "Duration of Carthooks calls: every attempt, wait and token request.",
            ),
            call_attempts: meter
                .u64_histogram(CALL_ATTEMPTS)
                .with_unit("{attempt}")
                .with_description("API requests sent per Carthooks call.")
                .with_boundaries(vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
                .build(),
            token_requests: counter(
                TOKEN_REQUESTS,
                "{request}",
                "Token requests sent to the token endpoint.",
            ),
            token_wait: duration(
                TOKEN_WAIT_DURATION,
                "Time calls waited for another caller's token request.",
            ),
            leases: counter(
                LEASE_OUTCOMES,
                "{answer}",
                "Answers of the shared token store to refresh-lease requests.",
            ),
            store_failures: counter(
                STORE_FAILURES,
                "{failure}",
                "Failures of the token store (the tokens are kept in memory).",
            ),
        }
    }

    fn address(&self) -> [KeyValue; 2] {
        [
            KeyValue::new("server.address", self.address.clone()),
            KeyValue::new("server.port", self.port),
        ]
    }

    /// A call's scope: its span, a child of the caller's current context.
    fn scope(
        &self,
        operation: &'static str,
        method: Method,
        template: &'static str,
        url: impl FnOnce() -> String,
        grant: Option<&'static str>,
        at: Instant,
    ) -> CallScope<'_> {
        // The caller's context matters only to spans and to propagation.
        let parent = if self.spans || self.propagate {
            Context::current()
        } else {
            Context::new()
        };
        let (cx, url) = if self.spans {
            let [address, port] = self.address();
            let mut attributes = vec![
                KeyValue::new("carthooks.operation", operation),
                KeyValue::new("http.request.method", method_name(&method)),
                KeyValue::new("url.template", template),
                address,
                port,
            ];
            if let Some(grant) = grant {
                attributes.push(KeyValue::new("carthooks.grant", grant));
            }
            let span = self
                .tracer
                .span_builder(format!("{} {template}", method_name(&method)))
                .with_kind(SpanKind::Internal)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, &parent);
            (parent.with_span(span), Some(url()))
        } else {
            (parent, None)
        };
        CallScope {
            t: self,
            operation,
            method,
            template,
            grant: grant.is_some(),
            start: at,
            last: at,
            cx,
            url,
        }
    }

    pub(crate) fn call<R>(
        &self,
        endpoint: &Endpoint<R>,
        base: &BaseUrl,
        at: Instant,
    ) -> CallScope<'_> {
        self.scope(
            endpoint.operation(),
            endpoint.method().clone(),
            endpoint.path_template(),
            || endpoint.redacted_url(base),
            None,
            at,
        )
    }

    pub(crate) fn grant(&self, grant: &'static str, at: Instant) -> CallScope<'_> {
        self.scope(
            "token",
            Method::POST,
            TOKEN_TEMPLATE,
            String::new,
            Some(grant),
            at,
        )
    }

    pub(crate) fn store_failures(&self) -> Option<Counter<u64>> {
        self.metrics.then(|| self.store_failures.clone())
    }
}

/// One call's state (see [`super::CallScope`]).
pub(crate) struct CallScope<'a> {
    t: &'a Instruments,
    operation: &'static str,
    method: Method,
    template: &'static str,
    /// An explicit grant's scope (it sends no API request).
    grant: bool,
    start: Instant,
    /// The loop's last reading of the time (after its last I/O).
    last: Instant,
    /// The caller's context, with the call's span when spans are made.
    cx: Context,
    /// The API request's `url.full`, when spans are made.
    url: Option<String>,
}

/// One request out.
pub(crate) struct Attempt {
    span: Option<BoxedSpan>,
    start: Instant,
    grant: Option<&'static str>,
    /// `http.request.method`, `server.address`, `server.port`, `url.template`.
    attributes: [KeyValue; 4],
    /// Its place in `http.client.active_requests`, when measured.
    active: Option<Active>,
}

/// A request counted in `http.client.active_requests` until this drops: when
/// it is answered, or when its call is cancelled mid-request (a dropped
/// future), which would otherwise leave it counted for ever.
struct Active {
    counter: UpDownCounter<i64>,
    attributes: [KeyValue; 4],
}

impl Drop for Active {
    fn drop(&mut self) {
        self.counter.add(-1, &self.attributes);
    }
}

/// One wait.
pub(crate) struct Waiting {
    span: Option<BoxedSpan>,
    start: Instant,
    what: Wait,
}

impl CallScope<'_> {
    pub(crate) fn attempt(
        &mut self,
        exchange: Option<Exchange>,
        request: &mut HttpRequest,
    ) -> Option<Attempt> {
        // The time the loop last read: the request was built since, in
        // microseconds. Measures take the loop's readings, never their own:
        // a clock read is dearer than the rest of a measure.
        let exchange = exchange?;
        let t = self.t;
        if !(t.spans || t.metrics || t.propagate) {
            return None;
        }
        let template = if exchange.grant.is_some() {
            TOKEN_TEMPLATE
        } else {
            self.template
        };
        let method = method_name(request.method());
        let [address, port] = t.address();
        let attributes = [
            KeyValue::new("http.request.method", method),
            address,
            port,
            KeyValue::new("url.template", template),
        ];
        let active = t.metrics.then(|| {
            t.active_requests.add(1, &attributes);
            Active {
                counter: t.active_requests.clone(),
                attributes: attributes.clone(),
            }
        });
        let span = t.spans.then(|| {
            let url = match exchange.grant {
                // The token endpoint's URL carries nothing secret (the
                // credentials are in the body).
                Some(_) => request.uri().to_string(),
                None => self.url.clone().unwrap_or_default(),
            };
            let mut all = Vec::with_capacity(8);
            all.extend(attributes.iter().cloned());
            all.push(KeyValue::new("url.full", url));
            if exchange.resends > 0 {
                all.push(KeyValue::new(
                    "http.request.resend_count",
                    i64::from(exchange.resends),
                ));
            }
            if let Some(grant) = exchange.grant {
                all.push(KeyValue::new("carthooks.grant", grant));
            }
            t.tracer
                .span_builder(format!("{method} {template}"))
                .with_kind(SpanKind::Client)
                .with_attributes(all)
                .start_with_context(&t.tracer, &self.cx)
        });
        if t.propagate {
            let context = match &span {
                Some(span) => span.span_context().clone(),
                None => self.cx.span().span_context().clone(),
            };
            inject(&context, request);
        }
        Some(Attempt {
            span,
            start: self.last,
            grant: exchange.grant,
            attributes,
            active,
        })
    }

    pub(crate) fn answered(
        &mut self,
        attempt: Attempt,
        answer: &std::result::Result<HttpResponse, TransportError>,
        at: Instant,
    ) {
        let t = self.t;
        self.last = at;
        let elapsed = at.saturating_duration_since(attempt.start).as_secs_f64();
        let Attempt {
            span,
            grant,
            attributes,
            active,
            ..
        } = attempt;
        // Answered: no longer in flight.
        drop(active);
        let (status, error) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), (status >= 400).then(|| status_text(status)))
            }
            Err(e) => (None, Some(Cow::Borrowed(transport_kind(e.kind())))),
        };
        if t.metrics {
            // On the stack, whatever the outcome: this runs for every
            // request.
            let [method, address, port, template] = attributes;
            let status_code =
                status.map(|s| KeyValue::new("http.response.status_code", i64::from(s)));
            let error_type = error.clone().map(|e| KeyValue::new("error.type", e));
            match (status_code, error_type) {
                (Some(s), Some(e)) => t
                    .request_duration
                    .record(elapsed, &[method, address, port, template, s, e]),
                (Some(x), None) | (None, Some(x)) => t
                    .request_duration
                    .record(elapsed, &[method, address, port, template, x]),
                (None, None) => t
                    .request_duration
                    .record(elapsed, &[method, address, port, template]),
            }
            if let Some(grant) = grant {
                let grant = KeyValue::new("carthooks.grant", grant);
                match &error {
                    Some(e) => t
                        .token_requests
                        .add(1, &[grant, KeyValue::new("error.type", e.clone())]),
                    None => t.token_requests.add(1, &[grant]),
                }
            }
        }
        if let Some(mut span) = span {
            if let Some(status) = status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if let Some(error) = error {
                span.set_attribute(KeyValue::new("error.type", error));
                // A client span's status is an error for 4xx and 5xx and for
                // a request that got no answer; the description only for the
                // latter (the status code says the rest).
                span.set_status(Status::Error {
                    description: match answer {
                        Err(e) => e.kind().to_string().into(),
                        Ok(_) => Cow::Borrowed(""),
                    },
                });
            }
            span.end();
        }
    }

    pub(crate) fn waiting(&mut self, what: Wait) -> Option<Waiting> {
        let t = self.t;
        let span = t.spans.then(|| {
            let name = match what {
                Wait::Backoff => "carthooks.backoff",
                Wait::Flight => "carthooks.token.wait",
            };
            t.tracer
                .span_builder(name)
                .with_kind(SpanKind::Internal)
                .start_with_context(&t.tracer, &self.cx)
        });
        Some(Waiting {
            span,
            start: self.last,
            what,
        })
    }

    pub(crate) fn waited(&mut self, waiting: Waiting, at: Instant) {
        self.last = at;
        if let (Wait::Flight, true) = (waiting.what, self.t.metrics) {
            self.t.token_wait.record(
                at.saturating_duration_since(waiting.start).as_secs_f64(),
                &[],
            );
        }
        if let Some(mut span) = waiting.span {
            span.end();
        }
    }

    pub(crate) fn lease(&mut self, outcome: LeaseOutcome) {
        let label = KeyValue::new("carthooks.lease.outcome", outcome.as_str());
        if self.t.metrics {
            self.t.leases.add(1, std::slice::from_ref(&label));
        }
        if self.t.spans {
            self.cx.span().add_event("carthooks.lease", vec![label]);
        }
    }

    pub(crate) fn finish(
        self,
        attempts: u32,
        status: Option<http::StatusCode>,
        error: Option<&Error>,
    ) {
        let t = self.t;
        let error = error.map(error_type);
        if t.metrics {
            let operation = KeyValue::new("carthooks.operation", self.operation);
            let template = KeyValue::new("url.template", self.template);
            if !self.grant {
                t.call_attempts
                    .record(u64::from(attempts), &[operation.clone(), template.clone()]);
            }
            let method = KeyValue::new("http.request.method", method_name(&self.method));
            let elapsed = self
                .last
                .saturating_duration_since(self.start)
                .as_secs_f64();
            match &error {
                Some(e) => t.call_duration.record(
                    elapsed,
                    &[
                        operation,
                        template,
                        method,
                        KeyValue::new("error.type", e.clone()),
                    ],
                ),
                None => t
                    .call_duration
                    .record(elapsed, &[operation, template, method]),
            }
        }
        if t.spans {
            let span = self.cx.span();
            if !self.grant {
                span.set_attribute(KeyValue::new("carthooks.attempts", i64::from(attempts)));
            }
            if let Some(status) = status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
            }
            if let Some(error) = error {
                span.set_attribute(KeyValue::new("error.type", error));
                span.set_status(Status::Error {
                    description: Cow::Borrowed(""),
                });
            }
            span.end();
        }
    }
}

/// Writes `traceparent` (and `tracestate`, when not empty) for `context`
/// into `request`: the W3C Trace Context headers, version 00.
fn inject(context: &SpanContext, request: &mut HttpRequest) {
    if !context.is_valid() {
        return;
    }
    let parent = format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8() & 1
    );
    let headers = request.headers_mut();
    if let Ok(value) = http::HeaderValue::from_str(&parent) {
        headers.insert("traceparent", value);
    }
    let state = context.trace_state().header();
    if !state.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(&state)
    {
        headers.insert("tracestate", value);
    }
}

/// `http.request.method`: the method, or `_OTHER` for one the HTTP spec
/// does not define (the conventions keep the set closed).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// `error.type` of a status code: the code itself.
fn status_text(status: u16) -> Cow<'static, str> {
    Cow::Owned(status.to_string())
}

/// `error.type` of a request that got no answer.
fn transport_kind(kind: TransportErrorKind) -> &'static str {
    match kind {
        TransportErrorKind::Connect => "connect",
        TransportErrorKind::Dns => "dns",
        TransportErrorKind::Tls => "tls",
        TransportErrorKind::Timeout => "timeout",
        TransportErrorKind::Io => "io",
        TransportErrorKind::Protocol => "protocol",
        TransportErrorKind::BodyTooLarge => "body_too_large",
        TransportErrorKind::Redirect => "redirect",
        _ => "_OTHER",
    }
}

/// `error.type` of a failed call: the status code when the server answered,
/// else what went wrong, in one low-cardinality word.
fn error_type(error: &Error) -> Cow<'static, str> {
    if let Some(status) = error.status() {
        return status_text(status.as_u16());
    }
    Cow::Borrowed(match error {
        Error::Transport(e) => transport_kind(e.kind()),
        Error::OutcomeUnknown(_) => "outcome_unknown",
        Error::Config(_) => "config",
        Error::InvalidInput(_) => "invalid_input",
        Error::Encode(_) => "encode",
        Error::OAuth(_) => "oauth",
        Error::Api(_) => "api",
        Error::UnexpectedResponse { .. } => "unexpected_response",
        Error::NotAuthenticated(_) => "not_authenticated",
        Error::Closed => "closed",
        Error::InvalidState(_) => "invalid_state",
        _ => "_OTHER",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_low_cardinality_words_or_status_codes() {
        assert_eq!(
            error_type(&Error::Transport(TransportError::new(
                TransportErrorKind::Timeout
            ))),
            "timeout"
        );
        assert_eq!(error_type(&Error::Closed), "closed");
        assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
        assert_eq!(status_text(503), "503");
    }

    /// The API's no-op provider is told apart from one that records.
    #[test]
    fn the_no_op_meter_provider_is_recognised() {
        struct Recording(#[allow(dead_code)] std::sync::Arc<()>);
        impl opentelemetry::metrics::MeterProvider for Recording {
            fn meter_with_scope(&self, scope: InstrumentationScope) -> Meter {
                opentelemetry::metrics::noop::NoopMeterProvider::new().meter_with_scope(scope)
            }
        }
        assert!(is_noop(
            &opentelemetry::metrics::noop::NoopMeterProvider::new()
        ));
        assert!(
            is_noop(&*opentelemetry::global::meter_provider()),
            "none installed"
        );
        assert!(!is_noop(&Recording(std::sync::Arc::new(()))));
    }

    #[test]
    fn trace_context_is_written_as_w3c_says() {
        let context = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        );
        let mut request = HttpRequest::new(Vec::new());
        inject(&context, &mut request);
        assert_eq!(
            request.headers()["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(request.headers()["tracestate"], "vendor=v1");
        let mut untouched = HttpRequest::new(Vec::new());
        inject(&SpanContext::empty_context(), &mut untouched);
        assert!(untouched.headers().is_empty(), "no context, no header");
    }
}
