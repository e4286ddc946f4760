//! `carthooks watch tail`: the watcher with a handler that prints each
//! change and returns (so the change is acked once printed). Ctrl-C stops
//! the receive loop; changes in hand are finished or released for
//! redelivery, as the watcher's shutdown does.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use carthooks::watch::{BoxError, Change, ChangeKind, Watcher};
use serde_json::json;

use crate::args::{Format, Target};
use crate::ctx::Ctx;
use crate::error::{CliError, usage};

fn line(change: &Change, format: Format) -> String {
    let event = change.event();
    if format == Format::Table {
        let kind = match event.kind() {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            _ => event.meta.event.as_str(),
        };
        let version = event.version.as_ref().map_or(String::new(), |v| {
            format!(" v{}", v.as_u64().map_or(v.to_string(), |n| n.to_string()))
        });
        let title = event.payload.title.as_deref().unwrap_or("");
        return format!("{kind:<8} item {}{version}  {title}", change.item_id());
    }
    json!({
        "event": event.meta.event,
        "item_id": change.item_id().get(),
        "version": event.version,
        "title": event.payload.title,
        "fields": event.payload.fields,
        "updated_at": event.payload.updated_at,
        "message_id": change.message_id(),
        "receive_count": change.receive_count(),
    })
    .to_string()
}

pub async fn tail(
    ctx: &Ctx,
    target: Target,
    queue: String,
    filters: Option<String>,
    max: Option<u64>,
) -> Result<(), CliError> {
    let (app, coll) = ctx.target(&target)?;
    let format = match ctx.global.output.as_deref().map(Format::parse) {
        None if std::io::stdout().is_terminal() => Format::Table,
        None => Format::Ndjson,
        Some(Some(f @ (Format::Table | Format::Ndjson))) => f,
        Some(Some(Format::Json)) => Format::Ndjson,
        Some(_) => return usage("watch tail prints -o table (a short line) or -o ndjson"),
    };
    let client = ctx.client().await?;
    let mut builder = Watcher::builder(client, &queue, app, coll)
        .concurrency(1)
        .on_problem({
            let quiet = ctx.global.quiet;
            move |problem| {
                if !quiet {
                    eprintln!("watch: {problem:?}");
                }
            }
        });
    if let Some(f) = &filters {
        let f = serde_json::from_str(f)
            .map_err(|e| CliError::Usage(format!("--filters is not JSON: {e}")))?;
        builder = builder.filters(f);
    }
    let watcher = builder
        .build()
        .await
        .map_err(|e| CliError::Other(format!("cannot watch {queue}: {e}")))?;
    ctx.say(format!(
        "Watching app {app} collection {coll} on {queue}; Ctrl-C stops."
    ));
    let printed = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let handler = {
        let printed = Arc::clone(&printed);
        move |change: Change| {
            let text = line(&change, format);
            let printed = Arc::clone(&printed);
            let done_tx = done_tx.clone();
            async move {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").and_then(|()| out.flush())?;
                let n = printed.fetch_add(1, Ordering::SeqCst) + 1;
                if max.is_some_and(|m| n >= m) {
                    let _ = done_tx.send(true);
                }
                Ok::<(), BoxError>(())
            }
        }
    };
    let stop = async move {
        let mut done_rx = done_rx;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = done_rx.wait_for(|done| *done) => {}
        }
    };
    let stats = watcher
        .run_until(handler, stop)
        .await
        .map_err(|e| CliError::Other(format!("the watch stopped: {e}")))?;
    ctx.say(format!(
        "Stopped: {} changes printed, {} acked, {} malformed (left for the dead-letter queue).",
        printed.load(Ordering::SeqCst),
        stats.acked,
        stats.malformed
    ));
    Ok(())
}
