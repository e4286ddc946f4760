//! Newtypes for secret material.
//!
//! Every value that would let someone act as the client or as a user lives in one
//! of these types. They format as `Name([redacted])` under `Debug`, have no
//! `Display`, no derived `PartialEq` (compare with [`ct_eq`](ClientSecret::ct_eq)
//! when you must), and hand out the raw string only through a method named
//! `secret()`, so that every place that exposes one is easy to find.
//!
//! They implement `Serialize` / `Deserialize` as the plain string, because token
//! persistence needs exactly that; serializing one is an explicit act.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Wraps a raw value as a `", stringify!($name), "`.")]
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// Returns the raw secret.
            ///
            /// # Security warning
            ///
            /// The returned string grants access. Do not log it, put it in an error
            /// message or send it anywhere but to the Carthooks server.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Compares with another value in time independent of where they differ.
            pub fn ct_eq(&self, other: &str) -> bool {
                constant_time_eq(self.0.as_bytes(), other.as_bytes())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self)
            }
        }
    };
}

secret_type!(
    /// The OAuth client secret issued with a client id.
    ClientSecret
);
secret_type!(
    /// An OAuth access token (sent as `Authorization: Bearer …`).
    AccessToken
);
secret_type!(
    /// An OAuth refresh token; long-lived (12 months on Carthooks).
    RefreshToken
);
secret_type!(
    /// A Carthooks user's own access token, exchanged in the client-credentials
    /// grant so that the client acts for that user.
    UserAccessToken
);
secret_type!(
    /// A single-use OAuth authorization code.
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1): kept by the client between
    /// sending the user to sign in and exchanging the code, and sent only to
    /// the token endpoint. Whoever holds it and an intercepted code can redeem
    /// the code. Make one with `carthooks_client::Pkce::new()`, or from random
    /// bytes with `PkceVerifier::from_random_bytes` (the `pkce` module).
    PkceVerifier
);

/// Compares two byte strings without an early exit on the first difference.
///
/// The length is not hidden; only where the contents differ is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("very-secret-value");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert_eq!(
            format!("{:#?}", AccessToken::new("at-xyz")),
            "AccessToken([redacted])"
        );
        assert!(!format!("{:?}", Some(RefreshToken::new("rt-xyz"))).contains("rt-xyz"));
        assert_eq!(s.secret(), "very-secret-value");
    }

    #[test]
    fn serde_is_the_plain_string() {
        let t = RefreshToken::new("rt-1");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"rt-1\"");
        let back: RefreshToken = serde_json::from_str("\"rt-2\"").unwrap();
        assert_eq!(back.secret(), "rt-2");
    }

    #[test]
    fn ct_eq_compares_contents() {
        let t = AuthorizationCode::new("abc");
        assert!(t.ct_eq("abc"));
        assert!(!t.ct_eq("abd"));
        assert!(!t.ct_eq("ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
