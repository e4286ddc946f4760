//! The `state` parameter of the authorization-code flow: unguessable, checked in
//! constant time.
//!
//! ```
//! let state = carthooks_client::csrf::generate_state()?;
//! // … send the user to authorize with `state`, keep it in their session …
//! assert!(carthooks_client::csrf::verify_state(&state, &state));
//! assert!(!carthooks_client::csrf::verify_state(&state, "forged"));
//! # Ok::<(), carthooks_client::Error>(())
//! ```

use carthooks_core::internal::constant_time_eq;
use carthooks_core::{Error, Result};

/// A new `state`: 32 bytes from the operating system's random source, as 64 hex
/// characters.
pub fn generate_state() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Config(format!("no OS randomness for the CSRF state: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// True when the callback's `state` is the one issued; compared in constant time.
/// An empty expected state never verifies.
pub fn verify_state(expected: &str, received: &str) -> bool {
    !expected.is_empty() && constant_time_eq(expected.as_bytes(), received.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_unique_and_verified() {
        let a = generate_state().unwrap();
        let b = generate_state().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(verify_state(&a, &a));
        assert!(!verify_state(&a, &b));
        assert!(!verify_state("", ""));
    }
}
