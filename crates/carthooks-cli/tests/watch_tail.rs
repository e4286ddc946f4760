//! `carthooks watch tail` on a real SQS (moto, started by the test), fed by
//! carthooks-mock: each change printed as a line (NDJSON when asked, a short
//! human line otherwise) and acked once printed.

#[path = "../../carthooks-watch/tests/support/mod.rs"]
mod moto;
mod support;

use serde_json::Value;
use support::{APP, COLL, Setup, wait_until};

#[test]
fn tail_prints_each_change_and_acks_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moto = moto::Moto::start();
    let sqs = runtime.block_on(moto.sqs());
    let queue = runtime.block_on(moto::queue(&sqs, "cli-tail", 30));
    let mut s = Setup::with_env_credentials(0);
    s.server.deliver_changes_to(sqs.clone());
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        s.env.push((k.into(), v.into()));
    }
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let child = s.spawn(&[
        "watch", "tail", "--queue", &queue, &app, &coll, "-o", "ndjson", "--max", "3",
    ]);
    wait_until("the watch is registered", || {
        s.server.counters().operation("watch_data") >= 1
    });
    let mut created = Vec::new();
    for n in 0..3 {
        let item = s
            .run(&[
                "items",
                "create",
                &app,
                &coll,
                "--field",
                &format!("title=Tail {n}"),
            ])
            .ok()
            .json();
        created.push(item["id"].as_u64().unwrap());
    }
    let out: support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let mut seen: Vec<u64> = lines
        .iter()
        .map(|l| l["item_id"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, created);
    assert!(lines.iter().all(|l| l["event"] == "item.created"));
    assert!(
        out.stderr.contains("3 changes printed, 3 acked"),
        "{}",
        out.stderr
    );
    let depth = runtime.block_on(moto::depth(&sqs, &queue));
    assert_eq!(depth, (0, 0), "every printed change was acked");

    // A person's line: what happened, to which item, its title. (A queue
    // of its own: moto may still hold the first process's last long poll,
    // which would take the next message out of sight for 30 s.)
    let queue = runtime.block_on(moto::queue(&sqs, "cli-tail-2", 30));
    let child = s.spawn(&[
        "watch", "tail", "--queue", &queue, &app, &coll, "-o", "table", "--max", "1",
    ]);
    wait_until("the second watch is registered", || {
        s.server.counters().operation("watch_data") >= 2
    });
    let id = s
        .run(&[
            "items",
            "update",
            &app,
            &coll,
            &created[0].to_string(),
            "--field",
            "title=Renamed",
        ])
        .ok()
        .json()["id"]
        .as_u64()
        .unwrap();
    let out: support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(
        line.starts_with("updated")
            && line.contains(&format!("item {id} v2"))
            && line.ends_with("Renamed"),
        "{line:?}"
    );
}
