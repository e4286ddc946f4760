//! PKCE, Proof Key for Code Exchange (RFC 7636), with the `S256` method only.
//!
//! The authorization-code flow sends the user's browser to the sign-in page
//! with a *challenge* and exchanges the code that comes back together with the
//! *verifier* the challenge was made from. A code intercepted on its way back
//! (a leaked log, a referrer, a malicious app on the same device) is useless
//! without the verifier, which never left the client. RFC 9700 §2.1.1 asks every
//! client to use it, confidential ones included.
//!
//! ```text
//!  verifier = BASE64URL(32 random bytes)        43 characters, kept secret
//!  challenge = BASE64URL(SHA-256(verifier))     43 characters, sent in the URL
//! ```
//!
//! This crate reads no randomness and hashes nothing (it depends on no crypto
//! crate): [`PkceVerifier::from_random_bytes`] takes the bytes and
//! [`PkceChallenge::from_sha256`] the digest. `carthooks_client::Pkce::new()`
//! reads the bytes from the operating system and hashes with `sha2`.
//!
//! An authorization server that does not know PKCE ignores the extra
//! parameters (RFC 6749 §3.1: unknown request parameters are ignored; §3.2 for
//! the token endpoint), so sending them is always safe.
//!
//! ```
//! use carthooks_core::PkceChallenge;
//! use carthooks_core::internal::is_valid_verifier;
//! use carthooks_core::PkceVerifier;
//! // RFC 7636, appendix B.
//! let bytes = [
//!     116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
//!     77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
//! ];
//! let verifier = PkceVerifier::from_random_bytes(&bytes);
//! assert_eq!(verifier.secret(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
//! assert!(is_valid_verifier(verifier.secret()));
//! // SHA-256 of that verifier, as any SHA-256 implementation computes it:
//! let digest = [
//!     0x13, 0xd3, 0x1e, 0x96, 0x1a, 0x1a, 0xd8, 0xec, 0x2f, 0x16, 0xb1, 0x0c, 0x4c, 0x98, 0x2e,
//!     0x08, 0x76, 0xa8, 0x78, 0xad, 0x6d, 0xf1, 0x44, 0x56, 0x6e, 0xe1, 0x89, 0x4a, 0xcb, 0x70,
//!     0xf9, 0xc3,
//! ];
//! let challenge = PkceChallenge::from_sha256(&digest);
//! assert_eq!(challenge.as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
//! assert_eq!(PkceChallenge::METHOD, "S256");
//! ```

use crate::secret::PkceVerifier;

/// The one challenge method this SDK sends and the mock accepts. `plain`
/// (the challenge *is* the verifier) protects nothing once the authorization
/// request is seen, and RFC 9700 §2.1.1 says not to use it.
pub const S256: &str = "S256";

/// The `code_challenge` sent with the authorization request: the
/// base64url-encoded SHA-256 of a [`PkceVerifier`]. Not a secret: it travels
/// in the sign-in page's URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The `code_challenge_method` that goes with it.
    pub const METHOD: &'static str = S256;

    /// The challenge for a verifier whose SHA-256 digest is `digest`.
    pub fn from_sha256(digest: &[u8; 32]) -> Self {
        Self(base64url(digest))
    }

    /// The challenge as sent (43 base64url characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PkceVerifier {
    /// The verifier for 32 random bytes: their base64url encoding without
    /// padding, 43 characters (RFC 7636 §4.1). The bytes must come from a
    /// cryptographically secure source (the operating system's).
    pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
        Self::new(base64url(bytes))
    }
}

/// Whether `verifier` is a verifier RFC 7636 §4.1 allows: 43 to 128
/// characters, each a letter, a digit or one of `-._~`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` has the form of an S256 challenge: 43 base64url
/// characters (the encoding of 32 bytes).
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Base64url without padding (RFC 4648 §5), as PKCE uses it.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // 2, 3 or 4 characters for 1, 2 or 3 bytes.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_of_every_length_without_padding() {
        // RFC 4648 §10's vectors, in the URL alphabet and unpadded.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
    }

    #[test]
    fn verifiers_and_challenges_are_checked_for_form() {
        let v = PkceVerifier::from_random_bytes(&[0xff; 32]);
        assert_eq!(v.secret().len(), 43);
        assert!(is_valid_verifier(v.secret()));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a~.-_".repeat(26)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(42))));
        let c = PkceChallenge::from_sha256(&[7; 32]);
        assert!(is_valid_s256_challenge(c.as_str()));
        assert!(!is_valid_s256_challenge(&c.as_str()[1..]));
        assert!(!is_valid_s256_challenge(&format!("{}=", &c.as_str()[1..])));
        assert_eq!(format!("{v:?}"), "PkceVerifier([redacted])");
    }
}
