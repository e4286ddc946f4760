//! The receive loop of a run, its poll tasks, and how a run ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::renew::renew;
use crate::settle::{acker, process, set_visibility};
use crate::{
    BoxError, Change, Counters, Phase, Problem, QUIET_MARGIN, Receipt, Run, SQS_BATCH, Stats,
    WatchError, Watcher, backoff, sqs,
};

impl Watcher {
    /// Runs until Ctrl-C or (on Unix) SIGTERM; see [`run_until`](Self::run_until).
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<Stats, WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.run_until(handler, shutdown_signal()).await
    }

    /// Registers the watch, then receives and handles changes until `shutdown`
    /// completes; then drains (see the crate docs) and returns the counts.
    /// Fails at once if the registration fails, and later only if the queue
    /// disappears; every other failure is retried and reported.
    pub async fn run_until<F, Fut, E>(
        &self,
        handler: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stats, WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let shared = &self.shared;
        shared
            .client
            .start_watch_data(&self.registration)
            .await
            .map_err(WatchError::Register)?;
        Counters::bump(&shared.counters.registrations, 1);
        tracing::info!(watch = %self.registration.name, "watch registered");

        let (phase_tx, phase) = watch::channel(Phase::Running);
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let run = Arc::new(Run {
            shared: Arc::clone(shared),
            handler_slots: Arc::new(Semaphore::new(self.concurrency)),
            acks,
            visibility: self.visibility,
            ack_mode: self.ack_mode,
            nack_backoff: self.nack_backoff,
            phase: phase.clone(),
            polls: watch::Sender::new(0),
            long_poll: self.long_poll,
            handover: std::sync::Mutex::new(()),
            items: Arc::new(crate::order::Items::new(self.item_memory, self.skip_stale)),
            fifo: crate::is_fifo(&shared.queue_url).then(crate::Fifo::new),
        });
        let acker = tokio::spawn(acker(
            Arc::clone(shared),
            ack_rx,
            phase,
            self.in_hand().min(SQS_BATCH),
        ));
        let renewal = tokio::spawn(renew(
            Arc::clone(shared),
            self.registration.clone(),
            self.renewal_interval,
        ));
        let handler = Arc::new(handler);
        let mut handlers = JoinSet::new();
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
        let outcome = {
            let receiving = self.receive(&run, &handler, &mut handlers, &inbox_tx, &mut inbox);
            tokio::pin!(receiving);
            tokio::pin!(shutdown);
            tokio::select! {
                outcome = &mut receiving => outcome,
                () = &mut shutdown => Ok(()),
            }
        };
        // Drain: no more receives; handlers in hand get the grace period. A
        // poll task still out releases what it brings from now on.
        {
            let _handover = run
                .handover
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = phase_tx.send(Phase::Draining);
        }
        // Handed over just before, never turned into message tasks.
        let mut unheld = Vec::new();
        while let Ok((_room, received)) = inbox.try_recv() {
            unheld.extend(received.unwrap_or_default());
        }
        if !unheld.is_empty() {
            run.quiet().await;
            release_received(&run, unheld).await;
        }
        renewal.abort();
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while handlers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Grace over: every handler still running releases its message.
            let _ = phase_tx.send(Phase::Releasing);
            while handlers.join_next().await.is_some() {}
        }
        // A `Change` kept by the handler past its return keeps `run` alive:
        // the acker stops on the phase, not when the last sender is gone.
        let _ = phase_tx.send(Phase::Closed);
        drop(run);
        let _ = acker.await;
        tracing::info!(stats = ?self.stats(), "watcher stopped");
        outcome.map(|()| self.stats())
    }

    /// Most messages in hand: those being handled, and one batch received
    /// ahead, waiting for a handler (their visibility is kept too).
    fn in_hand(&self) -> usize {
        self.concurrency + self.batch_size as usize
    }

    /// The receive loop: waits for room in hand, then asks for as many
    /// messages as there is room for (a batch at most); each message goes to
    /// its own task, which waits for a handler slot.
    async fn receive<F, Fut, E>(
        &self,
        run: &Arc<Run>,
        handler: &Arc<F>,
        handlers: &mut JoinSet<()>,
        inbox_tx: &mpsc::UnboundedSender<Polled>,
        inbox: &mut mpsc::UnboundedReceiver<Polled>,
    ) -> Result<(), WatchError>
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let room = Arc::new(Semaphore::new(self.in_hand()));
        let batch = self.batch_size as usize;
        let mut failures = 0u32;
        // Receives out at once: at most `pollers`, each with room in hand
        // for what it may bring (one message at least, a batch at most).
        let mut out = 0usize;
        loop {
            // Reap finished handler tasks as we go.
            while handlers.try_join_next().is_some() {}
            let next = if out < self.pollers {
                tokio::select! {
                    biased;
                    polled = inbox.recv() => Next::Polled(polled),
                    room = Arc::clone(&room).acquire_owned() => Next::Room(room.ok()),
                }
            } else {
                Next::Polled(inbox.recv().await)
            };
            let (mut permits, received) = match next {
                Next::Room(None) | Next::Polled(None) => return Ok(()),
                Next::Room(Some(mut permits)) => {
                    while permits.num_permits() < batch {
                        match Arc::clone(&room).try_acquire_owned() {
                            Ok(more) => permits.merge(more),
                            Err(_) => break,
                        }
                    }
                    run.polls.send_modify(|n| *n += 1);
                    tokio::spawn(poll(
                        Arc::clone(run),
                        permits,
                        self.long_poll,
                        inbox_tx.clone(),
                    ));
                    out += 1;
                    continue;
                }
                Next::Polled(Some(polled)) => {
                    out -= 1;
                    polled
                }
            };
            let messages = match received {
                Ok(messages) => {
                    failures = 0;
                    messages
                }
                Err(WatchError::QueueNotFound) => return Err(WatchError::QueueNotFound),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    Counters::bump(&self.shared.counters.receive_failures, 1);
                    self.shared.report(Problem::ReceiveFailed {
                        error: e.to_string(),
                    });
                    let delay = backoff(
                        Duration::from_millis(100),
                        Duration::from_secs(10),
                        failures,
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            Counters::bump(&self.shared.counters.received, messages.len() as u64);
            for message in messages {
                // One place in hand per message; what is not used is freed
                // when `permits` drops.
                let Some(permit) = permits.split(1) else {
                    break;
                };
                // A FIFO group's order is fixed here, before any task runs.
                let turn = match (&run.fifo, &message.group_id) {
                    (Some(fifo), Some(group)) => Some(fifo.groups.take(group.clone())),
                    _ => None,
                };
                let run = Arc::clone(run);
                let handler = Arc::clone(handler);
                handlers.spawn(async move {
                    process(run, message, turn, handler.as_ref()).await;
                    drop(permit);
                });
            }
        }
    }
}

/// A receive's answer, with the room in hand it was made for.
pub(crate) type Polled = (OwnedSemaphorePermit, Result<Vec<sqs::Received>, WatchError>);

/// What the receive loop does next.
enum Next {
    /// Room in hand for another receive (`None`: the run is over).
    Room(Option<OwnedSemaphorePermit>),
    /// A receive answered (`None`: the run is over).
    Polled(Option<Polled>),
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One `ReceiveMessage`, in a task of its own so that stopping the receiver
/// never abandons it: while the run is `Running` it hands the answer to the
/// receiver, after that it releases what it brought itself. Either way it is
/// no longer counted in `polls` once done.
async fn poll(
    run: Arc<Run>,
    room: OwnedSemaphorePermit,
    wait: Duration,
    inbox: mpsc::UnboundedSender<Polled>,
) {
    let shared = &run.shared;
    let max = room.num_permits() as i32;
    let attempt = run.fifo.as_ref().map(crate::Fifo::attempt);
    let received = sqs::receive(
        &shared.sqs,
        &shared.queue_url,
        max,
        wait,
        run.visibility,
        attempt,
    )
    .await;
    let late = {
        let _handover = run
            .handover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *run.phase.borrow() == Phase::Running {
            // The receiver waits for this answer, with its room in hand.
            inbox.send((room, received)).err().map(|e| e.0.1)
        } else {
            Some(received)
        }
    };
    if let Some(Ok(messages)) = late {
        release_received(&run, messages).await;
    }
    run.polls.send_modify(|n| *n -= 1);
}

/// Releases messages received after the receiver stopped (no task holds
/// them), counting them as received and released.
async fn release_received(run: &Run, messages: Vec<sqs::Received>) {
    Counters::bump(&run.shared.counters.received, messages.len() as u64);
    for message in messages {
        let receipt = Receipt::new(message.message_id, message.receipt_handle, true);
        let _ = set_visibility(run, &receipt, Duration::ZERO, &run.shared.counters.released).await;
    }
}

impl Run {
    /// Until no receive of this run is out at SQS: one answered there after
    /// its caller stopped would take a message made visible meanwhile. A
    /// receive SQS leaves unanswered past its long poll (and a margin) is
    /// waited for no longer.
    pub(crate) async fn quiet(&self) {
        let mut polls = self.polls.subscribe();
        let _ =
            tokio::time::timeout(self.long_poll + QUIET_MARGIN, polls.wait_for(|n| *n == 0)).await;
    }
}
