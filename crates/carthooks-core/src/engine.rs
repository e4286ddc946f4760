//! The state one client's calls share. Its design is documented on [`Engine`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::machine::{Bearer, PendingTokens, TokenMachine, WaitTicket};
use crate::retry::{Jitter, RetryPolicy};
use crate::secret::RefreshToken;
use crate::tokens::{Grant, OAuthTokens};
use crate::url::BaseUrl;

/// What every call of one engine is sent with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallSettings {
    /// Where requests go.
    pub base_url: BaseUrl,
    /// When to send again.
    pub retry: RetryPolicy,
    /// Most time one HTTP exchange may take (the transport's own timeout; also
    /// the cap of every [`RequestTimeout`](crate::RequestTimeout)).
    pub timeout: Duration,
    /// Deadline of a whole call (every attempt, retry wait and token request).
    pub call_timeout: Option<Duration>,
    /// Yield [`Output::Save`](crate::Output::Save) before new tokens are used
    /// (there is a token store to save them to).
    pub save_tokens: bool,
    /// Queue every committed token set for [`Engine::next_delivery`] and yield
    /// [`Output::Deliver`](crate::Output::Deliver) (there is a callback).
    pub deliver_tokens: bool,
    /// Take the shared store's refresh lease before every token request
    /// ([`Output::TryLease`](crate::Output::TryLease); the store is shared
    /// with other processes). See [`Lease`](crate::Lease).
    pub coordinate: bool,
    /// How long a refresh lease lasts unless renewed (renewed every third of
    /// it while its token request is out). Default 5 s.
    pub lease_ttl: Duration,
    /// Who holds this engine's leases: each flight asks as
    /// `{lease_holder}-{n}`. Give each client of a fleet its own (carthooks-client
    /// uses the process id, a counter and the clock's nanoseconds). Default
    /// `"carthooks"`.
    pub lease_holder: String,
    /// Seed of the retry jitter. The engine draws no randomness of its own:
    /// give each client a random seed (carthooks-client takes one from the
    /// OS), or a fixed one to replay a run. Default 0.
    pub jitter_seed: u64,
}

impl CallSettings {
    /// Settings with `base_url`, the default retry policy, a 30 s exchange
    /// timeout, no call timeout, no saving and no delivery.
    pub fn new(base_url: BaseUrl) -> Self {
        Self {
            base_url,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            call_timeout: None,
            save_tokens: false,
            deliver_tokens: false,
            coordinate: false,
            lease_ttl: Duration::from_secs(5),
            lease_holder: "carthooks".to_owned(),
            jitter_seed: 0,
        }
    }
}

/// The machine under the write lock. Dropping it publishes the change to the
/// fast path before the lock is released.
pub(crate) struct Write<'a> {
    guard: RwLockWriteGuard<'a, TokenMachine>,
    engine: &'a Engine,
}

impl Deref for Write<'_> {
    type Target = TokenMachine;
    fn deref(&self) -> &TokenMachine {
        &self.guard
    }
}

impl DerefMut for Write<'_> {
    fn deref_mut(&mut self) -> &mut TokenMachine {
        &mut self.guard
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        // Still under the lock: a reader that took the epoch before this
        // change uses what was true before it, as if it had read first.
        self.engine.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// Something that happened in a call, worth a log line. Holds no secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum Note<'a> {
    /// Attempt `attempt` failed; the call sends again after `delay`.
    Retrying {
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// The wait before the next one.
        delay: Duration,
        /// The answer's status, when there was an answer.
        status: Option<http::StatusCode>,
        /// True for a token request, false for an API call.
        token_request: bool,
    },
    /// A token request failed (after its retries); the error is already redacted.
    TokenRequestFailed(&'a Error),
    /// A new token set is in use.
    NewTokens {
        /// Its generation.
        generation: u64,
        /// The set (print only its non-secret fields).
        tokens: &'a OAuthTokens,
    },
    /// The server answered 401 to a call made with the token of `generation`:
    /// the call is replayed with a new token (once, or more while the refused
    /// tokens were adopted from a shared store).
    Rejected {
        /// The rejected token's generation.
        generation: u64,
        /// Whether it was still the current token (else a newer one is used).
        invalidated: bool,
    },
    /// The shared store's previous refresh lease lapsed (its holder died or
    /// hung mid-refresh): the stored refresh token may be spent.
    LeaseLapsed,
    /// The shared store holds a set that acts for someone else than the set
    /// in use; it is not adopted. A store failure worth reporting: each
    /// identity needs a store of its own.
    ForeignStoredSet {
        /// Whom the stored set acts for.
        stored: crate::TokenIdentity,
        /// Whom the set in use acts for.
        in_use: crate::TokenIdentity,
    },
    /// A save under this call's lease was refused: the lease lapsed and a
    /// newer set was stored meanwhile. The new set is kept in memory only.
    SaveFenced,
}

type Hook = Box<dyn Fn() + Send + Sync>;
type Observer = Box<dyn Fn(&Note<'_>) + Send + Sync>;

/// Engine ids, unique in the process (keys of the per-thread bearer cache).
static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// How many engines' bearers one thread keeps.
const CACHED_ENGINES: usize = 4;

thread_local! {
    /// This thread's copies of fresh bearers: (engine id, epoch, fresh until,
    /// bearer). A copy per thread, so that cloning one into a request touches no
    /// reference count another core is also writing (shared counters made two
    /// threads checking one token twice as slow as one).
    static BEARERS: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// A fresh bearer as one thread last saw it.
struct Cached {
    engine: u64,
    epoch: u64,
    /// The machine's [`fresh_until`](TokenMachine::fresh_until) at that epoch.
    fresh_until: u64,
    bearer: Bearer,
}

/// The state one client's calls share: the token machine behind a lock, the
/// call settings and the jitter source (seeded from the settings). [`Call`](crate::Call)s borrow
/// it; see [the driver](crate::Call) for how a call runs.
///
/// The engine holds no I/O object. It tells the outside world two things,
/// through hooks the client installs:
///
/// - [`on_flight_end`](Engine::on_flight_end): a token request ended (committed,
///   failed or abandoned). A client wakes the callers waiting for it
///   ([`Output::WaitFlight`](crate::Output::WaitFlight)). A waiter must register
///   its wake-up *before* it checks [`Engine::in_flight`], then wait only if the
///   flight is still in the air: the engine changes the state before it calls the
///   hook, so no wake-up is lost.
/// - [`observe`](Engine::observe): [`Note`]s worth a log line (a retry, a
///   refused token, a new token set), without secrets, so a client can turn them
///   into `tracing` events inside the call's span.
pub struct Engine {
    id: u64,
    /// Bumped by every change to the machine (any write lock, before it is
    /// released): a cached bearer of an older epoch is not used.
    epoch: AtomicU64,
    machine: RwLock<TokenMachine>,
    settings: CallSettings,
    jitter: Jitter,
    deliveries: Mutex<VecDeque<OAuthTokens>>,
    flight_end: Option<Hook>,
    observer: Option<Observer>,
    /// The shared store's version of the set in use (0: none, or a store
    /// without versions).
    stored_version: AtomicU64,
    /// Lease holders named so far (one per coordinating flight).
    holders: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Engine");
        // `try_read`: formatting must never wait for (or deadlock on) the lock.
        match self.machine.try_read() {
            Ok(machine) => d.field("machine", &*machine),
            Err(_) => d.field("machine", &"(locked)"),
        };
        d.field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `machine`. It reads no clock: the time comes with every
    /// input of its calls ([`Now`](crate::Now)).
    pub fn new(machine: TokenMachine, settings: CallSettings) -> Self {
        Self {
            id: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(1),
            machine: RwLock::new(machine),
            jitter: Jitter::new(settings.jitter_seed),
            settings,
            deliveries: Mutex::new(VecDeque::new()),
            flight_end: None,
            observer: None,
            stored_version: AtomicU64::new(0),
            holders: AtomicU64::new(0),
        }
    }

    /// Starts from a set the shared store holds as `version` (the one the
    /// machine was given at start).
    pub fn with_stored_version(self, version: u64) -> Self {
        self.stored_version.store(version, Ordering::Release);
        self
    }

    /// The shared store's version of the set in use: a stored set is adopted
    /// only with a larger one.
    pub fn stored_version(&self) -> u64 {
        self.stored_version.load(Ordering::Acquire)
    }

    /// Calls `hook` every time a token request ends (see [`Engine`]).
    pub fn on_flight_end(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.flight_end = Some(Box::new(hook));
        self
    }

    /// Calls `observer` with every [`Note`].
    pub fn observe(mut self, observer: impl Fn(&Note<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// The settings calls are made with.
    pub fn settings(&self) -> &CallSettings {
        &self.settings
    }

    /// True while the flight `ticket` waits for is still in the air.
    pub fn in_flight(&self, ticket: WaitTicket) -> bool {
        self.read().in_flight(ticket)
    }

    /// Whom the token set in use acts for, when known (no secret is copied).
    pub fn current_identity(&self) -> Option<crate::TokenIdentity> {
        self.read().current_identity()
    }

    /// The current token set, if any.
    pub fn current_tokens(&self) -> Option<OAuthTokens> {
        self.read().current_tokens()
    }

    /// The current token when it is fresh at `now` (Unix seconds): nothing to
    /// do before using it.
    ///
    /// The hot path of every call: without a lock or a shared write when this
    /// thread has seen the token since it last changed.
    pub fn ready_bearer(&self, now: u64) -> Option<Bearer> {
        // A cached bearer of the current epoch is what the machine would answer
        // now: nothing changed since it was read.
        let epoch = self.epoch.load(Ordering::Acquire);
        let cached = BEARERS.with(|b| {
            b.borrow()
                .iter()
                .find(|c| c.engine == self.id && c.epoch == epoch && now < c.fresh_until)
                .map(|c| c.bearer.clone())
        });
        if cached.is_some() {
            return cached;
        }
        let (bearer, cached) = {
            let machine = self.read();
            let bearer = machine.ready_bearer(now)?;
            // Under the read lock the epoch cannot move.
            let cached = Cached {
                engine: self.id,
                epoch: self.epoch.load(Ordering::Acquire),
                fresh_until: machine.fresh_until(),
                bearer: bearer.thread_copy(),
            };
            (bearer, cached)
        };
        BEARERS.with(|b| {
            let mut b = b.borrow_mut();
            b.retain(|c| c.engine != self.id);
            if b.len() >= CACHED_ENGINES {
                b.remove(0);
            }
            b.push(cached);
        });
        Some(bearer)
    }

    /// The next token set committed since the last call, oldest first, when
    /// [`CallSettings::deliver_tokens`] is on.
    pub fn next_delivery(&self) -> Option<OAuthTokens> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// True when a committed set waits for [`next_delivery`](Self::next_delivery).
    pub fn has_deliveries(&self) -> bool {
        !self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The refresh grant for an explicit refresh: `explicit`, else the latest
    /// known refresh token.
    pub fn refresh_grant(&self, explicit: Option<&str>) -> Result<Grant> {
        let refresh_token = match explicit {
            Some(t) => RefreshToken::new(t),
            None => self.read().refresh_token().cloned().ok_or_else(|| {
                Error::NotAuthenticated("no refresh token to refresh with".into())
            })?,
        };
        Ok(Grant::RefreshToken { refresh_token })
    }

    /// Removes every secret the engine knows from `error`'s server-supplied text.
    pub fn redact(&self, mut error: Error) -> Error {
        self.read().redact(&mut error);
        error
    }

    // ----- for the driver -----

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, TokenMachine> {
        // The machine never panics while locked; a poisoned lock still holds a
        // consistent machine.
        self.machine.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The machine, to change it; when the guard goes, the fast path's cache is
    /// told (new epoch, new freshness).
    pub(crate) fn write(&self) -> Write<'_> {
        Write {
            guard: self.machine.write().unwrap_or_else(PoisonError::into_inner),
            engine: self,
        }
    }

    pub(crate) fn jitter(&self) -> f64 {
        self.jitter.next()
    }

    pub(crate) fn note(&self, note: Note<'_>) {
        if let Some(observer) = &self.observer {
            observer(&note);
        }
    }

    pub(crate) fn set_stored_version(&self, version: u64) {
        self.stored_version.store(version, Ordering::Release);
    }

    /// A holder name for one flight's lease.
    pub(crate) fn next_holder(&self) -> String {
        let n = self.holders.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.settings.lease_holder)
    }

    /// A token request ended: wake whoever waits for it.
    pub(crate) fn flight_ended(&self) {
        if let Some(hook) = &self.flight_end {
            hook();
        }
    }

    /// Commits pending tokens, queues them for delivery, wakes the waiters.
    /// Ends the flight `ticket` with a set another process stored meanwhile.
    pub(crate) fn adopt(
        &self,
        ticket: crate::FlightTicket,
        tokens: OAuthTokens,
        now: u64,
    ) -> Result<Bearer> {
        let adopted = self.write().adopt(ticket, tokens, now);
        self.flight_ended();
        adopted
    }

    pub(crate) fn commit(&self, pending: PendingTokens, now: u64) -> Result<(Bearer, OAuthTokens)> {
        let tokens = pending.tokens().clone();
        let committed = {
            let mut machine = self.write();
            let committed = machine.commit(pending, now);
            if committed.is_ok() && self.settings.deliver_tokens {
                // Queued under the machine's lock: deliveries keep commit order.
                self.deliveries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_back(tokens.clone());
            }
            committed
        };
        self.flight_ended();
        let bearer = committed?;
        self.note(Note::NewTokens {
            generation: bearer.generation(),
            tokens: &tokens,
        });
        Ok((bearer, tokens))
    }

    /// A call made with `bearer` was answered 401: true if it should be replayed
    /// with a new token.
    pub(crate) fn unauthorized(&self, bearer: &Bearer) -> bool {
        let invalidated = {
            let mut machine = self.write();
            if !machine.can_obtain_token() {
                return false;
            }
            machine.invalidate(bearer.generation())
        };
        self.note(Note::Rejected {
            generation: bearer.generation(),
            invalidated,
        });
        true
    }

    /// True if `bearer` is the current token and was adopted from a shared
    /// store: another process's, which may have expired on the server's clock
    /// while in flight. A 401 to it is replayed even after an earlier replay.
    pub(crate) fn adopted(&self, bearer: &Bearer) -> bool {
        self.read().adopted(bearer.generation())
    }
}

/// At most this many replays after a 401 in one call: one whatever the token,
/// the others only for tokens adopted from a shared store.
pub(crate) const MAX_REPLAYS: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineConfig;
    use crate::secret::AccessToken;

    const T0: u64 = 1_700_000_000;

    fn engine(token: &str, ttl: u64) -> Engine {
        let mut machine = TokenMachine::new(MachineConfig::default(), None);
        let mut tokens = OAuthTokens::from_access_token(AccessToken::new(token));
        tokens.expires_at = Some(T0 + ttl);
        machine.install(tokens, T0).unwrap();
        Engine::new(machine, CallSettings::new(BaseUrl::default()))
    }

    /// The per-thread copy answers exactly what the machine would: it follows
    /// every change (a new epoch) and the time it is asked at, for several
    /// engines at once.
    #[test]
    fn the_cached_bearer_is_the_machines_answer() {
        let engines: Vec<Engine> = (0..CACHED_ENGINES + 2)
            .map(|i| engine(&format!("token-{i}"), 3_600))
            .collect();
        for _ in 0..3 {
            for (i, e) in engines.iter().enumerate() {
                let b = e.ready_bearer(T0).expect("fresh");
                assert_eq!(b.header().to_str().unwrap(), format!("Bearer token-{i}"));
                assert!(b.header().is_sensitive());
            }
        }
        // A change is seen at once: no stale copy survives it.
        let first = &engines[0];
        let generation = first.ready_bearer(T0).unwrap().generation();
        assert!(first.write().invalidate(generation));
        assert!(first.ready_bearer(T0).is_none());
        // The time is checked every time: a copy is not used past its freshness.
        let second = &engines[1];
        assert!(second.ready_bearer(T0).is_some());
        let later = T0 + 3_600 - 300;
        assert!(
            second.ready_bearer(later).is_none(),
            "inside the refresh window"
        );
    }

    /// Two engines with one seed jitter alike; another seed differs.
    #[test]
    fn jitter_comes_from_the_seed() {
        let seeded = |seed| {
            let mut settings = CallSettings::new(BaseUrl::default());
            settings.jitter_seed = seed;
            let e = Engine::new(TokenMachine::new(MachineConfig::default(), None), settings);
            (0..4).map(|_| e.jitter()).collect::<Vec<f64>>()
        };
        assert_eq!(seeded(7), seeded(7));
        assert_ne!(seeded(7), seeded(8));
        assert!(seeded(9).iter().all(|j| (0.0..1.0).contains(j)));
    }
}
