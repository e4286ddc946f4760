//! The blocking client (ureq backend, no async runtime): client credentials,
//! current user, items.
//!
//! `cargo run --example blocking` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

fn main() -> std::process::ExitCode {
    finish(Target::from_env().and_then(|t| examples_support::blocking(&t)))
}
