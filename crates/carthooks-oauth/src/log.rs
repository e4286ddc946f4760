//! `tracing` glue: events compile to nothing without the `tracing` feature.
//! No event carries a token, a secret or a body.

macro_rules! event {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "carthooks", $($arg)*);
    }};
}

pub(crate) use event;

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

    pub(crate) fn attempts(&self, _n: u32) {
        #[cfg(feature = "tracing")]
        self.0.record("attempts", _n);
    }

    pub(crate) fn outcome(&self, _status: u16, _trace_id: Option<&str>) {
        #[cfg(feature = "tracing")]
        {
            self.0.record("status", _status);
            if let Some(t) = _trace_id {
                self.0.record("trace_id", t);
            }
        }
    }
}
