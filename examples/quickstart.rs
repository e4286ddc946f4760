//! The complete tour: client credentials, current user, items, create an item.
//!
//! `cargo run --example quickstart` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::quickstart(&Target::from_env()?).await }.await;
    finish(result)
}
