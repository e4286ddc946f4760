//! The watcher against real parts: moto's SQS server (started per test on a
//! loopback port) and carthooks-mock delivering every item change to it.
//! Delivery is at least once, so these tests assert that nothing is lost and
//! count duplicates; they never assert exactly once.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carthooks_mock::{DEFAULT_APP_ID as APP, DEFAULT_COLLECTION_ID as COLL, Fault};
use carthooks_watch::{AckMode, BoxError, Change, ChangeKind, Problem, Stats, WatchError, Watcher};
use serde_json::json;
use support::{
    Fixture, Moto, depth, eventually, fifo_queue, fixture, mock_with_delivery, queue, queue_arn,
    queue_with_dlq, register_watch,
};
use tokio::sync::oneshot;

type Seen = Arc<Mutex<HashMap<(u64, u64), u32>>>;

/// A handler that records `(item id, revision)` of each change it sees.
fn recorder(seen: &Seen) -> impl Fn(Change) -> std::future::Ready<Result<(), BoxError>> + use<> {
    let seen = Arc::clone(seen);
    move |change: Change| {
        let key = (
            change.item_id().get(),
            change.event().revision().unwrap_or(0),
        );
        *seen.lock().unwrap().entry(key).or_default() += 1;
        std::future::ready(Ok(()))
    }
}

fn problems() -> (
    Arc<Mutex<Vec<Problem>>>,
    impl Fn(&Problem) + Send + Sync + 'static,
) {
    let list = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let list = Arc::clone(&list);
        move |p: &Problem| list.lock().unwrap().push(p.clone())
    };
    (list, hook)
}

/// A watcher running on its own task until [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Stats, WatchError>>,
}

impl Running {
    fn start<F, Fut>(watcher: Watcher, handler: F) -> Self
    where
        F: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            watcher
                .run_until(handler, async {
                    let _ = stopped.await;
                })
                .await
        });
        Self { stop, task }
    }

    /// Panics with the watcher's error if it stopped on its own.
    fn assert_alive(&self) {
        assert!(!self.task.is_finished(), "the watcher stopped on its own");
    }

    /// Stops it (as a shutdown signal would) and returns its counts.
    async fn stop(self) -> Stats {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap()
    }
}

/// A FIFO queue, carthooks-mock publishing each item's changes as one group
/// (`MessageGroupId` = item, `MessageDeduplicationId` = item + revision):
/// 20 items × 20 changes, 10 % of the changes failing the first time they
/// are handled, and item 1's second change failing twice. Per group, every
/// handler call is for the change after the last one handled (nothing
/// overtakes a failed change, nothing is skipped), handled exactly in the
/// order sent; never two handlers on one group; while item 1 is stuck the
/// other groups go on; every message received is handled, failed or
/// released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_run_in_parallel_in_order_and_a_failure_stops_only_its_group() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue_url = fifo_queue(&sqs, "orders.fifo", 30, None).await;
    let (server, client) = mock_with_delivery(sqs.clone()).await;
    register_watch(&client, &queue_url).await;
    // Items made first, then their changes in rounds of five per item, so
    // that one receive brings several groups and several changes of each.
    let mut ids = Vec::new();
    for n in 0..20 {
        let item = client
            .create_item(APP, COLL, &json!({"title": format!("order {n}")}))
            .await
            .unwrap();
        ids.push(item.data["id"].as_u64().unwrap());
    }
    for round in 0..4 {
        // Items side by side, each item's changes one after another.
        let mut updates = tokio::task::JoinSet::new();
        for &id in &ids {
            let client = client.clone();
            updates.spawn(async move {
                for step in 0..5 {
                    if round == 0 && step == 0 {
                        continue; // the create was the first change
                    }
                    client
                        .update_item(APP, COLL, id, &json!({"step": round * 5 + step}))
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = updates.join_next().await {
            done.unwrap();
        }
    }
    assert_eq!(server.counters().changes_delivered, 400);
    let stuck_item = ids[0];
    // 10 % of the changes fail the first time, chosen by a fixed hash.
    let fails_first = |item: u64, version: u64| {
        (item.wrapping_mul(31).wrapping_add(version))
            .wrapping_mul(0x9E37_79B9)
            .is_multiple_of(10)
    };
    let expected_failures = ids
        .iter()
        .flat_map(|&i| (1..=20).map(move |v| (i, v)))
        .filter(|&(i, v)| fails_first(i, v) || (i, v) == (stuck_item, 2))
        .count() as u64
        + 1; // the stuck change fails twice

    #[derive(Clone, Copy, Debug)]
    struct Call {
        at: Instant,
        item: u64,
        version: u64,
        ok: bool,
    }
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let in_flight: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let overlaps = Arc::new(AtomicU64::new(0));
    let attempts: Arc<Mutex<HashMap<(u64, u64), u32>>> = Arc::default();
    let handler = {
        let (calls, in_flight, overlaps, attempts) = (
            Arc::clone(&calls),
            Arc::clone(&in_flight),
            Arc::clone(&overlaps),
            Arc::clone(&attempts),
        );
        move |change: Change| {
            let (calls, in_flight, overlaps, attempts) = (
                Arc::clone(&calls),
                Arc::clone(&in_flight),
                Arc::clone(&overlaps),
                Arc::clone(&attempts),
            );
            async move {
                let item = change.item_id().get();
                let version = change.event().revision().unwrap();
                {
                    let mut map = in_flight.lock().unwrap();
                    let n = map.entry(item).or_default();
                    *n += 1;
                    if *n > 1 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                let attempt = {
                    let mut map = attempts.lock().unwrap();
                    let n = map.entry((item, version)).or_default();
                    *n += 1;
                    *n
                };
                let ok = if (item, version) == (stuck_item, 2) {
                    attempt > 2
                } else {
                    attempt > 1 || !fails_first(item, version)
                };
                calls.lock().unwrap().push(Call {
                    at: Instant::now(),
                    item,
                    version,
                    ok,
                });
                *in_flight.lock().unwrap().get_mut(&item).unwrap() -= 1;
                if ok {
                    Ok(())
                } else {
                    Err(BoxError::from(format!("item {item} v{version} fails")))
                }
            }
        }
    };
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .concurrency(8)
        .build()
        .await
        .unwrap();
    let running = Running::start(watcher, handler);
    eventually(
        Duration::from_secs(120),
        "every change handled and the queue empty",
        || async {
            running.assert_alive();
            depth(&sqs, &queue_url).await == (0, 0)
        },
    )
    .await;
    let stats = running.stop().await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two handlers on one group at once"
    );
    let mut by_item: HashMap<u64, Vec<Call>> = HashMap::new();
    for call in &calls {
        by_item.entry(call.item).or_default().push(*call);
    }
    assert_eq!(by_item.len(), 20);
    for (item, calls) in &by_item {
        let mut done = 0;
        for call in calls {
            assert_eq!(
                call.version,
                done + 1,
                "item {item}: a call for v{} after v{done} was handled ({:?})",
                call.version,
                calls.iter().map(|c| (c.version, c.ok)).collect::<Vec<_>>()
            );
            if call.ok {
                done = call.version;
            }
        }
        assert_eq!(done, 20, "item {item}: every change handled");
    }
    let failures = calls.iter().filter(|c| !c.ok).count() as u64;
    assert_eq!(failures, expected_failures);
    assert!(failures >= 40, "10 % of 400 changes fail once");
    // While item 1's second change waited out its two nacks, the others went on.
    let stuck = &by_item[&stuck_item];
    let (first_failure, handled) = (stuck[1].at, stuck[3].at);
    assert!(!stuck[1].ok && !stuck[2].ok && stuck[3].ok && stuck[3].version == 2);
    let others = calls
        .iter()
        .filter(|c| c.item != stuck_item && c.ok && c.at > first_failure && c.at < handled)
        .count();
    // More than the 18 that fit in hand (8 handlers + a batch) when it
    // failed: the other groups kept being received and handled.
    assert!(
        others > 18,
        "only {others} changes of other groups handled while one group was stuck"
    );
    assert_eq!(stats.handled, 400);
    assert_eq!(stats.failed, failures);
    assert_eq!(
        stats.stale, 0,
        "nothing out of order reaches the stale rule"
    );
    // How many were in hand behind a failure (and released) depends on how
    // full the receives were; the dead-letter test below has some for sure.
    assert_eq!(
        stats.received,
        stats.handled + stats.failed + stats.released,
        "every message received is handled, failed or released: {stats:?}"
    );
}

/// Hostile, on a FIFO queue: a malformed message in the middle of a group.
/// It is never acked, so the group's messages behind it are released, never
/// handled before it, each time it comes back. They come back with it, so
/// they count the same receives: the redrive policy moves all three to the
/// dead-letter queue together, in the group's order (as with any FIFO
/// consumer). The other group is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_stops_its_fifo_group_and_nothing_behind_it_is_handled_first() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let dlq = fifo_queue(&sqs, "held-dlq.fifo", 30, None).await;
    let policy =
        json!({"deadLetterTargetArn": queue_arn(&sqs, &dlq).await, "maxReceiveCount": "2"});
    let queue_url = fifo_queue(&sqs, "held.fifo", 1, Some(policy.to_string())).await;
    let (_server, client) = mock_with_delivery(sqs.clone()).await;
    let body = |item: u64, version: u64| {
        json!({"version": version, "meta": {"event": "item.updated"}, "payload": {"id": item}})
            .to_string()
    };
    let sent = [
        ("g", body(1, 1)),
        ("h", body(2, 1)),
        ("g", "{\"payload\": \"not a change\"}".to_owned()),
        ("h", body(2, 2)),
        ("g", body(1, 2)),
        ("g", body(1, 3)),
        ("h", body(2, 3)),
    ];
    for (n, (group, body)) in sent.iter().enumerate() {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .message_group_id(*group)
            .message_deduplication_id(format!("m{n}"))
            .send()
            .await
            .unwrap();
    }
    let handled: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let handler = {
        let handled = Arc::clone(&handled);
        move |change: Change| {
            handled
                .lock()
                .unwrap()
                .push((change.item_id().get(), change.event().revision().unwrap()));
            std::future::ready(Ok::<(), BoxError>(()))
        }
    };
    let watcher = Watcher::builder(client, &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .concurrency(4)
        .build()
        .await
        .unwrap();
    let running = Running::start(watcher, handler);
    eventually(
        Duration::from_secs(60),
        "group g's last three in the dead-letter queue, the rest handled",
        || async {
            running.assert_alive();
            depth(&sqs, &dlq).await == (3, 0) && depth(&sqs, &queue_url).await == (0, 0)
        },
    )
    .await;
    let stats = running.stop().await;
    let handled = handled.lock().unwrap().clone();
    let of = |item| -> Vec<u64> {
        handled
            .iter()
            .filter(|(i, _)| *i == item)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(of(1), [1], "nothing of group g after the malformed message");
    assert_eq!(of(2), [1, 2, 3], "group h in full, in order");
    assert_eq!(stats.malformed, 2, "received twice, then moved: {stats:?}");
    assert!(
        stats.released >= 2,
        "g's messages behind the malformed one were released: {stats:?}"
    );
    assert_eq!(stats.acked, 4);
    let dead: Vec<String> = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert_eq!(
        dead,
        [sent[2].1.clone(), sent[4].1.clone(), sent[5].1.clone()]
    );
}

/// 100 items × 5 versions each, sent to the queue shuffled, 8 handlers: two
/// changes of one item never run at once, and per item the versions handled
/// only grow (an older change arriving after a newer one is acked unhandled,
/// counted as stale); every item's last version is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_one_item_never_run_at_once_and_never_older_after_newer() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server: _server,
        client,
    } = fixture("per-item-order", 30).await;
    let mut bodies = Vec::new();
    for item in 1..=100u64 {
        for version in 1..=5u64 {
            bodies.push(
                json!({
                    "version": version,
                    "meta": {"event": "item.updated", "trigger_name": "t", "tenant_id": 1, "trigger_type": "watch_data"},
                    "payload": {"id": item, "title": format!("v{version}"), "fields": {}},
                })
                .to_string(),
            );
        }
    }
    // A fixed shuffle (xorshift, Fisher–Yates): the same order every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..bodies.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bodies.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for (n, chunk) in bodies.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{n}-{i}"))
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        sqs.send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .concurrency(8)
        .build()
        .await
        .unwrap();
    type InFlight = Arc<Mutex<HashMap<u64, u32>>>;
    let in_flight = InFlight::default();
    let overlaps = Arc::new(AtomicU64::new(0));
    let handled: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let handler = {
        let (in_flight, overlaps, handled) = (
            Arc::clone(&in_flight),
            Arc::clone(&overlaps),
            Arc::clone(&handled),
        );
        move |change: Change| {
            let (in_flight, overlaps, handled) = (
                Arc::clone(&in_flight),
                Arc::clone(&overlaps),
                Arc::clone(&handled),
            );
            async move {
                let item = change.item_id().get();
                let version = change.event().revision().unwrap();
                {
                    let mut map = in_flight.lock().unwrap();
                    let n = map.entry(item).or_default();
                    *n += 1;
                    if *n > 1 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // Long enough for another change of the item to try to start.
                tokio::time::sleep(Duration::from_millis(3)).await;
                handled.lock().unwrap().push((item, version));
                *in_flight.lock().unwrap().get_mut(&item).unwrap() -= 1;
                Ok::<(), BoxError>(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    eventually(
        Duration::from_secs(120),
        "every message settled",
        || async {
            running.assert_alive();
            depth(&sqs, &queue_url).await == (0, 0)
        },
    )
    .await;
    let stats = running.stop().await;
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two handlers on one item at once"
    );
    let handled = handled.lock().unwrap().clone();
    let mut by_item: HashMap<u64, Vec<u64>> = HashMap::new();
    for (item, version) in &handled {
        by_item.entry(*item).or_default().push(*version);
    }
    assert_eq!(by_item.len(), 100);
    for (item, versions) in &by_item {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "item {item}: versions handled {versions:?}"
        );
        assert_eq!(
            versions.last(),
            Some(&5),
            "item {item}: its last version is handled"
        );
    }
    assert_eq!(stats.handled as usize, handled.len());
    assert_eq!(stats.handled + stats.stale, 500, "{stats:?}");
    assert!(
        stats.stale > 0,
        "a shuffle has older changes after newer: {stats:?}"
    );
}

/// `pollers(4)` with 32 handlers: several receives out at once, every change
/// handled, the queue empty, and the stop does not wait out the long polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pollers_lose_nothing_and_stop_without_waiting_out_their_polls() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("pollers", 30).await;
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .concurrency(32)
        .pollers(4)
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let running = Running::start(watcher, recorder(&seen));
    wait_for_watch(&server).await;
    let ids = create_numbered(&client, 200).await;
    eventually(Duration::from_secs(60), "200 changes handled", || async {
        running.assert_alive();
        seen.lock().unwrap().len() == 200 && depth(&sqs, &queue_url).await == (0, 0)
    })
    .await;
    let stopping = Instant::now();
    let stats = running.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the stop waited {:?} (long polls are 20 s)",
        stopping.elapsed()
    );
    let seen = seen.lock().unwrap();
    for id in ids {
        assert!(seen.contains_key(&(id, 1)), "item {id} not handled");
    }
    assert_eq!(stats.released, 0, "nothing was in hand");
}

/// `nack(500 ms)`: SQS counts whole seconds, and the watcher rounds up, so
/// the message stays out of sight for a second — not 0 s, redelivered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_under_a_second_hides_the_message_for_a_second_not_zero() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("nack-delay", 30).await;
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .ack_mode(AckMode::Manual)
        .long_poll(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    // When the nack was done, and when the message came back.
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let handler = {
        let times = Arc::clone(&times);
        move |change: Change| {
            let times = Arc::clone(&times);
            async move {
                if change.receive_count() == 1 {
                    change.nack(Duration::from_millis(500)).await?;
                } else {
                    change.ack().await?;
                }
                times.lock().unwrap().push(Instant::now());
                Ok::<(), BoxError>(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    create_numbered(&client, 1).await;
    eventually(Duration::from_secs(60), "the redelivery", || async {
        running.assert_alive();
        times.lock().unwrap().len() == 2
    })
    .await;
    let stats = running.stop().await;
    let times = times.lock().unwrap().clone();
    let hidden = times[1] - times[0];
    assert!(
        hidden >= Duration::from_millis(900),
        "out of sight for {hidden:?}: the 500 ms were rounded down"
    );
    assert_eq!((stats.acked, stats.nacked), (1, 1));
}

async fn wait_for_watch(server: &carthooks_mock::MockServer) {
    eventually(
        Duration::from_secs(10),
        "the watch is registered",
        || async { server.counters().operation("watch_data") >= 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_changes_are_each_handled_once_at_least_and_the_queue_ends_empty() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("changes", 30).await;
    let seen = Seen::default();
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .concurrency(8)
        .build()
        .await
        .unwrap();
    let handler = recorder(&seen);
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;

    // 150 creates, 100 updates, 50 deletes: 300 changes, each its own (id, revision).
    let mut ids = Vec::new();
    for n in 0..150 {
        let item = client
            .create_item(APP, COLL, &json!({"title": format!("order {n}"), "n": n}))
            .await
            .unwrap();
        ids.push(item.data["id"].as_u64().unwrap());
    }
    for id in &ids[..100] {
        client
            .update_item(APP, COLL, *id, &json!({"state": "paid"}))
            .await
            .unwrap();
    }
    for id in &ids[100..] {
        client.delete_item(APP, COLL, *id).await.unwrap();
    }
    let counters = server.counters();
    assert_eq!(counters.changes_queued, 300);
    assert_eq!(counters.changes_delivered, 300);
    assert_eq!(counters.change_delivery_failures, 0);

    eventually(
        Duration::from_secs(240),
        "300 distinct changes handled",
        || async {
            running.assert_alive();
            seen.lock().unwrap().len() == 300
        },
    )
    .await;
    let stats = running.stop().await;

    let seen = seen.lock().unwrap().clone();
    let expected: HashSet<(u64, u64)> = ids
        .iter()
        .map(|id| (*id, 1))
        .chain(ids[..100].iter().map(|id| (*id, 2)))
        .chain(ids[100..].iter().map(|id| (*id, 2)))
        .collect();
    assert_eq!(seen.keys().copied().collect::<HashSet<_>>(), expected);
    let calls: u32 = seen.values().sum();
    eprintln!(
        "300 changes: {calls} handler calls, {} duplicates; {stats:?}",
        calls - 300
    );
    assert_eq!(stats.handled, u64::from(calls));
    assert_eq!(stats.acked, stats.handled, "every handled message acked");
    assert_eq!(stats.failed + stats.malformed + stats.settle_failures, 0);
    assert_eq!(depth(&sqs, &queue_url).await, (0, 0), "the queue is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_failing_or_panicking_one_time_in_ten_lose_no_change() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("flaky", 30).await;
    let (problems, hook) = problems();
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .nack_backoff(Duration::ZERO, Duration::from_millis(500))
        .on_problem(hook)
        .build()
        .await
        .unwrap();
    let done: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("failure seed {seed}");
    let rng = Arc::new(AtomicU64::new(seed));
    let handler = {
        let done = Arc::clone(&done);
        move |change: Change| {
            let done = Arc::clone(&done);
            let rng = Arc::clone(&rng);
            async move {
                // xorshift
                let mut x = rng.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                rng.store(x, Ordering::Relaxed);
                // One failure in ten, at random: an error, or (one in
                // twenty) a panic, which nacks the same way.
                match x % 20 {
                    0 => return Err::<(), BoxError>("the handler failed".into()),
                    1 => panic!("the handler panicked"),
                    _ => {}
                }
                done.lock().unwrap().insert(change.item_id().get());
                Ok(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    let ids: HashSet<u64> = create_numbered(&client, 100).await.into_iter().collect();
    eventually(
        Duration::from_secs(180),
        "all 100 changes handled",
        || async {
            running.assert_alive();
            *done.lock().unwrap() == ids
        },
    )
    .await;
    let stats = running.stop().await;
    eprintln!("{stats:?}");
    let failures = problems
        .lock()
        .unwrap()
        .iter()
        .filter(|p| matches!(p, Problem::HandlerFailed { .. }))
        .count() as u64;
    let panics = problems
        .lock()
        .unwrap()
        .iter()
        .filter(|p| matches!(p, Problem::HandlerFailed { error, .. } if error == "panicked"))
        .count();
    eprintln!("{failures} failures, {panics} of them panics");
    assert_eq!(failures, stats.failed, "every failure reported");
    assert_eq!(stats.nacked, stats.failed, "every failure nacked");
    assert!(stats.acked >= 100);
    assert_eq!(depth(&sqs, &queue_url).await, (0, 0));
}

/// Not a test on its own: a watcher process for the SIGKILL test, when run as
/// the child with `CARTHOOKS_WATCH_CHILD` set.
#[test]
fn child_watcher() {
    let Ok(config) = std::env::var("CARTHOOKS_WATCH_CHILD") else {
        return;
    };
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let text = |k: &str| config[k].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sqs = carthooks_watch::aws_config_loader()
            .endpoint_url(text("moto"))
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&sqs);
        let client = carthooks_reqwest::Client::builder()
            .base_url(text("mock"))
            .oauth(carthooks_client::OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            ))
            .build()
            .unwrap();
        client.initialize_oauth(None).await.unwrap();
        let out = text("out");
        let watcher = Watcher::builder(client, text("queue"), APP, COLL)
            .sqs_client(sqs)
            .visibility_timeout(Duration::from_secs(2))
            .concurrency(4)
            .build()
            .await
            .unwrap();
        watcher
            .run(move |change: Change| {
                let out = out.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    use std::io::Write as _;
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&out)?;
                    // One write per line: handlers append at once, and
                    // `writeln!` may split a line into several writes.
                    file.write_all(format!("{}\n", change.item_id()).as_bytes())?;
                    Ok::<(), BoxError>(())
                }
            })
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_killed_with_sigkill_leaves_the_rest_to_the_next() {
    let Fixture {
        moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("killed", 2).await;
    // Register first, so that the changes are queued before any watcher runs.
    register_watch(&client, &queue_url).await;
    let ids: HashSet<u64> = create_numbered(&client, 60).await.into_iter().collect();
    let out = std::env::temp_dir().join(format!("carthooks-watch-kill-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let config = json!({"moto": moto.url, "mock": server.url(), "queue": queue_url,
                        "out": out.to_str().unwrap()});
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_watcher", "--exact", "--nocapture"])
        .env("CARTHOOKS_WATCH_CHILD", config.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read = || -> HashSet<u64> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    eventually(Duration::from_secs(60), "the child handled 15", || async {
        read().len() >= 15
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let by_child = read();
    eprintln!("the child handled {} before SIGKILL", by_child.len());
    assert!(by_child.len() < 60, "killed before the end");

    let seen = Seen::default();
    let watcher = Watcher::builder(client, &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(watcher.visibility_timeout(), Duration::from_secs(2));
    let handler = recorder(&seen);
    let running = Running::start(watcher, handler);
    eventually(
        Duration::from_secs(120),
        "the rest handled by the second watcher",
        || async {
            running.assert_alive();
            let second: HashSet<u64> = seen.lock().unwrap().keys().map(|k| k.0).collect();
            by_child.union(&second).copied().collect::<HashSet<_>>() == ids
        },
    )
    .await;
    // What the child handled but had not acked comes back after its visibility
    // timeout: the second watcher handles it again (at least once) and the
    // queue drains.
    eventually(Duration::from_secs(30), "the queue is empty", || async {
        depth(&sqs, &queue_url).await == (0, 0)
    })
    .await;
    let stats = running.stop().await;
    let _ = std::fs::remove_file(&out);
    let again = seen
        .lock()
        .unwrap()
        .keys()
        .filter(|k| by_child.contains(&k.0))
        .count();
    eprintln!("second watcher: {stats:?}; {again} handled by both");
    assert_eq!(stats.acked, stats.handled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_is_renewed_every_second_and_a_failed_renewal_is_retried_and_reported() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("renewed", 30).await;
    let (problems, hook) = problems();
    let watcher = Watcher::builder(client, &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .age(Duration::from_secs(20))
        .renewal_interval(Duration::from_secs(1))
        .long_poll(Duration::from_secs(1))
        .on_problem(hook)
        .build()
        .await
        .unwrap();
    let running = Running::start(watcher, |_c: Change| async { Ok(()) });
    wait_for_watch(&server).await;
    // The first renewal (in 1 s) meets a 503; it is retried 1 s later.
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
        Some("/v1/watch-data"),
    );
    let started = Instant::now();
    eventually(
        Duration::from_secs(15),
        "4 registrations after the failure",
        || async {
            running.assert_alive();
            server.counters().operation("watch_data") >= 5
        },
    )
    .await;
    let stats = running.stop().await;
    let counters = server.counters();
    eprintln!(
        "{:?} after {:?}: {stats:?}",
        counters.received_at("/v1/watch-data"),
        started.elapsed()
    );
    assert_eq!(stats.renewal_failures, 1);
    assert_eq!(stats.registrations, counters.operation("watch_data"));
    assert_eq!(
        counters.received_at("/v1/watch-data"),
        stats.registrations + stats.renewal_failures
    );
    let renewal_problems: Vec<_> = problems
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            Problem::RenewalFailed {
                attempt, retry_in, ..
            } => Some((*attempt, *retry_in)),
            _ => None,
        })
        .collect();
    assert_eq!(renewal_problems, vec![(1, Duration::from_secs(1))]);
    // Each registration carries the whole watch, age included.
    let watches = server.state().watches().to_vec();
    assert!(
        watches
            .iter()
            .all(|w| w["age"] == 20 && w["endpoint_url"] == queue_url.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_reported_and_left_for_the_dead_letter_queue() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue_url, dlq_url) = queue_with_dlq(&sqs, "hostile", 1, 2).await;
    let (server, client) = mock_with_delivery(sqs.clone()).await;
    for body in ["not json", r#"{"payload": {"title": "no id"}}"#] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let (problems, hook) = problems();
    let seen = Seen::default();
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .long_poll(Duration::from_secs(1))
        .on_problem(hook)
        .build()
        .await
        .unwrap();
    let handler = recorder(&seen);
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    eventually(
        Duration::from_secs(60),
        "both malformed messages in the DLQ",
        || async {
            running.assert_alive();
            depth(&sqs, &dlq_url).await.0 == 2
        },
    )
    .await;
    // The loop still runs: a real change after them is handled.
    let item = client
        .create_item(APP, COLL, &json!({"n": 1}))
        .await
        .unwrap();
    let id = item.data["id"].as_u64().unwrap();
    eventually(
        Duration::from_secs(60),
        "the valid change handled",
        || async { seen.lock().unwrap().contains_key(&(id, 1)) },
    )
    .await;
    let stats = running.stop().await;
    eprintln!("{stats:?}");
    let reasons: HashSet<String> = problems
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            Problem::Malformed { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        HashSet::from([
            "the message body is not JSON".to_owned(),
            "the message has no payload.id".to_owned()
        ])
    );
    assert!(stats.malformed >= 2);
    assert_eq!(stats.acked, stats.handled, "only valid changes deleted");
    let mut bodies: Vec<String> = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["not json", r#"{"payload": {"title": "no id"}}"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_message_and_shutdown_releases_what_is_in_hand() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("slow", 2).await;
    let started = Arc::new(AtomicU64::new(0));
    // The releases wait for the receive still out: a short one.
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .long_poll(Duration::from_secs(2))
        .shutdown_grace(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let handler = {
        let started = Arc::clone(&started);
        move |change: Change| {
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(change.receive_count(), 1, "never redelivered while in hand");
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), BoxError>(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    create_numbered(&client, 3).await;
    eventually(Duration::from_secs(30), "3 handlers running", || async {
        running.assert_alive();
        started.load(Ordering::SeqCst) == 3
    })
    .await;
    // Three visibility timeouts: the heartbeat keeps the messages hidden.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(depth(&sqs, &queue_url).await, (0, 3));
    assert_eq!(started.load(Ordering::SeqCst), 3, "no redelivery");

    let asked = Instant::now();
    let stats = running.stop().await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    eprintln!("{stats:?}");
    assert!(stats.extended >= 6, "{stats:?}");
    assert_eq!(stats.released, 3);
    assert_eq!(stats.acked + stats.handled, 0);
    // Released with visibility 0: available at once, not after the timeout,
    // and still a while later (no receive of the watcher took them back).
    assert_eq!(depth(&sqs, &queue_url).await, (3, 0));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(depth(&sqs, &queue_url).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_acks_and_nacks_as_the_handler_says() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("manual", 30).await;
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .ack_mode(AckMode::Manual)
        .watcher_id("worker-7")
        .build()
        .await
        .unwrap();
    // (item id, receive count, what the handler did)
    type Log = Arc<Mutex<Vec<(u64, u32, &'static str)>>>;
    let log = Log::default();
    let handler = {
        let log = Arc::clone(&log);
        move |change: Change| {
            let log = Arc::clone(&log);
            async move {
                let id = change.item_id().get();
                assert_eq!(change.event().kind(), ChangeKind::Created);
                // The record helpers lock with the watcher id.
                let lock = change.lock().await?;
                assert_eq!(lock.data.lock_id.as_deref(), Some("worker-7"));
                change.unlock().await?;
                if id % 2 == 1 && change.receive_count() == 1 {
                    change.nack(Duration::ZERO).await?;
                    log.lock().unwrap().push((id, 1, "nack"));
                } else {
                    change.ack().await?;
                    let again = change.ack().await;
                    assert!(matches!(again, Err(WatchError::AlreadySettled)));
                    log.lock()
                        .unwrap()
                        .push((id, change.receive_count(), "ack"));
                }
                Ok::<(), BoxError>(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    let ids = create_numbered(&client, 4).await;
    eventually(Duration::from_secs(60), "4 acks", || async {
        running.assert_alive();
        log.lock().unwrap().iter().filter(|e| e.2 == "ack").count() == 4
    })
    .await;
    let stats = running.stop().await;
    let log = log.lock().unwrap().clone();
    for id in ids {
        if id % 2 == 1 {
            assert!(log.contains(&(id, 1, "nack")), "{log:?}");
            assert!(log.contains(&(id, 2, "ack")), "{log:?}");
        } else {
            assert!(log.contains(&(id, 1, "ack")), "{log:?}");
        }
    }
    assert_eq!((stats.acked, stats.nacked), (4, 2));
    assert_eq!(depth(&sqs, &queue_url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_or_a_refused_registration_is_a_clear_error() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (server, client) = mock_with_delivery(sqs.clone()).await;
    let missing = format!("{}/123456789012/no-such-queue", moto.url);
    let err = Watcher::builder(client.clone(), &missing, APP, COLL)
        .sqs_client(sqs.clone())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::QueueNotFound), "{err:?}");

    for (builder, want) in [
        (
            Watcher::builder(client.clone(), "q", APP, COLL).concurrency(0),
            "concurrency",
        ),
        (
            Watcher::builder(client.clone(), "q", APP, COLL).batch_size(11),
            "batch_size",
        ),
        (
            Watcher::builder(client.clone(), "q", APP, COLL)
                .renewal_interval(Duration::from_secs(10))
                .age(Duration::from_secs(10)),
            "renewal_interval",
        ),
        (
            Watcher::builder(client.clone(), "q", APP, COLL).long_poll(Duration::from_secs(21)),
            "long_poll",
        ),
    ] {
        let err = builder.sqs_client(sqs.clone()).build().await.unwrap_err();
        assert!(
            matches!(&err, WatchError::Config(m) if m.contains(want)),
            "{err}"
        );
    }

    let queue_url = queue(&sqs, "refused", 30).await;
    let bad = carthooks_reqwest::Client::builder()
        .base_url(server.url())
        .access_token("not-a-token")
        .build()
        .unwrap();
    let watcher = Watcher::builder(bad, &queue_url, APP, COLL)
        .sqs_client(sqs)
        .build()
        .await
        .unwrap();
    let err = watcher
        .run_until(
            |_c: Change| async { Ok::<(), BoxError>(()) },
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::Register(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("not-a-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_received_ahead_wait_for_a_handler_and_are_released_unstarted_at_shutdown() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("ahead", 2).await;
    let started = Arc::new(AtomicU64::new(0));
    // Stopping waits for the receive still out: keep it short.
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .long_poll(Duration::from_secs(2))
        .concurrency(1)
        .shutdown_grace(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let handler = {
        let started = Arc::clone(&started);
        move |_change: Change| {
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), BoxError>(())
            }
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    create_numbered(&client, 3).await;
    // One handler runs; the other two wait in hand, kept hidden past their
    // 2 s visibility timeout.
    eventually(Duration::from_secs(30), "all 3 in hand", || async {
        running.assert_alive();
        depth(&sqs, &queue_url).await == (0, 3)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(depth(&sqs, &queue_url).await, (0, 3));
    assert_eq!(started.load(Ordering::SeqCst), 1);
    let stats = running.stop().await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "none started at shutdown"
    );
    assert_eq!((stats.released, stats.handled), (3, 0), "{stats:?}");
    // Still visible a while later: no receive of the stopped watcher, left
    // at the server, took them back (moto looks again every second).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(depth(&sqs, &queue_url).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_kept_past_the_run_does_not_hold_the_watcher_and_its_ack_says_stopped() {
    let Fixture {
        moto: _moto,
        sqs,
        queue_url,
        server,
        client,
    } = fixture("kept", 30).await;
    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .ack_mode(AckMode::Manual)
        .build()
        .await
        .unwrap();
    let kept: Arc<Mutex<Vec<Change>>> = Arc::default();
    let handler = {
        let kept = Arc::clone(&kept);
        move |change: Change| {
            kept.lock().unwrap().push(change);
            std::future::ready(Ok::<(), BoxError>(()))
        }
    };
    let running = Running::start(watcher, handler);
    wait_for_watch(&server).await;
    client
        .create_item(APP, COLL, &json!({"n": 1}))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the change kept", || async {
        running.assert_alive();
        !kept.lock().unwrap().is_empty()
    })
    .await;
    let stats = tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("the watcher stops although a Change is still held");
    assert_eq!((stats.handled, stats.acked), (1, 0));
    let change = kept.lock().unwrap().pop().unwrap();
    assert!(matches!(change.ack().await, Err(WatchError::Stopped)));
}

/// Creates `count` items `{"n": 0}` … and returns their ids, in order.
async fn create_numbered(client: &carthooks_reqwest::Client, count: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    for n in 0..count {
        let item = client
            .create_item(APP, COLL, &json!({"n": n}))
            .await
            .unwrap();
        ids.push(item.data["id"].as_u64().unwrap());
    }
    ids
}
