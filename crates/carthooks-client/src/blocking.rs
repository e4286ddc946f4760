//! The blocking client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use carthooks_core::{
    ApiResponse, Call, Endpoint, Grant, Now, OAuthTokens, Output, Renewal, Result,
};
use event_listener::Listener as _;
use serde::de::DeserializeOwned;

use crate::api::{api_methods, client_impls};
use crate::builder::ClientBuilder;
use crate::log::CallSpan;
use crate::pages::ItemIter;
use crate::runtime::Session;
use crate::telemetry::{CallScope, Wait};
use crate::transport::BlockingTransport;

/// The blocking Carthooks client, generic over its [`BlockingTransport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across threads.
pub struct BlockingClient<T> {
    pub(crate) inner: Arc<Session<T>>,
}

client_impls!(client: BlockingClient, transport: BlockingTransport);

impl<T: BlockingTransport> BlockingClient<T> {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder<Self> {
        ClientBuilder::new()
    }

    /// Executes any endpoint description: authorizes (refreshing first if the
    /// token machine says so), sends, retries what may be retried, and on a 401
    /// refreshes and replays once.
    pub fn execute<R: DeserializeOwned>(&self, endpoint: &Endpoint<R>) -> Result<ApiResponse<R>> {
        self.check_open()?;
        let span = CallSpan::new(
            endpoint.operation(),
            endpoint.method(),
            endpoint.path_template(),
        );
        let _entered = span.enter();
        let shared = &self.inner.shared;
        let now = self.inner.now();
        let mut scope = shared
            .telemetry
            .call(endpoint, &shared.config.base_url, now.instant);
        let mut call = Call::api(&self.inner.engine, endpoint, now);
        let result = self.drive(&mut call, now, &mut scope);
        scope.finish(&call, result.as_ref().err());
        let trace_id = match &result {
            Ok(ok) => ok.trace_id.as_deref(),
            Err(e) => e.trace_id(),
        };
        span.finish(call.attempts(), call.status(), trace_id);
        result
    }

    /// Runs an explicit grant, after any token request already in flight.
    fn grant(&self, grant: Grant) -> Result<OAuthTokens> {
        self.check_open()?;
        let now = self.inner.now();
        let mut scope = self
            .inner
            .shared
            .telemetry
            .grant(grant.grant_type(), now.instant);
        let mut call = Call::grant(&self.inner.engine, grant, now);
        let result = self.drive(&mut call, now, &mut scope);
        scope.finish(&call, result.as_ref().err());
        result
    }

    /// The I/O loop around the sans-IO driver: does what it asks until it is
    /// done — the async client's loop, without `.await`s, the store's I/O in
    /// place (this client's caller may block). The time is read once after
    /// each step's I/O (`now` when the call was made, before the first): a
    /// step's answer and the next poll see one moment. `scope` sees every
    /// request out and every wait (telemetry).
    fn drive<O>(
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
                    let answer = inner.shared.transport.send(request);
                    now = inner.now();
                    scope.answered(attempt, &answer, now.instant);
                    call.handle(answer, now);
                }
                Output::SendRenewing { mut request, renew } => {
                    let attempt = scope.attempt(call, &mut request);
                    let answer = self.send_renewing(request, &renew);
                    now = inner.now();
                    scope.answered(attempt, &answer, now.instant);
                    call.handle(answer, now);
                }
                Output::Sleep { until } => {
                    let delay = until.saturating_duration_since(Instant::now());
                    let waiting = scope.waiting(Wait::Backoff);
                    inner.shared.transport.sleep(delay);
                    now = inner.now();
                    scope.waited(waiting, now.instant);
                }
                Output::WaitFlight { ticket, until } => {
                    // Listen first, then look: a flight that ends in between
                    // still wakes this listener.
                    let listener = inner.flights.listen();
                    if inner.engine.in_flight(ticket) {
                        let waiting = scope.waiting(Wait::Flight);
                        match until {
                            Some(deadline) => {
                                listener.wait_deadline(deadline);
                            }
                            None => listener.wait(),
                        }
                        // Rare: a clock read of its own.
                        scope.waited(waiting, Instant::now());
                    }
                    now = inner.now();
                }
                Output::TryLease { holder, ttl } => {
                    let answer = inner.persistence.try_lease(&holder, ttl);
                    now = inner.now();
                    scope.lease(call.handle_lease(answer, now));
                }
                Output::ReleaseLease(lease) => {
                    inner.persistence.release(&lease);
                    now = inner.now();
                }
                Output::Save { tokens, lease } => {
                    let answer = inner.persistence.save(&tokens, lease.as_ref());
                    now = inner.now();
                    call.handle_saved(answer, now);
                }
                Output::Deliver => {
                    inner.persistence.deliver(&inner.engine);
                    now = inner.now();
                }
                Output::Done(result) => break result,
            }
        }
    }

    /// Sends a token request while another thread renews the store's refresh
    /// lease every `renew.every`.
    fn send_renewing(
        &self,
        request: carthooks_core::HttpRequest,
        renew: &Renewal,
    ) -> std::result::Result<carthooks_core::HttpResponse, carthooks_core::TransportError> {
        let inner = &*self.inner;
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let renewer = scope.spawn(|| {
                loop {
                    std::thread::park_timeout(renew.every);
                    if done.load(Ordering::Acquire) {
                        return;
                    }
                    inner.persistence.renew(&renew.lease, renew.ttl);
                }
            });
            let answer = inner.shared.transport.send(request);
            done.store(true, Ordering::Release);
            renewer.thread().unpark();
            answer
        })
    }

    api_methods!(transport: T, pages: ItemIter, calls: blocking);
}
