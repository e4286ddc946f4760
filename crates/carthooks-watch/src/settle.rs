//! One message from hand-over to settled: the handler under a heartbeat, acks, nacks and releases.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use carthooks_client::ItemId;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::order::Turn;
use crate::{
    ACK_LINGER, AckJob, AckMode, BoxError, Change, ChangeEvent, Counters, MAX_VISIBILITY, Phase,
    Problem, Receipt, Run, SQS_BATCH, Shared, WatchError, backoff, sqs,
};

/// One message: parse, hand to the handler under a visibility heartbeat, settle.
pub(crate) async fn process<F, Fut, E>(
    run: Arc<Run>,
    message: sqs::Received,
    mut turn: Option<Turn>,
    handler: &F,
) where
    F: Fn(Change) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let shared = &run.shared;
    let mut scope = shared.telemetry.message(&message);
    let event = match ChangeEvent::parse(&message.body) {
        Ok(event) => event,
        Err(reason) => {
            // Left alone: it comes back after the visibility timeout until the
            // queue's redrive policy moves it to the dead-letter queue.
            Counters::bump(&shared.counters.malformed, 1);
            scope.malformed();
            shared.report(Problem::Malformed {
                message_id: message.message_id,
                reason,
            });
            return;
        }
    };
    scope.parsed(&event);
    let receipt = Arc::new(Receipt::new(
        message.message_id,
        message.receipt_handle,
        false,
    ));
    let change = Change {
        event: Arc::new(event),
        receipt: Arc::clone(&receipt),
        receive_count: message.receive_count,
        origin: crate::change::Origin::Queue(Arc::clone(&run)),
    };
    let item_id = change.event.item_id();
    let receive_count = message.receive_count;
    let guard = PanicGuard {
        run: &run,
        receipt: &receipt,
        receive_count,
        item_id,
    };
    let version = change.event.revision();
    let work = async {
        // Received ahead: wait for the group's turn (FIFO), then the item's
        // gate (after its changes that came first), then a handler slot,
        // unless the watcher stops.
        let mut phase = run.phase.clone();
        if let Some(turn) = turn.as_mut() {
            let go = tokio::select! {
                go = turn.wait() => Some(go),
                _ = phase.wait_for(|p| *p != Phase::Running) => None,
            };
            match go {
                None => return Work::Unstarted,
                Some(false) => {
                    // Behind a message of its group that was not acked:
                    // visible again at once, after that one, so the group
                    // comes back from the failed message on, in order.
                    if receipt.settle() {
                        let _ = set_visibility(
                            &run,
                            &receipt,
                            Duration::ZERO,
                            &shared.counters.released,
                        )
                        .await;
                    }
                    return Work::Done;
                }
                Some(true) => {}
            }
        }
        let held = tokio::select! {
            held = run.items.hold(item_id) => Some(held),
            _ = phase.wait_for(|p| *p != Phase::Running) => None,
        };
        let Some(_held) = held else {
            return Work::Unstarted;
        };
        if run.items.is_stale(item_id, version) {
            // Not newer than what was handled: the handler never sees it.
            Counters::bump(&shared.counters.stale, 1);
            auto_ack(&run, &receipt).await;
            return Work::Done;
        }
        let slot = tokio::select! {
            slot = Arc::clone(&run.handler_slots).acquire_owned() => slot.ok(),
            _ = phase.wait_for(|p| *p != Phase::Running) => None,
        };
        let Some(_slot) = slot else {
            return Work::Unstarted;
        };
        let started = Instant::now();
        let result = scope.run(handler(change)).await.map_err(Into::into);
        scope.handled(result.is_ok(), started.elapsed());
        match &result {
            Ok(()) => Counters::bump(&shared.counters.handled, 1),
            Err(error) => {
                Counters::bump(&shared.counters.failed, 1);
                shared.report(Problem::HandlerFailed {
                    message_id: receipt.message_id.clone(),
                    item_id,
                    error: error.to_string(),
                });
            }
        }
        if run.ack_mode == AckMode::Auto {
            match result {
                Ok(()) => {
                    // Remembered once acked: a nacked change comes back and
                    // is not stale (in manual mode, `Change::ack` remembers).
                    run.items.handled(item_id, version);
                    auto_ack(&run, &receipt).await;
                }
                Err(_) => {
                    let _ = nack(&run, &receipt, run.nack_delay(receive_count)).await;
                }
            }
        }
        Work::Done
    };
    heartbeat(&run, &receipt, message.received_at, work).await;
    std::mem::forget(guard);
    if let Some(turn) = turn {
        // The group's next message goes only once this one is deleted.
        turn.end(receipt.is_done());
    }
}

/// Nacks the message of a handler that panicked (the task unwinds through it).
struct PanicGuard<'a> {
    run: &'a Arc<Run>,
    receipt: &'a Arc<Receipt>,
    receive_count: u32,
    item_id: ItemId,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.receipt.is_settled() {
            return;
        }
        let shared = &self.run.shared;
        Counters::bump(&shared.counters.failed, 1);
        shared.report(Problem::HandlerFailed {
            message_id: self.receipt.message_id.clone(),
            item_id: self.item_id,
            error: "panicked".into(),
        });
        if self.run.ack_mode == AckMode::Auto {
            let (run, receipt) = (Arc::clone(self.run), Arc::clone(self.receipt));
            let delay = run.nack_delay(self.receive_count);
            tokio::spawn(async move {
                let _ = nack(&run, &receipt, delay).await;
            });
        }
    }
}

impl Run {
    fn nack_delay(&self, receive_count: u32) -> Duration {
        let (first, max) = self.nack_backoff;
        backoff(first, max, receive_count.max(1))
    }
}

/// Runs `work` while extending the message's visibility every half timeout
/// (counted from when it was received); when the shutdown grace runs out,
/// drops `work` and releases the message.
async fn heartbeat(
    run: &Arc<Run>,
    receipt: &Arc<Receipt>,
    received_at: Instant,
    work: impl Future<Output = Work>,
) {
    let shared = &run.shared;
    let period = run.visibility / 2;
    let mut next = received_at + period;
    let mut phase = run.phase.clone();
    let unstarted = tokio::sync::Notify::new();
    // The one release of this message: when the grace is over or the work
    // ended unstarted. One future for the whole loop, so that its wait for a
    // receive still out (in `release`) goes on across extensions, and a
    // release under way is never dropped halfway.
    let releasing = async {
        let over = async { phase.wait_for(|p| *p >= Phase::Releasing).await.is_ok() };
        let release_now = tokio::select! {
            over = over => over,
            () = unstarted.notified() => true,
        };
        if !release_now {
            // The run is gone without a release (it cannot be): nothing to do.
            return std::future::pending::<()>().await;
        }
        release(run, receipt).await;
    };
    tokio::pin!(work);
    tokio::pin!(releasing);
    let mut working = true;
    loop {
        tokio::select! {
            done = &mut work, if working => match done {
                Work::Done => return,
                Work::Unstarted => {
                    working = false;
                    unstarted.notify_one();
                }
            },
            () = &mut releasing => return,
            () = tokio::time::sleep_until(next) => {
                next += period;
                if receipt.is_settled() {
                    continue;
                }
                let _ = set_visibility(run, receipt, run.visibility, &shared.counters.extended).await;
            }
        }
    }
}

/// How a message's work ended.
enum Work {
    /// Handled (and settled, or left to the handler).
    Done,
    /// Never handed to a handler: the watcher stops. The heartbeat releases it.
    Unstarted,
}

/// Makes an unsettled message visible again at once (shutdown), so that
/// another worker takes it without waiting out its visibility timeout —
/// once no receive of this run is out to take it back. Until then it stays
/// unsettled, so the heartbeat keeps it hidden.
async fn release(run: &Run, receipt: &Receipt) {
    run.quiet().await;
    if receipt.settle() {
        let _ = set_visibility(run, receipt, Duration::ZERO, &run.shared.counters.released).await;
    }
}

/// Sets a message's visibility timeout; counts the success in `done`, or
/// counts and reports the failure.
pub(crate) async fn set_visibility(
    run: &Run,
    receipt: &Receipt,
    timeout: Duration,
    done: &crate::telemetry::Count,
) -> Result<(), WatchError> {
    let shared = &run.shared;
    let result =
        sqs::change_visibility(&shared.sqs, &shared.queue_url, &receipt.handle, timeout).await;
    match &result {
        Ok(()) => Counters::bump(done, 1),
        Err(e) => shared.settle_failed(&receipt.message_id, "ChangeMessageVisibility", e),
    }
    result
}

/// Queues an ack for the acker and waits until SQS deleted the message.
pub(crate) async fn ack(run: &Run, receipt: &Arc<Receipt>) -> Result<(), WatchError> {
    if !receipt.settle() {
        return Err(WatchError::AlreadySettled);
    }
    let (done, result) = oneshot::channel();
    run.acks
        .send(AckJob {
            receipt: Arc::clone(receipt),
            done: Some(done),
            urgent: run.fifo.is_some(),
        })
        .map_err(|_| WatchError::Stopped)?;
    result.await.unwrap_or(Err(WatchError::Stopped))
}

/// Queues an ack without waiting for it (auto mode): the handler's slot is
/// free at once, and the acker reports a failure itself. The message stays
/// hidden meanwhile: the acker sends within [`ACK_LINGER`], and the heartbeat
/// left at least half a visibility timeout.
fn queue_ack(run: &Run, receipt: &Arc<Receipt>) {
    if receipt.settle() {
        let _ = run.acks.send(AckJob {
            receipt: Arc::clone(receipt),
            done: None,
            urgent: false,
        });
    }
}

/// Acks a message handled (or stale) in auto mode: queued on a standard
/// queue; on a FIFO queue sent at once and waited for, so that the group's
/// next message runs only once this one is deleted — were this process to
/// die between the two, the older change would otherwise come back after
/// the newer one was handled.
async fn auto_ack(run: &Run, receipt: &Arc<Receipt>) {
    if run.fifo.is_some() {
        // A failure is reported by the acker; the group then stops.
        let _ = ack(run, receipt).await;
    } else {
        queue_ack(run, receipt);
    }
}

/// Makes the message visible again after `delay`.
pub(crate) async fn nack(run: &Run, receipt: &Receipt, delay: Duration) -> Result<(), WatchError> {
    if !receipt.settle() {
        return Err(WatchError::AlreadySettled);
    }
    set_visibility(
        run,
        receipt,
        delay.min(MAX_VISIBILITY),
        &run.shared.counters.nacked,
    )
    .await
}

/// Collects acks into `DeleteMessageBatch` calls, each sent once it holds
/// `flush_at` acks (10, or fewer when fewer can be in hand) or after at most
/// [`ACK_LINGER`] (an urgent ack — a FIFO queue's — at once, with what is
/// queued already); up to 4 batches in flight. When the run is closed it sends
/// what it holds and stops; an ack asked for later fails with
/// [`WatchError::Stopped`].
pub(crate) async fn acker(
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<AckJob>,
    mut phase: watch::Receiver<Phase>,
    flush_at: usize,
) {
    let in_flight = Arc::new(Semaphore::new(4));
    let mut sends = JoinSet::new();
    let mut send = |batch: Vec<AckJob>, permit| {
        let shared = Arc::clone(&shared);
        sends.spawn(async move {
            delete_batch(&shared, batch).await;
            drop(permit);
        });
    };
    loop {
        let first = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = phase.wait_for(|p| *p == Phase::Closed) => break,
        };
        let urgent = first.urgent;
        let mut batch = vec![first];
        if urgent {
            // Waited for: what is queued already goes along, nothing more.
            while batch.len() < flush_at {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let deadline = Instant::now() + ACK_LINGER;
        while !urgent && batch.len() < flush_at {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        send(batch, permit);
    }
    // Closed: what is queued goes out; later acks find the channel closed.
    jobs.close();
    let mut rest = Vec::new();
    while let Ok(job) = jobs.try_recv() {
        rest.push(job);
    }
    while !rest.is_empty() {
        let batch: Vec<AckJob> = rest.drain(..rest.len().min(SQS_BATCH)).collect();
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        send(batch, permit);
    }
    while sends.join_next().await.is_some() {}
}

/// One `DeleteMessageBatch`; entries that failed are retried once on their own
/// batch, then reported.
async fn delete_batch(shared: &Shared, batch: Vec<AckJob>) {
    let mut pending = batch;
    for attempt in 0..2 {
        let handles: Vec<&str> = pending.iter().map(|j| j.receipt.handle.as_str()).collect();
        let outcome = sqs::delete_batch(&shared.sqs, &shared.queue_url, &handles).await;
        let mut retry = Vec::new();
        for (job, result) in pending.into_iter().zip(outcome) {
            match result {
                Ok(()) => {
                    Counters::bump(&shared.counters.acked, 1);
                    job.receipt.mark_done();
                    if let Some(done) = job.done {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "ack failed; retrying once");
                    retry.push(job);
                }
                Err(e) => {
                    shared.settle_failed(&job.receipt.message_id, "DeleteMessageBatch", &e);
                    if let Some(done) = job.done {
                        let _ = done.send(Err(e));
                    }
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        pending = retry;
    }
}
