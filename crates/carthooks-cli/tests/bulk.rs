//! `carthooks export` and `carthooks import` as a user runs them: to and
//! from files, interrupted with Ctrl-C (SIGINT) and resumed, with bad input,
//! and with rows the server refuses.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use support::{APP, COLL, Setup, interrupt, scratch, wait_until};

fn ids_in_ndjson(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON line")["id"]
                .as_u64()
                .expect("an id")
        })
        .collect()
}

#[test]
fn export_to_ndjson_and_csv_each_item_once() {
    let s = Setup::with_env_credentials(997);
    let dir = scratch("export");
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let nd = dir.join("items.ndjson");
    let out = s
        .run(&["export", &app, &coll, "-o", nd.to_str().unwrap()])
        .ok();
    assert!(out.stdout.is_empty(), "data went to the file");
    assert!(out.stderr.contains("Exported 1000 items"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("ETA"),
        "no progress bar when stderr is not a terminal"
    );
    let ids = ids_in_ndjson(&std::fs::read_to_string(&nd).unwrap());
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>());
    assert!(!dir.join("items.ndjson.export-checkpoint").exists());
    let csv_path = dir.join("items.csv");
    s.run(&["export", &app, &coll, "-o", csv_path.to_str().unwrap()])
        .ok();
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    assert_eq!(&headers[1], "title");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1000);
    assert_eq!(&rows[1][1], "Second order");
    // To stdout, NDJSON, for a pipe; with a filter.
    let piped = s
        .run(&["export", &app, &coll, "--filter", "n<10", "-q"])
        .ok();
    assert_eq!(ids_in_ndjson(&piped.stdout), (4..=13).collect::<Vec<_>>());
    assert!(piped.stderr.is_empty(), "--quiet: {}", piped.stderr);
}

#[test]
fn an_export_interrupted_with_ctrl_c_resumes_to_each_item_once() {
    let s = Setup::with_env_credentials(2997);
    // Slow pages, so that Ctrl-C comes in the middle.
    s.server.set_latency(Some(Duration::from_millis(100)));
    let dir = scratch("export-resume");
    let file = dir.join("items.ndjson");
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let args = [
        "export",
        &app,
        &coll,
        "-o",
        file.to_str().unwrap(),
        "--concurrency",
        "2",
    ];
    let child = s.spawn(&args);
    wait_until("the export wrote 300 items", || {
        std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) >= 300
    });
    interrupt(&child);
    let first: support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(first.code, 130, "{first:?}");
    assert!(
        first.stderr.contains("Interrupted.") && first.stderr.contains("--resume"),
        "says how to resume: {}",
        first.stderr
    );
    let partial = ids_in_ndjson(&std::fs::read_to_string(&file).unwrap());
    assert!(partial.len() < 3000, "stopped before the end");
    s.server.set_latency(None);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let second = s.run(&resume).ok();
    assert!(
        second.stderr.contains("Resuming after"),
        "{}",
        second.stderr
    );
    let ids = ids_in_ndjson(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(
        ids,
        (1..=3000).collect::<Vec<_>>(),
        "each item once, in order"
    );
    // Nothing left to resume.
    let again = s.run(&resume);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("nothing to resume"));
}

/// Orders `from..to` as CSV, keyed by `f_1001`.
fn orders_csv(from: u64, to: u64) -> String {
    let mut text = String::from("title,f_1001,amount\n");
    for n in from..to {
        text.push_str(&format!("Order {n},ORD-{n},{n}\n"));
    }
    text
}

fn copies(s: &Setup) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for item in s.server.state().items(APP, COLL) {
        if let Some(key) = item["fields"]["f_1001"]
            .as_str()
            .filter(|k| k.starts_with("ORD-"))
        {
            *copies.entry(key.to_owned()).or_insert(0) += 1;
        }
    }
    copies
}

#[test]
fn an_import_interrupted_with_ctrl_c_resumes_and_creates_each_row_once() {
    let s = Setup::with_env_credentials(0);
    s.server.set_latency(Some(Duration::from_millis(20)));
    let dir = scratch("import");
    let file = dir.join("orders.csv");
    std::fs::write(&file, orders_csv(0, 1500)).unwrap();
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let args = [
        "import",
        &app,
        &coll,
        file.to_str().unwrap(),
        "--upsert-by",
        "f_1001",
    ];
    let child = s.spawn(&args);
    wait_until("the import sent 200 rows", || {
        s.server.counters().operation("create_item") >= 200
    });
    interrupt(&child);
    let first: support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(first.code, 130, "{first:?}");
    assert!(
        first.stderr.contains("Resume with: carthooks import")
            && first.stderr.contains("--resume --upsert-by f_1001"),
        "{}",
        first.stderr
    );
    let done = copies(&s).len();
    assert!((200..1500).contains(&done), "stopped in the middle: {done}");
    // Without --resume, the checkpoint is not run over.
    let refused = s.run(&args);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--resume"), "{}", refused.stderr);
    s.server.set_latency(None);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let second = s.run(&resume).ok();
    assert!(second.stderr.contains("done before"), "{}", second.stderr);
    let copies = copies(&s);
    assert_eq!(copies.len(), 1500);
    assert!(copies.values().all(|&n| n == 1), "a row created twice");
    assert!(
        !dir.join("orders.csv.import-checkpoint").exists(),
        "finished: no checkpoint left"
    );
}

#[test]
fn an_import_reports_refused_rows_and_sends_nothing_from_a_malformed_file() {
    let s = Setup::with_env_credentials(0);
    let dir = scratch("import-bad");
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let bad = dir.join("bad.ndjson");
    std::fs::write(&bad, "{\"title\": \"ok\"}\n{not json\n").unwrap();
    let out = s.run(&["import", &app, &coll, bad.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("line 2 is not JSON") && out.stderr.contains("nothing was sent"));
    assert_eq!(s.server.counters().operation("create_item"), 0);
    // The server refuses three rows (400): they are in the report.
    let rows = dir.join("rows.ndjson");
    let text: String = (0..50)
        .map(|n| format!("{{\"title\": \"Row {n}\"}}\n"))
        .collect();
    std::fs::write(&rows, text).unwrap();
    s.server.inject(
        carthooks_mock::Fault::Status {
            status: 400,
            retry_after: None,
        },
        3,
        Some("/v1/apps"),
    );
    let out = s.run(&[
        "import",
        &app,
        &coll,
        rows.to_str().unwrap(),
        "--concurrency",
        "1",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("47 created") && out.stderr.contains("3 failed"),
        "{}",
        out.stderr
    );
    let report = std::fs::read_to_string(dir.join("rows.ndjson.problems.ndjson")).unwrap();
    let problems: Vec<Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(problems.len(), 3);
    assert!(
        problems
            .iter()
            .all(|p| p["outcome"] == "failed" && p["status"] == 400)
    );
    // Fixed (the server takes them now): --resume sends just those three.
    let before = s.server.counters().operation("create_item");
    let out = s
        .run(&["import", &app, &coll, rows.to_str().unwrap(), "--resume"])
        .ok();
    assert!(
        out.stderr.contains("3 created") && out.stderr.contains("47 done before"),
        "{}",
        out.stderr
    );
    assert_eq!(s.server.counters().operation("create_item") - before, 3);
}

#[test]
fn an_exported_file_imports_into_another_collection() {
    let s = Setup::with_env_credentials(17);
    let dir = scratch("roundtrip");
    let file = dir.join("items.ndjson");
    let (app, coll) = (APP.to_string(), COLL.to_string());
    s.run(&["export", &app, &coll, "-o", file.to_str().unwrap()])
        .ok();
    let other = (COLL + 1).to_string();
    s.run(&["import", &app, &other, file.to_str().unwrap()])
        .ok();
    // Rows go several at once: compare the two as sets.
    let contents = |coll: u64| {
        let mut v: Vec<String> = s
            .server
            .state()
            .items(APP, coll)
            .iter()
            .map(|i| format!("{} {}", i["title"], i["fields"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(contents(COLL + 1), contents(COLL));
    assert_eq!(contents(COLL).len(), 20);
}

#[test]
fn a_second_ctrl_c_stops_an_import_at_once_and_a_resumed_run_still_creates_each_row_once() {
    let s = Setup::with_env_credentials(0);
    // Slow enough that the requests in flight are still there at the second
    // Ctrl-C, whatever the machine's load.
    s.server.set_latency(Some(Duration::from_secs(3)));
    let dir = scratch("import-twice");
    let file = dir.join("orders.csv");
    std::fs::write(&file, orders_csv(0, 100)).unwrap();
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let args = [
        "import",
        &app,
        &coll,
        file.to_str().unwrap(),
        "--upsert-by",
        "f_1001",
    ];
    let child = s.spawn(&args);
    wait_until("rows are in flight", || s.server.counters().in_flight >= 2);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(200));
    interrupt(&child);
    let first: support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(first.code, 130, "{first:?}");
    assert!(
        first.stderr.contains("stopped at once") && first.stderr.contains("--resume"),
        "{}",
        first.stderr
    );
    // The server finishes what it was handling; then the resumed run looks
    // those rows up instead of creating them again.
    wait_until("the server is idle", || s.server.counters().in_flight == 0);
    s.server.set_latency(None);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let second = s.run(&resume).ok();
    assert!(
        second.stderr.contains("100 of 100 rows"),
        "{}",
        second.stderr
    );
    let copies = copies(&s);
    assert_eq!(copies.len(), 100);
    assert!(copies.values().all(|&n| n == 1), "a row created twice");
}
