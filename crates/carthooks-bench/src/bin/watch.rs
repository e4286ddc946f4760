//! The watcher's own cost: CPU per message and messages per second through
//! `carthooks_watch::Watcher` (8 handlers, auto acks) against what a user
//! would write instead — an `aws-sdk-sqs` loop that receives 10, parses each
//! body and deletes the 10 with one `DeleteMessageBatch` — both against one
//! canned SQS endpoint on loopback that always has messages (so SQS itself
//! bounds nothing). Sides alternate in rounds; medians.
//!
//! With `--python` it then measures wall-clock events per second of the
//! watcher and of the Python SDK's watcher (carthooks 0.2.4, installed into
//! moto's venv) on moto's SQS server: the same number of change messages put
//! in the queue first, then timed from the first handled to the last.
//!
//! `cargo run --release -p carthooks-bench --bin watch -- [messages] [rounds] [--python]`

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carthooks_bench::cpu_ns;
use carthooks_watch::{BoxError, Change, Watcher};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A change message body, as carthooks-mock sends them.
fn body(id: u64) -> String {
    serde_json::json!({
        "version": 1,
        "meta": {"event": "item.created", "trigger_name": "bench", "tenant_id": 1,
                 "trigger_type": "watch_data"},
        "payload": {"id": id, "title": format!("Order {id}"),
                    "fields": {"f_1001": "EF250920962519", "amount": 100},
                    "created_at": 1_764_400_000, "updated_at": 1_764_400_000, "creator": 7},
    })
    .to_string()
}

/// Answers the SQS JSON protocol (`x-amz-target: AmazonSQS.*`): every
/// `ReceiveMessage` gets as many messages as it asks for, every
/// `DeleteMessageBatch` succeeds for each entry.
async fn sqs_answer(
    req: hyper::Request<hyper::body::Incoming>,
    next_id: Arc<AtomicU64>,
    receive_latency: Duration,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let input: serde_json::Value = req
        .into_body()
        .collect()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok())
        .unwrap_or_default();
    let out = match target.as_str() {
        "AmazonSQS.ReceiveMessage" => {
            if !receive_latency.is_zero() {
                tokio::time::sleep(receive_latency).await;
            }
            let n = input["MaxNumberOfMessages"].as_u64().unwrap_or(1);
            let messages: Vec<_> = (0..n)
                .map(|_| {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    serde_json::json!({
                        "MessageId": format!("m-{id}"),
                        "ReceiptHandle": format!("r-{id}"),
                        "Body": body(id),
                        "Attributes": {"ApproximateReceiveCount": "1"},
                    })
                })
                .collect();
            serde_json::json!({ "Messages": messages })
        }
        "AmazonSQS.DeleteMessageBatch" => {
            let ok: Vec<_> = input["Entries"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| serde_json::json!({"Id": e["Id"]}))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({"Successful": ok, "Failed": []})
        }
        "AmazonSQS.GetQueueAttributes" => {
            serde_json::json!({"Attributes": {"VisibilityTimeout": "30"}})
        }
        _ => serde_json::json!({}),
    };
    Ok(hyper::Response::builder()
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(out.to_string())))
        .expect("response"))
}

/// The canned SQS endpoint on its own thread and runtime; each
/// `ReceiveMessage` answered `receive_latency` late (a real SQS round trip).
fn canned_sqs(receive_latency: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let next_id = Arc::new(AtomicU64::new(1));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let next_id = Arc::clone(&next_id);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        sqs_answer(req, Arc::clone(&next_id), receive_latency)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    format!("http://{addr}")
}

async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = carthooks_watch::aws_config_loader()
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// A client of the fake Carthooks, signed in with client credentials.
async fn signed_in(
    mock: &carthooks_mock::MockServer,
) -> (carthooks_reqwest::Client, carthooks_client::OAuthTokens) {
    let client = carthooks_reqwest::Client::builder()
        .base_url(mock.url())
        .oauth(carthooks_client::OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .build()
        .expect("client");
    let tokens = client.initialize_oauth(None).await.expect("sign in");
    (client, tokens)
}

/// What a user would write instead: receive 10, handle each, delete the 10.
async fn raw_loop(sqs: &aws_sdk_sqs::Client, queue: &str, messages: u64) {
    let mut handled = 0;
    while handled < messages {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .send()
            .await
            .expect("receive");
        let mut entries = Vec::new();
        for (i, m) in out.messages().iter().enumerate() {
            let event: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("body");
            black_box(&event["payload"]["id"]);
            handled += 1;
            entries.push(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("entry"),
            );
        }
        sqs.delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("delete");
    }
}

/// The watcher with 8 handlers until `messages` are handled.
async fn watcher_run(watcher: &Watcher, messages: u64) {
    let handled = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let handler = {
        let handled = Arc::clone(&handled);
        move |change: Change| {
            black_box(change.item_id());
            if handled.fetch_add(1, Ordering::Relaxed) + 1 == messages
                && let Some(tx) = done_tx.lock().expect("lock").take()
            {
                let _ = tx.send(());
            }
            std::future::ready(Ok::<(), BoxError>(()))
        }
    };
    watcher
        .run_until(handler, async {
            let _ = done_rx.await;
        })
        .await
        .expect("watcher");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let messages: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let python = args.iter().any(|a| a == "--python");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = canned_sqs(Duration::ZERO);
    let queue = format!("{endpoint}/123456789012/bench");
    let mock = carthooks_mock::MockServer::start().expect("mock");
    let (sqs, watcher) = rt.block_on(async {
        let sqs = sqs_client(&endpoint).await;
        let (client, _) = signed_in(&mock).await;
        let watcher = Watcher::builder(client, &queue, 1, 2)
            .sqs_client(sqs.clone())
            .concurrency(8)
            .build()
            .await
            .expect("watcher");
        (sqs, watcher)
    });
    // Warm both up.
    rt.block_on(async {
        raw_loop(&sqs, &queue, 1000).await;
        watcher_run(&watcher, 1000).await;
    });
    let (mut w_rate, mut r_rate, mut w_cpu, mut r_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        for side in ["watcher", "raw"] {
            let (cpu, t) = (cpu_ns(), Instant::now());
            rt.block_on(async {
                if side == "watcher" {
                    watcher_run(&watcher, messages).await;
                } else {
                    raw_loop(&sqs, &queue, messages).await;
                }
            });
            let (secs, cpu) = (t.elapsed().as_secs_f64(), (cpu_ns() - cpu) as f64);
            let (rate, per) = (messages as f64 / secs, cpu / messages as f64 / 1000.0);
            if side == "watcher" {
                w_rate.push(rate);
                w_cpu.push(per);
            } else {
                r_rate.push(rate);
                r_cpu.push(per);
            }
        }
    }
    let (wr, rr, wc, rc) = (median(w_rate), median(r_rate), median(w_cpu), median(r_cpu));
    println!("\n### Watcher vs a hand-written aws-sdk-sqs loop, canned SQS endpoint on loopback");
    println!(
        "{rounds} alternating rounds of {messages} messages; medians. CPU is the whole process's (the canned endpoint's included).\n"
    );
    println!("| side | messages/s | CPU µs/message |");
    println!("|---|---:|---:|");
    println!("| watcher, 8 handlers, auto acks | {wr:.0} | {wc:.1} |");
    println!("| raw loop: receive 10, parse, delete batch | {rr:.0} | {rc:.1} |");
    println!("| watcher / raw | {:.2} | {:.2} |", wr / rr, wc / rc);
    pollers_comparison(&rt, &mock, rounds.min(3));
    if python {
        python_comparison(&rt, &mock, 300);
    }
}

/// 64 handlers each taking 10 ms (an API call), a canned SQS answering every
/// receive 20 ms late: one `ReceiveMessage` at a time against `pollers(4)`.
fn pollers_comparison(
    rt: &tokio::runtime::Runtime,
    mock: &carthooks_mock::MockServer,
    rounds: usize,
) {
    let endpoint = canned_sqs(Duration::from_millis(20));
    let queue = format!("{endpoint}/123456789012/pollers");
    let messages = 4_000;
    let watchers: Vec<(usize, Watcher)> = rt.block_on(async {
        let sqs = sqs_client(&endpoint).await;
        let mut out = Vec::new();
        for pollers in [1, 4] {
            let (client, _) = signed_in(mock).await;
            let watcher = Watcher::builder(client, &queue, 1, 2)
                .sqs_client(sqs.clone())
                .concurrency(64)
                .pollers(pollers)
                .build()
                .await
                .expect("watcher");
            out.push((pollers, watcher));
        }
        out
    });
    let run = |watcher: &Watcher, n: u64| {
        rt.block_on(async {
            let handled = Arc::new(AtomicU64::new(0));
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
            let handler = move |change: Change| {
                let (handled, done_tx) = (Arc::clone(&handled), Arc::clone(&done_tx));
                async move {
                    black_box(change.item_id());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == n
                        && let Some(tx) = done_tx.lock().expect("lock").take()
                    {
                        let _ = tx.send(());
                    }
                    Ok::<(), BoxError>(())
                }
            };
            watcher
                .run_until(handler, async {
                    let _ = done_rx.await;
                })
                .await
                .expect("watcher");
        });
    };
    for (_, w) in &watchers {
        run(w, 200);
    }
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut cpus: [Vec<f64>; 2] = Default::default();
    for _ in 0..rounds {
        for (i, (_, w)) in watchers.iter().enumerate() {
            let (cpu, t) = (cpu_ns(), Instant::now());
            run(w, messages);
            rates[i].push(messages as f64 / t.elapsed().as_secs_f64());
            cpus[i].push((cpu_ns() - cpu) as f64 / messages as f64 / 1000.0);
        }
    }
    let [r1, r4] = rates.map(median);
    let [c1, c4] = cpus.map(median);
    println!("\n### One poller against four: 64 handlers of 10 ms, receives answered 20 ms late");
    println!("{rounds} alternating rounds of {messages} messages; medians.\n");
    println!("| pollers | messages/s | CPU µs/message |");
    println!("|---|---:|---:|");
    println!("| 1 | {r1:.0} | {c1:.1} |");
    println!("| 4 | {r4:.0} | {c4:.1} |");
    println!("| 4 / 1 | {:.2} | {:.2} |", r4 / r1, c4 / c1);
}

/// The workspace's `target/`.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    )
}

/// moto's venv (as the watcher's tests make it), with the Python SDK added.
fn python_venv() -> std::path::PathBuf {
    let venv = target_dir().join("moto-venv");
    let run = |cmd: &mut std::process::Command| {
        let status = cmd.status().expect("cannot run python3");
        assert!(status.success(), "{cmd:?} failed");
    };
    if !venv.join("bin/moto_server").exists() {
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "moto[server]",
        ]));
    }
    let has_sdk = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import carthooks.watcher"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        run(std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "carthooks==0.2.4",
        ]));
    }
    venv
}

/// moto on a port of its choosing; killed when dropped.
struct Moto(std::process::Child, String);

impl Moto {
    fn start(venv: &std::path::Path) -> Self {
        use std::io::Read as _;
        let log = std::env::temp_dir().join(format!("moto-bench-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("log");
        let mut child = std::process::Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("moto_server");
        let started = Instant::now();
        loop {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).map(|mut f| f.read_to_string(&mut text));
            if let Some(url) = text
                .split("Running on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                let url = url.to_owned();
                let _ = std::fs::remove_file(&log);
                return Self(child, url);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "moto: {text}");
            assert!(
                child.try_wait().ok().flatten().is_none(),
                "moto exited: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A queue on moto holding `n` change messages.
async fn filled_queue(sqs: &aws_sdk_sqs::Client, name: &str, n: u64) -> String {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create_queue")
        .queue_url
        .expect("url");
    let mut id = 1;
    while id <= n {
        let entries: Vec<_> = (id..=n.min(id + 9))
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body(i))
                    .build()
                    .expect("entry")
            })
            .collect();
        id += entries.len() as u64;
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send_message_batch");
    }
    url
}

/// Wall-clock events/s on moto: this watcher vs the Python SDK's, each
/// handling `n` messages put in its own queue first; timed from the first
/// handled to the last.
fn python_comparison(rt: &tokio::runtime::Runtime, mock: &carthooks_mock::MockServer, n: u64) {
    let venv = python_venv();
    let moto = Moto::start(&venv);
    let (token, rust_rate) = rt.block_on(async {
        let sqs = sqs_client(&moto.1).await;
        let (client, tokens) = signed_in(mock).await;
        let queue = filled_queue(&sqs, "rust", n).await;
        let watcher = Watcher::builder(client, &queue, 1, 2)
            .sqs_client(sqs)
            .build()
            .await
            .expect("watcher");
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done_tx = std::sync::Mutex::new(Some(done_tx));
        let handler = {
            let times = Arc::clone(&times);
            move |_change: Change| {
                let mut times = times.lock().expect("lock");
                times.push(Instant::now());
                if times.len() as u64 == n
                    && let Some(tx) = done_tx.lock().expect("lock").take()
                {
                    let _ = tx.send(());
                }
                std::future::ready(Ok::<(), BoxError>(()))
            }
        };
        watcher
            .run_until(handler, async {
                let _ = done_rx.await;
            })
            .await
            .expect("watcher");
        let times = times.lock().expect("lock");
        let secs = (times[times.len() - 1] - times[0]).as_secs_f64();
        (
            tokens.access_token.secret().to_owned(),
            (n - 1) as f64 / secs,
        )
    });
    let python_queue = rt.block_on(async {
        let sqs = sqs_client(&moto.1).await;
        filled_queue(&sqs, "python", n).await
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/watcher_rate.py");
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(script)
        .arg(n.to_string())
        .arg(&python_queue)
        .env("CARTHOOKS_API_URL", mock.url())
        .env("CARTHOOKS_TOKEN", token)
        .env("AWS_ENDPOINT_URL", &moto.1)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .stderr(std::process::Stdio::null())
        .output()
        .expect("python watcher");
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|r| r.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("the Python watcher said: {text}"));
    let python_rate = (n - 1) as f64 / secs;
    println!(
        "\n### Wall clock on moto's SQS server: {n} change messages each, first handled to last\n"
    );
    println!("| watcher | events/s |");
    println!("|---|---:|");
    println!("| carthooks-watch (8 handlers, 20 s long polls, batched acks) | {rust_rate:.0} |");
    println!(
        "| Python SDK 0.2.4 `Watcher` (one at a time, 1 s polls, 0.1 s sleep per loop) | {python_rate:.0} |"
    );
    println!("| ratio | {:.1}× |", rust_rate / python_rate);
}
