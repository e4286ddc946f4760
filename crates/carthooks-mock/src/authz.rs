//! The authorization server's rules, as a real one applies them: registered
//! clients and their redirect URIs, PKCE, and where secrets come from.
//!
//! # Authorization requests
//!
//! The sign-in page (`GET`/`POST /oauth/authorize`) and
//! `POST /api/oauth/get-authorize-code` check a request in this order:
//!
//! | check | refused as |
//! |---|---|
//! | the client is registered | an error page / 400, **never a redirect** |
//! | `redirect_uri` is one of the client's, exactly (a registered loopback URI also with any port, RFC 8252 §7.3) | an error page / 400, **never a redirect** (RFC 6749 §3.1.2.4, RFC 9700 §2.1) |
//! | `code_challenge_method` is `S256` when given or implied by a challenge (`plain` is refused, RFC 9700 §2.1.1) | a redirect with `error=invalid_request` / 400 |
//! | `code_challenge` has the form of an S256 challenge (43 base64url characters) | a redirect with `error=invalid_request` / 400 |
//! | a client that requires PKCE sent a challenge | a redirect with `error=invalid_request` / 400 |
//!
//! Only once the redirect URI is known to be the client's does an answer go
//! there; before that, whatever the request says, the browser stays put.
//!
//! # The code exchange
//!
//! A code is single-use, expires after [`MockConfig::code_ttl`], and is bound
//! to its client, its redirect URI and its challenge. With a challenge the
//! token request must carry the `code_verifier` whose SHA-256 it is; without
//! one it must carry none (a verifier for a code issued without a challenge is
//! a downgrade attempt, RFC 9700 §2.1.1). Every refusal is `invalid_grant`, and
//! a refused verifier does not spend the code.
//!
//! # Secrets
//!
//! Codes, access and refresh tokens and form tokens are 32 bytes from the
//! operating system's random source, base64url-encoded behind a prefix
//! (`code-…`, `at-…`, `rt-…`): nothing about one tells anything about another.
//! [`MockConfig::secret_seed`] makes them a deterministic sequence instead, for
//! a test that must see the same values every run — guessable by design, so
//! never the default.
//!
//! [`MockConfig::code_ttl`]: crate::MockConfig::code_ttl
//! [`MockConfig::secret_seed`]: crate::MockConfig::secret_seed

use carthooks_core::PkceChallenge;
use carthooks_core::internal::constant_time_eq;
use carthooks_core::internal::{S256, base64url, is_valid_s256_challenge, is_valid_verifier};
use sha2::{Digest, Sha256};

/// Redirect URIs registered for a client unless it says otherwise: the
/// examples' and the tests'. The loopback ones allow any port.
pub const DEFAULT_REDIRECT_URIS: [&str; 4] = [
    "http://127.0.0.1/callback",
    "http://[::1]/callback",
    "https://app.example/callback",
    "https://app.example/cb",
];

/// An OAuth client registered with the fake server, and the rules its
/// authorization requests meet (the sign-in page and
/// `POST /api/oauth/get-authorize-code` alike):
///
/// - `redirect_uri` must be one of [`redirect_uris`](Self::redirect_uris)
///   exactly — a registered loopback URI (`http://127.0.0.1/…`,
///   `http://[::1]/…`) also with any port (RFC 8252 §7.3). Otherwise, and for
///   an unknown client, the page shows an error and never redirects.
/// - A `code_challenge` must be an S256 one (43 base64url characters) with
///   `code_challenge_method=S256`; `plain`, or no method, is refused. With
///   [`require_pkce`](Self::require_pkce) a challenge is required.
/// - The code is single-use, expires, and is exchanged only by this client,
///   with the same redirect URI and the challenge's `code_verifier` (none
///   when it had no challenge); refusals are `invalid_grant`.
#[derive(Clone)]
#[non_exhaustive]
pub struct MockClient {
    /// The client id.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// Where the sign-in page may send a browser back to (see the module
    /// docs for the matching rule).
    pub redirect_uris: Vec<String>,
    /// Codes only with a PKCE challenge (OAuth 2.1's rule); default false.
    pub require_pkce: bool,
}

impl std::fmt::Debug for MockClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockClient")
            .field("id", &self.id)
            .field("redirect_uris", &self.redirect_uris)
            .field("require_pkce", &self.require_pkce)
            .finish_non_exhaustive()
    }
}

impl MockClient {
    /// A client with [`DEFAULT_REDIRECT_URIS`], PKCE optional.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            redirect_uris: DEFAULT_REDIRECT_URIS.map(str::to_owned).to_vec(),
            require_pkce: false,
        }
    }

    /// The seeded client, [`DEFAULT_CLIENT_ID`](crate::DEFAULT_CLIENT_ID).
    pub fn demo() -> Self {
        Self::new(crate::DEFAULT_CLIENT_ID, crate::DEFAULT_CLIENT_SECRET)
    }

    /// With these redirect URIs instead of the defaults.
    pub fn redirect_uris<S: Into<String>>(mut self, uris: impl IntoIterator<Item = S>) -> Self {
        self.redirect_uris = uris.into_iter().map(Into::into).collect();
        self
    }

    /// Requiring a PKCE challenge with every authorization request, or not.
    pub fn require_pkce(mut self, on: bool) -> Self {
        self.require_pkce = on;
        self
    }

    /// Whether `uri` may receive this client's codes.
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri || same_loopback_but_port(registered, uri))
    }
}

/// `(host, rest)` of a loopback `http` URI with an optional port:
/// `http://127.0.0.1:8080/cb?x` → `("127.0.0.1", "/cb?x")`. Anything after
/// the host but a port and then a path (`@`, `.evil.test`, letters) is not a
/// loopback URI at all.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|h| rest.starts_with(h))?;
    let mut after = &rest[host.len()..];
    if let Some(port) = after.strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        let number: u32 = port[..digits].parse().ok()?;
        if digits > 5 || !(1..=65_535).contains(&number) {
            return None;
        }
        after = &port[digits..];
    }
    (after.is_empty() || after.starts_with('/')).then_some((host, after))
}

/// RFC 8252 §7.3: a native app's loopback redirect URI may come with any port.
fn same_loopback_but_port(registered: &str, presented: &str) -> bool {
    matches!(
        (loopback_parts(registered), loopback_parts(presented)),
        (Some(a), Some(b)) if a == b
    )
}

/// Why an authorization request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The redirect URI cannot be trusted: show the message, send nothing there.
    Stay(String),
    /// The redirect URI is the client's: send the browser back with
    /// `error=invalid_request` and this description.
    Back(&'static str),
}

/// Checks an authorization request (see the module docs' table); the
/// challenge to bind the code to, if any.
pub(crate) fn check_request(
    client: Option<&MockClient>,
    client_id: &str,
    redirect_uri: &str,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<String>, Refusal> {
    let Some(client) = client else {
        return Err(Refusal::Stay(format!(
            "This sign-in link is for an application Carthooks does not know ({client_id}), \
             so it stops here. Go back to the application and try again, or tell the people \
             who run it."
        )));
    };
    if !client.allows_redirect_uri(redirect_uri) {
        return Err(Refusal::Stay(format!(
            "This sign-in link would send you on to an address that {client_id} has not \
             registered with Carthooks, so it stops here and you were not sent anywhere. Go back \
             to the application and try again, or tell the people who run it."
        )));
    }
    match (challenge, method) {
        (None, Some(_)) => Err(Refusal::Back(
            "code_challenge_method without code_challenge",
        )),
        (Some(_), m) if m != Some(S256) => Err(Refusal::Back(
            "code_challenge_method must be S256 (plain is not accepted)",
        )),
        (Some(c), _) if !is_valid_s256_challenge(c) => Err(Refusal::Back(
            "code_challenge must be 43 base64url characters",
        )),
        (None, None) if client.require_pkce => Err(Refusal::Back(
            "this client must send a PKCE code_challenge (S256)",
        )),
        (c, _) => Ok(c.map(str::to_owned)),
    }
}

/// Checks the token request's `code_verifier` against the code's challenge;
/// the `error_description` of the `invalid_grant` refusal.
pub(crate) fn check_verifier(
    challenge: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), &'static str> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err("this code was issued without a code_challenge"),
        (Some(_), None) => Err("code_verifier is required for this code"),
        (Some(_), Some(v)) if !is_valid_verifier(v) => Err("code_verifier is malformed"),
        (Some(c), Some(v)) => {
            let digest: [u8; 32] = Sha256::digest(v.as_bytes()).into();
            let expected = PkceChallenge::from_sha256(&digest);
            if constant_time_eq(expected.as_str().as_bytes(), c.as_bytes()) {
                Ok(())
            } else {
                Err("code_verifier does not match the code_challenge")
            }
        }
    }
}

/// Where secrets come from.
#[derive(Debug)]
pub(crate) enum Secrets {
    /// The operating system's random source.
    Os,
    /// A SplitMix64 sequence from a seed: the same every run (tests only).
    Seeded(u64),
}

impl Secrets {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        seed.map_or(Self::Os, Self::Seeded)
    }

    /// A new secret: `{prefix}-` and 32 bytes in base64url.
    pub(crate) fn next(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 32];
        match self {
            Self::Os => fill_from_os(&mut bytes),
            Self::Seeded(state) => {
                for chunk in bytes.chunks_mut(8) {
                    chunk.copy_from_slice(&splitmix64(state).to_le_bytes());
                }
            }
        }
        format!("{prefix}-{}", base64url(&bytes))
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `bytes` from the OS. Should the OS refuse (it does not on any
/// platform the mock runs on), SipHash keyed by std's per-process random keys
/// over a counter and the time stands in: unpredictable without the keys, and
/// no panic in a test server.
fn fill_from_os(bytes: &mut [u8; 32]) {
    if getrandom::getrandom(bytes).is_err() {
        fill_without_os(bytes);
    }
}

/// The stand-in of [`fill_from_os`].
fn fill_without_os(bytes: &mut [u8; 32]) {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let keys = std::collections::hash_map::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for chunk in bytes.chunks_mut(8) {
        let mut h = keys.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        h.write_u128(nanos);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_or_as_loopback_with_any_port() {
        let client = MockClient::demo();
        for ok in [
            "https://app.example/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:3000/callback",
            "http://127.0.0.1:65535/callback",
            "http://[::1]:8080/callback",
        ] {
            assert!(client.allows_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "https://app.example/callback/",
            "https://app.example/callback?next=/x",
            "https://app.example/callback#x",
            "https://APP.example/callback",
            "http://app.example/callback",
            "https://app.example.evil.test/callback",
            "https://evil.test/callback",
            "https://app.example@evil.test/callback",
            "http://127.0.0.2:3000/callback",
            "http://127.0.0.1:3000/steal",
            "http://127.0.0.1:3000/callback?x=1",
            "http://127.0.0.1.evil.test/callback",
            "http://127.0.0.1@evil.test/callback",
            "http://127.0.0.1:80@evil.test/callback",
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:000080/callback",
            "http://127.0.0.1:/callback",
            "http://localhost:3000/callback",
            "http://[::1]:8080/callback/../steal",
            "https://127.0.0.1:3000/callback",
            "javascript:alert(1)//https://app.example/callback",
            "",
        ] {
            assert!(!client.allows_redirect_uri(bad), "{bad}");
        }
        let own = MockClient::new("c", "s").redirect_uris(["https://a.test/cb"]);
        assert!(own.allows_redirect_uri("https://a.test/cb"));
        assert!(!own.allows_redirect_uri("https://app.example/cb"));
    }

    #[test]
    fn requests_are_refused_in_order_and_only_trusted_uris_get_answers() {
        let demo = MockClient::demo();
        let cb = "https://app.example/cb";
        let good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(matches!(
            check_request(None, "x", cb, Some(good), Some("S256")),
            Err(Refusal::Stay(_))
        ));
        assert!(matches!(
            check_request(
                Some(&demo),
                "demo-client",
                "https://evil.test/",
                None,
                Some("plain")
            ),
            Err(Refusal::Stay(_))
        ));
        for (challenge, method) in [
            (Some(good), Some("plain")),
            (Some(good), None),
            (Some(good), Some("s256")),
            (Some("short"), Some("S256")),
            (None, Some("S256")),
        ] {
            assert!(
                matches!(
                    check_request(Some(&demo), "demo-client", cb, challenge, method),
                    Err(Refusal::Back(_))
                ),
                "{challenge:?} {method:?}"
            );
        }
        assert_eq!(
            check_request(Some(&demo), "demo-client", cb, Some(good), Some("S256")),
            Ok(Some(good.to_owned()))
        );
        assert_eq!(
            check_request(Some(&demo), "demo-client", cb, None, None),
            Ok(None)
        );
        let strict = MockClient::demo().require_pkce(true);
        assert!(matches!(
            check_request(Some(&strict), "demo-client", cb, None, None),
            Err(Refusal::Back(_))
        ));
    }

    #[test]
    fn verifiers_are_checked_against_the_challenge() {
        let (verifier, challenge) = (
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        );
        assert_eq!(check_verifier(Some(challenge), Some(verifier)), Ok(()));
        assert_eq!(check_verifier(None, None), Ok(()));
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        for (c, v) in [
            (Some(challenge), None),
            (Some(challenge), Some(other)),
            (Some(challenge), Some("short")),
            (Some(challenge), Some(challenge)), // the challenge as `plain` would send it
            (None, Some(verifier)),
        ] {
            assert!(check_verifier(c, v).is_err(), "{c:?} {v:?}");
        }
    }

    #[test]
    fn seeded_secrets_repeat_and_os_secrets_do_not() {
        let (mut a, mut b) = (Secrets::new(Some(7)), Secrets::new(Some(7)));
        assert_eq!(a.next("at"), b.next("at"));
        assert_ne!(a.next("at"), a.next("at"));
        let (mut x, mut y) = (Secrets::new(None), Secrets::new(None));
        let s = x.next("code");
        assert!(s.starts_with("code-") && s.len() == 5 + 43, "{s}");
        assert_ne!(s, y.next("code"));
        // The stand-in for a refusing OS: no repeats, no zeros.
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill_without_os(&mut a);
        fill_without_os(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
