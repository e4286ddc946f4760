//! The async client.

use std::future::Future as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use std::sync::PoisonError;

use carthooks_core::{
    ApiResponse, AppId, AuthorizationCode, AuthorizeCodeResponse, Bearer, Call, ClientConfig,
    CollectionId, Coordination, Endpoint, Error, FieldId, Grant, ItemId, ItemLock, ItemsQuery,
    LockOptions, Now, OAuthAuthorizeCodeRequest, OAuthTokens, Output, Result, SubItemId,
    UserAccessToken, UserId, UserInfo, WatchDataRequest,
};
use event_listener::EventListener;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::api_methods;
use crate::builder::{BuildClient, ClientBuilder, Inner, Parts};
use crate::log::CallSpan;
use crate::log::event;
use crate::pages::ItemStream;
use crate::session::{SessionBuilder, SessionHost};
use crate::store::Lease;
use crate::transport::Transport;

/// The async Carthooks client, generic over its [`Transport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across tasks.
pub struct Client<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Client<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.common.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> BuildClient for Client<T> {
    type Transport = T;
    fn from_parts(parts: Parts, transport: T) -> Self {
        Self {
            inner: parts.into_inner(transport),
        }
    }
}

impl<T> SessionHost<T> for Client<T> {
    fn inner(&self) -> &Arc<Inner<T>> {
        &self.inner
    }
    fn from_inner(inner: Arc<Inner<T>>) -> Self {
        Self { inner }
    }
}

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
        let now = self.inner.common.shared.now();
        let mut call = Call::api(&self.inner.engine, endpoint, now);
        let result = span.run(self.drive(&mut call, now)).await;
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
        let now = self.inner.common.shared.now();
        let mut call = Call::grant(&self.inner.engine, grant, now);
        self.drive(&mut call, now).await
    }

    /// The I/O loop around the sans-IO driver: does what it asks until it is
    /// done. The time is read once after each step's I/O (`now` when the call
    /// was made, before the first): a step's answer and the next poll see one
    /// moment.
    async fn drive<O>(&self, call: &mut Call<'_, O>, mut now: Now) -> Result<O> {
        let inner = &*self.inner;
        // The shared store's refresh lease, while this call holds the token
        // flight (from `Coordinate` to `Save`); given back as soon as it does
        // not (it adopted a stored set, its token request failed, it is done).
        // A call dropped meanwhile leaves it to lapse.
        let mut lease: Option<Lease> = None;
        loop {
            let output = call.poll(now);
            if !call.holds_flight()
                && let Some(held) = lease.take()
            {
                let persistence = Arc::clone(&inner.persistence);
                inner
                    .common
                    .transport
                    .run_blocking(Box::new(move || persistence.release(&held)))
                    .await;
            }
            match output {
                Output::Send(request) => {
                    let answer = match &lease {
                        None => inner.common.transport.send(request).await,
                        Some(held) => self.send_renewing(request, held).await,
                    };
                    now = inner.common.shared.now();
                    call.handle(answer, now);
                }
                Output::Coordinate => {
                    // Store I/O, so on the blocking pool (the lease this call
                    // held before is settled there too).
                    let answer = Arc::new(std::sync::Mutex::new(None));
                    let (persistence, slot, old) = (
                        Arc::clone(&inner.persistence),
                        Arc::clone(&answer),
                        lease.take(),
                    );
                    let identity = inner.engine.current_identity();
                    let job = Box::new(move || {
                        let coordinated = persistence.coordinate(old, identity);
                        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(coordinated);
                    });
                    inner.common.transport.run_blocking(job).await;
                    let (outcome, held) = answer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take()
                        // The job did not run (its pool is gone): as a store
                        // that could not be asked.
                        .unwrap_or((Coordination::Unavailable, None));
                    lease = held;
                    now = inner.common.shared.now();
                    call.handle_coordination(outcome, now);
                }
                Output::Sleep { until } => {
                    let delay = until.saturating_duration_since(Instant::now());
                    inner.common.transport.sleep(delay).await;
                    now = inner.common.shared.now();
                }
                Output::WaitFlight { ticket, until } => {
                    // Listen first, then look: a flight that ends in between
                    // still wakes this listener.
                    let listener = inner.flights.listen();
                    if inner.engine.in_flight(ticket) {
                        self.wait_until(listener, until).await;
                    }
                    now = inner.common.shared.now();
                }
                Output::Save(tokens) => {
                    let job = inner.persistence.save_job(tokens, lease.take());
                    inner.common.transport.run_blocking(job).await;
                    now = inner.common.shared.now();
                }
                Output::Deliver => {
                    let job = inner.persistence.deliver_job(&inner.engine);
                    inner.common.transport.run_blocking(job).await;
                    now = inner.common.shared.now();
                }
                Output::Done(result) => break result,
            }
        }
    }

    /// Sends a token request while renewing the store's refresh lease every
    /// third of its TTL, so that a slow token endpoint never lets it lapse.
    async fn send_renewing(
        &self,
        request: carthooks_core::HttpRequest,
        lease: &Lease,
    ) -> std::result::Result<carthooks_core::HttpResponse, carthooks_core::TransportError> {
        let inner = &*self.inner;
        let mut send = inner.common.transport.send(request);
        loop {
            let mut tick = inner
                .common
                .transport
                .sleep(inner.persistence.renew_every());
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
            let (persistence, held) = (Arc::clone(&inner.persistence), lease.clone());
            inner
                .common
                .transport
                .run_blocking(Box::new(move || {
                    if !persistence.renew(&held) {
                        event!(warn, "the token store's refresh lease was lost mid-request");
                    }
                }))
                .await;
        }
    }

    /// Waits for a token request in flight to end, or until `deadline`.
    async fn wait_until(&self, listener: EventListener, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return listener.await;
        };
        let mut timer = self
            .inner
            .common
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

    api_methods!(async; ItemStream; .await);
}
