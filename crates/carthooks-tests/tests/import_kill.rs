//! An importing process is killed with SIGKILL at 10 random moments and
//! resumed each time from its checkpoint file; then a last run goes to the
//! end. With `upsert_by` every row is in the collection exactly once; without
//! it no row is there twice, and every row that is not there exactly once
//! (or not confirmed) is listed in the last run's report as unknown.
//!
//! The importer is this test binary, re-run with `child_importer` selected
//! and the environment saying where to import and record (the async client
//! with a key, the blocking client without, so both runners are killed).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use carthooks_client::bulk::FileCheckpoint;
use carthooks_mock::{DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, MockConfig, MockServer};
use serde_json::{Value, json};

const URL: &str = "CARTHOOKS_IMPORT_URL";
const CHECKPOINT: &str = "CARTHOOKS_IMPORT_CHECKPOINT";
const KEY: &str = "CARTHOOKS_IMPORT_KEY";
const BACKEND: &str = "CARTHOOKS_IMPORT_BACKEND";
const PROBLEMS: &str = "CARTHOOKS_IMPORT_PROBLEMS";
/// At 8 in flight and 3 ms a create, longer than ten kills' worth of running
/// (at most 10 × 480 ms): every kill lands mid-import.
const ROWS: u64 = 12_000;
const KILLS: usize = 10;

fn orders() -> Vec<Value> {
    (0..ROWS)
        .map(|i| json!({"f_1001": format!("ORD-{i:05}"), "title": format!("order {i}"), "amount": i}))
        .collect()
}

/// Not a test on its own: the importer, when run as the child.
#[test]
fn child_importer() {
    let Ok(url) = std::env::var(URL) else {
        return;
    };
    let checkpoint = FileCheckpoint::open(std::env::var(CHECKPOINT).unwrap()).unwrap();
    let key = std::env::var(KEY).ok();
    let oauth = carthooks_tests::oauth();
    let report = if std::env::var(BACKEND).as_deref() == Ok("reqwest") {
        let client = carthooks_reqwest::Client::builder()
            .without_env()
            .base_url(&url)
            .oauth(oauth)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            client.initialize_oauth(None).await.unwrap();
            let mut import = client
                .import(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, orders())
                .checkpoint(checkpoint);
            if let Some(key) = key {
                import = import.upsert_by(key);
            }
            import.run().await
        })
    } else {
        let client = carthooks_ureq::Client::builder()
            .without_env()
            .base_url(&url)
            .oauth(oauth)
            .build()
            .unwrap();
        client.initialize_oauth(None).unwrap();
        let mut import = client
            .import(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, orders())
            .checkpoint(checkpoint);
        if let Some(key) = key {
            import = import.upsert_by(key);
        }
        import.run()
    }
    .unwrap();
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    let path = std::env::var(PROBLEMS).unwrap();
    let partial = format!("{path}.partial");
    report
        .write_problems(std::fs::File::create(&partial).unwrap())
        .unwrap();
    std::fs::rename(partial, path).unwrap();
}

struct Run {
    copies: HashMap<String, usize>,
    /// Rows the last run reported as problems: row → outcome.
    problems: HashMap<u64, String>,
    /// Kills that found the importer running.
    kills: usize,
}

fn import_with_kills(backend: &str, key: Option<&str>) -> Run {
    let server = MockServer::start_with(MockConfig {
        // Each create takes a moment, so that a kill finds some in flight.
        latency: Some(Duration::from_millis(3)),
        ..MockConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "carthooks-import-kill-{}-{backend}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint");
    let problems = dir.join("problems.ndjson");
    let child = || {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["child_importer", "--exact", "--test-threads", "1"])
            .env(URL, server.url())
            .env(CHECKPOINT, &checkpoint)
            .env(BACKEND, backend)
            .env(PROBLEMS, &problems)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(key) = key {
            command.env(KEY, key);
        }
        command.spawn().unwrap()
    };
    // 80 to 480 ms into each run.
    let mut next_delay =
        carthooks_tests::random_delays(Duration::from_millis(80), Duration::from_millis(400));
    let mut kills = 0;
    for _ in 0..KILLS {
        let mut running = child();
        std::thread::sleep(next_delay());
        if running.try_wait().unwrap().is_none() {
            kills += 1;
        }
        running.kill().unwrap(); // SIGKILL on Unix
        running.wait().unwrap();
        if problems.exists() {
            break; // it finished before the kill
        }
    }
    if !problems.exists() {
        let status = child().wait().unwrap();
        assert!(status.success(), "the last run failed: {status}");
    }
    let mut copies: HashMap<String, usize> = HashMap::new();
    for item in server.state().items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID) {
        if let Some(code) = item["fields"]["f_1001"]
            .as_str()
            .filter(|c| c.starts_with("ORD-"))
        {
            *copies.entry(code.to_owned()).or_default() += 1;
        }
    }
    let problems: HashMap<u64, String> = std::fs::read_to_string(&problems)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["row"].as_u64().unwrap(),
                v["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{backend}, key {key:?}: {kills} kills mid-import, {} problems, {} orders in the collection, {} creates received",
        problems.len(),
        copies.len(),
        server.counters().operation("create_item")
    );
    Run {
        copies,
        problems,
        kills,
    }
}

#[test]
fn killed_and_resumed_with_a_key_every_row_is_there_once() {
    let run = import_with_kills("reqwest", Some("f_1001"));
    assert_eq!(run.kills, KILLS, "kills that landed mid-import");
    assert_eq!(run.problems, HashMap::new(), "every row settled");
    assert_eq!(run.copies.len() as u64, ROWS, "none missing");
    let twice: Vec<_> = run.copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "created twice: {twice:?}");
}

#[test]
fn killed_and_resumed_without_a_key_nothing_twice_and_every_doubt_reported() {
    let run = import_with_kills("ureq", None);
    assert_eq!(run.kills, KILLS, "kills that landed mid-import");
    let twice: Vec<_> = run.copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "created twice: {twice:?}");
    let unknown: HashSet<u64> = run
        .problems
        .iter()
        .filter(|(_, o)| *o == "unknown")
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(
        unknown.len(),
        run.problems.len(),
        "only unknowns: {:?}",
        run.problems
    );
    // Every row not in the collection is listed; the listed ones are the
    // rows in flight at a kill (a few a kill, at most 8 each).
    for row in 0..ROWS {
        if !run.copies.contains_key(&format!("ORD-{row:05}")) {
            assert!(unknown.contains(&row), "row {row} missing and not reported");
        }
    }
    assert!(
        unknown.len() <= 8 * run.kills,
        "{} unknown after {} kills",
        unknown.len(),
        run.kills
    );
}
