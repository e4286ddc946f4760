//! The SDK's error type.
//!
//! Failures are split by stage: the request could not be built ([`Error::Config`],
//! [`Error::Encode`]), it could not be delivered or answered ([`Error::Transport`]),
//! the server said no ([`Error::OAuth`] from the token endpoint, [`Error::Api`] from
//! the API), or the answer made no sense ([`Error::UnexpectedResponse`]).
//!
//! No variant ever holds a raw response body or a header: bodies may carry tokens.
//! What is kept is the HTTP status, the server's error code and message, and the
//! trace id. Errors are `Clone` so that one failed refresh can be handed to every
//! caller that was waiting for it.

use std::sync::Arc;

/// Everything that can go wrong in the SDK.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (bad base URL, malformed environment variable…).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An argument cannot be sent as given (a path parameter `..`); nothing was
    /// sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A request body could not be serialized; the serializer's error is the
    /// source (an `Arc<serde_json::Error>`, so that the error stays `Clone`).
    /// Nothing was sent.
    #[error("cannot encode request body: {0}")]
    Encode(#[source] Arc<serde_json::Error>),
    /// The request was not answered: DNS, connection, TLS, timeout, I/O or
    /// protocol failure, an oversized answer or a refused redirect (the kind says
    /// which).
    #[error("transport failure: {0}")]
    Transport(#[source] TransportError),
    /// A request that must not be sent twice (a POST) failed after it may have
    /// reached the server: it was not retried, and whether it took effect is
    /// unknown.
    #[error("request may have reached the server; its outcome is unknown ({0})")]
    OutcomeUnknown(#[source] TransportError),
    /// The OAuth token endpoint refused the request (RFC 6749 error).
    #[error("oauth error: {0}")]
    OAuth(ServiceError),
    /// The Carthooks API answered with an error.
    #[error("api error: {0}")]
    Api(ServiceError),
    /// The server's answer could not be understood.
    #[error("unexpected response (http {}): {reason}", status.as_u16())]
    UnexpectedResponse {
        /// HTTP status of the answer.
        status: http::StatusCode,
        /// Server trace id, when it could be read.
        trace_id: Option<String>,
        /// What was wrong with it (never the body itself).
        reason: String,
    },
    /// No usable access token and no way to obtain one.
    #[error("not authenticated: {0}")]
    NotAuthenticated(String),
    /// The client was closed with `close()`.
    #[error("client is closed")]
    Closed,
    /// The sans-IO core was driven out of order (an input it was not waiting
    /// for, a flight of another machine). A bug in the loop that drives it, never
    /// caused by the server or the caller's data.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
}

impl Error {
    /// The HTTP status of the answer this error came from, if there was one.
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Error::OAuth(e) | Error::Api(e) => Some(e.status),
            Error::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's trace id (`traceId`), for support requests.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Error::OAuth(e) | Error::Api(e) => e.trace_id.as_deref(),
            Error::UnexpectedResponse { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }

    /// The OAuth error code (`invalid_grant`, `invalid_client`,
    /// `invalid_refresh_token`, …) when the token endpoint refused a request.
    pub fn oauth_error_code(&self) -> Option<&str> {
        match self {
            Error::OAuth(e) => e.code.as_deref(),
            _ => None,
        }
    }

    /// True when the token endpoint refused a refresh token or code for good and
    /// the client cannot restore the same identity on its own: the user (or the
    /// operator) must authorize again. Calls are never served under another
    /// identity instead.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(
            self.oauth_error_code(),
            Some("invalid_grant" | "invalid_refresh_token")
        )
    }

    /// The server's error details, for OAuth and API errors.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::OAuth(e) | Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// This configuration error, said of environment variable `name`
    /// (`invalid configuration: NAME: …`); other errors are returned as they are.
    pub fn in_variable(self, name: &str) -> Self {
        match self {
            Error::Config(message) => Error::Config(format!("{name}: {message}")),
            other => other,
        }
    }

    /// The transport failure, for [`Error::Transport`] and [`Error::OutcomeUnknown`].
    pub fn transport_error(&self) -> Option<&TransportError> {
        match self {
            Error::Transport(t) | Error::OutcomeUnknown(t) => Some(t),
            _ => None,
        }
    }

    /// Replaces every occurrence of `secret` in the server-supplied text this
    /// error carries (code, message, trace id, reason) with `[redacted]`.
    ///
    /// The clients call it with every secret they know (client secret, tokens,
    /// the grant's code or user token) before an error leaves them, so a server
    /// that echoes a credential back cannot make it appear in a log line. Values
    /// shorter than 4 bytes are not searched for: they would mangle the text and
    /// protect nothing.
    pub fn redact(&mut self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        let scrub = |s: &mut String| {
            if s.contains(secret) {
                *s = s.replace(secret, "[redacted]");
            }
        };
        match self {
            Error::OAuth(e) | Error::Api(e) => {
                e.code.as_mut().map(scrub);
                e.message.as_mut().map(scrub);
                e.trace_id.as_mut().map(scrub);
            }
            Error::UnexpectedResponse {
                trace_id, reason, ..
            } => {
                trace_id.as_mut().map(scrub);
                scrub(reason);
            }
            Error::Transport(t) | Error::OutcomeUnknown(t) => {
                t.detail.as_mut().map(scrub);
            }
            Error::Config(s) | Error::InvalidInput(s) | Error::NotAuthenticated(s) => scrub(s),
            // A serializer's message quotes no input value, only its position.
            Error::Encode(_) | Error::Closed | Error::InvalidState(_) => {}
        }
    }

    /// True when no connection could be made (refused, unreachable, DNS): the
    /// request was not sent.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.transport_error().map(TransportError::kind),
            Some(TransportErrorKind::Connect | TransportErrorKind::Dns)
        )
    }

    /// True when the same call, sent again later, may well succeed: a
    /// connection that could not be made or broke, a timeout, a 429, or a
    /// server error other than 501 — and the request is safe to send again.
    /// An [`Error::OutcomeUnknown`] is not: it may have taken effect. The client
    /// already retried these within its retry policy; this is for the caller's
    /// own, longer-term retry (a job queue, a later run).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(t) => matches!(
                t.kind(),
                TransportErrorKind::Connect
                    | TransportErrorKind::Dns
                    | TransportErrorKind::Timeout
                    | TransportErrorKind::Io
                    | TransportErrorKind::Protocol
            ),
            Error::Api(e) | Error::OAuth(e) => {
                e.status == http::StatusCode::TOO_MANY_REQUESTS
                    || (e.status.is_server_error() && e.status != http::StatusCode::NOT_IMPLEMENTED)
            }
            Error::UnexpectedResponse { status, .. } => {
                status.is_server_error() && *status != http::StatusCode::NOT_IMPLEMENTED
            }
            _ => false,
        }
    }

    /// True when the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport(t) | Error::OutcomeUnknown(t) if t.kind() == TransportErrorKind::Timeout)
    }

    /// True when retrying the same grant can never succeed: the credentials, the
    /// refresh token or the code were refused.
    pub fn is_permanent_oauth_error(&self) -> bool {
        matches!(
            self.oauth_error_code(),
            Some(
                "invalid_grant"
                    | "invalid_refresh_token"
                    | "invalid_client"
                    | "unauthorized_client"
                    | "unsupported_grant_type"
                    | "invalid_scope"
            )
        )
    }
}

/// Details of an error answer from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceError {
    /// HTTP status of the answer.
    pub status: http::StatusCode,
    /// The server's error code (`invalid_grant`, `NOT_FOUND`, …), when given.
    pub code: Option<String>,
    /// The server's human-readable message, when given.
    pub message: Option<String>,
    /// The server's trace id, when given.
    pub trace_id: Option<String>,
    /// How long the server asked to wait (`Retry-After`) on a 429 or 503
    /// answer, when it said. The client has already honoured it within its
    /// retry policy where the call was safe to resend; this is for callers
    /// that pace work of their own (the bulk import).
    pub retry_after: Option<std::time::Duration>,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}")?,
            (Some(code), None) => f.write_str(code)?,
            (None, Some(message)) => f.write_str(message)?,
            (None, None) => f.write_str("request failed")?,
        }
        write!(f, " (http {}", self.status.as_u16())?;
        if let Some(trace) = &self.trace_id {
            write!(f, ", trace id {trace}")?;
        }
        f.write_str(")")
    }
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made: refused, unreachable, reset while
    /// connecting. The request was not sent.
    Connect,
    /// The host name could not be resolved. The request was not sent.
    Dns,
    /// The TLS handshake failed: untrusted certificate, wrong host name, no
    /// common protocol. The request was not sent.
    Tls,
    /// The request or the answer took longer than the configured timeout (see
    /// [`TransportError::never_sent`] for whether the request left).
    Timeout,
    /// The connection failed while the request or answer was in flight.
    Io,
    /// The server's answer broke the HTTP protocol.
    Protocol,
    /// The answer's body exceeded the configured limit.
    BodyTooLarge,
    /// The server answered with a redirect, which is never followed.
    Redirect,
    /// Anything else the HTTP client reported.
    Other,
}

impl std::fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Connect => "connection refused or unreachable",
            TransportErrorKind::Dns => "host name not resolved",
            TransportErrorKind::Tls => "tls handshake failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Io => "connection broken",
            TransportErrorKind::Protocol => "http protocol error",
            TransportErrorKind::BodyTooLarge => "response body too large",
            TransportErrorKind::Redirect => "redirect refused",
            TransportErrorKind::Other => "http client error",
        })
    }
}

impl TransportErrorKind {
    /// True for the kinds that, by their nature, happen before any byte of the
    /// request is written (DNS, connect, TLS).
    pub fn is_before_send(self) -> bool {
        matches!(
            self,
            TransportErrorKind::Connect | TransportErrorKind::Dns | TransportErrorKind::Tls
        )
    }
}

/// A failure reported by a transport (an HTTP client backend).
///
/// Besides its [kind](TransportErrorKind) it records whether the request was
/// certainly never sent ([`never_sent`](Self::never_sent)): the retry rules read
/// that, not a guess from the kind, so a POST whose connection was refused (or
/// timed out while connecting) is retried, and one that may have been written is
/// not (smithy's `ConnectorError` keeps the same distinction).
///
/// Backends must not put URLs with secrets (such as `/v1/user-token/{token}`) or
/// bodies into the source error; the provided backends strip URLs.
#[derive(Debug, Clone)]
pub struct TransportError {
    kind: TransportErrorKind,
    never_sent: bool,
    detail: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.kind, f)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl TransportError {
    /// A transport error of `kind` without an underlying cause. DNS, connect and
    /// TLS failures count as never sent; other kinds as possibly sent until
    /// [`mark_never_sent`](Self::mark_never_sent) says otherwise.
    pub fn new(kind: TransportErrorKind) -> Self {
        Self {
            kind,
            never_sent: kind.is_before_send(),
            detail: None,
            source: None,
        }
    }

    /// A transport error of `kind` caused by `source`.
    pub fn with_source(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            source: Some(Arc::from(source.into())),
            ..Self::new(kind)
        }
    }

    /// A redirect that was refused, naming the target's host (never its path or
    /// query, which may carry a token). `None` when the target is on the same host
    /// or unreadable.
    pub fn redirect(location: Option<&str>) -> Self {
        let host = location
            .and_then(|l| l.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(crate::sanitize::sanitize_short))
            .filter(|h| !h.is_empty());
        let detail = match host {
            Some(host) => format!("the server redirected to host {host}; redirects carry credentials elsewhere and are never followed"),
            None => "the server redirected; redirects carry credentials elsewhere and are never followed".to_owned(),
        };
        Self::new(TransportErrorKind::Redirect).with_detail(detail)
    }

    /// Adds a human-readable detail to the message (no URL, body or secret).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Records that the request certainly never left (a connect timeout, a
    /// failure before writing): such a request can be sent again safely.
    pub fn mark_never_sent(mut self) -> Self {
        self.never_sent = true;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// True when no byte of the request reached the network, so that even a
    /// non-idempotent request can be sent again.
    pub fn never_sent(&self) -> bool {
        self.never_sent
    }

    /// The detail given by the backend or the SDK, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl From<TransportError> for Error {
    fn from(value: TransportError) -> Self {
        Error::Transport(value)
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api(ServiceError {
            status: http::StatusCode::from_u16(status).unwrap(),
            code: None,
            message: None,
            trace_id: None,
            retry_after: None,
        })
    }

    #[test]
    fn checks_in_reqwests_style() {
        let refused = Error::Transport(TransportError::new(TransportErrorKind::Connect));
        let dns = Error::Transport(TransportError::new(TransportErrorKind::Dns));
        let tls = Error::Transport(TransportError::new(TransportErrorKind::Tls));
        let timeout = Error::Transport(TransportError::new(TransportErrorKind::Timeout));
        let unknown = Error::OutcomeUnknown(TransportError::new(TransportErrorKind::Io));
        assert!(refused.is_connect() && dns.is_connect());
        assert!(!tls.is_connect() && !timeout.is_connect());
        for (e, retryable) in [
            (&refused, true),
            (&timeout, true),
            (&tls, false),
            (&unknown, false),
            (&api(429), true),
            (&api(503), true),
            (&api(500), true),
            (&api(501), false),
            (&api(404), false),
            (&Error::Closed, false),
        ] {
            assert_eq!(e.is_retryable(), retryable, "{e:?}");
        }
        assert_eq!(api(404).status(), Some(http::StatusCode::NOT_FOUND));
    }

    #[test]
    fn an_encode_error_keeps_its_source() {
        use std::error::Error as _;
        struct Refuses;
        impl serde::Serialize for Refuses {
            fn serialize<S: serde::Serializer>(
                &self,
                _: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("not today"))
            }
        }
        let e = crate::Endpoint::<serde_json::Value>::create_item(1, 2, &Refuses).unwrap_err();
        assert!(matches!(e, Error::Encode(_)));
        let source = e.source().expect("the serializer's error");
        assert!(source.downcast_ref::<Arc<serde_json::Error>>().is_some());
        assert!(e.to_string().contains("not today"), "{e}");
    }

    #[test]
    fn accessors() {
        let e = Error::OAuth(ServiceError {
            status: http::StatusCode::BAD_REQUEST,
            code: Some("invalid_grant".into()),
            message: Some("refresh token already used".into()),
            trace_id: Some("tr-1".into()),
            retry_after: None,
        });
        assert_eq!(e.status().map(u16::from), Some(400));
        assert_eq!(e.trace_id(), Some("tr-1"));
        assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
        assert!(e.is_permanent_oauth_error());
        assert_eq!(
            e.to_string(),
            "oauth error: invalid_grant: refresh token already used (http 400, trace id tr-1)"
        );
        let t: Error = TransportError::new(TransportErrorKind::Timeout).into();
        assert!(t.is_timeout());
        assert_eq!(t.status(), None);
        assert!(std::error::Error::source(&t).is_some());
    }
}
