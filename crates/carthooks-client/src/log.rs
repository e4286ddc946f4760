//! `tracing` glue: events compile to nothing without the `tracing` feature.
//! No event carries a token, a secret or a body.

macro_rules! event {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "carthooks", $($arg)*);
    }};
}

pub(crate) use event;

/// The engine's notes as `tracing` events (inside the call's span).
pub(crate) fn note(_note: &carthooks_core::Note<'_>) {
    #[cfg(feature = "tracing")]
    match _note {
        carthooks_core::Note::Retrying {
            attempt,
            delay,
            status,
            token_request,
        } => event!(
            debug,
            attempt,
            delay_ms = delay.as_millis() as u64,
            status = status.map(|s| s.as_u16()),
            token_request,
            "retrying"
        ),
        carthooks_core::Note::TokenRequestFailed(e) => event!(
            warn,
            error = %e,
            oauth_error = e.oauth_error_code(),
            "token request failed"
        ),
        carthooks_core::Note::NewTokens { generation, tokens } => event!(
            debug,
            generation,
            expires_at = tokens.expires_at,
            refresh_token = tokens.refresh_token.is_some(),
            "new token set in use"
        ),
        carthooks_core::Note::Rejected {
            generation,
            invalidated,
        } => event!(
            info,
            generation,
            invalidated,
            "access token rejected (401): refreshing, then replaying the call once"
        ),
        carthooks_core::Note::LeaseLapsed => event!(
            warn,
            "the previous refresh lease lapsed (its holder died mid-refresh?); \
             the stored refresh token may be spent"
        ),
        carthooks_core::Note::ForeignStoredSet { .. } => event!(
            warn,
            "the shared token store holds a set that acts for someone else; not adopted"
        ),
        carthooks_core::Note::SaveFenced => event!(
            warn,
            "token store save refused: the refresh lease lapsed and a newer set was \
             stored; the new tokens are kept in memory"
        ),
        _ => {}
    }
}

/// The guard of an entered span.
#[cfg(feature = "tracing")]
pub(crate) type Entered<'a> = tracing::span::Entered<'a>;
/// The guard of an entered span (nothing without `tracing`).
#[cfg(not(feature = "tracing"))]
pub(crate) type Entered<'a> = std::marker::PhantomData<&'a ()>;

/// The span of one API call: operation, method, path template, then status,
/// trace id and attempts once known. Nothing without the `tracing` feature.
pub(crate) struct CallSpan(#[cfg(feature = "tracing")] tracing::Span);

impl CallSpan {
    pub(crate) fn new(
        _operation: &'static str,
        _method: &http::Method,
        _template: &'static str,
    ) -> Self {
        Self(
            #[cfg(feature = "tracing")]
            tracing::debug_span!(
                target: "carthooks",
                "carthooks.call",
                operation = _operation,
                method = %_method,
                path = _template,
                status = tracing::field::Empty,
                trace_id = tracing::field::Empty,
                attempts = tracing::field::Empty,
            ),
        )
    }

    /// Records how the call ended.
    pub(crate) fn finish(
        &self,
        _attempts: u32,
        _status: Option<http::StatusCode>,
        _trace_id: Option<&str>,
    ) {
        #[cfg(feature = "tracing")]
        {
            self.0.record("attempts", _attempts);
            if let Some(s) = _status {
                self.0.record("status", s.as_u16());
            }
            if let Some(t) = _trace_id {
                self.0.record("trace_id", t);
            }
        }
    }

    /// Runs `future` inside the span: every event of the call (retries,
    /// refreshes, 401s) is its child. Not an `async fn`: that would hold
    /// `future` twice (its argument and the awaited copy), doubling the call's
    /// future and adding a move of it.
    pub(crate) fn run<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument as _;
            future.instrument(self.0.clone())
        }
        #[cfg(not(feature = "tracing"))]
        {
            future
        }
    }

    /// Enters the span for the rest of the scope (blocking client).
    pub(crate) fn enter(&self) -> Entered<'_> {
        #[cfg(feature = "tracing")]
        {
            self.0.enter()
        }
        #[cfg(not(feature = "tracing"))]
        {
            std::marker::PhantomData
        }
    }
}
