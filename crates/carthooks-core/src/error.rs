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
    /// A request body could not be serialized.
    #[error("cannot encode request body: {0}")]
    Encode(String),
    /// The request was not answered: connection, timeout or I/O failure.
    #[error("transport failure")]
    Transport(#[source] TransportError),
    /// A request that must not be sent twice (a POST) failed after it may have
    /// reached the server: it was not retried, and whether it took effect is
    /// unknown.
    #[error("request may have reached the server; its outcome is unknown")]
    OutcomeUnknown(#[source] TransportError),
    /// The OAuth token endpoint refused the request (RFC 6749 error).
    #[error("oauth error: {0}")]
    OAuth(ServiceError),
    /// The Carthooks API answered with an error.
    #[error("api error: {0}")]
    Api(ServiceError),
    /// The server's answer could not be understood.
    #[error("unexpected response (http {status}): {reason}")]
    UnexpectedResponse {
        /// HTTP status of the answer.
        status: u16,
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
}

impl Error {
    /// The HTTP status of the answer this error came from, if there was one.
    pub fn status(&self) -> Option<u16> {
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

    /// The server's error details, for OAuth and API errors.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::OAuth(e) | Error::Api(e) => Some(e),
            _ => None,
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
pub struct ServiceError {
    /// HTTP status of the answer.
    pub status: u16,
    /// The server's error code (`invalid_grant`, `NOT_FOUND`, …), when given.
    pub code: Option<String>,
    /// The server's human-readable message, when given.
    pub message: Option<String>,
    /// The server's trace id, when given.
    pub trace_id: Option<String>,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}")?,
            (Some(code), None) => f.write_str(code)?,
            (None, Some(message)) => f.write_str(message)?,
            (None, None) => f.write_str("request failed")?,
        }
        write!(f, " (http {}", self.status)?;
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
    /// The connection could not be made (DNS, refused, TLS handshake). The request
    /// was not sent.
    Connect,
    /// The request or the answer took longer than the configured timeout.
    Timeout,
    /// The connection failed while the request or answer was in flight.
    Io,
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
            TransportErrorKind::Connect => "connection failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Io => "connection broken",
            TransportErrorKind::BodyTooLarge => "response body too large",
            TransportErrorKind::Redirect => "redirect refused",
            TransportErrorKind::Other => "http client error",
        })
    }
}

/// A failure reported by a transport (an HTTP client backend).
///
/// Backends must not put URLs with secrets (such as `/v1/user-token/{token}`) or
/// bodies into the source error; the provided backends strip URLs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct TransportError {
    kind: TransportErrorKind,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A transport error of `kind` without an underlying cause.
    pub fn new(kind: TransportErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// A transport error of `kind` caused by `source`.
    pub fn with_source(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(Arc::from(source.into())),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
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

    #[test]
    fn accessors() {
        let e = Error::OAuth(ServiceError {
            status: 400,
            code: Some("invalid_grant".into()),
            message: Some("refresh token already used".into()),
            trace_id: Some("tr-1".into()),
        });
        assert_eq!(e.status(), Some(400));
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
