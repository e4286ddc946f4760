//! PKCE for the authorization-code flow: a verifier from the operating
//! system's random source and its S256 challenge.
//!
//! ```
//! use carthooks_client::{OAuthAuthorizeCodeRequest, Pkce};
//! let pkce = Pkce::new()?;
//! // The challenge goes with the user to the sign-in page…
//! let url = carthooks_client::authorize_url(
//!     "https://carthooks.test/oauth/authorize",
//!     "my-client",
//!     "https://app.example/callback",
//!     "the-csrf-state",
//!     pkce.challenge(),
//! );
//! assert!(url.contains(&format!("&code_challenge={}&code_challenge_method=S256", pkce.challenge().as_str())));
//! // … or into the authorize-code request; the verifier stays behind (in the
//! // user's server-side session) until the code is exchanged:
//! // client.exchange_authorization_code(code, redirect_uri, Some(pkce.verifier()))
//! let request = OAuthAuthorizeCodeRequest::new("my-client", "https://app.example/callback", "s")
//!     .pkce(pkce.challenge());
//! assert_eq!(request.code_challenge_method.as_deref(), Some("S256"));
//! assert!(!format!("{pkce:?}").contains(pkce.verifier().secret()));
//! # Ok::<(), carthooks_client::Error>(())
//! ```
//!
//! The types themselves (`PkceVerifier`, `PkceChallenge`) live in
//! `carthooks-core`, which reads no randomness and hashes nothing; this module
//! adds both.

use carthooks_core::internal::is_valid_verifier;
use carthooks_core::{Error, PkceChallenge, PkceVerifier, Result};
use sha2::{Digest, Sha256};

/// A PKCE verifier and its challenge (RFC 7636, method `S256`), for one
/// sign-in attempt: make a new one for each.
///
/// `Debug` shows the challenge and not the verifier.
#[derive(Clone)]
pub struct Pkce {
    verifier: PkceVerifier,
    challenge: PkceChallenge,
}

impl Pkce {
    /// A new verifier of 32 bytes from the operating system's random source
    /// (43 characters), and its challenge.
    pub fn new() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| Error::Config(format!("no OS randomness for the PKCE verifier: {e}")))?;
        Ok(Self::from_valid(PkceVerifier::from_random_bytes(&bytes)))
    }

    /// The challenge for a verifier kept from earlier (a session store);
    /// refused unless it is a verifier RFC 7636 §4.1 allows (43 to 128
    /// characters of letters, digits and `-._~`).
    pub fn from_verifier(verifier: PkceVerifier) -> Result<Self> {
        if !is_valid_verifier(verifier.secret()) {
            return Err(Error::Config(
                "a PKCE verifier is 43 to 128 letters, digits or -._~".into(),
            ));
        }
        Ok(Self::from_valid(verifier))
    }

    fn from_valid(verifier: PkceVerifier) -> Self {
        let digest: [u8; 32] = Sha256::digest(verifier.secret().as_bytes()).into();
        Self {
            challenge: PkceChallenge::from_sha256(&digest),
            verifier,
        }
    }

    /// The challenge, for the sign-in page's URL
    /// ([`authorize_url`](crate::authorize_url)) or
    /// [`OAuthAuthorizeCodeRequest::pkce`](crate::OAuthAuthorizeCodeRequest::pkce).
    pub fn challenge(&self) -> &PkceChallenge {
        &self.challenge
    }

    /// The verifier, for `exchange_authorization_code`.
    pub fn verifier(&self) -> &PkceVerifier {
        &self.verifier
    }

    /// The verifier, to keep until the code comes back.
    pub fn into_verifier(self) -> PkceVerifier {
        self.verifier
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge.as_str())
            .field("verifier", &self.verifier)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_and_fresh_pairs() {
        // RFC 7636, appendix B.
        let rfc = Pkce::from_verifier(PkceVerifier::new(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ))
        .unwrap();
        assert_eq!(
            rfc.challenge().as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let (a, b) = (Pkce::new().unwrap(), Pkce::new().unwrap());
        assert_eq!(a.verifier().secret().len(), 43);
        assert_ne!(a.verifier().secret(), b.verifier().secret());
        assert_ne!(a.challenge(), b.challenge());
        let again = Pkce::from_verifier(a.clone().into_verifier()).unwrap();
        assert_eq!(again.challenge(), a.challenge());
        let shown = format!("{a:?}");
        assert!(shown.contains(a.challenge().as_str()), "{shown}");
        assert!(!shown.contains(a.verifier().secret()), "{shown}");
        for bad in ["short", &"x".repeat(129), &format!("{}/", "x".repeat(50))] {
            let e = Pkce::from_verifier(PkceVerifier::new(bad)).unwrap_err();
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }
}
