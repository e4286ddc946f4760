//! Token persistence: save through the callback, restart from the stored refresh token.
//!
//! `cargo run --example token_storage` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::token_storage(&Target::from_env()?).await }.await;
    finish(result)
}
