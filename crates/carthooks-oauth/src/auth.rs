//! The token coordinator shared by the async and the blocking client.
//!
//! It owns the [`TokenMachine`] behind a mutex, the event that wakes callers waiting
//! for a token request in flight, the clock and the [`Persistence`] (store and
//! callback). Every decision is the machine's; this layer only adds locking,
//! waking and persistence. Both clients run the same short loop over it,
//! differing only in how they send, wait and run blocking work — see the
//! engine in `api.rs`.
//!
//! A flight ends in three steps: [`Auth::handle`] feeds the answer to the
//! machine (tokens pending), the store saves them (a blocking job: the async
//! client runs it on the blocking pool), [`Auth::commit`] makes them current and
//! wakes the waiters. Only then is the user's callback called
//! ([`Persistence::deliver`]): outside every lock, one set at a time, in order —
//! so a callback that calls the client (even one that waits for another thread
//! that does) cannot deadlock it.
//!
//! Lost wake-ups cannot happen: a waiter registers its listener while it still
//! holds the lock under which it saw the flight, and the flight's owner changes the
//! state under that lock before it notifies.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};

use carthooks_core::{
    Authorize, BaseUrl, Bearer, Clock, Error, FlightTicket, Grant, GrantStart, HttpRequest,
    HttpResponse, OAuthTokens, RefreshToken, Result, TokenCallback, TokenMachine, WaitTicket,
};
use event_listener::{Event, EventListener};

use crate::log::event;
use crate::store::{StoreOperation, TokenStore, TokenStoreFailure};

/// A job to run where blocking is allowed (the async client hands it to its
/// transport's blocking pool; the blocking client runs it in place).
pub(crate) type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// Where new token sets go: the store (saved before the set is used) and the
/// user's callback (called right after the set became current, in order, outside
/// every lock, so it may call the client).
pub(crate) struct Persistence {
    store: Option<Arc<dyn TokenStore>>,
    callback: Option<TokenCallback>,
    failure: Mutex<Option<TokenStoreFailure>>,
    /// Sets waiting for the callback, oldest first.
    queue: Mutex<VecDeque<OAuthTokens>>,
    /// True while some thread is calling the callback: it also delivers what is
    /// queued meanwhile, so calls are ordered and never nested or concurrent.
    delivering: AtomicBool,
}

impl Persistence {
    pub(crate) fn new(
        store: Option<Arc<dyn TokenStore>>,
        callback: Option<TokenCallback>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            callback,
            failure: Mutex::new(None),
            queue: Mutex::new(VecDeque::new()),
            delivering: AtomicBool::new(false),
        })
    }

    fn record(&self, operation: StoreOperation, error: &std::io::Error) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        let failures = failure.as_ref().map_or(0, |f| f.failures) + 1;
        *failure = Some(TokenStoreFailure::new(operation, error, failures));
    }

    /// The stored set, at build. A store that cannot be read is reported and
    /// treated as empty.
    pub(crate) fn load(&self) -> Option<OAuthTokens> {
        let store = self.store.as_ref()?;
        match catch_unwind(AssertUnwindSafe(|| store.load())) {
            Ok(Ok(tokens)) => tokens,
            Ok(Err(e)) => {
                event!(warn, error = %e, "token store could not be read; starting without stored tokens");
                self.record(StoreOperation::Load, &e);
                None
            }
            Err(_) => {
                self.record(
                    StoreOperation::Load,
                    &std::io::Error::other("token store panicked"),
                );
                None
            }
        }
    }

    /// Saves `tokens`; a failure is reported, never lost tokens.
    pub(crate) fn save(&self, tokens: &OAuthTokens) {
        let Some(store) = &self.store else { return };
        let result = catch_unwind(AssertUnwindSafe(|| store.save(tokens)))
            .unwrap_or_else(|_| Err(std::io::Error::other("token store panicked")));
        if let Err(e) = result {
            event!(warn, error = %e, "token store save failed; the new tokens are kept in memory");
            self.record(StoreOperation::Save, &e);
        }
    }

    /// Calls the callback with every queued set, unless another thread already is.
    pub(crate) fn deliver(&self) {
        let Some(callback) = &self.callback else {
            return;
        };
        loop {
            if self.delivering.swap(true, Ordering::AcqRel) {
                return;
            }
            loop {
                let next = self
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                let Some(tokens) = next else { break };
                if catch_unwind(AssertUnwindSafe(|| callback(&tokens))).is_err() {
                    event!(
                        warn,
                        "on_token_refresh callback panicked; the new tokens are kept"
                    );
                }
            }
            self.delivering.store(false, Ordering::Release);
            // A set queued after the last look but before the flag was cleared
            // would otherwise wait for the next refresh.
            if self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
            {
                return;
            }
        }
    }

    pub(crate) fn failure(&self) -> Option<TokenStoreFailure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(crate) struct Auth {
    machine: RwLock<TokenMachine>,
    event: Event,
    clock: Arc<dyn Clock>,
    persistence: Arc<Persistence>,
    base: BaseUrl,
}

/// Tokens the token endpoint just issued, not yet in use: save them
/// ([`Auth::save_job`]), then [`Auth::commit`]. Still holds the flight.
pub(crate) struct Pending<'a> {
    flight: Flight<'a>,
    tokens: OAuthTokens,
}

/// What the caller does next.
pub(crate) enum Step<'a> {
    /// Use this token.
    Ready(Bearer),
    /// Send `request` to the token endpoint and hand the answer to [`Auth::finish`].
    /// On a failure without fallback, poll again with `ticket`: the machine gives
    /// back the failure, or a new flight when another grant can take over.
    Fetch {
        ticket: WaitTicket,
        flight: Flight<'a>,
        request: Box<HttpRequest>,
        fallback: Option<Bearer>,
    },
    /// Wait for the listener, then poll again with the ticket.
    Wait(EventListener, WaitTicket),
}

/// What the caller of an explicit grant does next.
pub(crate) enum GrantStep<'a> {
    /// Send `request` and hand the answer to [`Auth::finish`].
    Fetch {
        flight: Flight<'a>,
        request: Box<HttpRequest>,
    },
    /// Another token request is in flight: wait, then begin again.
    Wait(EventListener),
}

/// Holds the one token request in flight; abandons it if dropped unfinished (a
/// cancelled future, a panic), so the waiters try again instead of hanging.
pub(crate) struct Flight<'a> {
    auth: &'a Auth,
    ticket: Option<FlightTicket>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.auth.lock().abandon(ticket);
            self.auth.event.notify(usize::MAX);
        }
    }
}

impl Auth {
    pub(crate) fn new(
        machine: TokenMachine,
        clock: Arc<dyn Clock>,
        persistence: Arc<Persistence>,
        base: BaseUrl,
    ) -> Self {
        Self {
            machine: RwLock::new(machine),
            event: Event::new(),
            clock,
            persistence,
            base,
        }
    }

    /// The last failure of the token store, if any.
    pub(crate) fn store_failure(&self) -> Option<TokenStoreFailure> {
        self.persistence.failure()
    }

    /// Removes every secret the client knows from `error`'s server-supplied text.
    pub(crate) fn redact(&self, mut error: Error) -> Error {
        self.machine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .redact(&mut error);
        error
    }

    fn lock(&self) -> RwLockWriteGuard<'_, TokenMachine> {
        // The machine never panics while locked; a poisoned lock still holds a
        // consistent machine.
        self.machine.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fast path: a fresh token under a shared read lock (readers do not
    /// block each other); `None` sends the caller to [`poll`](Self::poll).
    pub(crate) fn ready_bearer(&self) -> Option<Bearer> {
        let now = self.now();
        self.machine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ready_bearer(now)
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    pub(crate) fn base(&self) -> &BaseUrl {
        &self.base
    }

    pub(crate) fn current_tokens(&self) -> Option<OAuthTokens> {
        self.machine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current_tokens()
    }

    /// What to do before an API call: the fast path first, then the machine.
    pub(crate) fn poll(&self, waited: Option<WaitTicket>) -> Result<Step<'_>> {
        if waited.is_none() {
            if let Some(bearer) = self.ready_bearer() {
                return Ok(Step::Ready(bearer));
            }
        }
        let now = self.now();
        let mut machine = self.lock();
        Ok(match machine.poll_authorize(now, waited)? {
            Authorize::Ready(bearer) => Step::Ready(bearer),
            Authorize::Refresh {
                ticket,
                request,
                fallback,
            } => Step::Fetch {
                ticket: ticket.wait_ticket(),
                flight: Flight {
                    auth: self,
                    ticket: Some(ticket),
                },
                request: Box::new(request.to_http(&self.base)),
                fallback,
            },
            Authorize::Wait(w) => Step::Wait(self.event.listen(), w),
        })
    }

    /// Starts an explicit grant.
    pub(crate) fn begin_grant(&self, grant: Grant) -> Result<GrantStep<'_>> {
        let now = self.now();
        let mut machine = self.lock();
        Ok(match machine.begin_grant(grant, now)? {
            GrantStart::Go(ticket, request) => GrantStep::Fetch {
                flight: Flight {
                    auth: self,
                    ticket: Some(ticket),
                },
                request: Box::new(request.to_http(&self.base)),
            },
            GrantStart::Wait(_) => GrantStep::Wait(self.event.listen()),
        })
    }

    /// The refresh grant for `refresh_oauth_token`: the explicit token, else the
    /// latest known one (the configured one until the server rotates it).
    pub(crate) fn refresh_grant(&self, explicit: Option<&str>) -> Result<Grant> {
        let refresh_token = match explicit {
            Some(t) => RefreshToken::new(t),
            None => self.lock().refresh_token().cloned().ok_or_else(|| {
                Error::NotAuthenticated("no refresh token to refresh with".into())
            })?,
        };
        Ok(Grant::RefreshToken { refresh_token })
    }

    /// Feeds the token endpoint's answer (or the failure to get one) to the
    /// machine. On success the tokens are pending: save them, then commit.
    pub(crate) fn handle<'a>(
        &self,
        mut flight: Flight<'a>,
        answer: Result<HttpResponse>,
    ) -> Result<Pending<'a>> {
        let Some(ticket) = flight.ticket.as_ref() else {
            return Err(Error::NotAuthenticated("token flight already ended".into()));
        };
        let parsed = {
            let mut machine = self.lock();
            let parsed = match answer {
                Ok(response) => machine.handle_token_response(ticket, self.now(), &response),
                Err(e) => Err(machine.handle_transport_error(ticket, e)),
            };
            parsed.map_err(|mut e| {
                machine.redact(&mut e);
                e
            })
        };
        match parsed {
            Ok(tokens) => Ok(Pending { flight, tokens }),
            Err(e) => {
                // The machine ended the flight; the ticket is spent.
                flight.ticket = None;
                self.event.notify(usize::MAX);
                event!(warn, error = %e, oauth_error = e.oauth_error_code(), "token request failed");
                Err(e)
            }
        }
    }

    /// The job that saves pending tokens to the store (blocking I/O), if there
    /// is a store.
    pub(crate) fn save_job(&self, pending: &Pending<'_>) -> Option<BlockingJob> {
        self.persistence.store.as_ref()?;
        let persistence = Arc::clone(&self.persistence);
        let tokens = pending.tokens.clone();
        Some(Box::new(move || persistence.save(&tokens)))
    }

    /// Makes saved tokens current and wakes the waiters; queues them for the
    /// callback ([`deliver_job`](Self::deliver_job)).
    pub(crate) fn commit(&self, mut pending: Pending<'_>) -> Result<(Bearer, OAuthTokens)> {
        let Some(ticket) = pending.flight.ticket.take() else {
            return Err(Error::NotAuthenticated("token flight already ended".into()));
        };
        let tokens = pending.tokens;
        let committed = self.lock().commit(ticket, self.now());
        self.event.notify(usize::MAX);
        let bearer = committed?;
        event!(
            debug,
            generation = bearer.generation(),
            expires_at = tokens.expires_at,
            refresh_token = tokens.refresh_token.is_some(),
            "new token set in use"
        );
        if self.persistence.callback.is_some() {
            self.persistence
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(tokens.clone());
        }
        Ok((bearer, tokens))
    }

    /// The job that hands queued token sets to the callback, if there is one.
    pub(crate) fn deliver_job(&self) -> Option<BlockingJob> {
        self.persistence.callback.as_ref()?;
        let persistence = Arc::clone(&self.persistence);
        Some(Box::new(move || persistence.deliver()))
    }

    /// A call made with `bearer` was answered 401. Returns true if the call should be
    /// replayed once with a new token.
    pub(crate) fn unauthorized(&self, bearer: &Bearer) -> bool {
        let mut machine = self.lock();
        if !machine.can_obtain_token() {
            return false;
        }
        let _current = machine.invalidate(bearer.generation());
        event!(
            info,
            generation = bearer.generation(),
            invalidated = _current,
            "access token rejected (401): refreshing, then replaying the call once"
        );
        true
    }
}
