//! Carthooks SDK: async transport on reqwest.
//!
//! [`ReqwestTransport`] is a thin newtype over `reqwest::Client`, configured for
//! an API client that carries credentials: redirects are never followed, no system
//! proxy is read, TLS is rustls with the *ring* provider (the same provider as the
//! ureq backend) and the platform's certificate verifier. [`Client`] is the
//! ready-made async client over it.
//!
//! Each exchange is bounded by the configured `timeout` (shortened by a call's
//! `call_timeout`) through the transport's own deadlines, one timer for all
//! requests in flight, rather than reqwest's timer per request (see the
//! `deadline` module).
//!
//! The core hands the transport an `http::Request`; reqwest wants a `Url`. The
//! transport parses its first request's origin (scheme, host, port) once and
//! gives every request there a clone of that `Url` with the request's own path
//! and query set, so only they are parsed (`Origin`): a whole parse per request
//! was ~4k instructions of every call.
//!
//! Cargo unifies features: this crate enables reqwest's `rustls-no-provider` (so
//! that aws-lc-rs is not built). If your own code also builds `reqwest` clients
//! and enables no TLS feature of its own, install a provider before building them
//! (`rustls::crypto::ring::default_provider().install_default()`), or enable
//! reqwest's `rustls` feature; this crate's clients bring their own configuration
//! and need neither.
//!
//! ```no_run
//! use carthooks_client::OAuthConfig;
//! use carthooks_reqwest::Client;
//! # async fn run() -> Result<(), carthooks_client::Error> {
//! let client = Client::builder()
//!     .oauth(OAuthConfig::from_env()?)
//!     .build()?;
//! client.initialize_oauth(None).await?;
//! println!("{}", client.get_current_user().await?.data.username);
//! # Ok(()) }
//! ```

mod deadline;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use carthooks_client::{
    BoxFuture, Connect, DnsCache, Error, HttpRequest, HttpResponse, RequestTimeout, Result,
    RootCertificate, SystemLookup, Transport, TransportConfig, TransportError, TransportErrorKind,
    frames_body,
};

/// The async Carthooks client over reqwest.
pub type Client = carthooks_client::Client<ReqwestTransport>;

/// An async [`Transport`] over `reqwest::Client`: bounds the requests in flight
/// (`max_connections`) and the size of answers (`max_response_body`).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    max_body: usize,
    limit: Arc<Limit>,
    /// Every exchange's bound (`TransportConfig::timeout`); `None` for a
    /// client of your own, which has its own. A request's `RequestTimeout`
    /// shortens it.
    timeout: Option<Duration>,
    deadlines: Arc<deadline::Deadlines>,
    origin: Arc<Origin>,
}

impl From<reqwest::Client> for ReqwestTransport {
    /// Wraps a client of your own, with the default limits. Configure it to follow
    /// no redirects: a redirect would carry the bearer token or the client secret
    /// elsewhere.
    fn from(client: reqwest::Client) -> Self {
        let defaults = TransportConfig::default();
        Self::with_limits(
            client,
            defaults.max_response_body,
            defaults.max_connections,
            None,
        )
    }
}

impl ReqwestTransport {
    fn with_limits(
        client: reqwest::Client,
        max_body: usize,
        max_in_flight: usize,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            client,
            max_body,
            limit: Arc::new(Limit::new(max_in_flight)),
            timeout,
            deadlines: Arc::default(),
            origin: Arc::default(),
        }
    }

    /// A transport built from `config`, with its own DNS cache over the system
    /// resolver: for wrapping in a transport of your own, or sharing one pool
    /// between clients (`Arc<ReqwestTransport>`). The clients' `build()` makes
    /// one from the builder's settings instead.
    pub fn new(config: &TransportConfig) -> carthooks_client::Result<Self> {
        config.validate()?;
        let dns = DnsCache::new(config, Arc::new(SystemLookup));
        Self::connect(config, Arc::new(dns))
    }

    /// The underlying reqwest client.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Offers `h2` by ALPN when HTTP/2 is on; the server picks. Verifies with the
/// platform's verifier, or against `roots` only when any are given.
fn tls_config(http2: bool, roots: &[RootCertificate]) -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if roots.is_empty() {
        builder
            .with_platform_verifier()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
    } else {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(rustls::pki_types::CertificateDer::from(root.der().to_vec()))
                .map_err(|e| format!("root certificate: {e}"))?;
        }
        builder.with_root_certificates(store).with_no_client_auth()
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// reqwest's resolver hook over the client's [`DnsCache`]: lookups run on the
/// blocking pool.
struct CachedResolve(Arc<DnsCache>);

impl reqwest::dns::Resolve for CachedResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let cache = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is set by the connector; 0 here.
            let addrs = tokio::task::spawn_blocking(move || cache.resolve(&host, 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Connect for ReqwestTransport {
    fn connect(config: &TransportConfig, dns: Arc<DnsCache>) -> carthooks_client::Result<Self> {
        let tls = tls_config(config.http2, &config.root_certificates)
            .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // No `.timeout()`: a timer per request; the transport's own
            // deadlines bound each exchange (the `deadline` module).
            .connect_timeout(config.effective_connect_timeout())
            .pool_max_idle_per_host(config.max_keepalive_connections)
            .dns_resolver(Arc::new(CachedResolve(dns)))
            .tcp_nodelay(true);
        if !config.http2 {
            builder = builder.http1_only();
        }
        builder
            .build()
            .map(|client| {
                Self::with_limits(
                    client,
                    config.max_response_body,
                    config.max_connections,
                    Some(config.timeout),
                )
            })
            .map_err(|e| {
                Error::Config(format!("cannot build the HTTP client: {}", e.without_url()))
            })
    }
}

/// What a connect failure was, from the error's causes: TLS, DNS or the
/// connection itself.
fn connect_kind(e: &(dyn std::error::Error + 'static)) -> TransportErrorKind {
    if is_tls(e) {
        return TransportErrorKind::Tls;
    }
    let mut cause = Some(e);
    while let Some(c) = cause {
        // hyper-util's connector names DNS failures so; its type is private.
        if c.to_string() == "dns error" {
            return TransportErrorKind::Dns;
        }
        cause = c.source();
    }
    TransportErrorKind::Connect
}

/// True when a rustls error is among the causes. `io::Error` hides the error it
/// wraps from `source()` (it returns that error's source), so look inside it too.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && is_tls(inner)
    {
        return true;
    }
    e.source().is_some_and(is_tls)
}

fn map_error(e: reqwest::Error) -> TransportError {
    let e = e.without_url();
    let connecting = e.is_connect();
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if connecting {
        connect_kind(&e)
    } else if e.is_redirect() {
        TransportErrorKind::Redirect
    } else if e.is_body() || e.is_request() || e.is_decode() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    // URLs can carry a user token (`/v1/user-token/{token}`): never keep them.
    let error = TransportError::with_source(kind, e);
    if connecting {
        // No connection, so no byte of the request left (a connect timeout too).
        error.mark_never_sent()
    } else {
        error
    }
}

/// The bound on requests in flight (`max_connections`), fair under load.
///
/// Below the bound with nobody waiting, entering and leaving are one atomic
/// operation each; a tokio `Semaphore` locks its waiter list on every
/// release, which at 64 calls in flight on two cores was a contended lock per
/// call. At the bound, callers queue on a [`Notify`] (woken first in, first
/// out) and a leaving request hands its slot to the queue instead of freeing
/// it: `in_flight` stays, a *handoff* is counted, and the waiter woken (the
/// one that queued first) takes it. While anyone waits, a newcomer queues too,
/// and a handoff is taken only by a woken waiter: without that, callers that
/// loop (each call's end followed at once by the next call's start) took
/// every freed slot before the woken waiter ran, and a waiter could be passed
/// over for seconds (512 callers over a bound of 100: the slowest call 2–3 s,
/// and replays failing because the fresh token had expired before they were
/// sent; `E2E_ONLY=callers target/release/e2e` measures it).
///
/// [`Notify`]: tokio::sync::Notify
#[derive(Debug)]
struct Limit {
    max: usize,
    /// Slots held, handed-off ones not yet taken included.
    in_flight: AtomicUsize,
    /// Callers queued for a slot.
    waiting: AtomicUsize,
    /// Slots left by leaving requests for the queue, not yet taken.
    handoffs: AtomicUsize,
    freed: tokio::sync::Notify,
}

/// A request's place under the bound; leaves it when dropped.
struct Slot<'a>(&'a Limit);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let limit = self.0;
        if limit.waiting.load(SeqCst) > 0 {
            // The slot goes to the queue as it is. Stored as a permit if the
            // woken waiter has not registered yet: no wake-up is lost.
            limit.handoffs.fetch_add(1, SeqCst);
            limit.freed.notify_one();
            // The last waiter may have left between the look and the handoff
            // (its `Waiting` freed the handoffs it saw): free this one too.
            if limit.waiting.load(SeqCst) == 0 && limit.claim_handoff() {
                limit.in_flight.fetch_sub(1, SeqCst);
            }
            return;
        }
        limit.in_flight.fetch_sub(1, SeqCst);
        // Someone may have queued between the look and the release.
        if limit.waiting.load(SeqCst) > 0 {
            limit.freed.notify_one();
        }
    }
}

impl Limit {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            handoffs: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// A slot without waiting: room below the bound and nobody queued.
    fn try_enter(&self) -> Option<Slot<'_>> {
        if self.waiting.load(SeqCst) > 0 {
            return None;
        }
        self.claim_room()
    }

    /// Room below the bound, queue or not.
    fn claim_room(&self) -> Option<Slot<'_>> {
        self.in_flight
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self))
    }

    /// A slot a leaving request left for the queue.
    fn take_handoff(&self) -> Option<Slot<'_>> {
        // Not `then_some`: a `Slot` made and dropped would leave the bound.
        if self.claim_handoff() {
            Some(Slot(self))
        } else {
            None
        }
    }

    fn claim_handoff(&self) -> bool {
        self.handoffs
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn enter(&self) -> Slot<'_> {
        if let Some(slot) = self.try_enter() {
            return slot;
        }
        // Counted as waiting until this future ends, however it ends (a call
        // cancelled while it waits included).
        let _waiting = Waiting::new(self);
        let mut freed = std::pin::pin!(self.freed.notified());
        loop {
            freed.as_mut().enable();
            // Room freed while nobody was queued. A handoff is not taken
            // here: it belongs to the waiter it woke, which queued first.
            if let Some(slot) = self.claim_room() {
                return slot;
            }
            freed.as_mut().await;
            if let Some(slot) = self.take_handoff().or_else(|| self.claim_room()) {
                return slot;
            }
            // Woken for a slot another took: queue again.
            freed.set(self.freed.notified());
        }
    }
}

/// A caller waiting for room under the [`Limit`].
struct Waiting<'a>(&'a Limit);

impl<'a> Waiting<'a> {
    fn new(limit: &'a Limit) -> Self {
        limit.waiting.fetch_add(1, SeqCst);
        Self(limit)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let limit = self.0;
        if limit.waiting.fetch_sub(1, SeqCst) == 1 {
            // The queue is empty: slots left for it are free room again (one
            // handed off after this look is freed by its `Slot`).
            let left = limit.handoffs.swap(0, SeqCst);
            limit.in_flight.fetch_sub(left, SeqCst);
            return;
        }
        // This waiter may have taken a wake-up meant for a slot it did not use
        // (it lost the race, or was cancelled): pass it on.
        if limit.handoffs.load(SeqCst) > 0 || limit.in_flight.load(SeqCst) < limit.max {
            limit.freed.notify_one();
        }
    }
}

/// `http::Request` → `reqwest::Request`. Not reqwest's own `TryFrom`, which
/// formats the URI with `Display` and parses the whole text (7k instructions a
/// call, measured): the URL is the transport's [`Origin`] with this request's
/// path and query set, when the request goes there (a client's requests all
/// do), so the scheme and host are not parsed again.
fn to_reqwest(origin: &Origin, request: HttpRequest) -> Result<reqwest::Request, TransportError> {
    let (parts, body) = request.into_parts();
    let url = origin
        .url(&parts.uri)
        .ok_or_else(|| TransportError::new(TransportErrorKind::Other))?;
    let with_body = !body.is_empty() || frames_body(&parts.method);
    let mut out = reqwest::Request::new(parts.method, url);
    *out.headers_mut() = parts.headers;
    *out.version_mut() = parts.version;
    if with_body {
        if body.is_empty() {
            out.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("0"),
            );
        }
        *out.body_mut() = Some(body.into());
    }
    Ok(out)
}

/// The scheme and authority of the first request a transport sends, parsed
/// once into a [`reqwest::Url`] (`{scheme}://{authority}/`).
///
/// A request to that origin gets a clone of it with its own path and query set
/// (`Url::set_path`, `Url::set_query`, which parse them as `Url::parse` would),
/// so only they are parsed: the scheme, the host (IDNA included) and the port
/// are not, which is about a third of a `get_items` URL's parse. A request
/// elsewhere (another origin than the first) is parsed whole. Either way the
/// URL is the one `Url::parse` gives the whole text
/// (`tests::an_origins_urls_are_those_a_whole_parse_gives`).
#[derive(Debug, Default)]
struct Origin(std::sync::OnceLock<Option<(String, String, reqwest::Url)>>);

impl Origin {
    /// The URL of `uri`; `None` if it has no scheme or authority, or does not
    /// parse (the error is not kept: it could quote the URL).
    fn url(&self, uri: &http::Uri) -> Option<reqwest::Url> {
        let (scheme, authority) = (uri.scheme_str()?, uri.authority()?.as_str());
        let (path, query) = match uri.path_and_query() {
            Some(pq) => (pq.path(), pq.query()),
            None => ("/", None),
        };
        let first = self.0.get_or_init(|| {
            let url = reqwest::Url::parse(&format!("{scheme}://{authority}/")).ok()?;
            // `set_path` keeps the origin only where the path is a path.
            (!url.cannot_be_a_base()).then(|| (scheme.to_owned(), authority.to_owned(), url))
        });
        match first {
            Some((s, a, url)) if s == scheme && a == authority => {
                let mut url = url.clone();
                url.set_path(path);
                url.set_query(query);
                Some(url)
            }
            _ => {
                let mut text = String::with_capacity(
                    scheme.len()
                        + 3
                        + authority.len()
                        + path.len()
                        + query.map_or(0, |q| q.len() + 1),
                );
                text.push_str(scheme);
                text.push_str("://");
                text.push_str(authority);
                text.push_str(path);
                if let Some(q) = query {
                    text.push('?');
                    text.push_str(q);
                }
                reqwest::Url::parse(&text).ok()
            }
        }
    }
}

async fn send(
    transport: &ReqwestTransport,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    if tokio::runtime::Handle::try_current().is_err() {
        // reqwest would panic ("no reactor running"): say what is wrong instead.
        return Err(TransportError::new(TransportErrorKind::Other)
            .with_detail(
                "the async client must be polled inside a tokio runtime \
                 (use #[tokio::main], or the blocking client)",
            )
            .mark_never_sent());
    }
    let _slot = transport.limit.enter().await;
    let asked = request.extensions().get::<RequestTimeout>().map(|t| t.0);
    let timeout = match (asked, transport.timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // Pinned here and lent to `run`: given by value, the exchange's future
    // would be held twice in this one (`run`'s argument and its pinned copy).
    let mut exchange = std::pin::pin!(exchange(transport, request));
    match timeout.and_then(|t| std::time::Instant::now().checked_add(t)) {
        Some(deadline) => transport.deadlines.run(deadline, exchange.as_mut()).await,
        None => exchange.await,
    }
}

/// Sends `request` and reads the whole answer.
async fn exchange(
    transport: &ReqwestTransport,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let max_body = transport.max_body;
    let request = to_reqwest(&transport.origin, request)?;
    let mut response = transport.client.execute(request).await.map_err(map_error)?;
    if response
        .content_length()
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(TransportError::new(TransportErrorKind::BodyTooLarge));
    }
    let mut builder = http::Response::builder()
        .status(response.status())
        .version(response.version());
    if let Some(headers) = builder.headers_mut() {
        *headers = std::mem::take(response.headers_mut());
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |n| n as usize)
            .min(max_body),
    );
    while let Some(chunk) = response.chunk().await.map_err(map_error)? {
        if body.len() + chunk.len() > max_body {
            return Err(TransportError::new(TransportErrorKind::BodyTooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    builder
        .body(body)
        .map_err(|e| TransportError::with_source(TransportErrorKind::Other, e))
}

impl Transport for ReqwestTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(send(self, request))
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// Runs `job` on tokio's blocking pool and waits for it, so that file writes
    /// and user callbacks never stall the executor's threads.
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The job catches its own panics; a join error can only be one that
            // escaped, and there is nothing left to do about it.
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound holds under contention, nobody is left waiting with room free,
    /// and a waiter cancelled after it was woken passes the wake-up on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_in_flight_bound_holds_and_never_strands_a_waiter() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let limit = Arc::new(Limit::new(2));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (limit, now, most) = (limit.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    if i % 5 == 0 {
                        // Cancelled while waiting (or not, if there was room).
                        let _ =
                            tokio::time::timeout(Duration::from_micros(50), limit.enter()).await;
                        return;
                    }
                    let _slot = limit.enter().await;
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("every task got its turn");
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(limit.in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
    }

    /// A freed slot goes to the caller that queued first, not to one that
    /// arrives after it (the loop of a busy caller), and the bound comes back
    /// whole when the queue empties.
    #[tokio::test(flavor = "current_thread")]
    async fn a_freed_slot_goes_to_the_queue_not_to_a_newcomer() {
        use std::sync::atomic::Ordering;
        let limit = Arc::new(Limit::new(1));
        let held = limit.enter().await;
        let queued = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move {
                let _slot = limit.enter().await;
            }
        });
        tokio::task::yield_now().await; // `queued` is now waiting
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 1);
        drop(held);
        assert!(
            limit.try_enter().is_none(),
            "a newcomer took the slot freed for the queue"
        );
        queued.await.unwrap();
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(limit.handoffs.load(Ordering::SeqCst), 0);
        assert_eq!(limit.in_flight.load(Ordering::SeqCst), 0);
        let again = limit.try_enter().expect("room once the queue is gone");
        drop(again);
        assert_eq!(limit.in_flight.load(Ordering::SeqCst), 0);
    }

    /// Waiters are served in the order they queued.
    #[tokio::test(flavor = "current_thread")]
    async fn waiters_are_served_first_come_first_served() {
        let limit = Arc::new(Limit::new(1));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = limit.enter().await;
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let (limit, order) = (Arc::clone(&limit), Arc::clone(&order));
                tokio::spawn(async move {
                    let _slot = limit.enter().await;
                    order.lock().unwrap().push(i);
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    /// A URL made from the first origin with a request's path and query is
    /// the one a whole parse gives, whatever the path and query hold; another
    /// origin is parsed whole; a URI without an authority is refused.
    #[test]
    fn an_origins_urls_are_those_a_whole_parse_gives() {
        let paths = [
            "",
            "/",
            "/v1/apps/19/collections/20/items",
            "/v1/user-token/abc.def-ghi_~",
            "/a/./b/../c//d/",
            "//evil.example/x",
            "/%2e%2E/x/%2F/%zz/%41",
            "/caf%C3%A9/\u{e9}",
            "/quote\"/{braces}/^`|",
            "/a;b=c/@:!$&'()*+,=",
        ];
        let queries = [
            None,
            Some(""),
            Some("filters%5Bf_1001%5D%5B%24eq%5D=EF250920962519&pagination%5Bstart%5D=0"),
            Some("a=%zz&b=\"x\"&c=<>&d=é&'=1"),
            Some("?&&=="),
        ];
        let mut compared = 0;
        for origin in [
            "http://127.0.0.1:8080",
            "https://API.Example.com:443",
            "http://[::1]:9",
        ] {
            let cached = Origin::default();
            for path in paths {
                for query in queries {
                    let text = match query {
                        Some(q) => format!("{origin}{path}?{q}"),
                        None => format!("{origin}{path}"),
                    };
                    let Ok(uri) = text.parse::<http::Uri>() else {
                        continue; // not a request the core could make
                    };
                    let whole = reqwest::Url::parse(&uri.to_string()).unwrap();
                    assert_eq!(cached.url(&uri).unwrap(), whole, "{text}");
                    let other: http::Uri = format!("http://other.example{path}").parse().unwrap();
                    let expected = reqwest::Url::parse(&other.to_string()).unwrap();
                    assert_eq!(cached.url(&other).unwrap(), expected, "{other}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 80, "only {compared} of the cases are URIs");
        let no_authority: http::Uri = "/v1/me".parse().unwrap();
        assert!(Origin::default().url(&no_authority).is_none());
    }

    /// A call's future stays small: it is moved on each await level that
    /// builds it, and a future held twice (an `async fn` over a future
    /// argument), a rare path's future kept inline and `get_items` wrapping
    /// `get_items_as` had made it 3,136 bytes (0.5k instructions of copies a
    /// call, by callgrind). It is 1,200 bytes; the client's `otel` feature
    /// (on in a workspace build, features being unified) adds ~630 for its
    /// per-attempt state.
    #[tokio::test(flavor = "current_thread")]
    async fn a_calls_future_is_small() {
        let client = Client::builder()
            .without_env()
            .base_url("http://127.0.0.1:9")
            .access_token("t")
            .build()
            .unwrap();
        let query = carthooks_client::ItemsQuery::new();
        let call = client.get_items(1u64, 2u64, &query);
        let size = std::mem::size_of_val(&call);
        assert!(size <= 2048, "the get_items future is {size} bytes");
    }

    #[test]
    fn tls_config_builds_with_ring() {
        let config = tls_config(false, &[]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(tls_config(false, &[RootCertificate::from_der(vec![1, 2, 3])]).is_err());
        let h2 = tls_config(true, &[]).unwrap();
        assert_eq!(h2.alpn_protocols[0], b"h2".to_vec());
    }
}
