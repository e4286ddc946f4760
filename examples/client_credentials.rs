//! Machine to machine: the client-credentials grant.
//!
//! `cargo run --example client_credentials` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set.

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::client_credentials(&Target::from_env()?).await }.await;
    finish(result)
}
