//! Per-item order in one process, and stale changes skipped.
//!
//! A standard queue delivers an item's changes in any order and sometimes
//! twice, and several handlers run at once: without care, two changes of one
//! item run at the same time, or `item.updated` v3 is handled before v2 and
//! v2 then overwrites newer data downstream. Two rules fix that inside one
//! watcher:
//!
//! 1. **One change of an item at a time.** Each item has a gate (an async
//!    mutex, fair: first come, first served). A message takes its item's gate
//!    before it takes a handler slot, so a change waiting behind another of
//!    the same item holds no slot while it waits; its heartbeat keeps it out
//!    of sight meanwhile. A gate exists only while someone holds or waits for
//!    it.
//! 2. **Never older after newer.** With the gate held, a change whose
//!    `version` ([`ChangeEvent::revision`](crate::ChangeEvent::revision)) is
//!    not newer than the last one handled for the item is acked without
//!    calling the handler, and counted (`Stats::stale`). Only successes are
//!    remembered: a failed v3 does not make v2 stale. The memory holds the
//!    last `item_memory` items (default 10,000); the item remembered longest
//!    ago is forgotten first, and a change of a forgotten item is handled.
//!    Changes without a version are never stale. `skip_stale(false)` turns
//!    rule 2 off (rule 1 stays).
//!
//! Across processes neither rule holds: that needs a FIFO queue (one group
//! per item) or a version check where the data is written.
//!
//! # FIFO queues
//!
//! On a FIFO queue (its name ends in `.fifo`) SQS keeps a group's order
//! across receives and workers: while a message of a group is in flight, no
//! later one of the group is handed out. What is left to this process is the
//! order *inside* what it holds — one receive may bring several messages of
//! a group, in order — and what to do when one fails:
//!
//! 3. **A group's messages run one after another, in the order received**
//!    ([`Groups`]). The order is fixed in the receive loop, synchronously,
//!    before any message task runs: each message takes a [`Turn`] behind the
//!    group's last one (a chain of one-shot channels), so task scheduling
//!    cannot reorder them. Groups run in parallel, up to `concurrency`.
//! 4. **A message not acked stops its group for this batch.** A turn ends
//!    passing on whether its message was acked; a message whose turn comes
//!    after one that was not (failed, nacked, malformed, left unsettled in
//!    manual mode, or a handler that panicked) is released at once (made
//!    visible) without calling the handler, and passes the stop on. SQS
//!    hands the group out again only when the failed message is visible
//!    again — after its nack delay — and then from that message: nothing
//!    overtakes it. Other groups go on meanwhile. A chain ends with the last
//!    message of the group in hand, so the next batch starts afresh. (The
//!    released ones are received again with the failed one, so each round
//!    counts a receive for them too; a message that keeps failing takes them
//!    to the dead-letter queue with it, in order — SQS cannot hand out a
//!    group's head alone.)
//!
//! Rules 1 and 2 still apply inside a group (a group may hold several items,
//! or an item be in several groups).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use carthooks_client::ItemId;
use tokio::sync::{OwnedMutexGuard, oneshot};

/// Items remembered by default.
pub const DEFAULT_ITEM_MEMORY: usize = 10_000;

/// The gates and the memory of one watcher.
pub(crate) struct Items {
    gates: Mutex<HashMap<ItemId, Arc<tokio::sync::Mutex<()>>>>,
    latest: Mutex<Latest>,
    skip_stale: bool,
}

/// The last version handled per item, for at most `capacity` items.
struct Latest {
    versions: HashMap<ItemId, u64>,
    /// Each remembered item once, oldest first.
    order: VecDeque<ItemId>,
    capacity: usize,
}

/// An item's gate, held: dropped, the next change of the item may go.
pub(crate) struct Held {
    items: Arc<Items>,
    item: ItemId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut gates = self
            .items
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Nobody else holds or waits for it (clones are made under this lock).
        if gates
            .get(&self.item)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(&self.item);
        }
    }
}

impl Items {
    pub(crate) fn new(item_memory: usize, skip_stale: bool) -> Self {
        Self {
            gates: Mutex::new(HashMap::new()),
            latest: Mutex::new(Latest {
                versions: HashMap::new(),
                order: VecDeque::new(),
                capacity: item_memory.max(1),
            }),
            skip_stale,
        }
    }

    /// Waits for `item`'s gate (after the changes of it that came first).
    pub(crate) async fn hold(self: &Arc<Self>, item: ItemId) -> Held {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(gates.entry(item).or_default())
        };
        let guard = gate.lock_owned().await;
        Held {
            items: Arc::clone(self),
            item,
            guard: Some(guard),
        }
    }

    /// Whether a change of `item` at `version` is not newer than the last
    /// one handled (and stale changes are skipped).
    pub(crate) fn is_stale(&self, item: ItemId, version: Option<u64>) -> bool {
        let (true, Some(version)) = (self.skip_stale, version) else {
            return false;
        };
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest
            .versions
            .get(&item)
            .is_some_and(|&last| version <= last)
    }

    /// Remembers that `item`'s change at `version` was handled.
    pub(crate) fn handled(&self, item: ItemId, version: Option<u64>) {
        let Some(version) = version else {
            return;
        };
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let Latest {
            versions,
            order,
            capacity,
        } = &mut *latest;
        match versions.get_mut(&item) {
            Some(last) => *last = (*last).max(version),
            None => {
                versions.insert(item, version);
                order.push_back(item);
                while versions.len() > *capacity {
                    match order.pop_front() {
                        Some(oldest) => {
                            versions.remove(&oldest);
                        }
                        None => break,
                    }
                }
            }
        }
    }
}

/// The order of each FIFO group's messages in hand (rules 3 and 4 above).
#[derive(Default)]
pub(crate) struct Groups {
    /// Per group, the last turn taken: its number and the end of it, for the
    /// next one to wait on.
    last: Mutex<HashMap<String, (u64, oneshot::Receiver<bool>)>>,
    /// Numbers the turns, so that a turn ending knows whether it is still
    /// the group's last.
    taken: std::sync::atomic::AtomicU64,
}

/// One message's place in its group: wait for it ([`Turn::wait`]), then end
/// it saying whether the message was acked ([`Turn::end`]). Dropped without
/// an end (a panic, a shutdown), it passes on "not acked".
pub(crate) struct Turn {
    groups: Arc<Groups>,
    group: String,
    number: u64,
    before: Option<oneshot::Receiver<bool>>,
    after: Option<oneshot::Sender<bool>>,
}

impl Groups {
    /// A turn behind every turn of `group` taken before. Call in the order
    /// the messages were received.
    pub(crate) fn take(self: &Arc<Self>, group: String) -> Turn {
        let number = self
            .taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (after, next) = oneshot::channel();
        let before = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group.clone(), (number, next))
            .map(|(_, end)| end);
        Turn {
            groups: Arc::clone(self),
            group,
            number,
            before,
            after: Some(after),
        }
    }
}

impl Turn {
    /// Waits until every message of the group before this one is done;
    /// true if they were all acked (this message may run), false if one was
    /// not (release this one).
    pub(crate) async fn wait(&mut self) -> bool {
        match self.before.take() {
            None => true,
            Some(before) => before.await.unwrap_or(false),
        }
    }

    /// Ends the turn: the next message of the group may go if `acked`.
    pub(crate) fn end(mut self, acked: bool) {
        self.pass(acked);
    }

    fn pass(&mut self, acked: bool) {
        let Some(after) = self.after.take() else {
            return;
        };
        let mut last = self
            .groups
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last
            .get(&self.group)
            .is_some_and(|(number, _)| *number == self.number)
        {
            // Nobody behind: the group's chain ends here.
            last.remove(&self.group);
        } else {
            let _ = after.send(acked);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pass(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ItemId {
        ItemId::from(n)
    }

    #[test]
    fn older_or_equal_versions_are_stale_newer_ones_not() {
        let items = Items::new(10, true);
        assert!(!items.is_stale(id(1), Some(3)), "nothing handled yet");
        items.handled(id(1), Some(3));
        assert!(items.is_stale(id(1), Some(2)));
        assert!(items.is_stale(id(1), Some(3)), "a duplicate");
        assert!(!items.is_stale(id(1), Some(4)));
        assert!(!items.is_stale(id(1), None), "no version: never stale");
        assert!(!items.is_stale(id(2), Some(1)), "another item");
        items.handled(id(1), Some(2));
        assert!(items.is_stale(id(1), Some(3)), "the memory only grows");
        let off = Items::new(10, false);
        off.handled(id(1), Some(3));
        assert!(!off.is_stale(id(1), Some(2)), "switched off");
    }

    #[test]
    fn the_memory_forgets_the_item_remembered_longest_ago() {
        let items = Items::new(2, true);
        items.handled(id(1), Some(5));
        items.handled(id(2), Some(5));
        items.handled(id(1), Some(6));
        items.handled(id(3), Some(5));
        assert!(
            !items.is_stale(id(1), Some(1)),
            "item 1 was the oldest: forgotten"
        );
        assert!(items.is_stale(id(2), Some(1)));
        assert!(items.is_stale(id(3), Some(1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_runs_in_the_order_turns_were_taken_and_stops_after_a_failure() {
        let groups = Arc::new(Groups::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        // Taken in order a1 a2 a3 b1 a4; tasks started last to first.
        let mut turns: Vec<(&str, Turn)> = ["a1", "a2", "a3", "b1", "a4"]
            .into_iter()
            .map(|name| (name, groups.take(name[..1].to_owned())))
            .collect();
        let mut tasks = Vec::new();
        while let Some((name, mut turn)) = turns.pop() {
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let go = turn.wait().await;
                order.lock().unwrap().push((name, go));
                // a2 fails: a3 and a4 are released, b1 is not affected.
                turn.end(go && name != "a2");
            }));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let a: Vec<_> = order.iter().filter(|(n, _)| n.starts_with('a')).collect();
        assert_eq!(
            a,
            [&("a1", true), &("a2", true), &("a3", false), &("a4", false)]
        );
        assert!(order.contains(&("b1", true)));
        assert!(groups.last.lock().unwrap().is_empty(), "every chain ended");
        // A new batch of group a starts afresh.
        let mut next = groups.take("a".into());
        assert!(next.wait().await);
        drop(next);
    }

    #[tokio::test]
    async fn a_turn_dropped_without_an_end_stops_the_next() {
        let groups = Arc::new(Groups::default());
        let first = groups.take("g".into());
        let mut second = groups.take("g".into());
        drop(first);
        assert!(!second.wait().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_per_item_first_come_first_served_and_no_gate_left() {
        let items = Arc::new(Items::new(10, true));
        let first = items.hold(id(1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..3 {
            let (items, order) = (Arc::clone(&items), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let _held = items.hold(id(1)).await;
                order.lock().unwrap().push(n);
            }));
            // Each asks after the one before.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let other = items.hold(id(2)).await;
        assert!(order.lock().unwrap().is_empty(), "item 1 is held");
        drop(other);
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
        assert!(
            items.gates.lock().unwrap().is_empty(),
            "no gate outlives its use"
        );
    }
}
