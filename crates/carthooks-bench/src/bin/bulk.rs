//! Bulk jobs: what carthooks-mock costs at scale, export throughput and
//! memory, import against a rate limit.
//!
//! - `bulk mock [ITEMS]`: server-side time per request with ITEMS items in
//!   one collection (in process, no sockets): a page of 100, a lookup by a
//!   field (`$eq`, as `upsert_by` sends), one item by id.
//! - `bulk export [ITEMS] [ROUNDS] [LATENCY_MS]`: items/s of `export`
//!   (4 pages at once, the default, and 8) beside sequential `all_items`
//!   (the same page size, 100), against carthooks-mock in a child process answering every API
//!   request LATENCY_MS late (default 100,000 items, 3 rounds, 20 ms); the
//!   sides alternate. Then the peak RSS of a process exporting 1,000 items
//!   and one exporting 100,000 (each a child of its own, so that nothing but
//!   the export is in it).
//! - `bulk cli-export [ITEMS] [ROUNDS] [LATENCY_MS]`: `carthooks export -o
//!   FILE` (the command line, `target/release/carthooks`, a process each
//!   time: start, token, export, exit) beside the library's `export` stream
//!   writing the same NDJSON file from this process (client built and token
//!   obtained inside the timing too), both with their defaults, against the
//!   same mock (default 100,000 items, 3 rounds each, alternating, 20 ms a
//!   page).
//! - `bulk import [ROWS] [LIMIT]`: ROWS creates (default 10,000) into a mock
//!   limited to LIMIT requests a second per token (default 200): once
//!   learning the rate from the 429s, once with `rate_limit(LIMIT)`. The
//!   share of the limit used (requests that went through ÷ what the server's
//!   bucket allowed over the run: its burst of LIMIT plus LIMIT a second), and
//!   the share of requests answered 429 after the first second.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use carthooks_bench::median;
use carthooks_core::ItemsQuery;
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockConfig,
    MockRequest, MockServer, State,
};

/// The collection with 1,000 items, beside the default one with ITEMS.
const SMALL_COLLECTION: u64 = 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let mut num = |default: u64| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    match mode.as_deref() {
        Some("mock") => mock(num(100_000)),
        Some("export") => {
            let (items, rounds, latency) = (num(100_000), num(3), num(20));
            export(items, rounds, latency);
        }
        Some("import") => {
            let (rows, limit) = (num(10_000), num(200));
            import(rows, limit as u32);
        }
        Some("cli-export") => {
            let (items, rounds, latency) = (num(100_000), num(3), num(20));
            cli_export(items, rounds, latency);
        }
        // Children of `export`.
        Some("serve") => {
            let (items, latency) = (num(100_000), num(20));
            serve(items, latency);
        }
        Some("export-rss") => {
            let url = std::env::args().nth(2).expect("a URL");
            let coll: u64 = std::env::args()
                .nth(3)
                .and_then(|a| a.parse().ok())
                .expect("a collection");
            export_rss(&url, coll);
        }
        _ => eprintln!(
            "usage: bulk mock [ITEMS] | export [ITEMS] [ROUNDS] [LATENCY_MS] | import [ROWS] [LIMIT]"
        ),
    }
}

fn request(
    method: &str,
    path: &str,
    query: &[(&str, String)],
    auth: &str,
    body: &str,
) -> MockRequest {
    MockRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        headers: vec![
            ("authorization".into(), auth.to_owned()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.as_bytes().to_vec(),
        version: "HTTP/1.1".into(),
    }
}

/// Server-side time per request with `items` items in one collection.
fn mock(items: u64) {
    let mut state = State::new(MockConfig::default());
    state.seed_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, items);
    let form = format!(
        "grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}"
    );
    let mut token_request = request("POST", "/oauth/token", &[], "", &form);
    token_request.headers[1].1 = "application/x-www-form-urlencoded".into();
    let answer = state.handle(token_request, 0);
    let token = answer.body["data"]["access_token"]
        .as_str()
        .or(answer.body["access_token"].as_str())
        .expect("a token")
        .to_owned();
    let auth = format!("Bearer {token}");
    let path = format!("/v1/apps/{DEFAULT_APP_ID}/collections/{DEFAULT_COLLECTION_ID}/items");
    let mut time = |name: &str, n: u64, make: &dyn Fn(u64) -> MockRequest| {
        let mut samples = Vec::new();
        for i in 0..n {
            let req = make(i);
            let t = Instant::now();
            let answer = state.handle(req, 0);
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        }
        println!("{name:<28} median {:>9.1} µs", median(samples));
    };
    println!("carthooks-mock, {items} items, server-side time per request:");
    let page_path = path.clone();
    time("list, page of 100", 200, &|i| {
        let start = (i * 7919 * 100) % items.max(1);
        let q = [
            ("pagination[start]", start.to_string()),
            ("pagination[limit]", "100".into()),
        ];
        request("GET", &page_path, &q, &auth, "")
    });
    let eq_path = path.clone();
    time("list, filter $eq (a lookup)", 200, &|i| {
        let n = (i * 7919) % items.max(1);
        let q = [
            ("filters[n][$eq]", n.to_string()),
            ("pagination[start]", "0".into()),
            ("pagination[limit]", "20".into()),
        ];
        request("GET", &eq_path, &q, &auth, "")
    });
    time("get one item by id", 200, &|i| {
        let id = 4 + (i * 7919) % items.max(1);
        request("GET", &format!("{path}/{id}"), &[], &auth, "")
    });
}

/// The mock in this process until stdin closes: `items` items in the
/// default collection, 1,000 in `SMALL_COLLECTION`; prints its URL.
fn serve(items: u64, latency_ms: u64) {
    let server = MockServer::start_with(MockConfig {
        latency: Some(Duration::from_millis(latency_ms)).filter(|d| !d.is_zero()),
        ..MockConfig::default()
    })
    .expect("mock starts");
    {
        let mut state = server.state();
        state.seed_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, items);
        state.seed_items(DEFAULT_APP_ID, SMALL_COLLECTION, 1_000);
    }
    println!("{}", server.url());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

struct Child {
    child: std::process::Child,
    url: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(items: u64, latency_ms: u64) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["serve", &items.to_string(), &latency_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server child starts");
    let mut url = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("the server's URL");
    Child {
        child,
        url: url.trim().to_owned(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn client(url: &str) -> carthooks_reqwest::Client {
    carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(url)
        .oauth(carthooks_core::OAuthConfig::new(
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
        ))
        .build()
        .expect("client")
}

fn export(items: u64, rounds: u64, latency_ms: u64) {
    let server = spawn_server(items, latency_ms);
    let rt = runtime();
    let c = client(&server.url);
    rt.block_on(c.initialize_oauth(None)).expect("token");
    let total = items + 3;
    let query = ItemsQuery::new().limit(100);
    // Sides: sequential all_items, export at 4 (the default), export at 8.
    let mut per_side: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let mut order = [0usize, 1, 2];
        order.rotate_left(round as usize % 3);
        for side in order {
            let started = Instant::now();
            let n = rt.block_on(async {
                let mut n = 0u64;
                if side == 0 {
                    let mut all = c.all_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &query);
                    while let Some(item) = all.next_item().await {
                        item.expect("an item");
                        n += 1;
                    }
                } else {
                    let mut all = c
                        .export(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &query)
                        .concurrency(if side == 1 { 4 } else { 8 });
                    while let Some(item) = all.next_item().await {
                        item.expect("an item");
                        n += 1;
                    }
                }
                n
            });
            assert_eq!(n, total, "every item");
            let per_second = n as f64 / started.elapsed().as_secs_f64();
            per_side[side].push(per_second);
        }
    }
    let [s, e, e8] = per_side.map(median);
    println!(
        "export of {total} items, pages of 100, {latency_ms} ms a page, {rounds} rounds (medians):"
    );
    println!("  sequential all_items        {s:>10.0} items/s");
    println!(
        "  export, 4 pages at once     {e:>10.0} items/s   ({:.2}x)",
        e / s
    );
    println!(
        "  export, 8 pages at once     {e8:>10.0} items/s   ({:.2}x)",
        e8 / s
    );
    // What a user writes with the defaults: all_items with `ItemsQuery::new()`
    // (20 a page) against export with it (100 a page, 4 at once). The first
    // 20,000 items each way, once.
    let defaults = |export: bool| -> f64 {
        let started = Instant::now();
        let n = rt.block_on(async {
            let query = ItemsQuery::new();
            let mut n = 0u64;
            if export {
                let mut all = c.export(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &query);
                while n < 20_000 && all.next_item().await.is_some() {
                    n += 1;
                }
            } else {
                let mut all = c.all_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &query);
                while n < 20_000 && all.next_item().await.is_some() {
                    n += 1;
                }
            }
            n
        });
        n as f64 / started.elapsed().as_secs_f64()
    };
    let (d_seq, d_export) = (defaults(false), defaults(true));
    println!("  with the default query, first 20,000 items:");
    println!("  sequential all_items (20 a page) {d_seq:>7.0} items/s");
    println!(
        "  export (100 a page, 4 at once)   {d_export:>7.0} items/s   ({:.2}x)",
        d_export / d_seq
    );
    // Peak memory of a process that exports 1,000 and of one that exports
    // 100,000 (items counted, not kept), against a server without latency.
    drop(server);
    let server = spawn_server(items, 0);
    let rss = |coll: u64| -> u64 {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(["export-rss", &server.url, &coll.to_string()])
            .output()
            .expect("exporter runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("exporter said {:?}", out))
    };
    let (small, large) = (rss(SMALL_COLLECTION), rss(DEFAULT_COLLECTION_ID));
    println!(
        "  peak RSS exporting 1,000 items {:>6} KiB, {} items {:>6} KiB ({:.2}x)",
        small,
        total,
        large,
        large as f64 / small as f64
    );
}

/// The `carthooks` binary built beside this one (`cargo build --release -p
/// carthooks-cli`).
fn cli_binary() -> std::path::PathBuf {
    let path = std::env::current_exe()
        .expect("own path")
        .with_file_name("carthooks");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p carthooks-cli",
        path.display()
    );
    path
}

fn cli_export(items: u64, rounds: u64, latency_ms: u64) {
    use std::io::Write as _;
    let server = spawn_server(items, latency_ms);
    let cli = cli_binary();
    let total = items + 3;
    let file = std::env::temp_dir().join(format!(
        "carthooks-bench-export-{}.ndjson",
        std::process::id()
    ));
    let rt = runtime();
    let mut lib = Vec::new();
    let mut cmd = Vec::new();
    let lines = |path: &std::path::Path| {
        std::fs::read(path)
            .expect("the export's file")
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
    };
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            let started = Instant::now();
            if side == 0 {
                rt.block_on(async {
                    let c = client(&server.url);
                    c.initialize_oauth(None).await.expect("token");
                    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
                    let mut all =
                        c.export(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &ItemsQuery::new());
                    while let Some(item) = all.next_item().await {
                        serde_json::to_writer(&mut out, &item.expect("an item")).unwrap();
                        out.write_all(b"\n").unwrap();
                    }
                    out.flush().unwrap();
                });
            } else {
                let status = Command::new(&cli)
                    .args([
                        "export",
                        &DEFAULT_APP_ID.to_string(),
                        &DEFAULT_COLLECTION_ID.to_string(),
                        "-o",
                    ])
                    .arg(&file)
                    .arg("-q")
                    .env("CARTHOOKS_API_URL", &server.url)
                    .env("CARTHOOKS_CLIENT_ID", DEFAULT_CLIENT_ID)
                    .env("CARTHOOKS_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
                    .env("CARTHOOKS_CONFIG_DIR", std::env::temp_dir())
                    .status()
                    .expect("carthooks runs");
                assert!(status.success(), "carthooks export failed");
            }
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(lines(&file), total, "every item in the file");
            [&mut lib, &mut cmd][side as usize].push(total as f64 / seconds);
        }
    }
    let _ = std::fs::remove_file(&file);
    let (l, c) = (median(lib), median(cmd));
    println!(
        "export of {total} items to an NDJSON file, {latency_ms} ms a page, {rounds} rounds each (medians, start to end):"
    );
    println!("  library export stream        {l:>10.0} items/s");
    println!(
        "  carthooks export -o FILE     {c:>10.0} items/s   ({:.2}x)",
        c / l
    );
}

/// Exports a whole collection, dropping each item; prints this process's
/// peak RSS (KiB).
fn export_rss(url: &str, coll: u64) {
    let rt = runtime();
    let c = client(url);
    rt.block_on(async {
        c.initialize_oauth(None).await.expect("token");
        let mut all = c.export(DEFAULT_APP_ID, coll, &ItemsQuery::new());
        let mut n = 0u64;
        while let Some(item) = all.next_item().await {
            std::hint::black_box(item.expect("an item"));
            n += 1;
        }
        assert!(n >= 1_000);
    });
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    println!("{hwm}");
}

fn import(rows: u64, limit: u32) {
    let rt = runtime();
    println!("import of {rows} rows into a mock limited to {limit} requests/s:");
    for configured in [false, true] {
        let server = MockServer::start_with(MockConfig {
            rate_limit: Some(limit),
            ..MockConfig::default()
        })
        .expect("mock");
        let c = client(server.url());
        rt.block_on(c.initialize_oauth(None)).expect("token");
        let data = (0..rows).map(
            |i| serde_json::json!({"f_1001": format!("ORD-{i:06}"), "title": format!("order {i}")}),
        );
        let mut import = c.import(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, data);
        if configured {
            import = import.rate_limit(limit);
        }
        let started = Instant::now();
        // The server's counters one second in, taken beside the import.
        let (report, at_one) = std::thread::scope(|scope| {
            let at_one = scope.spawn(|| {
                std::thread::sleep(Duration::from_secs(1));
                server.counters()
            });
            let report = rt.block_on(import.run()).expect("import runs");
            (report, at_one.join().expect("sampler"))
        });
        let elapsed = started.elapsed().as_secs_f64();
        let end = server.counters();
        assert_eq!(report.stats.created, rows, "{:?}", report.stats);
        let path = format!("/v1/apps/{DEFAULT_APP_ID}/collections/{DEFAULT_COLLECTION_ID}/items");
        let requests_after = end.received_at(&path) - at_one.received_at(&path);
        let limited_after = end.rate_limited - at_one.rate_limited;
        // What the server's bucket allowed over the run: its burst (the
        // limit) and the limit for every second.
        let allowed = f64::from(limit) * (1.0 + elapsed);
        let used = (end.received_at(&path) - end.rate_limited) as f64 / allowed;
        println!(
            "  {:<20} {:>6.1} s   {:>5.1} % of the limit used   {:>5.2} % answered 429 after the first second ({} of {})",
            if configured {
                "rate_limit(limit)"
            } else {
                "learned from 429s"
            },
            elapsed,
            used * 100.0,
            limited_after as f64 * 100.0 / requests_after.max(1) as f64,
            limited_after,
            requests_after
        );
    }
}
