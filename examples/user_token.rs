//! A back end acting for a user: client credentials plus the user's token.
//!
//! `cargo run --example user_token` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::user_token(&Target::from_env()?).await }.await;
    finish(result)
}
