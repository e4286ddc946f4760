//! Request deadlines, driven by one timer per transport.
//!
//! reqwest's own timeout (`ClientBuilder::timeout`) arms a tokio timer per
//! request: a boxed `Sleep`, put into the timer wheel on its first poll and
//! taken out again when the answer came first — as it almost always does.
//! Measured with callgrind that was ~1k instructions of every call. Here a
//! request instead writes its deadline and waker into the transport's list
//! ([`Deadlines`]; a lock held for a few instructions, to enter and to leave),
//! and checks the clock whenever it is polled anyway. One task per transport
//! (the *ticker*) sleeps until the earliest deadline in the list and wakes the
//! requests whose deadline passed; they see it and fail with
//! [`TransportErrorKind::Timeout`]. A deadline earlier than the one the ticker
//! sleeps until wakes it. With nothing in flight the ticker waits without a
//! timer.
//!
//! The ticker is spawned on the runtime of the request that needs it, and
//! again on another runtime once that one is gone. It holds the list weakly:
//! it ends when its transport is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use carthooks_client::{TransportError, TransportErrorKind};

/// The deadlines of one transport's requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    list: Mutex<List>,
    /// Wakes the ticker: a deadline earlier than its own, a first one, or the
    /// end of the transport. Its own `Arc`, which the ticker holds while it
    /// sleeps (it holds the list only weakly).
    changed: Arc<tokio::sync::Notify>,
    /// True while a ticker task runs (it clears it when its runtime drops it).
    ticking: AtomicBool,
}

#[derive(Debug, Default)]
struct List {
    /// By key; `None`: free (its key is in `free`).
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// What the ticker sleeps until (`None`: no timer, waits for `changed`).
    ticker_until: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    /// Taken when the ticker wakes the request for its deadline.
    waker: Option<Waker>,
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // The ticker, if any, ends.
        self.changed.notify_one();
    }
}

impl Deadlines {
    /// Runs `request` until it is done or `deadline` passes.
    pub(crate) async fn run<T>(
        self: &Arc<Self>,
        deadline: Instant,
        request: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        let mut request = std::pin::pin!(request);
        let mut entry = Registration {
            deadlines: self,
            key: None,
        };
        std::future::poll_fn(|cx| {
            if let Poll::Ready(answer) = request.as_mut().poll(cx) {
                return Poll::Ready(answer);
            }
            if Instant::now() >= deadline {
                return Poll::Ready(Err(TransportError::new(TransportErrorKind::Timeout)));
            }
            entry.watch(deadline, cx);
            Poll::Pending
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure a ticker runs on this runtime.
    fn ensure_ticker(self: &Arc<Self>) {
        if self.ticking.swap(true, Ordering::AcqRel) {
            return;
        }
        let (deadlines, changed) = (Arc::downgrade(self), Arc::clone(&self.changed));
        let alive = TickerAlive(Arc::downgrade(self));
        tokio::spawn(async move {
            let _alive = alive;
            tick(deadlines, changed).await;
        });
    }
}

/// Clears `ticking` when the ticker ends, or its runtime drops it.
struct TickerAlive(Weak<Deadlines>);

impl Drop for TickerAlive {
    fn drop(&mut self) {
        let Some(deadlines) = self.0.upgrade() else {
            return;
        };
        deadlines.ticking.store(false, Ordering::Release);
        // The requests still in flight (on another runtime) spawn a ticker
        // of their own on their next poll: wake them so they poll.
        let list = deadlines.lock();
        for entry in list.entries.iter().flatten() {
            if let Some(waker) = &entry.waker {
                waker.wake_by_ref();
            }
        }
    }
}

/// One request's entry in the list, removed when the request ends.
struct Registration<'a> {
    deadlines: &'a Arc<Deadlines>,
    key: Option<usize>,
}

impl Registration<'_> {
    /// Enters the request (first poll) or updates its waker.
    fn watch(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        let deadlines = self.deadlines;
        if !deadlines.ticking.load(Ordering::Acquire) {
            deadlines.ensure_ticker();
        }
        let mut list = deadlines.lock();
        let entry = Entry {
            deadline,
            waker: Some(cx.waker().clone()),
        };
        match self.key {
            Some(key) => {
                if let Some(Some(old)) = list.entries.get_mut(key)
                    && old.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
                {
                    return;
                }
                list.entries[key] = Some(entry);
            }
            None => {
                let key = match list.free.pop() {
                    Some(key) => {
                        list.entries[key] = Some(entry);
                        key
                    }
                    None => {
                        list.entries.push(Some(entry));
                        list.entries.len() - 1
                    }
                };
                self.key = Some(key);
            }
        }
        if list.ticker_until.is_none_or(|until| deadline < until) {
            list.ticker_until = Some(deadline);
            drop(list);
            deadlines.changed.notify_one();
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut list = self.deadlines.lock();
            list.entries[key] = None;
            list.free.push(key);
        }
    }
}

/// The ticker: wakes the requests whose deadline passed, then sleeps until
/// the next deadline or a change.
async fn tick(deadlines: Weak<Deadlines>, notify: Arc<tokio::sync::Notify>) {
    loop {
        let changed = notify.notified();
        let Some(strong) = deadlines.upgrade() else {
            return;
        };
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        let until = {
            let mut list = strong.lock();
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for entry in list.entries.iter_mut().flatten() {
                if entry.deadline <= now {
                    if let Some(waker) = entry.waker.take() {
                        waker.wake();
                    }
                } else if entry.waker.is_some() {
                    next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
                }
            }
            list.ticker_until = next;
            next
        };
        drop(strong);
        match until {
            Some(until) => {
                let mut sleep = std::pin::pin!(tokio::time::sleep_until(
                    tokio::time::Instant::from_std(until)
                ));
                std::future::poll_fn(|cx| {
                    if sleep.as_mut().poll(cx).is_ready() || changed.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
            None => changed.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A request that never answers fails at its deadline, woken by the ticker;
    /// one that answers first is not failed, and leaves the list.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stuck_request_fails_at_its_deadline_and_a_quick_one_does_not() {
        let deadlines = Arc::new(Deadlines::default());
        let start = Instant::now();
        let stuck = deadlines.run(
            start + Duration::from_millis(300),
            std::future::pending::<Result<(), _>>(),
        );
        // Only an absent wake-up could take this long: the ticker sleeps
        // until the deadline.
        let stuck = tokio::time::timeout(Duration::from_secs(60), stuck)
            .await
            .expect("woken at its deadline");
        let err = stuck.unwrap_err();
        assert_eq!(err.kind(), TransportErrorKind::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(300));

        let quick = deadlines
            .run(Instant::now() + Duration::from_secs(30), async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, TransportError>(7)
            })
            .await;
        assert_eq!(quick.unwrap(), 7);
        let list = deadlines.lock();
        assert!(list.entries.iter().all(Option::is_none), "left the list");
    }

    /// An earlier deadline than the one the ticker sleeps until wakes it.
    #[tokio::test(flavor = "current_thread")]
    async fn an_earlier_deadline_is_kept_though_the_ticker_sleeps_for_a_later_one() {
        let deadlines = Arc::new(Deadlines::default());
        let start = Instant::now();
        let late = tokio::spawn({
            let deadlines = Arc::clone(&deadlines);
            async move {
                let far = Instant::now() + Duration::from_secs(3600);
                deadlines
                    .run(far, std::future::pending::<Result<(), _>>())
                    .await
            }
        });
        tokio::task::yield_now().await;
        assert!(
            deadlines.lock().ticker_until.is_some(),
            "the ticker sleeps for the late one"
        );
        let soon = Instant::now() + Duration::from_millis(200);
        let early = deadlines.run(soon, std::future::pending::<Result<(), _>>());
        let early = tokio::time::timeout(Duration::from_secs(600), early)
            .await
            .expect("the ticker woke for the earlier deadline");
        assert_eq!(early.unwrap_err().kind(), TransportErrorKind::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(!late.is_finished());
        late.abort();
    }

    /// A ticker whose runtime is gone is replaced on the next runtime.
    #[test]
    fn a_new_runtime_gets_a_new_ticker() {
        let deadlines = Arc::new(Deadlines::default());
        for _ in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let answer = rt.block_on(deadlines.run(
                Instant::now() + Duration::from_millis(100),
                std::future::pending::<Result<(), _>>(),
            ));
            assert_eq!(answer.unwrap_err().kind(), TransportErrorKind::Timeout);
            drop(rt);
            assert!(
                !deadlines.ticking.load(Ordering::Acquire),
                "the ticker died with its runtime"
            );
        }
    }
}
