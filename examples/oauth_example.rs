//! Every OAuth flow in turn, or just the one named — like the Python SDK's
//! `examples/oauth_example.py`.
//!
//! ```text
//! cargo run --example oauth_example                       # all flows
//! cargo run --example oauth_example -- client-credentials # one flow
//! ```
//! Flows: `client-credentials`, `user-token`, `authorization-code`,
//! `token-storage`, `blocking`.

use examples_support::{BoxError, Target, finish};

const FLOWS: &[&str] = &[
    "client-credentials",
    "user-token",
    "authorization-code",
    "token-storage",
    "blocking",
];

async fn run_flow(name: &str, target: &Target) -> Result<(), BoxError> {
    match name {
        "client-credentials" => examples_support::client_credentials(target).await,
        "user-token" => examples_support::user_token(target).await,
        "authorization-code" => examples_support::authorization_code(target).await,
        "token-storage" => examples_support::token_storage(target).await,
        "blocking" => {
            // The blocking client must not run on an async worker thread.
            tokio::task::block_in_place(|| examples_support::blocking(target))
        }
        other => Err(format!("unknown flow {other:?}; flows: {}", FLOWS.join(", ")).into()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let chosen: Vec<String> = std::env::args().skip(1).collect();
    let result = async {
        for name in &chosen {
            if !FLOWS.contains(&name.as_str()) {
                return Err(format!("unknown flow {name:?}; flows: {}", FLOWS.join(", ")).into());
            }
        }
        let target = Target::from_env()?;
        let names: Vec<&str> = if chosen.is_empty() {
            FLOWS.to_vec()
        } else {
            chosen.iter().map(String::as_str).collect()
        };
        for name in names {
            println!("== {name}");
            run_flow(name, &target).await?;
        }
        Ok(())
    }
    .await;
    finish(result)
}
