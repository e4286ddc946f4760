//! The async client.

use std::future::Future as _;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use std::sync::{Mutex, PoisonError};

use carthooks_core::{
    ApiResponse, Call, Endpoint, Engine, Grant, LeaseAnswer, Now, OAuthTokens, Output, Renewal,
    Result,
};
use event_listener::EventListener;
use serde::de::DeserializeOwned;

use crate::api::{api_methods, client_impls};
use crate::builder::ClientBuilder;
use crate::log::CallSpan;
use crate::pages::ItemStream;
use crate::persistence::Persistence;
use crate::runtime::Session;
use crate::telemetry::{CallScope, Wait};
use crate::transport::Transport;

/// The async Carthooks client, generic over its [`Transport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across tasks.
pub struct Client<T> {
    pub(crate) inner: Arc<Session<T>>,
}

client_impls!(client: Client, transport: Transport);

impl<T: Transport> Client<T> {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder<Self> {
        ClientBuilder::new()
    }

    /// Executes any endpoint description: authorizes (refreshing first if the
    /// token machine says so), sends, retries what may be retried, and on a 401
    /// refreshes and replays once.
    pub async fn execute<R: DeserializeOwned>(
        &self,
        endpoint: &Endpoint<R>,
    ) -> Result<ApiResponse<R>> {
        self.check_open()?;
        let span = CallSpan::new(
            endpoint.operation(),
            endpoint.method(),
            endpoint.path_template(),
        );
        let shared = &self.inner.shared;
        let now = self.inner.now();
        let mut scope = shared
            .telemetry
            .call(endpoint, &shared.config.base_url, now.instant);
        let mut call = Call::api(&self.inner.engine, endpoint, now);
        let result = span.run(self.drive(&mut call, now, &mut scope)).await;
        scope.finish(&call, result.as_ref().err());
        let trace_id = match &result {
            Ok(ok) => ok.trace_id.as_deref(),
            Err(e) => e.trace_id(),
        };
        span.finish(call.attempts(), call.status(), trace_id);
        result
    }

    /// Runs an explicit grant, after any token request already in flight.
    async fn grant(&self, grant: Grant) -> Result<OAuthTokens> {
        self.check_open()?;
        let now = self.inner.now();
        let mut scope = self
            .inner
            .shared
            .telemetry
            .grant(grant.grant_type(), now.instant);
        let mut call = Call::grant(&self.inner.engine, grant, now);
        let result = self.drive(&mut call, now, &mut scope).await;
        scope.finish(&call, result.as_ref().err());
        result
    }

    /// The I/O loop around the sans-IO driver: does what it asks until it is
    /// done — the blocking client's loop, with `.await`s, and the store's I/O
    /// on the transport's blocking pool. The time is read once after each
    /// step's I/O (`now` when the call was made, before the first): a step's
    /// answer and the next poll see one moment. `scope` sees every request
    /// out and every wait (telemetry).
    async fn drive<O>(
        &self,
        call: &mut Call<'_, O>,
        mut now: Now,
        scope: &mut CallScope<'_>,
    ) -> Result<O> {
        let inner = &*self.inner;
        loop {
            match call.poll(now) {
                Output::Send(mut request) => {
                    let attempt = scope.attempt(call, &mut request);
                    let answer = inner.shared.transport.send(request).await;
                    now = inner.now();
                    scope.answered(attempt, &answer, now.instant);
                    call.handle(answer, now);
                }
                Output::SendRenewing { mut request, renew } => {
                    let attempt = scope.attempt(call, &mut request);
                    // Boxed: a rare path, and its future is the largest of
                    // the loop's; inline it would double the hot path's.
                    let answer = Box::pin(self.send_renewing(request, *renew)).await;
                    now = inner.now();
                    scope.answered(attempt, &answer, now.instant);
                    call.handle(answer, now);
                }
                Output::Sleep { until } => {
                    let delay = until.saturating_duration_since(Instant::now());
                    let waiting = scope.waiting(Wait::Backoff);
                    inner.shared.transport.sleep(delay).await;
                    now = inner.now();
                    scope.waited(waiting, now.instant);
                }
                Output::WaitFlight { ticket, until } => {
                    // Listen first, then look: a flight that ends in between
                    // still wakes this listener.
                    let listener = inner.flights.listen();
                    if inner.engine.in_flight(ticket) {
                        let waiting = scope.waiting(Wait::Flight);
                        self.wait_until(listener, until).await;
                        // Rare: a clock read of its own.
                        scope.waited(waiting, Instant::now());
                    }
                    now = inner.now();
                }
                Output::TryLease { holder, ttl } => {
                    let answer = self.blocking(move |p, _| p.try_lease(&holder, ttl)).await;
                    now = inner.now();
                    // A job that did not run (its pool is gone): as a store
                    // that could not be asked.
                    scope.lease(call.handle_lease(answer.unwrap_or(LeaseAnswer::Unavailable), now));
                }
                Output::ReleaseLease(lease) => {
                    self.blocking(move |p, _| p.release(&lease)).await;
                    now = inner.now();
                }
                Output::Save { tokens, lease } => {
                    let answer = self
                        .blocking(move |p, _| p.save(&tokens, lease.as_ref()))
                        .await;
                    now = inner.now();
                    call.handle_saved(answer.flatten(), now);
                }
                Output::Deliver => {
                    self.blocking(|p, engine| p.deliver(engine)).await;
                    now = inner.now();
                }
                Output::Done(result) => break result,
            }
        }
    }

    /// Runs `job` on the transport's blocking pool (the store's and the
    /// callback's I/O); `None` if it did not run.
    async fn blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Persistence, &Engine) -> R + Send + 'static,
    ) -> Option<R> {
        let slot = Arc::new(Mutex::new(None));
        let (out, persistence, engine) = (
            Arc::clone(&slot),
            Arc::clone(&self.inner.persistence),
            Arc::clone(&self.inner.engine),
        );
        let job = Box::new(move || {
            let result = job(&persistence, &engine);
            *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        });
        self.inner.shared.transport.run_blocking(job).await;
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Sends a token request while renewing the store's refresh lease every
    /// `renew.every`, so that a slow token endpoint never lets it lapse.
    async fn send_renewing(
        &self,
        request: carthooks_core::HttpRequest,
        renew: Renewal,
    ) -> std::result::Result<carthooks_core::HttpResponse, carthooks_core::TransportError> {
        let transport = &self.inner.shared.transport;
        let mut send = transport.send(request);
        loop {
            let mut tick = transport.sleep(renew.every);
            let answer = std::future::poll_fn(|cx| {
                if let Poll::Ready(answer) = send.as_mut().poll(cx) {
                    return Poll::Ready(Some(answer));
                }
                tick.as_mut().poll(cx).map(|()| None)
            })
            .await;
            if let Some(answer) = answer {
                return answer;
            }
            let (lease, ttl) = (renew.lease.clone(), renew.ttl);
            self.blocking(move |p, _| p.renew(&lease, ttl)).await;
        }
    }

    /// Waits for a token request in flight to end, or until `deadline`.
    async fn wait_until(&self, listener: EventListener, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return listener.await;
        };
        let mut timer = self
            .inner
            .shared
            .transport
            .sleep(deadline.saturating_duration_since(Instant::now()));
        let mut listener = std::pin::pin!(listener);
        std::future::poll_fn(|cx| {
            if listener.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            timer.as_mut().poll(cx)
        })
        .await
    }

    api_methods!(transport: T, pages: ItemStream, calls: async .await);
}
