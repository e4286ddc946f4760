//! What telemetry costs per call.
//!
//! `otel [ROUNDS] [REQUESTS]`, built with `--features otel`: four sides
//! making the same `get_items` call (one in flight, on one current-thread
//! runtime) to a loopback canned-answer server, interleaved in slices like
//! `e2e`:
//!
//! - `raw`: `reqwest::Client::new()`, no telemetry;
//! - `raw + reqwest-tracing`: the same client behind reqwest-middleware with
//!   `reqwest_tracing::TracingMiddleware`, its spans exported through
//!   `tracing-opentelemetry` by the SDK's batch span processor (OTLP/HTTP to a
//!   loopback receiver) — what a user adds to get spans from raw reqwest;
//! - `sdk, no provider`: the SDK with `otel`, no provider installed (the global
//!   no-op one);
//! - `sdk + batch exporter`: the SDK with `otel`, a tracer provider with the
//!   batch span processor and a meter provider with the periodic reader, both
//!   exporting OTLP/HTTP to the loopback receiver.
//!
//! The table gives each side's median throughput and CPU per call (every
//! thread of the process: the exporters' and the receiver's included) and the
//! cost of telemetry: each telemetry side minus its plain side.
//!
//! `otel loop N`: `N` `get_items` calls on the blocking client over an
//! in-memory transport (no socket), nothing printed. Build it with and without
//! `--features otel` and time the two binaries against each other: the
//! difference over `N` is what the feature costs a call with no provider.

use std::hint::black_box;
use std::sync::OnceLock;

use carthooks_bench::{APP, COLLECTION, TOKEN, page_body, query};
use carthooks_core::{HttpRequest, HttpResponse, TransportError};

type Answer = fn(HttpRequest) -> Result<HttpResponse, TransportError>;

/// A canned 1-item page, answered at once.
fn canned(_: HttpRequest) -> Result<HttpResponse, TransportError> {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| page_body(1)).clone();
    Ok(http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_default())
}

fn in_memory_loop(n: usize) {
    let client = carthooks_client::BlockingClient::builder()
        .without_env()
        .base_url("http://127.0.0.1:9")
        .access_token(TOKEN)
        .build_with_transport(carthooks_client::transport_fn(canned as Answer))
        .expect("client");
    let q = query();
    for _ in 0..n {
        black_box(client.get_items(APP, COLLECTION, &q).expect("call"));
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("loop") {
        let n = args.nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
        return in_memory_loop(n);
    }
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    #[cfg(feature = "otel")]
    sides::run(rounds, requests);
    #[cfg(not(feature = "otel"))]
    {
        let _ = (rounds, requests);
        eprintln!("build with --features otel for the side-by-side figures (or run `otel loop N`)");
        std::process::exit(2);
    }
}

#[cfg(feature = "otel")]
mod sides {
    use super::*;
    use carthooks_bench::{CannedServer, RawEnvelope, median, raw_url};
    use opentelemetry::trace::TracerProvider as _;
    use std::time::{Duration, Instant};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Runs `f` for `n` calls; its time and the process's CPU meanwhile.
    fn measured(f: &mut dyn FnMut(usize), n: usize) -> (Duration, u64) {
        let cpu = carthooks_bench::cpu_ns();
        let start = Instant::now();
        f(n);
        (start.elapsed(), carthooks_bench::cpu_ns() - cpu)
    }

    /// A side: its name, and what runs `n` of its calls.
    type Side<'a> = (&'static str, Box<dyn FnMut(usize) + 'a>);

    pub(super) fn run(rounds: usize, requests: usize) {
        let server = CannedServer::start(page_body(1));
        let base = server.url();
        let url = raw_url(&base);
        let auth = format!("Bearer {TOKEN}");
        let receiver = carthooks_tests::otlp::OtlpReceiver::start().expect("OTLP receiver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let q = query();

        let raw = reqwest::Client::new();
        // Two sets of the providers an application sets up: one for each
        // exporting side.
        let (traced_provider, _) = carthooks_tests::otlp::providers(&receiver);
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(
                tracing_opentelemetry::layer().with_tracer(traced_provider.tracer("reqwest")),
            ));
        let traced = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(reqwest_tracing::TracingMiddleware::default())
            .build();
        let plain_sdk = carthooks_reqwest::Client::builder()
            .without_env()
            .base_url(&base)
            .access_token(TOKEN)
            .build()
            .expect("sdk");
        let (sdk_tracer, sdk_meter) = carthooks_tests::otlp::providers(&receiver);
        let exported_sdk = carthooks_reqwest::Client::builder()
            .without_env()
            .base_url(&base)
            .access_token(TOKEN)
            .tracer_provider(&sdk_tracer)
            .meter_provider(&sdk_meter)
            .build()
            .expect("sdk");

        let decode = |bytes: &[u8]| {
            let envelope: RawEnvelope = serde_json::from_slice(bytes).expect("decode");
            black_box((envelope.data, envelope.meta, envelope.trace_id));
        };
        let mut sides: Vec<Side<'_>> = vec![
            (
                "raw reqwest",
                Box::new(|n| {
                    rt.block_on(async {
                        for _ in 0..n {
                            let resp = raw
                                .get(&url)
                                .header("accept", "*/*")
                                .header("content-type", "application/json")
                                .header("authorization", &auth)
                                .send()
                                .await
                                .expect("send");
                            decode(&resp.bytes().await.expect("body"));
                        }
                    })
                }),
            ),
            (
                "raw reqwest + reqwest-tracing (batch exporter)",
                Box::new(|n| {
                    tracing::dispatcher::with_default(&dispatch, || {
                        rt.block_on(async {
                            for _ in 0..n {
                                let resp = traced
                                    .get(&url)
                                    .header("accept", "*/*")
                                    .header("content-type", "application/json")
                                    .header("authorization", &auth)
                                    .send()
                                    .await
                                    .expect("send");
                                decode(&resp.bytes().await.expect("body"));
                            }
                        })
                    })
                }),
            ),
            (
                "SDK, otel, no provider",
                Box::new(|n| {
                    rt.block_on(async {
                        for _ in 0..n {
                            black_box(plain_sdk.get_items(APP, COLLECTION, &q).await.expect("sdk"));
                        }
                    })
                }),
            ),
            (
                "SDK, otel + batch exporter",
                Box::new(|n| {
                    rt.block_on(async {
                        for _ in 0..n {
                            black_box(
                                exported_sdk
                                    .get_items(APP, COLLECTION, &q)
                                    .await
                                    .expect("sdk"),
                            );
                        }
                    })
                }),
            ),
        ];

        const SLICES: usize = 10;
        let slice = (requests / SLICES).max(1);
        let mut rates = vec![Vec::new(); sides.len()];
        let mut cpus = vec![Vec::new(); sides.len()];
        for round in 0..rounds {
            let mut time = vec![Duration::ZERO; sides.len()];
            let mut cpu = vec![0u64; sides.len()];
            for i in 0..SLICES {
                // Every side goes first as often as the others.
                for k in 0..sides.len() {
                    let s = (k + round + i) % sides.len();
                    let (t, c) = measured(&mut *sides[s].1, slice);
                    time[s] += t;
                    cpu[s] += c;
                }
            }
            let n = (slice * SLICES) as f64;
            for s in 0..sides.len() {
                rates[s].push(n / time[s].as_secs_f64());
                cpus[s].push(cpu[s] as f64 / n / 1e3);
            }
        }
        let _ = sdk_tracer.force_flush();
        let _ = sdk_meter.force_flush();
        let _ = traced_provider.force_flush();
        let rate: Vec<f64> = rates.into_iter().map(median).collect();
        let cpu: Vec<f64> = cpus.into_iter().map(median).collect();
        println!(
            "\n### Telemetry per call, `get_items` (1-item page), loopback, 1 in flight\n\
             {rounds} interleaved rounds of {requests} requests per side; medians. CPU: every thread of the process.\n"
        );
        println!("| side | req/s | CPU µs/call | telemetry's extra CPU µs/call |");
        println!("|---|---:|---:|---:|");
        let extra = [
            "",
            &format!("{:+.1}", cpu[1] - cpu[0]),
            "",
            &format!("{:+.1}", cpu[3] - cpu[2]),
        ];
        for s in 0..sides.len() {
            println!(
                "| {} | {:.0} | {:.1} | {} |",
                sides[s].0, rate[s], cpu[s], extra[s]
            );
        }
        println!(
            "\nspans received by the loopback collector: {}",
            receiver.spans().len()
        );
    }
}
