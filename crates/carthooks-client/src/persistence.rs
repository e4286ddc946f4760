//! Where new token sets go: the token store and the user's callback.
//!
//! The driver ([`carthooks_core::Call`]) says when: `Output::Save` before a new
//! set is used (the store's blocking I/O: the async client runs it on its
//! transport's blocking pool), `Output::Deliver` right after it became current.
//! The callback is then called outside every lock, one set at a time, in commit
//! order — so a callback that calls the client (even one that waits for another
//! thread that does) cannot deadlock it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use carthooks_core::{Coordination, Engine, OAuthTokens, TokenCallback, TokenIdentity};

use crate::log::event;
use crate::store::{
    Lease, LeaseAttempt, SaveAttempt, StoreOperation, TokenStore, TokenStoreFailure,
};

/// How long a refresh lease lasts unless renewed, by default; the loops renew
/// it every third of that while the token request is out.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(5);

/// Unique per client of the process: who holds a lease.
static HOLDERS: AtomicU64 = AtomicU64::new(0);

/// A job to run where blocking is allowed (the async client hands it to its
/// transport's blocking pool; the blocking client runs it in place).
pub(crate) type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// Where new token sets go: the store (saved before the set is used) and the
/// user's callback (called right after the set became current, in order, outside
/// every lock, so it may call the client).
pub(crate) struct Persistence {
    store: Option<Arc<dyn TokenStore>>,
    callback: Option<TokenCallback>,
    /// Whose tokens these are, in a shared store (the OAuth client id).
    identity: String,
    /// This client, as a lease holder: each call that coordinates holds
    /// leases as `{holder}-{n}` (a lease is one flight's, never shared by two
    /// calls of one client).
    holder: String,
    calls: AtomicU64,
    /// How long its leases last unless renewed.
    lease_ttl: Duration,
    /// The store version of the set in use (0: none, or not versioned).
    version: AtomicU64,
    failure: Mutex<Option<TokenStoreFailure>>,
    /// True while some thread is calling the callback: it also delivers what is
    /// queued meanwhile, so calls are ordered and never nested or concurrent.
    delivering: AtomicBool,
}

impl Persistence {
    pub(crate) fn new(
        store: Option<Arc<dyn TokenStore>>,
        callback: Option<TokenCallback>,
        identity: String,
        lease_ttl: Duration,
    ) -> Arc<Self> {
        let holder = format!(
            "{}-{}-{:x}",
            std::process::id(),
            HOLDERS.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Arc::new(Self {
            store,
            callback,
            identity,
            holder,
            calls: AtomicU64::new(0),
            lease_ttl,
            version: AtomicU64::new(0),
            failure: Mutex::new(None),
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
        match catch_unwind(AssertUnwindSafe(|| store.load_stored(&self.identity))) {
            Ok(Ok(stored)) => stored.map(|stored| {
                self.version.store(stored.version, Ordering::Release);
                stored.tokens
            }),
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

    /// Saves `tokens` (fenced by `lease` when the call holds one, then gives
    /// the lease back); a failure is reported, never lost tokens.
    pub(crate) fn save(&self, tokens: &OAuthTokens, lease: Option<Lease>) {
        let Some(store) = &self.store else { return };
        let result = catch_unwind(AssertUnwindSafe(|| match &lease {
            Some(lease) => {
                let saved = store.save_fenced(tokens, &self.identity, lease);
                let _ = store.release_lease(lease);
                match saved? {
                    SaveAttempt::Saved { version } => {
                        self.version.store(version, Ordering::Release);
                        Ok(())
                    }
                    SaveAttempt::Fenced => Err(std::io::Error::other(
                        "the refresh lease lapsed and a newer token set was stored; \
                         this one is kept in memory only",
                    )),
                }
            }
            None => store.save(tokens),
        }))
        .unwrap_or_else(|_| Err(std::io::Error::other("token store panicked")));
        if let Err(e) = result {
            event!(warn, error = %e, "token store save failed; the new tokens are kept in memory");
            self.record(StoreOperation::Save, &e);
        }
    }

    /// True when the store is shared with other processes and coordinates them.
    pub(crate) fn coordinates(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.coordinates())
    }

    /// Before a token request: the lease and a fresh look at the store. A
    /// set newer than the one in use is adopted (nothing is sent); a lease held
    /// elsewhere means waiting for that holder's set; a store that fails is
    /// [`Coordination::Unavailable`]: the current token is kept while valid,
    /// and an expired one is refreshed in-process after a short grace.
    ///
    /// `before` is the lease the call held until now: asked for again under
    /// the same holder (the store extends it), and given back if the store
    /// handed out another.
    ///
    /// `identity` is whom the set in use acts for: a stored set that acts for
    /// someone else (a user's where this client acts as the app, or the
    /// reverse) is never adopted, and the mix-up is reported.
    pub(crate) fn coordinate(
        &self,
        before: Option<Lease>,
        identity: Option<TokenIdentity>,
    ) -> (Coordination, Option<Lease>) {
        let holder = before.as_ref().map_or_else(
            || {
                format!(
                    "{}-{}",
                    self.holder,
                    self.calls.fetch_add(1, Ordering::Relaxed)
                )
            },
            |lease| lease.holder.clone(),
        );
        let (outcome, held) = self.coordinate_guarded(&holder, identity);
        if let Some(before) = before.filter(|before| held.as_ref() != Some(before)) {
            self.release(&before);
        }
        (outcome, held)
    }

    fn coordinate_guarded(
        &self,
        holder: &str,
        identity: Option<TokenIdentity>,
    ) -> (Coordination, Option<Lease>) {
        // A store of the user's that panics is a store that failed.
        catch_unwind(AssertUnwindSafe(|| self.coordinate_inner(holder, identity))).unwrap_or_else(
            |_| {
                self.record(
                    StoreOperation::Lease,
                    &std::io::Error::other("token store panicked"),
                );
                (Coordination::Unavailable, None)
            },
        )
    }

    fn coordinate_inner(
        &self,
        holder: &str,
        identity: Option<TokenIdentity>,
    ) -> (Coordination, Option<Lease>) {
        let Some(store) = &self.store else {
            return (Coordination::Proceed, None);
        };
        let newer = || -> Option<OAuthTokens> {
            let stored = store.load_stored(&self.identity).ok()??;
            if let (Some(mine), Some(theirs)) = (identity, stored.tokens.identity)
                && mine != theirs
            {
                event!(
                    warn,
                    "the shared token store holds a set that acts for someone else; not adopted"
                );
                self.record(
                    StoreOperation::Lease,
                    &std::io::Error::other(format!(
                        "the shared store holds a token set of another identity \
                         ({theirs:?}, this client's is {mine:?}); it is not adopted: \
                         give each identity a store of its own"
                    )),
                );
                return None;
            }
            (stored.version > self.version.load(Ordering::Acquire)).then(|| {
                self.version.store(stored.version, Ordering::Release);
                stored.tokens
            })
        };
        match store.try_lease(holder, self.lease_ttl) {
            // The lease is kept with a newer set too: an explicit grant does
            // not adopt, and saves under it; an adopting call's loop gives it
            // back at once (the call no longer holds the flight).
            Ok(LeaseAttempt::Granted(lease)) => match newer() {
                Some(tokens) => (Coordination::Newer(tokens), Some(lease)),
                None => (Coordination::Leased, Some(lease)),
            },
            Ok(LeaseAttempt::Lapsed(lease)) => {
                event!(
                    warn,
                    "the previous refresh lease lapsed (its holder died mid-refresh?); \
                     the stored refresh token may be spent"
                );
                match newer() {
                    Some(tokens) => (Coordination::NewerAfterLapse(tokens), Some(lease)),
                    None => (Coordination::LeasedAfterLapse, Some(lease)),
                }
            }
            Ok(LeaseAttempt::Held { remaining }) => match newer() {
                Some(tokens) => (Coordination::Newer(tokens), None),
                None => (Coordination::Held(remaining), None),
            },
            Err(e) => {
                event!(warn, error = %e, "token store unavailable; the refresh is put off while the token is valid");
                self.record(StoreOperation::Lease, &e);
                (Coordination::Unavailable, None)
            }
        }
    }

    /// How often a lease is renewed while its token request is out.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// Extends `lease` while its token request is out; `false` once lost.
    pub(crate) fn renew(&self, lease: &Lease) -> bool {
        self.store.as_ref().is_some_and(|s| {
            catch_unwind(AssertUnwindSafe(|| s.renew_lease(lease, self.lease_ttl)))
                .is_ok_and(|renewed| renewed.unwrap_or(false))
        })
    }

    /// Gives back a lease the call no longer needs.
    pub(crate) fn release(&self, lease: &Lease) {
        if let Some(store) = &self.store {
            let _ = catch_unwind(AssertUnwindSafe(|| store.release_lease(lease)));
        }
    }

    /// True when there is a store to save to.
    pub(crate) fn saves(&self) -> bool {
        self.store.is_some()
    }

    /// True when there is a callback to deliver to.
    pub(crate) fn delivers(&self) -> bool {
        self.callback.is_some()
    }

    /// The job that saves `tokens` (blocking I/O).
    pub(crate) fn save_job(
        self: &Arc<Self>,
        tokens: OAuthTokens,
        lease: Option<Lease>,
    ) -> BlockingJob {
        let persistence = Arc::clone(self);
        Box::new(move || persistence.save(&tokens, lease))
    }

    /// The job that hands the sets `engine` queued to the callback.
    pub(crate) fn deliver_job(self: &Arc<Self>, engine: &Arc<Engine>) -> BlockingJob {
        let persistence = Arc::clone(self);
        let engine = Arc::clone(engine);
        Box::new(move || persistence.deliver(&engine))
    }

    /// Calls the callback with every queued set, unless another thread already is.
    fn deliver(&self, engine: &Engine) {
        let Some(callback) = &self.callback else {
            return;
        };
        loop {
            if self.delivering.swap(true, Ordering::AcqRel) {
                return;
            }
            while let Some(tokens) = engine.next_delivery() {
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
            if !engine.has_deliveries() {
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
