//! Real parts for the watcher's tests: moto's SQS server (a Python venv under
//! `target/`, made on first use if `.ci/run` has not made it), started on a
//! free loopback port per test and killed after; carthooks-mock delivering its
//! changes to it; helpers to make queues and read their depth.
//!
//! A moto that cannot be installed or started fails the test and says why:
//! these tests never skip.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use carthooks_mock::MockServer;

/// The workspace's `target/` (tests run with the package as working directory).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// `moto_server` from `CARTHOOKS_MOTO_SERVER`, or from the venv under
/// `target/moto-venv`, made now (under a lock, once) if missing.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("CARTHOOKS_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = target_dir().join("moto-venv");
    let exe = venv.join("bin/moto_server");
    if exe.exists() {
        return exe;
    }
    std::fs::create_dir_all(target_dir()).expect("cannot create target/");
    let lock = target_dir().join("moto-venv.lock");
    let started = Instant::now();
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if exe.exists() => return exe,
            Err(_) => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
                if stale {
                    let _ = std::fs::remove_file(&lock);
                }
                assert!(
                    started.elapsed() < Duration::from_secs(900),
                    "waited 15 min for another test to install moto"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| {
            let _ = std::fs::remove_file(&lock);
            panic!("cannot run {what}: {e} (python3 with venv and pip is needed)")
        });
        if !out.status.success() {
            let _ = std::fs::remove_file(&lock);
            panic!(
                "{what} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    if !exe.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip")).args(["install", "-q", MOTO]),
            "pip install moto",
        );
    }
    let _ = std::fs::remove_file(&lock);
    assert!(
        exe.exists(),
        "moto installed but {} is missing",
        exe.display()
    );
    exe
}

/// Loaded into moto before it serves: where moto's SQS model breaks what
/// SQS promises (lost deletes, FIFO order), mended; see the file.
const MOTO_SQS_FIXES: &str = include_str!("moto_sqs_fixes.py");

/// The moto release the fixes are written for (and `.ci/run` installs).
const MOTO: &str = "moto[server]==5.2.5";

/// A moto SQS server on a loopback port; killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Moto {
    /// Starts moto on a port of its own choosing (port 0: no race with other
    /// tests for a probed port) and waits, up to 60 s, for it to say where it
    /// listens.
    pub fn start() -> Self {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let exe = moto_server();
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("moto-{}-{n}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("cannot create moto's log");
        let err = out.try_clone().expect("cannot clone moto's log");
        // moto_server's own Python, with the fixes of `moto_sqs_fixes.py`
        // loaded first (a moto_server without a python3 beside it runs as
        // it is).
        let python = exe.with_file_name("python3");
        let mut command = if python.exists() {
            let mut c = Command::new(&python);
            c.arg("-c").arg(format!(
                "{MOTO_SQS_FIXES}\nfrom moto.server import main\nmain(['-H', '127.0.0.1', '-p', '0'])\n"
            ));
            c
        } else {
            let mut c = Command::new(&exe);
            c.args(["-H", "127.0.0.1", "-p", "0"]);
            c
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let started = Instant::now();
        let read_log = || {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).map(|mut f| f.read_to_string(&mut text));
            text
        };
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto exited at start ({status}):\n{}", read_log());
            }
            let text = read_log();
            if let Some(url) = text
                .split("Running on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|url| url.starts_with("http://127.0.0.1:"))
            {
                let url = url.to_owned();
                let addr = url.trim_start_matches("http://");
                while TcpStream::connect(addr).is_err() {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "moto never answered"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                return Self { child, url, log };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto did not start within 60 s:\n{}", read_log());
    }

    /// An SQS client for this server (static test credentials).
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = carthooks_watch::aws_config_loader()
            .endpoint_url(&self.url)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await;
        aws_sdk_sqs::Client::new(&config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Makes a queue; returns its URL.
pub async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, visibility_secs: u32) -> String {
    sqs.create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .send()
        .await
        .expect("create_queue")
        .queue_url
        .expect("queue url")
}

/// Makes a queue whose messages go to a new dead-letter queue after
/// `max_receives` receives; returns (queue URL, dead-letter queue URL).
pub async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_secs: u32,
    max_receives: u32,
) -> (String, String) {
    let dlq = queue(sqs, &format!("{name}-dlq"), 30).await;
    let arn = queue_arn(sqs, &dlq).await;
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()})
                .to_string(),
        )
        .send()
        .await
        .expect("create_queue with redrive")
        .queue_url
        .expect("queue url");
    (url, dlq)
}

/// A queue's ARN.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue arn")
}

/// Makes a FIFO queue (`name` ends in `.fifo`), with a redrive policy's JSON
/// if given; returns its URL.
pub async fn fifo_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_secs: u32,
    redrive_policy: Option<String>,
) -> String {
    let mut attributes = std::collections::HashMap::from([
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        ),
    ]);
    if let Some(policy) = redrive_policy {
        attributes.insert(QueueAttributeName::RedrivePolicy, policy);
    }
    sqs.create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .expect("create_queue (FIFO)")
        .queue_url
        .expect("queue url")
}

/// Messages in the queue: (visible, in flight).
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let get = |k: &QueueAttributeName| {
        attrs
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// A mock Carthooks that delivers its changes to `sqs`, and a client of it
/// signed in with client credentials.
pub async fn mock_with_delivery(
    sqs: aws_sdk_sqs::Client,
) -> (MockServer, carthooks_reqwest::Client) {
    let server = MockServer::start().expect("mock server");
    server.deliver_changes_to(sqs);
    let client = carthooks_reqwest::Client::builder()
        .base_url(server.url())
        .oauth(carthooks_client::OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .build()
        .expect("client");
    client.initialize_oauth(None).await.expect("sign in");
    (server, client)
}

/// Registers the watch a watcher on `queue_url` would (its default name),
/// so that the mock queues changes before any watcher runs.
pub async fn register_watch(client: &carthooks_reqwest::Client, queue_url: &str) {
    let registration = carthooks_client::WatchDataRequest::new(
        queue_url.to_owned(),
        format!(
            "watch-{}-{}",
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID
        ),
        carthooks_mock::DEFAULT_APP_ID,
        carthooks_mock::DEFAULT_COLLECTION_ID,
    );
    client
        .start_watch_data(&registration)
        .await
        .expect("start_watch_data");
}

/// Polls `done` every 100 ms until it holds or `limit` passes; says `what` on timeout.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What most tests start with: moto, a queue on it, and a mock Carthooks
/// delivering its changes there, with a signed-in client.
pub struct Fixture {
    /// Keep it: moto stops when it drops.
    pub moto: Moto,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub server: MockServer,
    pub client: carthooks_reqwest::Client,
}

/// A [`Fixture`] whose queue is `name`, with a visibility timeout of `visibility_secs`.
pub async fn fixture(name: &str, visibility_secs: u32) -> Fixture {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue_url = queue(&sqs, name, visibility_secs).await;
    let (server, client) = mock_with_delivery(sqs.clone()).await;
    Fixture {
        moto,
        sqs,
        queue_url,
        server,
        client,
    }
}
