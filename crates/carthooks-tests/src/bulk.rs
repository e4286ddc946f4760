//! Bulk jobs over real sockets: export (and import, sync).

use std::collections::HashSet;
use std::time::Duration;

use carthooks_client::{BuildClient, Connect};
use carthooks_core::ItemsQuery;
use carthooks_mock::{DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, Fault, MockServer};

use crate::{ExportOptions, Sdk, client, oauth};

const APP: u64 = DEFAULT_APP_ID;
const COLL: u64 = DEFAULT_COLLECTION_ID;

/// A server with `n` more items than the three it starts with.
fn seeded(n: u64) -> MockServer {
    let server = MockServer::start().expect("mock server starts");
    server.state().seed_items(APP, COLL, n);
    server
}

/// A client of `server` signed in with client credentials.
fn signed_in<S: Sdk>(server: &MockServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c: S = client(server, oauth());
    c.initialize_oauth(None).expect("signed in");
    c
}

fn ids(items: &[carthooks_core::Result<serde_json::Value>]) -> Vec<u64> {
    items
        .iter()
        .map(|i| i.as_ref().expect("an item")["id"].as_u64().expect("an id"))
        .collect()
}

/// 1,237 items through pages of 100, four at a time: each once, in the
/// server's order, 13 pages asked for; the server saw up to four at once and
/// never more.
pub fn export_hands_out_every_item_once_in_order_pages_at_once<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(1_234);
    // Long enough that pages asked for together are handled together.
    server.set_latency(Some(Duration::from_millis(50)));
    let c: S = signed_in(&server);
    let run = c.export(APP, COLL, &ItemsQuery::new(), ExportOptions::default());
    let got = ids(&run.items);
    let expected: Vec<u64> = server.state().item_ids(APP, COLL);
    assert_eq!(got.len(), 1_237);
    assert_eq!(got, expected, "every item once, in the server's order");
    assert_eq!(run.stats.items, 1_237);
    assert_eq!(run.stats.pages, 13);
    assert_eq!(run.stats.first_total, Some(1_237));
    assert!(!run.stats.total_changed);
    assert_eq!(run.checkpoint.offset, 1_237);
    let counters = server.counters();
    assert_eq!(counters.operation("get_items"), 13, "no page twice");
    assert!(
        (2..=4).contains(&counters.peak_in_flight),
        "pages in flight at once: {}",
        counters.peak_in_flight
    );
}

/// `max_items` stops early without asking for pages beyond; resuming from the
/// checkpoint hands out exactly the rest.
pub fn export_max_items_then_resume_from_the_checkpoint<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(497);
    let c: S = signed_in(&server);
    let query = ItemsQuery::new().limit(50);
    let first = c.export(
        APP,
        COLL,
        &query,
        ExportOptions {
            max_items: Some(120),
            ..Default::default()
        },
    );
    assert_eq!(first.items.len(), 120);
    assert_eq!(first.checkpoint.offset, 120);
    assert!(
        server.counters().operation("get_items") <= 3,
        "pages beyond the 120 items were asked for: {}",
        server.counters().operation("get_items")
    );
    let rest = c.export(
        APP,
        COLL,
        &query,
        ExportOptions {
            resume_from: Some(first.checkpoint),
            concurrency: Some(3),
            ..Default::default()
        },
    );
    let mut all = ids(&first.items);
    all.extend(ids(&rest.items));
    assert_eq!(all.len(), 500);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        500,
        "no item twice"
    );
    assert_eq!(all, server.state().item_ids(APP, COLL));
}

/// A page answered 503 is asked for again on its own (the others are not);
/// a page refused for good ends the export with that error, once.
pub fn export_retries_each_page_on_its_own_and_ends_on_an_error<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(297);
    let c: S = signed_in(&server);
    let path = format!("/v1/apps/{APP}/collections/{COLL}/items");
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: Some("0".into()),
        },
        1,
        Some(&path),
    );
    let run = c.export(APP, COLL, &ItemsQuery::new(), ExportOptions::default());
    assert_eq!(ids(&run.items).len(), 300);
    assert_eq!(
        server.counters().received_at(&path),
        3 + 1,
        "one page twice"
    );

    server.inject(
        Fault::Status {
            status: 400,
            retry_after: None,
        },
        1,
        Some(&path),
    );
    let run = c.export(APP, COLL, &ItemsQuery::new(), ExportOptions::default());
    assert_eq!(run.items.len(), 1, "the error alone");
    let e = run.items[0].as_ref().unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(400), "{e}");
    assert_eq!(run.checkpoint.offset, 0);
}

fn orders(n: u64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| serde_json::json!({"f_1001": format!("ORD-{i:05}"), "title": format!("order {i}"), "amount": i}))
        .collect()
}

/// How many items of the collection have each order number (of `orders`;
/// the server's own three items have others).
fn copies(server: &MockServer) -> std::collections::HashMap<String, usize> {
    let mut copies = std::collections::HashMap::new();
    for item in server.state().items(APP, COLL) {
        if let Some(code) = item["fields"]["f_1001"]
            .as_str()
            .filter(|c| c.starts_with("ORD-"))
        {
            *copies.entry(code.to_owned()).or_default() += 1;
        }
    }
    copies
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "carthooks-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// 300 rows, one of them not an object: 299 items, each once, with the ids
/// the report gives; the bad row failed with the server's 400.
pub fn import_creates_each_row_once_and_reports_each<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(0);
    let c: S = signed_in(&server);
    let mut rows = orders(300);
    rows[17] = serde_json::json!("not an object");
    // Long enough that requests sent together are handled together.
    server.set_latency(Some(Duration::from_millis(20)));
    let report = c.import(APP, COLL, rows, Default::default()).unwrap();
    assert_eq!(report.rows.len(), 300);
    assert_eq!(report.stats.created, 299);
    assert_eq!(report.stats.failed, 1);
    let problems: Vec<_> = report.problems().collect();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].row, 17);
    let carthooks_client::bulk::RowOutcome::Failed { error } = &problems[0].outcome else {
        panic!("{:?}", problems[0]);
    };
    assert_eq!(error.status().map(u16::from), Some(400));
    let copies = copies(&server);
    assert_eq!(copies.len(), 299);
    assert!(copies.values().all(|&n| n == 1), "an order created twice");
    let ids: HashSet<u64> = server.state().item_ids(APP, COLL).into_iter().collect();
    for r in &report.rows {
        if let Some(id) = r.outcome.id() {
            assert!(
                ids.contains(&id.get()),
                "row {} reported as item {id:?}",
                r.row
            );
        }
    }
    assert_eq!(
        server.counters().operation("create_item"),
        300,
        "no create twice"
    );
    assert!(
        server.counters().peak_in_flight >= 2,
        "rows went in parallel"
    );
}

/// The server creates three items and drops their connections: without a
/// key those rows are reported unknown and never sent again.
pub fn import_never_resends_an_unknown_outcome_without_a_key<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(0);
    let c: S = signed_in(&server);
    let path = format!("/v1/apps/{APP}/collections/{COLL}/items");
    server.inject(Fault::DropAfterHandling, 3, Some(&path));
    let report = c
        .import(APP, COLL, orders(100), Default::default())
        .unwrap();
    assert_eq!(report.stats.unknown, 3, "{:?}", report.stats);
    assert_eq!(report.stats.created, 97);
    assert_eq!(
        server.counters().received_at(&path),
        100,
        "nothing sent twice"
    );
    let copies = copies(&server);
    assert_eq!(copies.len(), 100, "the dropped ones took effect");
    assert!(copies.values().all(|&n| n == 1));
    let mut problems = Vec::new();
    report.write_problems(&mut problems).unwrap();
    let problems = String::from_utf8(problems).unwrap();
    assert_eq!(problems.lines().count(), 3, "{problems}");
    assert!(
        problems
            .lines()
            .all(|l| l.contains(r#""outcome":"unknown""#))
    );
}

/// The same faults with `upsert_by`: each unknown row is looked up, found,
/// and left; no order exists twice, none is missing. Then the same rows
/// again, three changed: left, or updated, never created.
pub fn import_with_a_key_settles_unknown_outcomes_without_duplicates<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(0);
    let c: S = signed_in(&server);
    let path = format!("/v1/apps/{APP}/collections/{COLL}/items");
    server.inject(Fault::DropAfterHandling, 3, Some(&path));
    let keyed = || crate::ImportOptions {
        upsert_by: Some("f_1001".into()),
        ..Default::default()
    };
    let report = c.import(APP, COLL, orders(100), keyed()).unwrap();
    assert_eq!(
        report.problems().count(),
        0,
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    // Three answers dropped: creates (then looked up), or a lookup (the
    // client sends a GET again by itself).
    let lookups = report.stats.lookups;
    assert!((1..=3).contains(&lookups), "{:?}", report.stats);
    assert_eq!(report.stats.unchanged, lookups, "each found, and left");
    assert_eq!(report.stats.created + report.stats.unchanged, 100);
    let copies_now = copies(&server);
    assert_eq!(copies_now.len(), 100);
    assert!(
        copies_now.values().all(|&n| n == 1),
        "an order created twice"
    );
}

/// A server that takes 40 requests a second and answers 429 beyond: the
/// import slows down, honours Retry-After, and creates every row once.
pub fn import_under_a_rate_limit_slows_down_and_finishes<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(0);
    let c: S = signed_in(&server);
    server.set_rate_limit(Some(40));
    let started = std::time::Instant::now();
    let report = c
        .import(APP, COLL, orders(120), Default::default())
        .unwrap();
    assert_eq!(
        report.stats.created,
        120,
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    assert!(report.stats.throttled > 0, "the limit was met");
    assert_eq!(report.stats.throttled, server.counters().rate_limited);
    let copies = copies(&server);
    assert_eq!(copies.len(), 120);
    assert!(copies.values().all(|&n| n == 1));
    // 120 requests at 40 a second (a burst of 40 first): two seconds at least.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A run stopped after 60 rows, with row 60 in flight (created, its outcome
/// never learnt): the resumed run skips the 60, looks row 60 up and leaves it,
/// and creates the rest. Every order once.
pub fn import_resumes_from_a_file_checkpoint<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = seeded(0);
    let c: S = signed_in(&server);
    let path = temp_path("import-checkpoint");
    let options = || crate::ImportOptions {
        upsert_by: Some("f_1001".into()),
        checkpoint: Some(path.clone()),
        ..Default::default()
    };
    let rows = orders(100);
    let first = c.import(APP, COLL, rows[..60].to_vec(), options()).unwrap();
    assert_eq!(first.stats.created, 60);
    // Row 60: sent, created, and the run killed before it heard.
    c.create_item(APP, COLL, &rows[60]).unwrap();
    let digest = {
        // The digest the import records: FNV-1a of the row's JSON.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in serde_json::to_vec(&rows[60]).unwrap() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    use std::io::Write as _;
    writeln!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap(),
        "started 60 {digest:016x}"
    )
    .unwrap();
    let creates = server.counters().operation("create_item");
    let second = c.import(APP, COLL, rows, options()).unwrap();
    assert_eq!(second.stats.done_before, 60);
    assert_eq!(second.rows[60].outcome.as_str(), "unchanged");
    assert_eq!(second.stats.created, 39);
    assert_eq!(server.counters().operation("create_item") - creates, 39);
    let copies = copies(&server);
    assert_eq!(copies.len(), 100);
    assert!(copies.values().all(|&n| n == 1), "an order created twice");
    let _ = std::fs::remove_file(&path);
}

/// Stopped from outside after 40 rows settled (as a Ctrl-C handler would):
/// the rows in flight finish, the rest are `not_started`, progress was told
/// of every settled row in order; the run resumed from the checkpoint creates
/// exactly the rest. Every order once.
pub fn import_stopped_from_outside_finishes_what_it_sent_and_resumes<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    use std::sync::{Arc, Mutex};
    let server = seeded(0);
    let c: S = signed_in(&server);
    server.set_latency(Some(Duration::from_millis(5)));
    let path = temp_path("import-stop");
    let stop = carthooks_client::bulk::ImportStop::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let (stop, seen) = (stop.clone(), Arc::clone(&seen));
        Arc::new(move |stats: &carthooks_client::bulk::ImportStats| {
            seen.lock().unwrap().push(stats.finished());
            if stats.finished() == 40 {
                stop.stop();
            }
        })
    };
    let rows = orders(200);
    let options = crate::ImportOptions {
        upsert_by: Some("f_1001".into()),
        checkpoint: Some(path.clone()),
        stop: Some(stop),
        progress: Some(progress),
        ..Default::default()
    };
    let first = c.import(APP, COLL, rows.clone(), options).unwrap();
    assert_eq!(
        first.stopped.as_deref(),
        Some(carthooks_client::bulk::STOPPED_ON_REQUEST)
    );
    let created = first.stats.created;
    assert!(
        (40..=40 + 8).contains(&created),
        "the rows in flight at the stop finish, no more start: {created}"
    );
    assert_eq!(first.stats.not_started, 200 - created);
    assert_eq!(first.rows.len(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[..created as usize],
        (1..=created).collect::<Vec<_>>()[..],
        "progress told of every settled row"
    );
    let second = c
        .import(
            APP,
            COLL,
            rows,
            crate::ImportOptions {
                upsert_by: Some("f_1001".into()),
                checkpoint: Some(path.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(second.stats.done_before, created);
    assert_eq!(second.stats.created, 200 - created);
    let copies = copies(&server);
    assert_eq!(copies.len(), 200);
    assert!(copies.values().all(|&n| n == 1), "an order created twice");
    let _ = std::fs::remove_file(&path);
}
