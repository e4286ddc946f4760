//! OpenTelemetry traces and metrics, on the HTTP client semantic conventions
//! (feature `otel`; without it every hook below is empty and compiles away).
//!
//! # What is emitted
//!
//! Spans, from the tracer of the provider given to
//! [`ClientBuilder::tracer_provider`](crate::ClientBuilder::tracer_provider)
//! (else the global one, as it is when the client is built):
//!
//! | span | kind | when | attributes |
//! |---|---|---|---|
//! | `{method} {url.template}`, e.g. `GET /v1/apps/{app}/collections/{coll}/items` | internal | one per API call | `carthooks.operation` (`get_items`), `http.request.method`, `url.template`, `server.address`, `server.port`; at the end `http.response.status_code`, `carthooks.attempts`, `error.type` and status error when it failed |
//! | `POST /oauth/token` | internal | one per explicit grant (`initialize_oauth`, `refresh_oauth_token`, `exchange_authorization_code`) | `carthooks.operation` = `token`, `carthooks.grant` |
//! | `{method} {url.template}`, as its call's | client | one per HTTP request sent: API requests, their retries and replays, token requests (`POST /oauth/token`) | `http.request.method`, `server.address`, `server.port`, `url.full` (secrets `REDACTED`), `url.template`, `http.request.resend_count` (resends only), `http.response.status_code`, `error.type` (the status code, or the transport failure: `timeout`, `connect`, …), `carthooks.grant` (token requests) |
//! | `carthooks.token.wait` | internal | waiting for another caller's token request | — |
//! | `carthooks.backoff` | internal | a retry's wait, or a wait for another process's refresh lease | — |
//!
//! and the event `carthooks.lease` (`carthooks.lease.outcome`: `acquired`,
//! `waited`, `adopted`, `lapsed`, `unavailable`) on the call's span for each
//! answer of a shared store. Attempts are children of their call; the call is
//! a child of the caller's current context (`Context::current()`).
//!
//! Metrics, from the meter of the provider given to
//! [`ClientBuilder::meter_provider`](crate::ClientBuilder::meter_provider)
//! (else the global one):
//!
//! | instrument | kind | unit | attributes |
//! |---|---|---|---|
//! | [`HTTP_CLIENT_REQUEST_DURATION`] `http.client.request.duration` | histogram | `s` | `http.request.method`, `server.address`, `server.port`, `url.template`, `http.response.status_code`, `error.type` |
//! | [`HTTP_CLIENT_ACTIVE_REQUESTS`] `http.client.active_requests` | up-down counter | `{request}` | `http.request.method`, `server.address`, `server.port`, `url.template` |
//! | [`CALL_DURATION`] `carthooks.client.call.duration` | histogram | `s` | `carthooks.operation`, `http.request.method`, `url.template`, `error.type` |
//! | [`CALL_ATTEMPTS`] `carthooks.client.call.attempts` | histogram | `{attempt}` | `carthooks.operation`, `url.template` |
//! | [`TOKEN_REQUESTS`] `carthooks.client.token.requests` | counter | `{request}` | `carthooks.grant`, `error.type` |
//! | [`TOKEN_WAIT_DURATION`] `carthooks.client.token.wait.duration` | histogram | `s` | — |
//! | [`LEASE_OUTCOMES`] `carthooks.client.lease.outcomes` | counter | `{answer}` | `carthooks.lease.outcome` |
//! | [`STORE_FAILURES`] `carthooks.client.store.failures` | counter | `{failure}` | `carthooks.store.operation` (`load`, `save`, `lease`) |
//!
//! Every attribute is low-cardinality where the conventions ask it to be:
//! metrics carry templates, never paths or ids; only `url.full` on a span
//! carries ids, and never a secret (the user token of `get_user_by_token` and
//! credential-like query values are `REDACTED`). No token, secret or body is
//! ever an attribute.
//!
//! # Propagation
//!
//! With [`ClientBuilder::propagate_trace_context`](crate::ClientBuilder::propagate_trace_context)
//! each request carries W3C `traceparent` (and `tracestate` when there is
//! one) naming its attempt span (or, with no tracer, the caller's span). Off
//! by default: the headers tell the server about the caller's traces.
//!
//! # Cost
//!
//! What a call pays is decided once, when the client is built. The tracer is
//! asked whether it makes spans (the no-op one of an application that
//! installed no provider does not): if not, no span is asked for and no
//! attribute built. The global meter provider, when it is the API's no-op one
//! (nothing installed), measures nothing: no instrument is called. A
//! provider given to the builder is always used. Measures take the times the
//! I/O loop reads anyway, never a clock read of their own. Install the global
//! providers before building the client: one installed later is not seen.
//! The README gives the measured figures.
//!
//! # Design
//!
//! The I/O loops call the same hooks at the same points: a `CallScope` per
//! call (`execute`, a grant), an `Attempt` around each send, a `Waiting`
//! around each wait, and the driver's own account of what is out
//! ([`Call::exchange`](carthooks_core::Call::exchange)) and of what a lease
//! answer came to ([`LeaseOutcome`]). The state each hook needs lives here,
//! not in the loops.

use std::time::Instant;

use carthooks_core::{
    Call, Endpoint, Error, HttpRequest, HttpResponse, LeaseOutcome, TransportError,
};

#[cfg(feature = "otel")]
pub use otel::*;

#[cfg(feature = "otel")]
mod otel;

/// The instruments of one built client (nothing without `otel`).
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    inner: otel::Instruments,
}

/// What the builder was told about telemetry (nothing without `otel`).
#[derive(Default)]
pub(crate) struct TelemetryOptions {
    #[cfg(feature = "otel")]
    pub(crate) otel: otel::Options,
}

impl Telemetry {
    /// The instruments for a client of `base`.
    pub(crate) fn new(_options: TelemetryOptions, _base: &carthooks_core::BaseUrl) -> Self {
        Self {
            #[cfg(feature = "otel")]
            inner: otel::Instruments::new(_options.otel, _base),
        }
    }

    /// The scope of one API call.
    #[inline]
    pub(crate) fn call<R>(
        &self,
        _endpoint: &Endpoint<R>,
        _base: &carthooks_core::BaseUrl,
        _at: Instant,
    ) -> CallScope<'_> {
        CallScope {
            #[cfg(feature = "otel")]
            inner: self.inner.call(_endpoint, _base, _at),
            _life: std::marker::PhantomData,
        }
    }

    /// The scope of one explicit grant.
    #[inline]
    pub(crate) fn grant(&self, _grant_type: &'static str, _at: Instant) -> CallScope<'_> {
        CallScope {
            #[cfg(feature = "otel")]
            inner: self.inner.grant(_grant_type, _at),
            _life: std::marker::PhantomData,
        }
    }

    /// Where the token store's failures are counted.
    pub(crate) fn store_failures(&self) -> StoreFailures {
        StoreFailures {
            #[cfg(feature = "otel")]
            inner: self.inner.store_failures(),
        }
    }
}

/// Counts the token store's failures (nothing without `otel`).
#[derive(Clone, Default)]
pub(crate) struct StoreFailures {
    #[cfg(feature = "otel")]
    inner: Option<opentelemetry::metrics::Counter<u64>>,
}

impl StoreFailures {
    /// One failure of `operation` (`load`, `save`, `lease`).
    #[inline]
    pub(crate) fn count(&self, _operation: &'static str) {
        #[cfg(feature = "otel")]
        if let Some(counter) = &self.inner {
            counter.add(
                1,
                &[opentelemetry::KeyValue::new(
                    "carthooks.store.operation",
                    _operation,
                )],
            );
        }
    }
}

/// One call's span and measures.
pub(crate) struct CallScope<'a> {
    #[cfg(feature = "otel")]
    inner: otel::CallScope<'a>,
    _life: std::marker::PhantomData<&'a ()>,
}

/// One request's span and measures, from send to answer.
#[must_use]
pub(crate) struct Attempt {
    #[cfg(feature = "otel")]
    inner: Option<otel::Attempt>,
}

/// What a call waits for.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// A retry's backoff, or a wait for another process's lease.
    Backoff,
    /// Another caller's token request.
    Flight,
}

/// One wait's span.
#[must_use]
pub(crate) struct Waiting {
    #[cfg(feature = "otel")]
    inner: Option<otel::Waiting>,
}

impl CallScope<'_> {
    /// `request`, the one `call` has out, is about to be sent: its span
    /// starts (and its trace context goes into its headers, if asked).
    #[inline]
    pub(crate) fn attempt<O>(
        &mut self,
        _call: &Call<'_, O>,
        _request: &mut HttpRequest,
    ) -> Attempt {
        Attempt {
            #[cfg(feature = "otel")]
            inner: self.inner.attempt(_call.exchange(), _request),
        }
    }

    /// The answer to `attempt`'s request, which came by `at`.
    #[inline]
    pub(crate) fn answered(
        &mut self,
        _attempt: Attempt,
        _answer: &std::result::Result<HttpResponse, TransportError>,
        _at: Instant,
    ) {
        #[cfg(feature = "otel")]
        if let Some(attempt) = _attempt.inner {
            self.inner.answered(attempt, _answer, _at);
        }
    }

    /// A wait begins.
    #[inline]
    pub(crate) fn waiting(&mut self, _what: Wait) -> Waiting {
        Waiting {
            #[cfg(feature = "otel")]
            inner: self.inner.waiting(_what),
        }
    }

    /// The wait ended by `at`.
    #[inline]
    pub(crate) fn waited(&mut self, _waiting: Waiting, _at: Instant) {
        #[cfg(feature = "otel")]
        if let Some(waiting) = _waiting.inner {
            self.inner.waited(waiting, _at);
        }
    }

    /// What the store's answer to a lease request came to.
    #[inline]
    pub(crate) fn lease(&mut self, _outcome: Option<LeaseOutcome>) {
        #[cfg(feature = "otel")]
        if let Some(outcome) = _outcome {
            self.inner.lease(outcome);
        }
    }

    /// The call is over: `attempts` API requests were sent, the last answered
    /// `status`; `error` if it failed.
    #[inline]
    pub(crate) fn finish<O>(self, _call: &Call<'_, O>, _error: Option<&Error>) {
        #[cfg(feature = "otel")]
        self.inner.finish(_call.attempts(), _call.status(), _error);
    }
}
