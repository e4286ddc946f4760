//! Every command against carthooks-mock, as a script (stdout piped: JSON) and
//! as a person would ask for it (`-o table`, `-o csv`, …); errors, exit
//! codes, and no secret in any output at any `-v` level.

mod support;

use serde_json::{Value, json};
use support::{APP, COLL, Run, Setup, assert_no_secret};

fn ids(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["id"].as_u64().expect("an id"))
        .collect()
}

#[test]
fn items_in_every_output_mode() {
    let s = Setup::with_env_credentials(40);
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let a = [app.as_str(), coll.as_str()];
    // Piped: JSON, the first page (20).
    let list = s.run(&["items", "list", a[0], a[1]]).ok();
    assert_eq!(ids(&list.json()), (1..=20).collect::<Vec<_>>());
    assert!(list.stderr.contains("20 of 43 items"), "{}", list.stderr);
    // A table: a header, a row per item, the fields as columns.
    let table = s
        .run(&["items", "list", a[0], a[1], "--limit", "3", "-o", "table"])
        .ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(lines[0].starts_with("ID  TITLE"), "{}", lines[0]);
    assert!(lines[0].contains("F_1001"), "{}", lines[0]);
    assert!(lines[1].starts_with("1   First order"), "{}", lines[1]);
    assert!(!table.stdout.contains('\x1b'), "no color when piped");
    // NDJSON: an item a line; CSV: a header and a row each.
    let nd = s
        .run(&["items", "list", a[0], a[1], "--limit", "5", "-o", "ndjson"])
        .ok();
    let lines: Vec<Value> = nd
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&Value::Array(lines)), vec![1, 2, 3, 4, 5]);
    let csv = s
        .run(&["items", "list", a[0], a[1], "--limit", "2", "-o", "csv"])
        .ok();
    let mut rows = csv.stdout.lines();
    assert!(
        rows.next().unwrap().starts_with("id,title,"),
        "{}",
        csv.stdout
    );
    assert!(
        rows.next().unwrap().starts_with("1,First order,"),
        "{}",
        csv.stdout
    );
    // A filter, in the form people write it.
    let found = s
        .run(&[
            "items",
            "list",
            a[0],
            a[1],
            "--filter",
            "f_1001=EF250920962520",
        ])
        .ok()
        .json();
    assert_eq!(ids(&found), vec![2]);
    let found = s
        .run(&[
            "items", "list", a[0], a[1], "--filter", "n>=38", "-o", "json",
        ])
        .ok()
        .json();
    assert_eq!(ids(&found), vec![42, 43]);
    // --all walks every page; --jq sees the whole result, not a page.
    let all = s
        .run(&["items", "list", a[0], a[1], "--all", "--limit", "7"])
        .ok()
        .json();
    assert_eq!(ids(&all), (1..=43).collect::<Vec<_>>());
    let n = s
        .run(&[
            "items", "list", a[0], a[1], "--all", "--limit", "7", "--jq", "length",
        ])
        .ok();
    assert_eq!(n.stdout, "43\n", "--jq over every page at once");
    let titles = s
        .run(&[
            "items",
            "list",
            a[0],
            a[1],
            "--all",
            "--max-items",
            "2",
            "--jq",
            ".[].title",
        ])
        .ok();
    assert_eq!(
        titles.stdout, "First order\nSecond order\n",
        "strings raw, as gh"
    );
    // --all -o ndjson streams: an item a line as the pages come, --fields too.
    let streamed = s
        .run(&[
            "items", "list", a[0], a[1], "--all", "--limit", "7", "-o", "ndjson", "--fields",
            "f_1001",
        ])
        .ok();
    let lines: Vec<Value> = streamed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        ids(&Value::Array(lines.clone())),
        (1..=43).collect::<Vec<_>>()
    );
    assert_eq!(
        lines[1],
        json!({"id": 2, "fields": {"f_1001": "EF250920962520"}})
    );
    // A reader that goes away (`| head -1`) is not an error.
    let mut child = s.spawn(&[
        "items", "list", a[0], a[1], "--all", "--limit", "1", "-o", "ndjson",
    ]);
    let mut first = String::new();
    {
        use std::io::BufRead as _;
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
    }
    assert!(first.starts_with("{"), "{first}");
    assert!(
        child.wait().unwrap().success(),
        "a closed pipe ends the listing quietly"
    );
    // --fields: id and the fields asked for.
    let one = s
        .run(&["items", "get", a[0], a[1], "2", "--fields", "f_1001"])
        .ok()
        .json();
    assert_eq!(
        one,
        json!({"id": 2, "fields": {"f_1001": "EF250920962520"}})
    );
    let kv = s
        .run(&["items", "get", a[0], a[1], "2", "-o", "table"])
        .ok();
    assert!(
        kv.stdout
            .lines()
            .any(|l| l.starts_with("f_1001") && l.ends_with("EF250920962520")),
        "{}",
        kv.stdout
    );
}

#[test]
fn every_operation_changes_what_the_server_holds() {
    let s = Setup::with_env_credentials(0);
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let (a, c) = (app.as_str(), coll.as_str());
    let created = s
        .run(&[
            "items",
            "create",
            a,
            c,
            "--field",
            "title=Order 7",
            "--field",
            "f_1001=EF7",
        ])
        .ok()
        .json();
    let id = created["id"].as_u64().expect("the new item's id");
    let id_text = id.to_string();
    let held = |id: u64| {
        s.server
            .state()
            .items(APP, COLL)
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
    };
    assert_eq!(held(id).expect("created")["fields"]["f_1001"], "EF7");
    let data = r#"{"status": "done", "amount": 12}"#;
    s.run(&["items", "update", a, c, &id_text, "--data", data])
        .ok();
    let item = held(id).expect("still there");
    assert_eq!(
        (
            item["fields"]["status"].clone(),
            item["fields"]["amount"].clone()
        ),
        (json!("done"), json!(12))
    );
    let lock = s
        .run(&[
            "items",
            "lock",
            a,
            c,
            &id_text,
            "--lock-id",
            "job-1",
            "--timeout",
            "60",
        ])
        .ok()
        .json();
    assert_eq!(lock["locked"], true);
    let unlock = s
        .run(&["items", "unlock", a, c, &id_text, "--lock-id", "job-1"])
        .ok()
        .json();
    assert_eq!(unlock["locked"], false);
    let row = s
        .run(&[
            "sub-items",
            "create",
            a,
            c,
            &id_text,
            "--subform",
            "9",
            "--field",
            "qty=2",
        ])
        .ok()
        .json();
    let row_id = row["id"].as_u64().expect("the row's id").to_string();
    s.run(&[
        "sub-items",
        "update",
        a,
        c,
        &id_text,
        "--subform",
        "9",
        "--row",
        &row_id,
        "--field",
        "qty=3",
    ])
    .ok();
    assert_eq!(held(id).unwrap()["fields"]["9"][0]["qty"], 3);
    s.run(&[
        "sub-items",
        "delete",
        a,
        c,
        &id_text,
        "--subform",
        "9",
        "--row",
        &row_id,
    ])
    .ok();
    assert_eq!(held(id).unwrap()["fields"]["9"], json!([]));
    // From a file, and from stdin.
    let file = support::scratch("data").join("item.json");
    std::fs::write(&file, r#"{"title": "From a file"}"#).unwrap();
    let from_file = s
        .run(&["items", "create", a, c, "--input", file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(from_file["title"], "From a file");
    let from_stdin = s
        .run_with_input(
            &["items", "create", a, c, "--input", "-"],
            r#"{"title": "From stdin"}"#,
        )
        .ok()
        .json();
    assert_eq!(from_stdin["title"], "From stdin");
    let deleted = s.run(&["items", "delete", a, c, &id_text]).ok().json();
    assert_eq!(deleted["deleted"], true);
    assert!(held(id).is_none(), "deleted on the server");
    // Users, tokens, watches.
    assert_eq!(
        s.run(&["users", "me"]).ok().json()["username"],
        "service:demo-client"
    );
    assert_eq!(
        s.run(&["users", "get", "7"]).ok().json()["username"],
        "alice"
    );
    assert_eq!(s.run(&["upload-token"]).ok().json()["kind"], "upload");
    assert_eq!(
        s.run(&["submission-token", a, c]).ok().json()["kind"],
        "submission"
    );
    let watch = s
        .run(&[
            "watch-data",
            a,
            c,
            "--queue",
            "http://127.0.0.1:1/q",
            "--name",
            "w-1",
        ])
        .ok()
        .json();
    assert_eq!(watch["name"], "w-1");
    assert_eq!(s.server.counters().operation("watch_data"), 1);
}

#[test]
fn api_reaches_any_endpoint_and_paginates_into_one_result() {
    let s = Setup::with_env_credentials(130);
    let path = format!("/v1/apps/{APP}/collections/{COLL}/items");
    assert_eq!(
        s.run(&["api", "GET", "/v1/me"]).ok().json()["username"],
        "service:demo-client"
    );
    let page = s
        .run(&["api", "GET", &format!("{path}?pagination[limit]=5")])
        .ok()
        .json();
    assert_eq!(ids(&page), vec![1, 2, 3, 4, 5]);
    let all = s
        .run(&[
            "api",
            "GET",
            &path,
            "--paginate",
            "--jq",
            "map(.id) | length",
        ])
        .ok();
    assert_eq!(all.stdout, "133\n");
    assert_eq!(
        s.server.counters().received_at(&path),
        1 + 2,
        "one page of 5, then two of 100"
    );
    let created = s
        .run(&["api", "POST", &path, "--field", "data.title=Raw"])
        .ok()
        .json();
    assert_eq!(created["title"], "Raw");
    let bad = s.run(&["api", "FETCH", "/v1/me"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn errors_are_one_sentence_with_the_trace_id_and_documented_exit_codes() {
    let s = Setup::with_env_credentials(0);
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let missing = s.run(&["items", "get", &app, &coll, "99999"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stdout.is_empty());
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("not found") && missing.stderr.contains("trace id"),
        "{}",
        missing.stderr
    );
    let usage = s.run(&["items", "list", &app, &coll, "--filter", "no operator"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let flag = s.run(&["items", "list", "--bogus"]);
    assert_eq!(flag.code, 2, "{flag:?}");
    let jq = s.run(&["items", "list", &app, &coll, "--jq", "map("]);
    assert_eq!(jq.code, 2, "{jq:?}");
    let no_target = s.run(&["items", "list"]);
    assert_eq!(no_target.code, 2);
    assert!(
        no_target.stderr.contains("which app and collection"),
        "{}",
        no_target.stderr
    );
    let signed_out = Setup::signed_out(0);
    let need = signed_out.run(&["items", "list", &app, &coll]);
    assert_eq!(need.code, 4, "{need:?}");
    assert!(need.stderr.contains("carthooks login"), "{}", need.stderr);
    let mut wrong = Setup::signed_out(0);
    wrong
        .env
        .push(("CARTHOOKS_CLIENT_ID".into(), "demo-client".into()));
    wrong
        .env
        .push(("CARTHOOKS_CLIENT_SECRET".into(), "not-the-secret".into()));
    let refused = wrong.run(&["users", "me"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains("client id and secret"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("not-the-secret"));
    // A server that is not there: one sentence, exit 1.
    let mut gone = Setup::with_env_credentials(0);
    gone.env
        .push(("CARTHOOKS_API_URL".into(), "http://127.0.0.1:9".into()));
    let down = gone.run(&["users", "me"]);
    assert_eq!(down.code, 1, "{down:?}");
    assert_eq!(down.stderr.lines().count(), 1, "{}", down.stderr);
}

#[test]
fn no_secret_is_printed_in_any_mode_at_any_verbosity() {
    let s = Setup::with_env_credentials(5);
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let mut runs: Vec<Run> = Vec::new();
    for v in [None, Some("-v"), Some("-vv"), Some("-vvv")] {
        for out in ["json", "table", "ndjson", "csv"] {
            let mut args = vec!["items", "list", &app, &coll, "-o", out];
            args.extend(v);
            runs.push(s.run(&args).ok());
            let mut args = vec!["users", "me", "-o", out];
            args.extend(v);
            runs.push(s.run(&args).ok());
        }
        let mut args = vec!["items", "get", &app, &coll, "99999"];
        args.extend(v);
        runs.push(s.run(&args));
    }
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains("carthooks.call{operation=\"get_items\"")),
        "-v shows a line per call"
    );
    let secrets = s.secrets();
    assert_no_secret(&secrets, &runs.iter().collect::<Vec<_>>());
}

#[test]
fn completions_and_help() {
    let s = Setup::signed_out(0);
    for shell in ["bash", "zsh", "fish"] {
        let out = s.run(&["completions", shell]).ok();
        assert!(out.stdout.contains("carthooks"), "{shell}");
        assert!(out.stdout.contains("export"), "{shell}: every command");
    }
    let help = s.run(&["--help"]).ok();
    assert!(help.stdout.contains("Exit codes:") && help.stdout.contains("Examples:"));
    for command in [
        vec!["login"],
        vec!["items", "list"],
        vec!["items", "get"],
        vec!["export"],
        vec!["import"],
        vec!["watch", "tail"],
        vec!["api"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let out = s.run(&args).ok();
        assert!(
            out.stdout.contains("Example"),
            "{command:?} --help shows examples"
        );
    }
}
