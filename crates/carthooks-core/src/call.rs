//! The per-call driver. Its design — outputs, states, deadlines — is documented
//! on [`Call`], where users of the crate read it too.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::endpoint::{Endpoint, clone_request};
use crate::engine::{Engine, MAX_REPLAYS, Note};
use crate::envelope::ApiResponse;
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::lease::{
    Coordination, Lease, LeaseAnswer, LeaseOutcome, Renewal, SaveAttempt,
    translate as translate_lease,
};
use crate::machine::{Bearer, FlightTicket, PendingTokens, Step, WaitTicket, Want};
use crate::retry::{Attempt, RequestKind, RequestTimeout, RetryDecision, outcome_unknown};
use crate::time::Now;
use crate::tokens::{Grant, OAuthTokens};
use crate::{HttpRequest, HttpResponse};

/// What the I/O loop does next. See [`Call`].
#[must_use]
pub enum Output<T> {
    /// Send this request; hand the outcome to [`Call::handle`].
    Send(HttpRequest),
    /// Wait until `until`, then poll again.
    Sleep {
        /// When to poll again.
        until: Instant,
    },
    /// Wait until the flight `ticket` ends (check [`Engine::in_flight`] after
    /// registering for the wake-up) or until `until`, then poll again.
    WaitFlight {
        /// The flight to wait for.
        ticket: WaitTicket,
        /// The call's deadline, if it has one.
        until: Option<Instant>,
    },
    /// A token request under the shared store's refresh lease: send it as
    /// `Send`, renewing `renew.lease` for `renew.ttl` every `renew.every`
    /// while it is out (a renewal that fails is only logged: a lapsed lease
    /// shows when the save is fenced).
    SendRenewing {
        /// The token request.
        request: HttpRequest,
        /// The lease to keep alive meanwhile (boxed: this rare output does
        /// not grow the common ones).
        renew: Box<Renewal>,
    },
    /// Before this call's token request (only with
    /// [`CallSettings::coordinate`](crate::CallSettings::coordinate)): take the
    /// shared store's refresh lease for `holder` for `ttl` and, if the store
    /// answered, read it again; answer with [`Call::handle_lease`].
    TryLease {
        /// Who asks: this flight.
        holder: String,
        /// How long the lease lasts unless renewed.
        ttl: Duration,
    },
    /// Give this lease back to the store (the flight no longer needs it),
    /// then poll again. Nothing to answer: a lease that cannot be given back
    /// lapses.
    ReleaseLease(Lease),
    /// Save these tokens to the store — fenced by `lease` and then giving it
    /// back, when there is one — and answer with [`Call::handle_saved`]: they
    /// are not used before.
    Save {
        /// The new set.
        tokens: OAuthTokens,
        /// The lease the token request was made under.
        lease: Option<Lease>,
    },
    /// Hand the queued sets ([`Engine::next_delivery`]) to the callback, then poll
    /// again.
    Deliver,
    /// The call is over.
    Done(Result<T>),
}
/// The request a `Send` or `SendRenewing` gave the loop, while it is out
/// ([`Call::exchange`]): what telemetry names an attempt by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange {
    /// The `grant_type` of a token request; `None` for the API request.
    pub grant: Option<&'static str>,
    /// How many times this request was sent before in this call: retries,
    /// and for the API request the replays after a 401 (the HTTP
    /// conventions' `http.request.resend_count`).
    pub resends: u32,
}

/// A request as `Debug` shows it: method and URI only. A token request's body
/// holds the client secret and the refresh token, so no body is printed.
struct RequestLine<'a>(&'a HttpRequest);

impl std::fmt::Debug for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({} body bytes)",
            self.0.method(),
            self.0.uri(),
            self.0.body().len()
        )
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send(request) => f.debug_tuple("Send").field(&RequestLine(request)).finish(),
            Self::SendRenewing { request, renew } => f
                .debug_struct("SendRenewing")
                .field("request", &RequestLine(request))
                .field("renew", renew)
                .finish(),
            Self::Sleep { until } => f.debug_struct("Sleep").field("until", until).finish(),
            Self::WaitFlight { ticket, until } => f
                .debug_struct("WaitFlight")
                .field("ticket", ticket)
                .field("until", until)
                .finish(),
            Self::TryLease { holder, ttl } => f
                .debug_struct("TryLease")
                .field("holder", holder)
                .field("ttl", ttl)
                .finish(),
            Self::ReleaseLease(lease) => f.debug_tuple("ReleaseLease").field(lease).finish(),
            Self::Save { tokens, lease } => f
                .debug_struct("Save")
                .field("tokens", tokens)
                .field("lease", lease)
                .finish(),
            Self::Deliver => f.write_str("Deliver"),
            Self::Done(result) => f.debug_tuple("Done").field(result).finish(),
        }
    }
}

/// How long a call whose token has expired keeps asking a store that is
/// unavailable before it refreshes without it.
pub const STORE_GRACE: Duration = Duration::from_secs(1);

/// How long a call whose flight found the lease held waits before it asks the
/// store again.
const COORDINATION_POLL: Duration = Duration::from_millis(50);

/// Where a token flight is with the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coord {
    /// Not asked (no shared store), or answered: send.
    Done,
    /// Ask before sending.
    Ask,
    /// `TryLease` yielded; waiting for the answer.
    Asked,
}

/// What an API call needs from its endpoint; implemented by [`Endpoint`].
trait Target<T>: Sync {
    fn request(&self, engine: &Engine, bearer: &Bearer) -> Result<HttpRequest>;
    fn parse(&self, response: &HttpResponse) -> Result<T>;
    fn redact(&self, error: Error) -> Error;
    fn kind(&self) -> RequestKind;
}

impl<R: DeserializeOwned> Target<ApiResponse<R>> for Endpoint<R> {
    fn request(&self, engine: &Engine, bearer: &Bearer) -> Result<HttpRequest> {
        self.to_request(&engine.settings().base_url, Some(bearer.header()))
    }
    fn parse(&self, response: &HttpResponse) -> Result<ApiResponse<R>> {
        self.parse_response(response)
    }
    fn redact(&self, error: Error) -> Error {
        Endpoint::redact(self, error)
    }
    fn kind(&self) -> RequestKind {
        RequestKind::Api {
            idempotent: self.is_idempotent(),
        }
    }
}

enum Goal<'a, T> {
    Api(&'a dyn Target<T>),
    Grant(Grant, fn(OAuthTokens) -> T),
}

/// Where an exchange is: about to send, sent, or backing off before sending again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Sent,
    /// Until this instant.
    Backoff(Instant),
}

/// The token request of a flight this call holds.
struct TokenFlight {
    ticket: FlightTicket,
    request: HttpRequest,
    /// The request's `grant_type`.
    grant: &'static str,
    fallback: Option<Bearer>,
    attempt: u32,
    phase: Phase,
    coord: Coord,
    /// When the store was first found unavailable, this flight.
    unavailable_since: Option<Instant>,
    /// Who this flight is to the shared store (named at its first ask).
    holder: Option<String>,
    /// The store's refresh lease, while this flight holds it.
    lease: Option<Lease>,
}

/// New tokens on their way to the store.
struct Saving {
    pending: PendingTokens,
    lease: Option<Lease>,
    /// Whether a save under a lease was asked for (its answer carries a
    /// version to keep).
    fenced: bool,
    step: SaveStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaveStep {
    ToSave,
    Asked,
    Saved,
}

enum State<T> {
    Authorize {
        waited: Option<WaitTicket>,
    },
    Waiting(WaitTicket),
    // The token states are rare: boxed, so that the common ones stay small
    // (the state is moved on every poll).
    Token(Box<TokenFlight>),
    /// New tokens, not yet in use.
    Saving(Box<Saving>),
    Delivering(Box<(Bearer, OAuthTokens)>),
    Api {
        bearer: Bearer,
        attempt: u32,
        phase: Phase,
    },
    Finished(Result<T>),
    Done,
}

/// The per-call driver: one sans-IO state machine from "call wanted" to
/// "result", in the style of str0m's `poll_output` / `handle_input`.
///
/// A [`Call`] is made for an API endpoint ([`Call::api`]) or for an explicit
/// grant ([`Call::grant`]); both run the same machine. The I/O loop asks it what
/// to do with [`poll`](Call::poll) and does it:
///
/// | [`Output`] | the loop |
/// |---|---|
/// | `Send(request)` | sends it, then hands the answer (or the transport error) to [`handle`](Call::handle) |
/// | `Sleep { until }` | waits until `until` (a retry's backoff) |
/// | `WaitFlight { ticket, until }` | waits until another caller's token request ends (or `until`) |
/// | `SendRenewing { request, renew }` | as `Send`, renewing the shared store's lease while the request is out |
/// | `TryLease { holder, ttl }` | (a store shared by processes) takes its refresh lease and reads the store again, then answers [`handle_lease`](Call::handle_lease) with what the store said |
/// | `ReleaseLease(lease)` | gives the lease back: the flight no longer needs it |
/// | `Save { tokens, lease }` | saves new tokens to its store (fenced by the lease, which it then gives back) and answers [`handle_saved`](Call::handle_saved) — they are used only after this |
/// | `Deliver` | hands [`Engine::next_delivery`] sets to its callback, outside every lock |
/// | `Done(result)` | returns `result` |
///
/// Time comes in as `now` on every input ([`Now`]: the monotonic instant and
/// Unix seconds, as the loop read them); times in outputs are instants. Nothing
/// here reads a clock, sends, sleeps or blocks, and the retry jitter comes from
/// the settings' seed, so a whole run is replayed with a scripted transport and
/// made-up moments (see `tests/driver.rs`).
///
/// # States
///
/// ```text
///             +---- 401, once (more for tokens adopted from a store) -----+
///             v                                                           |
///  new --> Authorize ------------- token ready ------------------------> Api <-> Send/handle (Sleep, retry) --> Finished --> Done
///           |   ^   \                                                     ^
///           |   |    +-- must fetch --> Token <-> Send/handle (Sleep, retry)
///           |   |                         |-- tokens --> Saving --Save, commit--> Delivering --Deliver--> Api | Finished (grant)
///           |   |                         +-- failed --> Api (old token valid) | Authorize(waited) | Finished (grant)
///           |   +-- Waiting <-- another call fetches (WaitFlight)
///           +-- no way to a token, deadline --> Finished
/// ```
///
/// | state | input | next state | yields |
/// |---|---|---|---|
/// | `Authorize { waited }` | poll | `Api` (token ready), `Token` (this call fetches), `Waiting` (another call does), `Finished` (no way to a token, deadline) | — |
/// | `Waiting(ticket)` | poll | `Authorize { waited: ticket }` | `WaitFlight` |
/// | `Token`, ready, to coordinate | poll | `Token`, asked | `TryLease` |
/// | `Token`, asked | handle_lease | `Authorize` (a newer stored set adopted: nothing sent), `Token` backing off and to coordinate again (lease held elsewhere; store unavailable, for up to [`STORE_GRACE`]), `Api` with the old token (store unavailable, token still valid), `Token` ready (the lease, or no store; after a lapsed lease, the app's own grant instead of a suspect refresh token) | — |
/// | `Token`, ready | poll | `Token`, sent | `Send(token request)`, or `SendRenewing` under a lease |
/// | `Token`, sent | handle | `Token` backing off (retryable), `Saving` (tokens), `Api` (failed, old token still valid), `Authorize { waited }` (failed: the machine says whether another grant takes over), `Finished` (a grant failed) | — |
/// | `Token`, backing off | poll | `Token`, ready | `Sleep` |
/// | `Saving` | poll | `Saving`, asked (with a store) | `Save { tokens, lease }` |
/// | `Saving`, asked | handle_saved | `Saving`, saved | — |
/// | `Saving`, saved (or no store) | poll | commit → `Delivering` | — |
/// | any, a lease to give back | poll | (unchanged) | `ReleaseLease(lease)`, before anything else |
/// | `Delivering` | poll | `Api` with the new token, or `Finished` (a grant) | `Deliver` (with a callback) |
/// | `Api`, ready | poll | `Api`, sent | `Send(request)` |
/// | `Api`, sent | handle | `Finished` (2xx, or a final answer or error), `Authorize` (401: once, and again, up to 3 times, while the refused token was adopted from a shared store), `Api` backing off (retryable) | — |
/// | `Api`, backing off | poll | `Api`, ready | `Sleep` |
/// | `Finished` | poll | `Done` | `Done(result)` |
/// | any other | poll or handle out of order | `Finished` | `Done(Err(InvalidState))` |
///
/// The flight a call holds (states `Token`, `TokenSent`, `Saving`) is abandoned
/// if the call is dropped there — a cancelled future, a panic in the loop — so
/// the callers waiting for it try again instead of hanging; its lease, if it
/// holds one, lapses. The shared store's protocol is documented on
/// [`Lease`].
///
/// Deadlines: with [`CallSettings::call_timeout`](crate::CallSettings) every
/// attempt carries a [`RequestTimeout`] of the time left, a retry wait that would
/// end past the deadline is not started, and a wait for another caller's flight
/// ends at it.
#[must_use = "a call does nothing until it is polled"]
pub struct Call<'a, T> {
    engine: &'a Engine,
    goal: Goal<'a, T>,
    state: State<T>,
    deadline: Option<Instant>,
    /// Replays after a 401 so far.
    replays: u8,
    attempts: u32,
    status: Option<StatusCode>,
    /// Leases to give back at the next poll (a flight that ended holding one).
    give_back: Vec<Lease>,
}

impl<T> std::fmt::Debug for Call<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("attempts", &self.attempts)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<'a, R: DeserializeOwned> Call<'a, ApiResponse<R>> {
    /// A call of `endpoint`, wanted at `now`.
    pub fn api(engine: &'a Engine, endpoint: &'a Endpoint<R>, now: Now) -> Self {
        Self::new(engine, Goal::Api(endpoint), now)
    }
}

impl<'a> Call<'a, OAuthTokens> {
    /// An explicit grant (after any token request in flight), wanted at `now`;
    /// its result is the new token set, in use by then.
    pub fn grant(engine: &'a Engine, grant: Grant, now: Now) -> Self {
        Self::new(engine, Goal::Grant(grant, std::convert::identity), now)
    }
}

impl<T> Drop for Call<'_, T> {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Done);
        self.release(state);
    }
}

impl<'a, T> Call<'a, T> {
    fn new(engine: &'a Engine, goal: Goal<'a, T>, now: Now) -> Self {
        let deadline = engine
            .settings()
            .call_timeout
            .and_then(|t| now.instant.checked_add(t));
        Self {
            engine,
            goal,
            state: State::Authorize { waited: None },
            deadline,
            replays: 0,
            attempts: 0,
            status: None,
            give_back: Vec::new(),
        }
    }

    /// True while this call holds the token flight (from its `TryLease` to its
    /// `Save`): the only time it may hold a shared store's refresh lease.
    pub fn holds_flight(&self) -> bool {
        matches!(self.state, State::Token(_) | State::Saving(..))
    }

    /// API requests sent so far (token requests not counted).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The status of the last API answer, if any.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The request out now (between a `Send` or `SendRenewing` and its
    /// [`handle`](Self::handle)): a token request or the API request, and how
    /// often it was sent before. `None` when no request is out.
    pub fn exchange(&self) -> Option<Exchange> {
        match &self.state {
            State::Token(flight) if flight.phase == Phase::Sent => Some(Exchange {
                grant: Some(flight.grant),
                resends: flight.attempt.saturating_sub(1),
            }),
            State::Api {
                phase: Phase::Sent, ..
            } => Some(Exchange {
                grant: None,
                resends: self.attempts.saturating_sub(1),
            }),
            _ => None,
        }
    }

    /// When the call must be over, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, now: Now) -> Output<T> {
        loop {
            if let Some(lease) = self.give_back.pop() {
                return Output::ReleaseLease(lease);
            }
            let state = std::mem::replace(&mut self.state, State::Done);
            self.state = match state {
                State::Authorize { waited } => self.authorize(waited, now),
                State::Waiting(ticket) => {
                    self.state = State::Authorize {
                        waited: Some(ticket),
                    };
                    return Output::WaitFlight {
                        ticket,
                        until: self.deadline,
                    };
                }
                State::Token(mut flight) => match flight.phase {
                    Phase::Backoff(until) => {
                        flight.phase = Phase::Ready;
                        self.state = State::Token(flight);
                        return Output::Sleep { until };
                    }
                    Phase::Ready if flight.coord == Coord::Ask => {
                        flight.coord = Coord::Asked;
                        let holder = flight
                            .holder
                            .get_or_insert_with(|| self.engine.next_holder())
                            .clone();
                        self.state = State::Token(flight);
                        return Output::TryLease {
                            holder,
                            ttl: self.engine.settings().lease_ttl,
                        };
                    }
                    Phase::Ready if flight.coord == Coord::Asked => self.misuse(
                        State::Token(flight),
                        "polled before the coordination was answered",
                    ),
                    Phase::Ready => match self.with_timeout(clone_request(&flight.request), now) {
                        Ok(request) => {
                            flight.attempt += 1;
                            flight.phase = Phase::Sent;
                            let renew = flight
                                .lease
                                .clone()
                                .map(|lease| Renewal::new(lease, self.engine.settings().lease_ttl));
                            self.state = State::Token(flight);
                            return match renew {
                                Some(renew) => Output::SendRenewing {
                                    request,
                                    renew: Box::new(renew),
                                },
                                None => Output::Send(request),
                            };
                        }
                        Err(e) => self.token_failed(flight, e),
                    },
                    Phase::Sent => {
                        self.misuse(State::Token(flight), "polled while a request is out")
                    }
                },
                State::Saving(mut saving) => {
                    match saving.step {
                        SaveStep::ToSave if self.engine.settings().save_tokens => {
                            let tokens = saving.pending.tokens().clone();
                            let lease = saving.lease.take();
                            saving.fenced = lease.is_some();
                            saving.step = SaveStep::Asked;
                            // Committed once answered: the store has the set by then.
                            self.state = State::Saving(saving);
                            return Output::Save { tokens, lease };
                        }
                        SaveStep::Asked => {
                            self.state = self.misuse(
                                State::Saving(saving),
                                "polled before the save was answered",
                            );
                            continue;
                        }
                        SaveStep::ToSave | SaveStep::Saved => {}
                    }
                    // Nowhere to save under it (not expected: a lease comes
                    // with a store): given back.
                    self.give_back.extend(saving.lease.take());
                    match self.engine.commit(saving.pending, now.unix) {
                        Ok(committed) => {
                            self.state = State::Delivering(Box::new(committed));
                            if self.engine.settings().deliver_tokens {
                                return Output::Deliver;
                            }
                            continue;
                        }
                        Err(e) => State::Finished(Err(e)),
                    }
                }
                State::Delivering(committed) => match (&self.goal, *committed) {
                    (Goal::Api(_), (bearer, _)) => State::Api {
                        bearer,
                        attempt: 0,
                        phase: Phase::Ready,
                    },
                    (Goal::Grant(_, done), (_, tokens)) => State::Finished(Ok(done(tokens))),
                },
                State::Api {
                    bearer,
                    attempt,
                    phase: Phase::Backoff(until),
                } => {
                    self.state = State::Api {
                        bearer,
                        attempt,
                        phase: Phase::Ready,
                    };
                    return Output::Sleep { until };
                }
                State::Api {
                    bearer,
                    attempt,
                    phase: Phase::Ready,
                } => {
                    let Goal::Api(target) = &self.goal else {
                        return self.finish(Err(Error::InvalidState("API step of a grant")));
                    };
                    let built = target
                        .request(self.engine, &bearer)
                        .and_then(|r| self.with_timeout(r, now));
                    match built {
                        Ok(request) => {
                            self.attempts += 1;
                            self.state = State::Api {
                                bearer,
                                attempt: attempt + 1,
                                phase: Phase::Sent,
                            };
                            return Output::Send(request);
                        }
                        Err(e) => State::Finished(Err(self.redact(e))),
                    }
                }
                sent @ State::Api {
                    phase: Phase::Sent, ..
                } => self.misuse(sent, "polled while a request is out"),
                State::Finished(result) => return self.finish(result),
                State::Done => {
                    return Output::Done(Err(Error::InvalidState("polled after Done")));
                }
            };
        }
    }

    /// Hands over the outcome of the last `Send`, at `now`.
    pub fn handle(&mut self, answer: std::result::Result<HttpResponse, TransportError>, now: Now) {
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match state {
            State::Token(flight) if flight.phase == Phase::Sent => {
                self.token_answer(flight, answer, now)
            }
            State::Api {
                bearer,
                attempt,
                phase: Phase::Sent,
            } => self.api_answer(bearer, attempt, answer, now),
            other => self.misuse(other, "an answer the call was not waiting for"),
        };
    }

    fn finish(&mut self, result: Result<T>) -> Output<T> {
        self.state = State::Done;
        Output::Done(result)
    }

    fn authorize(&mut self, waited: Option<WaitTicket>, now: Now) -> State<T> {
        if self.deadline.is_some_and(|d| now.instant >= d) {
            return State::Finished(Err(call_timeout_error()));
        }
        let want = match &self.goal {
            Goal::Api(_) => {
                // The fast path: a fresh token under the shared read lock.
                if waited.is_none()
                    && let Some(bearer) = self.engine.ready_bearer(now.unix)
                {
                    return State::Api {
                        bearer,
                        attempt: 0,
                        phase: Phase::Ready,
                    };
                }
                Want::Call { waited }
            }
            Goal::Grant(grant, _) => Want::Grant(grant.clone()),
        };
        let step = self.engine.write().authorize(now.unix, want);
        match step {
            Ok(Step::Ready(bearer)) => State::Api {
                bearer,
                attempt: 0,
                phase: Phase::Ready,
            },
            Ok(Step::Fetch {
                ticket,
                request,
                fallback,
            }) => State::Token(Box::new(TokenFlight {
                ticket,
                grant: request.grant.grant_type(),
                request: request.to_http(&self.engine.settings().base_url),
                fallback,
                attempt: 0,
                phase: Phase::Ready,
                coord: if self.engine.settings().coordinate {
                    Coord::Ask
                } else {
                    Coord::Done
                },
                unavailable_since: None,
                holder: None,
                lease: None,
            })),
            Ok(Step::Wait(ticket)) => State::Waiting(ticket),
            Err(e) => State::Finished(Err(self.redact(e))),
        }
    }

    /// Hands over what the store answered to [`Output::TryLease`], at `now`;
    /// returns what it came to (`None` when no lease was asked for: the call
    /// then ends with [`Error::InvalidState`]).
    pub fn handle_lease(&mut self, answer: LeaseAnswer, now: Now) -> Option<LeaseOutcome> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let (state, outcome) = match state {
            State::Token(flight) if flight.coord == Coord::Asked => {
                let (state, outcome) = self.coordinated(flight, answer, now);
                (state, Some(outcome))
            }
            other => (self.misuse(other, "a lease answer without TryLease"), None),
        };
        self.state = state;
        outcome
    }

    /// Hands over what the store did with [`Output::Save`], at `now`: `None`
    /// when it failed (the loop reports that; the tokens are used anyway,
    /// kept in memory).
    pub fn handle_saved(&mut self, answer: Option<SaveAttempt>, now: Now) {
        let _ = now;
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match state {
            State::Saving(mut saving) if saving.step == SaveStep::Asked => {
                match answer {
                    // A save without a lease keeps no version.
                    Some(SaveAttempt::Saved { version }) if saving.fenced => {
                        self.engine.set_stored_version(version);
                    }
                    Some(SaveAttempt::Fenced) => self.engine.note(Note::SaveFenced),
                    _ => {}
                }
                saving.step = SaveStep::Saved;
                State::Saving(saving)
            }
            other => self.misuse(other, "a save answer without Save"),
        };
    }

    /// Applies the store's answer to the flight that asked.
    fn coordinated(
        &mut self,
        mut flight: Box<TokenFlight>,
        answer: LeaseAnswer,
        now: Now,
    ) -> (State<T>, LeaseOutcome) {
        let coordinated = translate_lease(
            answer,
            self.engine.stored_version(),
            self.engine.current_identity(),
        );
        if let Some(version) = coordinated.seen {
            self.engine.set_stored_version(version);
        }
        if let Some((stored, in_use)) = coordinated.foreign {
            self.engine.note(Note::ForeignStoredSet { stored, in_use });
        }
        if coordinated.lapsed {
            self.engine.note(Note::LeaseLapsed);
        }
        // Asked again under one holder, the store extends the lease it gave;
        // one it replaced is given back.
        if let Some(before) = flight.lease.take()
            && coordinated.lease.as_ref() != Some(&before)
        {
            self.give_back.push(before);
        }
        flight.lease = coordinated.lease;
        let outcome = coordinated.outcome;
        let api = matches!(self.goal, Goal::Api(_));
        let said = match &outcome {
            _ if coordinated.lapsed => LeaseOutcome::Lapsed,
            Coordination::Newer(_) if api => LeaseOutcome::Adopted,
            Coordination::Unavailable => LeaseOutcome::Unavailable,
            _ if flight.lease.is_some() => LeaseOutcome::Acquired,
            _ => LeaseOutcome::Waited,
        };
        let state = match outcome {
            // An explicit grant is made whatever the store holds.
            Coordination::Newer(tokens) if matches!(self.goal, Goal::Api(_)) => {
                self.give_back.extend(flight.lease.take());
                match self.engine.adopt(flight.ticket, tokens, now.unix) {
                    // Fresh: used at once. Stale: a new flight, with the
                    // adopted refresh token, asks the store again.
                    Ok(_) => State::Authorize { waited: None },
                    Err(e) => State::Finished(Err(self.redact(e))),
                }
            }
            Coordination::Held(remaining) => {
                let delay = remaining.min(COORDINATION_POLL);
                let late = self
                    .deadline
                    .is_some_and(|d| now.instant.checked_add(delay).is_none_or(|end| end >= d));
                if late {
                    self.token_failed(flight, call_timeout_error())
                } else {
                    flight.coord = Coord::Ask;
                    flight.phase = Phase::Backoff(now.instant + delay);
                    State::Token(flight)
                }
            }
            // An explicit grant is made as asked, whatever the store holds.
            Coordination::LeasedAfterLapse | Coordination::NewerAfterLapse(_)
                if !matches!(self.goal, Goal::Api(_)) =>
            {
                flight.coord = Coord::Done;
                State::Token(flight)
            }
            Coordination::LeasedAfterLapse | Coordination::NewerAfterLapse(_) => {
                let replaced = self
                    .engine
                    .write()
                    .replace_suspect_refresh(&mut flight.ticket);
                match (replaced, outcome) {
                    (Ok(Some(request)), _) => {
                        flight.grant = request.grant.grant_type();
                        flight.request = request.to_http(&self.engine.settings().base_url);
                        flight.coord = Coord::Done;
                        State::Token(flight)
                    }
                    // A refresh nothing stands behind (a user's): the
                    // newer set, suspect or not, is the only way on. A
                    // flight that is a grant already sends it instead.
                    (Ok(None), Coordination::NewerAfterLapse(tokens))
                        if flight.ticket.is_refresh() =>
                    {
                        self.give_back.extend(flight.lease.take());
                        match self.engine.adopt(flight.ticket, tokens, now.unix) {
                            Ok(_) => State::Authorize { waited: None },
                            Err(e) => State::Finished(Err(self.redact(e))),
                        }
                    }
                    (Ok(None), _) => {
                        flight.coord = Coord::Done;
                        State::Token(flight)
                    }
                    (Err(e), _) => {
                        self.release(State::Token(flight));
                        State::Finished(Err(self.redact(e)))
                    }
                }
            }
            Coordination::Unavailable => {
                if let (Goal::Api(_), Some(bearer)) = (&self.goal, flight.fallback.clone()) {
                    // Ahead of expiry: no refresh now; a later call asks
                    // again (after `min_refresh_interval`).
                    self.release(State::Token(flight));
                    State::Api {
                        bearer,
                        attempt: 0,
                        phase: Phase::Ready,
                    }
                } else {
                    let since = *flight.unavailable_since.get_or_insert(now.instant);
                    let waited_enough = now
                        .instant
                        .checked_duration_since(since)
                        .unwrap_or_default()
                        >= STORE_GRACE;
                    let late = self.deadline.is_some_and(|d| {
                        now.instant
                            .checked_add(COORDINATION_POLL)
                            .is_none_or(|end| end >= d)
                    });
                    // A grant that presents no refresh token risks no
                    // reuse: it goes ahead at once.
                    if waited_enough || late || !flight.ticket.is_refresh() {
                        flight.coord = Coord::Done;
                    } else {
                        flight.coord = Coord::Ask;
                        flight.phase = Phase::Backoff(now.instant + COORDINATION_POLL);
                    }
                    State::Token(flight)
                }
            }
            _ => {
                flight.coord = Coord::Done;
                State::Token(flight)
            }
        };
        (state, said)
    }

    fn token_answer(
        &mut self,
        mut flight: Box<TokenFlight>,
        answer: std::result::Result<HttpResponse, TransportError>,
        now: Now,
    ) -> State<T> {
        let success = matches!(&answer, Ok(r) if r.status().is_success());
        if !success
            && let Some(delay) = self.retry_delay(flight.attempt, RequestKind::Token, &answer, now)
        {
            flight.phase = Phase::Backoff(now.instant + delay);
            return State::Token(flight);
        }
        let TokenFlight {
            ticket,
            fallback,
            lease,
            ..
        } = *flight;
        let waited = ticket.wait_ticket();
        let handled = {
            let mut machine = self.engine.write();
            match answer {
                Ok(response) => machine.handle_token_response(ticket, now.unix, &response),
                Err(e) => Err(machine
                    .handle_transport_error(ticket, transport_failure(RequestKind::Token, e))),
            }
        };
        match handled {
            Ok(pending) => State::Saving(Box::new(Saving {
                pending,
                lease,
                fenced: false,
                step: SaveStep::ToSave,
            })),
            Err(e) => {
                self.give_back.extend(lease);
                self.after_token_failure(e, fallback, waited)
            }
        }
    }

    /// The flight ended before its request could be sent (the deadline passed).
    fn token_failed(&mut self, mut flight: Box<TokenFlight>, error: Error) -> State<T> {
        self.give_back.extend(flight.lease.take());
        let waited = flight.ticket.wait_ticket();
        let error = self
            .engine
            .write()
            .handle_transport_error(flight.ticket, error);
        self.after_token_failure(error, flight.fallback, waited)
    }

    fn after_token_failure(
        &mut self,
        error: Error,
        fallback: Option<Bearer>,
        waited: WaitTicket,
    ) -> State<T> {
        self.engine.flight_ended();
        self.engine.note(Note::TokenRequestFailed(&error));
        match (&self.goal, fallback) {
            (Goal::Grant(..), _) => State::Finished(Err(error)),
            // The refresh failed but the current token is still valid.
            (Goal::Api(_), Some(bearer)) => State::Api {
                bearer,
                attempt: 0,
                phase: Phase::Ready,
            },
            // Ask again as a waiter of our own flight: the machine gives back the
            // failure, unless another grant can take over.
            (Goal::Api(_), None) => State::Authorize {
                waited: Some(waited),
            },
        }
    }

    fn api_answer(
        &mut self,
        bearer: Bearer,
        attempt: u32,
        answer: std::result::Result<HttpResponse, TransportError>,
        now: Now,
    ) -> State<T> {
        let Goal::Api(target) = &self.goal else {
            return State::Finished(Err(Error::InvalidState("API answer to a grant")));
        };
        let target = *target;
        if let Ok(response) = &answer {
            let status = response.status();
            self.status = Some(status);
            if status.is_success() {
                return State::Finished(target.parse(response).map_err(|e| self.redact(e)));
            }
            let may_replay =
                self.replays == 0 || (self.replays < MAX_REPLAYS && self.engine.adopted(&bearer));
            if status == StatusCode::UNAUTHORIZED && may_replay && self.engine.unauthorized(&bearer)
            {
                self.replays += 1;
                return State::Authorize { waited: None };
            }
        }
        if let Some(delay) = self.retry_delay(attempt, target.kind(), &answer, now) {
            return State::Api {
                bearer,
                attempt,
                phase: Phase::Backoff(now.instant + delay),
            };
        }
        State::Finished(match answer {
            Ok(response) => target
                .parse(&response)
                .map_err(|e| with_retry_after(self.redact(e), &response, now.unix)),
            Err(e) => Err(self.redact(transport_failure(target.kind(), e))),
        })
    }

    /// The wait before sending again, if the policy and the deadline allow one.
    fn retry_delay(
        &self,
        attempt: u32,
        kind: RequestKind,
        answer: &std::result::Result<HttpResponse, TransportError>,
        now: Now,
    ) -> Option<Duration> {
        let outcome = match answer {
            Ok(response) => Attempt::Answered(response),
            Err(e) => Attempt::Failed(e),
        };
        let settings = self.engine.settings();
        let decision =
            settings
                .retry
                .decide(attempt, kind, outcome, now.unix, self.engine.jitter());
        let RetryDecision::RetryAfter(delay) = decision else {
            return None;
        };
        // A wait that would end past the deadline is not started.
        if let Some(deadline) = self.deadline
            && now
                .instant
                .checked_add(delay)
                .is_none_or(|end| end >= deadline)
        {
            return None;
        }
        self.engine.note(Note::Retrying {
            attempt,
            delay,
            status: answer.as_ref().ok().map(|r| r.status()),
            token_request: kind == RequestKind::Token,
        });
        Some(delay)
    }

    /// `request` with the time left of the call as its timeout.
    fn with_timeout(&self, mut request: HttpRequest, now: Now) -> Result<HttpRequest> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(now.instant);
            if left.is_zero() {
                return Err(call_timeout_error());
            }
            request
                .extensions_mut()
                .insert(RequestTimeout(left.min(self.engine.settings().timeout)));
        }
        Ok(request)
    }

    fn redact(&self, error: Error) -> Error {
        let error = self.engine.redact(error);
        match &self.goal {
            Goal::Api(target) => target.redact(error),
            Goal::Grant(..) => error,
        }
    }

    /// The loop drove the call out of order: give up, releasing any flight held.
    fn misuse(&mut self, state: State<T>, what: &'static str) -> State<T> {
        self.release(state);
        State::Finished(Err(Error::InvalidState(what)))
    }

    /// Abandons the flight `state` holds, if any, so its waiters try again;
    /// its lease is given back at the next poll.
    fn release(&mut self, state: State<T>) {
        let ticket = match state {
            State::Token(flight) => {
                let flight = *flight;
                self.give_back.extend(flight.lease);
                flight.ticket
            }
            State::Saving(saving) => {
                let saving = *saving;
                self.give_back.extend(saving.lease);
                saving.pending.into_ticket()
            }
            _ => return,
        };
        self.engine.write().abandon(ticket);
        self.engine.flight_ended();
    }
}

/// A transport failure as the call's error: a request that may have reached the
/// server and must not be sent twice is [`Error::OutcomeUnknown`].
fn transport_failure(kind: RequestKind, error: TransportError) -> Error {
    if outcome_unknown(kind, &error) {
        Error::OutcomeUnknown(error)
    } else {
        Error::Transport(error)
    }
}

/// A 429 or 503 answer's error with the wait its `Retry-After` asked for.
fn with_retry_after(mut error: Error, response: &HttpResponse, now: u64) -> Error {
    if let Error::Api(service) | Error::OAuth(service) = &mut error
        && matches!(service.status.as_u16(), 429 | 503)
    {
        service.retry_after = crate::retry::retry_after(response, now);
    }
    error
}

/// The error of a call whose `call_timeout` ran out before (another) attempt.
pub fn call_timeout_error() -> Error {
    Error::Transport(
        TransportError::new(TransportErrorKind::Timeout)
            .with_detail("call_timeout elapsed before the call could complete")
            .mark_never_sent(),
    )
}
