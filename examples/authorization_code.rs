//! A web app: authorization code issued for a user, then exchanged.
//!
//! `cargo run --example authorization_code` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::authorization_code(&Target::from_env()?).await }.await;
    finish(result)
}
