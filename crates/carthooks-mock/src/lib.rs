//! A stateful fake Carthooks server, for tests, examples and benchmarks.
//!
//! It speaks HTTP/1.1 on a loopback port with the real wire format: the OAuth token
//! endpoint with all three grants (client authentication, user-token delegation,
//! single-use authorization codes bound to their redirect URI and PKCE challenge,
//! rotating refresh tokens), the authorize-code endpoint, `/v1/me`, and items
//! list/create, all answering in the `{"data", "error", "traceId", "meta"}`
//! envelope; and the HTML sign-in and consent page a browser is sent to
//! ([`MockServer::authorize_page`]).
//!
//! As an authorization server it refuses what a real one refuses, so that tests
//! of your own find the same: redirect URIs a client did not register
//! ([`MockClient`]) get an error page and never a redirect, `plain` PKCE is
//! refused, and codes and tokens are 32 random bytes each (a fixed sequence only
//! with [`MockConfig::secret_seed`]); [`MockClient`] states the rules.
//!
//! ```
//! let server = carthooks_mock::MockServer::start()?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.counters().requests, 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The server runs on its own thread with its own runtime, so it serves blocking
//! and async clients alike; dropping the handle stops it. Semantics live in
//! [`State`], which is usable without sockets.
//!
//! Watches (`POST /v1/watch-data`) are kept by name until their `age` runs out
//! (registering a name again renews it); creating, updating or deleting an item
//! of a watched collection (matching the watch's filters) queues a change
//! message in Carthooks' format. With the `sqs` feature,
//! [`MockServer::deliver_changes_to`] sends them to each watch's queue through
//! the SQS API before the API call is answered; without it they are counted
//! and dropped ([`State::take_changes`] gives them to socket-less users).
//!
//! [`MockServer::start_tls`] serves the same over TLS (rustls) with a
//! certificate you give it, offering HTTP/2 and HTTP/1.1 by ALPN; each
//! [`MockRequest`] records the HTTP version it arrived in.

mod authz;
mod signin;
mod state;

pub use authz::{DEFAULT_REDIRECT_URIS, MockClient};
pub use signin::AUTHORIZE_PATH;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Decodes an `application/x-www-form-urlencoded` string (a token request's
/// body, a query) into pairs, with the `form_urlencoded` crate.
pub fn decode_form(input: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(input.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub use state::{
    ChangeMessage, Counters, DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_COLLECTION_ID, DEFAULT_USER_TOKEN, Fault, MockConfig, MockRequest, MockResponse,
    SIGN_IN_USERS, State,
};

/// Seconds since the Unix epoch, by the system clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Largest request body the server reads.
const MAX_BODY: usize = 1 << 20;

/// A certificate chain and its private key, DER-encoded, for
/// [`MockServer::start_tls`].
#[derive(Clone)]
pub struct MockTls {
    /// The server's certificate first, then any intermediates.
    pub cert_chain: Vec<Vec<u8>>,
    /// The certificate's private key (PKCS#8).
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for MockTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockTls")
            .field("certificates", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// A running fake server. Dropping it stops the server.
pub struct MockServer {
    addr: SocketAddr,
    url: String,
    state: Arc<Mutex<State>>,
    #[cfg_attr(not(feature = "sqs"), allow(dead_code))]
    delivery: Arc<Delivery>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts a server with the default knobs on `127.0.0.1:0`.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(MockConfig::default())
    }

    /// Starts a server with `config` on `127.0.0.1:0`.
    pub fn start_with(config: MockConfig) -> std::io::Result<Self> {
        Self::bind(([127, 0, 0, 1], 0).into(), config)
    }

    /// Starts a server on `addr`.
    pub fn bind(addr: SocketAddr, config: MockConfig) -> std::io::Result<Self> {
        Self::bind_inner(addr, config, None)
    }

    /// Starts a TLS server with `tls` on `127.0.0.1:0`, offering HTTP/2 and
    /// HTTP/1.1 by ALPN. Its [`url`](Self::url) is `https://localhost:PORT`:
    /// issue the certificate for `localhost`.
    pub fn start_tls(config: MockConfig, tls: MockTls) -> std::io::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = tls
            .cert_chain
            .into_iter()
            .map(rustls::pki_types::CertificateDer::from)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(tls.private_key.into());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(std::io::Error::other)?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        Self::bind_inner(([127, 0, 0, 1], 0).into(), config, Some(acceptor))
    }

    fn bind_inner(
        addr: SocketAddr,
        config: MockConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::new(config)));
        let delivery = Arc::new(Delivery::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_state = Arc::clone(&state);
        let thread_delivery = Arc::clone(&delivery);
        let url = match &tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let thread = std::thread::Builder::new()
            .name("carthooks-mock".into())
            .spawn(move || {
                runtime.block_on(serve(listener, thread_state, thread_delivery, tls, rx))
            })?;
        Ok(Self {
            addr,
            url,
            state,
            delivery,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Base URL of the server (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the sign-in and consent page a browser is sent to
    /// (`{url}/oauth/authorize`): pass it to `carthooks::authorize_url`.
    pub fn authorize_page(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.url)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Locks the state: read counters, change knobs, seed data.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.state().counters().clone()
    }

    /// Sets [`MockConfig::latency`] from now on (`None`: none).
    pub fn set_latency(&self, latency: Option<std::time::Duration>) {
        self.state().config.latency = latency;
    }

    /// Sets [`MockConfig::rate_limit`] from now on (`None`: no limit).
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.state().config.rate_limit = per_second;
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_access_token_ttl(&self, seconds: u64) {
        self.state().config.access_token_ttl = seconds;
    }

    /// Turns refresh-token rotation on or off.
    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.state().config.rotate_refresh_tokens = on;
    }

    /// Turns refresh-token reuse detection on or off (see
    /// [`MockConfig::reuse_detection`]).
    pub fn set_reuse_detection(&self, on: bool) {
        self.state().config.reuse_detection = on;
    }

    /// Invalidates every token issued so far.
    pub fn revoke_all_tokens(&self) {
        self.state().revoke_all_tokens();
    }

    /// Applies `fault` to the next `times` requests whose path starts with
    /// `path_prefix` (every path when `None`).
    pub fn inject(&self, fault: Fault, times: u32, path_prefix: Option<&str>) {
        self.state().inject(fault, times, path_prefix);
    }

    /// Closes the next `n` connections as soon as they are accepted, before
    /// reading anything.
    pub fn drop_next_connections(&self, n: u32) {
        self.state().drop_next_connections(n);
    }

    /// Invalidates every access token issued so far; refresh tokens stay valid.
    pub fn revoke_access_tokens(&self) {
        self.state().revoke_access_tokens();
    }

    /// Sends every change message from now on to its watch's SQS queue through
    /// `sqs`, before the API call that caused it is answered (three attempts;
    /// [`Counters::changes_delivered`] and
    /// [`Counters::change_delivery_failures`] count the outcomes). To a FIFO
    /// queue (a name ending in `.fifo`) each goes with `MessageGroupId` = the
    /// item's id, so an item's changes arrive in order, and
    /// `MessageDeduplicationId` = `{item}-{revision}`.
    #[cfg(feature = "sqs")]
    pub fn deliver_changes_to(&self, sqs: aws_sdk_sqs::Client) {
        *self
            .delivery
            .sqs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sqs);
    }

    /// Blocks until the server stops (for the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where change messages go: nowhere, or SQS (the `sqs` feature).
#[derive(Default)]
struct Delivery {
    #[cfg(feature = "sqs")]
    sqs: Mutex<Option<aws_sdk_sqs::Client>>,
}

impl Delivery {
    /// Sends `changes` in order; returns when each was accepted or refused
    /// three times.
    async fn send(&self, state: &Mutex<State>, changes: Vec<ChangeMessage>) {
        if changes.is_empty() {
            return;
        }
        #[cfg(feature = "sqs")]
        {
            let sqs = self
                .sqs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let Some(sqs) = sqs else { return };
            let (mut delivered, mut failed) = (0, 0);
            for change in changes {
                let mut sent = false;
                for attempt in 0..3u32 {
                    if attempt > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    let mut message = sqs
                        .send_message()
                        .queue_url(&change.queue_url)
                        .message_body(&change.body);
                    if change.queue_url.ends_with(".fifo") {
                        // One group per item: its changes in order; one
                        // change once, however often it is sent.
                        message = message
                            .message_group_id(change.item_id.to_string())
                            .message_deduplication_id(format!(
                                "{}-{}",
                                change.item_id, change.revision
                            ));
                    }
                    let result = message.send().await;
                    if result.is_ok() {
                        sent = true;
                        break;
                    }
                }
                if sent {
                    delivered += 1;
                } else {
                    failed += 1;
                }
            }
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .count_deliveries(delivered, failed);
        }
        #[cfg(not(feature = "sqs"))]
        let _ = (state, changes);
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    delivery: Arc<Delivery>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if state.lock().unwrap_or_else(PoisonError::into_inner).take_connection_drop() {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let delivery = Arc::clone(&delivery);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        handle(Arc::clone(&state), Arc::clone(&delivery), req)
                    });
                    let Some(acceptor) = tls else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        return;
                    };
                    // A failed handshake (an untrusted certificate) just ends it.
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                });
            }
        }
    }
}

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// 429 from the rate limit: `Retry-After` in whole seconds (at least 1), an
/// error envelope as the API's.
fn rate_limited(wait: std::time::Duration) -> hyper::Response<Full<Bytes>> {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let body = serde_json::json!({
        "data": null,
        "error": {"code": "RATE_LIMITED", "message": "too many requests"},
        "traceId": "mock-rate-limited",
    });
    hyper::Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .header("retry-after", seconds.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn canned(status: u16, content_type: &str, body: &'static [u8]) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap_or_default()
}

/// The sign-in page (see the `signin` module): its fields come in the query
/// (GET) or as a form (POST).
fn sign_in_page(state: &Mutex<State>, request: &MockRequest) -> hyper::Response<Full<Bytes>> {
    let mut fields = request.query.clone();
    if request.method == "POST" {
        fields.extend(decode_form(&String::from_utf8_lossy(&request.body)));
    }
    let now = unix_now();
    let page = signin::answer(
        &mut state.lock().unwrap_or_else(PoisonError::into_inner),
        &request.method,
        &fields,
        now,
    );
    let mut builder = hyper::Response::builder()
        .status(page.status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-frame-options", "DENY");
    if let Some(location) = page.location {
        builder = builder.header("location", location);
    }
    builder
        .body(Full::new(Bytes::from(page.html)))
        .unwrap_or_default()
}

async fn handle(
    state: Arc<Mutex<State>>,
    delivery: Arc<Delivery>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return Ok(hyper::Response::builder()
                .status(413)
                .body(Full::new(Bytes::from_static(b"request body too large")))
                .unwrap_or_default());
        }
    };
    let request = MockRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(decode_form).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        version: format!("{:?}", parts.version),
    };
    if request.path == AUTHORIZE_PATH {
        return Ok(sign_in_page(&state, &request));
    }
    let (fault, latency) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.arrive(&request.path), state.config.latency)
    };
    // Counts the request out however it ends (answered, dropped, cancelled).
    struct Departs(Arc<Mutex<State>>);
    impl Drop for Departs {
        fn drop(&mut self) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .depart();
        }
    }
    let _departs = Departs(Arc::clone(&state));
    if let Some(latency) = latency.filter(|_| request.path != "/oauth/token") {
        tokio::time::sleep(latency).await;
    }
    let mut drop_after_handling = false;
    let mut delay = None;
    match fault {
        None => {}
        Some(Fault::Delay(d)) => delay = Some(d),
        Some(Fault::SlowStart(d)) => tokio::time::sleep(d).await,
        Some(Fault::DropAfterRead) => return Err(Dropped),
        Some(Fault::DropAfterHandling) => drop_after_handling = true,
        Some(Fault::TruncatedBody) => {
            return Ok(canned(
                200,
                "application/json",
                br#"{"data":{"user_id":7,"usern"#,
            ));
        }
        Some(Fault::MalformedBody) => {
            return Ok(canned(200, "application/json", br#"{"data": [1, 2,, ]}"#));
        }
        Some(Fault::HtmlErrorPage) => {
            return Ok(canned(
                502,
                "text/html",
                b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
            ));
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let body = serde_json::json!({
                "data": null,
                "error": {"code": "INJECTED", "message": format!("injected status {status}")},
                "traceId": "mock-injected",
            });
            let mut builder = hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json");
            if let Some(value) = retry_after {
                builder = builder.header("retry-after", value);
            }
            return Ok(builder
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_default());
        }
    }
    let now = unix_now();
    let (answer, changes) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if request.path != "/oauth/token"
            && let Err(wait) =
                state.admit(request.header("authorization"), std::time::Instant::now())
        {
            drop(state);
            return Ok(rate_limited(wait));
        }
        let answer = state.handle(request, now);
        (answer, state.take_changes())
    };
    // Delivered before the answer: a change the API confirmed is in the queue.
    delivery.send(&state, changes).await;
    if drop_after_handling {
        return Err(Dropped);
    }
    if let Some(d) = delay {
        // The work is done; only the answer is late (as when a client times out
        // on a slow server that still completes the request).
        tokio::time::sleep(d).await;
    }
    let body = serde_json::to_vec(&answer.body).unwrap_or_default();
    Ok(hyper::Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .header("x-trace-id", answer.trace_id)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default())
}
