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
    let c: S = client(&server, oauth());
    c.initialize_oauth(None).unwrap();
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
    let c: S = client(&server, oauth());
    c.initialize_oauth(None).unwrap();
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
    let c: S = client(&server, oauth());
    let path = format!("/v1/apps/{APP}/collections/{COLL}/items");
    c.initialize_oauth(None).unwrap();
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
