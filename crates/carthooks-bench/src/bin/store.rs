//! What a shared token store costs: calls per second with a fresh token
//! (the hot path, which must not touch the store), and the latency of a
//! refresh, with the store's lease and fenced save against none.
//!
//! 1. **Calls/s**: three async clients against one loopback canned server,
//!    each loaded with a one-hour token set: from a `MemoryTokenStore`, from a
//!    `RedisTokenStore` (a real `redis-server` started here), and with no store
//!    (`access_token`). 64 calls in flight; the sides take turns in slices,
//!    in rotating order; medians of the rounds and each store's ratio to the
//!    memory store.
//! 2. **Refresh latency**: blocking clients against carthooks-mock (a real
//!    token endpoint), each refreshing one after another: no store (in-process
//!    single-flight only), `FileTokenStore` (lease file, `flock`, atomic
//!    replace with `fsync`) and `RedisTokenStore` (Lua lease, load, fenced
//!    save, release). Median and p90 of `refresh_oauth_token`, interleaved.
//!
//! Usage: `store [ROUNDS] [CALLS] [REFRESHES]` (default 7 rounds of 4,000
//! calls; 300 refreshes per side). Needs `redis-server` on the PATH.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carthooks_bench::{APP, COLLECTION, CannedServer, TOKEN, median, page_body, query};
use carthooks_client::{
    FileTokenStore, LeaseAttempt, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenStore,
};
use carthooks_core::AccessToken;
use carthooks_redis::RedisTokenStore;
use carthooks_tests::redis_server::RedisServer;

/// A one-hour set with the canned server's token.
fn fresh_set() -> OAuthTokens {
    let mut tokens = OAuthTokens::from_access_token(AccessToken::new(TOKEN));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokens.expires_at = Some(now + 3_600);
    tokens
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4_000);
    let refreshes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let redis = RedisServer::start();
    hot_path(&redis, rounds, calls);
    refresh_latency(&redis, refreshes);
}

fn hot_path(redis: &RedisServer, rounds: usize, calls: usize) {
    const IN_FLIGHT: usize = 64;
    const SLICES: usize = 10;
    let server = CannedServer::start(page_body(1));
    let base = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let memory = Arc::new(MemoryTokenStore::new());
    memory.save(&fresh_set()).expect("memory store");
    let shared = Arc::new(RedisTokenStore::open(&redis.url(), "bench").expect("redis url"));
    shared.save(&fresh_set()).expect("redis store");
    let with_store = |store: Arc<dyn TokenStore>| {
        carthooks_reqwest::Client::builder()
            .without_env()
            .base_url(&base)
            .token_store(store)
            .build()
            .expect("client")
    };
    let sides = [
        ("memory store", with_store(memory)),
        ("Redis store", with_store(shared)),
        (
            "no store",
            carthooks_reqwest::Client::builder()
                .without_env()
                .base_url(&base)
                .access_token(TOKEN)
                .build()
                .expect("client"),
        ),
    ];
    let run = |client: &carthooks_reqwest::Client, n: usize| -> Duration {
        rt.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (client, q) = (client.clone(), query());
                    tokio::spawn(async move {
                        for _ in 0..n / IN_FLIGHT {
                            black_box(client.get_items(APP, COLLECTION, &q).await.expect("call"));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            started.elapsed()
        })
    };
    for (_, client) in &sides {
        run(client, 640); // warm up pools and the server
    }
    let slice = (calls / SLICES).max(IN_FLIGHT);
    let mut rates = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        let mut times = vec![Duration::ZERO; sides.len()];
        for i in 0..SLICES {
            for k in 0..sides.len() {
                let side = (round + i + k) % sides.len();
                times[side] += run(&sides[side].1, slice);
            }
        }
        for (rate, time) in rates.iter_mut().zip(times) {
            let done = (slice / IN_FLIGHT * IN_FLIGHT * SLICES) as f64;
            rate.push(done / time.as_secs_f64());
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!(
        "calls/s with a fresh token, {IN_FLIGHT} in flight, median of {rounds} rounds \
         (sides interleaved):"
    );
    println!("| client | calls/s | / memory store |");
    println!("|---|---:|---:|");
    for ((name, _), rate) in sides.iter().zip(&medians) {
        println!("| {name} | {rate:.0} | {:.3} |", rate / medians[0]);
    }
}

fn refresh_latency(redis: &RedisServer, refreshes: usize) {
    let server = carthooks_mock::MockServer::start().expect("mock");
    let dir = std::env::temp_dir().join(format!("carthooks-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let client = |store: Option<Arc<dyn TokenStore>>| {
        let builder = carthooks_ureq::Client::builder()
            .without_env()
            .base_url(server.url())
            .oauth(OAuthConfig::new(
                carthooks_mock::DEFAULT_CLIENT_ID,
                carthooks_mock::DEFAULT_CLIENT_SECRET,
            ));
        let builder = match store {
            Some(store) => builder.token_store(store),
            None => builder,
        };
        let client = builder.build().expect("client");
        client.initialize_oauth(None).expect("sign-in");
        client
    };
    let redis_store = RedisTokenStore::open(&redis.url(), "bench-refresh").expect("redis url");
    // The lease works (a check, not a measurement).
    assert!(matches!(
        redis_store
            .try_lease("check", Duration::from_millis(1))
            .expect("redis"),
        LeaseAttempt::Granted(_) | LeaseAttempt::Lapsed(_)
    ));
    let sides = [
        ("no store (no lease)", client(None)),
        (
            "FileTokenStore (lease, flock, fsync)",
            client(Some(Arc::new(FileTokenStore::new(dir.join("tokens.json"))))),
        ),
        (
            "RedisTokenStore (lease)",
            client(Some(Arc::new(redis_store))),
        ),
    ];
    let mut latencies = vec![Vec::new(); sides.len()];
    for i in 0..refreshes {
        for k in 0..sides.len() {
            let side = (i + k) % sides.len();
            let started = Instant::now();
            black_box(sides[side].1.refresh_oauth_token(None).expect("refresh"));
            latencies[side].push(started.elapsed());
        }
    }
    println!(
        "\nrefresh_oauth_token latency, {refreshes} per side one after another (sides interleaved):"
    );
    println!("| store | median | p90 | median / no store |");
    println!("|---|---:|---:|---:|");
    let base = {
        let mut v = latencies[0].clone();
        v.sort();
        v[v.len() / 2]
    };
    for ((name, _), mut v) in sides.iter().zip(latencies) {
        v.sort();
        let (p50, p90) = (v[v.len() / 2], v[v.len() * 9 / 10]);
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.2} |",
            p50.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6,
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
