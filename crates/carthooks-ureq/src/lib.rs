//! Carthooks SDK: blocking transport on ureq 3.
//!
//! [`UreqTransport`] is a thin newtype over `ureq::Agent`, configured for an API
//! client that carries credentials: redirects are never followed, no proxy is read
//! from the environment, HTTP error statuses come back as answers (the SDK reads
//! their error envelope), TLS is rustls with the *ring* provider. No async runtime
//! is involved. [`Client`] is the ready-made blocking client over it.
//!
//! ```no_run
//! use carthooks_client::OAuthConfig;
//! use carthooks_ureq::Client;
//! let client = Client::builder()
//!     .oauth(OAuthConfig::from_env()?)
//!     .build()?;
//! client.initialize_oauth(None)?;
//! println!("{}", client.get_current_user()?.data.username);
//! # Ok::<(), carthooks_client::Error>(())
//! ```

use std::sync::Arc;

use carthooks_client::{
    BlockingTransport, Connect, DnsCache, HttpRequest, HttpResponse, RequestTimeout, SystemLookup,
    TransportConfig, TransportError, TransportErrorKind, frames_body,
};

/// The blocking Carthooks client over ureq.
pub type Client = carthooks_client::BlockingClient<UreqTransport>;

/// A [`BlockingTransport`] over `ureq::Agent`, bounding the size of answers
/// (`max_response_body`).
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    max_body: u64,
}

impl From<ureq::Agent> for UreqTransport {
    /// Wraps an agent of your own, with the default body limit. Configure it with
    /// `http_status_as_error(false)` and no redirects: a redirect would carry the
    /// bearer token elsewhere.
    fn from(agent: ureq::Agent) -> Self {
        Self {
            agent,
            max_body: TransportConfig::default().max_response_body as u64,
        }
    }
}

impl UreqTransport {
    /// A transport built from `config`, with its own DNS cache over the system
    /// resolver: for wrapping in a transport of your own, or sharing one pool
    /// between clients (`Arc<UreqTransport>`). The clients' `build()` makes
    /// one from the builder's settings instead.
    pub fn new(config: &TransportConfig) -> carthooks_client::Result<Self> {
        config.validate()?;
        let dns = DnsCache::new(config, Arc::new(SystemLookup));
        Self::connect(config, Arc::new(dns))
    }

    /// The underlying agent.
    pub fn inner(&self) -> &ureq::Agent {
        &self.agent
    }
}

/// ureq's resolver hook over the client's [`DnsCache`].
#[derive(Debug)]
struct CachedResolver(Arc<DnsCache>);

impl ureq::unversioned::resolver::Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().ok_or(ureq::Error::HostNotFound)?;
        let port = authority.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let addrs = self
            .0
            .resolve(authority.host(), port)
            .map_err(|_| ureq::Error::HostNotFound)?;
        let mut out = self.empty();
        for addr in addrs.into_iter().take(16) {
            out.push(addr);
        }
        Ok(out)
    }
}

impl Connect for UreqTransport {
    fn connect(config: &TransportConfig, dns: Arc<DnsCache>) -> carthooks_client::Result<Self> {
        let ip_family = if dns.ipv6() {
            ureq::config::IpFamily::Any
        } else {
            ureq::config::IpFamily::Ipv4Only
        };
        let mut tls = ureq::tls::TlsConfig::builder();
        if !config.root_certificates.is_empty() {
            let roots: Vec<ureq::tls::Certificate<'static>> = config
                .root_certificates
                .iter()
                .map(|r| ureq::tls::Certificate::from_der(r.der()).to_owned())
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        }
        let agent_config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .save_redirect_history(false)
            .proxy(None)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.effective_connect_timeout()))
            .max_idle_connections(config.max_keepalive_connections)
            .max_idle_connections_per_host(config.max_keepalive_connections)
            .ip_family(ip_family)
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::new(),
            CachedResolver(dns),
        );
        Ok(Self {
            agent,
            max_body: config.max_response_body as u64,
        })
    }
}

fn map_error(e: ureq::Error) -> TransportError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let (kind, never_sent) = match &e {
        E::Timeout(T::Resolve | T::Connect) => (TransportErrorKind::Timeout, true),
        E::Timeout(_) => (TransportErrorKind::Timeout, false),
        E::HostNotFound => (TransportErrorKind::Dns, true),
        E::ConnectionFailed => (TransportErrorKind::Connect, true),
        E::Tls(_) | E::Rustls(_) | E::TlsRequired => (TransportErrorKind::Tls, true),
        // rustls reports a failed handshake as an I/O error around its own.
        E::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            (TransportErrorKind::Tls, true)
        }
        E::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (TransportErrorKind::Timeout, false)
        }
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (TransportErrorKind::Connect, true)
        }
        E::Protocol(_) => (TransportErrorKind::Protocol, false),
        E::Io(_) | E::BodyStalled => (TransportErrorKind::Io, false),
        E::BodyExceedsLimit(_) => (TransportErrorKind::BodyTooLarge, false),
        E::TooManyRedirects | E::RedirectFailed => (TransportErrorKind::Redirect, false),
        _ => (TransportErrorKind::Other, false),
    };
    let error = match e {
        // These can quote the URL, which may carry a user token.
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) => TransportError::new(kind),
        other => TransportError::with_source(kind, other),
    };
    if never_sent {
        error.mark_never_sent()
    } else {
        error
    }
}

/// Runs `request` on `agent`, within `timeout` when the call has a deadline.
fn run<B: ureq::AsSendBody>(
    agent: &ureq::Agent,
    request: http::Request<B>,
    timeout: Option<std::time::Duration>,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    use ureq::RequestExt as _;
    match timeout {
        Some(t) => request
            .with_agent(agent)
            .configure()
            .timeout_global(Some(t))
            .run(),
        None => agent.run(request),
    }
}

impl BlockingTransport for UreqTransport {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let timeout = request.extensions().get::<RequestTimeout>().map(|t| t.0);
        let response = if request.body().is_empty() && !frames_body(request.method()) {
            // No body at all: ureq frames a `Vec`, even an empty one, with a
            // `Content-Length`.
            let (parts, _) = request.into_parts();
            run(&self.agent, http::Request::from_parts(parts, ()), timeout)
        } else {
            run(&self.agent, request, timeout)
        }
        .map_err(map_error)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(self.max_body)
            .read_to_vec()
            .map_err(map_error)?;
        Ok(http::Response::from_parts(parts, bytes))
    }
}
