//! The token coordinator shared by the async and the blocking client.
//!
//! It owns the [`TokenMachine`] behind a mutex, the event that wakes callers waiting
//! for a token request in flight, the clock and the persistence callback. Every
//! decision is the machine's; this layer only adds locking, waking and the
//! callback. Both clients run the same short loop over it, differing only in how
//! they send and how they wait — see `Client::bearer` and `BlockingClient::bearer`.
//!
//! Lost wake-ups cannot happen: a waiter registers its listener while it still
//! holds the lock under which it saw the flight, and the flight's owner changes the
//! state under that lock before it notifies.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use carthooks_core::{
    Authorize, BaseUrl, Bearer, Clock, Error, FlightTicket, Grant, GrantStart, HttpRequest,
    HttpResponse, OAuthTokens, RefreshToken, Result, TokenCallback, TokenMachine, WaitTicket,
};
use event_listener::{Event, EventListener};

use crate::log::event;
use crate::store::TokenStore;

pub(crate) struct Auth {
    machine: RwLock<TokenMachine>,
    event: Event,
    clock: Arc<dyn Clock>,
    callback: Option<TokenCallback>,
    store: Option<Arc<dyn TokenStore>>,
    base: BaseUrl,
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
        callback: Option<TokenCallback>,
        store: Option<Arc<dyn TokenStore>>,
        base: BaseUrl,
    ) -> Self {
        Self {
            machine: RwLock::new(machine),
            event: Event::new(),
            clock,
            callback,
            store,
            base,
        }
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

    /// Ends a flight with the token endpoint's answer (or the failure to get one).
    /// On success the callback sees the tokens before they become current.
    pub(crate) fn finish(
        &self,
        mut flight: Flight<'_>,
        answer: Result<HttpResponse>,
    ) -> Result<(Bearer, OAuthTokens)> {
        let Some(ticket) = flight.ticket.take() else {
            return Err(Error::NotAuthenticated("token flight already ended".into()));
        };
        let parsed = {
            let mut machine = self.lock();
            match answer {
                Ok(response) => machine.handle_token_response(&ticket, self.now(), &response),
                Err(e) => Err(machine.handle_transport_error(&ticket, e)),
            }
        };
        let tokens = match parsed {
            Ok(tokens) => tokens,
            Err(e) => {
                // The machine ended the flight; `ticket` is spent.
                drop(ticket);
                self.event.notify(usize::MAX);
                event!(warn, error = %e, oauth_error = e.oauth_error_code(), "token request failed");
                return Err(e);
            }
        };
        // Persist before use: a store, then the callback. Neither can lose the
        // tokens the server just issued (the old refresh token may be spent).
        if let Some(store) = &self.store {
            if let Err(_e) = store.save(&tokens) {
                event!(warn, error = %_e, "token store save failed; the new tokens are kept in memory");
            }
        }
        if let Some(callback) = &self.callback {
            if catch_unwind(AssertUnwindSafe(|| callback(&tokens))).is_err() {
                event!(
                    warn,
                    "on_token_refresh callback panicked; the new tokens are kept"
                );
            }
        }
        let committed = self.lock().commit(ticket, self.now());
        self.event.notify(usize::MAX);
        if let Ok(_bearer) = &committed {
            event!(
                debug,
                generation = _bearer.generation(),
                expires_at = tokens.expires_at,
                refresh_token = tokens.refresh_token.is_some(),
                "new token set in use"
            );
        }
        committed.map(|bearer| (bearer, tokens))
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
