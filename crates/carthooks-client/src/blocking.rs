//! The blocking client.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use carthooks_core::{
    ApiResponse, AppId, AuthorizationCode, AuthorizeCodeResponse, Bearer, Call, ClientConfig,
    CollectionId, Endpoint, Error, FieldId, Grant, ItemId, ItemLock, ItemsQuery, LockOptions, Now,
    OAuthAuthorizeCodeRequest, OAuthTokens, Output, Result, SubItemId, UserAccessToken, UserId,
    UserInfo, WatchDataRequest,
};
use event_listener::Listener as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::api_methods;
use crate::builder::{BuildClient, ClientBuilder, Inner, Parts};
use crate::log::CallSpan;
use crate::log::event;
use crate::pages::ItemIter;
use crate::session::{SessionBuilder, SessionHost};
use crate::store::Lease;
use crate::transport::BlockingTransport;

/// The blocking Carthooks client, generic over its [`BlockingTransport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across threads.
pub struct BlockingClient<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for BlockingClient<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for BlockingClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("config", &self.inner.common.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T: BlockingTransport> BuildClient for BlockingClient<T> {
    type Transport = T;
    fn from_parts(parts: Parts, transport: T) -> Self {
        Self {
            inner: parts.into_inner(transport),
        }
    }
}

impl<T> SessionHost<T> for BlockingClient<T> {
    fn inner(&self) -> &Arc<Inner<T>> {
        &self.inner
    }
    fn from_inner(inner: Arc<Inner<T>>) -> Self {
        Self { inner }
    }
}

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
        let now = self.inner.common.shared.now();
        let mut call = Call::api(&self.inner.engine, endpoint, now);
        let result = self.drive(&mut call, now);
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
        let now = self.inner.common.shared.now();
        let mut call = Call::grant(&self.inner.engine, grant, now);
        self.drive(&mut call, now)
    }

    /// The I/O loop around the sans-IO driver: does what it asks until it is
    /// done. The time is read once after each step's I/O (`now` when the call
    /// was made, before the first): a step's answer and the next poll see one
    /// moment.
    fn drive<O>(&self, call: &mut Call<'_, O>, mut now: Now) -> Result<O> {
        let inner = &*self.inner;
        // The shared store's refresh lease, while this call holds the token
        // flight; given back as soon as it does not.
        let mut lease: Option<Lease> = None;
        loop {
            let output = call.poll(now);
            if !call.holds_flight()
                && let Some(held) = lease.take()
            {
                inner.persistence.release(&held);
            }
            match output {
                Output::Send(request) => {
                    let answer = match &lease {
                        None => inner.common.transport.send(request),
                        Some(held) => self.send_renewing(request, held),
                    };
                    now = inner.common.shared.now();
                    call.handle(answer, now);
                }
                Output::Coordinate => {
                    let (outcome, held) = inner
                        .persistence
                        .coordinate(lease.take(), inner.engine.current_identity());
                    lease = held;
                    now = inner.common.shared.now();
                    call.handle_coordination(outcome, now);
                }
                Output::Sleep { until } => {
                    let delay = until.saturating_duration_since(Instant::now());
                    inner.common.transport.sleep(delay);
                    now = inner.common.shared.now();
                }
                Output::WaitFlight { ticket, until } => {
                    // Listen first, then look: a flight that ends in between
                    // still wakes this listener.
                    let listener = inner.flights.listen();
                    if inner.engine.in_flight(ticket) {
                        match until {
                            Some(deadline) => {
                                listener.wait_deadline(deadline);
                            }
                            None => listener.wait(),
                        }
                    }
                    now = inner.common.shared.now();
                }
                // This client's caller may block: persistence runs in place.
                Output::Save(tokens) => {
                    inner.persistence.save(&tokens, lease.take());
                    now = inner.common.shared.now();
                }
                Output::Deliver => {
                    inner.persistence.deliver_job(&inner.engine)();
                    now = inner.common.shared.now();
                }
                Output::Done(result) => break result,
            }
        }
    }

    /// Sends a token request while another thread renews the store's refresh
    /// lease every third of its TTL.
    fn send_renewing(
        &self,
        request: carthooks_core::HttpRequest,
        lease: &Lease,
    ) -> std::result::Result<carthooks_core::HttpResponse, carthooks_core::TransportError> {
        let inner = &*self.inner;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let renewer = scope.spawn(|| {
                loop {
                    std::thread::park_timeout(inner.persistence.renew_every());
                    if done.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    if !inner.persistence.renew(lease) {
                        event!(warn, "the token store's refresh lease was lost mid-request");
                    }
                }
            });
            let answer = inner.common.transport.send(request);
            done.store(true, std::sync::atomic::Ordering::Release);
            renewer.thread().unpark();
            answer
        })
    }

    api_methods!(; ItemIter;);
}
