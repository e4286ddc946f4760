//! The watcher's OpenTelemetry, end to end: moto's SQS server, carthooks-mock
//! delivering item changes to it, the watcher exporting OTLP/HTTP (through the
//! SDK's providers, as an application sets them up) to a loopback receiver
//! that decodes the protobuf. Asserted: a consumer span per message, linked to
//! the producer's context when the message carries one, the handler's client
//! calls inside it, and the metrics — outcomes, process duration, lag, in hand.
//! And the same under Lambda (`LambdaWatcher::handle`, in process).

// The watcher's own test support: moto, queues, `eventually`.
#[path = "../../carthooks-watch/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use carthooks_mock::{DEFAULT_APP_ID as APP, DEFAULT_COLLECTION_ID as COLL, MockServer};
use carthooks_tests::otlp::{OtlpReceiver, attribute, points, providers, shape};
use carthooks_watch::{BoxError, Change, Watcher};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;
use support::{Moto, eventually, queue};

const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

/// A client of `server`, signed in, exporting to the test's providers.
async fn traced_client(
    server: &MockServer,
    tracer: &opentelemetry_sdk::trace::SdkTracerProvider,
    meter: &opentelemetry_sdk::metrics::SdkMeterProvider,
) -> carthooks_reqwest::Client {
    let client = carthooks_reqwest::Client::builder()
        .base_url(server.url())
        .oauth(carthooks_client::OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .tracer_provider(tracer)
        .meter_provider(meter)
        .build()
        .expect("client");
    client.initialize_oauth(None).await.expect("sign in");
    client
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_a_consumer_span_and_every_outcome_is_counted() {
    let receiver = OtlpReceiver::start().expect("the OTLP receiver starts");
    let (tracer, meter) = providers(&receiver);

    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue_url = queue(&sqs, "traced-changes", 30).await;
    let server = MockServer::start().expect("mock server");
    server.deliver_changes_to(sqs.clone());
    // The watcher's client exports to the same providers: its calls from the
    // handler are children of the message's span.
    let client = traced_client(&server, &tracer, &meter).await;

    // A change another service produced inside its own trace, and a message
    // that is no change at all.
    let traced_body = json!({
        "version": 1,
        "meta": {"event": "item.updated", "trigger_name": "t", "tenant_id": 1, "trigger_type": "x"},
        "payload": {"id": 424242, "title": "from a traced producer", "fields": {},
                    "created_at": 1, "updated_at": 2, "creator": 7}
    });
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(traced_body.to_string())
        .message_attributes(
            "traceparent",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("not json")
        .send()
        .await
        .unwrap();

    let watcher = Watcher::builder(client.clone(), &queue_url, APP, COLL)
        .sqs_client(sqs.clone())
        .long_poll(Duration::from_secs(1))
        .tracer_provider(&tracer)
        .meter_provider(&meter)
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let run = tokio::spawn(async move {
        watcher
            .run_until(
                move |change: Change| {
                    let counted = Arc::clone(&counted);
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        if change.item_id().get() == 424_242 {
                            // Not the mock's item: the handler fails.
                            return Err::<(), BoxError>("not ours".into());
                        }
                        change.lock().await?;
                        Ok(())
                    }
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await
    });
    eventually(
        Duration::from_secs(10),
        "the watch is registered",
        || async { server.counters().operation("watch_data") >= 1 },
    )
    .await;
    let mut created = Vec::new();
    for n in 0..3 {
        let item = client
            .create_item(APP, COLL, &json!({"n": n}))
            .await
            .unwrap();
        created.push(item.data["id"].as_u64().unwrap());
    }
    eventually(
        Duration::from_secs(60),
        "the three changes and the traced one handed to the handler",
        || async { calls.load(Ordering::SeqCst) >= 4 },
    )
    .await;
    let _ = stop.send(());
    let stats = run.await.unwrap().unwrap();
    tracer.force_flush().unwrap();
    meter.force_flush().unwrap();
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());

    let all = receiver.spans();
    let process: Vec<_> = all
        .iter()
        .filter(|s| s.name == "process traced-changes")
        .collect();
    assert!(
        process
            .iter()
            .all(|s| s.kind == SpanKind::Consumer as i32 && s.parent_span_id.is_empty()),
        "consumer spans, roots"
    );
    assert_eq!(
        attribute(&process[0].attributes, "messaging.system").as_deref(),
        Some("aws_sqs")
    );
    for id in &created {
        let span = process
            .iter()
            .find(|s| attribute(&s.attributes, "carthooks.item.id") == Some(id.to_string()))
            .unwrap_or_else(|| panic!("a span for item {id}"));
        assert_eq!(
            attribute(&span.attributes, "carthooks.watch.event").as_deref(),
            Some("item.created")
        );
        assert!(
            span.links.is_empty(),
            "the mock's messages carry no context"
        );
        let lock = all
            .iter()
            .find(|s| s.parent_span_id == span.span_id && s.name.ends_with("/lock"))
            .expect("the handler's lock call is the message span's child");
        assert_eq!(lock.trace_id, span.trace_id);
    }
    let traced = process
        .iter()
        .find(|s| attribute(&s.attributes, "carthooks.item.id").as_deref() == Some("424242"))
        .expect("the traced message's span");
    assert_eq!(traced.links.len(), 1, "linked to its producer");
    assert_eq!(hex(&traced.links[0].trace_id), PRODUCER_TRACE);
    assert_eq!(hex(&traced.links[0].span_id), PRODUCER_SPAN);
    assert_eq!(
        traced.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        attribute(&traced.attributes, "error.type").as_deref(),
        Some("handler")
    );
    let malformed = process
        .iter()
        .find(|s| attribute(&s.attributes, "error.type").as_deref() == Some("malformed"))
        .expect("the malformed message's span");
    assert!(attribute(&malformed.attributes, "carthooks.item.id").is_none());

    let metrics = receiver.metrics();
    let outcome = |o: &str| {
        points(&metrics, "carthooks.watch.messages")
            .iter()
            .find(|p| p.get("carthooks.watch.outcome") == Some(o))
            .map_or(0, |p| p.count)
    };
    assert_eq!(outcome("handled"), stats.handled, "{stats:?}");
    assert_eq!(outcome("failed"), stats.failed);
    assert_eq!(outcome("malformed"), stats.malformed);
    let consumed: u64 = points(&metrics, "messaging.client.consumed.messages")
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(consumed, stats.received);
    let durations = points(&metrics, "messaging.process.duration");
    assert_eq!(
        shape(&metrics, "messaging.process.duration"),
        Some(("s".into(), "histogram"))
    );
    let failed = durations
        .iter()
        .find(|p| p.get("error.type") == Some("handler"))
        .expect("the failed handler timed");
    assert_eq!(
        failed.get("messaging.destination.name"),
        Some("traced-changes")
    );
    let timed: u64 = durations.iter().map(|p| p.count).sum();
    assert_eq!(timed, stats.handled + stats.failed);
    let queue_lag: u64 = points(&metrics, "carthooks.watch.queue.lag")
        .iter()
        .map(|p| p.count)
        .sum();
    assert!(queue_lag >= stats.received.min(5), "{queue_lag}");
    let change_lag = points(&metrics, "carthooks.watch.change.lag");
    let lagged: u64 = change_lag.iter().map(|p| p.count).sum();
    assert_eq!(
        lagged,
        stats.handled + stats.failed,
        "every change has updated_at"
    );
    // The traced producer's change is 2 s after the epoch: decades late.
    assert!(change_lag.iter().any(|p| p.sum > 1.0e9));
    let in_hand: f64 = points(&metrics, "carthooks.watch.in_hand")
        .iter()
        .map(|p| p.sum)
        .sum();
    assert_eq!(in_hand, 0.0, "nothing left in hand after the run");
    let registrations = points(&metrics, "carthooks.watch.renewals");
    assert!(
        registrations
            .iter()
            .any(|p| p.get("carthooks.watch.outcome") == Some("registered") && p.count >= 1)
    );
    assert!(
        receiver
            .span_scopes()
            .iter()
            .any(|(name, _)| name == "carthooks-watch")
    );
}

/// Under Lambda (`LambdaWatcher::handle`, in process): the same consumer
/// span per record, named for the event source's queue, linked to the
/// producer's `traceparent` or X-Ray `AWSTraceHeader`, the handler's client
/// calls inside it; failures and malformed records marked; the outcome
/// counts and process durations on the same instruments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_batches_get_the_same_spans_and_metrics() {
    use carthooks_watch::lambda::{LambdaWatcher, SqsEvent};

    let receiver = OtlpReceiver::start().expect("the OTLP receiver starts");
    let (tracer, meter) = providers(&receiver);
    let server = MockServer::start().expect("mock server");
    let client = traced_client(&server, &tracer, &meter).await;
    let item = client
        .create_item(APP, COLL, &json!({"n": 1}))
        .await
        .unwrap()
        .data["id"]
        .as_u64()
        .unwrap();
    let change = |id: u64| {
        json!({"version": 1, "meta": {"event": "item.updated"},
               "payload": {"id": id, "fields": {}, "updated_at": 2}})
        .to_string()
    };
    let record = |message_id: &str, body: String, extra: serde_json::Value| {
        let mut r = json!({
            "messageId": message_id,
            "receiptHandle": "AQEB",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764750000000"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lambda-changes",
            "awsRegion": "us-east-1",
        });
        if let Some(attributes) = extra.get("attributes") {
            r["attributes"]
                .as_object_mut()
                .unwrap()
                .extend(attributes.as_object().unwrap().clone());
        }
        if let Some(attributes) = extra.get("messageAttributes") {
            r["messageAttributes"] = attributes.clone();
        }
        r
    };
    const XRAY_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        record("ours", change(item), json!({})),
        record("traced", change(424_242), json!({"messageAttributes": {"traceparent": {
            "stringValue": format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"),
            "stringListValues": [], "binaryListValues": [], "dataType": "String"}}})),
        record("xray", change(424_243), json!({"attributes": {
            "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}})),
        record("malformed", "not json".into(), json!({})),
    ]}))
    .unwrap();
    let watcher = LambdaWatcher::builder(client.clone(), APP, COLL)
        .tracer_provider(&tracer)
        .meter_provider(&meter)
        .build();
    let answer = watcher
        .handle(event, &|change: Change| async move {
            if change.item_id().get() == 424_242 {
                return Err::<(), BoxError>("not ours".into());
            }
            if change.item_id().get() == 424_243 {
                return Ok(());
            }
            change.lock().await?;
            Ok(())
        })
        .await;
    let mut failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["malformed", "traced"]);
    let stats = watcher.stats();
    tracer.force_flush().unwrap();
    meter.force_flush().unwrap();
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());

    let all = receiver.spans();
    let process: Vec<_> = all
        .iter()
        .filter(|s| s.name == "process lambda-changes")
        .collect();
    assert_eq!(process.len(), 4, "a span per record");
    assert!(process.iter().all(|s| s.kind == SpanKind::Consumer as i32));
    let by_id = |id: &str| {
        process
            .iter()
            .find(|s| attribute(&s.attributes, "messaging.message.id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("the span of {id}"))
    };
    let ours = by_id("ours");
    assert!(
        all.iter()
            .any(|s| s.parent_span_id == ours.span_id && s.name.ends_with("/lock")),
        "the handler's lock call inside the message's span"
    );
    let traced = by_id("traced");
    assert_eq!(hex(&traced.links[0].trace_id), PRODUCER_TRACE);
    assert_eq!(
        attribute(&traced.attributes, "error.type").as_deref(),
        Some("handler")
    );
    let xray = by_id("xray");
    assert_eq!(
        hex(&xray.links[0].trace_id),
        XRAY_TRACE,
        "linked from X-Ray"
    );
    assert_eq!(
        attribute(&by_id("malformed").attributes, "error.type").as_deref(),
        Some("malformed")
    );
    let metrics = receiver.metrics();
    let outcome = |o: &str| {
        points(&metrics, "carthooks.watch.messages")
            .iter()
            .find(|p| p.get("carthooks.watch.outcome") == Some(o))
            .map_or(0, |p| p.count)
    };
    assert_eq!(
        (outcome("handled"), outcome("failed"), outcome("malformed")),
        (2, 1, 1)
    );
    assert_eq!((stats.handled, stats.failed, stats.malformed), (2, 1, 1));
    let timed: u64 = points(&metrics, "messaging.process.duration")
        .iter()
        .filter(|p| p.get("messaging.destination.name") == Some("lambda-changes"))
        .map(|p| p.count)
        .sum();
    assert_eq!(timed, 3);
}
