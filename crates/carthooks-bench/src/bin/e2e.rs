//! End-to-end benchmark: the SDK against raw reqwest / raw ureq making the
//! identical `get_items` request (same URL, headers and JSON decoding) to a
//! loopback canned-answer server; then latency of 1,000 concurrent calls with and
//! without a token expiry among them (against carthooks-mock, which has a token
//! endpoint), and 64 and 512 callers calling back to back for 4 s while tokens
//! live 1 s (`E2E_ONLY=callers` runs only that; `E2E_TTL` sets the lifetime).
//!
//! The raw sides are what a user would write instead: `reqwest::Client::new()` and
//! `ureq::Agent::new_with_defaults()`, library defaults, the same request and the
//! same JSON decoding. Each side has its own canned server, so the connections it
//! opened can be counted. Rounds interleave the two sides (alternating which goes
//! first); the table shows median throughput per side, the SDK/raw ratio, the CPU
//! each side used per call (every thread of the process, the side's server
//! included, from `/proc/self/task/*/schedstat`) and the difference, and the
//! connections each side opened. Run with `cargo xtask bench`.
//!
//! Usage: `e2e [ROUNDS] [REQUESTS]` (default 7 rounds of 2,000 requests).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carthooks_bench::{
    APP, COLLECTION, CannedServer, RawEnvelope, TOKEN, cpu_ns, median, page_body, query, raw_url,
};
use carthooks_client::ManualClock;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Row {
    name: &'static str,
    sdk: Side,
    raw: Side,
}

/// One side's medians over the rounds, and the connections its server accepted.
#[derive(Clone, Copy, Default)]
struct Side {
    per_second: f64,
    cpu_us_per_call: f64,
    connections: u64,
}

/// Runs `rounds` rounds of `requests` requests per side. Within a round the sides
/// alternate in 10 slices (the side going first alternates too), so that drift in
/// the machine's load hits both alike. Each closure runs `n` requests and returns
/// the time taken. Returns each side's median requests/second and CPU per call.
fn compare(
    server: &CannedServer,
    rounds: usize,
    requests: usize,
    mut sdk: impl FnMut(usize) -> Duration,
    mut raw: impl FnMut(usize) -> Duration,
) -> (Side, Side) {
    const SLICES: usize = 10;
    let slice = (requests / SLICES).max(1);
    let (mut s, mut r, mut sc, mut rc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut s_conns, mut r_conns) = (0, 0);
    // One side's slice: its time, CPU and the connections it opened.
    let measured = |f: &mut dyn FnMut(usize) -> Duration,
                    time: &mut Duration,
                    cpu: &mut u64,
                    conns: &mut u64| {
        let (c, n) = (cpu_ns(), server.connections());
        *time += f(slice);
        *cpu += cpu_ns() - c;
        *conns += server.connections() - n;
    };
    for round in 0..rounds {
        let (mut ts, mut tr) = (Duration::ZERO, Duration::ZERO);
        let (mut cs, mut cr) = (0u64, 0u64);
        for i in 0..SLICES {
            if (round + i) % 2 == 0 {
                measured(&mut sdk, &mut ts, &mut cs, &mut s_conns);
                measured(&mut raw, &mut tr, &mut cr, &mut r_conns);
            } else {
                measured(&mut raw, &mut tr, &mut cr, &mut r_conns);
                measured(&mut sdk, &mut ts, &mut cs, &mut s_conns);
            }
        }
        let n = (slice * SLICES) as f64;
        s.push(n / ts.as_secs_f64());
        r.push(n / tr.as_secs_f64());
        sc.push(cs as f64 / n / 1e3);
        rc.push(cr as f64 / n / 1e3);
    }
    if std::env::var_os("E2E_VERBOSE").is_some() {
        eprintln!("sdk {s:.0?} {sc:.1?}\nraw {r:.0?} {rc:.1?}");
    }
    let side = |rate, cpu, connections| Side {
        per_second: median(rate),
        cpu_us_per_call: median(cpu),
        connections,
    };
    (side(s, sc, s_conns), side(r, rc, r_conns))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    // One server for both sides: which core its thread shares with the client's
    // decides most of a blocking call's latency (a wake-up on the same core costs
    // microseconds, across cores tens of them), so two servers would measure
    // the scheduler's luck. Connections are counted per slice instead.
    let server = CannedServer::start(page_body(1));
    let base = server.url();
    let url = raw_url(&base);
    let auth = format!("Bearer {TOKEN}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let sdk = carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(&base)
        .access_token(TOKEN)
        .build()
        .expect("sdk client");
    // What a user would write instead: reqwest with its defaults. (This workspace
    // builds reqwest with `rustls-no-provider`, so a user's own client needs a
    // provider installed first, as carthooks-reqwest's docs say.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let raw = reqwest::Client::new();
    let q = query();

    async fn raw_call(raw: &reqwest::Client, url: &str, auth: &str) {
        let resp = raw
            .get(url)
            .header("accept", "*/*")
            .header("content-type", "application/json")
            .header("authorization", auth)
            .send()
            .await
            .expect("raw send");
        assert!(resp.status().is_success());
        let bytes = resp.bytes().await.expect("raw body");
        let envelope: RawEnvelope = serde_json::from_slice(&bytes).expect("raw decode");
        black_box((envelope.data, envelope.meta, envelope.trace_id));
    }

    // Warm up both pools and the server.
    rt.block_on(async {
        for _ in 0..200 {
            black_box(sdk.get_items(APP, COLLECTION, &q).await.expect("sdk call"));
            raw_call(&raw, &url, &auth).await;
        }
    });

    // For profiling (`valgrind --tool=callgrind`, `perf`, `strace -c`): one side
    // only — `sdk` / `raw` with 64 tasks in flight, `sdk-blocking` /
    // `raw-blocking` one call at a time on this thread.
    // `expiry`: only the token-expiry sections at the end; `callers`: only
    // the last.
    match std::env::var("E2E_ONLY").as_deref() {
        Ok("expiry") => {
            expiry_under_load(&rt, rounds);
            short_tokens_many_callers(&rt, &[64, 512]);
            return;
        }
        Ok("callers") => return short_tokens_many_callers(&rt, &[64, 512]),
        _ => {}
    }
    if let Ok(only) = std::env::var("E2E_ONLY").map(|o| o.replace("-blocking", "")) {
        if std::env::var("E2E_ONLY").is_ok_and(|o| o.ends_with("-blocking")) {
            let q = query();
            if only == "sdk" {
                let client = carthooks_ureq::Client::builder()
                    .base_url(&base)
                    .access_token(TOKEN)
                    .build()
                    .expect("sdk blocking client");
                for _ in 0..requests {
                    black_box(client.get_items(APP, COLLECTION, &q).expect("sdk"));
                }
            } else {
                let agent = ureq::Agent::new_with_defaults();
                for _ in 0..requests {
                    let mut resp = agent
                        .get(&url)
                        .header("authorization", &auth)
                        .call()
                        .expect("raw");
                    black_box(resp.body_mut().read_to_vec().expect("body"));
                }
            }
            return;
        }
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (sdk, q, raw, url, auth, only) = (
                        sdk.clone(),
                        q.clone(),
                        raw.clone(),
                        url.clone(),
                        auth.clone(),
                        only.clone(),
                    );
                    tokio::spawn(async move {
                        for _ in 0..requests / 64 {
                            if only == "sdk" {
                                black_box(sdk.get_items(APP, COLLECTION, &q).await.expect("sdk"));
                            } else {
                                raw_call(&raw, &url, &auth).await;
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        });
        return;
    }

    let mut rows = Vec::new();

    let (s, r) = {
        compare(
            &server,
            rounds,
            requests,
            |n| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..n {
                        black_box(sdk.get_items(APP, COLLECTION, &q).await.expect("sdk call"));
                    }
                    t.elapsed()
                })
            },
            |n| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..n {
                        raw_call(&raw, &url, &auth).await;
                    }
                    t.elapsed()
                })
            },
        )
    };
    rows.push(Row {
        name: "async (reqwest), 1 in flight",
        sdk: s,
        raw: r,
    });

    // Four times the requests, so each slice gives every task a dozen calls.
    let (s, r) = {
        compare(
            &server,
            rounds,
            requests * 4,
            |n| {
                let per_task = (n / 64).max(1);
                rt.block_on(async {
                    let t = Instant::now();
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let (sdk, q) = (sdk.clone(), q.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    black_box(
                                        sdk.get_items(APP, COLLECTION, &q).await.expect("sdk"),
                                    );
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    t.elapsed()
                })
            },
            |n| {
                let per_task = (n / 64).max(1);
                rt.block_on(async {
                    let t = Instant::now();
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let (raw, url, auth) = (raw.clone(), url.clone(), auth.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    raw_call(&raw, &url, &auth).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    t.elapsed()
                })
            },
        )
    };
    rows.push(Row {
        name: "async (reqwest), 64 in flight",
        sdk: s,
        raw: r,
    });

    let sdk_blocking = carthooks_ureq::Client::builder()
        .without_env()
        .base_url(&base)
        .access_token(TOKEN)
        .build()
        .expect("sdk blocking client");
    // What a user would write instead: ureq with its defaults.
    let agent = ureq::Agent::new_with_defaults();
    let raw_blocking = |agent: &ureq::Agent| {
        let mut resp = agent
            .get(&url)
            .header("accept", "*/*")
            .header("content-type", "application/json")
            .header("authorization", &auth)
            .call()
            .expect("raw ureq call");
        assert!(resp.status().is_success());
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .expect("raw ureq body");
        let envelope: RawEnvelope = serde_json::from_slice(&bytes).expect("raw decode");
        black_box((envelope.data, envelope.meta, envelope.trace_id));
    };
    for _ in 0..200 {
        black_box(sdk_blocking.get_items(APP, COLLECTION, &q).expect("sdk"));
        raw_blocking(&agent);
    }
    let (s, r) = {
        compare(
            &server,
            rounds,
            requests,
            |n| {
                let t = Instant::now();
                for _ in 0..n {
                    black_box(sdk_blocking.get_items(APP, COLLECTION, &q).expect("sdk"));
                }
                t.elapsed()
            },
            |n| {
                let t = Instant::now();
                for _ in 0..n {
                    raw_blocking(&agent);
                }
                t.elapsed()
            },
        )
    };
    rows.push(Row {
        name: "blocking (ureq), 1 in flight",
        sdk: s,
        raw: r,
    });

    println!("\n### SDK vs raw HTTP client with its defaults, `get_items` (1-item page), loopback");
    println!(
        "{rounds} interleaved rounds of {requests} requests (64 in flight: {}); medians.\n",
        requests * 4
    );
    println!(
        "| scenario | SDK req/s | raw req/s | SDK / raw | CPU µs/call SDK | raw | extra CPU µs/call | connections SDK | raw |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.1} | {:.1} | {:+.1} | {} | {} |",
            row.name,
            row.sdk.per_second,
            row.raw.per_second,
            row.sdk.per_second / row.raw.per_second,
            row.sdk.cpu_us_per_call,
            row.raw.cpu_us_per_call,
            row.sdk.cpu_us_per_call - row.raw.cpu_us_per_call,
            row.sdk.connections,
            row.raw.connections,
        );
    }

    expiry_under_load(&rt, rounds);
    short_tokens_many_callers(&rt, &[64, 512]);
}

/// An async client of the mock's demo OAuth client, the environment unread.
fn mock_client(
    mock: &carthooks_mock::MockServer,
) -> carthooks_client::ClientBuilder<carthooks_reqwest::Client> {
    carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(mock.url())
        .oauth(carthooks_core::OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
}

/// `callers` tasks calling `get_current_user` back to back for 4 s while the
/// mock issues tokens that live 1 s, so every second all of them cross an
/// expiry together: the slowest call and the 99th percentile, per caller
/// count. No caller should wait much longer than one token request.
fn short_tokens_many_callers(rt: &tokio::runtime::Runtime, counts: &[usize]) {
    println!("\n### Callers crossing 1 s token lifetimes (carthooks-mock, async client, 4 s)");
    println!(
        "\n| callers | calls | failed | p50 ms | p99 ms | slowest ms | token requests | connections |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &callers in counts {
        let mock = carthooks_mock::MockServer::start_with(carthooks_mock::MockConfig {
            access_token_ttl: std::env::var("E2E_TTL")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(1),
            ..Default::default()
        })
        .expect("mock");
        let client = mock_client(&mock).build().expect("client");
        let before = mock.counters().token_requests;
        let (mut latencies, failed) = rt.block_on(async {
            client.initialize_oauth(None).await.expect("grant");
            let end = Instant::now() + Duration::from_secs(4);
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        let (mut out, mut failed) = (Vec::new(), 0u64);
                        while Instant::now() < end {
                            let t = Instant::now();
                            failed += u64::from(c.get_current_user().await.is_err());
                            out.push(t.elapsed());
                        }
                        (out, failed)
                    })
                })
                .collect();
            let (mut all, mut failed) = (Vec::new(), 0);
            for task in tasks {
                let (latencies, f) = task.await.expect("task");
                all.extend(latencies);
                failed += f;
            }
            (all, failed)
        });
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {callers} | {} | {failed} | {:.1} | {:.1} | {:.1} | {} | {} |",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap_or(&Duration::ZERO)),
            mock.counters().token_requests - before,
            mock.counters().connections,
        );
    }
}

/// 1,000 concurrent `get_current_user` calls, with a fresh token and with the
/// token expired as they start; latency percentiles and token requests.
fn expiry_under_load(rt: &tokio::runtime::Runtime, rounds: usize) {
    let mock = carthooks_mock::MockServer::start().expect("mock");
    let run = |expire: bool| -> (Duration, Duration, u64) {
        let clock = Arc::new(ManualClock::starting_now());
        let client = mock_client(&mock)
            .clock(clock.clone())
            .build()
            .expect("client");
        rt.block_on(async {
            client.initialize_oauth(None).await.expect("grant");
            // Warm the pool so both scenarios start from open connections.
            let warm: Vec<_> = (0..100)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move { c.get_current_user().await.expect("warm") })
                })
                .collect();
            for w in warm {
                w.await.expect("warm task");
            }
        });
        if expire {
            clock.advance(Duration::from_secs(86_400 + 1));
        }
        let before = mock.counters().token_requests;
        let mut latencies = rt.block_on(async {
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        let t = Instant::now();
                        c.get_current_user().await.expect("call");
                        t.elapsed()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(1000);
            for task in tasks {
                out.push(task.await.expect("task"));
            }
            out
        });
        latencies.sort();
        (
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            mock.counters().token_requests - before,
        )
    };
    let (mut p50f, mut p99f, mut p50e, mut p99e) = (vec![], vec![], vec![], vec![]);
    let mut refreshes = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for expire in order {
            let (p50, p99, tokens) = run(expire);
            if expire {
                p50e.push(p50.as_secs_f64() * 1e3);
                p99e.push(p99.as_secs_f64() * 1e3);
                refreshes.push(tokens);
            } else {
                p50f.push(p50.as_secs_f64() * 1e3);
                p99f.push(p99.as_secs_f64() * 1e3);
            }
        }
    }
    let (p50f, p99f, p50e, p99e) = (median(p50f), median(p99f), median(p50e), median(p99e));
    println!("\n### 1,000 concurrent calls crossing a token expiry (carthooks-mock, async client)");
    println!("{rounds} rounds; medians of each round's percentiles.\n");
    println!("| scenario | p50 ms | p99 ms | token requests per round |");
    println!("|---|---:|---:|---|");
    println!("| fresh token | {p50f:.2} | {p99f:.2} | 0 |");
    println!("| expired at start | {p50e:.2} | {p99e:.2} | {refreshes:?} |");
    println!("| ratio | {:.2} | {:.2} | |", p50e / p50f, p99e / p99f);
}
