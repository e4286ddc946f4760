//! The SDK's hot path, without sockets: the token check with a fresh token (one
//! thread, and two threads at once to show readers do not block each other),
//! request building, envelope parsing of a 1-item and a 100-item page, and build +
//! parse of a 1-item call together.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use carthooks_bench::{APP, COLLECTION, page_body, query};
use carthooks_core::{BaseUrl, Endpoint, HttpResponse, parse_api_response};
use criterion::{Criterion, criterion_group, criterion_main};

/// A blocking client that never sends (its transport is never called here),
/// holding an OAuth token set that expires in a day, as after a grant.
type Never =
    fn(carthooks_core::HttpRequest) -> Result<HttpResponse, carthooks_core::TransportError>;

fn client() -> carthooks_client::BlockingClient<carthooks_client::FnTransport<Never>> {
    fn never(
        _: carthooks_core::HttpRequest,
    ) -> Result<HttpResponse, carthooks_core::TransportError> {
        Err(carthooks_core::TransportError::new(
            carthooks_core::TransportErrorKind::Other,
        ))
    }
    let now = carthooks_client::Clock::now(&carthooks_client::SystemClock);
    carthooks_client::BlockingClient::builder()
        .without_env()
        .oauth(carthooks_core::OAuthConfig::new(
            "bench-client",
            "bench-secret",
        ))
        .tokens({
            let mut tokens = carthooks_core::OAuthTokens::from_access_token(
                carthooks_core::AccessToken::new("bench-access-token"),
            );
            tokens.refresh_token = Some(carthooks_core::RefreshToken::new("bench-refresh-token"));
            tokens.expires_at = Some(now + 86_400);
            tokens
        })
        .build_with_transport(carthooks_client::transport_fn(never as Never))
        .expect("client")
}

fn token_check(c: &mut Criterion) {
    let client = client();
    let mut group = c.benchmark_group("token_check_fresh");
    group.bench_function("1_thread", |b| {
        b.iter(|| black_box(client.current_authorization()))
    });
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            black_box(client.current_authorization());
                        }
                    });
                }
            });
            // Per check on one thread, while another checks at the same time.
            start.elapsed()
        })
    });
    group.finish();
}

fn response(body: Vec<u8>) -> HttpResponse {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .expect("response")
}

fn build_and_parse(c: &mut Criterion) {
    let base = BaseUrl::parse("https://api.carthooks.com").expect("base");
    let mut auth = http::HeaderValue::from_static("Bearer bench-access-token");
    auth.set_sensitive(true);
    let q = query();
    c.bench_function("request_build_get_items", |b| {
        b.iter(|| {
            let ep = Endpoint::<Vec<serde_json::Value>>::get_items(APP, COLLECTION, black_box(&q));
            black_box(ep.to_request(&base, Some(&auth)).expect("request"))
        })
    });
    let one = response(page_body(1));
    let hundred = response(page_body(100));
    c.bench_function("parse_page_1_item", |b| {
        b.iter(|| {
            black_box(parse_api_response::<Vec<serde_json::Value>>(black_box(&one)).expect("parse"))
        })
    });
    // The same bytes decoded by hand into the same shape: what any client pays.
    c.bench_function("raw_serde_decode_1_item", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<carthooks_bench::RawEnvelope>(black_box(one.body()))
                    .expect("decode"),
            )
        })
    });
    c.bench_function("parse_page_100_items", |b| {
        b.iter(|| {
            black_box(
                parse_api_response::<Vec<serde_json::Value>>(black_box(&hundred)).expect("parse"),
            )
        })
    });
    c.bench_function("build_and_parse_1_item", |b| {
        b.iter(|| {
            let ep = Endpoint::<Vec<serde_json::Value>>::get_items(APP, COLLECTION, black_box(&q));
            black_box(ep.to_request(&base, Some(&auth)).expect("request"));
            black_box(ep.parse_response(black_box(&one)).expect("parse"))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = token_check, build_and_parse
}
criterion_main!(benches);
