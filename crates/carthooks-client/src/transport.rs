//! The transport traits: how a client sends bytes.
//!
//! A transport takes a complete `http::Request<Vec<u8>>` and returns the complete
//! `http::Response<Vec<u8>>`; everything Carthooks-specific happens above it. It
//! must not follow redirects and must report failures as
//! [`TransportError`]s without URLs or bodies in them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use carthooks_core::{HttpRequest, HttpResponse, Result, TransportError};

use crate::dns::DnsCache;
use crate::settings::TransportConfig;

/// A boxed, `Send` future, as returned by [`Transport::send`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async HTTP transport. Object safe: `Box<dyn Transport>` works.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the complete answer.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;

    /// Waits `duration`: a retry's backoff, or the rest of a call's deadline
    /// while it waits for another caller's token request. Use your runtime's
    /// timer (`tokio::time::sleep`, …); the SDK starts no timer of its own.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;

    /// Runs blocking work (a token store's file writes, the user's
    /// `on_token_refresh` callback) where it does not stall the executor. The
    /// default runs it in place; the reqwest backend hands it to tokio's
    /// blocking pool.
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// True for methods whose requests carry a body, framed with `Content-Length`
/// (`0` when empty: front ends answer 411 without it); other methods (GET,
/// DELETE, …) send no body and no `Content-Length`. Both provided backends frame
/// requests this way, and a transport of your own should too.
pub fn frames_body(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// A blocking HTTP transport. Object safe: `Box<dyn BlockingTransport>` works.
///
/// [`transport_fn`] makes one of a closure, which makes a test double one line:
///
/// ```
/// use carthooks_client::{BlockingTransport, transport_fn};
/// let t = transport_fn(|_req| Ok(http::Response::new(b"{}".to_vec())));
/// let answer = t.send(http::Request::new(Vec::new())).unwrap();
/// assert_eq!(answer.body(), b"{}");
/// ```
pub trait BlockingTransport: Send + Sync + 'static {
    /// Sends `request` and returns the complete answer.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;

    /// Waits `duration` before a retry.
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A [`BlockingTransport`] that calls a closure; made by [`transport_fn`].
#[derive(Clone, Copy)]
pub struct FnTransport<F>(F);

impl<F> std::fmt::Debug for FnTransport<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTransport")
    }
}

/// A blocking transport that answers every request with `f` (a test double, a
/// recorder, an adapter to another HTTP stack).
pub fn transport_fn<F>(f: F) -> FnTransport<F>
where
    F: Fn(HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
{
    FnTransport(f)
}

impl<F> BlockingTransport for FnTransport<F>
where
    F: Fn(HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
{
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (self.0)(request)
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for Box<T> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration)
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for Arc<T> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        (**self).sleep(duration)
    }
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        (**self).run_blocking(job)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        (**self).sleep(duration)
    }
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        (**self).run_blocking(job)
    }
}

/// A transport that can be built from [`TransportConfig`] and the client's DNS
/// cache. Backends implement it so that `ClientBuilder::build()` can make one.
pub trait Connect: Sized {
    /// Builds the transport for `config`, resolving names through `dns`.
    fn connect(config: &TransportConfig, dns: Arc<DnsCache>) -> Result<Self>;
}
