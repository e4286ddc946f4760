//! A loopback OTLP/HTTP receiver: what an OpenTelemetry collector is to the
//! SDK's users. It accepts `POST /v1/traces` and `POST /v1/metrics` with
//! protobuf bodies (what `opentelemetry-otlp`'s HTTP exporter sends), decodes
//! them with `opentelemetry-proto` and keeps them, and keeps every raw body
//! too, so that a test can look for secrets in the bytes themselves.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    raw: Vec<u8>,
    /// Requests it could not decode, and why.
    refused: Vec<String>,
}

/// The receiver, on `127.0.0.1:0`, until dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts it.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received::default()));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sink = Arc::clone(&received);
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let (stream, _) = tokio::select! {
                            accepted = listener.accept() => match accepted {
                                Ok(a) => a,
                                Err(_) => continue,
                            },
                            _ = &mut rx => return,
                        };
                        let sink = Arc::clone(&sink);
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let sink = Arc::clone(&sink);
                                async move { Ok::<_, Infallible>(receive(req, &sink).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                })
            })?;
        Ok(Self {
            addr,
            received,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the `OTEL_EXPORTER_OTLP_ENDPOINT` to give an exporter.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().unwrap();
        received
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .cloned()
            .collect()
    }

    /// Every metric received so far (each export of a metric is one entry).
    pub fn metrics(&self) -> Vec<Metric> {
        let received = self.received.lock().unwrap();
        received
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .cloned()
            .collect()
    }

    /// The instrumentation scopes of the spans received (name, version).
    pub fn span_scopes(&self) -> Vec<(String, String)> {
        let received = self.received.lock().unwrap();
        received
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .filter_map(|s| s.scope.as_ref())
            .map(|s| (s.name.clone(), s.version.clone()))
            .collect()
    }

    /// Every byte of every request body received.
    pub fn raw(&self) -> Vec<u8> {
        self.received.lock().unwrap().raw.clone()
    }

    /// Requests it could not decode.
    pub fn refused(&self) -> Vec<String> {
        self.received.lock().unwrap().refused.clone()
    }

    /// Waits up to `timeout` for `ready` to hold of what was received.
    pub fn wait_for(&self, timeout: Duration, ready: impl Fn(&Self) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if ready(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(req: Request<Incoming>, sink: &Mutex<Received>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return answer(400, format!("body: {e}"), sink),
    };
    let mut received = sink.lock().unwrap();
    received.raw.extend_from_slice(&body);
    let decoded = match path.as_str() {
        "/v1/traces" => ExportTraceServiceRequest::decode(body)
            .map(|r| received.traces.push(r))
            .map_err(|e| e.to_string()),
        "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
            .map(|r| received.metrics.push(r))
            .map_err(|e| e.to_string()),
        other => Err(format!("no such path {other}")),
    };
    drop(received);
    match decoded {
        Ok(()) => answer(200, String::new(), sink),
        Err(why) => answer(400, format!("{path}: {why}"), sink),
    }
}

fn answer(status: u16, why: String, sink: &Mutex<Received>) -> Response<Full<Bytes>> {
    if status != 200 {
        sink.lock().unwrap().refused.push(why);
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

/// The SDK's providers exporting OTLP/HTTP to `receiver`, as an application
/// sets them up: the batch span processor and the periodic metric reader.
pub fn providers(
    receiver: &OtlpReceiver,
) -> (
    opentelemetry_sdk::trace::SdkTracerProvider,
    opentelemetry_sdk::metrics::SdkMeterProvider,
) {
    use opentelemetry_otlp::WithExportConfig as _;
    // The exporter's reqwest is built here without a default TLS provider
    // (see carthooks-reqwest's docs); it needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = receiver.endpoint();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("span exporter");
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/metrics"))
        .build()
        .expect("metric exporter");
    (
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .build(),
        opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .build(),
    )
}

/// An attribute's value as text (strings as they are, numbers and bools
/// formatted), or `None` when the span has no such attribute.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(value_text)
}

fn value_text(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// One data point of a histogram or a sum, flattened: its attributes (sorted
/// `key=value`), its count (histograms) or value (sums).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attributes: Vec<String>,
    pub count: u64,
    pub sum: f64,
}

impl Point {
    /// The value of attribute `key`, if the point has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find_map(|a| a.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

/// The data points of every export of `metric`, the last export's first:
/// cumulative metrics grow, so the last export has the totals.
pub fn points(metrics: &[Metric], name: &str) -> Vec<Point> {
    let Some(metric) = metrics.iter().rev().find(|m| m.name == name) else {
        return Vec::new();
    };
    let attrs = |kvs: &[KeyValue]| {
        let mut out: Vec<String> = kvs
            .iter()
            .map(|kv| {
                format!(
                    "{}={}",
                    kv.key,
                    kv.value.as_ref().and_then(value_text).unwrap_or_default()
                )
            })
            .collect();
        out.sort();
        out
    };
    match &metric.data {
        Some(metric::Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| Point {
                attributes: attrs(&p.attributes),
                count: p.count,
                sum: p.sum.unwrap_or_default(),
            })
            .collect(),
        Some(metric::Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| {
                let value = match p.value {
                    Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i),
                    ) => i as f64,
                    Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                            d,
                        ),
                    ) => d,
                    None => 0.0,
                };
                Point {
                    attributes: attrs(&p.attributes),
                    count: value as u64,
                    sum: value,
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The unit and kind of `name`, as exported (`("s", "histogram")`).
pub fn shape(metrics: &[Metric], name: &str) -> Option<(String, &'static str)> {
    let metric = metrics.iter().find(|m| m.name == name)?;
    let kind = match &metric.data {
        Some(metric::Data::Histogram(_)) => "histogram",
        Some(metric::Data::Sum(s)) if s.is_monotonic => "counter",
        Some(metric::Data::Sum(_)) => "up_down_counter",
        Some(metric::Data::Gauge(_)) => "gauge",
        _ => "other",
    };
    Some((metric.unit.clone(), kind))
}
