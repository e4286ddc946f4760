//! Shared parts of the benchmarks: a canned-answer HTTP server and the request
//! every side makes.
//!
//! The end-to-end benchmark uses this minimal server rather than carthooks-mock:
//! the mock takes a lock and serializes JSON for every answer, which would weigh on
//! both sides equally but blur the ratio. The canned server answers every request
//! with the same pre-built bytes.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The app, collection and query every side asks for.
pub const APP: u64 = 3_883_548_539;
pub const COLLECTION: u64 = 3_883_549_661;
pub const TOKEN: &str = "bench-access-token";

/// A one-item page, as the server answers.
pub fn page_body(items: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            serde_json::json!({
                "id": 1000 + i, "title": format!("Order {i}"),
                "fields": {"f_1001": format!("EF25092096{i:04}"), "amount": i * 100, "paid": i % 2 == 0},
                "created_at": 1_700_000_000 + i, "updated_at": 1_700_000_100 + i,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "data": items, "error": null, "meta": {"total": items.len(), "start": 0, "limit": 20},
        "traceId": "bench-trace",
    }))
    .expect("serializable")
}

/// An HTTP/1.1 server on `127.0.0.1:0` answering every request with `body`, on its
/// own thread and runtime (one worker per core would compete with the clients).
pub struct CannedServer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicU64>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl CannedServer {
    pub fn start(body: Vec<u8>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let body = Bytes::from(body);
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let _ = stream.set_nodelay(true);
                            let body = body.clone();
                            tokio::spawn(async move {
                                let service = service_fn(move |_req| {
                                    let body = body.clone();
                                    async move {
                                        Ok::<_, std::convert::Infallible>(
                                            hyper::Response::builder()
                                                .header("content-type", "application/json")
                                                .body(Full::new(body))
                                                .expect("response"),
                                        )
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            addr,
            accepted,
            _shutdown: tx,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The envelope a hand-written client decodes into: the same shape the SDK
/// decodes (`data` as JSON values, `meta`, `traceId`).
#[derive(serde::Deserialize)]
pub struct RawEnvelope {
    pub data: Vec<serde_json::Value>,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
    #[serde(default, rename = "traceId")]
    pub trace_id: Option<String>,
}

/// The query every side sends.
pub fn query() -> carthooks_core::ItemsQuery {
    carthooks_core::ItemsQuery::new().limit(20).start(0).filter(
        "f_1001",
        carthooks_core::FilterOp::Eq,
        "EF250920962519",
    )
}

/// The full URL of that query, as a hand-written client would format it.
pub fn raw_url(base: &str) -> String {
    format!(
        "{base}/v1/apps/{APP}/collections/{COLLECTION}/items?filters%5Bf_1001%5D%5B%24eq%5D=EF250920962519&pagination%5Bstart%5D=0&pagination%5Blimit%5D=20"
    )
}

/// CPU time used by this process's threads so far, in nanoseconds (the sum of
/// `/proc/self/task/*/schedstat`; 0 where that does not exist). Threads that
/// exited are not counted: the benchmark's threads live for the whole run.
pub fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Shared so the async tasks can clone it cheaply.
pub type Shared<T> = Arc<T>;
