//! Where new token sets go, and the shared store's calls: the I/O half of
//! the core's lease protocol ([`carthooks_core::Lease`]).
//!
//! The driver ([`carthooks_core::Call`]) decides what to ask the store and
//! what its answers mean; each method here performs one of its outputs
//! against the [`TokenStore`] — `TryLease`, `Save`, `ReleaseLease`, a
//! renewal of `SendRenewing` — catching a store that panics and recording
//! every failure for `token_store_failure()`. `Deliver` hands the sets the
//! engine queued to the user's callback, outside every lock, one set at a
//! time, in commit order — so a callback that calls the client (even one that
//! waits for another thread that does) cannot deadlock it. The store's
//! blocking I/O runs on the async client's blocking pool, in place in the
//! blocking client.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use carthooks_core::{
    Engine, Lease, LeaseAnswer, Note, OAuthTokens, SaveAttempt, Stored, TokenCallback,
};

use crate::log::event;
use crate::store::{StoreOperation, TokenStore, TokenStoreFailure};
use crate::telemetry::StoreFailures;

/// How long a refresh lease lasts unless renewed, by default; the loops renew
/// it every third of that while the token request is out.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(5);

/// Unique per client of the process: part of its lease holder name.
static HOLDERS: AtomicU64 = AtomicU64::new(0);

/// A lease holder name for a new session, unique across processes sharing a
/// host: the process id, a process-wide counter and the clock's nanoseconds
/// (the core adds a counter per flight).
pub(crate) fn lease_holder() -> String {
    format!(
        "{}-{}-{:x}",
        std::process::id(),
        HOLDERS.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

/// Where new token sets go: the store (saved before the set is used) and the
/// user's callback (called right after the set became current, in order, outside
/// every lock, so it may call the client).
pub(crate) struct Persistence {
    store: Option<std::sync::Arc<dyn TokenStore>>,
    callback: Option<TokenCallback>,
    /// Whose tokens these are, in a shared store (the OAuth client id).
    identity: String,
    failure: Mutex<Option<TokenStoreFailure>>,
    /// Where failures are counted (telemetry).
    failures: StoreFailures,
    /// True while some thread is calling the callback: it also delivers what is
    /// queued meanwhile, so calls are ordered and never nested or concurrent.
    delivering: AtomicBool,
}

/// Runs a call of the user's store; a panic is a failure like an error.
fn guarded<R>(call: impl FnOnce() -> std::io::Result<R>) -> std::io::Result<R> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(std::io::Error::other("token store panicked")))
}

impl Persistence {
    pub(crate) fn new(
        store: Option<std::sync::Arc<dyn TokenStore>>,
        callback: Option<TokenCallback>,
        identity: String,
        failures: StoreFailures,
    ) -> Self {
        Self {
            store,
            callback,
            identity,
            failure: Mutex::new(None),
            failures,
            delivering: AtomicBool::new(false),
        }
    }

    fn record(&self, operation: StoreOperation, error: &std::io::Error) {
        self.failures.count(operation.as_str());
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        let failures = failure.as_ref().map_or(0, |f| f.failures) + 1;
        *failure = Some(TokenStoreFailure::new(operation, error, failures));
    }

    /// The stored set, at build. A store that cannot be read is reported and
    /// treated as empty.
    pub(crate) fn load(&self) -> Option<Stored> {
        let store = self.store.as_ref()?;
        match guarded(|| store.load_stored(&self.identity)) {
            Ok(stored) => stored,
            Err(e) => {
                event!(warn, error = %e, "token store could not be read; starting without stored tokens");
                self.record(StoreOperation::Load, &e);
                None
            }
        }
    }

    /// `Output::Save`: saves `tokens` (fenced by `lease` when the call holds
    /// one, then gives the lease back). `None` when the store failed: the
    /// failure is reported, the tokens are kept in memory.
    pub(crate) fn save(&self, tokens: &OAuthTokens, lease: Option<&Lease>) -> Option<SaveAttempt> {
        let store = self.store.as_ref()?;
        let result = guarded(|| match lease {
            Some(lease) => {
                let saved = store.save_fenced(tokens, &self.identity, lease);
                let _ = store.release_lease(lease);
                saved
            }
            None => store
                .save(tokens)
                .map(|()| SaveAttempt::Saved { version: 0 }),
        });
        match result {
            Ok(attempt) => Some(attempt),
            Err(e) => {
                event!(warn, error = %e, "token store save failed; the new tokens are kept in memory");
                self.record(StoreOperation::Save, &e);
                None
            }
        }
    }

    /// True when the store is shared with other processes and coordinates them.
    pub(crate) fn coordinates(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.coordinates())
    }

    /// `Output::TryLease`: the lease for `holder`, then (if the store
    /// answered) a fresh look at the stored set. A store that fails is
    /// reported and [`LeaseAnswer::Unavailable`].
    pub(crate) fn try_lease(&self, holder: &str, ttl: Duration) -> LeaseAnswer {
        let Some(store) = &self.store else {
            return LeaseAnswer::Unavailable;
        };
        match guarded(|| store.try_lease(holder, ttl)) {
            Ok(lease) => LeaseAnswer::Answered {
                lease,
                // A set that cannot be read is no newer set.
                stored: guarded(|| store.load_stored(&self.identity)).ok().flatten(),
            },
            Err(e) => {
                event!(warn, error = %e, "token store unavailable; the refresh is put off while the token is valid");
                self.record(StoreOperation::Lease, &e);
                LeaseAnswer::Unavailable
            }
        }
    }

    /// A renewal of `Output::SendRenewing`: extends `lease` for `ttl`;
    /// `false` once lost (logged).
    pub(crate) fn renew(&self, lease: &Lease, ttl: Duration) -> bool {
        let renewed = self
            .store
            .as_ref()
            .is_some_and(|s| guarded(|| s.renew_lease(lease, ttl)).unwrap_or(false));
        if !renewed {
            event!(warn, "the token store's refresh lease was lost mid-request");
        }
        renewed
    }

    /// `Output::ReleaseLease`: gives back a lease the call no longer needs.
    pub(crate) fn release(&self, lease: &Lease) {
        if let Some(store) = &self.store {
            let _ = guarded(|| store.release_lease(lease));
        }
    }

    /// The engine's notes about the store that are failures to report.
    pub(crate) fn noted(&self, note: &Note<'_>) {
        match note {
            Note::ForeignStoredSet { stored, in_use } => self.record(
                StoreOperation::Lease,
                &std::io::Error::other(format!(
                    "the shared store holds a token set of another identity \
                     ({stored:?}, this client's is {in_use:?}); it is not adopted: \
                     give each identity a store of its own"
                )),
            ),
            Note::SaveFenced => self.record(
                StoreOperation::Save,
                &std::io::Error::other(
                    "the refresh lease lapsed and a newer token set was stored; \
                     this one is kept in memory only",
                ),
            ),
            _ => {}
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

    /// `Output::Deliver`: calls the callback with every queued set, unless
    /// another thread already is.
    pub(crate) fn deliver(&self, engine: &Engine) {
        let Some(callback) = &self.callback else {
            return;
        };
        loop {
            if self.delivering.swap(true, Ordering::AcqRel) {
                return;
            }
            while let Some(tokens) = engine.next_delivery() {
                if catch_unwind(AssertUnwindSafe(|| callback.call(&tokens))).is_err() {
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
