//! What can go wrong, as one plain sentence and an exit code (see
//! [`EXIT_CODES`](crate::args::EXIT_CODES)).

use std::fmt;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// A flag, an argument or an input is wrong (exit 2).
    Usage(String),
    /// Not signed in, or the sign-in no longer holds (exit 4).
    SignIn(String),
    /// Stopped by Ctrl-C (exit 130); the message says how to go on.
    Interrupted(String),
    /// The config or the secrets' storage (exit 1).
    Config(String),
    /// The SDK's error: the server refused, the network failed (exit 1, or
    /// 4 when a new sign-in is needed).
    Sdk(carthooks::Error),
    /// Anything else (exit 1).
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::SignIn(_) => 4,
            CliError::Interrupted(_) => 130,
            CliError::Sdk(e) if needs_sign_in(e) => 4,
            CliError::Config(_) | CliError::Sdk(_) | CliError::Other(_) => 1,
        }
    }
}

fn needs_sign_in(e: &carthooks::Error) -> bool {
    e.needs_reauthorization()
        || matches!(e, carthooks::Error::NotAuthenticated(_))
        || e.status().is_some_and(|s| s.as_u16() == 401)
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m)
            | CliError::SignIn(m)
            | CliError::Interrupted(m)
            | CliError::Config(m)
            | CliError::Other(m) => f.write_str(m),
            CliError::Sdk(e) => {
                // The SDK's errors never hold a secret; the trace id is what
                // support asks for.
                let text = e.to_string();
                f.write_str(&text)?;
                if let Some(trace) = e.trace_id().filter(|t| !text.contains(t)) {
                    write!(f, " (trace id {trace})")?;
                }
                if e.oauth_error_code() == Some("invalid_client") {
                    f.write_str("; check the client id and secret")?;
                } else if needs_sign_in(e) {
                    f.write_str("; sign in again with `carthooks login`")?;
                }
                Ok(())
            }
        }
    }
}

impl From<carthooks::Error> for CliError {
    fn from(e: carthooks::Error) -> Self {
        CliError::Sdk(e)
    }
}

/// `Err(CliError::Usage(..))` from a message.
pub fn usage<T>(message: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Usage(message.into()))
}
