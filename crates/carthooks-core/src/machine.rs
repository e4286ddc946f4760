//! The token state machine. Its design is documented on [`TokenMachine`].

use http::HeaderValue;

use crate::error::{Error, Result};
use crate::secret::{ClientSecret, RefreshToken};
use crate::tokens::{Grant, OAuthTokenRequest, OAuthTokens, TokenIdentity};

/// Flight ids, unique in the process.
static NEXT_FLIGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Tuning of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MachineConfig {
    /// Refresh automatically (default true). When false, the current token is used
    /// as it is, expired or not, and only explicit grants change it.
    pub auto_refresh: bool,
    /// Seconds before expiry at which a token becomes stale (default 300).
    pub refresh_window: u64,
    /// Least seconds between the start of two refreshes of a still-valid token
    /// (default 30). A token that arrives already expired (`expires_in: 0`) is
    /// used, not refreshed again, for this long too.
    pub min_refresh_interval: u64,
    /// Lifetime in seconds assumed when a token answer has no `expires_in`
    /// (default `None`: the token is used until a 401 says otherwise).
    pub default_lifetime: Option<u64>,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            auto_refresh: true,
            refresh_window: 300,
            min_refresh_interval: 30,
            default_lifetime: None,
        }
    }
}

impl MachineConfig {
    /// The tuning an [`OAuthConfig`](crate::OAuthConfig) asks for.
    pub fn from_oauth(oauth: &crate::OAuthConfig) -> Self {
        Self {
            auto_refresh: oauth.auto_refresh,
            refresh_window: oauth.refresh_window.as_secs(),
            min_refresh_interval: oauth.min_refresh_interval.as_secs(),
            default_lifetime: oauth.default_token_lifetime.map(|d| d.as_secs().max(1)),
        }
    }
}

/// The `Authorization` header value of the current token, with its generation.
#[derive(Clone)]
pub struct Bearer {
    header: HeaderValue,
    generation: u64,
}

impl Bearer {
    /// The complete header value (`Bearer …`), marked sensitive.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Which token set this is; pass it to [`TokenMachine::invalidate`] on a 401.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The header value, by value.
    pub fn into_header(self) -> HeaderValue {
        self.header
    }

    /// A copy in its own allocation (clones of it touch no counter shared with
    /// the original's).
    pub(crate) fn thread_copy(&self) -> Bearer {
        let mut header =
            HeaderValue::from_bytes(self.header.as_bytes()).unwrap_or_else(|_| self.header.clone());
        header.set_sensitive(true);
        Bearer {
            header,
            generation: self.generation,
        }
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Proof of holding the one token request in flight. Must be handed back through
/// `handle_*` + `commit`, or `abandon`.
#[must_use = "a flight must end with handle_* (+ commit) or abandon(), or waiters hang"]
#[derive(Debug)]
pub struct FlightTicket {
    id: u64,
    is_refresh: bool,
}

impl FlightTicket {
    /// Identifier of the flight.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True if this flight presents a refresh token (which, with a shared
    /// store, other processes may hold too).
    pub fn is_refresh(&self) -> bool {
        self.is_refresh
    }

    /// The ticket a waiter on this flight holds; the owner polls with it after a
    /// failure to learn whether another grant can take over.
    pub fn wait_ticket(&self) -> WaitTicket {
        WaitTicket(self.id)
    }
}

/// What a caller waits for: the end of flight `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTicket(u64);

/// What the caller wants from the machine: the one input of
/// [`TokenMachine::authorize`].
#[derive(Debug, Clone)]
pub enum Want {
    /// A token for an API call. `waited` is the ticket of the flight the caller
    /// just waited for, if any: that flight's failure becomes this call's.
    Call {
        /// The flight waited for.
        waited: Option<WaitTicket>,
    },
    /// Run this grant (`initialize_oauth`, `exchange_authorization_code`,
    /// `refresh_oauth_token`), after any token request already in flight.
    Grant(Grant),
}

impl Want {
    /// A token for an API call, not having waited.
    pub const CALL: Want = Want::Call { waited: None };
}

/// What to do next: the one output of [`TokenMachine::authorize`].
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Use this token (only ever for [`Want::Call`]).
    Ready(Bearer),
    /// Send `request` to the token endpoint; you hold the flight. Feed the
    /// answer to [`handle_token_response`](TokenMachine::handle_token_response)
    /// (or the failure to [`handle_transport_error`](TokenMachine::handle_transport_error)).
    Fetch {
        /// The flight to end.
        ticket: FlightTicket,
        /// The token request to send.
        request: OAuthTokenRequest,
        /// The still-valid current token, to use if the refresh fails (a stale
        /// token's background refresh; never for a grant).
        fallback: Option<Bearer>,
    },
    /// Another token request is in flight: wait for it to end, then ask again —
    /// for a call with `Want::Call { waited: Some(ticket) }`, for a grant with the
    /// same grant.
    Wait(WaitTicket),
}

/// Tokens the token endpoint issued, not yet in use: persist them, then hand
/// them to [`TokenMachine::commit`]. Holds the flight, so nothing else can be
/// committed meanwhile and they cannot be committed twice.
#[must_use = "pending tokens must be committed (or their flight abandoned), or waiters hang"]
#[derive(Debug)]
pub struct PendingTokens {
    ticket: FlightTicket,
    tokens: OAuthTokens,
}

impl PendingTokens {
    /// The new token set, as it will be installed.
    pub fn tokens(&self) -> &OAuthTokens {
        &self.tokens
    }

    /// Gives up on these tokens: the flight's ticket, for
    /// [`abandon`](TokenMachine::abandon).
    pub fn into_ticket(self) -> FlightTicket {
        self.ticket
    }
}

#[derive(Clone)]
struct Current {
    tokens: OAuthTokens,
    bearer: Bearer,
    invalid: bool,
    /// When it was installed (to rate-limit refreshes of tokens born expired).
    installed_at: u64,
    /// Another process obtained it (adopted from a shared store): nothing this
    /// machine saw the server issue, so a 401 to it does not show the server
    /// refuses every token.
    adopted: bool,
}

struct Flight {
    id: u64,
    grant: Grant,
    /// When the token request was started: lifetimes count from here, since the
    /// server's clock for the token started no earlier.
    started_at: u64,
}

/// How the last failed flight ended, for the callers that waited for it.
#[derive(Debug)]
struct FailedFlight {
    /// The flight's id.
    flight: u64,
    /// What it failed with.
    error: Error,
    /// Whether another grant can take over (a refused refresh token was
    /// dropped and client credentials can be run again): then the waiters
    /// start that grant instead of getting the error.
    recoverable: bool,
}

/// A ticket of another flight than the one in progress was handed back.
fn not_this_flight() -> Error {
    Error::InvalidState("token flight is not this machine's current one")
}

/// The sans-IO OAuth token state machine.
///
/// [`TokenMachine`] decides, for every authenticated call, whether the current
/// access token can be used or a token request must be sent first. It never sends
/// anything and never reads a clock: time arrives as `now` (Unix seconds), token
/// answers arrive as `http::Response` values.
///
/// # States
///
/// | state | condition | [`authorize`](TokenMachine::authorize)`(now, Want::CALL)` answers |
/// |---|---|---|
/// | fresh | more than `refresh_window` left | [`Step::Ready`] |
/// | stale | inside the window, not expired | the first caller gets [`Step::Fetch`] with a `fallback`; everyone else [`Step::Ready`] |
/// | expired / none / invalidated | | the first caller gets [`Step::Fetch`] without fallback; everyone else [`Step::Wait`] |
///
/// At most one token request is in flight (a *flight*, held by a [`FlightTicket`]).
/// Stale refreshes are rate-limited by `min_refresh_interval`, so a server whose
/// lifetimes are shorter than the window is not asked on every call.
///
/// # One entry point, one step enum
///
/// [`authorize`](TokenMachine::authorize) takes what the caller [`Want`]s (a
/// token for a call, or an explicit grant) and answers one [`Step`]. A flight
/// then ends in one of two typed ways, so the order cannot be got wrong:
///
/// ```text
///   authorize ──Fetch{ticket}──> send ──answer──> handle_token_response(ticket) ──Ok──> PendingTokens
///                                   └──failure──> handle_transport_error(ticket)          │ persist them
///                                                  (flight ended, error for waiters)      v
///                                                                                 commit(pending) ──> Bearer
///   (the caller went away) ──> abandon(ticket or pending.into_ticket())
/// ```
///
/// A 401 to a call made with `bearer`: [`invalidate`](TokenMachine::invalidate)
/// `(bearer.generation())` (which only acts if that token is still the current
/// one), then authorize again, once.
///
/// Clients do not run this loop by hand: [`Call`](crate::Call), the per-call
/// driver, runs it together with sending, retrying and replaying.
pub struct TokenMachine {
    config: MachineConfig,
    client: Option<(String, ClientSecret)>,
    /// Grant repeated when there is no refresh token (client credentials).
    repeatable: Option<Grant>,
    current: Option<Current>,
    refresh_token: Option<RefreshToken>,
    flight: Option<Flight>,
    generation: u64,
    last_attempt: Option<u64>,
    /// The last failed flight, for the callers that waited for it.
    failure: Option<FailedFlight>,
    /// Why the refresh token was dropped (a permanent refusal).
    dead: Option<Error>,
    /// Whether `refresh_token` was issued by the repeatable grant (or by
    /// refreshing such a token): only then may that grant stand in for it when
    /// it is refused, because only then does it restore the same identity.
    refresh_from_repeatable: bool,
}

impl std::fmt::Debug for TokenMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMachine")
            .field("config", &self.config)
            .field("has_token", &self.current.is_some())
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("in_flight", &self.flight.is_some())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl TokenMachine {
    /// A machine without tokens. `client` (id, secret) is needed for any grant.
    pub fn new(config: MachineConfig, client: Option<(String, ClientSecret)>) -> Self {
        Self {
            config,
            client,
            repeatable: None,
            current: None,
            refresh_token: None,
            flight: None,
            generation: 0,
            last_attempt: None,
            failure: None,
            dead: None,
            refresh_from_repeatable: false,
        }
    }

    // ----- getters -----

    /// The current token set, if any.
    pub fn current_tokens(&self) -> Option<OAuthTokens> {
        self.current.as_ref().map(|c| c.tokens.clone())
    }

    /// Whom the token set in use acts for, when known.
    pub fn current_identity(&self) -> Option<crate::TokenIdentity> {
        self.current.as_ref().and_then(|c| c.tokens.identity)
    }

    /// The fast path: the current token when it can be used at `now` with nothing
    /// else to do (fresh, or auto-refresh off). Takes `&self`, so a client can
    /// answer most calls under a shared read lock; `None` means "ask
    /// [`authorize`](Self::authorize)".
    pub fn ready_bearer(&self, now: u64) -> Option<Bearer> {
        let c = self.current.as_ref()?;
        if !self.config.auto_refresh {
            return Some(c.bearer.clone());
        }
        if c.invalid {
            return None;
        }
        match c.tokens.expires_in(now) {
            None => Some(c.bearer.clone()),
            Some(left) if left > self.config.refresh_window => Some(c.bearer.clone()),
            Some(_) => None,
        }
    }

    /// The Unix second before which [`ready_bearer`](Self::ready_bearer) answers
    /// with the current token (0: it does not; `u64::MAX`: always, until the
    /// machine changes). For caches of the fast path.
    pub fn fresh_until(&self) -> u64 {
        let Some(c) = &self.current else { return 0 };
        if !self.config.auto_refresh {
            return u64::MAX;
        }
        if c.invalid {
            return 0;
        }
        match c.tokens.expires_at {
            None => u64::MAX,
            Some(at) => at.saturating_sub(self.config.refresh_window),
        }
    }

    /// True while the flight `ticket` names is still in the air.
    pub fn in_flight(&self, ticket: WaitTicket) -> bool {
        self.flight.as_ref().is_some_and(|f| f.id == ticket.0)
    }

    /// The latest known refresh token (configured, or issued since).
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// True when a new token can be obtained without the user's help (a refresh
    /// token or a repeatable client-credentials grant, and client credentials).
    pub fn can_obtain_token(&self) -> bool {
        self.client.is_some()
            && self.config.auto_refresh
            && (self.refresh_token.is_some() || self.repeatable.is_some())
    }

    // ----- inputs -----

    /// Sets a refresh token to start from (no access token yet). Whose it is is
    /// not known, so no other grant will ever stand in for it.
    pub fn set_refresh_token(&mut self, token: RefreshToken) {
        self.refresh_token = Some(token);
        self.refresh_from_repeatable = false;
        self.dead = None;
    }

    /// Installs a token set obtained elsewhere (a stored set, or a direct access
    /// token) as current. The access token must be sendable as a header: not
    /// empty, visible ASCII only, at most 16 KiB (else [`Error::Config`], which
    /// never quotes the token).
    pub fn install(&mut self, tokens: OAuthTokens, now: u64) -> Result<Bearer> {
        crate::tokens::check_access_token(tokens.access_token.secret()).map_err(Error::Config)?;
        self.refresh_from_repeatable = false;
        self.app_grant_behind(&tokens);
        self.install_inner(tokens, now)
    }

    /// A set that says it is the app's own (client credentials, no user) can
    /// be obtained again by that grant, by any client of this app: so, when
    /// this machine has the client's credentials, the grant stands behind the
    /// set's refresh token as if this machine had made it. (A stored set a
    /// process loads, or one it adopts from another process.)
    fn app_grant_behind(&mut self, tokens: &OAuthTokens) {
        if tokens.identity == Some(TokenIdentity::App) && self.client.is_some() {
            self.repeatable = Some(Grant::ClientCredentials {
                user_access_token: None,
            });
            self.refresh_from_repeatable = tokens.refresh_token.is_some();
        }
    }

    /// Replaces every secret this machine knows (client secret, tokens, the
    /// in-flight grant's code or user token) in `error`'s server-supplied text.
    pub fn redact(&self, error: &mut Error) {
        if let Some((_, secret)) = &self.client {
            error.redact(secret.secret());
        }
        if let Some(c) = &self.current {
            error.redact(c.tokens.access_token.secret());
        }
        if let Some(rt) = &self.refresh_token {
            error.redact(rt.secret());
        }
        let grants = self.flight.iter().map(|f| &f.grant).chain(&self.repeatable);
        for grant in grants {
            match grant {
                Grant::ClientCredentials {
                    user_access_token: Some(t),
                } => error.redact(t.secret()),
                Grant::AuthorizationCode {
                    code,
                    code_verifier,
                    ..
                } => {
                    error.redact(code.secret());
                    if let Some(verifier) = code_verifier {
                        error.redact(verifier.secret());
                    }
                }
                Grant::RefreshToken { refresh_token } => error.redact(refresh_token.secret()),
                Grant::ClientCredentials { .. } => {}
            }
        }
    }

    /// Feeds the token endpoint's answer. On success the tokens are returned but not
    /// yet used: run the persistence callback, then [`commit`](Self::commit). On
    /// failure the flight ends and the error is also handed to the waiters.
    pub fn handle_token_response(
        &mut self,
        ticket: FlightTicket,
        now: u64,
        response: &http::Response<Vec<u8>>,
    ) -> Result<PendingTokens> {
        let sent_at = self
            .flight
            .as_ref()
            .filter(|f| f.id == ticket.id)
            .map_or(now, |f| f.started_at.min(now));
        match OAuthTokenRequest::parse_response(response, sent_at) {
            Ok(mut tokens) => {
                let own_identity = self.current.as_ref().and_then(|c| c.tokens.identity);
                let own_refresh = self.refresh_token.clone();
                let Some(flight) = self.flight.as_ref().filter(|f| f.id == ticket.id) else {
                    return Err(not_this_flight());
                };
                if tokens.expires_at.is_none() {
                    tokens.expires_at = self
                        .config
                        .default_lifetime
                        .map(|d| sent_at.saturating_add(d));
                }
                tokens.identity = match &flight.grant {
                    Grant::ClientCredentials {
                        user_access_token: None,
                    } => Some(TokenIdentity::App),
                    Grant::ClientCredentials { .. } => Some(TokenIdentity::AppForUser),
                    Grant::AuthorizationCode { .. } => Some(TokenIdentity::User),
                    Grant::RefreshToken { refresh_token } => own_refresh
                        .as_ref()
                        .filter(|own| own.ct_eq(refresh_token.secret()))
                        .and(own_identity),
                };
                if tokens.refresh_token.is_none() && ticket.is_refresh {
                    tokens.refresh_token = self.refresh_token.clone();
                }
                // The parser refused any access token that is not a valid
                // header value (`check_access_token`).
                Ok(PendingTokens { ticket, tokens })
            }
            Err(e) => Err(self.fail(&ticket, e)),
        }
    }

    /// Feeds a failure to deliver the token request; ends the flight.
    pub fn handle_transport_error(&mut self, ticket: FlightTicket, error: Error) -> Error {
        self.fail(&ticket, error)
    }

    /// Makes the tokens of a successful flight current and ends it.
    pub fn commit(&mut self, pending: PendingTokens, now: u64) -> Result<Bearer> {
        let PendingTokens { ticket, tokens } = pending;
        let Some(Flight { grant, .. }) = self.flight.take_if(|f| f.id == ticket.id) else {
            return Err(not_this_flight());
        };
        match grant {
            g @ Grant::ClientCredentials { .. } => {
                self.repeatable = Some(g);
                // A new identity's set replaces the old refresh token, even
                // with none: refreshing with the old one would bring the old
                // identity back.
                self.refresh_token = None;
                self.refresh_from_repeatable = tokens.refresh_token.is_some();
            }
            Grant::AuthorizationCode { .. } => {
                self.repeatable = None;
                self.refresh_token = None;
                self.refresh_from_repeatable = false;
            }
            Grant::RefreshToken { refresh_token } => {
                let own = self
                    .refresh_token
                    .as_ref()
                    .is_some_and(|rt| rt.ct_eq(refresh_token.secret()));
                // Someone else's refresh token: whose identity the new set
                // carries is unknown to the repeatable grant.
                self.refresh_from_repeatable &= own;
            }
        }
        self.install_inner(tokens, now)
    }

    /// The flight's refresh token may already have been presented: a shared
    /// store's previous refresh lease lapsed — its holder died or hung before
    /// storing what the server answered — and the server rotated the token
    /// then. Presenting it again would get the whole token family revoked
    /// (reuse detection), every other process's access token with it. When
    /// the app's own grant stands behind the set (client credentials, the
    /// same identity), the flight switches to that grant and the refresh
    /// token is dropped: the new token request is returned. Otherwise (a
    /// user's tokens) `None`: the refresh goes ahead, since it is the only way
    /// back short of signing in again, and a spent token then fails with a
    /// typed error, once.
    pub fn replace_suspect_refresh(
        &mut self,
        ticket: &mut FlightTicket,
    ) -> Result<Option<OAuthTokenRequest>> {
        let Some(flight) = self.flight.as_mut().filter(|f| f.id == ticket.id) else {
            return Err(not_this_flight());
        };
        let Some(repeatable) = self.repeatable.clone() else {
            return Ok(None);
        };
        if !matches!(flight.grant, Grant::RefreshToken { .. }) || !self.refresh_from_repeatable {
            return Ok(None);
        }
        flight.grant = repeatable.clone();
        ticket.is_refresh = false;
        self.refresh_token = None;
        self.refresh_from_repeatable = false;
        self.token_request(repeatable).map(Some)
    }

    /// Ends a flight with a set another process stored while this one was about
    /// to send its token request (a store shared by processes): the set is
    /// installed as it is (its refresh token replaces this machine's, which the
    /// other process has used), and nothing is sent.
    pub fn adopt(&mut self, ticket: FlightTicket, tokens: OAuthTokens, now: u64) -> Result<Bearer> {
        if self.flight.take_if(|f| f.id == ticket.id).is_none() {
            return Err(not_this_flight());
        }
        self.app_grant_behind(&tokens);
        // Not this client's attempt, and not "born expired": an adopted set
        // that has expired is refreshed (with its own refresh token) at once
        // instead of being sent until the server refuses it.
        let last_attempt = self.last_attempt;
        let bearer = self.install_inner(tokens, now)?;
        self.last_attempt = last_attempt;
        if let Some(current) = &mut self.current {
            current.installed_at = 0;
            current.adopted = true;
        }
        Ok(bearer)
    }

    /// Ends a flight without a result (the caller went away). Waiters poll again and
    /// one of them starts a new flight.
    pub fn abandon(&mut self, ticket: FlightTicket) {
        self.flight.take_if(|f| f.id == ticket.id);
    }

    /// A call made with the token of `generation` was answered 401. Returns true if
    /// that token was still the current one and is now marked invalid; false if a
    /// newer token already replaced it (the caller then just polls again).
    pub fn invalidate(&mut self, generation: u64) -> bool {
        match &mut self.current {
            Some(c) if c.bearer.generation == generation => {
                c.invalid = true;
                true
            }
            _ => false,
        }
    }

    /// True if the token of `generation` is the current one and was adopted
    /// from a shared store rather than obtained by this machine.
    pub(crate) fn adopted(&self, generation: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.adopted && c.bearer.generation == generation)
    }

    // ----- outputs -----

    /// The one entry point: what to do at `now` to get what the caller wants
    /// — a token for a call, or an explicit grant run. Token requests never
    /// overlap: while one is in flight, everyone else is told to wait (a call
    /// with a still-valid token just uses it).
    ///
    /// A call on a machine without any token and without a way to get one
    /// answers [`Error::NotAuthenticated`]: the first grant is always explicit
    /// (`initialize_oauth`, `exchange_authorization_code`), because only the
    /// caller knows whose identity the calls should carry — a forgotten
    /// `initialize_oauth(Some(user_token))` must not silently act as the app.
    pub fn authorize(&mut self, now: u64, want: Want) -> Result<Step> {
        let waited = match want {
            Want::Call { waited } => waited,
            Want::Grant(grant) => {
                if let Some(f) = &self.flight {
                    return Ok(Step::Wait(WaitTicket(f.id)));
                }
                let request = self.token_request(grant.clone())?;
                return Ok(Step::Fetch {
                    ticket: self.start_flight(grant, now),
                    request,
                    fallback: None,
                });
            }
        };
        if let (Some(w), Some(failed)) = (waited, &self.failure)
            && w.0 == failed.flight
            && !failed.recoverable
        {
            return Err(failed.error.clone());
        }
        if let Some(c) = &self.current {
            if !self.config.auto_refresh {
                return Ok(Step::Ready(c.bearer.clone()));
            }
            if !c.invalid {
                match c.tokens.expires_in(now) {
                    None => return Ok(Step::Ready(c.bearer.clone())),
                    Some(left) if left > self.config.refresh_window => {
                        return Ok(Step::Ready(c.bearer.clone()));
                    }
                    Some(0) => {
                        // Expired. One that arrived expired (`expires_in: 0`) is
                        // used for `min_refresh_interval` rather than refreshed
                        // on every call; the server's 401 still forces a refresh.
                        let born_expired =
                            c.tokens.expires_at.is_some_and(|at| at <= c.installed_at);
                        if born_expired
                            && now
                                < c.installed_at
                                    .saturating_add(self.config.min_refresh_interval)
                        {
                            return Ok(Step::Ready(c.bearer.clone()));
                        }
                    }
                    Some(_) => {
                        let bearer = c.bearer.clone();
                        let rate_limited = self.last_attempt.is_some_and(|t| {
                            now < t.saturating_add(self.config.min_refresh_interval)
                        });
                        if self.flight.is_some() || rate_limited || !self.can_obtain_token() {
                            return Ok(Step::Ready(bearer));
                        }
                        return match self.next_grant() {
                            Ok(grant) => {
                                let request = self.token_request(grant.clone())?;
                                Ok(Step::Fetch {
                                    ticket: self.start_flight(grant, now),
                                    request,
                                    fallback: Some(bearer),
                                })
                            }
                            Err(_) => Ok(Step::Ready(bearer)),
                        };
                    }
                }
            }
        } else if !self.config.auto_refresh {
            return Err(Error::NotAuthenticated(
                "no access token: call initialize_oauth() or configure an access token".into(),
            ));
        }
        if let Some(f) = &self.flight {
            return Ok(Step::Wait(WaitTicket(f.id)));
        }
        let grant = self.next_grant()?;
        let request = self.token_request(grant.clone())?;
        Ok(Step::Fetch {
            ticket: self.start_flight(grant, now),
            request,
            fallback: None,
        })
    }

    // ----- internals -----

    fn next_grant(&self) -> Result<Grant> {
        if let Some(rt) = &self.refresh_token {
            return Ok(Grant::RefreshToken {
                refresh_token: rt.clone(),
            });
        }
        if let Some(g) = &self.repeatable {
            return Ok(g.clone());
        }
        if let Some(dead) = &self.dead {
            return Err(dead.clone());
        }
        Err(Error::NotAuthenticated(match &self.current {
            Some(_) => "access token expired or was rejected, and there is no refresh token".into(),
            None => "no access token: call initialize_oauth() or configure an access token".into(),
        }))
    }

    fn token_request(&self, grant: Grant) -> Result<OAuthTokenRequest> {
        let (client_id, client_secret) = self.client.clone().ok_or_else(|| {
            Error::Config("an OAuth grant needs a client id and secret (OAuthConfig)".into())
        })?;
        Ok(OAuthTokenRequest {
            client_id,
            client_secret,
            grant,
        })
    }

    fn start_flight(&mut self, grant: Grant, now: u64) -> FlightTicket {
        // Unique across machines: a ticket of one machine never matches
        // another's flight.
        let id = NEXT_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.last_attempt = Some(now);
        let is_refresh = matches!(grant, Grant::RefreshToken { .. });
        self.flight = Some(Flight {
            id,
            grant,
            started_at: now,
        });
        FlightTicket { id, is_refresh }
    }

    fn fail(&mut self, ticket: &FlightTicket, mut error: Error) -> Error {
        // Scrubbed while the flight (and its grant's secrets) is still known: the
        // error is also kept for, and handed to, every waiter.
        self.redact(&mut error);
        if let Some(flight) = self.flight.take_if(|f| f.id == ticket.id) {
            let mut recoverable = false;
            if let Grant::RefreshToken { refresh_token } = &flight.grant
                && error.is_permanent_oauth_error()
                && self
                    .refresh_token
                    .as_ref()
                    .is_some_and(|rt| rt.ct_eq(refresh_token.secret()))
            {
                // Never send a refused refresh token again. The repeatable
                // grant may stand in only if it restores the same identity.
                self.refresh_token = None;
                self.dead = Some(error.clone());
                recoverable = self.repeatable.is_some()
                    && self.refresh_from_repeatable
                    && error.oauth_error_code() != Some("invalid_client");
                if !recoverable {
                    self.repeatable = None;
                }
            }
            self.failure = Some(FailedFlight {
                flight: ticket.id,
                error: error.clone(),
                recoverable,
            });
        }
        error
    }

    fn install_inner(&mut self, tokens: OAuthTokens, now: u64) -> Result<Bearer> {
        let header = HeaderValue::from_str(&bearer_string(&tokens)).map_err(|_| {
            Error::Config("access token contains characters not allowed in a header".into())
        })?;
        let mut header = header;
        header.set_sensitive(true);
        self.generation += 1;
        let bearer = Bearer {
            header,
            generation: self.generation,
        };
        if let Some(rt) = &tokens.refresh_token {
            self.refresh_token = Some(rt.clone());
            self.dead = None;
        }
        self.last_attempt = Some(self.last_attempt.map_or(now, |t| t.max(now)));
        self.current = Some(Current {
            tokens,
            bearer: bearer.clone(),
            invalid: false,
            installed_at: now,
            adopted: false,
        });
        Ok(bearer)
    }
}

fn bearer_string(tokens: &OAuthTokens) -> String {
    format!("Bearer {}", tokens.access_token.secret())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, UserAccessToken};

    const NOW: u64 = 1_700_000_000;

    fn machine() -> TokenMachine {
        TokenMachine::new(
            MachineConfig::default(),
            Some(("cid".into(), ClientSecret::new("csecret"))),
        )
    }

    fn token_answer(
        access: &str,
        refresh: Option<&str>,
        expires_in: u64,
    ) -> http::Response<Vec<u8>> {
        let mut body = serde_json::json!({"access_token": access, "expires_in": expires_in, "token_type": "Bearer"});
        if let Some(r) = refresh {
            body["refresh_token"] = r.into();
        }
        http::Response::builder()
            .status(200)
            .body(serde_json::to_vec(&serde_json::json!({"data": body})).unwrap())
            .unwrap()
    }

    fn error_answer(code: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(400)
            .body(format!(r#"{{"error":"{code}","error_description":"no"}}"#).into_bytes())
            .unwrap()
    }

    fn header(b: &Bearer) -> &str {
        b.header().to_str().unwrap()
    }

    /// Starts an explicit grant; nothing may be in flight.
    fn start(m: &mut TokenMachine, grant: Grant, now: u64) -> (FlightTicket, OAuthTokenRequest) {
        match m.authorize(now, Want::Grant(grant)).unwrap() {
            Step::Fetch {
                ticket,
                request,
                fallback: None,
            } => (ticket, request),
            other => panic!("expected a fetch without fallback: {other:?}"),
        }
    }

    /// Runs an explicit client-credentials grant answered with `access`.
    fn grant(
        m: &mut TokenMachine,
        access: &str,
        refresh: Option<&str>,
        ttl: u64,
        now: u64,
    ) -> Bearer {
        let (t, req) = start(
            m,
            Grant::ClientCredentials {
                user_access_token: None,
            },
            now,
        );
        assert_eq!(req.grant.grant_type(), "client_credentials");
        let pending = m
            .handle_token_response(t, now, &token_answer(access, refresh, ttl))
            .unwrap();
        m.commit(pending, now).unwrap()
    }

    #[test]
    fn no_token_and_no_way_to_get_one() {
        let mut m = machine();
        let e = m.authorize(NOW, Want::CALL).unwrap_err();
        assert!(matches!(e, Error::NotAuthenticated(_)));
        let mut without_client = TokenMachine::new(MachineConfig::default(), None);
        without_client.set_refresh_token(RefreshToken::new("rt"));
        assert!(matches!(
            without_client.authorize(NOW, Want::CALL),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn fast_path_agrees_with_poll() {
        let mut m = machine();
        assert!(m.ready_bearer(NOW).is_none());
        let b = grant(&mut m, "a1", Some("r1"), 86_400, NOW);
        assert_eq!(m.ready_bearer(NOW).unwrap().generation(), b.generation());
        assert!(
            m.ready_bearer(NOW + 86_400 - 300).is_none(),
            "stale: take the slow path"
        );
        assert!(m.ready_bearer(NOW + 86_400).is_none(), "expired");
        m.invalidate(b.generation());
        assert!(m.ready_bearer(NOW).is_none(), "invalidated");
    }

    #[test]
    fn fresh_token_is_ready() {
        let mut m = machine();
        let b = grant(&mut m, "a1", Some("r1"), 86_400, NOW);
        assert_eq!(header(&b), "Bearer a1");
        assert!(b.header().is_sensitive());
        match m.authorize(NOW + 86_400 - 301, Want::CALL).unwrap() {
            Step::Ready(b) => assert_eq!(header(&b), "Bearer a1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_token_one_refresher_others_use_current() {
        let mut m = machine();
        grant(&mut m, "a1", Some("r1"), 86_400, NOW);
        let stale = NOW + 86_400 - 300;
        let Step::Fetch {
            ticket,
            request,
            fallback,
        } = m.authorize(stale, Want::CALL).unwrap()
        else {
            panic!("first caller in the window refreshes");
        };
        assert!(
            matches!(&request.grant, Grant::RefreshToken { refresh_token } if refresh_token.secret() == "r1")
        );
        assert_eq!(header(fallback.as_ref().unwrap()), "Bearer a1");
        for _ in 0..3 {
            match m.authorize(stale, Want::CALL).unwrap() {
                Step::Ready(b) => assert_eq!(header(&b), "Bearer a1"),
                other => panic!("others keep the current token: {other:?}"),
            }
        }
        let tokens = m
            .handle_token_response(ticket, stale, &token_answer("a2", Some("r2"), 86_400))
            .unwrap();
        // Not used before commit (callback runs in between).
        assert!(
            matches!(m.authorize(stale, Want::CALL).unwrap(), Step::Ready(b) if header(&b) == "Bearer a1")
        );
        assert_eq!(
            tokens.tokens().refresh_token.as_ref().unwrap().secret(),
            "r2"
        );
        let b = m.commit(tokens, stale).unwrap();
        assert_eq!(header(&b), "Bearer a2");
        assert_eq!(m.current_tokens().unwrap().expires_at, Some(stale + 86_400));
    }

    #[test]
    fn expired_token_one_refresher_others_wait_and_share_failure() {
        let mut m = machine();
        grant(&mut m, "a1", Some("r1"), 3_600, NOW);
        let later = NOW + 3_600;
        let Step::Fetch {
            ticket,
            fallback: None,
            ..
        } = m.authorize(later, Want::CALL).unwrap()
        else {
            panic!("expired: refresh without fallback");
        };
        let Step::Wait(w) = m.authorize(later, Want::CALL).unwrap() else {
            panic!("others wait")
        };
        let e = m
            .handle_token_response(ticket, later, &error_answer("invalid_refresh_token"))
            .unwrap_err();
        assert_eq!(e.oauth_error_code(), Some("invalid_refresh_token"));
        // The refused refresh token is never sent again; the repeatable
        // client-credentials grant takes over, for the waiter too.
        let Step::Fetch {
            request, ticket, ..
        } = m.authorize(later, Want::Call { waited: Some(w) }).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.grant.grant_type(), "client_credentials");
        // When that fails as well, its waiters get the failure.
        let Step::Wait(w2) = m.authorize(later, Want::CALL).unwrap() else {
            panic!()
        };
        m.handle_token_response(ticket, later, &error_answer("invalid_client"))
            .unwrap_err();
        let shared = m
            .authorize(later, Want::Call { waited: Some(w2) })
            .unwrap_err();
        assert_eq!(shared.oauth_error_code(), Some("invalid_client"));
    }

    #[test]
    fn permanent_failure_without_alternative_is_remembered() {
        let mut m = machine();
        m.set_refresh_token(RefreshToken::new("r-old"));
        let Step::Fetch {
            ticket, request, ..
        } = m.authorize(NOW, Want::CALL).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.grant.grant_type(), "refresh_token");
        m.handle_token_response(ticket, NOW, &error_answer("invalid_grant"))
            .unwrap_err();
        let e = m.authorize(NOW, Want::CALL).unwrap_err();
        assert_eq!(
            e.oauth_error_code(),
            Some("invalid_grant"),
            "no token request is started again"
        );
        assert!(!m.can_obtain_token());
    }

    #[test]
    fn failed_stale_refresh_keeps_current_and_is_rate_limited() {
        let mut m = machine();
        m.config.min_refresh_interval = 30;
        grant(&mut m, "a1", Some("r1"), 600, NOW);
        let t = NOW + 400; // 200 s left: stale
        let Step::Fetch {
            ticket,
            fallback: Some(fb),
            ..
        } = m.authorize(t, Want::CALL).unwrap()
        else {
            panic!()
        };
        let err = Error::Transport(crate::error::TransportError::new(
            crate::error::TransportErrorKind::Timeout,
        ));
        m.handle_transport_error(ticket, err);
        assert_eq!(header(&fb), "Bearer a1");
        // Within the interval: no new attempt, current token used.
        assert!(matches!(
            m.authorize(t + 29, Want::CALL).unwrap(),
            Step::Ready(_)
        ));
        // After it: one new attempt.
        let Step::Fetch { ticket, .. } = m.authorize(t + 30, Want::CALL).unwrap() else {
            panic!()
        };
        m.abandon(ticket);
    }

    #[test]
    fn lifetime_shorter_than_window_is_rate_limited() {
        let mut m = machine();
        grant(&mut m, "a1", Some("r1"), 60, NOW); // always "stale"
        assert!(matches!(
            m.authorize(NOW, Want::CALL).unwrap(),
            Step::Ready(_)
        ));
        assert!(matches!(
            m.authorize(NOW + 29, Want::CALL).unwrap(),
            Step::Ready(_)
        ));
        let Step::Fetch { ticket, .. } = m.authorize(NOW + 30, Want::CALL).unwrap() else {
            panic!()
        };
        let pending = m
            .handle_token_response(ticket, NOW + 30, &token_answer("a2", None, 60))
            .unwrap();
        m.commit(pending, NOW + 30).unwrap();
        assert!(
            matches!(m.authorize(NOW + 31, Want::CALL).unwrap(), Step::Ready(b) if header(&b) == "Bearer a2")
        );
        // The server omitted a new refresh token: the old one is kept.
        assert_eq!(
            m.current_tokens().unwrap().refresh_token.unwrap().secret(),
            "r1"
        );
    }

    #[test]
    fn invalidate_only_the_current_generation() {
        let mut m = machine();
        let old = grant(&mut m, "a1", Some("r1"), 86_400, NOW);
        let new = grant(&mut m, "a2", Some("r2"), 86_400, NOW);
        assert!(
            !m.invalidate(old.generation()),
            "a 401 on an old token changes nothing"
        );
        assert!(
            matches!(m.authorize(NOW, Want::CALL).unwrap(), Step::Ready(b) if header(&b) == "Bearer a2")
        );
        assert!(m.invalidate(new.generation()));
        let Step::Fetch {
            fallback: None,
            request,
            ticket,
        } = m.authorize(NOW, Want::CALL).unwrap()
        else {
            panic!()
        };
        assert!(
            matches!(&request.grant, Grant::RefreshToken { refresh_token } if refresh_token.secret() == "r2")
        );
        m.abandon(ticket);
        // Abandoned: the next caller starts a new flight rather than waiting forever.
        assert!(matches!(
            m.authorize(NOW, Want::CALL).unwrap(),
            Step::Fetch { .. }
        ));
    }

    #[test]
    fn grants_never_overlap() {
        let mut m = machine();
        let (t, _) = start(
            &mut m,
            Grant::ClientCredentials {
                user_access_token: Some(UserAccessToken::new("u")),
            },
            NOW,
        );
        let app = Grant::ClientCredentials {
            user_access_token: None,
        };
        assert!(matches!(
            m.authorize(NOW, Want::Grant(app)).unwrap(),
            Step::Wait(w) if m.in_flight(w)
        ));
        assert!(matches!(
            m.authorize(NOW, Want::CALL).unwrap(),
            Step::Wait(_)
        ));
        // Tokens of another machine's flight cannot be committed here.
        let mut other = machine();
        let (t2, _) = start(
            &mut other,
            Grant::ClientCredentials {
                user_access_token: None,
            },
            NOW,
        );
        let foreign = other
            .handle_token_response(t2, NOW, &token_answer("x", None, 60))
            .unwrap();
        assert!(matches!(
            m.commit(foreign, NOW),
            Err(Error::InvalidState(_))
        ));
        assert!(matches!(
            m.authorize(NOW, Want::CALL).unwrap(),
            Step::Wait(_)
        ));
        // Abandoned: nothing in flight, and a new grant may start.
        m.abandon(t);
        assert!(matches!(
            m.authorize(NOW, Want::CALL),
            Err(Error::NotAuthenticated(_))
        ));
        let app = Grant::ClientCredentials {
            user_access_token: None,
        };
        assert!(matches!(
            m.authorize(NOW, Want::Grant(app)).unwrap(),
            Step::Fetch { .. }
        ));
    }

    #[test]
    fn static_token_and_auto_refresh_off() {
        let mut m = TokenMachine::new(MachineConfig::default(), None);
        let b = m
            .install(
                OAuthTokens::from_access_token(AccessToken::new("direct")),
                NOW,
            )
            .unwrap();
        assert_eq!(header(&b), "Bearer direct");
        assert!(!m.can_obtain_token());
        assert!(matches!(
            m.authorize(u64::MAX, Want::CALL).unwrap(),
            Step::Ready(_)
        ));

        let mut off = TokenMachine::new(
            MachineConfig {
                auto_refresh: false,
                ..MachineConfig::default()
            },
            Some(("c".into(), ClientSecret::new("s"))),
        );
        grant(&mut off, "a1", Some("r1"), 10, NOW);
        assert!(
            matches!(
                off.authorize(NOW + 100, Want::CALL).unwrap(),
                Step::Ready(_)
            ),
            "expired but auto_refresh is off"
        );
        let bad = m.install(
            OAuthTokens::from_access_token(AccessToken::new("bad\ntoken")),
            NOW,
        );
        assert!(matches!(bad, Err(Error::Config(_))));
    }

    fn answer(body: serde_json::Value) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(200)
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    }

    /// Starts a client-credentials flight at `NOW`.
    fn begin_app_grant(m: &mut TokenMachine) -> FlightTicket {
        start(
            m,
            Grant::ClientCredentials {
                user_access_token: None,
            },
            NOW,
        )
        .0
    }

    #[test]
    fn lifetime_counts_from_when_the_request_was_sent() {
        let mut m = machine();
        let t = begin_app_grant(&mut m);
        // The answer arrives 7 s after the request left.
        let tokens = m
            .handle_token_response(t, NOW + 7, &token_answer("a1", None, 60))
            .unwrap();
        assert_eq!(tokens.tokens().expires_at, Some(NOW + 60));
        m.commit(tokens, NOW + 7).unwrap();
    }

    #[test]
    fn absent_expires_in_uses_the_default_lifetime_if_configured() {
        for (default, expected) in [(None, None), (Some(600), Some(NOW + 600))] {
            let mut m = TokenMachine::new(
                MachineConfig {
                    default_lifetime: default,
                    ..MachineConfig::default()
                },
                Some(("cid".into(), ClientSecret::new("csecret"))),
            );
            let t = begin_app_grant(&mut m);
            let tokens = m
                .handle_token_response(t, NOW, &answer(serde_json::json!({"access_token": "a"})))
                .unwrap();
            assert_eq!(tokens.tokens().expires_at, expected);
            m.commit(tokens, NOW).unwrap();
        }
    }

    #[test]
    fn token_born_expired_is_not_refreshed_on_every_call() {
        let mut m = machine();
        grant(&mut m, "a0", None, 0, NOW); // expires_in: 0, no refresh token
        for dt in [0, 1, 29] {
            assert!(
                matches!(m.authorize(NOW + dt, Want::CALL).unwrap(), Step::Ready(_)),
                "used, not refreshed, {dt} s in"
            );
        }
        let Step::Fetch { ticket, .. } = m.authorize(NOW + 30, Want::CALL).unwrap() else {
            panic!("refreshed once the interval has passed")
        };
        m.abandon(ticket);
        // A 401 still forces a refresh at once.
        let b = m.ready_bearer(NOW);
        assert!(b.is_none(), "born expired is not the fast path");
        let mut m = machine();
        let b = grant(&mut m, "a0", None, 0, NOW);
        m.invalidate(b.generation());
        assert!(matches!(
            m.authorize(NOW + 1, Want::CALL).unwrap(),
            Step::Fetch { .. }
        ));
    }

    #[test]
    fn identity_is_recorded_and_a_fallback_restores_only_the_same_one() {
        let mut m = machine();
        grant(&mut m, "app", Some("rt-app"), 3_600, NOW);
        assert_eq!(
            m.current_tokens().unwrap().identity,
            Some(TokenIdentity::App)
        );
        // The caller hands in a user's refresh token: the set now acts for someone
        // the client-credentials grant cannot restore.
        let (t, _) = start(
            &mut m,
            Grant::RefreshToken {
                refresh_token: RefreshToken::new("rt-user"),
            },
            NOW,
        );
        let user = m
            .handle_token_response(t, NOW, &token_answer("user", Some("rt-user-2"), 3_600))
            .unwrap();
        assert_eq!(
            user.tokens().identity,
            None,
            "unknown: not the client's own token"
        );
        m.commit(user, NOW).unwrap();
        // It expires; its refresh token is refused.
        let later = NOW + 3_600;
        let Step::Fetch {
            ticket, request, ..
        } = m.authorize(later, Want::CALL).unwrap()
        else {
            panic!()
        };
        assert!(
            matches!(&request.grant, Grant::RefreshToken { refresh_token } if refresh_token.secret() == "rt-user-2")
        );
        let w = ticket.wait_ticket();
        m.handle_token_response(ticket, later, &error_answer("invalid_grant"))
            .unwrap_err();
        let e = m
            .authorize(later, Want::Call { waited: Some(w) })
            .unwrap_err();
        assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
        assert!(e.needs_reauthorization());
        // …and no call is ever served as the app instead.
        assert!(m.authorize(later, Want::CALL).is_err());
        assert!(!m.can_obtain_token());
    }

    #[test]
    fn a_new_grant_replaces_the_old_identitys_refresh_token() {
        let mut m = machine();
        m.set_refresh_token(RefreshToken::new("rt-someone"));
        // Client credentials without a refresh token in the answer.
        grant(&mut m, "app", None, 3_600, NOW);
        assert!(
            m.refresh_token().is_none(),
            "the old identity's token is gone"
        );
        let Step::Fetch {
            request, ticket, ..
        } = m.authorize(NOW + 3_600, Want::CALL).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.grant.grant_type(), "client_credentials");
        m.abandon(ticket);
    }

    #[test]
    fn unusable_tokens_are_refused_at_receipt_and_install() {
        for body in [
            serde_json::json!({"access_token": "a", "token_type": "mac"}),
            serde_json::json!({"access_token": "tok\u{e9}n"}),
            serde_json::json!({"access_token": "x".repeat(16 * 1024 + 1)}),
        ] {
            let mut m = machine();
            let t = begin_app_grant(&mut m);
            let e = m.handle_token_response(t, NOW, &answer(body)).unwrap_err();
            assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
            assert!(m.current_tokens().is_none());
        }
        let mut m = machine();
        let e = m
            .install(
                OAuthTokens::from_access_token(AccessToken::new("x".repeat(20_000))),
                NOW,
            )
            .unwrap_err();
        assert!(
            matches!(e, Error::Config(_)) && e.to_string().contains("16384"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_flight_is_redacted_for_its_waiters_too() {
        let mut m = machine();
        let (t, _) = start(
            &mut m,
            Grant::AuthorizationCode {
                code: crate::secret::AuthorizationCode::new("code-secret-1"),
                redirect_uri: "https://app/cb".into(),
                code_verifier: Some(crate::secret::PkceVerifier::new("verifier-secret-1")),
            },
            NOW,
        );
        let Step::Wait(w) = m.authorize(NOW, Want::CALL).unwrap() else {
            panic!()
        };
        let echo = http::Response::builder()
            .status(400)
            .body(
                br#"{"error":"invalid_grant","error_description":"code code-secret-1 used, verifier-secret-1"}"#
                    .to_vec(),
            )
            .unwrap();
        let owner = m.handle_token_response(t, NOW, &echo).unwrap_err();
        let waiter = m
            .authorize(NOW, Want::Call { waited: Some(w) })
            .unwrap_err();
        for e in [owner, waiter] {
            let text = format!("{e} {e:?}");
            assert!(!text.contains("code-secret-1"), "{e:?}");
            assert!(!text.contains("verifier-secret-1"), "{e:?}");
        }
    }

    #[test]
    fn redact_replaces_every_known_secret() {
        let mut m = machine();
        grant(&mut m, "access-secret", Some("refresh-secret"), 3_600, NOW);
        let mut e = Error::Api(crate::error::ServiceError {
            status: http::StatusCode::BAD_REQUEST,
            code: Some("echo csecret".into()),
            message: Some("got access-secret and refresh-secret".into()),
            trace_id: Some("refresh-secret".into()),
            retry_after: None,
        });
        m.redact(&mut e);
        let text = format!("{e} {e:?}");
        for secret in ["csecret", "access-secret", "refresh-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn debug_shows_no_token() {
        let mut m = machine();
        let b = grant(&mut m, "a-secret", Some("r-secret"), 60, NOW);
        let text = format!("{m:?} {b:?} {:?}", m.current_tokens());
        assert!(
            !text.contains("a-secret") && !text.contains("r-secret") && !text.contains("csecret"),
            "{text}"
        );
    }
}
