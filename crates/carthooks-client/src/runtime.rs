//! The state behind a built client, by lifetime.
//!
//! ```text
//! Client<T> / BlockingClient<T>      one Arc<Session<T>> each; clones share it
//!   └ Session<T>                     one identity: its engine (token machine),
//!       │                            the event its waiters listen on, where its
//!       │                            tokens are saved and delivered, `closed`
//!       └ Arc<Shared<T>>             what every session of one built client
//!                                    shares: the transport (and its pool), the
//!                                    settings, the DNS cache, and what a new
//!                                    session's token machine starts from
//! ```
//!
//! The builder assembles the first session ([`Session::open`]); every later one
//! (`client.session()…build()`) is opened the same way over the same
//! [`Shared`], so no connection is opened for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use carthooks_core::{
    AccessToken, CallSettings, ClientConfig, ClientSecret, Engine, MachineConfig, Now, OAuthTokens,
    RefreshToken, Result, Stored, TokenCallback, TokenMachine,
};
use event_listener::Event;

use crate::clock::{Clock, now_by};
use crate::dns::DnsCache;
use crate::persistence::{Persistence, lease_holder};
use crate::settings::TransportConfig;
use crate::store::TokenStore;
use crate::telemetry::Telemetry;

/// What a client is made of: its first session, ready to hand to
/// [`BuildClient::from_parts`](crate::BuildClient::from_parts). Opaque.
pub struct Parts<T>(pub(crate) Arc<Session<T>>);

impl<T> std::fmt::Debug for Parts<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

/// What every session of one built client shares.
pub(crate) struct Shared<T> {
    /// The transport, and with it the connection pool.
    pub(crate) transport: T,
    pub(crate) config: ClientConfig,
    pub(crate) transport_config: TransportConfig,
    pub(crate) dns: Arc<DnsCache>,
    pub(crate) seed: MachineSeed,
    /// The call settings, before a session's store and callback are known.
    pub(crate) settings: CallSettings,
    /// Sessions opened so far: each one's jitter seed is the client's, moved
    /// on by this count, so that sessions do not back off in step.
    pub(crate) sessions: AtomicU64,
    /// The store identity (the OAuth client id).
    pub(crate) identity: String,
    /// Spans and metrics (nothing without the `otel` feature).
    pub(crate) telemetry: Telemetry,
}

/// One identity's state over a client's [`Shared`] part.
pub(crate) struct Session<T> {
    pub(crate) shared: Arc<Shared<T>>,
    /// Shared with jobs on the transport's blocking pool (token delivery).
    pub(crate) engine: Arc<Engine>,
    /// Notified when a token request ends (the engine's `on_flight_end`).
    pub(crate) flights: Arc<Event>,
    pub(crate) persistence: Arc<Persistence>,
    pub(crate) closed: AtomicBool,
}

/// What a new session starts with (see `SessionBuilder`).
#[derive(Default)]
pub(crate) struct SessionOptions {
    pub(crate) tokens: Option<OAuthTokens>,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) callback: Option<TokenCallback>,
}

/// What a new session's token machine starts from: the OAuth client's
/// credentials and tuning, and the clock it reads.
pub(crate) struct MachineSeed {
    pub(crate) config: MachineConfig,
    /// The OAuth client's id and secret.
    pub(crate) client: Option<(String, ClientSecret)>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl MachineSeed {
    /// The time, for the driver: the monotonic instant now and the clock's
    /// Unix seconds at it.
    pub(crate) fn now(&self) -> Now {
        now_by(&*self.clock, std::time::Instant::now())
    }

    /// A session's token machine: the client's credentials and tuning,
    /// holding `tokens` (or, failing that, the configured `access_token`,
    /// named as `CARTHOOKS_ACCESS_TOKEN` in errors when it came from there),
    /// refreshing with `refresh_token` when it has no set.
    pub(crate) fn machine(
        &self,
        refresh_token: Option<RefreshToken>,
        tokens: Option<OAuthTokens>,
        access_token: Option<(&AccessToken, bool)>,
    ) -> Result<TokenMachine> {
        let now = self.clock.now();
        let mut machine = TokenMachine::new(self.config, self.client.clone());
        if let Some(rt) = refresh_token {
            machine.set_refresh_token(rt);
        }
        if let Some(tokens) = tokens {
            machine.install(tokens, now)?;
        } else if let Some((token, from_env)) = access_token {
            machine
                .install(OAuthTokens::from_access_token(token.clone()), now)
                .map_err(|e| {
                    if from_env {
                        e.in_variable("CARTHOOKS_ACCESS_TOKEN")
                    } else {
                        e
                    }
                })?;
        }
        Ok(machine)
    }
}

impl<T> Session<T> {
    /// A session over `shared`: an engine over `machine` (its set the store's
    /// `version`), saving and delivering through `persistence`.
    pub(crate) fn open(
        shared: Arc<Shared<T>>,
        persistence: Persistence,
        machine: TokenMachine,
        version: u64,
    ) -> Arc<Self> {
        let mut settings = shared.settings.clone();
        let n = shared.sessions.fetch_add(1, Ordering::Relaxed);
        settings.jitter_seed = settings
            .jitter_seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        settings.save_tokens = persistence.saves();
        settings.deliver_tokens = persistence.delivers();
        settings.coordinate = persistence.coordinates();
        if settings.coordinate {
            settings.lease_holder = lease_holder();
        }
        let persistence = Arc::new(persistence);
        let flights = Arc::new(Event::new());
        let wake = Arc::clone(&flights);
        let reports = Arc::clone(&persistence);
        let engine = Engine::new(machine, settings)
            .with_stored_version(version)
            .on_flight_end(move || {
                wake.notify(usize::MAX);
            })
            .observe(move |note| {
                crate::log::note(note);
                reports.noted(note);
            });
        Arc::new(Self {
            shared,
            engine: Arc::new(engine),
            flights,
            persistence,
            closed: AtomicBool::new(false),
        })
    }

    /// The time, for the driver.
    pub(crate) fn now(&self) -> Now {
        self.shared.seed.now()
    }

    /// A new session over this one's transport: no connection is opened.
    pub(crate) fn session(&self, options: SessionOptions) -> Result<Arc<Self>> {
        let shared = &self.shared;
        let persistence = Persistence::new(
            options.store,
            options.callback,
            shared.identity.clone(),
            shared.telemetry.store_failures(),
        );
        let (tokens, version) = given_or_stored(options.tokens, persistence.load());
        let machine = shared.seed.machine(None, tokens, None)?;
        Ok(Self::open(
            Arc::clone(shared),
            persistence,
            machine,
            version,
        ))
    }

    /// A new session without tokens, store or callback (so no store identity
    /// either: an empty one costs no allocation).
    pub(crate) fn empty_session(&self) -> Arc<Self> {
        let shared = &self.shared;
        let persistence = Persistence::new(None, None, String::new(), Default::default());
        let machine = TokenMachine::new(shared.seed.config, shared.seed.client.clone());
        Self::open(Arc::clone(shared), persistence, machine, 0)
    }
}

/// The tokens a session starts with — those given, else the stored set — and
/// the store's version, which a stored set must pass to be adopted later.
pub(crate) fn given_or_stored(
    given: Option<OAuthTokens>,
    stored: Option<Stored>,
) -> (Option<OAuthTokens>, u64) {
    let version = stored.as_ref().map_or(0, |s| s.version);
    (given.or(stored.map(|s| s.tokens)), version)
}
