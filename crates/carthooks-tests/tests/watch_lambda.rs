//! The watcher under AWS Lambda, end to end: a function binary
//! (`src/bin/lambda_function.rs`, on `carthooks_watch::lambda`) run as Lambda
//! runs one, against a loopback emulator of the Lambda Runtime API
//! (`carthooks_tests::lambda_api`) fed batches in the format Lambda's SQS
//! event source sends, with carthooks-mock as the Carthooks its handler
//! calls. The last test puts the event source itself in between: changes
//! published by carthooks-mock to moto's SQS, received as Lambda receives
//! them, and deleted only when the function does not name them as failed.

// The watcher's own test support: moto, queues, `eventually`.
#[path = "../../carthooks-watch/tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use carthooks_mock::{
    DEFAULT_APP_ID as APP, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID as COLL,
    MockServer,
};
use carthooks_tests::lambda_api::{Answer, RuntimeApi};
use serde_json::{Value, json};
use support::{Moto, depth, eventually, mock_with_delivery, queue, queue_arn, register_watch};

const FUNCTION: &str = "carthooks-watch-test";
const STANDARD_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:carthooks-changes";
const FIFO_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:carthooks-changes.fifo";
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The function binary running against `api`, its stdout lines collected.
struct Function {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Function {
    fn start(api: &RuntimeApi, mock: &MockServer) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lambda_function"))
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/carthooks-watch-test",
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/03/[$LATEST]0001")
            .env("CARTHOOKS_API_URL", mock.url())
            .env("CARTHOOKS_CLIENT_ID", DEFAULT_CLIENT_ID)
            .env("CARTHOOKS_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the function binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    collected.lock().unwrap().push(value);
                }
            }
        });
        Self { child, lines }
    }

    /// The lines printed, once there are at least `n`: they were all written
    /// before the answer, but the reader thread may not have read them yet.
    /// Waits a little longer after, so that one too many would be seen too.
    fn lines(&self, n: usize) -> Vec<Value> {
        let started = std::time::Instant::now();
        while self.lines.lock().unwrap().len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "only {:?} of {n} lines",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.lines.lock().unwrap().clone()
    }

    /// The handler calls, once `n` lines were printed: (item, version,
    /// message id) of each start.
    fn started(&self, n: usize) -> Vec<(u64, u64, String)> {
        self.lines(n)
            .iter()
            .filter(|l| l["at"] == "start")
            .map(|l| {
                (
                    l["item"].as_u64().unwrap(),
                    l["version"].as_u64().unwrap(),
                    l["message_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the function exited"
        );
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record as Lambda's SQS event source sends it.
fn record(arn: &str, message_id: &str, body: &str, group: Option<&str>) -> Value {
    let mut attributes = json!({
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1764750000000",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1764750000100",
    });
    if let Some(group) = group {
        attributes["MessageGroupId"] = json!(group);
        attributes["SequenceNumber"] = json!("18849496460467696128");
        attributes["MessageDeduplicationId"] = json!(message_id);
    }
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{message_id}handle"),
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    })
}

/// A change message as carthooks-mock publishes it.
fn change(item: u64, version: u64, fields: Value) -> String {
    json!({
        "version": version,
        "meta": {"event": "item.updated", "trigger_name": "watch-1-2", "tenant_id": 1, "trigger_type": "watch_data"},
        "payload": {"id": item, "title": "order", "fields": fields, "created_at": 1764750000, "updated_at": 1764750000},
    })
    .to_string()
}

fn failures(answer: &Answer) -> Vec<String> {
    let Answer::Response(body) = answer else {
        panic!("the function answered with an error: {answer:?}");
    };
    body["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

async fn items(mock: &MockServer, n: usize, fields: impl Fn(usize) -> Value) -> Vec<u64> {
    let client = client(mock).await;
    let mut ids = Vec::new();
    for i in 0..n {
        // The mock keeps every key as a field (the title too).
        let mut data = fields(i);
        data["title"] = json!(format!("order {i}"));
        let item = client.create_item(APP, COLL, &data).await.unwrap();
        ids.push(item.data["id"].as_u64().unwrap());
    }
    ids
}

async fn client(mock: &MockServer) -> carthooks_reqwest::Client {
    let client = carthooks_reqwest::Client::builder()
        .base_url(mock.url())
        .oauth(carthooks_client::OAuthConfig::new(
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
        ))
        .build()
        .unwrap();
    client.initialize_oauth(None).await.unwrap();
    client
}

async fn fields_of(mock: &MockServer, id: u64) -> Value {
    client(mock)
        .await
        .get_item(APP, COLL, id, &[])
        .await
        .unwrap()
        .data["fields"]
        .clone()
}

/// Lambda's promise for partial batch responses: exactly the failed ids come
/// back, the others are done — here their handler wrote to the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_with_three_failures_answers_exactly_those_three() {
    let mock = MockServer::start().unwrap();
    let failing = [2, 5, 7];
    let ids = items(
        &mock,
        10,
        |i| json!({"mark": true, "fail": failing.contains(&i)}),
    )
    .await;
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let body = change(*id, 1, json!({"mark": true, "fail": failing.contains(&i)}));
            record(STANDARD_ARN, &format!("msg-{i}"), &body, None)
        })
        .collect();
    let answer = api
        .invoke(&json!({"Records": records}), ANSWER_WITHIN)
        .await
        .expect("an answer");
    let mut failed = failures(&answer);
    failed.sort();
    assert_eq!(failed, ["msg-2", "msg-5", "msg-7"]);
    for (i, id) in ids.iter().enumerate() {
        let fields = fields_of(&mock, *id).await;
        if failing.contains(&i) {
            assert_eq!(fields.get("marked_by"), None, "item {i} failed: not marked");
        } else {
            assert_eq!(fields["marked_by"], FUNCTION, "item {i}: {fields}");
            assert_eq!(fields["marked_version"], 1);
        }
    }
    function.assert_running();
}

/// Hostile records: a body that is not JSON, one without `payload.id`, a
/// handler that panics. Each is a failure (never reported done), the rest
/// of the batch is done, and the function answers the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_and_a_panic_are_failures_and_the_function_goes_on() {
    let mock = MockServer::start().unwrap();
    let ids = items(&mock, 3, |_| json!({})).await;
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let records = vec![
        record(STANDARD_ARN, "ok-1", &change(ids[0], 1, json!({})), None),
        record(
            STANDARD_ARN,
            "not-json",
            "{\"version\": 1, \"payload\": ",
            None,
        ),
        record(
            STANDARD_ARN,
            "no-id",
            &json!({"version": 1, "payload": {"title": "x"}}).to_string(),
            None,
        ),
        record(
            STANDARD_ARN,
            "panics",
            &change(ids[1], 1, json!({"panic": true})),
            None,
        ),
        record(STANDARD_ARN, "ok-2", &change(ids[2], 1, json!({})), None),
    ];
    let answer = api
        .invoke(&json!({"Records": records}), ANSWER_WITHIN)
        .await
        .expect("an answer");
    let failed: HashSet<String> = failures(&answer).into_iter().collect();
    assert_eq!(
        failed,
        HashSet::from(["not-json".into(), "no-id".into(), "panics".into()])
    );
    // Still serving: a second batch is answered.
    let again = api
        .invoke(
            &json!({"Records": [record(STANDARD_ARN, "ok-3", &change(ids[0], 2, json!({})), None)]}),
            ANSWER_WITHIN,
        )
        .await
        .expect("an answer to the next batch");
    assert!(failures(&again).is_empty());
    function.assert_running();
}

/// Inside a batch from a standard queue: an item's changes run one after
/// another in the batch's order, items side by side; a change not newer
/// than one handled for its item (a duplicate, an older one after a newer)
/// is done without calling the handler, and is no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_items_changes_run_in_order_one_at_a_time_and_stale_ones_are_skipped() {
    let mock = MockServer::start().unwrap();
    let ids = items(&mock, 2, |_| json!({})).await;
    let (a, b) = (ids[0], ids[1]);
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let slow = json!({"sleep_ms": 30});
    let batch = [
        ("a1", a, 1),
        ("b1", b, 1),
        ("a2", a, 2),
        ("a2-again", a, 2),
        ("b3", b, 3),
        ("b2", b, 2),
        ("a3", a, 3),
    ];
    let records: Vec<Value> = batch
        .iter()
        .map(|(id, item, v)| record(STANDARD_ARN, id, &change(*item, *v, slow.clone()), None))
        .collect();
    let answer = api
        .invoke(&json!({"Records": records}), ANSWER_WITHIN)
        .await
        .expect("an answer");
    assert!(failures(&answer).is_empty(), "{answer:?}");
    // Five calls, a start and an end each.
    let started = function.started(10);
    let handled: HashSet<&str> = started.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(handled, HashSet::from(["a1", "a2", "a3", "b1", "b3"]));
    let versions = |item| -> Vec<u64> {
        started
            .iter()
            .filter(|(i, _, _)| *i == item)
            .map(|(_, v, _)| *v)
            .collect()
    };
    assert_eq!(versions(a), [1, 2, 3]);
    assert_eq!(versions(b), [1, 3]);
    // Per item, each call ends before the next one starts; items overlap.
    let lines = function.lines(10);
    let mut running: HashMap<u64, bool> = HashMap::new();
    let mut overlapped = false;
    for line in &lines {
        let item = line["item"].as_u64().unwrap();
        let now = line["at"] == "start";
        let before = running.insert(item, now).unwrap_or(false);
        assert_ne!(before, now, "item {item}: two calls at once ({lines:?})");
        overlapped |= now && running.iter().any(|(i, r)| *i != item && *r);
    }
    assert!(overlapped, "items ran side by side: {lines:?}");
    function.assert_running();
}

/// From a FIFO queue: a failure fails the rest of its group in the batch,
/// unhandled (so nothing overtakes it when Lambda retries), while the other
/// group is handled in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_fifo_queue_a_failure_fails_the_rest_of_its_group_only() {
    let mock = MockServer::start().unwrap();
    let ids = items(&mock, 2, |_| json!({})).await;
    let (a, b) = (ids[0], ids[1]);
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let (ga, gb) = (a.to_string(), b.to_string());
    let records = vec![
        record(FIFO_ARN, "a1", &change(a, 1, json!({})), Some(&ga)),
        record(FIFO_ARN, "b1", &change(b, 1, json!({})), Some(&gb)),
        record(
            FIFO_ARN,
            "a2",
            &change(a, 2, json!({"fail": true})),
            Some(&ga),
        ),
        record(FIFO_ARN, "b2", &change(b, 2, json!({})), Some(&gb)),
        record(FIFO_ARN, "a3", &change(a, 3, json!({})), Some(&ga)),
        record(FIFO_ARN, "b3", &change(b, 3, json!({})), Some(&gb)),
    ];
    let answer = api
        .invoke(&json!({"Records": records}), ANSWER_WITHIN)
        .await
        .expect("an answer");
    assert_eq!(failures(&answer), ["a2", "a3"], "in the group's order");
    // a1 a2 b1 b2 b3: a start and an end each (a2's failure included).
    let handled: Vec<String> = function
        .started(10)
        .into_iter()
        .map(|(_, _, m)| m)
        .collect();
    assert!(
        !handled.contains(&"a3".to_owned()),
        "a3 never ran: {handled:?}"
    );
    for m in ["a1", "a2", "b1", "b2", "b3"] {
        assert!(handled.contains(&m.to_owned()), "{m} ran: {handled:?}");
    }
    function.assert_running();
}

/// An invocation that is not an SQS event goes to the runtime's error
/// endpoint (the function does not crash), and the next one is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_is_not_from_sqs_is_an_invocation_error_not_a_crash() {
    let mock = MockServer::start().unwrap();
    let ids = items(&mock, 1, |_| json!({})).await;
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let answer = api
        .invoke(&json!("not an event"), ANSWER_WITHIN)
        .await
        .expect("an answer");
    let Answer::Error(error) = answer else {
        panic!("expected an invocation error, got {answer:?}");
    };
    assert!(error["errorType"].is_string(), "{error}");
    let next = api
        .invoke(
            &json!({"Records": [record(STANDARD_ARN, "ok", &change(ids[0], 1, json!({})), None)]}),
            ANSWER_WITHIN,
        )
        .await
        .expect("an answer");
    assert!(failures(&next).is_empty());
    assert!(api.init_errors().is_empty());
    function.assert_running();
}

/// Outside Lambda (no runtime environment) the function stops with a clear
/// error, not a panic.
#[test]
fn outside_lambda_the_function_says_so_and_exits() {
    let mock = MockServer::start().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lambda_function"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("CARTHOOKS_API_URL", mock.url())
        .env("CARTHOOKS_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("CARTHOOKS_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not running under AWS Lambda: AWS_LAMBDA_RUNTIME_API is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Lambda's event source in between, on moto: carthooks-mock publishes 10
/// changes (3 of them failing in the handler) and a malformed message is
/// sent beside them; each batch received is handed to the function as
/// Lambda hands it, and only what it does not name as failed is deleted.
/// Left in the queue after: exactly the 3 failures and the malformed
/// message, which comes back when its visibility runs out — never acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_event_source_only_what_succeeded_is_deleted() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue_url = queue(&sqs, "lambda-changes", 2).await;
    let (mock, client) = mock_with_delivery(sqs.clone()).await;
    register_watch(&client, &queue_url).await;
    let failing = [1, 4, 8];
    for i in 0..10 {
        client
            .create_item(
                APP,
                COLL,
                &json!({"title": format!("order {i}"), "fail": failing.contains(&i)}),
            )
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("{\"not\": \"a change\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(depth(&sqs, &queue_url).await, (11, 0));
    let api = RuntimeApi::start().unwrap();
    let mut function = Function::start(&api, &mock);
    let arn = queue_arn(&sqs, &queue_url).await;
    // The event source: receive, invoke, delete what did not fail.
    let mut failed_ids = HashSet::new();
    let mut handled = 0;
    let started = std::time::Instant::now();
    while handled + failed_ids.len() < 11 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the event source saw {handled} handled and {failed_ids:?} failed"
        );
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            continue;
        }
        let records: Vec<Value> = received
            .iter()
            .map(|m| {
                let mut r = record(&arn, m.message_id().unwrap(), m.body().unwrap(), None);
                r["receiptHandle"] = json!(m.receipt_handle().unwrap());
                r["md5OfBody"] = json!(m.md5_of_body().unwrap_or_default());
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                    .collect();
                r["attributes"] = Value::Object(attributes);
                r
            })
            .collect();
        let answer = api
            .invoke(&json!({"Records": records}), ANSWER_WITHIN)
            .await
            .expect("an answer");
        let failed: HashSet<String> = failures(&answer).into_iter().collect();
        for m in &received {
            let id = m.message_id().unwrap();
            if failed.contains(id) {
                failed_ids.insert(id.to_owned());
            } else {
                sqs.delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                handled += 1;
            }
        }
    }
    assert_eq!(handled, 7);
    assert_eq!(failed_ids.len(), 4, "3 failures and the malformed message");
    // Still in the queue (in flight, or visible again if the loop took
    // longer than their 2 s): nothing else.
    let (visible, in_flight) = depth(&sqs, &queue_url).await;
    assert_eq!(visible + in_flight, 4);
    // They come back after the visibility timeout: nothing was acked.
    let back: Arc<Mutex<HashSet<String>>> = Arc::default();
    eventually(Duration::from_secs(30), "the failed messages back", || {
        let (sqs, queue_url, back) = (sqs.clone(), queue_url.clone(), Arc::clone(&back));
        async move {
            let out = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let mut back = back.lock().unwrap();
            for m in out.messages.unwrap_or_default() {
                back.insert(m.message_id().unwrap().to_owned());
            }
            back.len() == 4
        }
    })
    .await;
    assert_eq!(*back.lock().unwrap(), failed_ids);
    function.assert_running();
}
