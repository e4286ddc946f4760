//! The transport traits: how a client sends bytes.
//!
//! A transport takes a complete `http::Request<Vec<u8>>` and returns the complete
//! `http::Response<Vec<u8>>`; everything Carthooks-specific happens above it. It
//! must not follow redirects and must report failures as
//! [`TransportError`]s without URLs or bodies in them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use carthooks_core::{ClientConfig, HttpRequest, HttpResponse, Result, TransportError};

/// A boxed, `Send` future, as returned by [`Transport::send`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async HTTP transport. Object safe: `Box<dyn Transport>` works.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the complete answer.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// A blocking HTTP transport.
///
/// Closures implement it, which makes a test double one line:
///
/// ```
/// use carthooks_oauth::BlockingTransport;
/// let t = |_req: http::Request<Vec<u8>>| Ok(http::Response::new(b"{}".to_vec()));
/// let answer = BlockingTransport::send(&t, http::Request::new(Vec::new())).unwrap();
/// assert_eq!(answer.body(), b"{}");
/// ```
pub trait BlockingTransport: Send + Sync + 'static {
    /// Sends `request` and returns the complete answer.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

impl<F> BlockingTransport for F
where
    F: Fn(HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
{
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self(request)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

/// A transport that can be built from the client configuration (timeouts…).
/// Backends implement it so that `ClientBuilder::build()` can make one.
pub trait Connect: Sized {
    /// Builds the transport for `config`.
    fn connect(config: &ClientConfig) -> Result<Self>;
}
