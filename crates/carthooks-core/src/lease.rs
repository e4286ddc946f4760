//! A token store shared by processes, as data. The protocol is documented on
//! [`Lease`].

use std::time::Duration;

use crate::tokens::{OAuthTokens, TokenIdentity};

/// A token set as a store holds it, with the version the store gave it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stored {
    /// The tokens.
    pub tokens: OAuthTokens,
    /// Larger for every fenced save; 0 where the store keeps no versions.
    pub version: u64,
}

impl Stored {
    /// A set at `version` (for stores of your own).
    pub fn new(tokens: OAuthTokens, version: u64) -> Self {
        Self { tokens, version }
    }
}

/// A token store shared by processes, as data: its refresh lease, the versions
/// of the sets it holds, and the pure translation of its answers into what a
/// call does next.
///
/// With rotating refresh tokens, two processes that refresh with one refresh
/// token get the whole token family revoked. A store they share (a file, Redis)
/// coordinates them; the store itself is I/O and lives outside this crate
/// (`carthooks_client::TokenStore`). What to ask it, when, and what its answers
/// mean lives here, in the driver ([`Call`](crate::Call)), so that both I/O
/// loops only perform the store's calls:
///
/// | [`Output`](crate::Output) | the loop | answer |
/// |---|---|---|
/// | `TryLease { holder, ttl }` | `try_lease(holder, ttl)`; if that answered, `load_stored` | [`Call::handle_lease`](crate::Call::handle_lease)([`LeaseAnswer`]) |
/// | `SendRenewing { request, renew }` | sends, renewing `renew.lease` every `renew.every` while the request is out | [`Call::handle`](crate::Call::handle) |
/// | `Save { tokens, lease }` | `save_fenced(tokens, lease)` then `release_lease(lease)`; without a lease `save(tokens)` | [`Call::handle_saved`](crate::Call::handle_saved) |
/// | `ReleaseLease(lease)` | `release_lease(lease)` | — |
///
/// The call holds the lease from the store's grant until it saves under it or
/// its flight ends otherwise (it adopted a stored set, its token request
/// failed, the store fell back to in-process): then the next poll yields
/// `ReleaseLease`. A call dropped meanwhile leaves its lease to lapse. Each
/// flight asks under a holder name of its own, `{CallSettings::lease_holder}-{n}`,
/// so a lease is never shared by two calls, even of one client.
///
/// The engine keeps the version of the set in use
/// ([`Engine::stored_version`](crate::Engine::stored_version)): a stored set is
/// *newer* only with a larger version, and never when it acts for another
/// identity than the set in use (that mix-up is reported, never adopted).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Larger for every lease granted: a save under a smaller one is refused.
    pub fence: u64,
    /// Who holds it (unique per call that coordinates: a lease is never
    /// shared by two calls, even of one client).
    pub holder: String,
}

impl Lease {
    /// The lease with `fence`, held by `holder` (for stores of your own).
    pub fn new(fence: u64, holder: impl Into<String>) -> Self {
        Self {
            fence,
            holder: holder.into(),
        }
    }
}

/// What a store's `try_lease` got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseAttempt {
    /// The lease is yours until its TTL runs out (renew it meanwhile).
    Granted(Lease),
    /// Granted, but the lease before it *lapsed*: its holder neither saved
    /// under it nor gave it back (it died, or hung), so the stored set's
    /// refresh token may have been presented — and rotated — already.
    Lapsed(Lease),
    /// Someone else holds it, for this long at most unless they renew it.
    Held {
        /// Time left on their lease.
        remaining: Duration,
    },
}

/// What a store's `save_fenced` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveAttempt {
    /// Saved as this version.
    Saved {
        /// The new version.
        version: u64,
    },
    /// Not saved: a newer lease was granted since this one (it lapsed).
    Fenced,
}

/// The store's answers to [`Output::TryLease`](crate::Output::TryLease), as
/// the loop got them.
#[derive(Debug)]
#[non_exhaustive]
pub enum LeaseAnswer {
    /// `try_lease` answered; `stored` is what `load_stored` read right after
    /// (`None`: nothing stored, or the read failed).
    Answered {
        /// The lease, or who holds it.
        lease: LeaseAttempt,
        /// The stored set.
        stored: Option<Stored>,
    },
    /// The store could not be asked (an error, a panic, its pool gone); the
    /// loop reports the failure itself.
    Unavailable,
}

/// What the store's answer to [`Output::TryLease`](crate::Output::TryLease)
/// came to, as [`Call::handle_lease`](crate::Call::handle_lease) returns it:
/// for telemetry and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LeaseOutcome {
    /// The refresh lease is this call's: it sends the token request.
    Acquired,
    /// Another process holds the lease: the call waits a little and asks
    /// again.
    Waited,
    /// A newer set in the store is used: nothing is sent.
    Adopted,
    /// The lease is this call's, but the one before it lapsed (its holder
    /// died or hung mid-refresh).
    Lapsed,
    /// The store could not be asked.
    Unavailable,
}

impl LeaseOutcome {
    /// The outcome as a metric label: `acquired`, `waited`, `adopted`,
    /// `lapsed` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Waited => "waited",
            Self::Adopted => "adopted",
            Self::Lapsed => "lapsed",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a token request under a lease asks of the loop while it is out: the
/// answer to [`Output::SendRenewing`](crate::Output::SendRenewing).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewal {
    /// The lease to renew.
    pub lease: Lease,
    /// For how long each renewal extends it.
    pub ttl: Duration,
    /// How often to renew it: a third of `ttl`, so that a slow token endpoint
    /// never lets it lapse.
    pub every: Duration,
}

impl Renewal {
    pub(crate) fn new(lease: Lease, ttl: Duration) -> Self {
        Self {
            lease,
            ttl,
            every: ttl / 3,
        }
    }
}

/// What the store's answer means for the flight.
#[derive(Debug)]
pub(crate) enum Coordination {
    /// The store holds a set newer than the one in use (another process
    /// refreshed): use it and send nothing. Its refresh token replaces this
    /// client's, which the other process has used.
    Newer(OAuthTokens),
    /// The refresh lease is this call's: send the token request.
    Leased,
    /// The refresh lease is this call's, but the one before it lapsed: its
    /// holder died (or hung) mid-refresh, so the refresh token in the store
    /// may be spent. A set the app's own grant stands behind is obtained by
    /// that grant instead
    /// ([`TokenMachine::replace_suspect_refresh`](crate::TokenMachine::replace_suspect_refresh));
    /// otherwise as `Leased`.
    LeasedAfterLapse,
    /// As `LeasedAfterLapse`, with a newer set in the store — the one whose
    /// refresh token the lapsed holder may have spent. The app's own grant
    /// replaces it where it can; otherwise the set is adopted as with `Newer`.
    NewerAfterLapse(OAuthTokens),
    /// Another process holds the lease, for this long at most: wait a little
    /// and ask again (its new set will be in the store).
    Held(Duration),
    /// The store could not be asked (down, unreachable). A refresh ahead of
    /// expiry is put off: the current token stays in use and no refresh token
    /// leaves this process while the others cannot be told. An expired token
    /// is refreshed anyway, in-process, once the store has stayed unavailable
    /// for [`STORE_GRACE`](crate::STORE_GRACE). A grant that presents no
    /// refresh token goes ahead at once.
    Unavailable,
}

/// A store answer, translated: what it means, the lease the flight now holds,
/// the version to remember as seen, and what to report.
#[derive(Debug)]
pub(crate) struct Coordinated {
    pub(crate) outcome: Coordination,
    pub(crate) lease: Option<Lease>,
    /// A newer stored set was seen: its version.
    pub(crate) seen: Option<u64>,
    /// The stored set acts for someone else: (stored, in use).
    pub(crate) foreign: Option<(TokenIdentity, TokenIdentity)>,
    /// The lease before this one lapsed.
    pub(crate) lapsed: bool,
}

/// Translates the store's answer, for a flight whose set in use has version
/// `in_use` and acts for `identity`. Pure: the call applies the result.
///
/// A lease is kept with a newer set too: an explicit grant does not adopt, and
/// saves under it; an adopting call gives it back at its next poll.
pub(crate) fn translate(
    answer: LeaseAnswer,
    in_use: u64,
    identity: Option<TokenIdentity>,
) -> Coordinated {
    let (attempt, stored) = match answer {
        LeaseAnswer::Answered { lease, stored } => (lease, stored),
        LeaseAnswer::Unavailable => {
            return Coordinated {
                outcome: Coordination::Unavailable,
                lease: None,
                seen: None,
                foreign: None,
                lapsed: false,
            };
        }
    };
    let mut foreign = None;
    let newer = stored.and_then(|stored| {
        if let (Some(mine), Some(theirs)) = (identity, stored.tokens.identity)
            && mine != theirs
        {
            foreign = Some((theirs, mine));
            return None;
        }
        (stored.version > in_use).then_some(stored)
    });
    let seen = newer.as_ref().map(|s| s.version);
    let newer = newer.map(|s| s.tokens);
    let (outcome, lease, lapsed) = match attempt {
        LeaseAttempt::Granted(lease) => (
            newer.map_or(Coordination::Leased, Coordination::Newer),
            Some(lease),
            false,
        ),
        LeaseAttempt::Lapsed(lease) => (
            newer.map_or(
                Coordination::LeasedAfterLapse,
                Coordination::NewerAfterLapse,
            ),
            Some(lease),
            true,
        ),
        LeaseAttempt::Held { remaining } => (
            newer.map_or(Coordination::Held(remaining), Coordination::Newer),
            None,
            false,
        ),
    };
    Coordinated {
        outcome,
        lease,
        seen,
        foreign,
        lapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;

    fn set(identity: Option<TokenIdentity>) -> OAuthTokens {
        let mut tokens = OAuthTokens::from_access_token(AccessToken::new("at"));
        tokens.identity = identity;
        tokens
    }

    fn answered(lease: LeaseAttempt, stored: Option<(u64, Option<TokenIdentity>)>) -> LeaseAnswer {
        LeaseAnswer::Answered {
            lease,
            stored: stored.map(|(version, identity)| Stored::new(set(identity), version)),
        }
    }

    fn granted() -> LeaseAttempt {
        LeaseAttempt::Granted(Lease::new(7, "h-0"))
    }

    /// Every combination of lease answer and stored set, against what the
    /// flight does.
    #[test]
    fn store_answers_translate_by_version_identity_and_lease() {
        let app = Some(TokenIdentity::App);
        let cases: Vec<(LeaseAnswer, &str, bool, Option<u64>)> = vec![
            (answered(granted(), None), "Leased", true, None),
            (answered(granted(), Some((5, app))), "Leased", true, None),
            (answered(granted(), Some((6, app))), "Newer", true, Some(6)),
            (
                answered(LeaseAttempt::Lapsed(Lease::new(8, "h-0")), None),
                "LeasedAfterLapse",
                true,
                None,
            ),
            (
                answered(LeaseAttempt::Lapsed(Lease::new(8, "h-0")), Some((9, app))),
                "NewerAfterLapse",
                true,
                Some(9),
            ),
            (
                answered(
                    LeaseAttempt::Held {
                        remaining: Duration::from_secs(2),
                    },
                    Some((5, app)),
                ),
                "Held",
                false,
                None,
            ),
            (
                answered(
                    LeaseAttempt::Held {
                        remaining: Duration::from_secs(2),
                    },
                    Some((6, None)),
                ),
                "Newer",
                false,
                Some(6),
            ),
            (LeaseAnswer::Unavailable, "Unavailable", false, None),
        ];
        for (answer, outcome, leased, seen) in cases {
            let line = format!("{answer:?}");
            let got = translate(answer, 5, app);
            let name = format!("{:?}", got.outcome);
            assert!(name.starts_with(outcome), "{line}: {name}");
            assert_eq!(got.lease.is_some(), leased, "{line}");
            assert_eq!(got.seen, seen, "{line}");
            assert!(got.foreign.is_none(), "{line}");
            assert_eq!(got.lapsed, outcome.contains("Lapse"), "{line}");
        }
    }

    /// A newer set that acts for someone else is never adopted, and said.
    #[test]
    fn a_set_of_another_identity_is_reported_not_adopted() {
        let user = TokenIdentity::User;
        let got = translate(
            answered(granted(), Some((99, Some(TokenIdentity::App)))),
            1,
            Some(user),
        );
        assert!(matches!(got.outcome, Coordination::Leased), "{got:?}");
        assert_eq!(got.seen, None);
        assert_eq!(got.foreign, Some((TokenIdentity::App, user)));
        // A set in use that says nothing about whom it acts for adopts any.
        let got = translate(answered(granted(), Some((99, Some(user)))), 1, None);
        assert!(matches!(got.outcome, Coordination::Newer(_)));
    }
}
