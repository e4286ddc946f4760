//! The transport traits: how a client sends bytes.
//!
//! A transport takes a complete `http::Request<Vec<u8>>` and returns the complete
//! `http::Response<Vec<u8>>`; everything Carthooks-specific happens above it. It
//! must not follow redirects and must report failures as
//! [`TransportError`]s without URLs or bodies in them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use carthooks_core::{ClientConfig, HttpRequest, HttpResponse, Result, TransportError};

use crate::dns::DnsCache;

/// A boxed, `Send` future, as returned by [`Transport::send`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async HTTP transport. Object safe: `Box<dyn Transport>` works.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the complete answer.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;

    /// Waits `duration` before a retry. The default works on any executor by
    /// parking a helper thread; backends override it with their runtime's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(ThreadSleep::new(duration))
    }

    /// Runs blocking work (a token store's file writes, the user's
    /// `on_token_refresh` callback) where it does not stall the executor. The
    /// default runs it in place; the reqwest backend hands it to tokio's
    /// blocking pool.
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// Whether the helper thread is done, and who to wake when it is.
type SleepState = Arc<Mutex<(bool, Option<Waker>)>>;

/// A timer future that needs no runtime: a helper thread sleeps, then wakes it.
struct ThreadSleep {
    duration: Duration,
    shared: Option<SleepState>,
}

impl ThreadSleep {
    fn new(duration: Duration) -> Self {
        Self {
            duration,
            shared: None,
        }
    }
}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.duration.is_zero() {
            return Poll::Ready(());
        }
        let duration = self.duration;
        let shared = self.shared.get_or_insert_with(|| {
            let shared: SleepState = Arc::new(Mutex::new((false, None)));
            let theirs = Arc::clone(&shared);
            std::thread::spawn(move || {
                std::thread::sleep(duration);
                let mut state = theirs.lock().unwrap_or_else(PoisonError::into_inner);
                state.0 = true;
                if let Some(waker) = state.1.take() {
                    waker.wake();
                }
            });
            shared
        });
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
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

    /// Waits `duration` before a retry.
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
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

/// A transport that can be built from the client configuration (timeouts,
/// limits…) and the client's DNS cache. Backends implement it so that
/// `ClientBuilder::build()` can make one.
pub trait Connect: Sized {
    /// Builds the transport for `config`, resolving names through `dns`.
    fn connect(config: &ClientConfig, dns: Arc<DnsCache>) -> Result<Self>;
}
