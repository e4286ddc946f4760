//! Items end to end: create, get, update, lock, unlock, list with a filter, walk
//! all pages, delete.
//!
//! `cargo run --example items_crud` — against the embedded fake server unless
//! `CARTHOOKS_API_URL` is set (then also `CARTHOOKS_APP_ID` and
//! `CARTHOOKS_COLLECTION_ID`).

use examples_support::{Target, finish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async { examples_support::items_crud(&Target::from_env()?).await }.await;
    finish(result)
}
