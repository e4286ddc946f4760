//! A Lambda function built on `carthooks_watch::lambda`, as one is deployed
//! (a `bootstrap` binary), for `tests/watch_lambda.rs` to run against the
//! Runtime API emulator (`carthooks_tests::lambda_api`) and carthooks-mock.
//!
//! Its handler, steered by the changed item's fields:
//! - prints `{"at":"start"|"end","item":…,"version":…,"message_id":…}` on
//!   stdout around each call, so the test sees order and overlap;
//! - sleeps `sleep_ms`;
//! - fails with an error when `fail` is true, panics when `panic` is true;
//! - when `mark` is true, writes `marked_by` (the watcher id) and
//!   `marked_version` to the item through `Change::update`.

use std::process::ExitCode;
use std::time::Duration;

use carthooks_client::OAuthConfig;
use carthooks_mock::{DEFAULT_APP_ID, DEFAULT_COLLECTION_ID};
use carthooks_watch::lambda::LambdaWatcher;
use carthooks_watch::{BoxError, Change};
use serde_json::json;

async fn handle(change: Change) -> Result<(), BoxError> {
    let fields = &change.event().payload.fields;
    let flag = |name: &str| fields.get(name).and_then(|v| v.as_bool()) == Some(true);
    let line = |at: &str| {
        json!({
            "at": at,
            "item": change.item_id().get(),
            "version": change.event().revision(),
            "message_id": change.message_id(),
        })
    };
    println!("{}", line("start"));
    if let Some(ms) = fields.get("sleep_ms").and_then(|v| v.as_u64()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if flag("panic") {
        panic!("the handler panics on purpose");
    }
    if flag("fail") {
        println!("{}", line("end"));
        return Err("the handler fails on purpose".into());
    }
    if flag("mark") {
        change
            .update(&json!({
                "mark": false,
                "marked_by": change.watcher_id(),
                "marked_version": change.event().revision(),
            }))
            .await?;
    }
    println!("{}", line("end"));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let client = OAuthConfig::from_env().and_then(|oauth| {
        carthooks_reqwest::Client::builder()
            .from_env()
            .oauth(oauth)
            .build()
    });
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            eprintln!("lambda_function: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Once per cold start: the token is then kept and renewed by the client
    // across invocations.
    if let Err(e) = client.initialize_oauth(None).await {
        eprintln!("lambda_function: cannot sign in: {e}");
        return ExitCode::FAILURE;
    }
    let watcher = LambdaWatcher::builder(client, DEFAULT_APP_ID, DEFAULT_COLLECTION_ID)
        .concurrency(4)
        .build();
    match watcher.run(handle).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda_function: {e}");
            ExitCode::FAILURE
        }
    }
}
