//! Four processes import into one account whose API answers 429 beyond 200
//! requests a second (for all its tokens together), sharing one
//! `RedisRateLimit` of 200/s on a real `redis-server`: together they use
//! most of the limit and are almost never throttled, and every row is
//! created once.
//!
//! The importers are this test binary, re-run with `child_shared_importer`
//! selected; the mock and Redis live in the parent.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carthooks_mock::{DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, MockConfig, MockServer};
use carthooks_redis::RedisRateLimit;
use carthooks_tests::redis_server::RedisServer;
use serde_json::json;

const URL: &str = "CARTHOOKS_SHARED_URL";
const REDIS: &str = "CARTHOOKS_SHARED_REDIS";
const PREFIX: &str = "CARTHOOKS_SHARED_PREFIX";
const LIMIT: u32 = 200;
const PROCESSES: usize = 4;
const ROWS: u64 = 600;

/// Not a test on its own: one importer, when run as a child.
#[test]
fn child_shared_importer() {
    let Ok(url) = std::env::var(URL) else {
        return;
    };
    let limit = RedisRateLimit::open(&std::env::var(REDIS).unwrap(), "demo-client", LIMIT).unwrap();
    let prefix = std::env::var(PREFIX).unwrap();
    let rows: Vec<_> = (0..ROWS)
        .map(|i| json!({"f_1001": format!("{prefix}-{i:04}"), "title": "order"}))
        .collect();
    let client = carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(&url)
        .oauth(carthooks_tests::oauth())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(async {
            client.initialize_oauth(None).await.unwrap();
            client
                .import(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, rows)
                .shared_rate_limit(Arc::new(limit))
                .run()
                .await
        })
        .unwrap();
    assert_eq!(report.stats.created, ROWS, "{:?}", report.stats);
    assert_eq!(report.stats.shared_limit_failures, 0);
}

#[test]
fn four_processes_share_one_rate_limit_through_redis() {
    let redis = RedisServer::start();
    let server = MockServer::start_with(MockConfig {
        rate_limit: Some(LIMIT),
        rate_limit_per_client: true,
        ..MockConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_shared_importer", "--exact", "--test-threads", "1"])
                .env(URL, server.url())
                .env(REDIS, redis.url())
                .env(PREFIX, format!("P{p}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let at_one = server.counters();
    for child in &mut children {
        assert!(child.wait().unwrap().success(), "an importer failed");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end = server.counters();
    let path = format!("/v1/apps/{DEFAULT_APP_ID}/collections/{DEFAULT_COLLECTION_ID}/items");
    let total = PROCESSES as u64 * ROWS;
    // Every row once.
    let mut codes = std::collections::HashSet::new();
    for item in server.state().items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID) {
        if let Some(code) = item["fields"]["f_1001"]
            .as_str()
            .filter(|c| c.starts_with('P'))
        {
            assert!(codes.insert(code.to_owned()), "{code} created twice");
        }
    }
    assert_eq!(codes.len() as u64, total);
    let requests_after = end.received_at(&path) - at_one.received_at(&path);
    let limited_after = end.rate_limited - at_one.rate_limited;
    let share_429 = limited_after as f64 / requests_after.max(1) as f64;
    // What the account's bucket allowed over the run: its burst and the limit
    // for every second (process start-up included).
    let used =
        (end.received_at(&path) - end.rate_limited) as f64 / (f64::from(LIMIT) * (1.0 + elapsed));
    eprintln!(
        "{PROCESSES} processes, {total} rows, {elapsed:.1} s: {:.1} % of the limit used, {:.2} % answered 429 after the first second ({limited_after} of {requests_after}), {} in all",
        used * 100.0,
        share_429 * 100.0,
        end.rate_limited
    );
    assert!(share_429 <= 0.02, "{:.2} % answered 429", share_429 * 100.0);
    // A loose floor (a loaded machine starts processes slowly); the figure is
    // printed above.
    assert!(used >= 0.5, "{:.1} % of the limit used", used * 100.0);
}
