//! Traces and metrics from the SDK, on OpenTelemetry's HTTP client
//! conventions (feature `otel`).
//!
//! `cargo run --example observability --features otel` runs against an
//! embedded fake Carthooks server that answers one call 503 first, so the
//! trace shows a token request, a failed attempt, the backoff and the resend.
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set (e.g. `http://localhost:4318`, a
//! collector or Jaeger) spans and metrics go there over OTLP/HTTP; otherwise
//! they are printed to stdout.
//!
//! With `CARTHOOKS_WATCH_QUEUE_URL` set too (an SQS queue; `AWS_ENDPOINT_URL`
//! for a local server such as `moto_server`, as in the `watch` example), a
//! watcher also runs: the fake server delivers a new item's change to the
//! queue, and the trace shows the message's `process {queue}` span with the
//! handler's `lock` call inside it; the watcher's metrics (outcomes, lag,
//! handler duration) are exported with the client's.

use std::time::Duration;

use carthooks::watch::{BoxError, Change, Watcher};
use carthooks::{Client, ItemsQuery, OAuthConfig};
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The application's providers: OTLP/HTTP to the endpoint, or stdout.
fn providers() -> Result<(SdkTracerProvider, SdkMeterProvider), Box<dyn std::error::Error>> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("carthooks-observability-example")
        .build();
    let tracer = SdkTracerProvider::builder().with_resource(resource.clone());
    let meter = SdkMeterProvider::builder().with_resource(resource);
    Ok(match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) => {
            println!("exporting OTLP/HTTP to {endpoint}");
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()?;
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')))
                .build()?;
            (
                tracer.with_batch_exporter(spans).build(),
                meter.with_periodic_exporter(metrics).build(),
            )
        }
        Err(_) => {
            println!("OTEL_EXPORTER_OTLP_ENDPOINT is not set: printing spans and metrics");
            (
                tracer
                    .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
                    .build(),
                meter
                    .with_periodic_exporter(opentelemetry_stdout::MetricExporter::default())
                    .build(),
            )
        }
    })
}

/// Runs a watcher until it has handled the change of one new item.
async fn watch_one_change(
    server: &carthooks_mock::MockServer,
    client: &Client,
    queue_url: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let sqs = carthooks::watch::sqs_client_from_env().await;
    server.deliver_changes_to(sqs.clone());
    let (app, collection) = (
        carthooks_mock::DEFAULT_APP_ID,
        carthooks_mock::DEFAULT_COLLECTION_ID,
    );
    // The global providers, as the client's: its calls from the handler are
    // children of the message's span.
    let watcher = Watcher::builder(client.clone(), queue_url, app, collection)
        .sqs_client(sqs)
        .long_poll(Duration::from_secs(1))
        .build()
        .await?;
    let (handled, mut done) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        watcher
            .run_until(
                move |change: Change| {
                    let handled = handled.clone();
                    async move {
                        change.lock().await?;
                        change.unlock().await?;
                        println!("watcher: handled the change of item {}", change.item_id());
                        let _ = handled.send(true);
                        Ok::<(), BoxError>(())
                    }
                },
                async move {
                    let _ = done.wait_for(|d| *d).await;
                },
            )
            .await
    });
    // The watch is registered when the watcher starts: only then is a new
    // item's change delivered.
    while server.counters().operation("watch_data") == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .create_item(app, collection, &serde_json::json!({"title": "traced"}))
        .await?;
    let stats = tokio::time::timeout(Duration::from_secs(60), run).await???;
    println!(
        "watcher: {} handled, {} received",
        stats.handled, stats.received
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The OTLP exporter's own HTTP client is reqwest, which this workspace
    // builds without a default TLS provider (see carthooks-reqwest's docs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (tracer_provider, meter_provider) = providers()?;
    // Installed globally before the client is built, the client picks them
    // up; `Client::builder().tracer_provider(..).meter_provider(..)` would
    // give them to it alone.
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    opentelemetry::global::set_meter_provider(meter_provider.clone());

    let server = carthooks_mock::MockServer::start()?;
    let client = Client::builder()
        .base_url(server.url())
        .oauth(OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .retry_policy(carthooks::RetryPolicy::default().with_base_delay(Duration::from_millis(50)))
        .propagate_trace_context(true)
        .build()?;

    // The application's own span: the SDK's calls become its children.
    let app = opentelemetry::global::tracer("observability-example");
    let span = app.start("sync-collection");
    let cx = opentelemetry::Context::current_with_span(span);
    let _in_span = cx.clone().attach();

    client.initialize_oauth(None).await?;
    server.inject(
        carthooks_mock::Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
        Some("/v1/apps"),
    );
    let page = client
        .get_items(
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
            &ItemsQuery::new().limit(5),
        )
        .await?;
    println!("{} items, after a 503 and a retry", page.data.len());
    cx.span().end();
    drop(_in_span);

    if let Ok(queue_url) = std::env::var("CARTHOOKS_WATCH_QUEUE_URL") {
        watch_one_change(&server, &client, &queue_url).await?;
    }

    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    Ok(())
}
