//! Where new token sets go: the token store and the user's callback.
//!
//! The driver ([`carthooks_core::Call`]) says when: `Output::Save` before a new
//! set is used (the store's blocking I/O: the async client runs it on its
//! transport's blocking pool), `Output::Deliver` right after it became current.
//! The callback is then called outside every lock, one set at a time, in commit
//! order — so a callback that calls the client (even one that waits for another
//! thread that does) cannot deadlock it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use carthooks_core::{Engine, OAuthTokens, TokenCallback};

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

    /// True when there is a store to save to.
    pub(crate) fn saves(&self) -> bool {
        self.store.is_some()
    }

    /// True when there is a callback to deliver to.
    pub(crate) fn delivers(&self) -> bool {
        self.callback.is_some()
    }

    /// The job that saves `tokens` (blocking I/O).
    pub(crate) fn save_job(self: &Arc<Self>, tokens: OAuthTokens) -> BlockingJob {
        let persistence = Arc::clone(self);
        Box::new(move || persistence.save(&tokens))
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
